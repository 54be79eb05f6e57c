"""create: state dir, cgroup, the fork chain, state.json.  On any failure
everything made so far is undone (state dir, cgroup, processes)."""

from kago import _debug, _os as os

from kago.container import state as _st
from kago.errors import ContainerExists, SpecError


def _run_hooks(kind, hooks, state):
    from kago.hooks import run_hooks   # only when a bundle has hooks
    run_hooks(kind, hooks, state, cwd=state["bundle"])   # runc runs them in the bundle


def create(root, cid, bundle, *, pid_file=None, console_socket=None, no_pivot=False,
           no_new_keyring=False, preserve_fds=0, detach=True, systemd_cgroup=False,
           notify_socket=None, rootless="auto"):
    from kago import spec as _spec
    from kago.container.container import Container
    from kago.process.init import check_spec

    from kago.process import fds as _fds
    listen = _fds.listen_fds()
    # the caller's fds, before anything of ours is open (see kago.process.fds)
    caller_fds = _fds.take() if preserve_fds or listen else []
    from kago.cgroups.fs import prewarm_attach
    prewarm_attach()              # (the CLI started it already)
    _st.validate_id(cid)
    bundle = os.path.abspath(bundle)
    spec = _spec.load(bundle)
    if "process" not in spec:
        raise SpecError("process", "required for create")
    root_path = (spec.get("root") or {}).get("path") or "rootfs"
    rootfs = os.path.realpath(os.path.join(bundle, root_path))
    if not os.path.isdir(rootfs):
        raise SpecError("root.path", f"rootfs ({rootfs}) does not exist")
    linux = spec.get("linux") or {}
    types = {n["type"] for n in linux.get("namespaces") or ()}
    check_spec(spec, types)
    if type(rootless) is not bool:
        from kago.userns import rootless_cgroups
        rootless = rootless_cgroups(rootless, systemd_cgroup)
    if os.geteuid() != 0:
        _check_rootless_euid(spec, types)
    terminal = bool(spec["process"].get("terminal"))
    if terminal and not console_socket and detach:
        raise SpecError("process.terminal",
                        "cannot allocate tty if kago will detach without setting "
                        "console socket")
    if console_socket and not terminal:
        raise SpecError("process.terminal",
                        "cannot use console socket if process.terminal is false")
    _debug("config loaded", bundle=bundle, rootfs=rootfs)
    # the children's modules, imported before the first cgroup operation: the
    # attach pre-warm's grace period (kago.cgroups.fs) runs meanwhile, and
    # cgroup mkdir waits for what is left of it (both take cgroup_mutex)
    from kago.process.main import preload
    preload(spec, connect=False)
    os.makedirs(root, 0o711, exist_ok=True)
    state_dir = os.path.join(root, cid)
    try:
        os.mkdir(state_dir, 0o711)
    except FileExistsError:
        raise ContainerExists(cid) from None
    _debug("state directory created", path=state_dir)
    cg = None
    ours = True
    init = None                     # (pid, start time) once spawn() returned
    lock = _st.Lock(state_dir)
    lock.__enter__()
    try:
        if notify_socket:
            from kago import notify
            notify.setup_spec(spec, state_dir)
        os.mkfifo(os.path.join(state_dir, _st.FIFO), 0o622)
        # 0622 whatever the umask: init may write it as another uid (user ns)
        os.chmod(os.path.join(state_dir, _st.FIFO), 0o622)
        from kago.cgroups import default_path, manager_for
        given = linux.get("cgroupsPath")
        # rootless without a cgroupsPath: runc's default, <id> under the
        # caller's own cgroup (v2: its parent, the delegated subtree)
        loose = rootless and not given and not systemd_cgroup
        new_cg = manager_for(given or (cid if loose else default_path(cid)),
                             systemd_cgroup, cid)
        if loose:
            from kago.cgroups.fs import rootless_view
            new_cg = rootless_view(new_cg, linux.get("resources"))
        made = _check_cgroup(new_cg)
        # written before the first cgroup mkdir and the fork chain: if this
        # process is killed, `kago delete ID` still finds the cgroup (and
        # whatever init left in it)
        cfg, data = write_initial_state(state_dir, cid, spec, bundle, rootfs, new_cg, made,
                                        systemd_cgroup)
        created = data["created"]
        cg = new_cg
        ours = made or not data["own_pidns"]
        cg.create()
        if cg.frozen():             # a frozen parent: init would hang in it
            from kago.errors import CgroupError
            raise CgroupError("container's cgroup unexpectedly frozen")
        _debug("cgroup created", path=cg.path, driver=cg.driver)
        resources = dict(linux.get("resources") or {})
        if rootless:
            # no device cgroup for a rootless container (runc ignores its
            # errors): v2's filter needs CAP_SYS_ADMIN on the host, and in a
            # user namespace no device node can be made anyway
            resources.pop("devices", None)
        else:
            from kago.cgroups.devices import rules_for   # (always: no rules is not allow-all)
            resources["devices"] = rules_for(linux)
        cg.apply(resources)
        _debug("cgroup resources written", path=cg.path)
        extra_env = {}
        if listen:
            extra_env = {"LISTEN_FDS": str(listen), "LISTEN_PID": "1"}
        # of 3 .. 3+N-1 the ones open in the caller (a closed one is skipped, as crun)
        keep = _fds.preserved(caller_fds, preserve_fds + listen)
        from kago.process.main import Context, spawn
        ctx = Context(id=cid, spec=spec, bundle=bundle, rootfs=rootfs,
                      state_dir=state_dir, cgroup=cg, no_pivot=no_pivot,
                      no_new_keyring=no_new_keyring, keep_fds=keep,
                      extra_env=extra_env, console_socket=console_socket,
                      created=created)
        ctx.preloaded = True
        ctx.close_fds.append(lock.fd)
        relay_sock = None
        if terminal:
            from kago import tty
            if console_socket:
                con = tty.connect_console_socket(console_socket)
            else:  # run -t: we relay the pty ourselves
                import _socket
                relay_sock, con = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
            ctx.console_fd = con.fileno()
        if not detach:
            from kago import sys as ksys
            ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
        try:
            pid = spawn(ctx, _run_hooks)
        finally:
            if terminal:
                con.close()
        st = _st.proc_start_time(pid)
        init = (pid, st[1] if st else -1)
        data = dict(data, pid=pid, start_time=init[1], status="created")
        del data["creator"]
        _st.write_json_atomic(os.path.join(state_dir, _st.STATE), data)
        _debug("state written", status="created", pid=pid)
        if pid_file:
            _st.write_text_atomic(os.path.abspath(pid_file), str(pid))
        c = Container(root, cid, data)
        c._cfg = cfg
        c._child = not detach
        if relay_sock is not None:
            from kago import tty
            try:
                c._pty_master = tty.recv_master(relay_sock)
            finally:
                relay_sock.close()
        return c
    except BaseException:
        _undo(state_dir, cg, ours, init)
        if not detach:
            try:
                from kago import sys as ksys
                ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 0)
            except Exception:
                pass
        raise
    finally:
        lock.__exit__()


