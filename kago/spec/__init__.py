"""config.json: load and validate it, and produce the default one (`kago spec`).

:func:`load` reads ``<bundle>/config.json`` and :func:`validate` checks the
parts the runtime consumes, raising :class:`kago.errors.SpecError` with the
JSON path of the first bad value (``mounts[2].destination``,
``linux.namespaces[1].type``) and a one-line reason.  Both return the spec as a
plain dict, normalised so that consumers need fewer ``.get`` defaults:

* a ``null`` value of a checked optional key is removed (Go, and so runc,
  reads ``null`` as "absent");
* ``linux`` is always present (an object);
* ``process.user`` is always present, with ``uid`` and ``gid`` (default 0);
* a relative ``mounts[].destination`` is made absolute (relative to ``/``, as
  runtime-spec 1.2 and runc read it); every destination, ``linux.devices[].path``,
  masked and readonly path is cleaned (:func:`clean`): one spelling of each path.

Every value the runtime consumes is type-checked here, nested objects of
later stages included (``linux.resources``, ``linux.seccomp``,
``process.scheduler``, ...), with the ranges a syscall or a C type would
overflow on; and one walk over the whole document first refuses what no
consumer could take: a string or key with a NUL byte or a lone UTF-16
surrogate, a value that is not JSON, nesting deeper than 64 levels.  The rest
of the code trusts the types; the stage that consumes a value still decides
what its kernel makes of it.

Beyond types and ranges, the cross-field rules runc applies are enforced:
user namespace <-> uid/gid mappings, hostname/domainname need a private UTS
namespace, masked/readonly paths need a private mount namespace, timeOffsets
need a time namespace, no namespace type twice, a sysctl only in a kernel
namespace the container owns (:func:`_sysctls`).

This module is imported on every ``create``: it is deliberately flat (no
classes, no ``re``) and builds JSON paths for messages only on the error path.
"""

import _json as _c_json

from kago import _json as json
from kago import _os as os

from kago.errors import InvalidArgument, SpecError

#: namespace types of ``linux.namespaces[].type``
NAMESPACE_TYPES = frozenset(
    ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"))

#: ``process.rlimits[].type`` -> resource number (x86_64 and the generic table)
RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

#: hook kinds kago runs (others are ignored, as the spec allows)
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer",
              "poststart", "poststop")

PROPAGATIONS = frozenset(("", "shared", "slave", "private", "unbindable",
                          "rshared", "rslave", "rprivate", "runbindable"))

_CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
_DEVICE_TYPES = frozenset(("c", "b", "u", "p"))
_CLOCKS = frozenset(("monotonic", "boottime"))
_IOPRIO_CLASSES = frozenset(("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE",
                             "IOPRIO_CLASS_IDLE"))
#: sysctls of the ipc namespace (runc's list; and every ``fs.mqueue.*``)
_IPC_SYSCTLS = frozenset(("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",
                          "kernel.sem", "kernel.shmall", "kernel.shmmax",
                          "kernel.shmmni", "kernel.shm_rmid_forced"))
_NS_PROC = {"ipc": "ipc", "network": "net", "uts": "uts"}

_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_I32_MIN = -(1 << 31)
_I32_MAX = (1 << 31) - 1
_ID_MAX = _U32 - 1          # (uid_t)-1 means "unchanged" to setresuid/chown
_MAX_CPU = 8191             # NR_CPUS is at most 8192
_MAX_NODE = 1023            # MAX_NUMNODES is at most 1024
_MAX_DEPTH = 64
_HOOK_TIMEOUT_MAX = _I32_MAX   # seconds; select() takes no more


_STR_ONLY = frozenset((str,))


# --------------------------------------------------------------------------
# small checkers: each returns the value or raises SpecError(path, reason)

def _tname(v):
    if v is None:
        return "null"
    if v is True or v is False:
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


_WANT = {str: "string", bool: "boolean", dict: "object", list: "array"}


def _check(value, path, typ):
    """``value`` must be exactly of JSON type ``typ`` (str, bool, dict, list)."""
    if type(value) is not typ:
        raise SpecError(path, f"expected {_WANT[typ]}, got {_tname(value)}")
    return value


def _int(value, path, lo=0, hi=_U32):
    if type(value) is not int:
        raise SpecError(path, f"expected integer, got {_tname(value)}")
    if value < lo or value > hi:
        raise SpecError(path, f"{value} is out of range [{lo}, {hi}]")
    return value


def _opt(d, key):
    """d[key], or None if absent; a null value is dropped from ``d``."""
    v = d.get(key)
    if v is None and key in d:
        del d[key]
    return v


def _req(d, key, path):
    v = d.get(key)
    if v is None:
        raise SpecError(path, "is required")
    return v


def _abs(value, path):
    if type(value) is not str:
        raise SpecError(path, f"expected string, got {_tname(value)}")
    if not value.startswith("/"):
        raise SpecError(path, f"must be an absolute path, got {json.dumps(value)}")
    return value


def _strlist(value, path):
    if type(value) is not list:
        raise SpecError(path, f"expected array, got {_tname(value)}")
    if set(map(type, value)) <= _STR_ONLY:      # the usual case, at C speed
        return value
    for i, s in enumerate(value):
        if type(s) is not str:
            raise SpecError(f"{path}[{i}]", f"expected string, got {_tname(s)}")
    return value


