"""cgroup managers against a fake cgroupfs (plain files under tmp_path):
which files get which values, in which order, and the errors."""

import json
import os
import struct

import pytest

from kago import cgroups
from kago.cgroups import devices, stats
from kago.cgroups.v1 import V1Manager
from kago.cgroups.v2 import V2Manager
from kago.errors import CgroupError

V1_FILES = {
    "memory": ["memory.limit_in_bytes", "memory.soft_limit_in_bytes",
               "memory.memsw.limit_in_bytes", "memory.swappiness",
               "memory.kmem.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes",
               "memory.oom_control", "memory.use_hierarchy", "memory.usage_in_bytes"],
    "cpu": ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.cfs_burst_us",
            "cpu.rt_period_us", "cpu.rt_runtime_us", "cpu.idle"],
    "cpuset": ["cpuset.cpus", "cpuset.mems"],
    "pids": ["pids.max"],
    "blkio": ["blkio.weight", "blkio.leaf_weight", "blkio.weight_device",
              "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
              "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"],
    "devices": ["devices.allow", "devices.deny"],
    "freezer": ["freezer.state"],
}


class Recorder:
    """Records every write the managers make (file -> list of values)."""

    def __init__(self, monkeypatch):
        self.writes = []
        from kago.cgroups import fs
        real = fs.write

        def rec(d, name, value, what=""):
            real(d, name, value, what)
            self.writes.append((name, str(value)))
        for mod in ("kago.cgroups.fs", "kago.cgroups.v1", "kago.cgroups.v2",
                    "kago.cgroups.devices", "kago.cgroups.freezer"):
            monkeypatch.setattr(f"{mod}.write", rec)

    def values(self, name):
        return [v for n, v in self.writes if n == name]


@pytest.fixture
def rec(monkeypatch):
    return Recorder(monkeypatch)


@pytest.fixture
def v1(tmp_path):
    subsys = {}
    for ctrl, files in V1_FILES.items():
        d = tmp_path / ctrl / "kago" / "c1"
        d.mkdir(parents=True)
        for f in files:
            (d / f).write_text("0\n")
        (d / "cgroup.procs").write_text("")
        subsys[ctrl] = str(d)
    (tmp_path / "memory/kago/c1/memory.limit_in_bytes").write_text("9223372036854771712\n")
    return V1Manager("/kago/c1", {str(tmp_path / c): d for c, d in subsys.items()}, subsys)


