"""Namespace names <-> clone flags, and helpers to read a spec's namespaces."""

from kago import sys as ksys

FLAGS = {
    "pid": ksys.CLONE_NEWPID,
    "network": ksys.CLONE_NEWNET,
    "mount": ksys.CLONE_NEWNS,
    "ipc": ksys.CLONE_NEWIPC,
    "uts": ksys.CLONE_NEWUTS,
    "user": ksys.CLONE_NEWUSER,
    "cgroup": ksys.CLONE_NEWCGROUP,
    "time": ksys.CLONE_NEWTIME,
}

# the name of each namespace under /proc/<pid>/ns/
PROC_NAMES = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
    "user": "user", "cgroup": "cgroup", "time": "time",
}


def lo_up():
    """Bring the loopback interface up in a new network namespace."""
    import _socket
    import fcntl
    import _struct as struct
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()