def _abslist(value, path):
    _check(value, path, list)
    for i, s in enumerate(value):
        _abs(s, f"{path}[{i}]")
    return value


def clean(p):
    """Go's ``filepath.Clean`` of ``p`` made absolute from "/": the one spelling
    of a path inside the container ("dev", "//dev", "/./dev", "/dev/" and
    "/x/../dev" are all "/dev"; ".." stops at "/").  The same clean as the
    cgroup paths' (runc's CleanPath); the document walk refused NUL before."""
    from kago.cgroups import clean_path
    return clean_path("/" + p)


def _strmap(value, path):
    if type(value) is not dict:
        raise SpecError(path, f"expected object, got {_tname(value)}")
    for k, v in value.items():
        if type(v) is not str:
            raise SpecError(f"{path}[{json.dumps(k)}]",
                            f"expected string, got {_tname(v)}")
    return value


def _env(value, path):
    _strlist(value, path)
    for i, e in enumerate(value):
        name, eq, val = e.partition("=")
        if not eq:
            raise SpecError(f"{path}[{i}]",
                            f"invalid environment variable {json.dumps(e)}: missing '='")
        if not name:
            raise SpecError(f"{path}[{i}]",
                            "invalid environment variable: name cannot be empty")
        if "\0" in e:
            raise SpecError(f"{path}[{i}]",
                            f"invalid environment variable {json.dumps(name)}: "
                            "contains a nul byte")
    return value


_IDMAP_MAX_RANGES = 340     # the kernel's limit for uid_map/gid_map (4.15+)


def _idmaps(value, path):
    """A uid_map/gid_map as the kernel takes it (user namespaces and idmapped
    mounts): ids in u32 minus (u32)-1, a range never wraps, at most 340
    ranges, neither the container ranges nor the host ranges overlap."""
    _check(value, path, list)
    if len(value) > _IDMAP_MAX_RANGES:
        raise SpecError(path, f"{len(value)} ranges: the kernel takes at most "
                        f"{_IDMAP_MAX_RANGES}")
    seen = []
    for i, m in enumerate(value):
        p = f"{path}[{i}]"
        _check(m, p, dict)
        cid = _int(_req(m, "containerID", p + ".containerID"), p + ".containerID",
                   0, _ID_MAX)
        hid = _int(_req(m, "hostID", p + ".hostID"), p + ".hostID", 0, _ID_MAX)
        size = _int(_req(m, "size", p + ".size"), p + ".size", 1)
        if max(cid, hid) + size > _U32:
            raise SpecError(p + ".size", f"{size} is out of range [1, "
                            f"{_U32 - max(cid, hid)}]: the range would pass {_ID_MAX}")
        for j, (c, h, n) in enumerate(seen):
            for what, a, b in (("containerID", cid, c), ("hostID", hid, h)):
                if a < b + n and b < a + size:
                    raise SpecError(p, f"{what} range {a}-{a + size - 1} overlaps "
                                    f"{path}[{j}] ({b}-{b + n - 1})")
        seen.append((cid, hid, size))
    return value


def _bad_text(s):
    """Why string ``s`` can't reach a syscall or be written back as UTF-8, or None."""
    if "\0" in s:
        return "contains a nul byte"
    if not s.isascii():
        try:
            s.encode()
        except UnicodeEncodeError:
            return "contains a lone UTF-16 surrogate (not valid Unicode)"
    return None


def _clean(doc):
    """True if every string and key in ``doc`` is clean text, every value is
    JSON and nothing nests deeper than _MAX_DEPTH (no paths: the fast pass).
    Level by level; keys, and arrays that start with a string, are checked
    joined: one C-level scan each (a non-string among them: the loop)."""
    level = [doc]
    depth = 0
    join = "".join
    while level:
        depth += 1
        if depth > _MAX_DEPTH:
            return False
        deeper = []
        push = deeper.append
        for v in level:
            if type(v) is dict:
                try:
                    t = join(v)
                except TypeError:
                    return False
                if "\0" in t or not t.isascii() and _bad_text(t):
                    return False
                v = v.values()
            elif v and type(v[0]) is str:
                try:
                    t = join(v)
                except TypeError:
                    pass
                else:
                    if "\0" in t or not t.isascii() and _bad_text(t):
                        return False
                    continue
            for x in v:
                t = type(x)
                if t is str:
                    if "\0" in x or not x.isascii() and _bad_text(x):
                        return False
                elif t is dict or t is list:
                    push(x)
                elif x is not None and t is not bool and t is not int and t is not float:
                    return False
        level = deeper
    return True


def _key(k):
    """``k`` as a JSON string for a path, escaped to ASCII (it may be unclean)."""
    if type(k) is not str:
        return repr(k)
    return _c_json.encode_basestring_ascii(k)


#: objects whose keys are data: their members are spelt ``path["key"]``
_MAPS = frozenset(("annotations", "linux.sysctl", "linux.resources.unified",
                   "linux.resources.rdma", "resources.unified", "resources.rdma"))


