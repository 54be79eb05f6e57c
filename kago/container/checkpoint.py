"""checkpoint: dump a running container with CRIU (see :mod:`kago.criu`).

As runc's ``Checkpoint``: the bind mounts of config.json, the masked files,
the bind-mounted devices and the cgroup bind are external mounts
(``--external mnt[DEST]:KEY``; restore maps each KEY back to a host path), a
network or pid namespace joined by path is an external namespace (restore
needs it again), the container's stdio are recorded in ``descriptors.json``
(restore hands its own pipes over), a terminal's slave is dumped alone as a
shell job's tty with /dev/console external (restore gives it a new pty,
``kago-checkpoint.json`` keeps its criu key).  Without ``leave_running``/``pre_dump`` criu
kills the container and it is deleted (its cgroup and state dir, poststop hooks).
"""

from kago import _os as os

from kago.errors import InvalidArgument, InvalidState, KagoError

DESCRIPTORS = "descriptors.json"     # runc's name: stdio of init, as /proc/PID/fd shows them
KAGO_IMAGE = "kago-checkpoint.json"  # what restore needs beyond criu's images
CG_MODES = ("soft", "full", "strict")
EMPTY_NS = {"network": "net"}        # criu restores only an empty net namespace


class CheckpointOptions:
    """runc's ``checkpoint`` flags; :meth:`check` validates them before criu runs."""

    def __init__(self, image_path=None, work_path=None, parent_path=None,
                 leave_running=False, tcp_established=False, ext_unix_sk=False,
                 shell_job=False, file_locks=False, pre_dump=False,
                 manage_cgroups_mode=None, empty_ns=(), auto_dedup=False,
                 lazy_pages=False, status_fd=-1, page_server=None, criu="criu"):
        self.image_path = image_path
        self.work_path = work_path
        self.parent_path = parent_path
        self.leave_running = leave_running
        self.tcp_established = tcp_established
        self.ext_unix_sk = ext_unix_sk
        self.shell_job = shell_job
        self.file_locks = file_locks
        self.pre_dump = pre_dump
        self.manage_cgroups_mode = manage_cgroups_mode
        self.empty_ns = list(empty_ns or ())
        self.auto_dedup = auto_dedup
        self.lazy_pages = lazy_pages
        self.status_fd = status_fd
        self.page_server = page_server
        self.criu = criu


def _path(value, what):
    if not isinstance(value, str) or "\0" in value:
        raise InvalidArgument(f"invalid {what}: {value!r}")
    return value


def check_cgroups_mode(mode):
    if mode and mode not in CG_MODES:
        raise InvalidArgument("Invalid manage cgroups mode")
    return mode


def check_empty_ns(names):
    out = []
    for ns in names or ():
        if ns not in EMPTY_NS:
            raise InvalidArgument(f"namespace {ns!r} is not supported")
        out.append(EMPTY_NS[ns])
    return out


def prepare_image_path(image_path, parent_path=None, make=True):
    """runc's prepareImagePaths: the image dir (default ``./checkpoint``,
    made if missing) and the parent dir, which must be relative to it and
    an existing directory."""
    image_path = os.path.abspath(_path(image_path or "checkpoint", "--image-path"))
    if parent_path:
        _path(parent_path, "--parent-path")
        if os.path.isabs(parent_path):
            raise InvalidArgument("--parent-path must be relative")
        real = os.path.join(image_path, parent_path)
        if not os.path.isdir(image_path):
            # not made yet (runc makes it first): the path as it will resolve
            real = os.path.normpath(real)
        try:
            st = os.stat(real)
        except OSError as e:
            raise InvalidArgument(f"invalid --parent-path: stat {real}: "
                                  f"{(e.strerror or '').lower()}") from None
        if st.st_mode & 0o170000 != 0o040000:
            raise InvalidArgument(f"invalid --parent-path: stat {real}: not a directory")
    if make:
        os.makedirs(image_path, 0o700, exist_ok=True)
    return image_path


def _page_server(value):
    host, sep, port = (value or "").rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port:
        raise InvalidArgument("Use --page-server ADDRESS:PORT to specify page server")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument("Invalid port number")
    return host, port


