"""The thin syscall layer: ctypes over libc, failures as :class:`SyscallError`.

libc is loaded lazily, once, with ``use_errno=True``.  Tests may replace it
with :func:`set_libc` (a recording double).  Only what Python 3.11's ``os``
lacks lives here: unshare, setns, mount/umount2, pivot_root, mount_setattr,
open_tree, move_mount, prctl, setdomainname, close_range, personality, keyctl.
"""

from kago import _os as os

from kago.errors import SyscallError

# namespaces (linux/sched.h)
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_IVERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

# mount_setattr(2)
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_SYMLINK_NOFOLLOW = 0x100
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40

# prctl
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

CLOSE_RANGE_CLOEXEC = 4

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_ARCH_NR = {
    # name: (x86_64, aarch64)
    "pivot_root": (155, 41),
    "keyctl": (250, 219),
    "personality": (135, 92),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "close_range": (436, 436),
    "openat2": (437, 437),
    "mount_setattr": (442, 442),
    "capget": (125, 90),
    "capset": (126, 91),
    "ioprio_set": (251, 30),
}

_libc = None
_nr_index = 1 if os.uname().machine in ("aarch64", "arm64") else 0


def set_libc(lib):
    """Inject a libc double (tests).  ``None`` restores lazy loading."""
    global _libc
    _libc = lib


def libc():
    global _libc
    if _libc is None:
        from kago import _ffi as ctypes
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    return _libc


def _err(call, path=None, detail=""):
    from kago import _ffi as ctypes
    e = ctypes.get_errno()
    return SyscallError(e, call, path, detail)


def _b(s):
    if s is None:
        return None
    return s.encode() if isinstance(s, str) else s


def _syscall(name, *args):
    return libc().syscall(_ARCH_NR[name][_nr_index], *args)


def unshare(flags: int):
    if libc().unshare(flags) != 0:
        raise _err("unshare", detail=hex(flags))


def setns(fd: int, nstype: int = 0, path: str | None = None):
    if libc().setns(fd, nstype) != 0:
        raise _err("setns", path)


def mount(source, target, fstype, flags=0, data=None):
    if libc().mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        detail = f"type={fstype}" if fstype else ""
        raise _err("mount", target if isinstance(target, str) else str(target), detail)


def umount2(target, flags=0):
    if libc().umount2(_b(target), flags) != 0:
        raise _err("umount2", target)


def pivot_root(new_root, put_old):
    if _syscall("pivot_root", _b(new_root), _b(put_old)) != 0:
        raise _err("pivot_root", new_root)


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    from kago import _ffi as ctypes
    r = libc().prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                     ctypes.c_ulong(arg4), ctypes.c_ulong(arg5))
    if r < 0:
        raise _err("prctl", detail=str(option))
    return r


def sethostname(name: str):
    b = name.encode()
    if libc().sethostname(b, len(b)) != 0:
        raise _err("sethostname", detail=name)


def setdomainname(name: str):
    b = name.encode()
    if libc().setdomainname(b, len(b)) != 0:
        raise _err("setdomainname", detail=name)


def close_range_cloexec(first: int):
    """Mark every fd >= first close-on-exec."""
    from kago import _ffi as ctypes
    if _syscall("close_range", ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF),
                ctypes.c_uint(CLOSE_RANGE_CLOEXEC)) != 0:
        # older kernels: walk /proc/self/fd
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd >= first:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass


def keyctl_join_session_keyring(name: str | None):
    from kago import _ffi as ctypes
    KEYCTL_JOIN_SESSION_KEYRING = 1
    arg = ctypes.c_char_p(_b(name)) if name else ctypes.c_char_p(None)
    if _syscall("keyctl", KEYCTL_JOIN_SESSION_KEYRING, arg) < 0:
        raise _err("keyctl", detail="join session keyring")


_structs = {}


def _struct(name, fields):
    """A ctypes Structure type, made once (building a class costs ~20 us:
    per call it was a third of the rootfs setup's cpu)."""
    t = _structs.get(name)
    if t is None:
        from kago import _ffi as ctypes
        t = _structs[name] = type(name, (ctypes.Structure,), {
            "_fields_": [(f, ctypes.c_uint64) for f in fields]})
    return t


def _mount_attr(attr_set, attr_clr, propagation, userns_fd=0):
    t = _struct("MountAttr", ("attr_set", "attr_clr", "propagation", "userns_fd"))
    return t(attr_set, attr_clr, propagation, userns_fd)


def mount_setattr(dfd: int, path: str, flags: int, attr_set=0, attr_clr=0,
                  propagation=0, userns_fd=0):
    """``userns_fd``: the user namespace of MOUNT_ATTR_IDMAP (in ``attr_set``)."""
    from kago import _ffi as ctypes
    attr = _mount_attr(attr_set, attr_clr, propagation, userns_fd)
    if _syscall("mount_setattr", dfd, _b(path), ctypes.c_uint(flags),
                ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))) != 0:
        raise _err("mount_setattr", path)


def open_tree(dfd: int, path: str, flags: int) -> int:
    from kago import _ffi as ctypes
    fd = _syscall("open_tree", dfd, _b(path), ctypes.c_uint(flags))
    if fd < 0:
        raise _err("open_tree", path)
    return fd


def move_mount(from_dfd, from_path, to_dfd, to_path, flags):
    from kago import _ffi as ctypes
    if _syscall("move_mount", from_dfd, _b(from_path), to_dfd, _b(to_path),
                ctypes.c_uint(flags)) != 0:
        raise _err("move_mount", to_path)


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    from kago import _ffi as ctypes
    how = _struct("OpenHow", ("flags", "mode", "resolve"))(flags | os.O_CLOEXEC, mode,
                                                         resolve)
    fd = _syscall("openat2", dirfd, _b(path), ctypes.byref(how),
                  ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        raise _err("openat2", path)
    return fd


def setrlimit(resource: int, soft: int, hard: int, detail: str = ""):
    """setrlimit(2) (``resource``'s own module is a shared object to load)."""
    from kago import _ffi as ctypes
    lim = _struct("Rlimit", ("cur", "max"))(soft & 0xFFFFFFFFFFFFFFFF,
                                            hard & 0xFFFFFFFFFFFFFFFF)
    if libc().setrlimit(resource, ctypes.byref(lim)) != 0:
        raise _err("setrlimit", detail=detail)


def personality(persona: int) -> int:
    r = _syscall("personality", persona)
    if r < 0:
        raise _err("personality")
    return r
