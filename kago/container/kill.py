"""kill: a signal to init, or with ``all`` to every process in the cgroup."""

from kago import _os as os   # not os: see kago/_os.py


def kill(c, signal="SIGTERM", all=False):
    from kago.signals import parse_signal
    sig = parse_signal(signal)
    if all:
        cg = c._cgroup()
        cg.signal_all(sig)
        if sig == 9 and cg.frozen():  # v1: frozen tasks die only once thawed
            cg.thaw()
        return
    status = c.status
    if status == "stopped":
        from kago.errors import KagoError
        raise KagoError("container not running")
    try:
        os.kill(c._data["pid"], sig)
    except ProcessLookupError:
        from kago.errors import KagoError
        raise KagoError("container not running") from None
    if sig == 9 and status == "paused":  # as runc: thaw so SIGKILL lands
        c._cgroup().thaw()