def _status_fd(fd):
    import fcntl
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except (OSError, ValueError, OverflowError) as e:
        raise InvalidArgument(f"invalid --status-fd argument {fd}: "
                              f"{getattr(e, 'strerror', None) or e}") from None
    if flags & 3 == os.O_RDONLY:
        raise InvalidArgument(f"invalid --status-fd argument {fd}: not writable")
    return fd


def external_mounts(spec, pid=None):
    """[(destination, key)] of the mounts criu must treat as external (runc's
    addCriuDumpMount / addMaskPaths / devices): restore maps key -> source."""
    from kago.criu import check_name
    out = []
    linux = spec.get("linux") or {}
    for m in spec.get("mounts") or ():
        opts = m.get("options") or ()
        if m.get("type") == "bind" or "bind" in opts or "rbind" in opts:
            dest = check_name(m["destination"], "mount destination")
            out.append((dest, dest))
    for p in linux.get("maskedPaths") or ():
        # a masked file is /dev/null bound over it; a masked dir a tmpfs (dumped)
        if pid is not None:
            try:
                where = f"/proc/{pid}/root{p}"
                if os.path.isdir(where) or not os.path.exists(where):
                    continue
            except OSError:
                continue
        out.append((check_name(p, "masked path"), "/dev/null"))
    # the cgroup mount without a cgroup namespace of its own: kago binds the
    # container's cgroup dir(s) (runc: getCgroupMounts); restore binds the new one
    types = {n.get("type") for n in linux.get("namespaces") or ()}
    if "cgroup" not in types:
        from kago import cgroups
        for m in spec.get("mounts") or ():
            if m.get("type") != "cgroup":
                continue
            dest = check_name(m["destination"], "mount destination")
            if cgroups.is_v2_host():
                out.append((dest, "cgroup"))
            else:
                for mp, _fstype, _opts in cgroups._hierarchies():
                    name = check_name(os.path.basename(mp), "cgroup hierarchy")
                    out.append((dest.rstrip("/") + "/" + name, "cgroup-" + name))
    # a device bind-mounted from the host (a user namespace can't mknod)
    for d in linux.get("devices") or ():
        out.append((check_name(d["path"], "device path"), d["path"]))
    return out


def _ns_path(spec, kind):
    for n in (spec.get("linux") or {}).get("namespaces") or ():
        if n.get("type") == kind and n.get("path"):
            return n["path"]
    return None


def _fd_links(pid):
    out = []
    for i in range(3):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{i}"))
        except OSError:
            out.append("/dev/null")
    return out


