"""runc's command line grammar: a small, table-driven, Go-style flag parser.

runc 1.1.5 is built on urfave/cli v1 over Go's ``flag`` package; this module
reproduces the parts of that behaviour a caller can see:

* ``-name value``, ``--name value``, ``-name=value``, ``--name=value``; every
  flag name works with one or two dashes; short names are just other names
  (``-b`` = ``--bundle``).  Boolean flags take no separate value but accept
  ``--flag=false``.  ``-fjson`` is *not* ``-f json`` (Go has no clustering).
* Global flags come before the command; parsing stops at the first non-flag.
* Command flags: urfave first moves the command's *known* flags (and their
  values) in front of the other arguments, so ``delete ID --force`` works;
  the first ``--`` ends that and is dropped; then Go parses, stopping at the
  first non-flag.  An unknown flag is therefore an error before the first
  positional argument and a positional argument after it, as in runc.
  (One deliberate difference: runc also moves the argument that follows a
  *boolean* flag, so ``runc kill ID --all 9`` signals container "9" with
  signal "ID"; kago keeps ``9`` where it was.)
* ``exec`` and ``ps`` do not reorder (everything after the container id
  belongs to the container process); kago additionally drops a ``--`` right
  after the id (``kago ps ID -- -o pid``).
* Go's error texts: ``flag provided but not defined: -foo``, ``flag needs an
  argument: -f``, ``bad flag syntax: ---x``, ``invalid boolean value "x" for
  -d: parse error``, ``invalid value "x" for flag -preserve-fds: parse error``;
  runc's argument-count texts: ``kago: "state" requires exactly 1
  argument(s)``.

The tables are tuples of constants so that importing this module costs next to
nothing: ``kago state`` pays for this file and nothing else of the CLI.

:func:`parse` turns an argument list into an :class:`Invocation` (or raises
:class:`UsageError`) without executing anything.
"""

PROG = "kago"

# flag kinds
BOOL = "bool"
STRING = "string"
INT = "int"              # Go int via strconv.ParseInt(s, 0, 64)
UINT = "uint"            # Go uint via strconv.ParseUint(s, 0, 64)
SLICE = "slice"          # urfave StringSlice: repeatable
INT_SLICE = "int-slice"  # urfave Int64Slice: repeatable
DURATION = "duration"    # Go time.Duration; the parsed value is in seconds

# argument-count checks (runc's checkArgs)
EXACT = "exactly"
MIN = "a minimum of"
MAX = "a maximum of"

# A flag is (names, kind, usage) or (names, kind, usage, default).  The first
# name, with dashes turned into underscores, is the key in Invocation.opts.

GLOBAL_FLAGS = (
    ("debug", BOOL, "enable debug logging"),
    ("log", STRING, "set the log file to write kago logs to (default is '/dev/stderr')"),
    ("log-format", STRING, "set the log format ('text' (default), or 'json')", "text"),
    ("root", STRING, "root directory for storage of container state (this should be located in tmpfs)", "/run/kago"),
    ("criu", STRING, "path to the criu binary used for checkpoint and restore", "criu"),
    ("systemd-cgroup", BOOL, "enable systemd cgroup support, expects cgroupsPath to be of form "
     '"slice:prefix:name" for e.g. "system.slice:kago:434234"'),
    ("rootless", STRING, "ignore cgroup permission errors ('true', 'false', or 'auto')", "auto"),
    ("help, h", BOOL, "show help"),
    ("version, v", BOOL, "print the version"),
)

HELP_FLAG = ("help, h", BOOL, "show help")

_BUNDLE = ("bundle, b", STRING,
           "path to the root of the bundle directory, defaults to the current directory")
_CONSOLE_SOCKET = ("console-socket", STRING,
                   "path to an AF_UNIX socket which will receive a file descriptor referencing "
                   "the master end of the console's pseudoterminal")
