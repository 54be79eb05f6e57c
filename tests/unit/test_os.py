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
    assert _os.environ is os.environ          # the fallback: the real os
    assert _os.walk is os.walk and _os.path.expanduser is posixpath.expanduser
    assert (_os.SEEK_SET, _os.SEEK_CUR, _os.SEEK_END) == (os.SEEK_SET, os.SEEK_CUR,
                                                          os.SEEK_END)


@pytest.mark.parametrize("p", PATHS)
def test_more_path_functions_match_posixpath(p):
    assert _os.path.isabs(p) == posixpath.isabs(p)
    assert _os.path.split(p) == posixpath.split(p)
    for start in ("/", "/a", "/a/b", "/x/y/", "a"):
        if p:
            assert _os.path.relpath(p, start) == posixpath.relpath(p, start), (p, start)


def test_realpath(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "l").symlink_to("d/e")
    (tmp_path / "dangling").symlink_to("nosuch/x")
    for p in ("l", "l/", "d/../l", "d/e", "dangling", "dangling/y", "nosuch", "l/nosuch", "."):
        path = str(tmp_path / p)
        assert _os.path.realpath(path) == os.path.realpath(path), p


def test_getenv_and_makedirs(tmp_path, monkeypatch):
    assert _os.getenv("PATH") == os.environ.get("PATH")
    assert _os.getenv("KAGO_SURELY_UNSET_VARIABLE", "d") == "d"
    d = tmp_path / "a" / "b" / "c"
    _os.makedirs(str(d), 0o700)
    assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o700
    _os.makedirs(str(d), exist_ok=True)
    with pytest.raises(FileExistsError):
        _os.makedirs(str(d))
    (tmp_path / "f").write_text("")
    with pytest.raises(FileExistsError):
        _os.makedirs(str(tmp_path / "f"), exist_ok=True)
    with pytest.raises(NotADirectoryError):
        _os.makedirs(str(tmp_path / "f" / "x"), exist_ok=True)


def _outcome(f, *a):
    try:
        return ("ok", f(*a))
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return ("error", type(e))


ODD = [None, 1, "a\0b", "/proc/self/../self", "/a/./b//", "~", "/nosuch/../tmp"]


@pytest.mark.parametrize("name", ["basename", "dirname", "abspath", "isabs", "split", "normpath",
                                  "exists", "isdir", "realpath"])
@pytest.mark.parametrize("arg", ODD + ["PurePath"], ids=repr)
def test_path_errors_and_odd_inputs_match_posixpath(name, arg):
    from pathlib import PurePosixPath
    if arg == "PurePath":
        arg = PurePosixPath("/a/../b")
    assert _outcome(getattr(_os.path, name), arg) == _outcome(getattr(posixpath, name), arg)


@pytest.mark.parametrize("args", [("a", None), ("/x", 1), ("a", "b\0"), ("", "")], ids=repr)
def test_join_and_relpath_errors_match_posixpath(args):
    assert _outcome(_os.path.join, *args) == _outcome(posixpath.join, *args)
    if args[0]:
        assert _outcome(_os.path.relpath, *args) == _outcome(posixpath.relpath, *args)


def test_bytes_paths_are_refused_not_mistaken():
    # kago._os.path is for str paths (kago passes nothing else): bytes raise
    # TypeError where posixpath would accept them, or (where the C helper
    # under it takes bytes: normpath on 3.13) give posixpath's answer - never
    # a wrong one
    for name in ("basename", "dirname", "abspath", "isabs", "split", "normpath"):
        want = getattr(posixpath, name)(b"/a/b")
        assert want is not None
        try:
            got = getattr(_os.path, name)(b"/a/b")
        except TypeError:
            continue
        assert got == want, name
    with pytest.raises(TypeError):
        _os.path.join(b"a", b"b")
    for name in ("exists", "isdir", "realpath"):      # these take bytes like posixpath
        assert getattr(_os.path, name)(b"/proc/self") == getattr(posixpath, name)(b"/proc/self")


def test_posix_errors_are_the_real_ones(tmp_path):
    with pytest.raises(FileNotFoundError) as a:
        _os.open(str(tmp_path / "nosuch"), _os.O_RDONLY)
    with pytest.raises(FileNotFoundError) as b:
        os.open(str(tmp_path / "nosuch"), os.O_RDONLY)
    assert (a.value.errno, a.value.filename) == (b.value.errno, b.value.filename)
    assert _os.getenv("KAGO_SURELY_UNSET_VARIABLE") is os.getenv("KAGO_SURELY_UNSET_VARIABLE")
    with pytest.raises(AttributeError):
        _os.no_such_function_in_os
