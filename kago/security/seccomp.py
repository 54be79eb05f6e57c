"""seccomp: ``linux.seccomp`` -> a BPF program, loaded at the point runc loads it.

Two phases, so the container's init needs nothing from the host after
pivot_root and the expensive part happens once:

``build(cfg)`` (before pivot_root / before the exec fork)
    validates the section, builds the filter with libseccomp through ctypes
    (seccomp_init, seccomp_arch_add, seccomp_rule_add_array,
    seccomp_syscall_resolve_name) and exports it as raw BPF
    (seccomp_export_bpf).  Unknown syscall names are skipped (runc: "not
    supported by this kernel"), as are rules whose action equals the default;
    a rule an earlier one already decides (duplicates, overlaps libseccomp
    can't express: EEXIST) leaves the earlier one standing (see _compile).
    If ``listenerPath`` is set, the unix socket there is connected now, from
    the host's view of the filesystem (an agent that doesn't answer is runc's
    "failed to connect with seccomp agent ...").

``Filter.load()`` (in the container process)
    installs the BPF with seccomp(2) itself, so every filter flag the kernel
    knows can be used (TSYNC, LOG, SPEC_ALLOW, WAIT_KILLABLE_RECV - the last
    is not in libseccomp 2.5) and the notify listener comes back as the
    return value (SECCOMP_FILTER_FLAG_NEW_LISTENER).  The listener fd is then
    sent over the connected socket with SCM_RIGHTS, with the container
    process state as JSON (runtime-spec "ContainerProcessState"), and closed.
    As crun does, that happens whenever ``listenerPath`` is set, whether or
    not a rule uses SCMP_ACT_NOTIFY (runc 1.1 never connects then, and an
    agent waits forever).

Where it is loaded (runc's standard_init_linux.go / setns_init_linux.go):
without noNewPrivileges, installing a filter needs CAP_SYS_ADMIN, so it is
loaded before the capabilities are dropped; with noNewPrivileges, as late as
possible - after the user, caps and fds are set, right before init reports
``ready`` (or, for exec, right before execve).

The tables below are also what ``kago features`` reports.
"""

import errno as _errno
from kago import _os as os
import sys as _sys

from kago.errors import KagoError, SpecError, SyscallError

SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_KILL_THREAD = 0x00000000
SCMP_ACT_TRAP = 0x00030000
SCMP_ACT_ERRNO = 0x00050000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_ACT_TRACE = 0x7FF00000
SCMP_ACT_LOG = 0x7FFC0000
SCMP_ACT_ALLOW = 0x7FFF0000

#: OCI action name -> libseccomp action (ERRNO and TRACE carry a 16-bit value)
ACTIONS = {
    "SCMP_ACT_KILL": SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": SCMP_ACT_KILL_PROCESS,
    "SCMP_ACT_KILL_THREAD": SCMP_ACT_KILL_THREAD,
    "SCMP_ACT_TRAP": SCMP_ACT_TRAP,
    "SCMP_ACT_ERRNO": SCMP_ACT_ERRNO,
    "SCMP_ACT_TRACE": SCMP_ACT_TRACE,
    "SCMP_ACT_ALLOW": SCMP_ACT_ALLOW,
    "SCMP_ACT_LOG": SCMP_ACT_LOG,
    "SCMP_ACT_NOTIFY": SCMP_ACT_NOTIFY,
}

#: OCI operator -> enum scmp_compare
OPERATORS = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

#: OCI architecture -> libseccomp's name for it (seccomp_arch_resolve_name)
ARCHES = {
    "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64",
    "SCMP_ARCH_MIPS": "mips", "SCMP_ARCH_MIPS64": "mips64",
    "SCMP_ARCH_MIPS64N32": "mips64n32", "SCMP_ARCH_MIPSEL": "mipsel",
    "SCMP_ARCH_MIPSEL64": "mipsel64", "SCMP_ARCH_MIPSEL64N32": "mipsel64n32",
    "SCMP_ARCH_PPC": "ppc", "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390": "s390", "SCMP_ARCH_S390X": "s390x",
    "SCMP_ARCH_PARISC": "parisc", "SCMP_ARCH_PARISC64": "parisc64",
    "SCMP_ARCH_RISCV64": "riscv64",
}

