"""delete: kill what is the container's, remove its cgroup and its state, run poststop.

What is the container's (runc's rule, made explicit):

- its init, by pid *and* start time (state.json), signalled through a pidfd;
- with a pid namespace of its own, everything else of it: the kernel ends the
  namespace's other processes when init dies;
- the members of its cgroup when kago made that cgroup for it (state.json and
  kago.json record ``cgroup_made`` before the first mkdir) or when it has no
  pid namespace of its own (the host's, or one joined by path: runc's
  ``signalAllProcesses``).  In a cgroup that existed before create, a
  container with its own pid namespace owns nothing but what died with init:
  whatever else is in there is left alone, and so is the cgroup while it is
  not empty (a warning; runc logs "Failed to remove paths" and goes on).

A damaged state dir (a state file that is missing, not a regular file, not
JSON, not what create wrote): :func:`delete_remains` with ``force`` uses what
is left - init from a valid state.json, the cgroup from kago.json or from
state.json, else only the empty cgroup at the id's default path - and removes
the state dir.  Without ``force`` it refuses (nothing of a damaged container
is killed by a plain delete), except for the empty dir of a create that was
killed before it wrote state.json.
"""

from kago import _debug, _os as os   # not os: see kago/_os.py

from kago.container import state as _st


def delete(c, force=False):
    if c.damaged:                   # a damaged entry of Container.list
        delete_remains(c.root, c.id, force)
        return
    with _st.Lock(c.state_dir):
        _delete_locked(c, force)


def _delete_locked(c, force):
    status = c.status
    if status in ("running", "paused", "creating") and not force:
        from kago.errors import KagoError
        raise KagoError(f"cannot delete container {c.id} that is not stopped: {status}")
    try:
        cfg = c.config()
    except Exception as e:  # noqa: BLE001 - kago.errors only when something was raised
        if not force:
            raise
        from kago.errors import ContainerDamaged
        if not isinstance(e, ContainerDamaged):
            raise
        cfg = None
    _teardown(c, cfg, status)


def delete_remains(root, cid, force=False):
    """``delete`` of an id that :meth:`Container.load` could not load: its state
    dir is damaged, or a create was killed before it wrote state.json.
    :class:`ContainerNotFound` when there is nothing under that id."""
    from kago.container.container import Container
    from kago.errors import ContainerDamaged, ContainerNotFound
    _st.validate_id(cid)
    d = os.path.join(root, cid)
    try:
        mode = os.lstat(d).st_mode & 0o170000
    except (FileNotFoundError, NotADirectoryError):
        raise ContainerNotFound(cid) from None
    if mode != 0o040000:                # not a state dir (a file, a symlink...)
        if not force:
            raise ContainerDamaged(cid, f"{cid} is not a state directory")
        os.unlink(d)                    # the link, never what it points to
        return
    with _st.Lock(d):
        # read again under the lock: a create may have finished meanwhile
        c = Container(root, cid, {})
        try:
            c._data = _st.load_state(d, cid)
        except FileNotFoundError:
            why = "state.json is missing"
        except _st.Damaged as e:
            why = str(e)
        else:
            _delete_locked(c, force)
            return
        c.damaged = why
        try:
            cfg = _st.load_config(d)
        except FileNotFoundError:
            cfg = None
        except _st.Damaged as e:
            if not force:
                raise ContainerDamaged(cid, str(e)) from None
            cfg = None
        if not force:
            if why != "state.json is missing":
                raise ContainerDamaged(cid, why)
            # a create killed before state.json: nothing of it may run
            cg = _cgroup_of(c, cfg)[0]
            if cg is not None and cg.pids():
                raise ContainerDamaged(cid, why)
        _teardown(c, cfg, None)


def _cgroup_of(c, cfg):
    """(manager, the members are the container's) from kago.json, else from
    state.json, else the id's default path (members never killed)."""
    from kago.cgroups import CGROUP_ROOT, load
    data = c._data if not c.damaged else None
    if cfg is not None:
        j = cfg["cgroup"]
        ours = cfg.get("cgroup_made", True) or not _st.own_pidns(cfg.get("namespaces", []))
    elif data is not None and data.get("cgroup_dirs") and data.get("cgroup_path"):
        j = {"path": data["cgroup_path"], "dirs": data["cgroup_dirs"]}
        ours = data.get("cgroup_made", False) or not data.get("own_pidns", True)
    else:
        from kago.cgroups import default_path, manager_for
        try:
            return manager_for(default_path(c.id)), False
        except Exception:  # noqa: BLE001 - no cgroupfs here: nothing to remove
            return None, False
    dirs = j.get("dirs") or {}
    if not all(mp == CGROUP_ROOT or mp.startswith(CGROUP_ROOT + "/") for mp in dirs):
        return None, False      # not under the cgroup root: never touched
    return load(j), ours


def _teardown(c, cfg, status):
    """Kill (status: None when state.json is damaged), remove the cgroup, run
    poststop, remove the state dir; the state dir is locked."""
    data = c._data if status is not None else None
    cg, ours = _cgroup_of(c, cfg)
    fd = -1
    if data is not None and status not in ("stopped", "creating") and data["pid"]:
        fd = _signal_init(data["pid"], data["start_time"])
        if fd >= 0:
            _debug("init killed", pid=data["pid"], signal="SIGKILL")
    if cg is not None and (status == "paused" or (status is None and cg.frozen())):
        cg.thaw()                       # SIGKILL lands on a frozen task once thawed
    if fd >= 0:
        # with a pid namespace init's exit takes every other process of it along
        _wait_pidfd(fd, 10)
    if cg is not None:
        if ours:
            cg.kill_all_and_wait()
            _debug("cgroup emptied", path=cg.path)
            cg.remove()
            _debug("cgroup removed", path=cg.path)
        else:
            _remove_if_empty(cg)
    hooks = (cfg or {}).get("hooks", {}).get("poststop")
    if hooks:
        if data is not None:
            from kago.hooks import run_hooks    # poststop: each failure is a warning
            run_hooks("poststop", hooks, c.oci_state("stopped"))
        elif c.damaged != "state.json is missing":     # (a create killed early)
            from kago import log
            log.warning(f"poststop hooks not run: {c.damaged}")
    _st.remove_tree(c.state_dir)
    _debug("state removed", path=c.state_dir)


def _signal_init(pid, start_time) -> int:
    """SIGKILL ``pid`` if it is still the process with ``start_time``, through
    a pidfd (so a pid reused meanwhile is never hit); the pidfd, or -1."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:                     # gone
        return -1
    st = _st.proc_start_time(pid)       # checked after the pidfd pins the pid
    if st is None or st[1] != start_time or st[0] in ("Z", "X", "x"):
        os.close(fd)
        return -1
    import _signal
    try:
        _signal.pidfd_send_signal(fd, 9)
    except ProcessLookupError:
        pass
    return fd


def _wait_pidfd(fd, timeout):
    """Wait for the process of pidfd ``fd`` to exit (reap it if it is our
    child: ``run`` is init's subreaper); closes ``fd``."""
    import select
    try:
        if select.select([fd], [], [], timeout)[0]:
            try:
                os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
            except OSError:
                pass
    finally:
        os.close(fd)


def _remove_if_empty(cg):
    """A cgroup that is not only the container's: remove it (as runc does) if
    nothing is left in it; else leave it, with a warning."""
    left = cg.remove_if_empty()
    if left:
        from kago import log
        n = len(cg.pids())
        log.warning(f"cgroup not removed: {', '.join(left)}: "
                    f"{n} process(es) that are not the container's")
