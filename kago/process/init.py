"""The container's init: becomes the container process.

Runs inside the new namespaces (pid 1 of a new pid namespace).  Builds the
rootfs, runs createContainer hooks, pivots, applies the process attributes,
reports ``ready`` to main and blocks on exec.fifo until ``start``; then runs
startContainer hooks and execs ``process.args``.  Never returns.
"""

from kago import _debug, _debug_stderr_moves
from kago import _json as json
from kago import _os as os
import _signal as signal

from kago import sys as ksys
from kago.errors import ExecError, SpecError, SyscallError, to_wire
from kago.spec import sysctl_name

def run(ctx, sock):
    from kago.process.channel import InitToMain
    ch = InitToMain(sock, "main")
    try:
        _setup(ctx, ch)
    except BaseException as e:  # noqa: B902 - reported to main
        ch.send_error(e)
        os._exit(1)
    # after `ready`: main is gone; `start` talks to us through exec.fifo
    _wait_and_exec(ctx)


def _setup(ctx, ch):
    spec = ctx.spec
    proc = spec["process"]
    linux = spec.get("linux") or {}
    new = ctx.new_namespaces
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())   # whatever main held (run)
    os.umask(0)
    os.setsid()
    ksys.prctl(ksys.PR_SET_DUMPABLE, 0)
    host_pid = ctx.host_pid = int(os.readlink("/proc/self"))  # the host's /proc
    _debug("init started", pid=host_pid)
    if not ctx.no_new_keyring:
        try:
            ksys.keyctl_join_session_keyring(ctx.id)
        except SyscallError as e:
            import errno
            if e.errno not in (errno.ENOSYS, errno.EACCES, errno.EPERM, errno.EDQUOT):
                raise
    if "network" in new:
        from kago.namespaces import lo_up
        lo_up()
    oom = proc.get("oomScoreAdj")
    if oom is not None:
        from kago.process.attrs import set_oom_score_adj
        set_oom_score_adj(oom)
    from kago.rootfs import Rootfs
    rootfs = Rootfs(ctx)
    host_mntns = -1
    if not rootfs.own_mntns:
        # no mount namespace of its own: the rootfs is built in a private one
        # and becomes our root, detached, in kago's (Rootfs.leave_to)
        host_mntns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        ksys.unshare(ksys.CLONE_NEWNS)
    rootfs.prepare()
    _debug("rootfs ready", path=ctx.rootfs)
    hooks = spec.get("hooks") or {}
    if hooks.get("prestart") or hooks.get("createRuntime"):
        ch.request_hooks()
    if hooks.get("createContainer"):
        from kago.hooks import run_hooks
        # in the container's namespaces, before pivot_root, in the rootfs (as runc)
        run_hooks("createContainer", hooks["createContainer"],
                  ctx.oci_state("creating", host_pid), cwd=ctx.rootfs)
    # exec.fifo: main's O_PATH fd, reopened for writing through /proc after pivot
    fifo = ctx.fifo_fd
    # nothing can be imported from the host after pivot_root: import now
    import select  # noqa: F401
    if hooks.get("startContainer"):
        import kago.hooks  # noqa: F401
    from kago.process import attrs
    attrs.preload(proc)
    if linux.get("personality") or linux.get("memoryPolicy"):
        from kago.process import extras  # noqa: F401
    if proc.get("terminal"):
        from kago import tty
        tty.preload()
    scf = None
    if linux.get("seccomp") is not None:
        # compiled (and the notify listener connected) while the host is visible
        from kago.security import seccomp
        seccomp.preload()
        scf = seccomp.build(linux["seccomp"], _warn)
        scf.state = ctx.oci_state("creating", host_pid)
    rootfs.pivot(ctx.no_pivot)
    _debug("chroot done (--no-pivot)" if ctx.no_pivot else "pivot_root done")
    if linux.get("sysctl"):
        _write_sysctls(linux["sysctl"])
    if "hostname" in spec:
        ksys.sethostname(spec["hostname"])
    if "domainname" in spec:
        ksys.setdomainname(spec["domainname"])
    if proc.get("terminal"):
        _console(ctx, proc)
    rootfs.finalize()
    if host_mntns >= 0:
        rootfs.leave_to(host_mntns)
    # the process
    from kago.process import attrs
    if linux.get("memoryPolicy"):
        from kago.process import extras
        extras.memory_policy(linux["memoryPolicy"])
    path, env = attrs.apply(proc, ctx.extra_env, ctx.keep_fds, seccomp=scf)
    if linux.get("personality"):
        from kago.process import extras
        extras.personality(linux["personality"])
    ctx.exec_path = path
    ctx.exec_env = env
    ctx.fifo = fifo
    _debug("process set up, waiting on exec.fifo", pid=host_pid)
    ch.ready()


