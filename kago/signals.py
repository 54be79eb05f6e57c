"""Signal names <-> numbers for Linux (x86_64; arm64 uses the same generic table).

``kago kill`` takes what ``runc kill`` takes: a number (``9``), a name with or
without the ``SIG`` prefix in any case (``KILL``, ``SIGKILL``, ``sigkill``).
On top of runc 1.1.5 (whose table is golang.org/x/sys/unix: SIGHUP..SIGSYS
only) kago also accepts the classic aliases (``SIGIOT``, ``SIGCLD``,
``SIGPOLL``, ``SIGUNUSED``) and real-time signals as the C library numbers them
(``SIGRTMIN`` = 34 .. ``SIGRTMAX`` = 64, ``RTMIN+3``, ``SIGRTMAX-2``).
Kernel real-time signals 32 and 33 are reserved by glibc; they are named
``SIGRTMIN-2`` and ``SIGRTMIN-1`` so every number 1..64 has a name.

Numbers: like runc, any decimal integer string is taken as a number (``+9``,
``009``); kago rejects numbers outside 0..64 here instead of at kill(2).
0 is accepted (kill(pid, 0) probes whether the process exists).

The table is a literal: the ``signal`` module is not imported.
"""

SIGRTMIN = 34
SIGRTMAX = 64
NSIG = 65  # valid signal numbers are 1 .. NSIG-1

# canonical names, number order (index + 1 == number)
_CANONICAL = (
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS",
    "SIGFPE", "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM",
    "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
    "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM",
    "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
)

#: name -> number: the 31 standard signals, their aliases, SIGRTMIN/SIGRTMAX.
SIGNALS = {name: i + 1 for i, name in enumerate(_CANONICAL)}
SIGNALS.update({
    "SIGIOT": 6,      # = SIGABRT
    "SIGCLD": 17,     # = SIGCHLD
    "SIGPOLL": 29,    # = SIGIO
    "SIGUNUSED": 31,  # = SIGSYS (removed from glibc 2.26, still in old headers)
    "SIGRTMIN": SIGRTMIN,
    "SIGRTMAX": SIGRTMAX,
})


def _unknown(value):
    from kago.errors import InvalidArgument
    return InvalidArgument(f'unknown signal "{value}"')


def _digits(s):
    return s != "" and s.isascii() and s.isdigit()


def parse_signal(value) -> int:
    """Return the signal number for ``value`` (an int or a string).

    Raises :class:`kago.errors.InvalidArgument` (``unknown signal "FOO"``).
    """
    if isinstance(value, int) and not isinstance(value, bool):  # int, signal.Signals
        if 0 <= value < NSIG:
            return int(value)
        raise _unknown(int(value))
    if not isinstance(value, str):
        raise _unknown(value)
    s = value
    # a number, with an optional sign, as Go's strconv.Atoi reads it
    body = s[1:] if s[:1] in ("+", "-") else s
    if _digits(body):
        n = int(s)
        if 0 <= n < NSIG:
            return n
        raise _unknown(value)
    name = s.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    n = SIGNALS.get(name)
    if n is not None:
        return n
    # SIGRTMIN+n / SIGRTMAX-n (and SIGRTMIN-1/-2 for 33/32)
    if name.startswith(("SIGRTMIN", "SIGRTMAX")) and len(name) > 9:
        base = SIGRTMIN if name[6:8] == "IN" else SIGRTMAX
        sign, off = name[8], name[9:]
        if sign in "+-" and _digits(off) and len(off) <= 2:
            n = base + int(off) if sign == "+" else base - int(off)
            if 32 <= n <= SIGRTMAX:
                return n
    raise _unknown(value)


def signal_name(n: int) -> str:
    """``9`` -> ``"SIGKILL"``, ``37`` -> ``"SIGRTMIN+3"``, ``62`` -> ``"SIGRTMAX-2"``."""
    if type(n) is int:
        if 1 <= n <= 31:
            return _CANONICAL[n - 1]
        if 32 <= n <= SIGRTMAX:
            if n == SIGRTMIN:
                return "SIGRTMIN"
            if n == SIGRTMAX:
                return "SIGRTMAX"
            if n < SIGRTMIN:
                return f"SIGRTMIN-{SIGRTMIN - n}"
            if n - SIGRTMIN <= 15:  # 35..49, like bash's `kill -l`
                return f"SIGRTMIN+{n - SIGRTMIN}"
            return f"SIGRTMAX-{SIGRTMAX - n}"  # 50..63
    from kago.errors import InvalidArgument
    raise InvalidArgument(f"invalid signal number {n!r}")
