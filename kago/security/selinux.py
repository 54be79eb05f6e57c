"""SELinux: ``process.selinuxLabel`` (the label the container process execs
with) and ``linux.mountLabel`` (the ``context=`` option of the container's
mounts).

The exec label is written to the task's ``attr/exec`` (as go-selinux's
SetExecLabel does); the kernel applies it at the next execve.  SELinux counts
as enabled when selinuxfs is mounted (``/sys/fs/selinux/enforce`` exists) and
the task's ``attr/current`` is not ``kernel`` - go-selinux's check.  A label
asked for on a host without SELinux is an error, as in runc ("selinux label
is specified in config, but selinux is disabled or not supported"); a mount
label there is ignored, as crun and go-selinux do.

``SYS`` and ``PROC`` are module attributes so tests can point them at a fake
tree; :func:`enabled` caches its answer (call it before pivot_root).
"""

from kago import _os as os

from kago.errors import KagoError

SYS = "/sys"
PROC = "/proc"
SELINUXFS = "fs/selinux"

_enabled = None


class SELinuxError(KagoError):
    def _fields(self):
        return {}


def enabled(refresh: bool = False) -> bool:
    global _enabled
    if _enabled is None or refresh:
        _enabled = False
        if os.path.exists(os.path.join(SYS, SELINUXFS, "enforce")):
            try:
                with open(os.path.join(PROC, "self/attr/current"), "rb") as f:
                    cur = f.read().rstrip(b"\0\n")
                _enabled = bool(cur) and cur != b"kernel"
            except OSError:
                _enabled = False
    return _enabled


def _check(label, where):
    if not enabled():
        raise SELinuxError(f"selinux label {label!r} is specified ({where}), but SELinux "
                           "is disabled or not supported on this host")


def set_exec_label(label: str, where: str = "process.selinuxLabel"):
    """The label this task's next execve runs with."""
    if not label:
        return
    _check(label, where)
    path = os.path.join(PROC, "thread-self/attr/exec")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, label.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise SELinuxError(f"selinux: set exec label {label!r} ({path}): {e.strerror}",
                           errno=e.errno) from None


def mount_data(data: str, label: str, fstype: str = "") -> str:
    """``data`` with ``context="<label>"`` added (runc's label.FormatMountLabel).
    No label, or a host without SELinux: ``data`` unchanged - as crun and
    go-selinux (whose FormatMountLabel adds nothing when SELinux is off) do,
    with a debug line (engines send a mountLabel whatever the host)."""
    if not label:
        return data
    if not enabled():
        import sys
        log = sys.modules.get("kago.log")   # loaded when --debug asked for it;
        if log is not None:                 # init may not import it now
            log.debug(f"linux.mountLabel {label!r} ignored: SELinux is not enabled")
        return data
    ctx = f'context="{label}"'
    return f"{data},{ctx}" if data else ctx
