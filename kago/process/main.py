"""main's side of the fork chain (see channel.py for the message table)."""

from kago import _debug, _os as os

from kago.errors import KagoError


class Context:
    """Everything the children need; inherited through fork, never pickled."""

    def __init__(self, *, id, spec, bundle, rootfs, state_dir, cgroup,
                 no_pivot=False, no_new_keyring=False, keep_fds=(), extra_env=None,
                 console_socket=None, created="", owner=""):
        self.id = id
        self.spec = spec
        self.bundle = bundle
        self.rootfs = rootfs
        self.state_dir = state_dir
        self.cgroup = cgroup
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.keep_fds = keep_fds
        self.extra_env = extra_env or {}
        self.console_socket = console_socket
        self.created = created
        self.owner = owner
        self.namespaces = (spec.get("linux") or {}).get("namespaces") or []
        self.new_namespaces = {n["type"] for n in self.namespaces if not n.get("path")}
        self.userns = any(n["type"] == "user" for n in self.namespaces)
        self.new_cgroupns = "cgroup" in self.new_namespaces
        self.host_pid = 0
        self.preloaded = False     # create() ran preload(spec, connect=False)
        self.close_fds = []
        self.console_fd = -1
        self.bind_fds = {}         # mounts[] index -> O_PATH fd (user namespace)
        self.has_binds = any(m.get("type") == "bind" or "bind" in (m.get("options") or ())
                             or "rbind" in (m.get("options") or ())
                             for m in spec.get("mounts") or ())
        # idmapped mounts (kago.rootfs.mounts.idmapping): main makes them
        self.has_idmaps = any(m.get("uidMappings") or m.get("gidMappings")
                              or "idmap" in (m.get("options") or ())
                              or "ridmap" in (m.get("options") or ())
                              for m in spec.get("mounts") or ())

    def oci_state(self, status, pid):
        s = {"ociVersion": self.spec.get("ociVersion", "1.2.0"), "id": self.id,
             "status": status, "pid": pid, "bundle": self.bundle}
        ann = self.spec.get("annotations")
        if ann:
            s["annotations"] = ann
        return s


def preload(spec, connect=True):
    """Import in main everything the children will need: after unshare(user)
    they may not be able to read the host's modules (e.g. under a 0700 /root),
    and after pivot_root they can't see them at all.  ``connect``: also connect
    to a seccomp notify listener (:func:`preconnect`)."""
    import _socket  # noqa: F401
    import fcntl  # noqa: F401
    import select  # noqa: F401
    import _struct as struct  # noqa: F401
    import _stat as stat  # noqa: F401
    from kago import sys as ksys
    ksys.libc()
    if spec.get("hooks"):
        import kago.hooks  # noqa: F401
    import kago.namespaces  # noqa: F401
    import kago.process.init  # noqa: F401
    import kago.process.intermediate  # noqa: F401
    import kago.rootfs  # noqa: F401
    if any(isinstance(m, dict) and m.get("type") == "cgroup" for m in spec.get("mounts") or ()):
        import kago.cgroups  # noqa: F401 - rootfs mounts the hierarchies (create has it already)
    from kago.process import attrs
    attrs.preload(spec.get("process"))
    attrs.warn_capabilities(spec.get("process"))
    lx = spec.get("linux") or {}
    if lx.get("personality") or lx.get("memoryPolicy"):
        from kago.process import extras  # noqa: F401
    if (spec.get("process") or {}).get("terminal"):
        from kago import tty
        tty.preload()
    if lx.get("mountLabel"):
        from kago.security import selinux   # rootfs: context= on the mounts
        selinux.enabled()
    if lx.get("seccomp") is not None:
        from kago.security import seccomp
        seccomp.preload(lx["seccomp"])
        seccomp.lib()
    if connect:
        preconnect(spec)


def preconnect(spec):
    """Connect to the seccomp notify listener, if any (just before the fork)."""
    if (spec.get("linux") or {}).get("seccomp") is not None:
        from kago.security import seccomp
        seccomp.preconnect(spec["linux"]["seccomp"])


