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
    import fcntl
    import socket
    import struct
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    finally:
        s.close()