#: OCI flag -> seccomp(2) SECCOMP_FILTER_FLAG_*
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1,
    "SECCOMP_FILTER_FLAG_LOG": 2,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 4,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 32,
}
FLAG_NEW_LISTENER = 8
FLAG_TSYNC_ESRCH = 16

SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277, "arm64": 277, "ppc64le": 358,
               "s390x": 348, "riscv64": 277}

LIBSECCOMP = "libseccomp.so.2"
MAX_ARGS = 6

_lib = None


class SeccompError(KagoError):
    """seccomp could not be set up (library, kernel or listener)."""

    def _fields(self):
        return {}


# --------------------------------------------------------------- libseccomp

def set_lib(lib):
    """Inject a libseccomp double (tests); ``None`` restores lazy loading."""
    global _lib
    _lib = lib


def lib():
    """libseccomp through ctypes, loaded once, with prototypes set."""
    global _lib
    if _lib is None:
        from kago import _ffi as ctypes
        c = ctypes
        try:
            h = c.CDLL(LIBSECCOMP, use_errno=True)
        except OSError as e:
            raise SeccompError(f"seccomp: cannot load {LIBSECCOMP}: {e} "
                               "(install libseccomp2)") from None
        vp, u32, i = c.c_void_p, c.c_uint32, c.c_int
        h.seccomp_init.argtypes = [u32]
        h.seccomp_init.restype = vp
        h.seccomp_release.argtypes = [vp]
        h.seccomp_release.restype = None
        h.seccomp_arch_add.argtypes = [vp, u32]
        h.seccomp_arch_add.restype = i
        h.seccomp_arch_remove.argtypes = [vp, u32]
        h.seccomp_arch_remove.restype = i
        h.seccomp_merge.argtypes = [vp, vp]
        h.seccomp_merge.restype = i
        h.seccomp_arch_native.argtypes = []
        h.seccomp_arch_native.restype = u32
        h.seccomp_arch_resolve_name.argtypes = [c.c_char_p]
        h.seccomp_arch_resolve_name.restype = u32
        h.seccomp_attr_set.argtypes = [vp, c.c_int, u32]
        h.seccomp_attr_set.restype = i
        h.seccomp_syscall_resolve_name.argtypes = [c.c_char_p]
        h.seccomp_syscall_resolve_name.restype = i
        h.seccomp_syscall_resolve_name_arch.argtypes = [u32, c.c_char_p]
        h.seccomp_syscall_resolve_name_arch.restype = i
        h.seccomp_rule_add_array.argtypes = [vp, u32, i, c.c_uint, vp]
        h.seccomp_rule_add_array.restype = i
        h.seccomp_export_bpf.argtypes = [vp, i]
        h.seccomp_export_bpf.restype = i
        h.seccomp_version.argtypes = []
        h.seccomp_version.restype = c.c_void_p
        _lib = h
    return _lib


def version() -> str:
    """libseccomp's version ("2.5.4"), or "" if it can't be loaded."""
    from kago import _ffi as ctypes

    class V(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint),
                    ("micro", ctypes.c_uint)]
    try:
        p = lib().seccomp_version()
    except SeccompError:
        return ""
    v = V.from_address(p)
    return f"{v.major}.{v.minor}.{v.micro}"


_ArgCmp = None


def _arg_array(conds):
    global _ArgCmp
    from kago import _ffi as ctypes
    if _ArgCmp is None:
        class ArgCmp(ctypes.Structure):
            _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                        ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]
        _ArgCmp = ArgCmp
    arr = (_ArgCmp * len(conds))()
    for k, (idx, op, a, b) in enumerate(conds):
        arr[k].arg, arr[k].op, arr[k].datum_a, arr[k].datum_b = idx, op, a, b
    return arr


# ------------------------------------------------------------------ compile

def _action(name, errno_ret, path, default_errno=_errno.EPERM):
    if not isinstance(name, str) or name not in ACTIONS:
        raise SpecError(path, f"unknown seccomp action {name!r}")
    act = ACTIONS[name]
    if act in (SCMP_ACT_ERRNO, SCMP_ACT_TRACE):
        ret = default_errno if errno_ret is None else errno_ret
        if not isinstance(ret, int) or isinstance(ret, bool) or not 0 <= ret <= 0xFFFF:
            raise SpecError(path, f"errnoRet {ret!r} out of range")
        act |= ret
    return act


