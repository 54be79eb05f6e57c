"""restore: a new container from a CRIU image (see :mod:`kago.criu`).

As runc's ``Restore``: the state dir and the cgroup are made as by create
(resources applied), criu runs inside that cgroup (runc's criuApplyCgroups)
with ``--root`` a bind of the rootfs (criu wants a mount point whose parent is
not overmounted), every external mount of the dump mapped back to its host
source (bind sources, ``/dev/null`` for masked files, devices, the new
container's cgroup dir), the caller's pipes handed over for the pipes the
container's stdio were (``descriptors.json``), a new pty for a terminal (its
master sent to the console socket), ``--restore-sibling`` so that the restored
init is kago's child (``restore`` in the foreground waits for it), prestart and
createRuntime hooks at criu's ``setup-namespaces`` action with the restored pid.
The state dir then says running, with the restored init's pid and start time.
"""

from kago import _os as os

from kago.container import state as _st
from kago.container.checkpoint import (check_cgroups_mode, check_empty_ns,
                                       external_mounts, read_image_meta)
from kago.errors import ContainerExists, InvalidArgument, KagoError, SpecError

HOOKS_FILE = "restore-hooks.json"


class RestoreOptions:
    """runc's ``restore`` flags."""

    def __init__(self, image_path=None, work_path=None, console_socket=None,
                 detach=True, pid_file=None, no_subreaper=False, no_pivot=False,
                 tcp_established=False, ext_unix_sk=False, shell_job=False,
                 file_locks=False, manage_cgroups_mode=None, empty_ns=(),
                 auto_dedup=False, lazy_pages=False, lsm_profile=None,
                 lsm_mount_context=None, criu="criu"):
        self.image_path = image_path
        self.work_path = work_path
        self.console_socket = console_socket
        self.detach = detach
        self.pid_file = pid_file
        self.no_subreaper = no_subreaper
        self.no_pivot = no_pivot          # criu restores the mounts: nothing to pivot
        self.tcp_established = tcp_established
        self.ext_unix_sk = ext_unix_sk
        self.shell_job = shell_job
        self.file_locks = file_locks
        self.manage_cgroups_mode = manage_cgroups_mode
        self.empty_ns = list(empty_ns or ())
        self.auto_dedup = auto_dedup
        self.lazy_pages = lazy_pages
        self.lsm_profile = lsm_profile
        self.lsm_mount_context = lsm_mount_context
        self.criu = criu


def _bad(v):
    return not isinstance(v, str) or "\0" in v or "\n" in v