@pytest.fixture
def v2(tmp_path):
    d = tmp_path / "kago" / "c1"
    d.mkdir(parents=True)
    for f in ("memory.max", "memory.low", "memory.swap.max", "memory.current", "cpu.weight",
              "cpu.max.burst", "cpu.idle", "cpuset.cpus", "cpuset.mems", "pids.max",
              "io.weight", "io.max", "hugetlb.2MB.max", "cgroup.freeze", "cgroup.procs",
              "memory.oom.group", "rdma.max"):
        (d / f).write_text("0\n")
    (d / "cpu.max").write_text("max 100000\n")
    (d / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    return V2Manager("/kago/c1", {str(tmp_path): str(d)})


def read(m, ctrl, name):
    d = m.subsys[ctrl] if isinstance(m, V1Manager) else m.dir
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


# ------------------------------------------------------------------ paths

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


def test_v1_paths_absolute_and_relative(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text(MOUNTINFO)
    m = V1Manager.for_path("/kago/x", str(mi))
    assert m.dirs["/sys/fs/cgroup/memory"] == "/sys/fs/cgroup/memory/kago/x"
    assert m.subsys["cpu"] == m.subsys["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/kago/x"
    assert m.subsys["name=systemd"] == "/sys/fs/cgroup/systemd/kago/x"
    assert m.dirs["/sys/fs/cgroup/unified"] == "/sys/fs/cgroup/unified/kago/x"
    own = {"memory": "/user.slice/s1", "cpu": "/a", "cpuacct": "/a", "": "/u"}
    r = V1Manager.for_path("rel/x", str(mi), own_cgroups=own)
    assert r.subsys["memory"] == "/sys/fs/cgroup/memory/user.slice/s1/rel/x"
    assert r.subsys["cpu"] == "/sys/fs/cgroup/cpu,cpuacct/a/rel/x"
    assert r.dirs["/sys/fs/cgroup/unified"] == "/sys/fs/cgroup/unified/u/rel/x"


def test_json_round_trip_and_old_format(v1, v2):
    for m in (v1, v2):
        back = cgroups.load(json.loads(json.dumps(m.to_json())))
        assert type(back) is type(m) and back.dirs == m.dirs
    assert cgroups.load({"path": "/k", "dirs": {"/sys/fs/cgroup": "/sys/fs/cgroup/k"}}).driver == "v2"
    old = cgroups.load({"path": "/k", "dirs": {"/sys/fs/cgroup/memory": "/sys/fs/cgroup/memory/k"}})
    assert old.driver == "v1" and old.subsys["memory"] == "/sys/fs/cgroup/memory/k"
    assert cgroups.Manager.from_json(v1.to_json()).driver == "v1"


def test_hot_path_imports_little():
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (f"import sys; sys.path.insert(0, {repo!r}); "
            "import kago.cgroups, kago.cgroups.v1, kago.cgroups.v2;"
            "bad = {'subprocess', 'kago.cgroups.systemd', 'kago.cgroups.dbus', "
            "'kago.cgroups.stats', 'kago.cgroups.devices', 'ctypes', 'json'} & set(sys.modules);"
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                         env={"PYTHONPATH": os.getcwd()})
    assert out.stdout.strip() == "[]", out.stderr


def test_is_frozen(tmp_path):
    fz = tmp_path / "freezer"
    fz.mkdir()
    (fz / "freezer.state").write_text("FROZEN\n")
    assert cgroups.is_frozen({"/sys/fs/cgroup/freezer": str(fz)})
    (fz / "freezer.state").write_text("THAWED\n")
    assert not cgroups.is_frozen({"/sys/fs/cgroup/freezer": str(fz)})
    (tmp_path / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    assert cgroups.is_frozen({"/sys/fs/cgroup": str(tmp_path)})
    assert not cgroups.is_frozen({"/sys/fs/cgroup": str(tmp_path / "gone")})


# ------------------------------------------------------------------ v1

def test_v1_every_resource(v1, rec):
    v1.apply({
        "memory": {"limit": 100 << 20, "reservation": 50 << 20, "swap": 200 << 20,
                   "swappiness": 10, "kernel": 64 << 20, "kernelTCP": 16 << 20,
                   "disableOOMKiller": True, "useHierarchy": True},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "burst": 1000,
                "realtimeRuntime": 500, "realtimePeriod": 1000, "cpus": "0-1", "mems": "0",
                "idle": 0},
        "pids": {"limit": 42},
        "blockIO": {"weight": 300, "leafWeight": 200,
                    "weightDevice": [{"major": 8, "minor": 0, "weight": 500}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1024}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]},
    })
    assert read(v1, "memory", "memory.limit_in_bytes") == str(100 << 20)
    names = [n for n, _ in rec.writes]
    assert read(v1, "memory", "memory.soft_limit_in_bytes") == str(50 << 20)
    assert read(v1, "memory", "memory.swappiness") == "10"
    assert read(v1, "memory", "memory.kmem.limit_in_bytes") == str(64 << 20)
    assert read(v1, "memory", "memory.kmem.tcp.limit_in_bytes") == str(16 << 20)
    assert read(v1, "memory", "memory.oom_control") == "1"
    assert read(v1, "memory", "memory.use_hierarchy") == "1"
    assert read(v1, "cpu", "cpu.shares") == "512"
    assert read(v1, "cpu", "cpu.cfs_quota_us") == "20000"
    assert read(v1, "cpu", "cpu.cfs_period_us") == "100000"
    assert names.index("cpu.cfs_period_us") < names.index("cpu.cfs_quota_us")
    assert read(v1, "cpu", "cpu.cfs_burst_us") == "1000"
    assert read(v1, "cpu", "cpu.rt_period_us") == "1000"
    assert read(v1, "cpu", "cpu.rt_runtime_us") == "500"
    assert read(v1, "cpu", "cpu.idle") == "0"
    assert read(v1, "cpuset", "cpuset.cpus") == "0-1"
    assert read(v1, "pids", "pids.max") == "42"
    assert read(v1, "blkio", "blkio.weight") == "300"
    assert read(v1, "blkio", "blkio.leaf_weight") == "200"
    assert read(v1, "blkio", "blkio.weight_device") == "8:0 500"
    assert read(v1, "blkio", "blkio.throttle.read_bps_device") == "8:0 1024"
    assert read(v1, "blkio", "blkio.throttle.write_iops_device") == "8:0 10"


def test_v1_lowering_memory_writes_limit_first(v1, rec):
    (open(os.path.join(v1.subsys["memory"], "memory.limit_in_bytes"), "w")
     .write(str(500 << 20)))
    v1.apply({"memory": {"limit": 100 << 20, "swap": 150 << 20}})
    names = [n for n, _ in rec.writes]
    assert names == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]


def test_v1_raising_memory_writes_memsw_first(v1, rec):
    for f in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
        open(os.path.join(v1.subsys["memory"], f), "w").write(str(50 << 20))
    v1.apply({"memory": {"limit": 100 << 20, "swap": 200 << 20}})
    names = [n for n, _ in rec.writes]
    assert names == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_v1_unlimited_and_unset(v1, rec):
    v1.apply({"memory": {"limit": -1}, "pids": {"limit": -1}, "cpu": {"quota": -1}})
    assert read(v1, "memory", "memory.limit_in_bytes") == "-1"
    assert read(v1, "memory", "memory.memsw.limit_in_bytes") == "-1"
    assert read(v1, "pids", "pids.max") == "max"
    assert read(v1, "cpu", "cpu.cfs_quota_us") == "-1"
    rec.writes.clear()
    v1.apply({"memory": {"limit": 0, "swap": 0}, "pids": {"limit": 0}, "cpu": {"shares": 0},
              "blockIO": {}, "network": {}, "hugepageLimits": []})
    assert rec.writes == []


def test_v1_missing_controller_errors_only_when_requested(v1):
    v1.apply({"network": {}, "rdma": {}, "hugepageLimits": []})  # nothing asked: fine
    with pytest.raises(CgroupError, match=r"network.classID: the net_cls cgroup controller "
                                          r"is not mounted"):
        v1.apply({"network": {"classID": 1048577}})
    with pytest.raises(CgroupError, match=r"hugepageLimits\[0\]: the hugetlb"):
        v1.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]})
    with pytest.raises(CgroupError, match=r"unified: invalid configuration: cannot use unified on cgroup v1"):
        v1.apply({"unified": {"memory.high": "1G"}})
    with pytest.raises(CgroupError, match=r"rdma.mlx5_1: the rdma"):
        v1.apply({"rdma": {"mlx5_1": {"hcaHandles": 3}}})


