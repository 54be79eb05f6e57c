"""cgroup path resolution: runc's CleanPath, the confined join, exec --cgroup
(the integration side: tests/integration/test_cgroup_paths.py)."""

import pytest

from kago import cgroups
from kago.cgroups import clean_path, join, parse_sub_cgroups, sub_cgroup
from kago.cgroups.systemd import expand_slice, parse_path
from kago.cgroups.v1 import V1Manager
from kago.cgroups.v2 import V2Manager
from kago.errors import CgroupError, InvalidArgument

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


@pytest.mark.parametrize("raw,clean", [
    # Go: utils.CleanPath (filepath.Clean; relative cleaned from / and kept relative)
    ("/../../../../tmp/x/a", "/tmp/x/a"), ("/a/../..", "/"), ("//a//b/./", "/a/b"),
    ("/", "/"), ("../../x", "x"), ("..", "."), ("x/../../..", "."), ("./a/b/..", "a"),
    ("a//b", "a/b"), ("", "."),
])
def test_clean_path_is_runcs(raw, clean):
    assert clean_path(raw) == clean


def test_join_never_leaves_the_mount():
    for p in ("/../../etc", "../../../etc", "a/../../../../etc", "/..", ".."):
        d = join("/sys/fs/cgroup/memory", p)
        assert d == "/sys/fs/cgroup/memory" or d.startswith("/sys/fs/cgroup/memory/"), d
    assert join("/sys/fs/cgroup/memory", "/../../etc") == "/sys/fs/cgroup/memory/etc"


def test_nul_byte_is_refused():
    with pytest.raises(CgroupError, match="NUL"):
        clean_path("/a\0/../b")


def test_v1_and_v2_paths_are_cleaned(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text(MOUNTINFO)
    m = V1Manager.for_path("/../../../../tmp/x/a", str(mi))
    assert m.path == "/tmp/x/a"
    assert m.dirs == {"/sys/fs/cgroup/cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/tmp/x/a",
                      "/sys/fs/cgroup/memory": "/sys/fs/cgroup/memory/tmp/x/a",
                      "/sys/fs/cgroup/unified": "/sys/fs/cgroup/unified/tmp/x/a"}
    own = {"memory": "/user.slice/s1", "cpu": "/a", "cpuacct": "/a", "": "/u"}
    r = V1Manager.for_path("../../../x", str(mi), own_cgroups=own)
    assert r.subsys["memory"] == "/sys/fs/cgroup/memory/user.slice/s1/x"
    assert r.subsys["cpu"] == "/sys/fs/cgroup/cpu,cpuacct/a/x"
    v = V2Manager.for_path("/../../../tmp/y", root="/sys/fs/cgroup")
    assert v.dirs == {"/sys/fs/cgroup": "/sys/fs/cgroup/tmp/y"}


@pytest.mark.parametrize("path", ["/", "/..", "/a/..", "//"])
def test_the_root_cgroup_is_never_a_containers(tmp_path, path):
    mi = tmp_path / "mountinfo"
    mi.write_text(MOUNTINFO)
    with pytest.raises(CgroupError, match="is the root cgroup"):
        V1Manager.for_path(path, str(mi))
    with pytest.raises(CgroupError, match="is the root cgroup"):
        V2Manager.for_path(path, root="/sys/fs/cgroup")
    own = {"memory": "/", "cpu": "/", "cpuacct": "/", "": "/"}
    with pytest.raises(CgroupError, match="is the root cgroup"):
        V1Manager.for_path("..", str(mi), own_cgroups=own)


def test_create_refuses_a_directory_outside_its_mount(tmp_path):
    m = V2Manager("/x", {str(tmp_path / "mnt"): str(tmp_path / "elsewhere")})
    with pytest.raises(CgroupError, match="not under the cgroup mount"):
        m.create()
    assert not (tmp_path / "elsewhere").exists()


def test_systemd_unit_and_slice_names_are_not_paths():
    for p in ("system.slice:kago:../../x", "system.slice:../..:x", "system.slice:kago:a/b",
              "system.slice:kago:..", "system.slice:a/b:x"):
        with pytest.raises(CgroupError, match="invalid systemd unit"):
            parse_path(p, "id")
    for s in ("../x.slice", ".slice", "a--b.slice", "a\0.slice"):
        with pytest.raises(CgroupError, match="invalid systemd slice"):
            expand_slice(s)
    assert parse_path("system.slice:kago:abc", "id") == ("system.slice", "kago-abc.scope")


# ---------------------------------------------------------------- exec --cgroup

def test_parse_sub_cgroups_as_runc():
    assert parse_sub_cgroups(["sub"]) == {"": "sub"}
    assert parse_sub_cgroups("sub") == {"": "sub"}
    assert parse_sub_cgroups(["cpu,memory:a", "pids:b"]) == {"cpu": "a", "memory": "a",
                                                             "pids": "b"}
    for args, words in ((["a:b:c"], "invalid --cgroup argument: a:b:c"),
                        (["a", "cpu:b"], "missing <controller>: prefix"),
                        ([",cpu:x"], "empty <controller> prefix"),
                        (["cpu:a", "cpu,memory:b"], "controller cpu specified multiple times")):
        with pytest.raises(InvalidArgument, match=words):
            parse_sub_cgroups(args)


def test_sub_cgroup_only_below_the_containers():
    base = "/sys/fs/cgroup/memory/kago/c"
    assert sub_cgroup(base, "sub") == base + "/sub"
    assert sub_cgroup(base, "/sub/") == base + "/sub"
    assert sub_cgroup(base, "x/../sub") == base + "/sub"
    assert sub_cgroup(base, "/") == base
    assert sub_cgroup(base, "../c/x") == base + "/x"    # out and back in: lexically below
    for bad in ("..", "../..", "/../..", "sub/../..", "../c-evil"):
        with pytest.raises(InvalidArgument, match=r"is not a sub cgroup path"):
            sub_cgroup(base, bad)


def test_sub_dirs_honour_the_controller_prefix(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text(MOUNTINFO)
    m = V1Manager.for_path("/kago/c", str(mi))
    got = m.sub_dirs({"memory": "s"})
    assert got == ["/sys/fs/cgroup/cpu,cpuacct/kago/c", "/sys/fs/cgroup/memory/kago/c/s",
                   "/sys/fs/cgroup/unified/kago/c"]
    assert m.sub_dirs({"": "s"}) == [d + "/s" for d in m.dirs.values()]
    with pytest.raises(InvalidArgument, match="unknown controller pids in SubCgroupPaths"):
        m.sub_dirs({"pids": "s"})
    with pytest.raises(InvalidArgument, match="not a sub cgroup path"):
        m.sub_dirs({"cpu": "../.."})
    v = V2Manager.for_path("/kago/c", root="/sys/fs/cgroup")
    assert v.sub_dirs({"": "s"}) == ["/sys/fs/cgroup/kago/c/s"]
    with pytest.raises(InvalidArgument, match="unknown controller memory"):
        v.sub_dirs({"memory": "s"})
    assert cgroups.is_under("/a/b", "/a") and not cgroups.is_under("/ab", "/a")