def parse(cfg: dict):
    """Validate ``linux.seccomp``; returns (default action, arch names, flags,
    rules) with rules as [(syscall name, action, [(idx, op, a, b)], path)]."""
    p = "linux.seccomp"
    if not isinstance(cfg, dict):
        raise SpecError(p, "must be an object")
    default_errno = cfg.get("defaultErrnoRet")
    if default_errno is None:
        default_errno = _errno.EPERM
    default = _action(cfg.get("defaultAction"), default_errno, p + ".defaultAction")
    if default == SCMP_ACT_NOTIFY:
        raise SpecError(p + ".defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
    arches = []
    for k, a in enumerate(cfg.get("architectures") or ()):
        if a not in ARCHES:
            raise SpecError(f"{p}.architectures[{k}]", f"unknown architecture {a!r}")
        arches.append(ARCHES[a])
    flags = 0
    for k, f in enumerate(cfg.get("flags") or ()):
        if f not in FLAGS:
            raise SpecError(f"{p}.flags[{k}]", f"unknown seccomp flag {f!r}")
        flags |= FLAGS[f]
    rules = []
    notify = False
    for k, sc in enumerate(cfg.get("syscalls") or ()):
        sp = f"{p}.syscalls[{k}]"
        if not isinstance(sc, dict):
            raise SpecError(sp, "must be an object")
        names = sc.get("names")
        if not isinstance(names, list) or not names:
            raise SpecError(sp + ".names", "must be a non-empty list of syscall names")
        act = _action(sc.get("action"), sc.get("errnoRet"), sp + ".action")
        if act == SCMP_ACT_NOTIFY:
            notify = True
            if "write" in names:
                raise SpecError(sp, "SCMP_ACT_NOTIFY cannot be used for the write syscall")
        conds = []
        for j, a in enumerate(sc.get("args") or ()):
            ap = f"{sp}.args[{j}]"
            if not isinstance(a, dict):
                raise SpecError(ap, "must be an object")
            idx = a.get("index")
            if not isinstance(idx, int) or not 0 <= idx < MAX_ARGS:
                raise SpecError(ap + ".index", f"argument index {idx!r} out of range 0-5")
            op = a.get("op")
            if op not in OPERATORS:
                raise SpecError(ap + ".op", f"unknown seccomp operator {op!r}")
            vals = []
            for key in ("value", "valueTwo"):
                v = a.get(key, 0) or 0
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 64:
                    raise SpecError(f"{ap}.{key}", f"{v!r} is not a 64-bit unsigned value")
                vals.append(v)
            conds.append((idx, OPERATORS[op], vals[0], vals[1]))
        for n in names:
            if not isinstance(n, str) or not n:
                raise SpecError(sp + ".names", f"bad syscall name {n!r}")
            rules.append((n, act, conds, sp))
    listener = listener_path(cfg)
    if notify and not listener:
        raise SpecError(p + ".listenerPath",
                        "required when a rule uses SCMP_ACT_NOTIFY")
    return default, arches, flags, rules, notify


def _encodable(path: str) -> bool:
    try:
        path.encode("utf-8", "surrogateescape")
        return True
    except UnicodeError:
        return False


def listener_path(cfg) -> str:
    """``linux.seccomp.listenerPath`` ("" if unset), checked: main connects
    to it before anything else of the section is looked at."""
    if not isinstance(cfg, dict):
        return ""
    path = cfg.get("listenerPath")
    if path is None or path == "":
        return ""
    if not isinstance(path, str) or "\0" in path or not _encodable(path):
        raise SpecError("linux.seccomp.listenerPath", f"{path!r} is not a socket path")
    md = cfg.get("listenerMetadata")
    if md is not None and not isinstance(md, str):
        raise SpecError("linux.seccomp.listenerMetadata", "must be a string")
    return path


def _rule_sets(conds):
    """runc's matchCall: all conditions in one rule (AND) unless an argument
    index repeats - then one rule per condition (libseccomp can't AND two
    conditions on one argument in 2.5)."""
    if not conds:
        return [[]]
    idxs = [c[0] for c in conds]
    if len(set(idxs)) != len(idxs):
        return [[c] for c in conds]
    return [conds]


#: compiled programs, by hash of the profile (crun keeps such a cache too):
#: a 3-architecture, 450-syscall profile costs ~20 ms to compile, ~0.2 ms to
#: read back.  Trusted only if root-owned and writable by root alone.
CACHE_DIR = "/run/kago-cache/seccomp"
CACHE_MAX = 256


_sha256 = None


def _hasher():
    """sha256, imported once - by :func:`preload` in main: the cache key is
    computed in init, after unshare(user), where the interpreter's modules may
    be out of reach (a 0700 home), so nothing may be imported there."""
    global _sha256
    if _sha256 is None:
        try:  # the C module: no hashlib/OpenSSL import on the create path
            from _sha256 import sha256  # 3.11 (often built in)
        except ImportError:
            try:
                from _sha2 import sha256  # 3.12+: lib-dynload
            except ImportError:
                from hashlib import sha256
        _sha256 = sha256
    return _sha256


def _cache_key(cfg) -> str:
    sha256 = _hasher()
    from kago import _json
    # only what shapes the program (not flags, not the listener)
    part = [cfg.get(k) for k in ("defaultAction", "defaultErrnoRet", "architectures",
                                 "syscalls")]
    h = sha256(_json.dumps(part).encode())
    h.update(f"|{version()}|{os.uname().machine}|2".encode())  # 2: + the ENOSYS stub
    return h.hexdigest()


def _trusted(st) -> bool:
    return st.st_uid == 0 and not st.st_mode & 0o022


def _cache_get(key):
    if not CACHE_DIR or os.geteuid() != 0:
        return None
    try:
        fd = os.open(os.path.join(CACHE_DIR, key), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not _trusted(os.fstat(fd)) or not _trusted(os.stat(CACHE_DIR)):
            return None
        data = b""
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            data += b
        return data if data and len(data) % 8 == 0 else None
    finally:
        os.close(fd)


def _cache_put(key, bpf):
    if not CACHE_DIR or os.geteuid() != 0:
        return
    try:
        os.makedirs(CACHE_DIR, 0o700, exist_ok=True)
        if not _trusted(os.stat(CACHE_DIR)):
            return
        tmp = os.path.join(CACHE_DIR, f".{key}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, bpf)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(CACHE_DIR, key))
        names = os.listdir(CACHE_DIR)
        if len(names) > CACHE_MAX:  # keep it bounded: drop the older half
            def mtime(n):
                try:
                    return os.stat(os.path.join(CACHE_DIR, n)).st_mtime
                except OSError:
                    return 0
            for n in sorted(names, key=mtime)[:len(names) // 2]:
                try:
                    os.unlink(os.path.join(CACHE_DIR, n))
                except OSError:
                    pass
    except OSError:
        pass  # a cache: never a reason to fail


def build(cfg: dict, warn=None, cache: bool = True) -> "Filter":
    """The BPF program for ``cfg`` (linux.seccomp), from the cache or
    compiled; connects to the agent at ``listenerPath`` if there is one."""
    default, arches, flags, rules, notify = parse(cfg)
    key = _cache_key(cfg) if cache else None
    bpf = _cache_get(key) if key else None
    if bpf is None:
        bpf = _compile(default, arches, rules, warn)
        if key:
            _cache_put(key, bpf)
    f = Filter(bpf, flags)
    listener = listener_path(cfg)
    if listener:
        f.listener_path = listener
        f.metadata = cfg.get("listenerMetadata") or ""
        f.connect()
    return f


def _compile(default, arches, rules, warn) -> bytes:
    """One libseccomp context per architecture, merged into one program.

    Engines send profiles with duplicate and overlapping rules (Debian 12's
    podman: two identical ``socket`` rules after a conditional one).  On an
    architecture that multiplexes socket calls (x86's socketcall) libseccomp
    can't express some of those conditions and answers EEXIST - and rolls the
    rule back on *every* architecture of the context.  Built per architecture,
    an EEXIST only means that this architecture's filter already decides that
    call (the first rule stands, as in libseccomp's own tree); the rule still
    applies everywhere else.  Any other error is the profile's."""
    h = lib()
    native = h.seccomp_arch_native()
    tokens = {native: "native"}
    for a in arches:
        tok = h.seccomp_arch_resolve_name(a.encode())
        if not tok:
            if warn:
                warn(f"seccomp: architecture {a} not supported by libseccomp, ignored")
            continue
        tokens.setdefault(tok, a)
    ctx = None
    try:
        for tok, name in tokens.items():
            c = _arch_context(h, default, tok, name, native, rules)
            if ctx is None:
                ctx = c
                continue
            r = h.seccomp_merge(ctx, c)  # frees c on success
            if r < 0:
                h.seccomp_release(c)
                raise SeccompError(f"seccomp: merge filters: {os.strerror(-r)}")
        return _enosys_stub(h, default, tokens, rules) + _export(h, ctx)
    finally:
        if ctx is not None:
            h.seccomp_release(ctx)


# ------------------------------------------------------------- -ENOSYS stub

#: libseccomp's x32 token is its own (AUDIT_ARCH_X86_64 without the 64-bit
#: flag); the kernel reports x32 calls as x86_64 with this bit in the number
_SCMP_ARCH_X32 = 0x4000003E
_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_BIT = 0x40000000
_S390 = (0x16, 0x80000016)       # AUDIT_ARCH_S390, AUDIT_ARCH_S390X
_ENOSYS = SCMP_ACT_ERRNO | _errno.ENOSYS


def _insn(code, k, jt=0, jf=0) -> bytes:
    return code.to_bytes(2, _sys.byteorder) + bytes((jt, jf)) + k.to_bytes(4, _sys.byteorder)


_LD_ABS, _JA, _JEQ, _JGT, _JSET, _RET = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06


def _enosys_stub(h, default, tokens, rules) -> bytes:
    """runc's patchbpf: before the filter, a syscall number above the highest
    one the profile names on that architecture gets -ENOSYS instead of the
    default action, so a libc newer than the profile (clone3, faccessat2, ...)
    falls back to the older call instead of failing with EPERM.  Only when
    the default refuses (errno other than ENOSYS, kill, trap): after an
    allow, log or trace default there is nothing to soften.

    Layout (all conditional jumps are local and short, every long way is a
    ``ja`` with its 32-bit offset)::

        ld [arch]; {jeq ARCH,0,1; ja SECTION}...; ja FILTER
        SECTION: ld [nr]; [s390: jeq 0 -> ENOSYS]; [x86_64: jset X32_BIT -> x32 part]
                 jgt MAX,0,1; ja ENOSYS; ja FILTER
        ENOSYS: ret ERRNO|ENOSYS
        FILTER: libseccomp's program (it loads the arch itself)
    """
    if default & 0xFFFF0000 in (SCMP_ACT_ALLOW, SCMP_ACT_LOG, SCMP_ACT_TRACE) \
            or default == _ENOSYS:
        return b""
    names = {r[0] for r in rules}
    # audit arch -> {None | "x32" | "x86_64": highest number the profile names}
    top = {}
    for tok in tokens:
        hi = -1
        for n in names:
            nr = h.seccomp_syscall_resolve_name_arch(tok, n.encode())
            if nr > hi:
                hi = nr
        if hi < 0:
            continue  # no syscall of the profile exists there (runc: a warning)
        if tok == _SCMP_ARCH_X32:
            top.setdefault(_AUDIT_ARCH_X86_64, {})["x32"] = hi
        elif tok == _AUDIT_ARCH_X86_64:
            top.setdefault(tok, {})["x86_64"] = hi
        else:
            top.setdefault(tok, {})[None] = hi
    if not top:
        return b""

    # assembled as lists of (code, k, jt, jf) with symbolic ja targets, then resolved
    prog = [("ld", 4)]
    sections = []
    for arch, parts in top.items():
        label = f"arch{arch}"
        prog += [(_JEQ, arch, 0, 1), ("ja", label)]
        body = [("label", label), ("ld", 0)]
        if arch in _S390:
            body += [(_JEQ, 0, 0, 1), ("ja", "enosys")]
        if arch == _AUDIT_ARCH_X86_64:
            body += [(_JSET, _X32_BIT, 0, 1), ("ja", "x32")]
            if "x86_64" in parts:
                body += [(_JGT, parts["x86_64"], 0, 1), ("ja", "enosys")]
            body += [("ja", "filter"), ("label", "x32")]
            if "x32" in parts:
                body += [(_JGT, parts["x32"], 0, 1), ("ja", "enosys")]
        else:
            body += [(_JGT, parts[None], 0, 1), ("ja", "enosys")]
        body.append(("ja", "filter"))
        sections += body
    prog.append(("ja", "filter"))
    prog += sections
    prog += [("label", "enosys"), (_RET, _ENOSYS, 0, 0), ("label", "filter")]

    labels, n = {}, 0
    for ins in prog:
        if ins[0] == "label":
            labels[ins[1]] = n
        else:
            n += 1
    out, pc = [], 0
    for ins in prog:
        if ins[0] == "label":
            continue
        pc += 1
        if ins[0] == "ld":
            out.append(_insn(_LD_ABS, ins[1]))
        elif ins[0] == "ja":
            out.append(_insn(_JA, labels[ins[1]] - pc))
        else:
            out.append(_insn(*ins))
    return b"".join(out)


def _arch_context(h, default, tok, arch, native, rules):
    ctx = h.seccomp_init(default)
    if not ctx:
        raise SeccompError("seccomp: seccomp_init failed")
    try:
        if tok != native:
            r = h.seccomp_arch_add(ctx, tok)
            if r >= 0:
                r = h.seccomp_arch_remove(ctx, native)
            if r < 0:
                raise SeccompError(f"seccomp: add architecture {arch}: {os.strerror(-r)}")
        resolved = {}
        for name, act, conds, path in rules:
            if act == default:
                continue  # redundant (and libseccomp refuses it), as runc
            nr = resolved.get(name)
            if nr is None:
                nr = resolved[name] = h.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:
                continue  # unknown to this libseccomp/kernel: runc ignores it
            for cs in _rule_sets(conds):
                arr = _arg_array(cs) if cs else None
                r = h.seccomp_rule_add_array(ctx, act, nr, len(cs), arr)
                if r < 0 and r != -_errno.EEXIST:
                    raise SpecError(path, f"seccomp rule for {name}: {os.strerror(-r)}")
        return ctx
    except BaseException:
        h.seccomp_release(ctx)
        raise


def _export(h, ctx) -> bytes:
    fd = os.memfd_create("kago-seccomp", os.MFD_CLOEXEC)
    try:
        r = h.seccomp_export_bpf(ctx, fd)
        if r < 0:
            raise SeccompError(f"seccomp: export filter: {os.strerror(-r)}")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


# --------------------------------------------------------------------- load

class Filter:
    """A compiled filter: BPF bytes + seccomp(2) flags (+ notify listener)."""

    def __init__(self, bpf: bytes, flags: int):
        self.bpf = bpf
        self.flags = flags
        self.listener_path = ""
        self.metadata = ""
        self.sock = None       # connected to listenerPath
        self.state = None      # OCI state sent with the listener fd
        self._pid_pipe = None
        self.loaded = False

    @property
    def notify(self) -> bool:
        """A seccomp agent gets the state and a listener fd (crun: whenever
        ``listenerPath`` is set, notify rules or not)."""
        return bool(self.listener_path)

    def connect(self):
        pre = _pre.pop(self.listener_path, None)
        if pre is not None:  # connected by main before the fork (see preconnect)
            self.sock = pre
            return
        import _socket
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            s.connect(self.listener_path)
        except OSError as e:
            s.close()
            why = (e.strerror or str(e) or "error").lower()
            raise SeccompError("failed to connect with seccomp agent specified in the "
                               f"seccomp profile: dial unix {self.listener_path}: "
                               f"connect: {why}", path=self.listener_path) from None
        self.sock = s

    # exec: the process state names the new process's host pid, which only
    # the forking parent (the intermediate) learns: it passes it down a pipe
    def want_pid(self):
        self._pid_pipe = os.pipe2(os.O_CLOEXEC)

    def tell_pid(self, pid: int):
        p = self._pid_pipe
        if p:
            os.write(p[1], str(pid).encode())

    def learn_pid(self):
        p = self._pid_pipe
        if p:
            os.close(p[1])
            pid = int(os.read(p[0], 32) or 0)
            os.close(p[0])
            self._pid_pipe = None
            if self.state is not None and pid:
                self.state = dict(self.state, pid=pid)

    def close(self):
        p = self._pid_pipe
        if p:
            for fd in p:
                os.close(fd)
            self._pid_pipe = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def load(self):
        """Install the filter in this process; send the listener if notify."""
        if self.loaded:
            return
        fd = install(self.bpf, self.flags | (FLAG_NEW_LISTENER if self.notify else 0))
        self.loaded = True
        if fd is not None and fd >= 0 and self.notify:
            try:
                send_listener(self.sock, fd, self.state or {}, self.metadata)
            finally:
                os.close(fd)
                self.close()


# listenerPath -> socket main connected before forking the container's init
_pre = {}


def preconnect(cfg):
    """In main, before the fork: connect to ``listenerPath`` as runc does -
    from the host's side, with the runtime's own credentials (a user-namespaced
    init may not be allowed to reach the socket).  Init's :func:`build` takes
    the connection over; main drops its copy with :func:`release_preconnected`
    once it has forked."""
    release_preconnected()
    path = listener_path(cfg)
    if not path:
        return
    f = Filter(b"", 0)
    f.listener_path = path
    f.connect()
    _pre[f.listener_path] = f.sock


def release_preconnected():
    for s in _pre.values():
        s.close()
    _pre.clear()


def _nr_seccomp():
    m = os.uname().machine
    if m not in _NR_SECCOMP:
        raise SeccompError(f"seccomp: unsupported machine {m}")
    return _NR_SECCOMP[m]


def install(bpf: bytes, flags: int):
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, prog); returns the listener fd
    with FLAG_NEW_LISTENER, else None."""
    from kago import _ffi as ctypes
    from kago import sys as ksys
    if flags & FLAG_NEW_LISTENER and flags & FLAGS["SECCOMP_FILTER_FLAG_TSYNC"]:
        flags |= FLAG_TSYNC_ESRCH  # TSYNC and NEW_LISTENER are exclusive otherwise

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
    prog = Prog(len(bpf) // 8, bpf)
    r = ksys.libc().syscall(_nr_seccomp(), SECCOMP_SET_MODE_FILTER, ctypes.c_uint(flags),
                            ctypes.byref(prog))
    if r < 0:
        e = ctypes.get_errno()
        hint = ""
        if e == _errno.EACCES:
            hint = "no CAP_SYS_ADMIN and noNewPrivileges not set"
        elif e == _errno.EINVAL:
            hint = f"flags {flags:#x} not supported by this kernel?"
        raise SyscallError(e, "seccomp", None, hint)
    return r if flags & FLAG_NEW_LISTENER else None


def send_listener(sock, fd: int, state: dict, metadata: str):
    """runtime-spec ContainerProcessState + the listener fd (SCM_RIGHTS)."""
    import _socket
    from kago import _json
    msg = {"ociVersion": state.get("ociVersion", "1.2.0"), "fds": ["seccompFd"],
           "pid": state.get("pid", 0), "metadata": metadata, "state": state}
    data = _json.dumps(msg).encode()
    rights = fd.to_bytes(4, _sys.byteorder)
    try:
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    except OSError as e:
        raise SyscallError(e.errno, "send seccomp listener", None,
                           "linux.seccomp.listenerPath") from None


def action_available(name: str) -> bool:
    """Does the kernel know this action (SECCOMP_GET_ACTION_AVAIL)?"""
    from kago import _ffi as ctypes
    from kago import sys as ksys
    act = ctypes.c_uint32(ACTIONS[name] & 0xFFFF0000)
    return ksys.libc().syscall(_nr_seccomp(), SECCOMP_GET_ACTION_AVAIL, 0,
                               ctypes.byref(act)) == 0


def preload(cfg=None):
    """Imports build() and Filter.load() need in the container process (after
    unshare(user), after pivot_root); with ``cfg``, kago.log too if build()
    will warn (an architecture this libseccomp lacks)."""
    _hasher()
    if version() and isinstance(cfg, dict):
        for a in cfg.get("architectures") or ():
            if a in ARCHES and not lib().seccomp_arch_resolve_name(ARCHES[a].encode()):
                from kago import log  # noqa: F401
                break
    import _socket  # noqa: F401
    from kago import _ffi as ctypes  # noqa: F401
    from kago import _json  # noqa: F401
    from kago import sys as ksys
    ksys.libc()
