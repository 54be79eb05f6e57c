"""The caller's fds that ``--preserve-fds N`` / ``LISTEN_FDS`` hand on.

Of 3 .. 3+N-1 only the ones open in the caller are passed, as crun does: a
closed one is skipped, not an error.  Which ones those are is decided once,
before kago opens anything of its own - its lock, channel sockets, exec.fifo,
the seccomp agent's socket or a log file would otherwise take the lowest free
numbers, i.e. exactly the closed slots, and reach the container as
"preserved" (runc 1.1 leaks its /sys/fs/cgroup fd that way).  The CLI takes
the snapshot right after parsing the command line (:func:`snapshot`);
``create``/``exec`` take it over (:func:`take`), or make it themselves
when called as a library."""

from kago import _os as os

_snap = None


def open_fds() -> list:
    """Every fd >= 3 open in this process now, sorted."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = None
    if names is None:                       # no /proc: probe (bounded)
        try:
            top = os.sysconf("SC_OPEN_MAX")
        except (OSError, ValueError):
            top = 1024
        cand = range(3, min(max(top, 3), 1 << 16))
    else:
        cand = sorted(int(n) for n in names if n.isdigit() and int(n) >= 3)
    out = []
    for fd in cand:
        try:
            os.fstat(fd)       # (listdir's own fd is in the listing, closed by now)
        except OSError:
            continue
        out.append(fd)
    return out


def snapshot():
    """The CLI, before anything of kago's is open: remember the caller's fds."""
    global _snap
    _snap = open_fds()


def forget():
    global _snap
    _snap = None


def take() -> list:
    """The caller's open fds: the CLI's snapshot (once), else now."""
    global _snap
    fds, _snap = _snap, None
    return open_fds() if fds is None else fds


def listen_fds() -> int:
    """$LISTEN_FDS (systemd socket activation) as a count; 0 if unset or bad."""
    v = os.getenv("LISTEN_FDS")
    return int(v) if v and v.isdigit() and int(v) > 0 else 0


def preserved(open_fds_, count: int) -> tuple:
    """Of fds 3 .. 3+count-1, the ones open in the caller."""
    return tuple(fd for fd in open_fds_ if 3 <= fd < 3 + count)
