"""State files are read only when regular, and checked where they are read
(kago/container/state.py): a damaged one is ContainerDamaged, never a hang,
a KeyError or "does not exist" (issue 12, item 5)."""

import json
import os
import socket

import pytest

from kago import errors as E
from kago.container import state as st
from kago.container.container import Container

GOOD_STATE = {"ociVersion": "1.2.0", "id": "c1", "pid": 123, "start_time": 456,
              "status": "created", "bundle": "/b", "rootfs": "/b/rootfs",
              "created": "2026-11-28T00:00:00Z", "owner": "", "annotations": {"a": "b"},
              "cgroup_dirs": {"/sys/fs/cgroup/pids": "/sys/fs/cgroup/pids/kago/c1"},
              "cgroup_path": "/kago/c1", "cgroup_made": True, "own_pidns": True}
GOOD_CONFIG = {"hooks": {"poststop": [{"path": "/bin/true"}]},
               "cgroup": {"driver": "v1", "path": "/kago/c1",
                          "dirs": {"/sys/fs/cgroup/pids": "/sys/fs/cgroup/pids/kago/c1"}},
               "cgroup_made": True, "systemd": False,
               "namespaces": [{"type": "pid"}, {"type": "net", "path": "/proc/1/ns/net"}],
               "process": {"args": ["sh"]}}


@pytest.fixture
def sdir(tmp_path):
    d = tmp_path / "c1"
    d.mkdir()
    (d / "state.json").write_text(json.dumps(GOOD_STATE))
    (d / "kago.json").write_text(json.dumps(GOOD_CONFIG))
    return d


def test_good_files_load(sdir):
    assert st.load_state(str(sdir), "c1") == GOOD_STATE
    assert st.load_config(str(sdir)) == GOOD_CONFIG


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind,what", [
    ("fifo", "a FIFO"), ("dir", "a directory"), ("symlink", "a symbolic link"),
    ("socket", "a socket")])
def test_non_regular_files_are_never_opened(sdir, tmp_path, kind, what):
    p = sdir / "state.json"
    p.unlink()
    if kind == "fifo":
        os.mkfifo(p)               # no writer: a blocking open would hang here
    elif kind == "dir":
        p.mkdir()
    elif kind == "symlink":
        (tmp_path / "real.json").write_text(json.dumps(GOOD_STATE))
        p.symlink_to(tmp_path / "real.json")
    else:
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        s.close()
    with pytest.raises(st.Damaged, match=f"state.json is {what}, not a regular file"):
        st.load_state(str(sdir), "c1")
    with pytest.raises(E.ContainerDamaged) as ei:
        Container.load(str(sdir.parent), "c1")
    assert "kago delete --force c1" in str(ei.value)


@pytest.mark.parametrize("text", [
    "", '{"ociVersion": "1.2', "\x00\xff", "[]", "null", "42", '"x"',
    "[" * 100000 + "]" * 100000, '{"a":' * 100000 + "1" + "}" * 100000])
def test_not_json_or_not_an_object(sdir, text):
    (sdir / "state.json").write_bytes(text.encode("utf-8", "surrogateescape")
                                      if isinstance(text, str) else text)
    with pytest.raises(st.Damaged):
        st.load_state(str(sdir), "c1")


@pytest.mark.parametrize("key,value", [
    ("pid", "123"), ("pid", True), ("pid", -1), ("pid", None), ("start_time", "456"),
    ("start_time", 4.5), ("ociVersion", 1), ("bundle", None), ("created", []),
    ("id", "c2"), ("status", 1), ("creator", [1]), ("creator", ["1", 2]),
    ("annotations", {"a": 1}), ("annotations", []),
    ("cgroup_dirs", {"/sys/fs/cgroup/pids": "/sys/fs/cgroup/pids/../../tmp"}),
    ("cgroup_dirs", {"/sys/fs/cgroup/pids": "/tmp/x"}),
    ("cgroup_dirs", {"/sys/fs/cgroup/pids": "/sys/fs/cgroup/pids"}),
    ("cgroup_dirs", ["/sys/fs/cgroup/pids"]), ("cgroup_made", 1), ("own_pidns", "yes"),
    ("cgroup_path", 3)])
