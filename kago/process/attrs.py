"""The process attributes shared by init and exec'd (tenant) processes:
cwd, env, user and groups, capabilities, umask, rlimits, noNewPrivileges and
the fd set.  Runs inside the container (after pivot_root or setns(mnt))."""

from kago import _os as os

from kago import sys as ksys
from kago.errors import ExecError, SyscallError
from kago.spec import RLIMITS  # the one table: validation and setrlimit


def preload(proc=None):
    """Import what apply() needs while the host's filesystem is still visible
    (and, given ``proc``, look at the host's LSMs while /sys is the host's)."""
    from kago import _ffi as ctypes  # noqa: F401
    import _stat as stat  # noqa: F401
    from kago.security import capabilities  # noqa: F401
    if proc and (proc.get("apparmorProfile") or proc.get("selinuxLabel")):
        from kago.security import apparmor, selinux  # noqa: F401
    if proc and (proc.get("ioPriority") or proc.get("scheduler")
                 or proc.get("execCPUAffinity")):
        from kago.process import extras  # noqa: F401
    if proc and proc.get("apparmorProfile"):
        apparmor.enabled()
    if proc and proc.get("selinuxLabel"):
        selinux.enabled()


def warn_capabilities(proc):
    """runc's warning for capability names this kernel can't grant.  Main's
    job: it goes to kago's log (an engine's --log file), where a warning from
    init would land in the container's own stderr."""
    from kago.security import capabilities
    bad = capabilities.unknown((proc or {}).get("capabilities"))
    if bad:
        from kago import log
        log.warning(f"ignoring unknown or unavailable capabilities: [{' '.join(bad)}]")


def apply(proc: dict, extra_env: dict, keep_fds=(), seccomp=None):
    """Apply ``proc`` to this process; returns (path to exec, env dict).

    ``keep_fds``: the fds the process inherits besides stdio (--preserve-fds,
    LISTEN_FDS: those open in the caller, kago.process.fds); every other fd
    >= 3 is made close-on-exec.

    ``seccomp`` (a compiled :class:`kago.security.seccomp.Filter`) is loaded
    where runc loads it: without noNewPrivileges before the capabilities are
    dropped (installing a filter then needs CAP_SYS_ADMIN), with it as late
    as possible - last, after the fds are set."""
    from kago.security import capabilities as caps_mod
    nnp = bool(proc.get("noNewPrivileges"))
    user = proc.get("user") or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    env = {}
    for item in proc.get("env") or ():
        k, _, v = item.partition("=")
        env[k] = v
    if "HOME" not in env:
        env["HOME"] = _home(uid)
    env.update(extra_env)
    cwd = proc.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as e:
        raise ExecError(f"chdir to cwd ({cwd!r}) set in config.json failed: "
                        f"{e.strerror.lower()}", e.errno, cwd) from None
    path = lookup(proc["args"][0], env.get("PATH"))
    _fix_stdio(uid, gid)
    caps = caps_mod.Caps(proc.get("capabilities"))   # main warned (preload)
    if proc.get("apparmorProfile") or proc.get("selinuxLabel"):
        from kago.security import apparmor, selinux
        apparmor.apply_profile(proc.get("apparmorProfile"))
        selinux.set_exec_label(proc.get("selinuxLabel"))
    if proc.get("ioPriority") or proc.get("scheduler"):
        from kago.process import extras
        extras.apply_process(proc)
    if seccomp is not None and not nnp:
        seccomp.load()
    caps_mod.drop_bounding(caps)
    groups = user.get("additionalGids") or []
    try:
        caps_mod.keep_caps(True)
        try:
            os.setgroups(groups)
        except PermissionError:
            # a user namespace whose gid_map was written with setgroups
            # "deny" (an ordinary user mapping its own gid): runc skips it
            if groups:
                from kago.errors import KagoError
                raise KagoError("cannot set any additional groups in a rootless "
                                "container") from None
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        caps_mod.keep_caps(False)
    except OSError as e:
        raise SyscallError(e.errno, "set user", None, f"uid {uid} gid {gid}") from None
    caps_mod.apply(caps)
    umask = user.get("umask")
    os.umask(0o022 if umask is None else umask)
    for rl in proc.get("rlimits") or ():
        ksys.setrlimit(RLIMITS[rl["type"]], rl["soft"], rl["hard"],
                       f"{rl['type']} soft {rl['soft']} hard {rl['hard']}")
    if nnp:
        ksys.prctl(ksys.PR_SET_NO_NEW_PRIVS, 1)
    ksys.close_range_cloexec(3)
    for fd in keep_fds:
        os.set_inheritable(fd, True)
    if seccomp is not None and nnp:
        seccomp.load()
    return path, env


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


def lookup(name, path_env):
    """Resolve ``name`` like Go's exec.LookPath (runc's messages)."""
    import _stat as stat
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as e:
            raise ExecError(f'exec: "{name}": stat {name}: {e.strerror.lower()}',
                            e.errno, name) from None
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
            raise ExecError(f'exec: "{name}": permission denied', 13, name)
        return name
    for d in (path_env or "").split(":"):
        cand = os.path.join(d or ".", name)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise ExecError(f'exec: "{name}": executable file not found in $PATH', 2, name)


def set_oom_score_adj(oom: int):
    """process.oomScoreAdj, for init and every exec'd process (as runc)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(oom))
    except OSError as e:   # lowering it needs CAP_SYS_RESOURCE: say what failed
        raise SyscallError(e.errno, "write", "/proc/self/oom_score_adj",
                           f"oomScoreAdj {oom}") from None


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
            # the uid only, as runc: the group stays the one devpts gave the
            # pty (tty, with the usual gid=5 mount option)
            os.fchown(fd, uid, -1)
        except OSError:
            pass


def restore_signals():
    import _signal
    for s in (_signal.SIGPIPE, _signal.SIGXFSZ):
        _signal.signal(s, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, ())   # nothing blocked after execve