_PID_FILE = ("pid-file", STRING, "specify the file to write the process id to")
_NO_PIVOT = ("no-pivot", BOOL,
             "do not use pivot root to jail process inside rootfs.  This should be used "
             "whenever the rootfs is on top of a ramdisk")
_NO_NEW_KEYRING = ("no-new-keyring", BOOL,
                   "do not create a new session keyring for the container.  This will cause "
                   "the container to inherit the calling processes session key")
_PRESERVE_FDS = ("preserve-fds", INT,
                 "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + "
                 "N in total)", 0)
_DETACH = ("detach, d", BOOL, "detach from the container's process")
_NO_SUBREAPER = ("no-subreaper", BOOL,
                 "disable the use of the subreaper used to reap reparented processes")
_FORMAT = ("format, f", STRING, "select one of: table or json", "table")
_WORK_PATH = ("work-path", STRING, "path for saving work files and logs")
_TCP = ("tcp-established", BOOL, "allow open tcp connections")
_EXT_UNIX = ("ext-unix-sk", BOOL, "allow external unix sockets")
_SHELL_JOB = ("shell-job", BOOL, "allow shell jobs")
_LAZY = ("lazy-pages", BOOL, "use userfaultfd to lazily restore memory pages")
_FILE_LOCKS = ("file-locks", BOOL, "handle file locks, for safety")
_CG_MODE = ("manage-cgroups-mode", STRING, "cgroups mode: 'soft' (default), 'full' and 'strict'")
_EMPTY_NS = ("empty-ns", SLICE, "create a namespace, but don't restore its properties")
_AUTO_DEDUP = ("auto-dedup", BOOL, "enable auto deduplication of memory images")

_UPDATE_RESOURCES_USAGE = """path to the file containing the resources to update or '-' to read from the standard input

The accepted format is as follow (unchanged values can be omitted):

{
  "memory": {
    "limit": 0,
    "reservation": 0,
    "swap": 0
  },
  "cpu": {
    "shares": 0,
    "quota": 0,
    "period": 0,
    "realtimeRuntime": 0,
    "realtimePeriod": 0,
    "cpus": "",
    "mems": ""
  },
  "blockIO": {
    "weight": 0
  }
}

Note: if data is to be read from a file or the standard input, all
other options are ignored."""