def restore(root, cid, bundle, opts: RestoreOptions, systemd_cgroup=False):
    from kago import criu as _criu
    from kago import spec as _spec
    from kago import sys as ksys
    from kago.container.container import Container
    from kago.container.create import _check_cgroup, _undo, write_initial_state

    _st.validate_id(cid)
    mode = check_cgroups_mode(opts.manage_cgroups_mode)
    empty = check_empty_ns(opts.empty_ns)
    if _bad(opts.image_path or "checkpoint"):
        raise InvalidArgument("invalid --image-path")
    image_path = os.path.abspath(opts.image_path or "checkpoint")
    if not os.path.isdir(image_path):
        raise InvalidArgument(f"invalid --image-path: {image_path} is not a directory")
    for v, what in ((opts.work_path, "--work-path"), (opts.lsm_profile, "--lsm-profile"),
                    (opts.lsm_mount_context, "--lsm-mount-context"),
                    (opts.pid_file, "--pid-file"), (opts.console_socket, "--console-socket")):
        if v is not None and _bad(v):
            raise InvalidArgument(f"invalid {what}")
    if opts.lsm_profile and ":" not in opts.lsm_profile:
        raise InvalidArgument("--lsm-profile must be TYPE:NAME")
    desc, meta = read_image_meta(image_path)
    criu = _criu.find(opts.criu)
    bundle = os.path.abspath(bundle)
    spec = _spec.load(bundle)
    if "process" not in spec:
        raise SpecError("process", "required for restore")
    rootfs = os.path.realpath(os.path.join(bundle, (spec.get("root") or {}).get("path")
                                           or "rootfs"))
    if not os.path.isdir(rootfs):
        raise SpecError("root.path", f"rootfs ({rootfs}) does not exist")
    terminal = bool(meta.get("tty"))
    if terminal and not opts.console_socket and opts.detach:
        raise SpecError("process.terminal", "cannot allocate tty if kago will detach "
                        "without setting console socket")
    if opts.console_socket and not terminal:
        raise SpecError("process.terminal",
                        "cannot use console socket if process.terminal is false")
    linux = spec.get("linux") or {}
    namespaces = linux.get("namespaces") or []
    ext_ns = {}
    for kind, key in (("network", "extRootNetNS"), ("pid", "extRootPidNS")):
        if meta.get(kind):
            path = next((n.get("path") for n in namespaces if n.get("type") == kind), None)
            if not path:
                raise SpecError("linux.namespaces", f"the checkpoint joined a {kind} "
                                "namespace by path: config.json must name one")
            ext_ns[key] = path
    mounts = external_mounts(spec)        # validated before anything is made
    work = os.path.abspath(opts.work_path) if opts.work_path else image_path

    os.makedirs(root, 0o711, exist_ok=True)
    state_dir = os.path.join(root, cid)
    try:
        os.mkdir(state_dir, 0o711)
    except FileExistsError:
        raise ContainerExists(cid) from None
    lock = _st.Lock(state_dir)
    lock.__enter__()
    cg = None
    ours = True
    croot = None
    pid = 0
    fds = []
    master = -1
    try:
        os.makedirs(work, 0o700, exist_ok=True)
        from kago.cgroups import default_path, manager_for
        new_cg = manager_for(linux.get("cgroupsPath") or default_path(cid), systemd_cgroup, cid)
        made = _check_cgroup(new_cg)
        cfg, data = write_initial_state(state_dir, cid, spec, bundle, rootfs, new_cg, made,
                                        systemd_cgroup)
        cg = new_cg
        ours = made or not data["own_pidns"]
        cg.create()
        resources = dict(linux.get("resources") or {})
        if resources.get("devices"):
            from kago.cgroups.devices import rules_for
            resources["devices"] = rules_for(linux)
        cg.apply(resources)

        # criu's root: a mount point whose parent is not overmounted
        croot = os.path.join(state_dir, "criu-root")
        os.mkdir(croot, 0o755)
        ksys.mount(rootfs, croot, None, ksys.MS_BIND | ksys.MS_REC)
        pidfile = os.path.join(work, f"restore-{cid}.pid")
        try:
            os.unlink(pidfile)
        except FileNotFoundError:
            pass
        args = ["-D", image_path, "--root", croot, "--restore-detached", "--restore-sibling",
                "--pidfile", pidfile, "--manage-cgroups=" + (mode or "soft"),
                "--evasive-devices"]
        for flag, on in (("--shell-job", opts.shell_job),
                         ("--tcp-established", opts.tcp_established),
                         ("--ext-unix-sk", opts.ext_unix_sk), ("--file-locks", opts.file_locks),
                         ("--auto-dedup", opts.auto_dedup), ("--lazy-pages", opts.lazy_pages)):
            if on:
                args.append(flag)
        for ns in empty:
            args += ["--empty-ns", ns]
        if opts.lsm_profile:
            args += ["--lsm-profile", opts.lsm_profile]
        if opts.lsm_mount_context:
            args += ["--lsm-mount-context", opts.lsm_mount_context]
        seen = set()
        for dest, key in mounts:
            if key in seen:
                continue
            seen.add(key)
            args += ["--external", f"mnt[{key}]:{_source(key, dest, spec, bundle, cg)}"]
        # criu re-creates the dump's cgroup paths as they were; the restored
        # tree goes into this container's cgroup instead (a new id, a new
        # cgroupsPath), as runc's criuApplyCgroups tells criu (CgRoot)
        for mp, d in sorted(cg.dirs.items()):
            rel = "/" + d[len(mp):].strip("/")
            if len(cg.dirs) == 1:
                args += ["--cgroup-root", rel]
            else:
                for ctrl in os.path.basename(mp).split(","):
                    if ctrl and ctrl != "unified":
                        args += ["--cgroup-root", f"{ctrl}:{rel}"]
        for key, path in ext_ns.items():
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            fds.append(fd)
            args += ["--inherit-fd", f"fd[{fd}]:{key}"]
        # the caller's pipes stand in for the container's (runc: descriptors.json)
        for i, link in enumerate(desc[:3]):
            if link.startswith("pipe:"):
                args += ["--inherit-fd", f"fd[{i}]:{link}"]
        if terminal:
            from kago import tty
            master, slave, slave_path = tty.open_pty()
            fds.append(slave)
            args += ["--inherit-fd", f"fd[{slave}]:{meta['tty']}",
                     "--external", f"mnt[console]:{slave_path}"]
            if not opts.shell_job:
                args.append("--shell-job")
        hooks = {k: v for k, v in (spec.get("hooks") or {}).items()
                 if k in ("prestart", "createRuntime") and v}
        if hooks:
            args += ["--action-script", _hook_script(state_dir, hooks, data)]

        def join_cgroup():
            cg.add(os.getpid())

        _criu.run(criu, "restore", args, work_dir=work, log_name="restore.log",
                  pass_fds=fds, preexec=join_cgroup)
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError) as e:
            raise KagoError(f"criu restore: no pid in {pidfile}: {e}") from None
        finally:
            try:
                os.unlink(pidfile)
            except OSError:
                pass
        if terminal and opts.console_socket:
            from kago import tty
            sock = tty.connect_console_socket(opts.console_socket)
            try:
                tty.send_master(sock.fileno(), master)
            finally:
                sock.close()
        st = _st.proc_start_time(pid)
        data = dict(data, pid=pid, start_time=st[1] if st else -1, status="running",
                    created=_st.rfc3339_now())
        del data["creator"]
        _st.write_json_atomic(os.path.join(state_dir, _st.STATE), data)
        if opts.pid_file:
            _st.write_text_atomic(os.path.abspath(opts.pid_file), str(pid))
        c = Container(root, cid, data)
        c._cfg = cfg
        c._child = not opts.detach
        if terminal and not opts.console_socket:
            c._pty_master, master = master, -1
        if not opts.detach and not opts.no_subreaper:
            ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
        return c
    except BaseException:
        if pid > 0:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except OSError:
                pass
        _undo_mount(croot)
        croot = None
        _undo(state_dir, cg, ours)
        raise
    finally:
        for fd in fds:
            os.close(fd)
        if master >= 0:
            os.close(master)
        _undo_mount(croot)
        lock.__exit__()


