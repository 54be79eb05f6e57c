"""kago's exception tree.

Every error kago raises derives from :class:`KagoError`.  Errors raised inside a
child of the fork chain are serialised (:func:`to_wire`) and re-raised in the
parent as the same type with the same fields (:func:`from_wire`).
"""



class KagoError(Exception):
    """Root of kago's errors.  ``str(err)`` is one readable line."""

    def __init__(self, message: str = "", **fields):
        super().__init__(message)
        self.message = message
        for k, v in fields.items():
            setattr(self, k, v)

    def __str__(self) -> str:
        return self.message

    # wire format: {"type": ..., "message": ..., fields...}
    def _fields(self) -> dict:
        return {}


class SpecError(KagoError):
    """config.json is malformed: ``path`` is the JSON path (``process.args[0]``)."""

    def __init__(self, path: str, reason: str):
        msg = f"config.json: {path}: {reason}" if path else f"config.json: {reason}"
        super().__init__(msg, path=path, reason=reason)

    def _fields(self):
        return {"path": self.path, "reason": self.reason}


class ContainerNotFound(KagoError):
    def __init__(self, id: str):
        super().__init__(f"container {id!r} does not exist", id=id)

    def _fields(self):
        return {"id": self.id}


class ContainerExists(KagoError):
    def __init__(self, id: str):
        super().__init__(f"container {id!r} already exists", id=id)

    def _fields(self):
        return {"id": self.id}


class ContainerDamaged(KagoError):
    """The container's state directory is damaged (a state file that is not
    a regular file, not valid JSON or not what kago wrote): only ``delete
    --force`` can act on it, and it removes it."""

    def __init__(self, id: str, reason: str):
        super().__init__(f"container state is damaged ({reason}): "
                         f"\"kago delete --force {id}\" removes it", id=id, reason=reason)

    def _fields(self):
        return {"id": self.id, "reason": self.reason}


class InvalidState(KagoError):
    def __init__(self, id: str, status: str, wanted: str):
        super().__init__(f"container {id!r} is {status}, not {wanted}",
                         id=id, status=status, wanted=wanted)

    def _fields(self):
        return {"id": self.id, "status": self.status, "wanted": self.wanted}


class InvalidArgument(KagoError):
    """A bad argument from the caller (an id with a slash, a bad signal, ...)."""

    def _fields(self):
        return {}


class SyscallError(KagoError, OSError):
    """A failed system call: ``errno``, ``call`` and (if any) ``path``."""

    def __init__(self, errno_: int, call: str, path: str | None = None, detail: str = ""):
        from kago import _os as os
        what = f"{call} {path}" if path else call
        if detail:
            what = f"{what} ({detail})"
        msg = f"{what}: {os.strerror(errno_)}"
        KagoError.__init__(self, msg, call=call, path=path, detail=detail)
        self.errno = errno_
        self.strerror = os.strerror(errno_)
        self.filename = path

    def __str__(self):
        return self.message

    def _fields(self):
        return {"errno_": self.errno, "call": self.call, "path": self.path,
                "detail": self.detail}


class HookError(KagoError):
    """A hook failed: runc's words (``error running createRuntime hook #1:``,
    ``index`` counts from 0 within its kind), then the hook's path and why."""

    def __init__(self, kind: str, path: str, reason: str, index: int = 0):
        super().__init__(f"error running {kind} hook #{index}: {path}: {reason}",
                         kind=kind, hook=path, reason=reason, index=index)

    def _fields(self):
        return {"kind": self.kind, "path": self.hook, "reason": self.reason,
                "index": self.index}


class CgroupError(KagoError):
    def __init__(self, message: str, path: str | None = None):
        super().__init__(message, path=path)

    def _fields(self):
        return {"message": self.message, "path": self.path}


class ExecError(KagoError):
    """The container process could not be started (missing binary, bad cwd)."""

    def __init__(self, message: str, errno_: int = 0, path: str | None = None):
        super().__init__(message, errno=errno_, path=path)

    def _fields(self):
        return {"message": self.message, "errno_": self.errno, "path": self.path}


_TYPES = {c.__name__: c for c in (KagoError, SpecError, ContainerNotFound,
                                  ContainerExists, InvalidState, InvalidArgument,
                                  SyscallError, HookError, CgroupError, ExecError)}


def fork_error(exc: OSError, pidns: str | None) -> SyscallError:
    """A failed fork of the chain's last process, said with where it forked.

    ``pidns`` names the pid namespace it was to enter (None: a new one).  The
    kernel refuses a fork into a pid namespace whose init has exited with
    ENOMEM, which alone reads as a memory shortage.
    """
    if pidns is None:
        return SyscallError(exc.errno, "fork")
    detail = "its init has exited" if exc.errno == 12 else ""   # ENOMEM
    return SyscallError(exc.errno, "fork into the pid namespace of", pidns, detail)


def to_wire(exc: BaseException) -> dict:
    """Serialise an exception raised in a child for the parent."""
    if isinstance(exc, KagoError):
        return {"type": type(exc).__name__, "message": exc.message,
                "fields": exc._fields()}
    if isinstance(exc, OSError) and exc.errno:
        msg = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
        return {"type": "SyscallError", "message": msg,
                "fields": {"errno_": exc.errno, "call": type(exc).__name__,
                           "path": exc.filename, "detail": ""}}
    return {"type": "KagoError", "message": f"{type(exc).__name__}: {exc}", "fields": {}}


def from_wire(d: dict) -> KagoError:
    """Rebuild the exception :func:`to_wire` serialised."""
    cls = _TYPES.get(d.get("type"), KagoError)
    fields = d.get("fields") or {}
    try:
        if cls is KagoError or cls is InvalidArgument:
            err = cls(d.get("message", ""))
        else:
            err = cls(**fields)
    except TypeError:
        err = KagoError(d.get("message", ""))
    # keep the child's exact text (it may carry context the fields don't)
    err.message = d.get("message", err.message)
    return err
