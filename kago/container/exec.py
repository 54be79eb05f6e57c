"""exec: a new process in a running container (a "tenant").

main -> intermediate (joins the cgroup and every namespace of init, the user
namespace first) -> tenant (the second fork: setns(pid) only applies to
children) -> execve.  The tenant's failure, before or at execve, comes back
through a close-on-exec pipe as a typed error; EOF means it exec'd (as
CPython's subprocess does)."""

from kago import _debug, _debug_stderr_moves
from kago import _json as json
from kago import _os as os

from kago.errors import KagoError, from_wire, to_wire


def exec_process(c, process, *, detach=False, pid_file=None, console_socket=None,
                 preserve_fds=0, cgroup=None, ignore_paused=False):
    from kago import sys as ksys
    from kago.namespaces import FLAGS, PROC_NAMES
    from kago.process.channel import IntermediateToMain, MainToIntermediate, pair
    from kago.spec import validate_process

    # of 3 .. 3+N-1 the ones open in the caller (a closed one is skipped, as
    # crun), seen before anything of ours is open (see kago.process.fds)
    keep = ()
    if preserve_fds:
        from kago.process import fds as _fds
        keep = _fds.preserved(_fds.take(), preserve_fds)
    from kago.cgroups.fs import prewarm_attach
    prewarm_attach()              # (the CLI started it already)
    validate_process(process)
    status = c.status
    if status == "stopped":
        raise KagoError(f"cannot exec in a stopped container {c.id}")
    if status == "paused" and not ignore_paused:
        raise KagoError("cannot exec in a paused container (use --ignore-paused to override)")
    terminal = bool(process.get("terminal"))
    if terminal and not console_socket and detach:
        raise KagoError("cannot allocate tty if kago will detach without setting "
                        "console socket")
    if console_socket and not terminal:
        raise KagoError("cannot use console socket if process.terminal is false")
    scf = None
    if c.config().get("seccomp") is not None:
        # the container's filter, compiled (and its agent connected) here,
        # before anything else is set up: an agent that isn't there leaves nothing
        from kago.security import seccomp
        seccomp.preload()
        scf = seccomp.build(c.config()["seccomp"])
        if scf.notify:
            scf.state = c.oci_state()
            scf.want_pid()
    init_pid = c._data["pid"]
    cfg = c.config()
    cg = c._cgroup()   # (before anything is opened: a bad --cgroup leaks nothing)
    if cgroup:   # runc's --cgroup: PATH or CTRL[,CTRL]:PATH, below the container's
        from kago.cgroups import parse_sub_cgroups
        cg_dirs = cg.sub_dirs(parse_sub_cgroups(cgroup))
    else:
        cg_dirs = list(cg.dirs.values())
    # open every namespace of init now: one consistent view, before any setns
    ns_fds = []
    types = [n["type"] for n in cfg.get("namespaces") or ()]
    types.sort(key=lambda t: t != "user")
    try:
        for t in types:
            if t == "user":
                # joining our own user ns is EINVAL: only when it differs
                if os.stat(f"/proc/{init_pid}/ns/user").st_ino == os.stat(
                        "/proc/self/ns/user").st_ino:
                    continue
            ns_fds.append((os.open(f"/proc/{init_pid}/ns/{PROC_NAMES[t]}",
                                   os.O_RDONLY | os.O_CLOEXEC), FLAGS[t], t))
        if "mount" not in types:
            # no mount namespace of its own: init is chrooted in kago's (see
            # rootfs), so the tenant takes init's root, never the host's
            ns_fds.append((os.open(f"/proc/{init_pid}/root", os.O_PATH | os.O_DIRECTORY
                                   | os.O_CLOEXEC), 0, "root"))
    except OSError as e:
        for fd, _, _ in ns_fds:
            os.close(fd)
        raise KagoError(f"container {c.id}: open namespaces of init: {e.strerror}") from None
    _debug("namespaces of init opened", pid=init_pid, types=",".join(t for _, _, t in ns_fds))
    con = None
    relay_sock = None
    if terminal:
        from kago import tty
        if console_socket:
            con = tty.connect_console_socket(console_socket)
        else:
            import _socket
            relay_sock, con = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    mask = None
    if not detach:
        ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 1)
        # a signal that arrives before wait_pid forwards them is held, not
        # lost (nor fatal to us); wait_pid unblocks, the tenant before execve
        import _signal
        from kago.container.run import FORWARD
        mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, FORWARD)
    # what the tenant needs once it has joined the container's mount
    # namespace, imported here: before the fork no page is shared yet (after
    # it, each is a copy-on-write fault), and the host's files are ours
    from kago.process import attrs
    attrs.preload(process)
    attrs.warn_capabilities(process)
    if terminal:
        from kago import tty
        tty.preload()
    # the container's oomScoreAdj, as runc gives every process it starts
    # (process.json's own, if it has one)
    oom = process.get("oomScoreAdj")
    if oom is None:
        oom = (cfg.get("process") or {}).get("oomScoreAdj")
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    m_int, int_m = pair(MainToIntermediate, IntermediateToMain, "intermediate", "main")
    from kago.cgroups.fs import prewarm_done
    prewarm_done()                # no thread of ours is running at the fork
    pid = os.fork()
    if pid == 0:
        try:
            os.close(err_r)
            m_int.close()
            _debug("intermediate forked", pid=os.getpid())   # (its own line: in order)
            _intermediate(int_m, err_w, ns_fds, cg_dirs, process, keep,
                          con.fileno() if con else -1, scf, oom)
        finally:
            os._exit(1)
    if scf is not None:
        scf.close()
    os.close(err_w)
    int_m.close()
    for fd, _, _ in ns_fds:
        os.close(fd)
    if con is not None:
        con.close()
    tenant = 0
    try:
        msg, _ = m_int._recv("init_pid")
        tenant = msg["pid"]
        os.waitpid(pid, 0)
        pid = 0
        data = b""
        while True:
            b = os.read(err_r, 65536)
            if not b:
                break
            data += b
        if data:
            raise from_wire(json.loads(data))
        _debug("process started", pid=tenant)
    except BaseException:
        if pid:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        if tenant and not detach:
            try:
                os.waitpid(tenant, 0)
            except ChildProcessError:
                pass
        if relay_sock is not None:
            relay_sock.close()
        if mask is not None:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
        raise
    finally:
        os.close(err_r)
        m_int.close()
    if pid_file:
        from kago.container.state import write_text_atomic
        write_text_atomic(os.path.abspath(pid_file), str(tenant))
    master = None
    if relay_sock is not None:
        from kago import tty
        try:
            master = tty.recv_master(relay_sock)
        finally:
            relay_sock.close()
    if detach:
        return tenant
    from kago.container.run import wait_pid
    rc = wait_pid(tenant, master)
    _debug("process exited", pid=tenant, status=rc)
    return rc


