"""CRIU through its command line (``criu dump | pre-dump | restore``).

runc talks to ``criu swrk`` over a socketpair with protobuf messages; kago runs
the command line instead: every option runc sets in its RPC request has a
command-line twin in criu 3.17 (``--root``, ``--external mnt[..]``, ``--inherit-fd``,
``--restore-sibling``, ``--pidfile``, ``--freeze-cgroup``, ``--cgroup-root``,
``--action-script`` for runc's ``setup-namespaces`` notification), criu's exit
status and its log say what went wrong, and nothing needs a protobuf runtime.
The two RPC-only conveniences have plain equivalents: a terminal's pty is an
external ``tty[rdev:dev]`` at dump and an ``--inherit-fd`` of a pty kago opens
at restore (runc's orphan-pts-master); the cgroup is joined by criu's process
before it execs (runc's criuApplyCgroups).

Only checkpoint and restore import this module.
"""

from kago import _os as os
from kago.errors import KagoError

LOG_LEVEL = "4"          # runc's
MIN_VERSION = (3, 0)     # runc needs the VERSION RPC (3.0); nothing older is packaged


class CriuError(KagoError):
    pass


def _which(name):
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for d in (os.getenv("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        p = os.path.join(d or ".", name)
        if os.access(p, os.X_OK) and not os.path.isdir(p):
            return p
    return None


def find(criu="criu") -> str:
    """The criu binary (``--criu``, default ``criu`` on PATH): refused early,
    in runc's words, when missing or too old."""
    if not criu or "\0" in criu:
        raise CriuError("invalid --criu path")
    path = _which(criu)
    if path is None:
        raise CriuError(f"checkpoint/restore needs criu: exec: \"{criu}\": "
                        "executable file not found in $PATH")
    v = version(path)
    if v < MIN_VERSION:
        raise CriuError(f"CRIU version {'.'.join(map(str, v))} must be "
                        f"{'.'.join(map(str, MIN_VERSION))} or higher")
    return path


def version(path) -> tuple:
    import subprocess
    try:
        out = subprocess.run([path, "--version"], stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise CriuError(f"cannot run {path} --version: {e}") from None
    for line in out.splitlines():
        if line.startswith("Version:"):
            try:
                return tuple(int(x) for x in line.split()[1].split(".")[:3])
            except ValueError:
                break
    raise CriuError(f"cannot parse the output of {path} --version")


def run(path, action, args, *, work_dir, log_name, pass_fds=(), preexec=None, env=None):
    """Run ``criu ACTION ARGS -W WORK -o LOG -v4``; a failure is a
    :class:`CriuError` with criu's first error line and the log file, as
    runc's ``criu failed: type DUMP errno N / log file: PATH``."""
    import subprocess
    argv = [path, action, *args, "-W", work_dir, "-o", log_name, "-v" + LOG_LEVEL]
    try:
        p = subprocess.Popen(argv, stdin=None, stdout=None, stderr=subprocess.PIPE,
                             pass_fds=tuple(pass_fds), preexec_fn=preexec,
                             close_fds=True, env=env)
    except OSError as e:
        raise CriuError(f"cannot run {path}: {e.strerror}") from None
    _, err = p.communicate()
    if p.returncode != 0:
        log = os.path.join(work_dir, log_name)
        raise CriuError(f"criu failed: type {action.upper().replace('-', '_')} exit status "
                        f"{p.returncode}{_first_error(log, err)}\nlog file: {log}")


def _first_error(log, stderr) -> str:
    # criu's own stderr first (an action script's error), then its log
    lines = (stderr or b"").decode(errors="replace").splitlines()
    try:
        with open(log, errors="replace") as f:
            lines += f.read().splitlines()
    except OSError:
        pass
    for line in lines:
        # the kernel-feature probes' errors (tun, ...) are not the failure
        if "Error (" in line and "kerndat" not in line and "tun:" not in line \
                and "FAILED" not in line:
            return ": " + line.split("Error (", 1)[1].split("): ", 1)[-1].strip()
    return ""


def check_name(value, what):
    """A path criu gets inside ``--external mnt[KEY]:VAL``: no ``]`` (ends the
    key), ``:`` (splits it), ``,`` or newline."""
    for ch in "]:,\n\0":
        if ch in value:
            raise CriuError(f"{what} {value!r}: contains {ch!r}, which criu's "
                            "--external syntax cannot carry")
    return value