# name -> (flags, argument checks, reorder flags after positionals?)
# The order is runc's (it is the order of `kago --help`).
COMMANDS = {
    "checkpoint": ((
        ("image-path", STRING, "path for saving criu image files"),
        _WORK_PATH,
        ("parent-path", STRING, "path for previous criu image files in pre-dump"),
        ("leave-running", BOOL, "leave the process running after checkpointing"),
        _TCP, _EXT_UNIX, _SHELL_JOB, _LAZY,
        ("status-fd", INT, "criu writes \\0 to this FD once lazy-pages is ready", -1),
        ("page-server", STRING, "ADDRESS:PORT of the page server"),
        _FILE_LOCKS,
        ("pre-dump", BOOL, "dump container's memory information only, leave the container "
         "running after this"),
        _CG_MODE, _EMPTY_NS, _AUTO_DEDUP,
    ), ((EXACT, 1),), True),
    "create": ((
        _BUNDLE, _CONSOLE_SOCKET, _PID_FILE, _NO_PIVOT, _NO_NEW_KEYRING, _PRESERVE_FDS,
    ), ((EXACT, 1),), True),
    "delete": ((
        ("force, f", BOOL, "Forcibly deletes the container if it is still running (uses SIGKILL)"),
    ), ((EXACT, 1),), True),
    "events": ((
        ("interval", DURATION, "set the stats collection interval", "5s"),
        ("stats", BOOL, "display the container's stats then exit"),
    ), ((EXACT, 1),), True),
    "exec": ((
        _CONSOLE_SOCKET,
        ("cwd", STRING, "current working directory in the container"),
        ("env, e", SLICE, "set environment variables"),
        ("tty, t", BOOL, "allocate a pseudo-TTY"),
        ("user, u", STRING, "UID (format: <uid>[:<gid>])"),
        ("additional-gids, g", INT_SLICE, "additional gids"),
        ("process, p", STRING, "path to the process.json"),
        _DETACH, _PID_FILE,
        ("process-label", STRING, "set the asm process label for the process commonly used "
         "with selinux"),
        ("apparmor", STRING, "set the apparmor profile for the process"),
        ("no-new-privs", BOOL, "set the no new privileges value for the process"),
        ("cap, c", SLICE, "add a capability to the bounding set for the process"),
        _PRESERVE_FDS,
        ("cgroup", SLICE, "run the process in an (existing) sub-cgroup(s). Format is "
         "[<controller>:]<cgroup>."),
        ("ignore-paused", BOOL, "allow exec in a paused container"),
    ), ((MIN, 1),), False),
    "kill": ((
        ("all, a", BOOL, "send the specified signal to all processes inside the container"),
    ), ((MIN, 1), (MAX, 2)), True),
    "list": ((
        _FORMAT,
        ("quiet, q", BOOL, "display only container IDs"),
    ), ((EXACT, 0),), True),
    "pause": ((), ((EXACT, 1),), True),
    "ps": ((_FORMAT,), ((MIN, 1),), False),
    "restore": ((
        _CONSOLE_SOCKET,
        ("image-path", STRING, "path to criu image files for restoring"),
        _WORK_PATH, _TCP, _EXT_UNIX, _SHELL_JOB, _FILE_LOCKS, _CG_MODE,
        ("bundle, b", STRING, "path to the root of the bundle directory"),
        _DETACH, _PID_FILE, _NO_SUBREAPER, _NO_PIVOT, _EMPTY_NS, _AUTO_DEDUP, _LAZY,
        ("lsm-profile", STRING, "Specify an LSM profile to be used during restore in the form "
         "of TYPE:NAME."),
        ("lsm-mount-context", STRING, "Specify an LSM mount context to be used during restore."),
    ), ((EXACT, 1),), True),
    "resume": ((), ((EXACT, 1),), True),
    "run": ((
        _BUNDLE, _CONSOLE_SOCKET, _DETACH,
        ("keep", BOOL, "do not delete the container after it exits"),
        _PID_FILE, _NO_SUBREAPER, _NO_PIVOT, _NO_NEW_KEYRING, _PRESERVE_FDS,
    ), ((EXACT, 1),), True),
    "spec": ((
        ("bundle, b", STRING, "path to the root of the bundle directory"),
        ("rootless", BOOL, "generate a configuration for a rootless container"),
    ), ((EXACT, 0),), True),
    "start": ((), ((EXACT, 1),), True),
    "state": ((), ((EXACT, 1),), True),
    "update": ((
        ("resources, r", STRING, _UPDATE_RESOURCES_USAGE),
        ("blkio-weight", UINT, "Specifies per cgroup weight, range is from 10 to 1000", 0),
        ("cpu-period", STRING, "CPU CFS period to be used for hardcapping (in usecs). 0 to use "
         "system default"),
        ("cpu-quota", STRING, "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period"),
        ("cpu-share", STRING, "CPU shares (relative weight vs. other containers)"),
        ("cpu-rt-period", STRING, "CPU realtime period to be used for hardcapping (in usecs). 0 "
         "to use system default"),
        ("cpu-rt-runtime", STRING, "CPU realtime hardcap limit (in usecs). Allowed cpu time in a "
         "given period"),
        ("cpuset-cpus", STRING, "CPU(s) to use"),
        ("cpuset-mems", STRING, "Memory node(s) to use"),
        ("memory", STRING, "Memory limit (in bytes)"),
        ("memory-reservation", STRING, "Memory reservation or soft_limit (in bytes)"),
        ("memory-swap", STRING, "Total memory usage (memory + swap); set '-1' to enable "
         "unlimited swap"),
        ("pids-limit", INT, "Maximum number of pids allowed in the container", 0),
        ("l3-cache-schema", STRING, "The string of Intel RDT/CAT L3 cache schema"),
        ("mem-bw-schema", STRING, "The string of Intel RDT/MBA memory bandwidth schema"),
    ), ((EXACT, 1),), True),
    "features": ((), ((EXACT, 0),), True),
}