def _unclean(v, path, depth=1):
    """The slow pass: raise SpecError at the first thing _clean refused."""
    if type(v) is dict:
        items = v.items()
    elif type(v) is list:
        items = enumerate(v)
    else:
        return
    if depth > _MAX_DEPTH:
        raise SpecError(path, f"nested too deeply (more than {_MAX_DEPTH} levels)")
    for k, x in items:
        if type(v) is list:
            p = f"{path}[{k}]"
        elif type(k) is not str:
            raise SpecError(path, f"object key {_key(k)} is not a string")
        else:
            why = _bad_text(k)
            if why:
                raise SpecError(path, f"key {_key(k)} {why}")
            if not path:
                p = k
            elif k.isidentifier() and path not in _MAPS:
                p = f"{path}.{k}"
            else:
                p = f"{path}[{_key(k)}]"
        t = type(x)
        if t is str:
            why = _bad_text(x)
            if why:
                raise SpecError(p, why)
        elif t is dict or t is list:
            _unclean(x, p, depth + 1)
        elif x is not None and t is not bool and t is not int and t is not float:
            raise SpecError(p, f"expected a JSON value, got {t.__name__}")


def _text(doc, path):
    """The one walk over a whole document (config.json, or exec's process)."""
    if (type(doc) is dict or type(doc) is list) and not _clean(doc):
        _unclean(doc, path)
        raise SpecError(path, "is not clean JSON text")   # not reached


def _fields(obj, path, table):
    """Check the keys of ``obj`` named in ``table`` (key -> (lo, hi) for an
    integer, ``bool``/``str``/``list`` for that type, or a checker function
    ``f(value, path)``); absent and null keys pass (null ones are dropped)."""
    _check(obj, path, dict)
    for k in [k for k in obj if k in table]:
        v = obj[k]
        if v is None:
            del obj[k]
            continue
        kind = table[k]
        if type(kind) is tuple:
            _int(v, f"{path}.{k}", kind[0], kind[1])
        elif type(kind) is type:
            _check(v, f"{path}.{k}", kind)
        else:
            kind(v, f"{path}.{k}")
    return obj


def _objlist(value, path, table, required=()):
    """An array of objects, each checked with _fields; ``required`` keys."""
    _check(value, path, list)
    for i, o in enumerate(value):
        p = f"{path}[{i}]"
        _fields(o, p, table)
        for k in required:
            if k not in o:
                raise SpecError(f"{p}.{k}", "is required")
    return value


def _cpulist(value, path, hi=_MAX_CPU):
    """A CPU (or NUMA node) list: "0-3,7"; "" is none."""
    _check(value, path, str)
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        lo, dash, top = part.partition("-")
        if not (lo.isascii() and lo.isdigit() and (not dash or top.isascii() and top.isdigit())):
            raise SpecError(path, f"invalid list {json.dumps(value)}: {json.dumps(part)} "
                            "is not N or N-M")
        if len(lo) > 6 or len(top) > 6 or int(lo) > hi or dash and int(top) > hi:
            raise SpecError(path, f"invalid list {json.dumps(value)}: "
                            f"{json.dumps(part)} is out of range [0, {hi}]")
        if dash and int(top) < int(lo):
            raise SpecError(path, f"invalid list {json.dumps(value)}: "
                            f"{json.dumps(part)} is a descending range")
    return value


def _nodelist(value, path):
    return _cpulist(value, path, _MAX_NODE)


def _strlist_of(names, what):
    """A checker: an array of strings, each one of ``names``."""
    def check(value, path):
        _strlist(value, path)
        for i, s in enumerate(value):
            if s not in names:
                raise SpecError(f"{path}[{i}]", f"unknown {what} {json.dumps(s)}")
        return value
    return check


def _page_size(value, path):
    """hugepageLimits[].pageSize: "2MB", "1GB", ... (a part of a file name)."""
    _check(value, path, str)
    n, unit = value[:-2], value[-2:]
    if not (unit in ("KB", "MB", "GB", "TB", "PB") and n.isascii() and n.isdigit()
            and len(n) <= 6):
        raise SpecError(path, f"invalid huge page size {json.dumps(value)} "
                        "(expected a number and KB, MB, GB, TB or PB)")
    return value


def _dev_access(value, path):
    _check(value, path, str)
    if not value:
        raise SpecError(path, "invalid device access \"\": cannot be empty")
    for c in value:
        if c not in "rwm":
            raise SpecError(path, f"invalid device access {json.dumps(value)}: "
                            "only r, w and m")
    return value


def _dev_type(value, path):
    _check(value, path, str)
    if value not in ("a", "b", "c"):
        raise SpecError(path, f"invalid device type {json.dumps(value)}: "
                        "expected a, b or c")
    return value


_R_I64 = (_I64_MIN, _I64_MAX)
_R_U64 = (0, _U64)
_R_U32 = (0, _U32)
_R_U16 = (0, 0xFFFF)
_R_MAJMIN = (_I64_MIN, _I32_MAX)    # a negative major/minor is the wildcard

_RES_DEVICE = {"allow": bool, "type": _dev_type, "major": _R_MAJMIN,
               "minor": _R_MAJMIN, "access": _dev_access}
_RES_MEMORY = {"limit": _R_I64, "reservation": _R_I64, "swap": _R_I64,
               "kernel": _R_I64, "kernelTCP": _R_I64, "swappiness": _R_U64,
               "disableOOMKiller": bool, "useHierarchy": bool,
               "checkBeforeUpdate": bool}