def _intermediate(ch, err_w, ns_fds, cg_dirs, process, keep, console_fd, scf=None,
                  oom=None):
    from kago import sys as ksys
    try:
        ksys.prctl(ksys.PR_SET_DUMPABLE, 0)
        if oom is not None:
            # before joining a user namespace, through the host's /proc
            from kago.process.attrs import set_oom_score_adj
            set_oom_score_adj(oom)
        aff = process.get("execCPUAffinity") or {}
        if aff.get("initial"):
            from kago.process import extras
            extras.cpu_affinity(aff["initial"], "process.execCPUAffinity.initial")
        from kago.cgroups.fs import _write_bytes
        me = str(os.getpid()).encode()
        for d in cg_dirs:
            try:
                _write_bytes(os.path.join(d, "cgroup.procs"), me)
            except FileNotFoundError:
                from kago.errors import CgroupError
                raise CgroupError(f"cgroup {d} does not exist", d) from None
        _debug("intermediate joined the cgroup", pid=os.getpid(), path=",".join(cg_dirs))
        for fd, flag, t in ns_fds:
            if t == "root":         # last: after every setns
                os.fchdir(fd)
                os.chroot(".")
            else:
                ksys.setns(fd, flag, f"{t} namespace of init")
            os.close(fd)
            _debug("namespace joined", type=t)
        if any(t == "user" for _, _, t in ns_fds):
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        _debug("forking the process")
        try:
            pid = os.fork()
        except OSError as e:
            from kago.errors import fork_error
            raise fork_error(e, "the container" if any(t == "pid" for _, _, t in ns_fds)
                             else None) from None
        if pid == 0:
            ch.close()
            _tenant(err_w, process, keep, console_fd, scf)
        if scf is not None:
            scf.tell_pid(pid)
        ch.init_pid(pid)
        os._exit(0)
    except BaseException as e:  # noqa: B902
        ch.send_error(e)
        os._exit(1)


def _tenant(err_w, process, keep, console_fd, scf=None):
    import _signal as signal
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        from kago.process import attrs
        if console_fd >= 0:
            from kago import tty
            master, slave, _ = tty.open_pty(process.get("consoleSize"))
            try:
                tty.send_master(console_fd, master)
            finally:
                os.close(master)
                os.close(console_fd)
            _debug_stderr_moves(max(keep, default=2) + 1)   # fd 2 is the console's from here on
            tty.make_controlling(slave, setsid=True)
            os.close(slave)
        if scf is not None:
            scf.learn_pid()
        aff = process.get("execCPUAffinity") or {}
        if aff.get("final"):
            from kago.process import extras
            extras.cpu_affinity(aff["final"], "process.execCPUAffinity.final")
        path, env = attrs.apply(process, {}, keep, seccomp=scf)
        os.set_inheritable(err_w, False)
        attrs.restore_signals()
        _debug("executing", path=path)
        os.execve(path, process["args"], env)
    except BaseException as e:  # noqa: B902
        if isinstance(e, OSError) and not isinstance(e, KagoError):
            from kago.errors import ExecError
            e = ExecError(f"exec {process['args'][0]!r}: {e.strerror}", e.errno)
        try:
            os.write(err_w, json.dumps(to_wire(e)).encode())
        finally:
            os._exit(127)