HELP_COMMANDS = ("help", "h")

_EMPTY = {BOOL: False, STRING: "", INT: 0, UINT: 0, DURATION: "0s"}


class UsageError(Exception):
    """A command line runc would refuse.

    ``stage`` says what runc does with it:

    * ``"global"``: a bad global flag; ``Incorrect Usage. <msg>`` and the
      main help on stdout, the error logged before logging is configured.
    * ``"command"``: a bad command flag; ``Incorrect Usage: <msg>`` and the
      command's help on stdout.
    * ``"args"``: wrong number of arguments; ``Incorrect Usage.`` and the
      command's help on stdout.
    * ``"topic"``: no such command (or help topic); exit code 3.

    ``invocation`` holds what was parsed so far (global flags at least, for
    every stage but ``"global"``).
    """

    def __init__(self, message, stage, command=None, invocation=None):
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.command = command
        self.invocation = invocation
        self.exit_code = 3 if stage == "topic" else 1


class Invocation:
    """A parsed command line.

    ``action`` is one of ``"run"`` (execute ``command``), ``"help"`` (the main
    help, or ``command``'s help when ``command`` is set), ``"version"``.
    ``globals`` and ``opts`` map flag keys (``log_format``, ``pid_file``) to
    values; ``explicit`` holds the keys of global flags given on the command
    line.
    """

    __slots__ = ("action", "command", "globals", "explicit", "opts", "args")

    def __init__(self, action, command, globals_, explicit, opts=None, args=None):
        self.action = action
        self.command = command
        self.globals = globals_
        self.explicit = explicit
        self.opts = opts if opts is not None else {}
        self.args = args if args is not None else []

    def __repr__(self):
        return (f"Invocation(action={self.action!r}, command={self.command!r}, "
                f"globals={self.globals!r}, opts={self.opts!r}, args={self.args!r})")

    # conveniences for the command functions
    @property
    def root(self):
        return self.globals["root"]

    @property
    def debug(self):
        return self.globals["debug"]


def key(names):
    """The Invocation key of a flag: ``"pid-file"`` -> ``"pid_file"``."""
    return names.split(",", 1)[0].strip().replace("-", "_")


def _index(flags):
    """name -> flag spec, for every name of every flag."""
    idx = {}
    for spec in flags:
        for n in spec[0].split(","):
            idx[n.strip()] = spec
    return idx


def _defaults(flags):
    vals = {}
    for spec in flags:
        kind = spec[1]
        if kind in (SLICE, INT_SLICE):
            value = []
        elif len(spec) > 3:
            value = spec[3]
        else:
            value = _EMPTY[kind]
        if kind == DURATION:
            value = parse_duration(value)
        vals[key(spec[0])] = value
    return vals


# --- Go's strconv / time parsing ------------------------------------------

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(s):
    """strconv.ParseBool; ValueError("parse error") otherwise."""
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError("parse error")