_RES_CPU = {"shares": _R_U64, "quota": _R_I64, "burst": _R_U64, "period": _R_U64,
            "realtimeRuntime": _R_I64, "realtimePeriod": _R_U64, "cpus": _cpulist,
            "mems": _nodelist, "idle": _R_I64}
_RES_WEIGHT_DEV = {"major": _R_I64, "minor": _R_I64, "weight": _R_U16,
                   "leafWeight": _R_U16}
_RES_THROTTLE_DEV = {"major": _R_I64, "minor": _R_I64, "rate": _R_U64}
_THROTTLES = ("throttleReadBpsDevice", "throttleWriteBpsDevice",
              "throttleReadIOPSDevice", "throttleWriteIOPSDevice")


def _weight_devs(value, path):
    return _objlist(value, path, _RES_WEIGHT_DEV, ("major", "minor"))


def _throttle_devs(value, path):
    return _objlist(value, path, _RES_THROTTLE_DEV, ("major", "minor", "rate"))


_RES_BLKIO = {"weight": _R_U16, "leafWeight": _R_U16, "weightDevice": _weight_devs}
for _k in _THROTTLES:
    _RES_BLKIO[_k] = _throttle_devs
del _k
_RES_HUGEPAGE = {"pageSize": _page_size, "limit": _R_U64}
_RES_PRIO = {"name": str, "priority": _R_U32}
_RES_RDMA = {"hcaHandles": _R_U32, "hcaObjects": _R_U32}


def _res_net(value, path):
    _fields(value, path, {"classID": _R_U32})
    v = _opt(value, "priorities")
    if v is not None:
        _objlist(v, path + ".priorities", _RES_PRIO, ("name", "priority"))
    return value


def _res_rdma(value, path):
    _check(value, path, dict)
    for dev, lim in value.items():
        _fields(lim, f"{path}[{json.dumps(dev)}]", _RES_RDMA)
    return value


def _res_devices(value, path):
    return _objlist(value, path, _RES_DEVICE)


def _res_hugepages(value, path):
    return _objlist(value, path, _RES_HUGEPAGE, ("pageSize", "limit"))


def _res_memory(value, path):
    return _fields(value, path, _RES_MEMORY)


def _res_cpu(value, path):
    return _fields(value, path, _RES_CPU)


def _res_pids(value, path):
    return _fields(value, path, {"limit": _R_I64})


def _res_blkio(value, path):
    return _fields(value, path, _RES_BLKIO)


_RESOURCES = {"devices": _res_devices, "memory": _res_memory, "cpu": _res_cpu,
              "pids": _res_pids, "blockIO": _res_blkio,
              "hugepageLimits": _res_hugepages, "network": _res_net,
              "rdma": _res_rdma, "unified": _strmap}


def validate_resources(res, path="linux.resources"):
    """Check a ``linux.resources`` object on its own (``update -r FILE``)."""
    _text(res, path)
    return _fields(res, path, _RESOURCES)


_SECCOMP_ARG = {"index": (0, 5), "value": _R_U64, "valueTwo": _R_U64, "op": str}


def _seccomp_args(value, path):
    return _objlist(value, path, _SECCOMP_ARG, ("index", "op"))


_SECCOMP_RULE = {"names": _strlist, "action": str, "errnoRet": _R_U32,
                 "args": _seccomp_args}


def _seccomp_rules(value, path):
    return _objlist(value, path, _SECCOMP_RULE, ("names", "action"))


_SECCOMP = {"defaultAction": str, "defaultErrnoRet": _R_U32,
            "architectures": _strlist, "flags": _strlist,
            "listenerPath": str, "listenerMetadata": str,
            "syscalls": _seccomp_rules}


def _seccomp(value, path):
    """Types only: kago.security.seccomp.parse knows the names."""
    _fields(value, path, _SECCOMP)
    if "defaultAction" not in value:
        raise SpecError(path + ".defaultAction", "is required")
    return value


_AFFINITY = {"initial": _cpulist, "final": _cpulist}


def _personality(value, path):
    from kago.process.extras import PERSONALITY_DOMAINS
    _fields(value, path, {"domain": str, "flags": _strlist})
    dom = _req(value, "domain", path + ".domain")
    if dom not in PERSONALITY_DOMAINS:
        raise SpecError(path + ".domain", f"unknown personality domain {json.dumps(dom)}")
    return value


def _memory_policy(value, path):
    from kago.process.extras import MPOL_FLAGS, MPOL_MODES
    _fields(value, path, {"mode": str, "nodes": _nodelist,
                          "flags": _strlist_of(MPOL_FLAGS, "memory policy flag")})
    mode = _req(value, "mode", path + ".mode")
    if mode not in MPOL_MODES:
        raise SpecError(path + ".mode", f"unknown memory policy mode {json.dumps(mode)}")
    return value


def _scheduler(value, path):
    from kago.process.extras import SCHED_FLAGS, SCHED_POLICIES
    _fields(value, path, {"policy": str, "nice": (-20, 19), "priority": (0, 99),
                          "flags": _strlist_of(SCHED_FLAGS, "scheduler flag"),
                          "runtime": _R_U64, "deadline": _R_U64, "period": _R_U64})
    pol = _req(value, "policy", path + ".policy")
    if pol not in SCHED_POLICIES:
        raise SpecError(path + ".policy", f"unknown scheduler policy {json.dumps(pol)}")
    return value


