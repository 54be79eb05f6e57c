"""The container's init: becomes the container process.

Runs inside the new namespaces (pid 1 of a new pid namespace).  Builds the
rootfs, runs createContainer hooks, pivots, applies the process attributes,
reports ``ready`` to main and blocks on exec.fifo until ``start``; then runs
startContainer hooks and execs ``process.args``.  Never returns.
"""

import json
import os
import signal

from kago import sys as ksys
from kago.errors import ExecError, SpecError, SyscallError, to_wire

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}


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
    os.umask(0)
    os.setsid()
    ksys.prctl(ksys.PR_SET_DUMPABLE, 0)
    host_pid = ctx.host_pid = int(os.readlink("/proc/self"))  # the host's /proc
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
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(oom))
    from kago.rootfs import Rootfs
    rootfs = Rootfs(ctx)
    rootfs.prepare()
    hooks = spec.get("hooks") or {}
    if hooks.get("prestart") or hooks.get("createRuntime"):
        ch.request_hooks()
    if hooks.get("createContainer"):
        from kago.hooks import run_hooks
        run_hooks("createContainer", hooks["createContainer"],
                  ctx.oci_state("creating", host_pid))
    # exec.fifo: opened O_PATH now, reopened for writing through /proc after pivot
    fifo = os.open(os.path.join(ctx.state_dir, "exec.fifo"), os.O_PATH | os.O_CLOEXEC)
    # nothing can be imported from the host after pivot_root: import now
    import resource  # noqa: F401
    import select  # noqa: F401
    import stat  # noqa: F401
    import kago.hooks  # noqa: F401
    rootfs.pivot(ctx.no_pivot)
    for key, value in (linux.get("sysctl") or {}).items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise SyscallError(e.errno, "write sysctl", key, "linux.sysctl") from None
    if "hostname" in spec:
        ksys.sethostname(spec["hostname"])
    if "domainname" in spec:
        ksys.setdomainname(spec["domainname"])
    rootfs.finalize()
    # the process
    user = proc.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    env = _env(proc.get("env") or [])
    if "HOME" not in env:
        env["HOME"] = _home(uid)
    env.update(ctx.extra_env)
    cwd = proc.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise ExecError(f"chdir to cwd ({cwd!r}) set in config.json failed: {e.strerror}",
                        e.errno, cwd) from None
    path = _lookup(proc["args"][0], env.get("PATH"))
    _fix_stdio(uid, gid)
    groups = user.get("additionalGids") or []
    try:
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise SyscallError(e.errno, "set user", None, f"uid {uid} gid {gid}") from None
    umask = user.get("umask")
    os.umask(0o022 if umask is None else umask)
    if proc.get("rlimits"):
        import resource
        for rl in proc["rlimits"]:
            try:
                resource.setrlimit(RLIMITS[rl["type"]], (rl["soft"], rl["hard"]))
            except (OSError, ValueError) as e:
                raise SyscallError(getattr(e, "errno", 1) or 1, "setrlimit", None,
                                   f"{rl['type']} soft {rl['soft']} hard {rl['hard']}") \
                    from None
    if proc.get("noNewPrivileges"):
        ksys.prctl(ksys.PR_SET_NO_NEW_PRIVS, 1)
    # fds: 0-2, then the preserved/socket-activation ones; the rest close on exec
    keep = ctx.keep_fds
    for fd in range(3, 3 + keep):
        os.set_inheritable(fd, True)
    ksys.close_range_cloexec(3 + keep)
    ctx.exec_path = path
    ctx.exec_env = env
    ctx.fifo = fifo
    ch.ready()


def _wait_and_exec(ctx):
    try:
        fd = os.open(f"/proc/self/fd/{ctx.fifo}", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        os._exit(1)
    try:
        hooks = (ctx.spec.get("hooks") or {}).get("startContainer")
        if hooks:
            from kago.hooks import run_hooks
            run_hooks("startContainer", hooks, ctx.oci_state("created", ctx.host_pid))
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


def _env(lst):
    env = {}
    for item in lst:
        k, sep, v = item.partition("=")
        env[k] = v
    return env


def _home(uid):
    try:
        with open("/etc/passwd") as f:
            for line in f:
                p = line.rstrip("\n").split(":")
                if len(p) >= 6 and p[2] == str(uid):
                    return p[5] or "/"
    except OSError:
        pass
    return "/"


def _lookup(name, path_env):
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as e:
            raise ExecError(f'exec: "{name}": stat {name}: {e.strerror.lower()}',
                            e.errno, name) from None
        import stat
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise ExecError(f'exec: "{name}": permission denied', 13, name)
        return name
    for d in (path_env or "").split(":"):
        if not d:
            d = "."
        cand = os.path.join(d, name)
        try:
            if os.access(cand, os.X_OK) and not os.path.isdir(cand):
                return cand
        except OSError:
            continue
    raise ExecError(f'exec: "{name}": executable file not found in $PATH', 2, name)


def _fix_stdio(uid, gid):
    null = os.makedev(1, 3)
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_uid == uid or st.st_rdev == null:
            continue
        try:
            os.fchown(fd, uid, gid)
        except OSError:
            pass


def check_spec(spec, types):
    """Checks init needs that the schema can't express (runc's validator)."""
    if "mount" not in types:
        raise SpecError("linux.namespaces", "a mount namespace is required")
    if spec.get("hostname") and "uts" not in types:
        raise SpecError("hostname", "unable to set hostname without a private UTS namespace")
    if spec.get("domainname") and "uts" not in types:
        raise SpecError("domainname",
                        "unable to set domainname without a private UTS namespace")