def checkpoint(c, opts: CheckpointOptions):
    from kago import criu as _criu
    status = c.status
    if status in ("created", "stopped", "creating"):
        raise InvalidState(c.id, status, "running")
    image_path = prepare_image_path(opts.image_path, opts.parent_path, make=False)
    mode = check_cgroups_mode(opts.manage_cgroups_mode)
    check_empty_ns(opts.empty_ns)          # a restore flag; runc checks it here too
    ps = _page_server(opts.page_server) if opts.page_server else None
    if opts.lazy_pages and opts.status_fd is not None and opts.status_fd >= 0:
        _status_fd(opts.status_fd)
    work_path = _path(opts.work_path, "--work-path") if opts.work_path else None
    criu = _criu.find(opts.criu)
    from kago import spec as _spec
    spec = _spec.load(c.bundle)
    pid = c._data["pid"]
    os.makedirs(image_path, 0o700, exist_ok=True)
    work = os.path.abspath(work_path) if work_path else image_path
    os.makedirs(work, 0o700, exist_ok=True)

    args = ["-t", str(pid), "-D", image_path, "--root", c._data["rootfs"]]
    args.append("--manage-cgroups=" + (mode or "soft"))
    for flag, on in (("--shell-job", opts.shell_job), ("--tcp-established", opts.tcp_established),
                     ("--ext-unix-sk", opts.ext_unix_sk), ("--file-locks", opts.file_locks),
                     ("--auto-dedup", opts.auto_dedup)):
        if on:
            args.append(flag)
    if opts.leave_running and not opts.pre_dump:
        args.append("--leave-running")
    # the freezer (v1) or the cgroup itself (v2): criu freezes it instead of ptrace-seizing
    dirs = c._data.get("cgroup_dirs") or {}
    fcg = next((d for mp, d in dirs.items()
                if mp == "/sys/fs/cgroup" or "freezer" in os.path.basename(mp).split(",")), None)
    if fcg and os.path.isdir(fcg):
        args += ["--freeze-cgroup", fcg]
    if ps:
        args += ["--page-server", "--address", ps[0], "--port", ps[1]]
    if opts.parent_path:
        args += ["--prev-images-dir", opts.parent_path, "--track-mem"]
    pass_fds = []
    if opts.lazy_pages:
        args.append("--lazy-pages")
        if opts.status_fd is not None and opts.status_fd >= 0:
            args += ["--status-fd", str(opts.status_fd)]
            pass_fds.append(opts.status_fd)
    meta = {"terminal": bool((spec.get("process") or {}).get("terminal"))}
    if not opts.pre_dump:
        for dest, key in external_mounts(spec, pid):
            args += ["--external", f"mnt[{dest}]:{key}"]
        for kind, key in (("network", "extRootNetNS"), ("pid", "extRootPidNS")):
            if _ns_path(spec, kind):
                ino = os.stat(f"/proc/{pid}/ns/{'net' if kind == 'network' else 'pid'}").st_ino
                args += ["--external", f"{'net' if kind == 'network' else 'pid'}[{ino}]:{key}"]
                meta[kind] = key
        links = _fd_links(pid)
        if meta["terminal"]:
            # the pty's master is the console socket's receiver's, outside the
            # tree: criu dumps the slave alone as a shell job's terminal (runc:
            # orphan-pts-master, RPC only); restore inherits a new pty for it
            st = os.stat(f"/proc/{pid}/fd/0")
            meta["tty"] = f"tty[{st.st_rdev:x}:{st.st_dev:x}]"
            if not opts.shell_job:
                args.append("--shell-job")
            # the slave bound on /dev/console: restore binds the new one there
            args += ["--external", "mnt[/dev/console]:console"]
        from kago.container.state import write_json_atomic
        write_json_atomic(os.path.join(image_path, DESCRIPTORS), links)
        write_json_atomic(os.path.join(image_path, KAGO_IMAGE), meta)
    action = "pre-dump" if opts.pre_dump else "dump"
    _criu.run(criu, action, args, work_dir=work, log_name=f"{action.replace('-', '')}.log",
              pass_fds=pass_fds)
    if not (opts.leave_running or opts.pre_dump):
        # criu killed it: the container is gone, as after runc's checkpoint
        try:
            c.delete(force=True)
        except KagoError as e:
            from kago import log
            log.warning(f"checkpoint: removing the container: {e}")
    return image_path


def read_image_meta(image_path):
    """(descriptors, kago meta) of an image dir; both optional (a runc image
    has descriptors.json only)."""
    from kago.container.state import read_json
    out = []
    for name, default in ((DESCRIPTORS, []), (KAGO_IMAGE, {})):
        p = os.path.join(image_path, name)
        try:
            v = read_json(p)
        except FileNotFoundError:
            v = default
        except (OSError, ValueError) as e:
            raise KagoError(f"{p}: {e}") from None
        out.append(v)
    desc, meta = out
    if not isinstance(desc, list) or not all(isinstance(x, str) for x in desc):
        raise KagoError(f"{os.path.join(image_path, DESCRIPTORS)}: not a list of strings")
    tty = meta.get("tty") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or (tty is not None and not _tty_key(tty)):
        raise KagoError(f"{os.path.join(image_path, KAGO_IMAGE)}: not what checkpoint wrote")
    return desc[:3], meta


def _tty_key(v) -> bool:
    """``tty[RDEV:DEV]`` in hex, as criu names a terminal."""
    if not isinstance(v, str) or not (v.startswith("tty[") and v.endswith("]")):
        return False
    a, sep, b = v[4:-1].partition(":")
    hexd = set("0123456789abcdef")
    return bool(sep and a and b and set(a) <= hexd and set(b) <= hexd and len(v) < 40)