# --------------------------------------------------------------------------
# sections

def validate_process(proc, path="process"):
    """Check a process object (``exec --process``, or ``exec``'s from kago.json)."""
    _text(proc, path)
    return _process(proc, path)


def _process(proc, path="process"):
    """validate_process without the text walk (validate() did it)."""
    _check(proc, path, dict)
    v = _opt(proc, "terminal")
    if v is not None:
        _check(v, path + ".terminal", bool)
    v = _opt(proc, "consoleSize")
    if v is not None:
        p = path + ".consoleSize"
        _check(v, p, dict)
        _int(_req(v, "height", p + ".height"), p + ".height", 0, 0xFFFF)  # TIOCSWINSZ
        _int(_req(v, "width", p + ".width"), p + ".width", 0, 0xFFFF)

    args = proc.get("args")
    if args is None or args == []:
        raise SpecError(path + ".args", "args must not be empty")
    _strlist(args, path + ".args")
    for i, a in enumerate(args):
        if "\0" in a:
            raise SpecError(f"{path}.args[{i}]", "contains a nul byte")
    v = _opt(proc, "env")
    if v is not None:
        _env(v, path + ".env")

    cwd = proc.get("cwd")
    if cwd is None or cwd == "":
        raise SpecError(path + ".cwd", "cwd property must not be empty")
    _abs(cwd, path + ".cwd")

    user = _opt(proc, "user")
    if user is None:
        user = proc["user"] = {"uid": 0, "gid": 0}
    else:
        p = path + ".user"
        _check(user, p, dict)
        v = _opt(user, "uid")
        if v is None:
            user["uid"] = 0
        else:
            _int(v, p + ".uid", 0, _ID_MAX)
        v = _opt(user, "gid")
        if v is None:
            user["gid"] = 0
        else:
            _int(v, p + ".gid", 0, _ID_MAX)
        v = _opt(user, "umask")
        if v is not None:
            _int(v, p + ".umask", 0, 0o7777)
        v = _opt(user, "additionalGids")
        if v is not None:
            _check(v, p + ".additionalGids", list)
            for i, g in enumerate(v):
                _int(g, f"{p}.additionalGids[{i}]", 0, _ID_MAX)
        v = _opt(user, "username")
        if v is not None:
            _check(v, p + ".username", str)

    caps = _opt(proc, "capabilities")
    if caps is not None:
        p = path + ".capabilities"
        _check(caps, p, dict)
        for k in _CAP_SETS:
            v = _opt(caps, k)
            if v is not None:
                _strlist(v, f"{p}.{k}")

    rl = _opt(proc, "rlimits")
    if rl is not None:
        p = path + ".rlimits"
        _check(rl, p, list)
        seen = set()
        for i, r in enumerate(rl):
            rp = f"{p}[{i}]"
            _check(r, rp, dict)
            t = _check(_req(r, "type", rp + ".type"), rp + ".type", str)
            if t not in RLIMITS:
                raise SpecError(rp + ".type", f"unknown rlimit type {json.dumps(t)}")
            if t in seen:
                raise SpecError(rp + ".type", f"duplicated rlimit type {json.dumps(t)}")
            seen.add(t)
            hard = _int(_req(r, "hard", rp + ".hard"), rp + ".hard", 0, _U64)
            soft = _int(_req(r, "soft", rp + ".soft"), rp + ".soft", 0, _U64)
            if soft > hard:
                raise SpecError(rp, f"soft limit {soft} exceeds hard limit {hard}")

    for k in ("noNewPrivileges",):
        v = _opt(proc, k)
        if v is not None:
            _check(v, f"{path}.{k}", bool)
    for k in ("apparmorProfile", "selinuxLabel"):
        v = _opt(proc, k)
        if v is not None:
            _check(v, f"{path}.{k}", str)
    v = _opt(proc, "oomScoreAdj")
    if v is not None:
        _int(v, path + ".oomScoreAdj", -1000, 1000)
    v = _opt(proc, "ioPriority")
    if v is not None:
        p = path + ".ioPriority"
        _check(v, p, dict)
        c = _check(_req(v, "class", p + ".class"), p + ".class", str)
        if c not in _IOPRIO_CLASSES:
            raise SpecError(p + ".class", f"unknown I/O priority class {json.dumps(c)}")
        pr = _opt(v, "priority")
        if pr is not None:
            _int(pr, p + ".priority", 0, 7)
    v = _opt(proc, "scheduler")
    if v is not None:
        _scheduler(v, path + ".scheduler")
    v = _opt(proc, "execCPUAffinity")
    if v is not None:
        _fields(v, path + ".execCPUAffinity", _AFFINITY)
    return proc


