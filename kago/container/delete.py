"""delete: kill what is left, remove the cgroup and the state, run poststop."""

from kago import _debug, _os as os   # not os: see kago/_os.py

from kago.container import state as _st


def delete(c, force=False):
    with _st.Lock(c.state_dir):
        status = c.status
        if status in ("running", "paused", "creating") and not force:
            from kago.errors import KagoError
            raise KagoError(f"cannot delete container {c.id} that is not stopped: {status}")
        cg = c._cgroup()
        pid = c._data.get("pid") or 0
        if status != "stopped" and pid:
            try:
                os.kill(pid, 9)
                _debug("init killed", pid=pid, signal="SIGKILL")
            except ProcessLookupError:
                pass
        if status == "paused":
            cg.thaw()
        if status != "stopped" and pid:
            # init first: with a pid namespace its exit takes every other
            # process of the container with it, so the cgroup is then empty
            from kago.pidfd import wait_gone
            wait_gone(pid, 10)
        cg.kill_all_and_wait()
        _debug("cgroup emptied", path=cg.path)
        cg.remove()
        _debug("cgroup removed", path=cg.path)
        hooks = c.config().get("hooks", {}).get("poststop")
        if hooks:
            from kago.errors import KagoError
            from kago.hooks import run_hooks
            try:
                run_hooks("poststop", hooks, c.oci_state("stopped"))
            except KagoError as e:
                from kago import log
                log.warning(f"poststop hook failed: {e}")
        _st.remove_tree(c.state_dir)
        _debug("state removed", path=c.state_dir)

