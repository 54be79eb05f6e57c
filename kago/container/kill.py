"""kill: a signal to init, or with ``all`` to every process in the cgroup."""

import os

from kago.errors import KagoError


def kill(c, signal="SIGTERM", all=False):
    from kago.signals import parse_signal
    sig = parse_signal(signal)
    if all:
        c._cgroup().signal_all(sig)
        if c.status == "stopped":
            return
        return
    if c.status == "stopped":
        raise KagoError("container not running")
    try:
        os.kill(c._data["pid"], sig)
    except ProcessLookupError:
        raise KagoError("container not running") from None