def _mounts(mounts):
    """Check ``mounts``; returns the JSON paths of the idmapped mounts whose
    mapping is the container's user namespace (``validate`` needs one)."""
    _check(mounts, "mounts", list)
    userns_maps = []
    for i, m in enumerate(mounts):
        p = f"mounts[{i}]"
        _check(m, p, dict)
        d = m.get("destination")
        if d is None or d == "":
            raise SpecError(p + ".destination", "is required")
        if type(d) is not str:
            raise SpecError(p + ".destination", f"expected string, got {_tname(d)}")
        # runtime-spec 1.2 (and runc since 1.0.1, with a warning): a relative
        # destination is relative to "/" -- Docker still sends such mounts;
        # every destination gets its one spelling ("//dev" is "/dev")
        m["destination"] = clean(d)
        for k in ("type", "source"):
            v = _opt(m, k)
            if v is not None:
                _check(v, f"{p}.{k}", str)
        v = _opt(m, "options")
        if v is not None:
            _strlist(v, p + ".options")
        maps = {}
        for k in ("uidMappings", "gidMappings"):
            v = _opt(m, k)
            if v is not None:
                maps[k] = _idmaps(v, f"{p}.{k}")
        if _idmapped(m, maps, p):
            userns_maps.append(p)
    return userns_maps


def _idmapped(m, maps, p):
    """Check an idmapped mount (runc 1.2's rules, in its words); True when it
    takes the container's user namespace as its mapping (``idmap`` alone)."""
    opts = m.get("options") or ()
    idmap, ridmap = "idmap" in opts, "ridmap" in opts
    if idmap and ridmap:    # runc: the last one wins; crun refuses, as we do
        raise SpecError(p + ".options", "idmap and ridmap options are mutually exclusive")
    uids, gids = maps.get("uidMappings"), maps.get("gidMappings")
    # empty mappings and neither option: a plain mount (runtime-spec #1224)
    if not (uids or gids or idmap or ridmap):
        return False
    where = p + (".uidMappings" if uids else ".gidMappings" if gids else ".options")
    if not (m.get("type") == "bind" or "bind" in opts or "rbind" in opts):
        raise SpecError(where, "id-mapped mounts are only supported for bind-mounts")
    if bool(uids) != bool(gids):
        raise SpecError(where, "id-mapped mounts must have both uid and gid "
                        "mappings specified")
    return not uids


def _hooks(hooks):
    _check(hooks, "hooks", dict)
    for kind in HOOK_KINDS:
        lst = _opt(hooks, kind)
        if lst is None:
            continue
        _check(lst, "hooks." + kind, list)
        for i, h in enumerate(lst):
            p = f"hooks.{kind}[{i}]"
            _check(h, p, dict)
            path = h.get("path")
            if path is None or path == "":
                raise SpecError(p + ".path", "is required")
            _abs(path, p + ".path")
            v = _opt(h, "args")
            if v is not None:
                _strlist(v, p + ".args")
            v = _opt(h, "env")
            if v is not None:
                _env(v, p + ".env")
            v = _opt(h, "timeout")
            if v is not None:
                if type(v) is not int:
                    raise SpecError(p + ".timeout", f"expected integer, got {_tname(v)}")
                if v <= 0:
                    raise SpecError(p + ".timeout", f"must be greater than zero, got {v}")
                if v > _HOOK_TIMEOUT_MAX:
                    raise SpecError(p + ".timeout", f"{v} is out of range "
                                    f"[1, {_HOOK_TIMEOUT_MAX}]")


def _linux(lx):
    """Check ``linux``; returns {namespace type: path or ""}."""
    _check(lx, "linux", dict)
    nss = {}
    v = _opt(lx, "namespaces")
    if v is not None:
        _check(v, "linux.namespaces", list)
        for i, ns in enumerate(v):
            p = f"linux.namespaces[{i}]"
            _check(ns, p, dict)
            t = _check(_req(ns, "type", p + ".type"), p + ".type", str)
            if t not in NAMESPACE_TYPES:
                raise SpecError(p + ".type", f"unknown namespace type {json.dumps(t)}")
            if t in nss:
                raise SpecError(p + ".type", f"duplicated namespace {json.dumps(t)}")
            path = _opt(ns, "path")
            if path is None or path == "":
                nss[t] = ""
            else:
                nss[t] = _abs(path, p + ".path")
    for k in ("uidMappings", "gidMappings"):
        v = _opt(lx, k)
        if v is not None:
            _idmaps(v, "linux." + k)

    v = _opt(lx, "devices")
    if v is not None:
        _check(v, "linux.devices", list)
        for i, dev in enumerate(v):
            p = f"linux.devices[{i}]"
            _check(dev, p, dict)
            path = dev.get("path")
            if path is None or path == "":
                raise SpecError(p + ".path", "is required")
            dev["path"] = clean(_abs(path, p + ".path"))
            t = _check(_req(dev, "type", p + ".type"), p + ".type", str)
            if t not in _DEVICE_TYPES:
                raise SpecError(p + ".type", f"unknown device type {json.dumps(t)}")
            for k in ("major", "minor"):
                n = _opt(dev, k)
                if n is None:
                    if t != "p":
                        raise SpecError(f"{p}.{k}", f"is required for device type {t!r}")
                else:
                    _int(n, f"{p}.{k}", 0, _I32_MAX)    # mknod's makedev()
            for k in ("fileMode", "uid", "gid"):
                n = _opt(dev, k)
                if n is not None:
                    _int(n, f"{p}.{k}", 0, _U32 if k == "fileMode" else _ID_MAX)

    v = _opt(lx, "sysctl")
    if v is not None:
        _strmap(v, "linux.sysctl")
    for k in ("maskedPaths", "readonlyPaths"):
        v = _opt(lx, k)
        if v is not None:
            _abslist(v, "linux." + k)
            v[:] = [clean(x) for x in v]
    v = _opt(lx, "rootfsPropagation")
    if v is not None:
        _check(v, "linux.rootfsPropagation", str)
        if v not in PROPAGATIONS:
            raise SpecError("linux.rootfsPropagation",
                            f"unknown rootfs propagation {json.dumps(v)}")
    for k in ("cgroupsPath", "mountLabel"):
        v = _opt(lx, k)
        if v is not None:
            _check(v, "linux." + k, str)
    v = _opt(lx, "resources")
    if v is not None:
        _fields(v, "linux.resources", _RESOURCES)
    v = _opt(lx, "seccomp")
    if v is not None:
        _seccomp(v, "linux.seccomp")
    v = _opt(lx, "personality")
    if v is not None:
        _personality(v, "linux.personality")
    v = _opt(lx, "memoryPolicy")
    if v is not None:
        _memory_policy(v, "linux.memoryPolicy")
    for k in ("intelRdt", "netDevices"):     # not consumed by kago
        v = _opt(lx, k)
        if v is not None:
            _check(v, "linux." + k, dict)
    v = _opt(lx, "timeOffsets")
    if v is not None:
        _check(v, "linux.timeOffsets", dict)
        for clock, off in v.items():
            p = f"linux.timeOffsets.{clock}"
            if clock not in _CLOCKS:
                raise SpecError(p, f"unknown clock {json.dumps(clock)}")
            _check(off, p, dict)
            n = _opt(off, "secs")
            if n is not None:
                _int(n, p + ".secs", _I64_MIN, _I64_MAX)
            n = _opt(off, "nanosecs")
            if n is not None:
                _int(n, p + ".nanosecs", 0, 999999999)
    return nss