def spawn(ctx, run_hooks) -> int:
    """Run the chain; returns init's host pid once init is ``ready``.

    ``run_hooks(kind, state)`` runs prestart/createRuntime hooks in main.  On
    failure everything spawned is killed and the child's exception re-raised."""
    from kago.process.channel import (IntermediateToMain, InitToMain, MainToInit,
                                      MainToIntermediate, pair)
    # exec.fifo is opened here, O_PATH, and inherited: init may not be able to
    # reach the state dir itself (a 0700 --root seen from a user namespace)
    ctx.fifo_fd = os.open(os.path.join(ctx.state_dir, "exec.fifo"), os.O_PATH | os.O_CLOEXEC)
    if ctx.preloaded:
        preconnect(ctx.spec)
    else:
        preload(ctx.spec)
    m_int, int_m = pair(MainToIntermediate, IntermediateToMain, "intermediate", "main")
    m_init, init_m = pair(MainToInit, InitToMain, "init", "main")
    from kago.cgroups.fs import prewarm_done
    prewarm_done()                # no thread of ours is running at the fork
    pid = os.fork()
    if pid == 0:
        try:
            m_int.close()
            m_init.close()
            _debug("intermediate forked", pid=os.getpid())   # (its own line: in order)
            from kago.process import intermediate
            intermediate.run(ctx, int_m, init_m.sock)
        finally:
            os._exit(1)
    int_m.close()
    init_m.close()
    if ctx.spec["linux"].get("seccomp") is not None:
        from kago.security import seccomp
        seccomp.release_preconnected()   # the children hold the listener connection
    init_pid = 0
    try:
        while True:
            msg, _ = m_int.recv()
            if msg["t"] == "idmap_req":
                _write_idmaps(pid, ctx.spec)
                _debug("uid_map and gid_map written", pid=pid)
                m_int.idmap_done()
            elif msg["t"] == "sources_req":
                from kago.rootfs import send_bind_sources
                if send_bind_sources(pid, ctx.spec, ctx.bundle, m_int) != 0:
                    raise KagoError("opening the bind mount sources failed")
            else:
                init_pid = msg["pid"]
                break
        os.waitpid(pid, 0)
        pid = 0
        ctx.host_pid = init_pid
        while True:
            msg, _ = m_init.recv()
            if msg["t"] == "hooks_req":
                hooks = ctx.spec.get("hooks") or {}
                # prestart sees "created" (the validation suite, crun);
                # createRuntime "creating" (runc)
                run_hooks("prestart", hooks.get("prestart"),
                          ctx.oci_state("created", init_pid))
                run_hooks("createRuntime", hooks.get("createRuntime"),
                          ctx.oci_state("creating", init_pid))
                m_init.hooks_done()
            else:
                break
        _debug("init ready", pid=init_pid)
        return init_pid
    except BaseException:
        m_init.abort()
        if pid:
            _kill_wait(pid, child=True)
        if init_pid:
            _kill_wait(init_pid, child=False)
        raise
    finally:
        m_int.close()
        m_init.close()
        os.close(ctx.fifo_fd)


def _kill_wait(pid, child):
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    if child:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        return
    from kago.pidfd import wait_gone
    wait_gone(pid)


def _write_idmaps(pid, spec):
    """The new user namespace's uid_map and gid_map, as runc: written
    directly; where that is refused (EPERM: an ordinary user, or root in a
    user namespace, mapping more than its own id) through newuidmap /
    newgidmap (Debian's uidmap package: /etc/subuid, /etc/subgid).  A caller
    that is not root mapping just its own gid writes setgroups "deny" first
    (the kernel's condition for an unprivileged gid_map)."""
    linux = spec.get("linux") or {}
    euid = os.geteuid()
    for name, key, tool in (("uid_map", "uidMappings", "newuidmap"),
                            ("gid_map", "gidMappings", "newgidmap")):
        maps = linux.get(key) or ()
        lines = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)
        if euid != 0 and name == "gid_map" and len(maps) == 1 and \
                maps[0]["size"] == 1 and maps[0]["hostID"] == os.getegid():
            _write_proc(pid, "setgroups", "deny", "linux.gidMappings")
        try:
            _write_proc(pid, name, lines, f"linux.{key}", raw=True)
        except PermissionError:
            _map_tool(tool, pid, maps, key)


def _write_proc(pid, name, data, what, raw=False):
    try:
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        finally:
            os.close(fd)
    except OSError as e:
        if raw and isinstance(e, PermissionError):
            raise
        raise KagoError(f"write /proc/{pid}/{name}: {e.strerror} ({what})") from None


def _map_tool(tool, pid, maps, key):
    """Run newuidmap/newgidmap PID (ID HOSTID SIZE)..."""
    path = _which(tool)
    if path is None:
        raise KagoError(f"write /proc/{pid}/{key[:3]}_map: operation not permitted "
                        f"(linux.{key}), and {tool} is not installed (Debian: the "
                        "uidmap package)")
    import subprocess
    args = [path, str(pid)]
    for m in maps:
        args += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, close_fds=True)
    if r.returncode != 0:
        out = r.stdout.decode("utf-8", "replace").strip().replace("\n", "; ")
        raise KagoError(f"failed to use {tool} on {pid} (linux.{key}): "
                        f"{out or f'exit status {r.returncode}'}")


def _which(name):
    dirs = (os.getenv("PATH") or "").split(":") + ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
    for d in dirs:
        p = os.path.join(d or ".", name)
        if d and os.access(p, os.X_OK) and os.path.isfile(p):
            return p
    return None
