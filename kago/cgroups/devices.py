"""Device access: ``linux.resources.devices`` rules.

The rules a container gets are the spec's, then runc's default allow list
(mknod of anything; null, zero, full, random, urandom, tty, ptmx, pts, tun):
:func:`rules_for`.  As in runc, a ``linux.devices`` entry gets no rule of its
own: the spec must allow it.

v1: written in order to ``devices.deny`` / ``devices.allow``.
v2: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) built from the rules, last
matching rule wins, loaded and attached to the cgroup with bpf(2).
"""

from kago import _os as os
import _struct as struct

from kago.cgroups.fs import write
from kago.errors import CgroupError

DEFAULT_ALLOW = [
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},    # null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},    # random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},    # full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},    # tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},    # zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},    # urandom
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},  # pts
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},    # ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # tun
]


def rules_for(linux: dict) -> list:
    """The device rules for a container with this ``linux`` section ([] if
    the spec restricts nothing: the cgroup's default is allow-all)."""
    spec_rules = ((linux.get("resources") or {}).get("devices")) or []
    if not spec_rules:
        return []
    return [dict(r) for r in spec_rules] + [dict(r) for r in DEFAULT_ALLOW]


def _num(v):
    return "*" if v is None or v < 0 else str(v)


def v1_line(r) -> str:
    t = r.get("type") or "a"
    if t == "a":
        return "a"
    return f"{t} {_num(r.get('major'))}:{_num(r.get('minor'))} {r.get('access') or 'rwm'}"


def v1_apply(d, rules):
    for i, r in enumerate(rules):
        name = "devices.allow" if r.get("allow") else "devices.deny"
        write(d, name, v1_line(r), f"devices[{i}]")


# ---------------------------------------------------------------- v2: eBPF
_ACC = {"m": 1, "r": 2, "w": 4}     # BPF_DEVCG_ACC_*
_TYPE = {"b": 1, "c": 2}            # BPF_DEVCG_DEV_*


def _insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _ldxw(dst, src, off):
    return _insn(0x61, dst, src, off)


def _and(dst, imm):
    return _insn(0x57, dst, 0, 0, imm)


def _rsh(dst, imm):
    return _insn(0x77, dst, 0, 0, imm)


def _movx(dst, src):
    return _insn(0xbf, dst, src)


def _movk(dst, imm):
    return _insn(0xb7, dst, 0, 0, imm)


def _jnek(dst, imm, off):
    return _insn(0x55, dst, 0, off, imm)


_EXIT = _insn(0x95)


def v2_program(rules) -> bytes:
    """The device filter for ``rules``: the last matching rule decides;
    none matching: allow unless a rule denied everything."""
    insns = [_ldxw(2, 1, 0), _and(2, 0xFFFF),      # r2 = device type
             _ldxw(3, 1, 0), _rsh(3, 16),          # r3 = access wanted
             _ldxw(4, 1, 4), _ldxw(5, 1, 8)]       # r4 = major, r5 = minor
    terminal = False
    for r in reversed(rules):
        t = r.get("type") or "a"
        acc = 0
        for ch in r.get("access") or "rwm":
            if ch not in _ACC:
                raise CgroupError(f"linux.resources.devices: bad access {r.get('access')!r}")
            acc |= _ACC[ch]
        checks = []   # instructions; a callable is a jump to the block's end
        if t in _TYPE:
            checks.append([lambda off, v=_TYPE[t]: _jnek(2, v, off)])
        if acc != 7:
            checks.append([_movx(1, 3), _and(1, ~acc & 7),
                           lambda off: _jnek(1, 0, off)])
        if t != "a" and r.get("major") is not None and r["major"] >= 0:
            checks.append([lambda off, v=r["major"]: _jnek(4, v, off)])
        if t != "a" and r.get("minor") is not None and r["minor"] >= 0:
            checks.append([lambda off, v=r["minor"]: _jnek(5, v, off)])
        flat = [x for c in checks for x in c]
        n = len(flat) + 2
        block = []
        for i, x in enumerate(flat):
            block.append(x(n - i - 1) if callable(x) else x)
        block += [_movk(0, 1 if r.get("allow") else 0), _EXIT]
        insns += block
        if not checks:      # matches everything: nothing after it is reachable
            terminal = True
            break
    if not terminal:
        insns += [_movk(0, 1), _EXIT]
    return b"".join(insns)


_BPF_PROG_LOAD, _BPF_PROG_ATTACH = 5, 8
_PROG_TYPE_CGROUP_DEVICE, _ATTACH_CGROUP_DEVICE = 15, 6
_F_ALLOW_MULTI = 2
_NR_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351,
           "riscv64": 280}


def _bpf(cmd, attr: bytes, what):
    from kago import _ffi as ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    nr = _NR_BPF.get(os.uname().machine)
    if nr is None:
        raise CgroupError(f"devices: bpf(2) syscall number unknown on {os.uname().machine}")
    buf = ctypes.create_string_buffer(attr, 128)
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), buf, ctypes.c_uint(128))
    if rc < 0:
        e = ctypes.get_errno()
        raise CgroupError(f"linux.resources.devices: bpf({what}): {os.strerror(e)}")
    return rc, buf


def v2_apply(d, rules):
    """Load the filter for ``rules`` and attach it to cgroup ``d``."""
    from kago import _ffi as ctypes
    prog = v2_program(rules)
    insns = ctypes.create_string_buffer(prog, len(prog))
    lic = ctypes.create_string_buffer(b"Apache\0")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQII16sII", _PROG_TYPE_CGROUP_DEVICE, len(prog) // 8,
                       ctypes.addressof(insns), ctypes.addressof(lic),
                       1, len(log), ctypes.addressof(log), 0, 0, b"kago_devices",
                       0, _ATTACH_CGROUP_DEVICE)
    try:
        pfd, _ = _bpf(_BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")
    except CgroupError as e:
        msg = log.value.decode(errors="replace").strip().splitlines()
        if msg:
            e.message += f" (verifier: {msg[-1]})"
        raise
    try:
        cfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _bpf(_BPF_PROG_ATTACH,
                 struct.pack("<IIIII", cfd, pfd, _ATTACH_CGROUP_DEVICE, _F_ALLOW_MULTI, 0),
                 f"BPF_PROG_ATTACH {d}")
        finally:
            os.close(cfd)
    finally:
        os.close(pfd)
