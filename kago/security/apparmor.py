"""AppArmor: ``process.apparmorProfile``, applied at the next execve.

Like runc, kago writes ``exec <profile>`` to the task's
``attr/apparmor/exec`` (the LSM-stacking interface, Linux 5.8+) or, on older
kernels, ``attr/exec``; the kernel switches profile when the container
process execs.  AppArmor counts as enabled when
``/sys/module/apparmor/parameters/enabled`` reads ``Y`` (what runc and
``aa-enabled`` check).  A profile asked for on a host without AppArmor is an
error, never silently ignored.

``SYS`` and ``PROC`` are module attributes so tests can point them at a fake
tree; :func:`enabled` caches its answer (call it before pivot_root: the
container may have no /sys).
"""

from kago import _os as os

from kago.errors import KagoError

SYS = "/sys"
PROC = "/proc"

_enabled = None


class AppArmorError(KagoError):
    def _fields(self):
        return {}


def enabled(refresh: bool = False) -> bool:
    global _enabled
    if _enabled is None or refresh:
        try:
            with open(os.path.join(SYS, "module/apparmor/parameters/enabled"), "rb") as f:
                _enabled = f.read(1) == b"Y"
        except OSError:
            _enabled = False
    return _enabled


def _attr_path(pid="thread-self"):
    for rel in ("attr/apparmor/exec", "attr/exec"):
        p = os.path.join(PROC, str(pid), rel)
        if os.path.exists(p):
            return p
    return None


def apply_profile(name: str, where: str = "process.apparmorProfile"):
    """Ask for ``name`` to be applied at the next execve of this task."""
    if not name:
        return
    if not enabled():
        raise AppArmorError(f"apparmor profile {name!r} is set ({where}) but AppArmor "
                            "is not enabled on this host")
    path = _attr_path()
    if path is None:
        raise AppArmorError(f"apparmor: no attr/apparmor/exec or attr/exec under "
                            f"{PROC}/thread-self: cannot apply profile {name!r}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, f"exec {name}".encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise AppArmorError(f"apparmor: apply profile {name!r} ({path}): {e.strerror}"
                            + (" (is the profile loaded?)" if e.errno in (2, 22) else ""),
                            errno=e.errno) from None
