"""pause / resume: the cgroup freezer (v1 freezer.state, v2 cgroup.freeze).

A frozen process sees nothing - no SIGSTOP, no SIGCONT - and carries on
where it was once thawed.  ``state`` reports ``paused`` from the freezer
itself, so nothing else is recorded."""

from kago.container import state as _st


def pause(c):
    with _st.Lock(c.state_dir):
        status = c.status
        if status not in ("running", "created"):
            from kago.errors import InvalidState
            raise InvalidState(c.id, status, "running")
        c._cgroup().freeze()


def resume(c):
    with _st.Lock(c.state_dir):
        status = c.status
        if status != "paused":
            from kago.errors import InvalidState
            raise InvalidState(c.id, status, "paused")
        c._cgroup().thaw()