# What ends a created container's init before start, as it ends runc's (a Go
# program): as pid 1 of its namespace, a signal left at SIG_DFL is dropped, so
# `kill ID` (SIGTERM) of a created container would do nothing.
_FATAL_WHILE_CREATED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
                        signal.SIGABRT)


def _die(signum, _frame):
    os._exit(128 + signum)


def _wait_and_exec(ctx):
    for s in _FATAL_WHILE_CREATED:
        signal.signal(s, _die)
    try:
        fd = os.open(f"/proc/self/fd/{ctx.fifo}", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        os._exit(1)
    try:
        hooks = (ctx.spec.get("hooks") or {}).get("startContainer")
        if hooks:
            from kago.hooks import run_hooks
            run_hooks("startContainer", hooks, ctx.oci_state("created", ctx.host_pid))
        for s in _FATAL_WHILE_CREATED:   # started: the process decides from here on
            signal.signal(s, signal.SIG_DFL)
        _debug("exec.fifo released, executing", path=ctx.exec_path)
        os.write(fd, b"0")
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        os.execve(ctx.exec_path, ctx.spec["process"]["args"], ctx.exec_env)
    except BaseException as e:  # noqa: B902
        if isinstance(e, OSError) and not isinstance(e, SyscallError):
            e = ExecError(f"exec {ctx.spec['process']['args'][0]!r}: {e.strerror}",
                          e.errno, ctx.exec_path)
        try:
            os.write(fd, json.dumps(to_wire(e)).encode())
        finally:
            os._exit(1)


def _console(ctx, proc):
    """The pty from the container's devpts: slave on /dev/console and as the
    controlling tty and stdio; master sent over the console socket."""
    from kago import tty
    master, slave, path = tty.open_pty(proc.get("consoleSize"))
    try:
        try:
            fd = os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            os.close(fd)
            ksys.mount(path, "/dev/console", None, ksys.MS_BIND)
        except OSError:
            raise
        tty.send_master(ctx.console_fd, master)
    finally:
        os.close(master)
        os.close(ctx.console_fd)
    _debug_stderr_moves(max(ctx.keep_fds, default=2) + 1)   # fd 2 is the console's from here on
    tty.make_controlling(slave, setsid=False)
    os.close(slave)


def _warn(msg):
    """A warning from init (before pivot_root: it may import kago.log) goes to
    kago's log, as main's do: the --log file an engine reads, or stderr."""
    from kago import log
    log.warning(msg)


def _write_sysctls(sysctl):
    """kago.spec allowed each key (a namespace of the container's own) and its
    path stays under /proc/sys (no "..", no empty component).  The file is
    opened from /proc without crossing a mount or following a link: a bind
    over a file under /proc/sys (a host file, the host's core_pattern) can't
    take a write meant for the container's namespace."""
    resolve = (ksys.RESOLVE_NO_XDEV | ksys.RESOLVE_BENEATH | ksys.RESOLVE_NO_SYMLINKS
               | ksys.RESOLVE_NO_MAGICLINKS)
    try:
        procfd = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise SyscallError(e.errno, "open", "/proc", "linux.sysctl") from None
    try:
        for key, value in sysctl.items():
            rel = "sys/" + sysctl_name(key)[1]
            try:
                fd = ksys.openat2(procfd, rel, os.O_WRONLY | os.O_NOFOLLOW, 0, resolve)
                try:
                    os.write(fd, value.encode())
                finally:
                    os.close(fd)
            except OSError as e:
                why = "a mount on /proc/" + rel if e.errno == 18 else "linux.sysctl"  # EXDEV
                raise SyscallError(e.errno, "write sysctl", key, why) from None
    finally:
        os.close(procfd)


def check_spec(spec, types):
    """Checks init needs that the schema can't express (runc's validator)."""
    if "mount" not in types and "user" in types:
        # the rootfs is built in a mount namespace of kago's making (see
        # Rootfs.leave_to); from inside a user namespace there is no way
        # back into kago's (runc: EPERM on its first mount)
        raise SpecError("linux.namespaces",
                        "a user namespace needs a mount namespace of its own")
    if spec.get("hostname") and "uts" not in types:
        raise SpecError("hostname", "unable to set hostname without a private UTS namespace")
    if spec.get("domainname") and "uts" not in types:
        raise SpecError("domainname",
                        "unable to set domainname without a private UTS namespace")