def parse_int(s, unsigned=False, bits=64):
    """strconv.ParseInt(s, 0, 64) (ParseUint with ``unsigned``).

    Raises ValueError("parse error") or ValueError("value out of range"),
    the texts of Go's flag package.
    """
    body = s
    sign = ""
    if not unsigned and body[:1] in ("+", "-"):
        sign, body = body[0], body[1:]
    if not body or not body[0].isdigit() or not body.isascii() or body.strip() != body:
        raise ValueError("parse error")
    base = 10
    digits = body
    if len(body) > 1 and body[0] == "0":
        p = body[1].lower()
        if p in "xob":
            base = {"x": 16, "o": 8, "b": 2}[p]
            digits = body[2:]
        else:
            base = 8
            digits = body[1:]
        if digits.startswith("_"):
            digits = digits[1:]
    if not digits or digits.endswith("_") or "__" in digits:
        raise ValueError("parse error")
    if "_" in digits and base == 10:
        raise ValueError("parse error")
    try:
        v = int(digits.replace("_", ""), base)
    except ValueError:
        raise ValueError("parse error") from None
    if sign == "-":
        v = -v
    if unsigned:
        if v >= 1 << bits:
            raise ValueError("value out of range")
    elif not -(1 << (bits - 1)) <= v < 1 << (bits - 1):
        raise ValueError("value out of range")
    return v