def validate(spec, require_process=True):
    """Validate (and normalise in place) a parsed config.json; returns it.

    ``require_process``: ``create``/``run`` need ``process``; a caller that
    only wants the container's static config may pass False.
    """
    if type(spec) is not dict:
        raise SpecError("", f"expected a JSON object, got {_tname(spec)}")
    _text(spec, "")
    v = _opt(spec, "ociVersion")
    if v is not None:
        _check(v, "ociVersion", str)

    root = spec.get("root")
    if root is None:
        raise SpecError("root", "root must be specified")
    _check(root, "root", dict)
    p = root.get("path")
    if p is None or p == "":
        raise SpecError("root.path", "is required")
    _check(p, "root.path", str)
    v = _opt(root, "readonly")
    if v is not None:
        _check(v, "root.readonly", bool)

    proc = _opt(spec, "process")
    if proc is not None:
        _process(proc)
    elif require_process:
        raise SpecError("process", "process property must not be empty")

    for k in ("hostname", "domainname"):
        v = _opt(spec, k)
        if v is not None:
            _check(v, k, str)
    v = _opt(spec, "mounts")
    userns_maps = _mounts(v) if v is not None else ()
    v = _opt(spec, "hooks")
    if v is not None:
        _hooks(v)
    v = _opt(spec, "annotations")
    if v is not None:
        _strmap(v, "annotations")

    lx = _opt(spec, "linux")
    if lx is None:
        lx = spec["linux"] = {}
    nss = _linux(lx)

    # cross-field rules (runc's libcontainer/configs/validate)
    if "user" in nss:
        if nss["user"] == "":  # a new user ns needs maps; a joined one has them
            if not lx.get("uidMappings"):
                raise SpecError("linux.uidMappings",
                                "user namespaces enabled, but no uid mappings found")
            if not lx.get("gidMappings"):
                raise SpecError("linux.gidMappings",
                                "user namespaces enabled, but no gid mappings found")
    else:
        for k in ("uidMappings", "gidMappings"):
            if lx.get(k):
                raise SpecError("linux." + k,
                                "user namespace mappings specified, but user "
                                "namespace isn't enabled in the config")
        if userns_maps:     # runc: only a user namespace can stand for the mapping
            raise SpecError(userns_maps[0] + ".options", "id-mapped mounts must have "
                            "both uid and gid mappings specified")
    if "uts" not in nss:
        for k in ("hostname", "domainname"):
            if spec.get(k):
                raise SpecError(k, f"unable to set {k} without a private UTS namespace")
    if "mount" not in nss:
        for k in ("maskedPaths", "readonlyPaths"):
            if lx.get(k):
                raise SpecError("linux." + k, "unable to restrict sys entries "
                                "without a private MNT namespace")
    if lx.get("timeOffsets") and "time" not in nss:
        raise SpecError("linux.timeOffsets", "time namespace offsets specified, "
                        "but time namespace isn't enabled in the config")
    if lx.get("sysctl"):
        _sysctls(lx["sysctl"], nss, spec)
    return spec


def sysctl_name(key):
    """A ``linux.sysctl`` key -> (its dotted name, its path under /proc/sys),
    or None when it names no file there.

    As sysctl(8): the first separator decides.  After a '.', '.' separates and
    a '/' stands for a '.' inside a name (``net.ipv4.conf.eth0/100.rp_filter``);
    after a '/', '/' separates and '.' is part of a name.  An empty, "." or
    ".." component or a NUL names nothing: no key climbs out of /proc/sys.
    """
    if not key or "\0" in key:
        return None
    dot, slash = key.find("."), key.find("/")
    if slash >= 0 and (dot < 0 or slash < dot):
        comps = key.split("/")
    else:
        comps = [c.replace("/", ".") for c in key.split(".")]
    for c in comps:
        if c == "" or c == "." or c == "..":
            return None
    return ".".join(c.replace(".", "/") for c in comps), "/".join(comps)


