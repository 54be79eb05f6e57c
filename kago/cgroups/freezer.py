"""The freezer: v1 ``freezer.state``, v2 ``cgroup.freeze`` + ``cgroup.events``.

Freezing is invisible to the processes (no SIGSTOP: a frozen task sees no
signal and, once thawed, carries on).  Both versions freeze asynchronously,
so freeze() waits until the kernel reports the cgroup frozen; v1 may stay
FREEZING while a task sits in an uninterruptible sleep, so the write is
repeated (as runc does) and after a while the freeze is undone and reported.
"""

from kago import _os as os   # not os: see kago/_os.py
import select
import time

from kago.cgroups.fs import _error, read, write

TIMEOUT = 10.0


def v1_freeze(d, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        write(d, "freezer.state", "FROZEN")
        state = read(d, "freezer.state")
        if state == "FROZEN":
            return
        if time.monotonic() > deadline:
            v1_thaw(d)
            raise _error(f"freeze {d}: still {state} after {timeout:g}s "
                         "(a task in an uninterruptible sleep?)", d)
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def v1_thaw(d):
    write(d, "freezer.state", "THAWED")
    # THAWED is immediate, but read back so an error shows
    deadline = time.monotonic() + TIMEOUT
    while read(d, "freezer.state") != "THAWED":
        if time.monotonic() > deadline:
            raise _error(f"thaw {d}: still {read(d, 'freezer.state')}", d)
        time.sleep(0.001)


def _v2_frozen(d) -> bool:
    for line in read(d, "cgroup.events").splitlines():
        k, _, v = line.partition(" ")
        if k == "frozen":
            return v == "1"
    return False


def v2_set(d, frozen: bool, timeout=TIMEOUT):
    """Write cgroup.freeze and wait on cgroup.events (it is pollable: a change
    wakes POLLPRI) until ``frozen N`` says so."""
    if not os.path.exists(os.path.join(d, "cgroup.freeze")):
        raise _error(f"{d}/cgroup.freeze does not exist: the kernel has no "
                     "cgroup v2 freezer (5.2+)", d)
    write(d, "cgroup.freeze", "1" if frozen else "0")
    fd = os.open(os.path.join(d, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
    try:
        p = select.poll()
        p.register(fd, select.POLLPRI | select.POLLERR)
        deadline = time.monotonic() + timeout
        while _v2_frozen(d) != frozen:
            left = deadline - time.monotonic()
            if left <= 0:
                if frozen:
                    write(d, "cgroup.freeze", "0")
                raise _error(f"{'freeze' if frozen else 'thaw'} {d}: cgroup.events "
                             f"not updated after {timeout:g}s", d)
            p.poll(min(left, 0.05) * 1000)
    finally:
        os.close(fd)
