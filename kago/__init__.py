"""kago: an OCI container runtime in Python.

    from kago import ContainerBuilder, Container
    c = ContainerBuilder("demo", root="/run/kago").as_init("/path/to/bundle").build()
    c.start()
    print(c.state()["status"])
    c.kill("SIGKILL")
    c.delete(force=True)

Names are imported lazily so that ``import kago`` costs almost nothing.
"""

__version__ = "0.1.0"
OCI_VERSION = "1.2.0"

_LAZY = {
    "ContainerBuilder": "kago.container.builder",
    "Container": "kago.container.container",
    "KagoError": "kago.errors",
    "SpecError": "kago.errors",
    "ContainerNotFound": "kago.errors",
    "ContainerExists": "kago.errors",
    "InvalidState": "kago.errors",
    "InvalidArgument": "kago.errors",
    "SyscallError": "kago.errors",
    "HookError": "kago.errors",
    "CgroupError": "kago.errors",
    "ExecError": "kago.errors",
}

__all__ = sorted(_LAZY)

from sys import modules as _modules   # (sys is built in: free)


def _debug(msg, **fields):
    """A ``level=debug`` record of one step, when ``--debug`` asked for them.

    Free otherwise: kago.log is imported only when logging was asked for
    (kago.cli), and this never imports it - it looks it up.  The fork chain's
    children call it too: kago.log and its open ``--log`` file (O_APPEND) are
    inherited, so their lines land in the same file, in order."""
    log = _modules.get("kago.log")
    if log is not None and log._cfg.debug:
        log.debug(msg, **fields)


def _debug_stderr_moves(low):
    """In a child about to make fd 2 the container's console: --debug records
    that go to stderr keep going to kago's stderr (a close-on-exec copy of
    it, numbered ``low`` or above: past the preserved fds), never into the
    container's terminal.  fcntl is loaded (a console's preload)."""
    log = _modules.get("kago.log")
    fcntl = _modules.get("fcntl")
    if log is not None and log._cfg.debug and log._cfg.fd is None and fcntl is not None:
        log._cfg.fd = fcntl.fcntl(2, fcntl.F_DUPFD_CLOEXEC, low)


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'kago' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value