_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
          "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(s):
    """time.ParseDuration, in seconds: ``"1h2m3.5s"``, ``"300ms"``, ``"0"``."""
    orig = s
    neg = False
    if s[:1] in ("+", "-"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError("parse error")
    total = 0.0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        num, s = s[:i], s[i:]
        if not num or num == "." or num.count(".") > 1 or not num.replace(".", "").isascii():
            raise ValueError("parse error")
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit, s = s[:j], s[j:]
        if unit not in _UNITS:
            raise ValueError("parse error")
        total += float(num) * _UNITS[unit]
    if not orig:
        raise ValueError("parse error")
    return -total if neg else total


def _set(vals, spec, name, value):
    """Store ``value`` for flag ``spec`` written as ``name``; Go's error texts."""
    kind = spec[1]
    k = key(spec[0])
    try:
        if kind == STRING:
            vals[k] = value
        elif kind == INT:
            vals[k] = parse_int(value)
        elif kind == UINT:
            vals[k] = parse_int(value, unsigned=True)
        elif kind == DURATION:
            vals[k] = parse_duration(value)
        elif kind == SLICE:
            vals[k].append(value)
        elif kind == INT_SLICE:
            try:
                vals[k].append(parse_int(value))
            except ValueError as e:
                why = "invalid syntax" if str(e) == "parse error" else str(e)
                raise ValueError(f"strconv.ParseInt: parsing {go_quote(value)}: {why}") from None
    except ValueError as e:
        raise _Fail(f"invalid value {go_quote(value)} for flag -{name}: {e}") from None


class _Fail(Exception):
    pass


def go_quote(s):
    """Go's %q, for error messages only (kago.log is not imported otherwise)."""
    from kago.log import go_quote as q
    return q(s)


def _go_parse(args, idx, vals, explicit=None):
    """Go's FlagSet.Parse: flags until the first non-flag or ``--``.

    Returns the remaining arguments; raises _Fail with Go's message.
    """
    i = 0
    n = len(args)
    while i < n:
        s = args[i]
        if len(s) < 2 or s[0] != "-":
            break
        if s == "--":
            i += 1
            break
        name = s[2:] if s[1] == "-" else s[1:]
        if not name or name[0] == "-" or name[0] == "=":
            raise _Fail(f"bad flag syntax: {s}")
        i += 1
        has_value = False
        value = ""
        eq = name.find("=", 1)
        if eq > 0:
            name, value, has_value = name[:eq], name[eq + 1:], True
        spec = idx.get(name)
        if spec is None:
            raise _Fail(f"flag provided but not defined: -{name}")
        if spec[1] == BOOL:
            if has_value:
                try:
                    v = parse_bool(value)
                except ValueError as e:
                    raise _Fail(f"invalid boolean value {go_quote(value)} for -{name}: {e}") from None
            else:
                v = True
            vals[key(spec[0])] = v
        else:
            if not has_value:
                if i >= n:
                    raise _Fail(f"flag needs an argument: -{name}")
                value = args[i]
                i += 1
            _set(vals, spec, name, value)
        if explicit is not None:
            explicit.add(key(spec[0]))
    return args[i:]


def _is_flag(arg, idx):
    """urfave's argIsFlag: is ``arg`` one of this command's flags?"""
    if arg == "-" or arg[:1] != "-":
        return False
    if arg.startswith("--"):
        arg = arg[2:]
    if arg.startswith("-"):
        arg = arg[1:]
    return arg.split("=", 1)[0] in idx


def reorder(args, idx):
    """urfave v1's reorderArgs: known flags (with their values) first.

    The first ``--`` (not taken as a flag's value) is moved in front of the
    remaining arguments, so it ends flag parsing there.
    """
    flags = []
    rest = []
    want_value = False
    for i, arg in enumerate(args):
        if want_value and not _is_flag(arg, idx):
            want_value = False
            flags.append(arg)
        elif arg == "--":
            rest = ["--"] + rest + list(args[i + 1:])
            break
        elif _is_flag(arg, idx):
            flags.append(arg)
            name = arg.lstrip("-").split("=", 1)[0]
            want_value = "=" not in arg and idx[name][1] != BOOL
        else:
            want_value = False
            rest.append(arg)
    return flags + rest


def check_args(command, nargs):
    """runc's checkArgs: the first failing check's message, or None."""
    for how, n in COMMANDS[command][1]:
        if (how == EXACT and nargs != n) or (how == MIN and nargs < n) or \
                (how == MAX and nargs > n):
            return f'{PROG}: "{command}" requires {how} {n} argument(s)'
    return None


def parse_command(name, args, inv):
    """Parse ``args`` (what follows the command name) into ``inv``."""
    flags, _checks, reorders = COMMANDS[name]
    flags = flags + (HELP_FLAG,)
    idx = _index(flags)
    opts = _defaults(flags)
    if reorders:
        args = reorder(args, idx)
    try:
        rest = _go_parse(args, idx, opts)
    except _Fail as e:
        raise UsageError(str(e), "command", name, inv) from None
    if not reorders and len(rest) > 1 and rest[1] == "--":
        rest = rest[:1] + rest[2:]
    help_ = opts.pop("help")
    inv.command = name
    inv.opts = opts
    inv.args = rest
    if help_:
        inv.action = "help"
        return inv
    msg = check_args(name, len(rest))
    if msg:
        raise UsageError(msg, "args", name, inv)
    return inv


def parse(argv=None):
    """Parse a kago command line (without the program name).

    Returns an :class:`Invocation`; raises :class:`UsageError` for a command
    line runc would refuse.  Executes nothing and imports nothing.
    """
    if argv is None:
        import sys
        argv = sys.argv[1:]
    idx = _index(GLOBAL_FLAGS)
    g = _defaults(GLOBAL_FLAGS)
    explicit = set()
    try:
        rest = _go_parse(list(argv), idx, g, explicit)
    except _Fail as e:
        raise UsageError(str(e), "global") from None
    help_ = g.pop("help")
    version = g.pop("version")
    inv = Invocation("run", None, g, explicit)
    if help_:
        inv.action = "help"
        return inv
    if version:
        inv.action = "version"
        return inv
    if not rest:
        inv.action = "help"
        return inv
    name, args = rest[0], rest[1:]
    if name in HELP_COMMANDS:
        # `kago help [command]`
        hopts = {"help": False}
        try:
            args = _go_parse(args, _index((HELP_FLAG,)), hopts)
        except _Fail as e:
            raise UsageError(str(e), "command", "help", inv) from None
        inv.action = "help"
        inv.args = args
        if hopts["help"]:
            inv.command = "help"
        elif args:
            topic = args[0]
            if topic not in COMMANDS and topic not in HELP_COMMANDS:
                raise UsageError(f"No help topic for '{topic}'", "topic", None, inv)
            inv.command = topic
        return inv
    if name not in COMMANDS:
        raise UsageError(f"No help topic for '{name}'", "topic", None, inv)
    return parse_command(name, args, inv)
