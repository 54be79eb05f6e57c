"""OCI hooks: run one kind of hook with the state JSON on stdin, honouring
``timeout``.  No subprocess module (import cost, and init may run hooks after
pivot_root): a plain fork/execve, a pipe for stdin, a pidfd to wait on."""

from kago import _debug
from kago import _json as json
from kago import _os as os

from kago.errors import HookError

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer",
         "poststart", "poststop")


def run_hooks(kind: str, hooks, state: dict, cwd: str | None = None):
    """Run ``hooks`` (the spec's list for ``kind``) in order, each in ``cwd``
    (None: ours); the first failure raises :class:`HookError` naming the hook
    and why.  poststop is the exception (the spec: its failures MUST be
    logged and the remaining hooks run): each failure is a warning in
    kago's log and the next hook runs."""
    if not hooks:
        return
    data = json.dumps(state).encode()
    if kind == "poststop":
        return _poststop(hooks, data, cwd)
    for i, h in enumerate(hooks):
        run_one(kind, h, data, cwd, i)


def _poststop(hooks, data, cwd):
    """Every poststop hook runs; a failure is a warning (run by main, in delete)."""
    for i, h in enumerate(hooks):
        try:
            run_one("poststop", h, data, cwd, i)
        except HookError as e:
            from kago import log
            log.warning(f"poststop hook failed: {e}")


def run_one(kind: str, hook: dict, data: bytes, cwd: str | None = None, index: int = 0):
    import select
    path = hook["path"]
    args = hook.get("args") or [path]
    env = hook.get("env")
    if env is None:
        # no env: kago's own environment, as runc's Go exec with a nil Env
        envd = os._environb
    else:
        envd = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    timeout = hook.get("timeout")
    r, w = os.pipe()
    er, ew = os.pipe()
    pid = os.fork()
    if pid == 0:
        step = "exec"
        try:
            os.close(w)
            os.close(er)
            os.dup2(r, 0)
            os.set_inheritable(0, True)     # r may be 0 itself (stdin closed)
            # the hook's stdout goes to our stderr so it can't corrupt output
            # (runc passes its own stdio; engines read the runtime's stdout)
            os.dup2(2, 1)
            os.set_inheritable(ew, False)
            if cwd is not None:
                step = "chdir"
                os.chdir(cwd)
                step = "exec"
            os.execve(path, args, envd)
        except OSError as e:
            try:
                os.write(ew, f"{step} {e.errno}".encode())
            finally:
                os._exit(127)
        os._exit(127)
    os.close(r)
    os.close(ew)
    _debug("running hook", kind=kind, index=index, path=path, pid=pid)
    import time
    deadline = time.monotonic() + timeout if timeout else None
    pfd = -1
    try:
        err = os.read(er, 64)       # EOF: the hook exec'd (er is close-on-exec)
        if err:
            os.waitpid(pid, 0)
            step, _, num = err.decode().partition(" ")
            why = os.strerror(int(num))
            raise HookError(kind, path, f"exec failed: {why}" if step == "exec" else
                            f"chdir to {cwd} failed: {why}", index)
        pfd = os.pidfd_open(pid)
        # the state goes in without blocking, so a hook that never reads a
        # state bigger than the pipe can't make the timeout miss
        os.set_blocking(w, False)
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(w, view):]
                continue
            except BlockingIOError:
                pass
            except BrokenPipeError:
                break
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready_r, ready_w, _ = select.select([pfd], [w], [], left)
            if pfd in ready_r:
                break               # it exited without reading it all
            if not ready_r and not ready_w:
                break               # timed out: handled below
        os.close(w)
        w = -1
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([pfd], [], [], left)
        if not ready:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise HookError(kind, path, f"timed out after {timeout}s", index)
        _, status = os.waitpid(pid, 0)
    finally:
        if w >= 0:
            os.close(w)
        if pfd >= 0:
            os.close(pfd)
        os.close(er)
    if os.WIFSIGNALED(status):
        raise HookError(kind, path, f"killed by signal {os.WTERMSIG(status)}", index)
    code = os.WEXITSTATUS(status)
    if code != 0:
        raise HookError(kind, path, f"exit status {code}", index)
