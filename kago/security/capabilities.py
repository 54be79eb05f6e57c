"""Capabilities: the five sets, applied in runc's order across the uid change.

    drop_bounding(caps)   # needs CAP_SETPCAP: before the uid change
    keep_caps(True); setresuid(...); keep_caps(False)
    apply(caps)           # effective/permitted/inheritable via capset, then ambient
"""

from kago import _os as os

from kago import sys as ksys

CAPS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAPS.values())


def number(name):
    """The capability's number ("CAP_KILL", "kill", ...), or None if unknown."""
    n = name.upper()
    return CAPS.get(n if n.startswith("CAP_") else "CAP_" + n)


def to_mask(names, warn=None) -> int:
    mask = 0
    for n in names or ():
        v = number(n)
        if v is None:
            if warn:
                warn(f"unknown capability {n!r} ignored")
            continue
        mask |= 1 << v
    return mask


def unknown(spec_caps) -> list:
    """The names in ``spec_caps``' sets that this kernel can't grant: unknown to
    kago, or above /proc/sys/kernel/cap_last_cap (each once, in spec order)."""
    last = last_cap()
    out = []
    for s in SETS:
        for n in (spec_caps or {}).get(s) or ():
            v = number(n)
            if (v is None or v > last) and n not in out:
                out.append(n)
    return out


class Caps:
    """The five masks of a process spec's ``capabilities`` (None = leave as is)."""

    def __init__(self, spec_caps, warn=None):
        self.present = spec_caps is not None
        sc = spec_caps or {}
        self.masks = {s: to_mask(sc.get(s), warn) for s in SETS}
        last = last_cap()
        self.known = (1 << (last + 1)) - 1
        for s in SETS:
            self.masks[s] &= self.known


def drop_bounding(caps: Caps):
    if not caps.present:
        return
    keep = caps.masks["bounding"]
    for c in range(last_cap() + 1):
        if not keep & (1 << c):
            ksys.prctl(ksys.PR_CAPBSET_DROP, c)


def keep_caps(on: bool):
    ksys.prctl(ksys.PR_SET_KEEPCAPS, 1 if on else 0)


def capset(effective: int, permitted: int, inheritable: int):
    from kago import _ffi as ctypes

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]
    hdr = Header(0x20080522, 0)
    data = (Data * 2)()
    for i in range(2):
        sh = 32 * i
        data[i].effective = (effective >> sh) & 0xFFFFFFFF
        data[i].permitted = (permitted >> sh) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> sh) & 0xFFFFFFFF
    if ksys._syscall("capset", ctypes.byref(hdr), ctypes.byref(data)) != 0:
        raise ksys._err("capset")


def apply(caps: Caps):
    """Set effective/permitted/inheritable, then the ambient set."""
    if not caps.present:
        return
    m = caps.masks
    capset(m["effective"], m["permitted"], m["inheritable"])
    ksys.prctl(ksys.PR_CAP_AMBIENT, ksys.PR_CAP_AMBIENT_CLEAR_ALL, 0)
    amb = m["ambient"]
    c = 0
    while amb:
        if amb & 1:
            try:
                ksys.prctl(ksys.PR_CAP_AMBIENT, ksys.PR_CAP_AMBIENT_RAISE, c)
            except OSError:
                # not in permitted+inheritable: runc warns and goes on
                pass
        amb >>= 1
        c += 1


def _ensure_ctypes():
    from kago import _ffi as ctypes  # noqa: F401  (imported before pivot_root)
    os.getpid()
