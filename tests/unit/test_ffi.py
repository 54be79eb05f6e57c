"""kago._ffi: the slice of ctypes kago uses, straight on _ctypes."""

import ctypes
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kago import _ffi

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["c_char", "c_ushort", "c_int", "c_uint", "c_long",
                                  "c_ulong", "c_char_p", "c_void_p", "c_int32",
                                  "c_uint32", "c_int64", "c_uint64", "c_size_t"])
def test_types_match_ctypes(name):
    ours, theirs = getattr(_ffi, name), getattr(ctypes, name)
    assert _ffi.sizeof(ours) == ctypes.sizeof(theirs)
    assert ours._type_ == theirs._type_ or name in ("c_int64", "c_uint64", "c_size_t")


def test_call_returns_int_and_saves_errno():
    libc = _ffi.CDLL("libc.so.6")
    assert libc.getpid() == os.getpid()
    assert libc.close(-1) == -1
    assert _ffi.get_errno() == errno.EBADF
    assert libc.getpid is libc.getpid          # looked up once


def test_program_handle_and_missing_symbol():
    libc = _ffi.CDLL(None)
    assert libc.getppid() == os.getppid()
    with pytest.raises(AttributeError, match="no_such_symbol_kago"):
        libc.no_such_symbol_kago
    with pytest.raises(OSError):
        _ffi.CDLL("libkago-does-not-exist.so.9")


def test_structure_byref_and_unsigned_args(tmp_path):
    # openat2 with a struct open_how, as kago.sys does it
    class How(_ffi.Structure):
        _fields_ = [("flags", _ffi.c_uint64), ("mode", _ffi.c_uint64),
                    ("resolve", _ffi.c_uint64)]
    (tmp_path / "f").write_text("x")
    how = How(os.O_RDONLY | os.O_CLOEXEC, 0, 0x10)
    libc = _ffi.CDLL("libc.so.6")
    dfd = os.open(tmp_path, os.O_PATH)
    try:
        fd = libc.syscall(437, dfd, b"f", _ffi.byref(how), _ffi.c_size_t(_ffi.sizeof(how)))
        assert fd >= 0, _ffi.get_errno()
        assert os.read(fd, 1) == b"x"
        os.close(fd)
        assert libc.syscall(437, dfd, b"../..", _ffi.byref(how),
                            _ffi.c_size_t(_ffi.sizeof(how))) >= 0  # clamped to the root
    finally:
        os.close(dfd)


def test_arrays_buffers_and_prototypes():
    buf = _ffi.create_string_buffer(b"abc")
    assert (len(buf), buf.value, buf.raw) == (4, b"abc", b"abc\0")
    assert len(_ffi.create_string_buffer(b"ab", 8)) == 8
    assert _ffi.create_string_buffer(16).raw == b"\0" * 16
    arr = (_ffi.c_ulong * 3)(1, 2, 3)
    assert list(arr) == [1, 2, 3] and _ffi.addressof(arr) > 0
    libc = _ffi.CDLL("libc.so.6")
    libc.strlen.argtypes = [_ffi.c_char_p]
    libc.strlen.restype = _ffi.c_size_t
    assert libc.strlen(b"kago") == 4
    libc.getenv.restype = _ffi.c_void_p
    assert libc.getenv(b"KAGO_SURELY_UNSET_VAR") is None


def test_create_path_does_not_import_ctypes():
    # the whole point: kago's syscall layer and capabilities without `ctypes`
    code = ("import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "from kago import sys as ksys\n"
            "from kago.security import capabilities, seccomp\n"
            "from kago.process import attrs\n"
            "attrs.preload()\n"
            "assert ksys.libc().getpid() > 0\n"
            "ksys.close_range_cloexec(1000)\n"
            "print(' '.join(sorted(sys.modules)))\n")
    res = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    loaded = set(res.stdout.split())
    assert "_ctypes" in loaded and "kago._ffi" in loaded
    assert "ctypes" not in loaded, sorted(m for m in loaded if "ctypes" in m)


def _outcome(f):
    try:
        v = f()
        return ("ok", v.value if hasattr(v, "value") else v)
    except Exception as e:  # noqa: BLE001 - type and text are what is compared
        return ("error", type(e).__name__, str(e))


@pytest.mark.parametrize("case", [
    lambda m, lib: m.CDLL("libkago-does-not-exist.so.9"),
    lambda m, lib: lib.no_such_symbol_kago,
    lambda m, lib: lib.close(1.5),                         # ArgumentError, as ctypes
    lambda m, lib: lib.close(2 ** 70),
    lambda m, lib: lib.close(-1),
    lambda m, lib: lib.getpid(),
    lambda m, lib: m.create_string_buffer(b"abc", 2),       # ValueError: too long
    lambda m, lib: m.create_string_buffer(b"abc", 5).raw,
    lambda m, lib: m.c_int(2 ** 40),                       # wraps silently in both
    lambda m, lib: m.c_uint(-1),
    lambda m, lib: m.c_ulong(-1),
    lambda m, lib: m.c_ushort(70000),
    lambda m, lib: m.c_char_p("str"),                      # TypeError
    lambda m, lib: m.c_char_p(b"bytes"),
    lambda m, lib: m.c_void_p(None),
    lambda m, lib: m.sizeof(m.c_char * 7),
    lambda m, lib: repr(m.c_int(3)),
], ids=lambda f: "case")
def test_same_results_and_errors_as_ctypes(case):
    ours = _outcome(lambda: case(_ffi, _ffi.CDLL("libc.so.6")))
    theirs = _outcome(lambda: case(ctypes, ctypes.CDLL("libc.so.6", use_errno=True)))
    assert ours == theirs


def test_structure_layout_matches_ctypes():
    def layout(m):
        class S(m.Structure):
            _fields_ = [("a", m.c_char), ("b", m.c_uint32), ("c", m.c_uint64),
                        ("d", m.c_ushort), ("e", m.c_void_p), ("f", m.c_int * 3)]
        return m.sizeof(S), [getattr(S, n).offset for n in "abcdef"]
    assert layout(_ffi) == layout(ctypes)