def test_v1_missing_file_names_it(v1):
    os.unlink(os.path.join(v1.subsys["cpu"], "cpu.cfs_burst_us"))
    with pytest.raises(CgroupError) as ei:
        v1.apply({"cpu": {"burst": 10}})
    msg = str(ei.value)
    assert msg.startswith("linux.resources.cpu.burst: ") and "cpu.cfs_burst_us" in msg
    assert "\n" not in msg


def test_v1_swappiness_range(v1):
    with pytest.raises(CgroupError, match="swappiness: 101 is not in 0..100"):
        v1.apply({"memory": {"swappiness": 101}})


def test_v1_check_before_update(v1):
    open(os.path.join(v1.subsys["memory"], "memory.usage_in_bytes"), "w").write("5000000")
    with pytest.raises(CgroupError, match="below the current usage 5000000"):
        v1.apply({"memory": {"limit": 4096, "checkBeforeUpdate": True}}, update=True)
    v1.apply({"memory": {"limit": 4096, "checkBeforeUpdate": True}})  # create: not checked


class FakeDevicesKernel:
    """The v1 devices controller as the kernel keeps it (a default and the
    exceptions; devices.list shows the allowed ones, or ``a *:* rwm``), so
    kago's transitions are checked against a model of their own."""

    def __init__(self, d, monkeypatch, rec):
        self.d = d
        self.allow_all = True
        self.exc = {}
        self.written = []
        self._sync()
        inner = devices.write

        def write(dd, name, value, what=""):
            inner(dd, name, value, what)
            if name in ("devices.allow", "devices.deny"):
                self.write(name == "devices.allow", str(value))
        monkeypatch.setattr(devices, "write", write)

    def write(self, allow, line):
        self.written.append(("allow " if allow else "deny ") + line)
        f = line.split()
        if f[0] == "a":
            self.allow_all, self.exc = allow, {}
        else:
            key = (f[0], f[1])
            perms = set(f[2])
            if allow != self.allow_all:
                self.exc[key] = self.exc.get(key, set()) | perms
            elif key in self.exc:
                self.exc[key] -= perms
                if not self.exc[key]:
                    del self.exc[key]
        self._sync()

    def _sync(self):
        if self.allow_all:
            text = "a *:* rwm\n"
        else:
            text = "".join(f"{t} {n} {''.join(c for c in 'rwm' if c in p)}\n"
                           for (t, n), p in self.exc.items())
        with open(os.path.join(self.d, "devices.list"), "w") as fh:
            fh.write(text)

    def allowed(self, t, n, perm):
        if self.allow_all:
            return True
        maj, mi = n.split(":")
        return any(tt == t and perm in p and mm in (maj, "*") and nn in (mi, "*")
                   for (tt, m), p in self.exc.items() for mm, nn in [m.split(":")])