def test_wrong_typed_state_fields(key, value):
    d = dict(GOOD_STATE, **{key: value})
    assert st.check_state(d, "c1")
    assert not st.check_state(GOOD_STATE, "c1")


def test_old_state_without_new_keys_is_fine():
    d = {k: v for k, v in GOOD_STATE.items()
         if k not in ("cgroup_path", "cgroup_made", "own_pidns", "annotations", "id")}
    assert not st.check_state(d, "c1")


@pytest.mark.parametrize("key,value", [
    ("cgroup", None), ("cgroup", {"driver": "v9", "path": "/x", "dirs": {}}),
    ("cgroup", {"driver": "v1", "dirs": {}}),
    ("cgroup", {"driver": "v1", "path": "/x", "dirs": {"/a": "/b"}}),
    ("cgroup", {"driver": "systemd", "path": "/x", "dirs": {}}),
    ("hooks", []), ("hooks", {"poststop": [{"path": 1}]}), ("hooks", {"poststop": {}}),
    ("namespaces", {}), ("namespaces", [{"path": "/x"}]), ("process", []),
    ("cgroup_made", "no")])
def test_wrong_typed_config_fields(key, value):
    assert st.check_config(dict(GOOD_CONFIG, **{key: value}))
    assert not st.check_config(GOOD_CONFIG)


def test_config_errors_are_container_damaged(sdir):
    c = Container.load(str(sdir.parent), "c1")
    (sdir / "kago.json").write_text('{"cgroup": 1}')
    with pytest.raises(E.ContainerDamaged, match=r"kago.json: cgroup: not what kago wrote"):
        c.config()
    (sdir / "kago.json").unlink()
    c._cfg = None
    with pytest.raises(E.ContainerDamaged, match="kago.json is missing"):
        c._cgroup()


def test_state_dir_that_is_a_symlink_or_a_file(sdir, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "c1").symlink_to(sdir)
    with pytest.raises(E.ContainerDamaged, match="c1 is not a state directory"):
        Container.load(str(root), "c1")
    (root / "c1").unlink()
    (root / "c1").write_text("{}")
    with pytest.raises(E.ContainerDamaged, match="c1 is not a state directory"):
        Container.load(str(root), "c1")
    (root / "c1").unlink()
    with pytest.raises(E.ContainerNotFound):
        Container.load(str(root), "c1")


def test_own_pidns():
    assert st.own_pidns([{"type": "pid"}])
    assert not st.own_pidns([{"type": "pid", "path": "/proc/1/ns/pid"}])
    assert not st.own_pidns([{"type": "net"}])


def test_list_shows_damaged_entries(sdir):
    root = sdir.parent
    (root / "c2").mkdir()
    (root / "c2" / "state.json").write_text("[]")
    (root / "c3").mkdir()                    # no state.json: a create at work, skipped
    (root / "not-a-dir").write_text("x")     # foreign, skipped
    got = {c.id: c for c in Container.list(str(root))}
    assert sorted(got) == ["c1", "c2"]
    assert got["c1"].damaged == "" and got["c2"].status == "damaged"
    assert "state.json: not a JSON object" in got["c2"].damaged
    with pytest.raises(E.ContainerDamaged):
        got["c2"].state()


def test_remove_tree_never_follows_a_symlink(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(target)
    st.remove_tree(str(link))
    assert not os.path.lexists(link) and (target / "keep").exists()
    d = tmp_path / "d"
    d.mkdir()
    (d / "inner").symlink_to(target)
    st.remove_tree(str(d))
    assert not d.exists() and (target / "keep").exists()


def test_a_damaged_entry_can_be_deleted_with_force(sdir):
    """No process, no cgroup here: delete(force=True) of list()'s damaged
    entry removes the state dir; without force it refuses."""
    root = sdir.parent
    (sdir / "state.json").write_text("garbage")
    (sdir / "kago.json").write_text(json.dumps(dict(GOOD_CONFIG, cgroup={
        "driver": "v1", "path": "/kago/c1", "dirs": {}})))
    (c,) = Container.list(str(root))
    with pytest.raises(E.ContainerDamaged):
        c.delete()
    assert sdir.exists()
    c.delete(force=True)
    assert not sdir.exists()