def _undo_mount(croot):
    if croot is None:
        return
    from kago import sys as ksys
    try:
        ksys.umount2(croot, ksys.MNT_DETACH)
    except Exception:  # noqa: BLE001 - not mounted (a failure before the mount)
        pass
    try:
        os.rmdir(croot)
    except OSError:
        pass


def _source(key, dest, spec, bundle, cg):
    """The host path an external mount ``key`` of the dump is restored from."""
    if key == "/dev/null":
        return "/dev/null"
    if key == "cgroup":
        return next(iter(cg.dirs.values()))
    if key.startswith("cgroup-"):
        for mp, d in cg.dirs.items():
            if os.path.basename(mp) == key[7:]:
                return d
        raise KagoError(f"restore: no cgroup hierarchy {key[7:]!r} on this host")
    for m in spec.get("mounts") or ():
        if m.get("destination") == dest:
            src = m.get("source") or ""
            src = src if os.path.isabs(src) else os.path.join(bundle, src)
            from kago.criu import check_name
            return check_name(src, "mount source")
    return key                           # a device: the host's node


def _hook_script(state_dir, hooks, data):
    """criu's --action-script: at ``setup-namespaces`` (the restored tree
    exists, nothing runs yet) run prestart + createRuntime with the restored
    pid, as runc does on criu's notification."""
    import sys
    from kago import _json as json
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    st = {"ociVersion": data["ociVersion"], "id": data["id"], "status": "creating",
          "bundle": data["bundle"]}
    if data.get("annotations"):
        st["annotations"] = data["annotations"]
    _st.write_json_atomic(os.path.join(state_dir, HOOKS_FILE), {"hooks": hooks, "state": st})
    script = os.path.join(state_dir, "restore-hook.sh")
    py = sys.executable
    body = ("#!/bin/sh\n"
            '[ "$CRTOOLS_SCRIPT_ACTION" = setup-namespaces ] || exit 0\n'
            f"exec {_sh(py)} -I -S -c 'import sys; sys.path.insert(0, sys.argv[1]); "
            "from kago.container.restore import run_action_hooks; "
            "sys.exit(run_action_hooks(sys.argv[2]))' "
            f"{_sh(here)} {_sh(os.path.join(state_dir, HOOKS_FILE))}\n")
    _st.write_text_atomic(script, body, 0o700)
    del json
    return script


def _sh(s):
    return "'" + s.replace("'", "'\\''") + "'"


def run_action_hooks(path) -> int:
    """Run by criu's action script: prestart + createRuntime with the pid."""
    import _signal
    # criu's signal set-up must not reach the hooks (nor our wait for them)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    # criu runs its scripts with stdin closed: a pipe made for a hook's stdin
    # must not land on fd 0 (dup2 onto itself keeps it close-on-exec)
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            n = os.open("/dev/null", os.O_RDWR)
            if n != fd:
                os.dup2(n, fd)
                os.close(n)
    from kago.hooks import run_hooks
    try:
        d = _st.read_json(path)
        state = dict(d["state"], pid=int(os.getenv("CRTOOLS_INIT_PID") or 0))
        for kind in ("prestart", "createRuntime"):
            run_hooks(kind, d["hooks"].get(kind), state, cwd=state["bundle"])
    except (KagoError, OSError, ValueError) as e:
        # criu's error format, so that kago's message names it
        os.write(2, f"Error (kago restore hook): {e}\n".encode())
        return 1
    return 0