def _check_rootless_euid(spec, types):
    """runc's validator for a caller that is not root: a user namespace
    with uid and gid mappings, and no uid=/gid= mount option outside them."""
    linux = spec.get("linux") or {}
    if "user" not in types:
        raise SpecError("linux.namespaces", "rootless container requires user namespaces")
    joined = any(n["type"] == "user" and n.get("path") for n in linux.get("namespaces") or ())
    if joined:
        return
    if not linux.get("uidMappings"):
        raise SpecError("linux.uidMappings",
                        "rootless containers requires at least one UID mapping")
    if not linux.get("gidMappings"):
        raise SpecError("linux.gidMappings",
                        "rootless containers requires at least one GID mapping")
    for i, m in enumerate(spec.get("mounts") or ()):
        for o in m.get("options") or ():
            for key, maps in (("uid=", "uidMappings"), ("gid=", "gidMappings")):
                if not o.startswith(key):
                    continue
                try:
                    v = int(o[4:])
                except ValueError:
                    continue
                if not any(r["containerID"] <= v < r["containerID"] + r["size"]
                           for r in linux[maps]):
                    raise SpecError(f"mounts[{i}].options",
                                    f"cannot specify {key} mount options for unmapped "
                                    f"{key[:3]} in rootless containers")


def _check_cgroup(cg) -> bool:
    """Before the first mkdir: True if kago makes the container's cgroup (none
    of its directories exists).  A cgroup that exists: runc's warning if
    processes are in it already (they are not the container's: a failed
    create or a delete leaves them alone), refused if it is frozen (init
    would hang in it)."""
    if not any(os.path.isdir(d) for d in cg.dirs.values()):
        return True
    n = len(cg.pids())
    if n:
        from kago import log
        log.warning(f"container's cgroup is not empty: {n} process(es) found")
    if cg.frozen():
        from kago.errors import CgroupError
        raise CgroupError("container's cgroup unexpectedly frozen")
    return False


def _undo(state_dir, cg, ours, init=None):
    """Undo a failed create.  A failing spawn() has killed the intermediate and
    init; a failure after it (the pid file, the console) leaves ``init`` (pid,
    start time) to kill here - by pidfd, not through the cgroup, which may not
    be ours or may not exist (rootless) - and with a pid namespace its exit
    ends the rest; the cgroup's other members are killed only if they are the
    container's (see delete.py)."""
    if init is not None:
        from kago.container.delete import _signal_init, _wait_pidfd
        fd = _signal_init(*init)
        if fd >= 0:
            _wait_pidfd(fd, 10)
    if cg is not None:
        try:
            if ours:
                cg.kill_all_and_wait(timeout=5)
                cg.remove()
            else:
                from kago.container.delete import _remove_if_empty
                _remove_if_empty(cg)
        except Exception:
            pass
    _st.remove_tree(state_dir)


def write_initial_state(state_dir, cid, spec, bundle, rootfs, cg, made, systemd_cgroup):
    """kago.json and state.json (status ``creating``, the creating kago's pid and
    start time, the cgroup and whether kago made it) as create and restore
    write them before the first cgroup mkdir; (the config, the state) written."""
    linux = spec["linux"]
    namespaces = linux.get("namespaces") or []
    cfg = {"hooks": {k: v for k, v in (spec.get("hooks") or {}).items()
                     if k in ("poststart", "poststop") and v},
           "cgroup": cg.to_json(), "cgroup_made": made, "systemd": systemd_cgroup,
           "namespaces": namespaces, "process": spec["process"]}
    if linux.get("seccomp") is not None:  # exec'd processes get it too
        cfg["seccomp"] = linux["seccomp"]
    _st.write_json_atomic(os.path.join(state_dir, _st.CONFIG), cfg)
    me = _st.proc_start_time(os.getpid())
    data = {"ociVersion": spec.get("ociVersion") or "1.2.0", "id": cid,
            "pid": 0, "start_time": -1, "status": "creating",
            "creator": [os.getpid(), me[1] if me else -1],
            "bundle": bundle, "rootfs": rootfs, "created": _st.rfc3339_now(), "owner": "",
            "annotations": spec.get("annotations") or {},
            "cgroup_dirs": cg.dirs, "cgroup_path": cg.path, "cgroup_made": made,
            "own_pidns": _st.own_pidns(namespaces)}
    _st.write_json_atomic(os.path.join(state_dir, _st.STATE), data)
    return cfg, data
