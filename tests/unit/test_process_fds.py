"""kago.process.fds: which of the caller's fds --preserve-fds passes on."""

import os

from kago.process import fds


def test_open_fds_sees_holes_and_not_its_own_directory_fd(tmp_path):
    # make a hole: two fds, close the lower one; listdir's own fd lands there
    a = os.open(tmp_path, os.O_RDONLY)
    b = os.open(tmp_path, os.O_RDONLY)
    os.close(a)
    try:
        got = fds.open_fds()
        assert b in got and a not in got
        assert all(fd >= 3 for fd in got) and got == sorted(got)
    finally:
        os.close(b)


def test_snapshot_is_taken_once(tmp_path):
    fds.snapshot()
    late = os.open(tmp_path, os.O_RDONLY)      # opened after the snapshot: not the caller's
    try:
        assert late not in fds.take()
        assert late in fds.take()               # no snapshot left: now
    finally:
        os.close(late)


def test_preserved_and_listen_fds(monkeypatch):
    assert fds.preserved([3, 5, 9], 3) == (3, 5)
    assert fds.preserved([4, 7], 0) == ()
    for value, want in (("2", 2), ("0", 0), ("-1", 0), ("x", 0), ("", 0)):
        monkeypatch.setenv("LISTEN_FDS", value)
        assert fds.listen_fds() == want
    monkeypatch.delenv("LISTEN_FDS")
    assert fds.listen_fds() == 0


def test_a_failed_command_leaves_no_snapshot_behind(tmp_path, monkeypatch):
    """`kago --log /no/such/dir/x create --preserve-fds 1 ...` fails before
    create: its snapshot must not stand in for a later library call's fds."""
    from kago.cli import run
    rc = run(["--log", str(tmp_path / "no" / "such" / "log"), "create", "--preserve-fds", "1",
              "--bundle", str(tmp_path), "x"])
    assert rc != 0
    assert fds._snap is None
