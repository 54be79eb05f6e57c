"""kago._os (os for the hot verbs, without importing os) agrees with os."""

import os
import posixpath

import pytest

from kago import _os

PATHS = ["", "/", "a", "a/", "/a/b/", "//a//b", "a/../b", ".", "..", "/x/./y/../z", "foo//"]


@pytest.mark.parametrize("p", PATHS)
def test_path_functions_match_posixpath(p):
    assert _os.path.basename(p) == posixpath.basename(p)
    assert _os.path.dirname(p) == posixpath.dirname(p)
    assert _os.path.abspath(p) == posixpath.abspath(p)
    for b in ("", "c", "/d", "e/"):
        assert _os.path.join(p, b) == posixpath.join(p, b)
        assert _os.path.join(p, b, "x") == posixpath.join(p, b, "x")


def test_exists_isdir(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    for p in (str(tmp_path), str(f), str(f / "x"), str(tmp_path / "nosuch"), ""):
        assert _os.path.exists(p) == os.path.exists(p)
        assert _os.path.isdir(p) == os.path.isdir(p)


def test_same_functions_as_os():
    assert _os.kill is os.kill and _os.open is os.open and _os._exit is os._exit
    assert _os.O_CLOEXEC == os.O_CLOEXEC and _os.P_PIDFD == os.P_PIDFD
    assert not hasattr(_os, "environ")        # posix.environ has bytes keys
