"""kill: a signal to init, or with ``all`` to every process of the container's cgroup."""

from kago import _os as os   # not os: see kago/_os.py


def kill(c, signal="SIGTERM", all=False):
    from kago.signals import parse_signal
    sig = parse_signal(signal)
    if all:
        cg = c._cgroup()
        cfg = c.config()
        if cg.driver == "none":         # rootless, no cgroup: init's pid namespace
            for p in c.processes():
                try:
                    os.kill(p, sig)
                except OSError:
                    pass
            return
        if cfg.get("cgroup_made", True) or not _own_pidns(cfg):
            cg.signal_all(sig)          # every member is the container's
        else:
            _signal_pidns(c, cg, sig)
        if sig == 9 and cg.frozen():  # v1: frozen tasks die only once thawed
            cg.thaw()
        return
    # a pidfd pins the pid; the status (init's start time) is read after it,
    # so a pid reused meanwhile is never signalled
    try:
        fd = os.pidfd_open(c._data["pid"]) if c._data["pid"] > 0 else -1
    except ProcessLookupError:
        fd = -1
    try:
        status = c.status if fd >= 0 else "stopped"
        if status == "stopped":
            from kago.errors import KagoError
            raise KagoError("container not running")
        import _signal
        try:
            _signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            from kago.errors import KagoError
            raise KagoError("container not running") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if sig == 9 and status == "paused":  # as runc: thaw so SIGKILL lands
        c._cgroup().thaw()


def _own_pidns(cfg):
    from kago.container.state import own_pidns
    return own_pidns(cfg.get("namespaces", []))


def _signal_pidns(c, cg, sig):
    """A cgroup that existed before create (others' processes may be in it)
    and a pid namespace of the container's own: its processes are the
    members in init's pid namespace (none once init is gone)."""
    pid = c.pid
    if not pid:
        return
    try:
        ns = os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return
    for p in cg.pids():
        try:
            if os.stat(f"/proc/{p}/ns/pid").st_ino == ns:
                os.kill(p, sig)
        except OSError:
            pass
