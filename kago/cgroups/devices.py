"""Device access: ``linux.resources.devices`` rules.

The rules a container gets are deny-all, the spec's, then runc's default
allow list (mknod of anything; null, zero, full, random, urandom, tty, ptmx,
pts, tun): :func:`rules_for` - with or without rules in the spec, as runc.
As in runc, a ``linux.devices`` entry gets no rule of its
own: the spec must allow it.

Every rule is checked once at the edge (kago.spec's validator: config.json
at create, ``update -r`` before the lock): a type of ``a``, ``b`` or
``c``, numbers that fit the kernel's u32, an access made only of ``r``, ``w``
and ``m`` - nothing else ever reaches devices.allow/deny.

v1 (:func:`v1_apply`, create and update alike): runc's devices emulator.  The
cgroup's current rules are read from ``devices.list``, the target's computed
from the rules (a list starts as deny-all, as runc's), and only the
difference is written: rules dropped, then rules gained.  A deny-all (or
allow-all) is written only when the default changes or the current cgroup
is allow-all (whose deny exceptions devices.list can't show): an update of a
running container never takes /dev/null away for a moment.  devices.list is
read again afterwards and must match.
v2: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) built from the rules, last
matching rule wins, loaded and attached to the cgroup with bpf(2) at create
(``update`` leaves it, as runc's update leaves devices).
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


DENY_ALL = {"allow": False, "type": "a", "major": None, "minor": None, "access": "rwm"}


def rules_for(linux: dict) -> list:
    """The device rules for a container with this ``linux`` section: deny
    all, the spec's, then runc's default allow list - also when the spec
    names none (runc: a container never gets the host's devices by default;
    an allow-all rule of the spec, as a privileged engine sends, still wins)."""
    spec_rules = ((linux.get("resources") or {}).get("devices")) or []
    return [dict(DENY_ALL)] + [dict(r) for r in spec_rules] + \
        [dict(r) for r in DEFAULT_ALLOW]


def _num(v):
    return "*" if v is None or v < 0 else str(v)


def v1_line(r) -> str:
    t = r.get("type") or "a"
    if t == "a":
        return "a"
    return f"{t} {_num(r.get('major'))}:{_num(r.get('minor'))} {r.get('access') or 'rwm'}"


_PERM = {"r": 1, "w": 2, "m": 4}


def _perms(bits) -> str:
    return "".join(ch for ch, b in _PERM.items() if bits & b)


def _bits(access) -> int:
    out = 0
    for ch in access or "rwm":
        out |= _PERM[ch]
    return out


def _line(t, major, minor, bits) -> str:
    return f"{t} {_num(major)}:{_num(minor)} {_perms(bits)}"


class _Emulator:
    """A v1 devices cgroup as the kernel keeps it: a default (``allow``:
    allow-all with deny exceptions, or deny-all with allow exceptions) and
    the exceptions, (type, major, minor) -> access bits; -1 is ``*``."""

    def __init__(self, allow=False):
        self.allow = allow
        self.rules = {}

    def __eq__(self, other):
        return self.allow == other.allow and self.rules == other.rules

    def apply(self, allow, t, major, minor, bits):
        """One rule written to devices.allow (``allow``) or devices.deny."""
        if t == "a":                     # resets: a new default, no exceptions
            self.allow = allow
            self.rules = {}
            return
        key = (t, major, minor)
        if allow != self.allow:          # an exception of the default: add to it
            self.rules[key] = self.rules.get(key, 0) | bits
            return
        # take (part of) an exception away; a wildcard exception can't lose a
        # part (the kernel ignores such a write without a word: refuse it)
        for wild in ((t, -1, minor), (t, major, -1), (t, -1, -1)):
            if wild != key and self.rules.get(wild, 0) & bits:
                from kago.errors import CgroupError
                raise CgroupError(
                    f"linux.resources.devices: {'allowing' if allow else 'denying'} "
                    f"{_line(t, major, minor, bits)} is not possible with cgroup v1: "
                    f"it can't punch a hole in the rule {_line(*wild, self.rules[wild])}")
        left = self.rules.get(key, 0) & ~bits
        if left:
            self.rules[key] = left
        else:
            self.rules.pop(key, None)

    @classmethod
    def from_rules(cls, rules):
        emu = cls(allow=False)           # a list starts as deny-all (runc)
        for r in rules:
            t = r.get("type") or "a"
            major, minor = r.get("major"), r.get("minor")
            emu.apply(bool(r.get("allow")), t, -1 if major is None or major < 0 else major,
                      -1 if minor is None or minor < 0 else minor, _bits(r.get("access")))
        return emu

    @classmethod
    def from_list(cls, text, path):
        """devices.list: the allowed exceptions, or ``a *:* rwm`` for allow-all."""
        emu = cls(allow=False)
        for line in text.splitlines():
            f = line.split()
            try:
                t, (major, minor), acc = f[0], f[1].split(":"), f[2]
                if t not in ("a", "b", "c") or len(f) != 3 or not acc \
                        or any(ch not in _PERM for ch in acc):
                    raise ValueError
                major = -1 if major == "*" else int(major)
                minor = -1 if minor == "*" else int(minor)
            except (ValueError, IndexError):
                from kago.errors import CgroupError
                raise CgroupError(f"{path}: unexpected line {line!r}", path) from None
            emu.apply(True, t, major, minor, _bits(acc))
        return emu

    def transition(self, target) -> list:
        """The fewest (allow, line) writes that make this cgroup ``target``
        (runc's Emulator.Transition)."""
        out = []
        old = self.rules
        # an allow-all cgroup hides its deny exceptions: start it afresh too
        if self.allow or self.allow != target.allow:
            out.append((target.allow, "a *:* rwm"))
            old = {}

        def order(key):       # runc's order: major, minor, type (wildcards first)
            return (key[1], key[2], key[0])
        for key in sorted(old, key=order):
            dropped = old[key] & ~target.rules.get(key, 0)
            if dropped:
                out.append((target.allow, _line(*key, dropped)))
        for key in sorted(target.rules, key=order):
            gained = target.rules[key] & ~old.get(key, 0)
            if gained:
                out.append((not target.allow, _line(*key, gained)))
        return out


def _read_list(d):
    path = os.path.join(d, "devices.list")
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise CgroupError(f"linux.resources.devices: read {path}: {e.strerror}", path) \
            from None


def v1_apply(d, rules):
    """Make cgroup ``d``'s devices ``rules`` (already through
    the spec's validator) with the fewest writes; returns the lines written."""
    from kago import _debug
    path = os.path.join(d, "devices.list")
    target = _Emulator.from_rules(rules)
    current = _Emulator.from_list(_read_list(d), path)
    writes = current.transition(target)
    for allow, line in writes:
        write(d, "devices.allow" if allow else "devices.deny", line, "devices")
    _debug("devices cgroup rules written", path=d,
           rules=" ; ".join(("allow " if a else "deny ") + ln for a, ln in writes) or "none")
    after = _Emulator.from_list(_read_list(d), path)
    if after.allow != target.allow or (not target.allow and after != target):
        raise CgroupError(f"linux.resources.devices: {path} does not match the rules "
                          "after writing them", path)
    return writes


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
