"""Waiting for processes that need not be our children: pidfds.

A pidfd (pidfd_open(2), Linux 5.3+) polls readable once its process has
exited, whoever its parent is, so a verb that SIGKILLed processes wakes
exactly when they are gone instead of sleeping and looking again.  Small on
purpose: ``delete`` imports it (and nothing of the fork chain).
"""

from kago import _os as os   # not os: see kago/_os.py
import select
import time


def open_pidfds(pids) -> dict:
    """{pidfd: pid} for those of ``pids`` that still exist."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass
    return fds


def wait_fds(fds: dict, timeout=None) -> bool:
    """Wait until every pidfd of ``fds`` is readable (its process exited), at
    most ``timeout`` seconds (None: no limit); closes them.  True if all did."""
    try:
        p = select.poll()
        for fd in fds:
            p.register(fd, select.POLLIN)
        left = len(fds)
        deadline = None if timeout is None else time.monotonic() + timeout
        while left:
            ms = None if deadline is None else max(0.0, deadline - time.monotonic()) * 1000
            ready = p.poll(ms)
            if not ready:
                return False
            for fd, _ in ready:
                p.unregister(fd)
                left -= 1
        return True
    finally:
        for fd in fds:
            os.close(fd)


def wait_gone(pid, timeout=None) -> bool:
    """Wait until ``pid`` has exited (a child or not); reap it if it happens to
    be our child (``run``: we are its subreaper).  True if it is gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        r, _, _ = select.select([fd], [], [], timeout)
        if r:
            try:
                os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
            except (ChildProcessError, OSError):
                pass
        return bool(r)
    finally:
        os.close(fd)