def test_v1_devices(v1, rec, monkeypatch):
    kern = FakeDevicesKernel(v1.subsys["devices"], monkeypatch, rec)
    rules = devices.rules_for({"resources": {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]}})
    v1.apply({"devices": rules})
    allow = rec.values("devices.allow")
    assert rec.values("devices.deny") == ["a *:* rwm"]    # a fresh cgroup allows all
    assert "c 1:11 w" in allow
    assert "c *:* m" in allow and "b *:* m" in allow and "c 1:3 rwm" in allow
    assert "c 136:* rwm" in allow
    assert kern.allowed("c", "1:11", "w") and not kern.allowed("c", "1:11", "r")
    assert not kern.allowed("c", "10:229", "r") and kern.allowed("c", "1:3", "r")
    rec.writes.clear()
    v1.apply({"devices": rules}, update=True)   # the same rules: nothing to write
    assert rec.writes == []


def test_v1_devices_update_minimal(v1, rec, monkeypatch):
    """runc's Transition: only what changes is written, dropped before gained;
    a deny-all only when the default changes (or the cgroup allows all)."""
    kern = FakeDevicesKernel(v1.subsys["devices"], monkeypatch, rec)
    deny_all = {"allow": False, "access": "rwm"}
    fuse = {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
    kmsg = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rw"}

    def apply(*rules):
        kern.written.clear()
        v1.apply({"devices": devices.rules_for({"resources": {"devices": list(rules)}})},
                 update=True)
        return list(kern.written)
    apply(deny_all, fuse)
    assert apply(deny_all, kmsg) == ["deny c 10:229 rwm", "allow c 1:11 rw"]
    assert apply(deny_all, {**kmsg, "access": "r"}) == ["deny c 1:11 w"]
    assert apply(deny_all, {**kmsg, "access": "mr"}) == ["allow c 1:11 m"]
    assert apply(deny_all, {**kmsg, "access": "rm"}) == []
    assert kern.allowed("c", "1:3", "r") and not kern.allowed("c", "10:229", "r")
    # allow-all, then back: the default changes, so "a" is written each time
    assert apply({"allow": True, "access": "rwm"}) == ["allow a *:* rwm"]
    back = apply(deny_all, fuse)
    assert back[0] == "deny a *:* rwm" and "allow c 10:229 rwm" in back


def test_v1_devices_hole_in_wildcard(v1, rec, monkeypatch):
    FakeDevicesKernel(v1.subsys["devices"], monkeypatch, rec)
    rules = [{"allow": True, "access": "rwm"},
             {"allow": False, "type": "c", "access": "rwm"}]
    with pytest.raises(CgroupError,
                       match="allowing c 1:3 rwm .*punch a hole in the rule c \\*:\\* rw$"):
        v1.apply({"devices": devices.rules_for({"resources": {"devices": rules}})})


@pytest.mark.parametrize("rule,path,why", [
    ({"access": "rwa"}, "[0].access", 'invalid device access "rwa": only r, w and m'),
    ({"access": ""}, "[0].access", "cannot be empty"),
    ({"access": 7}, "[0].access", "expected string"),
    ({"type": "u"}, "[0].type", 'invalid device type "u"'),
    ({"major": 1 << 32}, "[0].major", "out of range"),
    ({"minor": "1"}, "[0].minor", "expected integer"),
    ({"allow": 1}, "[0].allow", "expected boolean"),
])
def test_device_rules_checked(rule, path, why):
    """One edge for device rules: the spec's validator (create and update -r)."""
    from kago.errors import SpecError
    from kago.spec import validate_resources
    with pytest.raises(SpecError) as ei:
        validate_resources({"devices": [{"allow": True, "type": "c", "major": 1, "minor": 11,
                                         **rule}]})
    assert ei.value.path == "linux.resources.devices" + path
    assert why in ei.value.reason
    for ok in ("rwm", "mrw", "rr", "w"):      # any order, repeats: as runc and the kernel
        validate_resources({"devices": [{"allow": True, "type": "c", "access": ok}]})
    validate_resources({"devices": [{"allow": False}]})    # access absent: rwm


def test_no_device_rules_still_restricts_to_the_default_list():
    """As runc: no rules in the spec is deny-all + the default allow list, not
    the host's every device."""
    for linux in ({}, {"resources": {"devices": []}}):
        rules = devices.rules_for(linux)
        assert rules[0] == devices.DENY_ALL
        assert rules[1:] == devices.DEFAULT_ALLOW
    # a privileged engine's allow-all still wins: it comes after the deny-all
    rules = devices.rules_for({"resources": {"devices": [{"allow": True, "access": "rwm"}]}})
    assert rules[:2] == [devices.DENY_ALL, {"allow": True, "access": "rwm"}]


# ------------------------------------------------------------------ v2

def test_v2_conversions(v2):
    v2.apply({"memory": {"limit": 100 << 20, "swap": 300 << 20, "reservation": 10 << 20},
              "cpu": {"shares": 1024, "quota": 50000, "period": 200000, "burst": 500,
                      "cpus": "1", "mems": "0", "idle": 1},
              "pids": {"limit": 7},
              "blockIO": {"weight": 500,
                          "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 99}]},
              "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}],
              "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 1000}},
              "unified": {"memory.oom.group": "1"}})
    assert read(v2, "", "memory.max") == str(100 << 20)
    assert read(v2, "", "memory.swap.max") == str(200 << 20)   # swap - limit
    assert read(v2, "", "memory.low") == str(10 << 20)
    assert read(v2, "", "cpu.weight") == "39"                  # 1 + (1024-2)*9999/262142
    assert read(v2, "", "cpu.max") == "50000 200000"
    assert read(v2, "", "cpu.max.burst") == "500"
    assert read(v2, "", "cpu.idle") == "1"
    assert read(v2, "", "cpuset.cpus") == "1"
    assert read(v2, "", "pids.max") == "7"
    assert read(v2, "", "io.weight") == str(1 + (500 - 10) * 9999 // 990)
    assert read(v2, "", "io.max") == "8:0 rbps=99"
    assert read(v2, "", "hugetlb.2MB.max") == str(4 << 20)
    assert read(v2, "", "rdma.max") == "mlx5_1 hca_handle=3 hca_object=1000"
    assert read(v2, "", "memory.oom.group") == "1"


def test_v2_unlimited(v2):
    v2.apply({"memory": {"limit": -1}, "cpu": {"quota": -1}, "pids": {"limit": -1}})
    assert read(v2, "", "memory.max") == "max"
    assert read(v2, "", "memory.swap.max") == "max"
    assert read(v2, "", "cpu.max") == "max 100000"
    assert read(v2, "", "pids.max") == "max"


@pytest.mark.parametrize("res, msg", [
    ({"memory": {"kernel": 1 << 20}}, "memory.kernel: kernel memory limits exist only in cgroup v1"),
    ({"memory": {"swappiness": 60}}, "memory.swappiness: exists only in cgroup v1"),
    ({"memory": {"disableOOMKiller": True}}, "memory.disableOOMKiller"),
    ({"memory": {"swap": 10}}, "memory.swap: a swap limit needs a memory limit"),
    ({"memory": {"limit": 100, "swap": 10}}, "memory.swap: memory\\+swap 10 is below memory 100"),
    ({"cpu": {"realtimeRuntime": 5}}, "cpu.realtimeRuntime: real-time"),
    ({"network": {"classID": 5}}, "network: net_cls/net_prio exist only in cgroup v1"),
    ({"blockIO": {"leafWeight": 5}}, "blockIO.leafWeight"),
    ({"unified": {"../x": "1"}}, "not a cgroup interface file name"),
    ({"unified": {"misc.max": "1"}}, "the misc controller is not enabled"),
])
def test_v2_errors(v2, res, msg):
    with pytest.raises(CgroupError, match=msg):
        v2.apply(res)


def test_v2_no_request_no_error(v2, rec):
    v2.apply({"memory": {"swappiness": None, "useHierarchy": True}, "network": {},
              "cpu": {"realtimeRuntime": 0}})
    assert rec.writes == []


def test_v2_enables_controllers_in_ancestors(tmp_path):
    root = tmp_path
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    (root / "cgroup.subtree_control").write_text("memory\n")
    m = V2Manager("/kago/c1", {str(root): str(root / "kago" / "c1")})

    real_mkdir = os.mkdir

    def mkdir(p, mode=0o777):  # cgroupfs fills new directories itself
        real_mkdir(p, mode)
        with open(os.path.join(p, "cgroup.controllers"), "w") as f:
            f.write("cpu memory pids\n")
        with open(os.path.join(p, "cgroup.subtree_control"), "w") as f:
            f.write("\n")
    import unittest.mock
    from kago.cgroups import fs
    with unittest.mock.patch.object(fs.os, "mkdir", mkdir):   # kago._os
        m.create()
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +pids"
    assert (root / "kago" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (root / "kago" / "c1" / "cgroup.subtree_control").read_text() == "\n"


# ------------------------------------------------------------------ eBPF

def _decode(prog):
    out = []
    for i in range(0, len(prog), 8):
        code, regs, off, imm = struct.unpack("<BBhi", prog[i:i + 8])
        out.append((code, regs & 0xF, regs >> 4, off, imm))
    return out


def _run(prog, typ, major, minor, access):
    """A tiny interpreter for the instructions v2_program emits."""
    ins = _decode(prog)
    regs = [0] * 11
    ctx = [(access << 16) | typ, major, minor]
    pc = 0
    while True:
        code, dst, src, off, imm = ins[pc]
        pc += 1
        if code == 0x61:
            regs[dst] = ctx[off // 4]
        elif code == 0x57:
            regs[dst] &= imm & 0xFFFFFFFFFFFFFFFF
        elif code == 0x77:
            regs[dst] >>= imm
        elif code == 0xbf:
            regs[dst] = regs[src]
        elif code == 0xb7:
            regs[dst] = imm
        elif code == 0x55:
            if regs[dst] != imm:
                pc += off
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unknown opcode {code:#x}")


C, B = 2, 1
R, W, M = 2, 4, 1


def test_ebpf_device_filter_semantics():
    rules = devices.rules_for({"resources": {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"},
        {"allow": False, "type": "c", "major": 1, "minor": 9, "access": "rwm"}]}})
    prog = devices.v2_program(rules)
    assert _run(prog, C, 1, 3, R | W) == 1          # /dev/null (default list)
    assert _run(prog, C, 1, 11, W) == 1             # kmsg, write allowed
    assert _run(prog, C, 1, 11, R) == 0             # ... read is not
    assert _run(prog, C, 1, 1, R) == 0              # /dev/mem: denied
    assert _run(prog, B, 8, 0, R) == 0
    assert _run(prog, B, 8, 0, M) == 1              # mknod of anything
    assert _run(prog, C, 136, 4, R | W) == 1        # a pty
    # the default list comes after the spec's rules: urandom allowed again
    assert _run(prog, C, 1, 9, R) == 1
    # ends with the catch-all deny: the last instructions are "r0 = 0; exit"
    ins = _decode(prog)
    assert ins[-1][0] == 0x95 and ins[-2][0] == 0xb7 and ins[-2][4] == 0


def test_ebpf_allow_all_default():
    prog = devices.v2_program([{"allow": False, "type": "c", "major": 1, "minor": 1,
                                "access": "rwm"}])
    assert _run(prog, C, 1, 1, R) == 0
    assert _run(prog, C, 1, 3, R) == 1


# ------------------------------------------------------------------ stats

def test_v1_stats_from_files(tmp_path):
    mem = tmp_path / "memory"
    mem.mkdir()
    for f, v in {"memory.limit_in_bytes": "1000", "memory.usage_in_bytes": "500",
                 "memory.max_usage_in_bytes": "700", "memory.failcnt": "3",
                 "memory.stat": "cache 40\nrss 60\n"}.items():
        (mem / f).write_text(v + "\n")
    pids = tmp_path / "pids"
    pids.mkdir()
    (pids / "pids.current").write_text("4\n")
    (pids / "pids.max").write_text("max\n")
    cpu = tmp_path / "cpu"
    cpu.mkdir()
    (cpu / "cpu.stat").write_text("nr_periods 10\nnr_throttled 4\nthrottled_time 99\n")
    acct = tmp_path / "cpuacct"
    acct.mkdir()
    (acct / "cpuacct.usage").write_text("1234\n")
    (acct / "cpuacct.usage_percpu").write_text("1000 234\n")
    (acct / "cpuacct.stat").write_text("user 1\nsystem 2\n")
    s = stats.v1_stats({"memory": str(mem), "pids": str(pids), "cpu": str(cpu),
                        "cpuacct": str(acct)})
    assert s["memory"]["usage"] == {"limit": 1000, "usage": 500, "max": 700, "failcnt": 3}
    assert s["memory"]["cache"] == 40 and s["memory"]["raw"]["rss"] == 60
    assert s["pids"] == {"current": 4}
    assert s["cpu"]["throttling"] == {"periods": 10, "throttled_periods": 4,
                                      "throttled_time": 99}
    assert s["cpu"]["usage"]["total"] == 1234 and s["cpu"]["usage"]["percpu"] == [1000, 234]
    assert set(s) >= {"cpu", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                      "network_interfaces"}


def test_v2_stats_from_files(tmp_path):
    for f, v in {"cpu.stat": "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 1\n"
                             "nr_throttled 1\nthrottled_usec 7\n",
                 "memory.current": "100", "memory.max": "max", "memory.events": "max 2\n",
                 "memory.stat": "file 10\nanon 90\n", "pids.current": "3", "pids.max": "9",
                 "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"}.items():
        (tmp_path / f).write_text(v + "\n")
    s = stats.v2_stats(str(tmp_path))
    assert s["cpu"]["usage"]["total"] == 5000 and s["cpu"]["usage"]["user"] == 3000
    assert s["cpu"]["throttling"]["throttled_time"] == 7000
    assert s["memory"]["usage"] == {"limit": 2 ** 64 - 1, "usage": 100, "failcnt": 2}
    assert s["memory"]["cache"] == 10
    assert s["pids"] == {"current": 3, "limit": 9}
    # Go's omitempty: runc leaves out a zero minor
    assert {"major": 8, "op": "Write", "value": 20} in \
        s["blkio"]["ioServiceBytesRecursive"]


def test_cpus_list():
    assert stats._cpus("0-2,5") == [0, 1, 2, 5]
    assert stats._cpus("") == []


# ------------------------------------------------------------------ CLI helpers

def test_ram_in_bytes():
    from kago.cli.commands import CommandError, ram_in_bytes
    assert ram_in_bytes("memory", "512") == 512
    assert ram_in_bytes("memory", "100m") == 100 << 20
    assert ram_in_bytes("memory", "1.5GiB") == 3 << 29
    assert ram_in_bytes("memory", "2 kb") == 2048
    with pytest.raises(CommandError, match="invalid value for memory: invalid size: 'x'"):
        ram_in_bytes("memory", "x")
