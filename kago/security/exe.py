"""CVE-2019-5736: the runtime's binary must not be writable from a container.

kago's processes that a container can see - its init until it execs
``process.args``, an exec'd process until it execs - run the Python
interpreter.  A process in the container that may ptrace-read one of them
(root with CAP_SYS_PTRACE and no user namespace: PR_SET_DUMPABLE 0 does not
stop that) can open ``/proc/<pid>/exe``, keep the descriptor, and once the
interpreter is no longer busy reopen it for writing through
``/proc/self/fd/N`` - overwriting the host's Python, which the next kago (or
anything else) then runs as root.  runc closes this by running from a sealed
memfd copy or a read-only bind mount of itself.

kago runs from its own copy of the interpreter, ``<prefix>/libexec/pythonX.Y``,
that is a **read-only bind mount of itself**: whatever path a container takes
to that file (/proc/<pid>/exe, /proc/<pid>/map_files, a kept fd reopened
through /proc/self/fd), it goes through that mount, so opening it for
writing fails with EROFS.  The mount can't be made writable from inside a
container: it is not in the container's mount namespace.

* :func:`install` makes the copy and the mount (setup.sh calls it; the
  launcher's ``#!`` names the copy).  Idempotent.
* :func:`ensure_protected` runs in the CLI before ``create``/``run``/``exec``:
  if this process's interpreter is not on a read-only mount (a reboot dropped
  the mount, or the launcher names another interpreter) it (re)makes the
  mount and re-executes the command line through the protected copy, once.

With a user namespace the container's root has no CAP_SYS_PTRACE over kago's
processes at all (they belong to the initial user namespace and are
non-dumpable), so /proc/<pid>/exe can't even be opened.
"""

from kago import _os as os
import sys

PREFIX = os.getenv("KAGO_PREFIX") or "/opt/kago"
_REEXEC_ENV = "_KAGO_EXE_REEXEC"
ST_RDONLY = 1


def interp_path(prefix: str = None) -> str:
    v = sys.version_info
    return os.path.join(prefix or PREFIX, "libexec", f"python{v.major}.{v.minor}")


def protected(path: str = "/proc/self/exe") -> bool:
    """Is ``path`` (default: this process's executable) on a read-only mount?"""
    try:
        return bool(os.statvfs(path).f_flag & ST_RDONLY)
    except OSError:
        return False


def _is_ro_mountpoint(path: str) -> bool:
    """Is the topmost mount exactly at ``path`` read-only?"""
    real = os.path.realpath(path)
    ro = False
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                p = line.split()
                if p[4].replace("\\040", " ") == real:
                    ro = "ro" in p[5].split(",")
    except OSError:
        return False
    return ro


def install(src: str = None, dst: str = None) -> str:
    """Copy the interpreter ``src`` (default: the running one) to ``dst``
    (default :func:`interp_path`) and make ``dst`` a read-only bind mount of
    itself.  Returns ``dst``."""
    from kago import sys as ksys
    src = os.path.realpath(src or sys.executable)
    dst = dst or interp_path()
    if os.path.realpath(dst) != src:
        st = os.stat(src)
        try:
            dt = os.stat(dst)
            same = dt.st_size == st.st_size and int(dt.st_mtime) == int(st.st_mtime)
        except FileNotFoundError:
            same = False
        if not same:
            # a fresh file replaced by rename: a mount on the old one goes with it
            _umount_all(dst)
            os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
            tmp = f"{dst}.{os.getpid()}.tmp"
            with open(src, "rb") as fi, open(tmp, "wb") as fo:
                while True:
                    b = fi.read(1 << 20)
                    if not b:
                        break
                    fo.write(b)
            os.chmod(tmp, 0o755)
            os.utime(tmp, (st.st_atime, st.st_mtime))
            os.rename(tmp, dst)
    if not _is_ro_mountpoint(dst):
        ksys.mount(dst, dst, None, ksys.MS_BIND)
        ksys.mount(None, dst, None, ksys.MS_BIND | ksys.MS_REMOUNT | ksys.MS_RDONLY)
    return dst


def _umount_all(path):
    from kago import sys as ksys
    from kago.errors import SyscallError
    for _ in range(8):
        try:
            ksys.umount2(path, 2)  # MNT_DETACH
        except SyscallError:
            return


def ensure_protected(argv=None):
    """For the CLI: make sure this process runs a read-only interpreter;
    otherwise set one up and re-exec the command line through it.  Returns
    only if protected (or if nothing can be done: not root, or it failed)."""
    reexec = os.getenv(_REEXEC_ENV) is not None
    if reexec:                     # (os.environ: the real os, only then)
        os.environ.pop(_REEXEC_ENV, None)
    if protected():
        return True
    if os.geteuid() != 0 or reexec:
        return False
    try:
        dst = install()
    except Exception as e:  # noqa: BLE001 - degrade to a warning
        _warn(f"cannot protect the interpreter against CVE-2019-5736: {e}")
        return False
    os.environ[_REEXEC_ENV] = "1"
    args = reexec_args(dst, argv if argv is not None else sys.argv)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    os.execv(dst, args)


def reexec_args(interp: str, argv) -> list:
    """The command line that runs kago's CLI again on ``interp`` with ``-IS``.

    ``-IS`` drops every site-packages (and -I the script's own directory),
    which is where a venv or ``pip install`` put kago: ``python -m kago`` or
    a console script from such an environment would not find kago any more.
    So the new interpreter is told where *this* kago came from - the
    directory holding the ``kago`` package, appended after the standard
    library, as the launcher does - and nothing else of the old environment.
    ``argv[0]`` is kept for messages."""
    import kago
    home = os.path.dirname(os.path.dirname(os.path.abspath(kago.__file__)))
    code = (f"import sys; sys.path.append({home!r}); sys.argv[0] = {argv[0]!r}; "
            "from kago.cli import main; main()")
    return [interp, "-IS", "-c", code, *argv[1:]]


def _warn(msg):
    try:
        os.write(2, f"kago: warning: {msg}\n".encode())
    except OSError:
        pass
