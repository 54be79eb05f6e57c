"""OCI hooks: run one kind of hook with the state JSON on stdin, honouring
``timeout``.  No subprocess module (import cost, and init may run hooks after
pivot_root): a plain fork/execve, a pipe for stdin, a pidfd to wait on."""

from kago import _json as json
import os

from kago.errors import HookError

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer",
         "poststart", "poststop")


def run_hooks(kind: str, hooks, state: dict):
    """Run ``hooks`` (the spec's list for ``kind``) in order; the first failure
    raises :class:`HookError` naming the hook and why."""
    if not hooks:
        return
    data = json.dumps(state).encode()
    for h in hooks:
        run_one(kind, h, data)


def run_one(kind: str, hook: dict, data: bytes):
    import select
    path = hook["path"]
    args = hook.get("args") or [path]
    env = hook.get("env") or []
    envd = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    timeout = hook.get("timeout")
    r, w = os.pipe()
    er, ew = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            os.close(er)
            os.dup2(r, 0)
            # the hook's stdout goes to our stderr so it can't corrupt output
            # (runc passes its own stdio; engines read the runtime's stdout)
            os.dup2(2, 1)
            os.set_inheritable(ew, False)
            os.execve(path, args, envd)
        except OSError as e:
            try:
                os.write(ew, f"{e.errno}".encode())
            finally:
                os._exit(127)
        os._exit(127)
    os.close(r)
    os.close(ew)
    try:
        try:
            os.write(w, data)
        except BrokenPipeError:
            pass
        os.close(w)
        w = -1
        err = os.read(er, 64)
        if err:
            os.waitpid(pid, 0)
            raise HookError(kind, path, f"exec failed: {os.strerror(int(err))}")
        if timeout:
            pfd = os.pidfd_open(pid)
            try:
                ready, _, _ = select.select([pfd], [], [], timeout)
            finally:
                os.close(pfd)
            if not ready:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                raise HookError(kind, path, f"timed out after {timeout}s")
        _, status = os.waitpid(pid, 0)
    finally:
        if w >= 0:
            os.close(w)
        os.close(er)
    if os.WIFSIGNALED(status):
        raise HookError(kind, path, f"killed by signal {os.WTERMSIG(status)}")
    code = os.WEXITSTATUS(status)
    if code != 0:
        raise HookError(kind, path, f"exit status {code}")
