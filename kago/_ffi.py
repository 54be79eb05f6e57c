"""The slice of ``ctypes`` kago uses, built straight on ``_ctypes``.

``import ctypes`` costs ≈ 3–5 ms of cpu and ≈ 0.6 MiB at start-up (it defines
every C type, a dozen loaders and function-pointer factories, and imports
``struct``); ``import _ctypes`` costs ≈ 0.5 ms.  ``create``, ``run`` and
``exec`` pay it once per call (the intermediate and init inherit it), so kago's
syscall layer, capabilities, seccomp and the eBPF device filter use this
module instead: the same C machinery (``_ctypes`` is what ``ctypes`` wraps), so
calls, conversions and errno handling behave exactly as under ``ctypes``.

Names follow ``ctypes`` so ``from kago import _ffi as ctypes`` reads as usual.
Linux, LP64 only (x86_64, aarch64): ``c_long`` is 64 bits.
"""

from _ctypes import (  # noqa: F401  (re-exported)
    FUNCFLAG_CDECL as _CDECL,
    FUNCFLAG_USE_ERRNO as _USE_ERRNO,
    POINTER,
    CFuncPtr as _CFuncPtr,
    Structure,
    _SimpleCData,
    addressof,
    byref,
    dlopen as _dlopen,
    get_errno,
    sizeof,
)


def _simple(name, code):
    return type(name, (_SimpleCData,), {"_type_": code, "__module__": __name__})


c_char = _simple("c_char", "c")
c_ushort = _simple("c_ushort", "H")
c_int = _simple("c_int", "i")
c_uint = _simple("c_uint", "I")
c_long = _simple("c_long", "l")
c_ulong = _simple("c_ulong", "L")
c_char_p = _simple("c_char_p", "z")
c_void_p = _simple("c_void_p", "P")
c_int32 = c_int
c_uint32 = c_uint
c_int64 = c_long
c_uint64 = c_ulong
c_size_t = c_ulong


def create_string_buffer(init, size=None):
    """A mutable ``char[]``: from bytes (NUL added unless ``size`` says) or a size."""
    if isinstance(init, bytes):
        buf = (c_char * (len(init) + 1 if size is None else size))()
        buf.value = init
        return buf
    return (c_char * init)()


class _Func(_CFuncPtr):
    _flags_ = _CDECL | _USE_ERRNO
    _restype_ = c_int


class CDLL:
    """A shared library (``None``: the program itself); functions are looked
    up on first use, return ``int`` unless given a ``restype``, and save errno
    for :func:`get_errno` (as ``ctypes.CDLL(name, use_errno=True)``)."""

    def __init__(self, name, use_errno=True):
        self._name = name
        self._handle = _dlopen(name, 0)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        f = _Func((name, self))
        f.__name__ = name
        setattr(self, name, f)
        return f

    def __repr__(self):
        return f"<kago._ffi.CDLL {self._name!r}>"