def _own_ns(nss, t, where):
    """Does the container have a namespace of type ``t`` of its own: a new one,
    or one joined by path that is not kago's (nor pid 1's, where visible)?"""
    path = nss.get(t)
    if path is None:
        return False
    if path == "":
        return True
    try:
        st = os.stat(path)
    except OSError as e:
        raise SpecError(where, f"invalid {_NS_PROC[t]}ns path: stat {path}: "
                        f"{_strerror(e)}") from None
    for pid in ("self", "1"):
        try:
            h = os.stat(f"/proc/{pid}/ns/{_NS_PROC[t]}")
        except OSError:
            continue
        if h.st_ino == st.st_ino and h.st_dev == st.st_dev:
            return False
    return True


def _sysctls(sysctl, nss, spec):
    """runc's rule: a sysctl only in a kernel namespace the container owns
    (ipc, network, uts); everything else would change the host's value."""
    for key, value in sysctl.items():
        where = f"linux.sysctl[{json.dumps(key)}]"
        n = sysctl_name(key)
        if n is None:
            raise SpecError(where, f"invalid sysctl name {json.dumps(key)}")
        name = json.dumps(n[0])
        if n[0] in _IPC_SYSCTLS or n[0].startswith("fs.mqueue."):
            if not _own_ns(nss, "ipc", where):
                raise SpecError(where, f"sysctl {name} is not allowed in the hosts "
                                "ipc namespace")
        elif n[0].startswith("net."):
            if not _own_ns(nss, "network", where):
                raise SpecError(where, f"sysctl {name} not allowed in host network "
                                "namespace")
        elif n[0] in ("kernel.hostname", "kernel.domainname") \
                and _own_ns(nss, "uts", where):
            field = n[0][7:]
            if field in spec and spec[field] != value:
                raise SpecError(where, f"sysctl {name} is not allowed as it "
                                f"conflicts with the OCI {json.dumps(field)} field")
        else:
            raise SpecError(where, f"sysctl {name} is not in a separate kernel "
                            "namespace")


def _strerror(e):
    s = e.strerror or str(e)
    return s[:1].lower() + s[1:]


def _no_constant(name):
    raise ValueError(f"invalid JSON value {name}")


def load(bundle, require_process=True):
    """Read, parse and validate ``<bundle>/config.json``; returns the dict."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SpecError("", f"open {path}: {_strerror(e)}") from None
    try:
        spec = json.loads(data)
    except json.JSONDecodeError as e:
        raise SpecError("", f"invalid JSON at line {e.lineno} column {e.colno}: "
                        f"{e.msg}") from None
    except UnicodeDecodeError as e:
        raise SpecError("", f"invalid JSON: not valid UTF-8 at byte {e.start}") from None
    except RecursionError:
        raise SpecError("", "invalid JSON: nested too deeply") from None
    except ValueError as e:
        raise SpecError("", f"invalid JSON: {e}") from None
    return validate(spec, require_process)


# --------------------------------------------------------------------------
# `kago spec`

def default_spec(rootless=False):
    """The document ``runc spec`` (``--rootless``) of runc 1.1.5 writes."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    nosuid_noexec_nodev = ["nosuid", "noexec", "nodev"]
    pts_opts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    if not rootless:
        pts_opts.append("gid=5")
    if rootless:
        sys_mount = {"destination": "/sys", "type": "none", "source": "/sys",
                     "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
    else:
        sys_mount = {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                     "options": nosuid_noexec_nodev + ["ro"]}
    spec = {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(caps),
                "effective": list(caps),
                "permitted": list(caps),
                "ambient": list(caps),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": pts_opts},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": nosuid_noexec_nodev + ["mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": list(nosuid_noexec_nodev)},
            sys_mount,
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": nosuid_noexec_nodev + ["relatime", "ro"]},
        ],
    }
    masked = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
              "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
              "/proc/sched_debug", "/sys/firmware", "/proc/scsi"]
    readonly = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger"]
    if rootless:
        spec["linux"] = {
            "uidMappings": [{"containerID": 0, "hostID": os.geteuid(), "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": os.getegid(), "size": 1}],
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")],
            "maskedPaths": masked,
            "readonlyPaths": readonly,
        }
    else:
        spec["linux"] = {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": masked,
            "readonlyPaths": readonly,
        }
    return spec


def dumps(spec):
    """Serialise a spec as runc does (Go's MarshalIndent with a tab, no final newline)."""
    return json.dumps(spec, indent="\t", ensure_ascii=False)


def write_default_spec(bundle=".", rootless=False):
    """Write the default spec to ``<bundle>/config.json``; returns the path.

    Refuses to overwrite (runc's ``File config.json exists. Remove it first``).
    """
    path = os.path.join(bundle, "config.json")
    data = dumps(default_spec(rootless)).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise InvalidArgument("File config.json exists. Remove it first") from None
    except OSError as e:
        from kago.errors import SyscallError
        raise SyscallError(e.errno, "open", path) from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    return path
