"""run (foreground): wait for init, forwarding signals to it."""

from kago import _debug, _os as os
import _signal

from kago.errors import KagoError

FORWARD = (1, 2, 3, 10, 12, 13, 14, 15, 28) + tuple(range(34, 65))


def wait(c) -> int:
    if not c._child:
        raise KagoError("wait: this process is not the container's reaper "
                        "(only a foreground run can wait)")
    rc = wait_pid(c._data["pid"], c._pty_master)
    _debug("container exited", pid=c._data["pid"], status=rc)
    return rc


def wait_pid(pid: int, pty_master=None) -> int:
    """Wait for our (reaped-by-us) child ``pid``, forwarding signals to it and
    relaying ``pty_master`` to our stdio if given."""

    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    old = {}
    for s in FORWARD:
        try:
            old[s] = _signal.signal(s, forward)
        except (OSError, ValueError):
            pass
    # whatever arrived while the signals were held (exec, run) is forwarded now
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, FORWARD)
    try:
        if pty_master is not None:
            from kago.tty import relay
            try:
                relay(pty_master)
            finally:
                os.close(pty_master)
        try:
            # only our container's process: a library caller's other children
            # keep their exit statuses
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 255
    finally:
        for s, h in old.items():
            try:
                _signal.signal(s, h)
            except (OSError, ValueError, TypeError):
                pass
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
