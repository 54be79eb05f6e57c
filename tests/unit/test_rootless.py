"""Rootless detail: runc's rules for --rootless, the XDG state root and the
rootless cgroup manager, against fake files (the integration tests run
kago as a real user: tests/integration/test_rootless.py)."""

import pytest

from kago import cgroups, userns
from kago.cgroups import fs
from kago.cgroups.v1 import V1Manager
from kago.cgroups.v2 import V2Manager
from kago.container import state
from kago.errors import CgroupError, InvalidArgument


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    monkeypatch.setattr(userns, "_in_userns", None)


@pytest.mark.parametrize("text,inside", [
    ("         0          0 4294967295\n", False),
    ("0 0 4294967295\n", False),
    ("         0       1000          1\n", True),      # unshare -r as a user
    ("0 0 1\n", True),                                  # unshare -r as root
    ("0 1000 1\n1 100000 65536\n", True),               # rootless podman
    ("", True),                                         # nothing mapped yet
])
def test_running_in_userns(tmp_path, text, inside):
    f = tmp_path / "uid_map"
    f.write_text(text)
    assert userns.running_in_userns(str(f)) is inside


def test_no_uid_map_is_no_userns(tmp_path):
    assert userns.running_in_userns(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("value,want", [
    ("auto", None), ("AUTO", None), ("", None), (None, None),
    ("true", True), ("1", True), ("t", True), ("T", True), ("TRUE", True), ("True", True),
    ("false", False), ("0", False), ("f", False), ("F", False), ("FALSE", False),
])
def test_parse_rootless(value, want):
    assert userns.parse_rootless(value) is want


@pytest.mark.parametrize("value", ["yes", "maybe", "tRUE", "2", " true"])
def test_parse_rootless_refuses_as_go(value):
    with pytest.raises(InvalidArgument) as e:
        userns.parse_rootless(value)
    assert str(e.value) == f'strconv.ParseBool: parsing "{value}": invalid syntax'


@pytest.mark.parametrize("euid,inside,systemd,want", [
    (1000, False, False, True),      # an ordinary user
    (1000, False, True, True),
    (0, False, False, False),        # the real root
    (0, True, False, True),          # root in a user namespace (rootless podman)
    (0, True, True, False),          # ... with systemd: taken as a real root (runc's fallback)
])
def test_rootless_auto(monkeypatch, euid, inside, systemd, want):
    monkeypatch.setattr(userns.os, "geteuid", lambda: euid)
    monkeypatch.setattr(userns, "running_in_userns", lambda *a: inside)
    assert userns.rootless_cgroups("auto", systemd) is want
    assert userns.rootless_cgroups("true", systemd) is True
    assert userns.rootless_cgroups("false", systemd) is False


@pytest.mark.parametrize("euid,inside,user,want", [
    (1000, False, "bob", True), (1000, False, None, True),
    (0, False, "root", False), (0, False, None, False),
    (0, True, "bob", True), (0, True, None, True), (0, True, "root", False),
])
def test_honor_xdg(monkeypatch, euid, inside, user, want):
    monkeypatch.setattr(userns.os, "geteuid", lambda: euid)
    monkeypatch.setattr(userns, "running_in_userns", lambda *a: inside)
    monkeypatch.setattr(userns.os, "getenv",
                        lambda k, d=None: user if k == "USER" else d)
    assert userns.honor_xdg() is want


# --------------------------------------------------------- the cgroup view

def _v1(tmp_path):
    dirs, subsys = {}, {}
    for ctrl in ("memory", "pids", "freezer", "cpu"):
        mp = tmp_path / ctrl
        (mp / "user").mkdir(parents=True)
        d = str(mp / "user" / "c1")
        dirs[str(mp)] = d
        subsys[ctrl] = d
    return V1Manager("c1", dirs, subsys)


def test_rootless_view_v1_drops_what_is_not_writable(tmp_path, monkeypatch):
    m = _v1(tmp_path)
    ok = {str(tmp_path / "pids")}
    monkeypatch.setattr(fs, "writable", lambda d, mp: mp in ok)
    v = fs.rootless_view(m, {})
    assert v is m and list(v.dirs) == [str(tmp_path / "pids")]
    assert sorted(v.dropped) == ["cpu", "freezer", "memory"]
    with pytest.raises(CgroupError, match="^cannot set memory limit: container could not "
                                          "join or create cgroup$"):
        v.apply({"memory": {"limit": 1 << 20}})
    with pytest.raises(CgroupError, match="^cannot toggle freezer: cgroups not configured"):
        v.freeze()
    # survives kago.json
    back = cgroups.load(v.to_json())
    assert back.dropped == v.dropped and back.dirs == v.dirs
    with pytest.raises(CgroupError, match="cannot set cpu limit"):
        back.apply({"cpu": {"shares": 100}})


def test_rootless_view_nothing_writable(tmp_path, monkeypatch):
    monkeypatch.setattr(fs, "writable", lambda d, mp: False)
    v = fs.rootless_view(_v1(tmp_path), {})
    assert v.driver == "none" and v.dirs == {}
    v.apply({})                                  # no limits: fine
    v.apply({"memory": {"limit": 0, "swappiness": None}, "cpu": {"shares": 0},
             "pids": {"limit": 0}, "blockIO": {}})   # zeros an engine sends: fine
    v.apply({"devices": [{"allow": False, "access": "rwm"}]})   # devices: ignored
    for r, ctrl in (({"memory": {"limit": 1}}, "memory"),
                    ({"cpu": {"cpus": "0"}}, "cpuset"),
                    ({"pids": {"limit": 5}}, "pids"),
                    ({"blockIO": {"weight": 10}}, "blkio")):
        with pytest.raises(CgroupError, match=f"^cannot set {ctrl} limit"):
            v.apply(r)
    with pytest.raises(CgroupError, match="cannot toggle freezer"):
        v.freeze()
    assert v.pids() == [] and not v.frozen() and v.oom_kills() == 0
    v.kill_all_and_wait(timeout=0.1)
    v.remove()
    back = cgroups.load(v.to_json())
    assert back.driver == "none" and back.dirs == {}
    assert state._cgroup_json_ok(v.to_json())
    assert not state._cgroup_json_ok({"driver": "none", "path": "/x", "dirs": {"/a": "/a/b"}})


def test_rootless_view_v2(tmp_path, monkeypatch):
    d = tmp_path / "user.slice" / "c1"
    m = V2Manager("/user.slice/c1", {str(tmp_path): str(d)})
    monkeypatch.setattr(fs, "writable", lambda d, mp: False)
    with pytest.raises(CgroupError, match="^rootless needs no limits \\+ no cgrouppath when "
                                          "no permission is granted for cgroups: mkdir "):
        fs.rootless_view(m, {"memory": {"limit": 1 << 20}})
    v = fs.rootless_view(m, {"devices": [{"allow": False}]})
    assert v.driver == "none"
    with pytest.raises(CgroupError, match="^rootless needs no limits"):
        v.apply({"pids": {"limit": 3}})          # update later: the same words
    monkeypatch.setattr(fs, "writable", lambda d, mp: True)
    assert fs.rootless_view(m, {"memory": {"limit": 1}}) is m


def test_writable(tmp_path):
    mp = tmp_path / "mp"
    (mp / "deleg").mkdir(parents=True)
    (mp / "deleg" / "cgroup.procs").write_text("")
    # root may write anything: the answer follows the mode bits only for
    # others, so here just the walk: the nearest existing ancestor decides
    assert fs.writable(str(mp / "deleg" / "a" / "b"), str(mp))
    assert fs.writable(str(mp / "deleg"), str(mp))
    assert not fs.writable(str(tmp_path / "nope" / "x"), str(tmp_path / "nope"))
