"""kago.spec: loading/validating config.json and the default spec (`kago spec`)."""

import copy
import json
import os
import shutil
import subprocess

import pytest

from kago import spec as kspec
from kago.errors import InvalidArgument, SpecError

RUNC = shutil.which("runc") or ("/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else None)
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


def good():
    """A valid config that exercises most optional fields."""
    s = kspec.default_spec()
    s["process"]["user"].update(umask=0o22, additionalGids=[1, 2])
    s["process"]["oomScoreAdj"] = -999
    s["process"]["consoleSize"] = {"height": 24, "width": 80}
    s["process"]["capabilities"]["inheritable"] = []
    s["domainname"] = "example.org"
    s["mounts"].append({"destination": "/data", "type": "bind", "source": "/srv",
                        "options": ["rbind", "ro"]})
    s["hooks"] = {
        "prestart": [{"path": "/bin/true"}],
        "createRuntime": [{"path": "/usr/bin/hook", "args": ["hook", "x"],
                           "env": ["A=1"], "timeout": 5}],
        "poststop": [],
    }
    s["annotations"] = {"org.example.key": "value"}
    lx = s["linux"]
    lx["namespaces"].append({"type": "cgroup"})
    lx["namespaces"].append({"type": "time"})
    lx["timeOffsets"] = {"monotonic": {"secs": -5, "nanosecs": 10}, "boottime": {"secs": 7}}
    lx["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
         "fileMode": 0o666, "uid": 0, "gid": 0},
        {"path": "/dev/myfifo", "type": "p"},
    ]
    lx["sysctl"] = {"net.ipv4.ip_forward": "1"}
    lx["rootfsPropagation"] = "rslave"
    lx["cgroupsPath"] = "/kago/test"
    lx["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    return s


def write(tmp_path, doc):
    data = doc if isinstance(doc, (bytes, str)) else json.dumps(doc)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp_path / "config.json", mode) as f:
        f.write(data)
    return str(tmp_path)


def err_of(doc, **kw):
    with pytest.raises(SpecError) as ei:
        kspec.validate(doc, **kw)
    return ei.value


# ---------------------------------------------------------------- load


def test_load_valid(tmp_path):
    s = good()
    out = kspec.load(write(tmp_path, s))
    assert out["process"]["args"] == ["sh"]
    assert out["linux"]["devices"][0]["major"] == 10
    assert out["hooks"]["createRuntime"][0]["timeout"] == 5


def test_load_missing_file(tmp_path):
    with pytest.raises(SpecError) as ei:
        kspec.load(str(tmp_path))
    path = os.path.join(str(tmp_path), "config.json")
    assert ei.value.path == ""
    assert ei.value.reason == f"open {path}: no such file or directory"
    assert str(ei.value) == f"config.json: open {path}: no such file or directory"


def test_load_directory_instead_of_file(tmp_path):
    (tmp_path / "config.json").mkdir()
    with pytest.raises(SpecError) as ei:
        kspec.load(str(tmp_path))
    assert ei.value.reason.endswith(": is a directory")


def test_load_invalid_json_reports_line_and_column(tmp_path):
    write(tmp_path, '{\n  "ociVersion": "1.0.2",\n  "root": {"path": "rootfs"}\n  "x": 1\n}')
    with pytest.raises(SpecError) as ei:
        kspec.load(str(tmp_path))
    assert ei.value.reason.startswith("invalid JSON at line 4 column 3:")
    assert "delimiter" in ei.value.reason
    assert "\n" not in str(ei.value)


@pytest.mark.parametrize("text", ["", "{", "[1,]", '{"a": NaN}', '{"a": Infinity}'])
def test_load_rejects_non_json(tmp_path, text):
    write(tmp_path, text)
    with pytest.raises(SpecError) as ei:
        kspec.load(str(tmp_path))
    assert ei.value.reason.startswith("invalid JSON")


def test_load_rejects_invalid_utf8(tmp_path):
    write(tmp_path, b'{"hostname": "\xff\xfe\xfa"}')
    with pytest.raises(SpecError) as ei:
        kspec.load(str(tmp_path))
    assert ei.value.reason.startswith("invalid JSON")


def test_load_top_level_must_be_object(tmp_path):
    write(tmp_path, "[]")
    with pytest.raises(SpecError) as ei:
        kspec.load(str(tmp_path))
    assert ei.value.reason == "expected a JSON object, got array"


def test_load_without_process_when_not_required(tmp_path):
    s = good()
    del s["process"]
    with pytest.raises(SpecError) as ei:
        kspec.load(write(tmp_path, s))
    assert ei.value.path == "process"
    assert kspec.load(str(tmp_path), require_process=False)["root"]["path"] == "rootfs"


# ---------------------------------------------------------------- normalisation


def test_normalises_linux_user_and_nulls():
    s = {"root": {"path": "r"}, "process": {"args": ["a"], "cwd": "/",
                                             "env": None, "terminal": None},
         "mounts": [{"destination": "/x", "options": None}], "hostname": None}
    out = kspec.validate(s)
    assert out["linux"] == {}
    assert out["process"]["user"] == {"uid": 0, "gid": 0}
    assert "env" not in out["process"] and "terminal" not in out["process"]
    assert out["mounts"][0] == {"destination": "/x"}
    assert "hostname" not in out


def test_user_defaults_fill_uid_gid():
    s = good()
    s["process"]["user"] = {"uid": 1000}
    assert kspec.validate(s)["process"]["user"]["gid"] == 0


def test_validate_returns_same_object_and_is_idempotent():
    s = good()
    once = copy.deepcopy(kspec.validate(s))
    assert kspec.validate(s) is s
    assert s == once


@pytest.mark.parametrize("dest, expected", [
    ("dev/pts", "/dev/pts"), ("templated_config", "/templated_config"),
    ("a/../b/./c", "/b/c"), ("../../etc", "/etc"), ("/abs//kept/", "/abs/kept"),
])
def test_relative_mount_destination_is_relative_to_root(dest, expected):
    # runtime-spec 1.2 allows it on Linux; runc and Docker rely on it
    s = good()
    s["mounts"][2]["destination"] = dest
    assert kspec.validate(s)["mounts"][2]["destination"] == expected


def test_unknown_hook_kind_and_unknown_keys_are_ignored():
    s = good()
    s["hooks"]["preStartish"] = "whatever"
    s["futureField"] = {"x": 1}
    s["linux"]["futureLinux"] = 3
    kspec.validate(s)


def test_joined_user_namespace_needs_no_mappings():
    s = good()
    s["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    kspec.validate(s)


def test_rootless_default_is_valid():
    kspec.validate(kspec.default_spec(rootless=True))


# ---------------------------------------------------------------- bad configs


def _set(doc, dotted, value):
    """Set doc[a][b][0][c] from "a.b.0.c" (value DELETE removes the key)."""
    keys = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    obj = doc
    for k in keys[:-1]:
        obj = obj[k]
    if value is DELETE:
        del obj[keys[-1]]
    else:
        obj[keys[-1]] = value


DELETE = object()

BAD = [
    # (what to change, new value, JSON path in the error, text in the reason)
    ("ociVersion", 1, "ociVersion", "expected string, got integer"),
    ("root", DELETE, "root", "root must be specified"),
    ("root.path", DELETE, "root.path", "is required"),
    ("root.path", 7, "root.path", "expected string, got integer"),
    ("root.readonly", "yes", "root.readonly", "expected boolean, got string"),
    ("process", DELETE, "process", "process property must not be empty"),
    ("process", [], "process", "expected object, got array"),
    ("process.args", [], "process.args", "args must not be empty"),
    ("process.args", DELETE, "process.args", "args must not be empty"),
    ("process.args", "sh", "process.args", "expected array, got string"),
    ("process.args", ["sh", 3], "process.args[1]", "expected string, got integer"),
    ("process.args", ["s\0h"], "process.args[0]", "nul byte"),
    ("process.env", ["A=1", "NOEQUALS"], "process.env[1]", "missing '='"),
    ("process.env", ["=x"], "process.env[0]", "name cannot be empty"),
    ("process.env", "A=1", "process.env", "expected array, got string"),
    ("process.cwd", DELETE, "process.cwd", "cwd property must not be empty"),
    ("process.cwd", "", "process.cwd", "cwd property must not be empty"),
    ("process.cwd", "tmp", "process.cwd", 'must be an absolute path, got "tmp"'),
    ("process.terminal", 1, "process.terminal", "expected boolean, got integer"),
    ("process.consoleSize", {"height": 1}, "process.consoleSize.width", "is required"),
    ("process.user.uid", -1, "process.user.uid", "-1 is out of range [0, 4294967294]"),
    # (uid_t)-1 is "leave unchanged" to setresuid(2): the process would stay root
    ("process.user.uid", 4294967295, "process.user.uid", "out of range [0, 4294967294]"),
    ("process.user.gid", "0", "process.user.gid", "expected integer, got string"),
    ("process.user.uid", 1.0, "process.user.uid", "expected integer, got number"),
    ("process.user.uid", True, "process.user.uid", "expected integer, got boolean"),
    ("process.user.umask", 1 << 32, "process.user.umask", "out of range"),
    ("process.user.additionalGids", [1, "2"], "process.user.additionalGids[1]",
     "expected integer, got string"),
    ("process.capabilities.bounding", "CAP_KILL", "process.capabilities.bounding",
     "expected array, got string"),
    ("process.capabilities.ambient", ["CAP_KILL", None],
     "process.capabilities.ambient[1]", "expected string, got null"),
    ("process.rlimits.0.type", "RLIMIT_FOO", "process.rlimits[0].type",
     'unknown rlimit type "RLIMIT_FOO"'),
    ("process.rlimits.0.hard", DELETE, "process.rlimits[0].hard", "is required"),
    ("process.rlimits.0.soft", 2048, "process.rlimits[0]",
     "soft limit 2048 exceeds hard limit 1024"),
    ("process.rlimits", [{"type": "RLIMIT_CORE", "hard": 0, "soft": 0}] * 2,
     "process.rlimits[1].type", 'duplicated rlimit type "RLIMIT_CORE"'),
    ("process.noNewPrivileges", "true", "process.noNewPrivileges",
     "expected boolean, got string"),
    ("process.oomScoreAdj", 1001, "process.oomScoreAdj", "1001 is out of range [-1000, 1000]"),
    ("process.oomScoreAdj", -1001, "process.oomScoreAdj", "out of range"),
    ("process.ioPriority", {"class": "IOPRIO_CLASS_X"}, "process.ioPriority.class",
     "unknown I/O priority class"),
    ("hostname", 5, "hostname", "expected string, got integer"),
    ("domainname", [], "domainname", "expected string, got array"),
    ("mounts", {}, "mounts", "expected array, got object"),
    ("mounts.2", "x", "mounts[2]", "expected object, got string"),
    ("mounts.2.destination", DELETE, "mounts[2].destination", "is required"),
    ("mounts.2.destination", "", "mounts[2].destination", "is required"),
    ("mounts.2.destination", 3, "mounts[2].destination", "expected string, got integer"),
    ("mounts.3.options", ["ro", 1], "mounts[3].options[1]", "expected string, got integer"),
    ("mounts.0.type", 1, "mounts[0].type", "expected string, got integer"),
    ("mounts.0.source", False, "mounts[0].source", "expected string, got boolean"),
    # idmapped mounts: runc 1.2's rules and words (mounts[7] is a bind, no userns)
    ("mounts.2.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}],
     "mounts[2].uidMappings", "id-mapped mounts are only supported for bind-mounts"),
    ("mounts.2.options", ["idmap"], "mounts[2].options",
     "id-mapped mounts are only supported for bind-mounts"),
    ("mounts.7.options", ["rbind", "idmap"], "mounts[7].options",
     "id-mapped mounts must have both uid and gid mappings specified"),
    ("mounts.7.options", ["rbind", "ridmap", "idmap"], "mounts[7].options",
     "idmap and ridmap options are mutually exclusive"),
    ("mounts.7.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}],
     "mounts[7].uidMappings", "id-mapped mounts must have both uid and gid mappings"),
    ("mounts.7.gidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}],
     "mounts[7].gidMappings", "id-mapped mounts must have both uid and gid mappings"),
    # the mapping's shape, as the kernel takes a uid_map (mounts and linux alike)
    ("mounts.7.uidMappings", [{"containerID": 0, "hostID": 4294967295, "size": 1}],
     "mounts[7].uidMappings[0].hostID", "4294967295 is out of range [0, 4294967294]"),
    ("mounts.7.uidMappings", [{"containerID": -1, "hostID": 0, "size": 1}],
     "mounts[7].uidMappings[0].containerID", "out of range"),
    ("mounts.7.gidMappings", [{"containerID": 4294967290, "hostID": 0, "size": 10}],
     "mounts[7].gidMappings[0].size", "10 is out of range [1, 5]"),
    ("mounts.7.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 10},
                              {"containerID": 5, "hostID": 2000, "size": 10}],
     "mounts[7].uidMappings[1]",
     "containerID range 5-14 overlaps mounts[7].uidMappings[0] (0-9)"),
    ("mounts.7.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 10},
                              {"containerID": 100, "hostID": 1009, "size": 1}],
     "mounts[7].uidMappings[1]",
     "hostID range 1009-1009 overlaps mounts[7].uidMappings[0] (1000-1009)"),
    ("linux.uidMappings", [{"containerID": i, "hostID": 1000 + i, "size": 1}
                           for i in range(341)],
     "linux.uidMappings", "341 ranges: the kernel takes at most 340"),
    ("hooks", [], "hooks", "expected object, got array"),
    ("hooks.prestart", {}, "hooks.prestart", "expected array, got object"),
    ("hooks.prestart.0.path", DELETE, "hooks.prestart[0].path", "is required"),
    ("hooks.prestart.0.path", "true", "hooks.prestart[0].path",
     'must be an absolute path, got "true"'),
    ("hooks.createRuntime.0.timeout", 0, "hooks.createRuntime[0].timeout",
     "must be greater than zero, got 0"),
    ("hooks.createRuntime.0.timeout", "5", "hooks.createRuntime[0].timeout",
     "expected integer, got string"),
    ("hooks.createRuntime.0.args", "hook", "hooks.createRuntime[0].args",
     "expected array, got string"),
    ("hooks.createRuntime.0.env", ["X"], "hooks.createRuntime[0].env[0]", "missing '='"),
    ("annotations", {"a": 1}, 'annotations["a"]', "expected string, got integer"),
    ("annotations", [], "annotations", "expected object, got array"),
    ("linux", "x", "linux", "expected object, got string"),
    ("linux.namespaces", {"type": "pid"}, "linux.namespaces",
     "expected array, got object"),
    ("linux.namespaces.0.type", "foo", "linux.namespaces[0].type",
     'unknown namespace type "foo"'),
    ("linux.namespaces.1.type", DELETE, "linux.namespaces[1].type", "is required"),
    ("linux.namespaces.1", {"type": "pid"}, "linux.namespaces[1].type",
     'duplicated namespace "pid"'),
    ("linux.namespaces.0.path", "proc/1/ns/pid", "linux.namespaces[0].path",
     "must be an absolute path"),
    ("linux.uidMappings", [{"containerID": 0, "hostID": 0, "size": 1}],
     "linux.uidMappings", "user namespace isn't enabled"),
    ("linux.devices.0.path", "dev/fuse", "linux.devices[0].path", "must be an absolute path"),
    ("linux.devices.0.type", "x", "linux.devices[0].type", 'unknown device type "x"'),
    ("linux.devices.0.major", DELETE, "linux.devices[0].major", "is required for device type 'c'"),
    ("linux.devices.0.minor", "229", "linux.devices[0].minor", "expected integer, got string"),
    ("linux.devices.0.fileMode", -1, "linux.devices[0].fileMode", "out of range"),
    ("linux.sysctl", {"net.ipv4.ip_forward": 1}, 'linux.sysctl["net.ipv4.ip_forward"]',
     "expected string, got integer"),
    ("linux.maskedPaths", ["/proc/kcore", "proc/keys"], "linux.maskedPaths[1]",
     "must be an absolute path"),
    ("linux.readonlyPaths", "/proc/sys", "linux.readonlyPaths", "expected array, got string"),
    ("linux.rootfsPropagation", "rwhatever", "linux.rootfsPropagation",
     'unknown rootfs propagation "rwhatever"'),
    ("linux.cgroupsPath", 1, "linux.cgroupsPath", "expected string, got integer"),
    ("linux.resources", [], "linux.resources", "expected object, got array"),
    ("linux.seccomp", "default", "linux.seccomp", "expected object, got string"),
    ("linux.timeOffsets", {"realtime": {"secs": 1}}, "linux.timeOffsets.realtime",
     'unknown clock "realtime"'),
    ("linux.timeOffsets.monotonic.nanosecs", 1_000_000_000,
     "linux.timeOffsets.monotonic.nanosecs", "out of range"),
    ("linux.timeOffsets.boottime.secs", "7", "linux.timeOffsets.boottime.secs",
     "expected integer, got string"),
    # issue 12 item 8: what used to get Python's words
    ("hostname", "a\udc80b", "hostname", "contains a lone UTF-16 surrogate"),
    ("annotations", {"k": "\ud800"}, 'annotations["k"]', "lone UTF-16 surrogate"),
    ("annotations", {"\ud800": "v"}, "annotations", 'key "\\ud800" contains a lone UTF-16'),
    ("hostname", "a\0b", "hostname", "contains a nul byte"),
    ("mounts.0.source", "pr\0c", "mounts[0].source", "contains a nul byte"),
    ("hooks.prestart.0.path", "/bin/tr\0ue", "hooks.prestart[0].path", "nul byte"),
    ("linux.sysctl", {"net.ipv4\0.x": "1"}, "linux.sysctl", "contains a nul byte"),
    ("x-vendor", {"deep": [[[[1]]]] * 1}, None, None),   # unknown keys: accepted
    ("process.user.umask", 2147483648, "process.user.umask", "out of range [0, 4095]"),
    ("process.consoleSize.height", 65536, "process.consoleSize.height", "out of range"),
    ("hooks.createRuntime.0.timeout", 1 << 63, "hooks.createRuntime[0].timeout",
     "out of range [1, 2147483647]"),
    ("linux.devices.0.major", -1, "linux.devices[0].major", "out of range [0, 2147483647]"),
    ("linux.resources.devices", True, "linux.resources.devices", "expected array, got boolean"),
    ("linux.resources.devices.0.allow", "yes", "linux.resources.devices[0].allow",
     "expected boolean, got string"),
    ("linux.resources.devices.0.access", "rwx", "linux.resources.devices[0].access",
     'invalid device access "rwx"'),
    ("linux.resources.memory", True, "linux.resources.memory", "expected object, got boolean"),
    ("linux.resources.memory", {"limit": "1g"}, "linux.resources.memory.limit",
     "expected integer, got string"),
    ("linux.resources.cpu", {"cpus": "0-999999999999"}, "linux.resources.cpu.cpus",
     "out of range [0, 8191]"),
    ("linux.resources.cpu", {"mems": "1-0"}, "linux.resources.cpu.mems", "descending"),
    ("linux.resources.cpu", {"shares": -1}, "linux.resources.cpu.shares", "out of range"),
    ("linux.resources.pids", {"limit": 1.5}, "linux.resources.pids.limit",
     "expected integer, got number"),
    ("linux.resources.hugepageLimits", [{"pageSize": "../../../etc/x", "limit": 1}],
     "linux.resources.hugepageLimits[0].pageSize", "invalid huge page size"),
    ("linux.resources.hugepageLimits", [{"pageSize": "2MB"}],
     "linux.resources.hugepageLimits[0].limit", "is required"),
    ("linux.resources.blockIO", {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]},
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate", "is required"),
    ("linux.resources.network", {"priorities": [{"name": 1, "priority": 1}]},
     "linux.resources.network.priorities[0].name", "expected string, got integer"),
    ("linux.resources.rdma", {"mlx": {"hcaHandles": -1}}, 'linux.resources.rdma["mlx"].hcaHandles',
     "out of range"),
    ("linux.resources.unified", {"pids.max": 5}, 'linux.resources.unified["pids.max"]',
     "expected string, got integer"),
    ("linux.seccomp", {}, "linux.seccomp.defaultAction", "is required"),
    ("linux.seccomp.architectures", [["SCMP_ARCH_X86_64"]], "linux.seccomp.architectures[0]",
     "expected string, got array"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW",
                       "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                                     "args": [{"index": 6, "op": "SCMP_CMP_EQ"}]}]},
     "linux.seccomp.syscalls[0].args[0].index", "out of range [0, 5]"),
    ("process.scheduler", {"policy": "SCHED_OTHER", "nice": "x"}, "process.scheduler.nice",
     "expected integer, got string"),
    ("process.scheduler", {"policy": "SCHED_FOO"}, "process.scheduler.policy",
     'unknown scheduler policy "SCHED_FOO"'),
    ("process.scheduler", {"nice": 0}, "process.scheduler.policy", "is required"),
    ("process.scheduler", {"policy": "SCHED_OTHER", "flags": ["X"]},
     "process.scheduler.flags[0]", 'unknown scheduler flag "X"'),
    ("process.execCPUAffinity", {"initial": "0-1x"}, "process.execCPUAffinity.initial",
     "is not N or N-M"),
    ("linux.personality", {"domain": None}, "linux.personality.domain", "is required"),
    ("linux.personality", {"domain": "LINUX64"}, "linux.personality.domain",
     'unknown personality domain "LINUX64"'),
    ("linux.memoryPolicy", {"mode": "MPOL_BIND", "nodes": "0-5000"},
     "linux.memoryPolicy.nodes", "out of range [0, 1023]"),
]


@pytest.mark.parametrize("where, value, path, reason", BAD,
                         ids=[f"{b[0]}={b[2]}" for b in BAD])
def test_bad_config(where, value, path, reason):
    s = good()
    _set(s, where, value)
    if path is None:
        kspec.validate(s)
        return
    e = err_of(s)
    assert e.path == path
    assert reason in e.reason
    assert str(e) == f"config.json: {path}: {e.reason}"


def test_user_namespace_without_mappings():
    s = kspec.default_spec(rootless=True)
    del s["linux"]["uidMappings"]
    e = err_of(s)
    assert (e.path, e.reason) == ("linux.uidMappings",
                                  "user namespaces enabled, but no uid mappings found")
    s = kspec.default_spec(rootless=True)
    s["linux"]["gidMappings"] = []
    e = err_of(s)
    assert (e.path, e.reason) == ("linux.gidMappings",
                                  "user namespaces enabled, but no gid mappings found")


def test_mapping_fields():
    s = kspec.default_spec(rootless=True)
    s["linux"]["uidMappings"][0]["size"] = 0
    e = err_of(s)
    assert e.path == "linux.uidMappings[0].size" and "out of range [1," in e.reason
    s = kspec.default_spec(rootless=True)
    del s["linux"]["gidMappings"][0]["hostID"]
    e = err_of(s)
    assert (e.path, e.reason) == ("linux.gidMappings[0].hostID", "is required")


def _idmapped(**kw):
    m = {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind"]}
    m.update(kw)
    return m


def test_idmapped_mounts_accepted():
    """What runc 1.2 takes: mappings on a bind (with or without a user
    namespace, idmap/ridmap or neither), idmap alone with a user namespace
    (new or joined), and empty mappings without an option on any mount."""
    maps = [{"containerID": 0, "hostID": 1000, "size": 1},
            {"containerID": 1, "hostID": 100000, "size": 65535}]
    for opts in (["rbind"], ["bind", "idmap"], ["rbind", "ridmap"]):
        s = good()
        s["mounts"].append(_idmapped(options=opts, uidMappings=maps,
                                     gidMappings=[dict(m) for m in maps]))
        kspec.validate(s)
    s = good()
    s["mounts"].append(_idmapped(type="tmpfs", options=["nosuid"], uidMappings=[],
                                 gidMappings=[]))
    kspec.validate(s)
    for userns in ({"type": "user"}, {"type": "user", "path": "/proc/1/ns/user"}):
        s = kspec.default_spec(rootless=True)
        s["linux"]["namespaces"] = [n for n in s["linux"]["namespaces"]
                                    if n["type"] != "user"] + [userns]
        s["mounts"].append(_idmapped(options=["rbind", "ridmap"]))
        s["mounts"].append(_idmapped(destination="/d2", options=["idmap"],
                                     uidMappings=[], gidMappings=[]))
        kspec.validate(s)


def test_hostname_needs_uts_namespace():
    s = good()
    s["linux"]["namespaces"] = [n for n in s["linux"]["namespaces"] if n["type"] != "uts"]
    e = err_of(s)
    assert (e.path, e.reason) == ("hostname",
                                  "unable to set hostname without a private UTS namespace")
    s["hostname"] = ""
    e = err_of(s)
    assert e.path == "domainname"
    s["domainname"] = ""
    kspec.validate(s)


def test_masked_paths_need_mount_namespace():
    s = good()
    s["linux"]["namespaces"] = [n for n in s["linux"]["namespaces"] if n["type"] != "mount"]
    e = err_of(s)
    assert e.path == "linux.maskedPaths"
    assert e.reason == "unable to restrict sys entries without a private MNT namespace"


def test_time_offsets_need_time_namespace():
    s = good()
    s["linux"]["namespaces"] = [n for n in s["linux"]["namespaces"] if n["type"] != "time"]
    e = err_of(s)
    assert e.path == "linux.timeOffsets"
    assert "time namespace isn't enabled" in e.reason


def test_pipe_device_needs_no_major_minor_and_null_path_namespace_is_new():
    s = good()
    s["linux"]["namespaces"][0]["path"] = None
    out = kspec.validate(s)
    assert out["linux"]["namespaces"][0] == {"type": "pid"}
    assert "major" not in out["linux"]["devices"][1]


def test_spec_error_is_picklable_over_the_wire():
    from kago.errors import from_wire, to_wire
    s = good()
    s["linux"]["namespaces"][0]["type"] = "foo"
    e = err_of(s)
    back = from_wire(json.loads(json.dumps(to_wire(e))))
    assert isinstance(back, SpecError)
    assert back.path == "linux.namespaces[0].type"
    assert str(back) == str(e)


# ---------------------------------------------------------------- default spec


@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_shape(rootless):
    s = kspec.default_spec(rootless)
    assert s["process"]["args"] == ["sh"]
    assert s["ociVersion"] == "1.0.2-dev"
    types = [n["type"] for n in s["linux"]["namespaces"]]
    assert ("user" in types) == rootless
    assert ("network" in types) != rootless
    assert ("resources" in s["linux"]) != rootless
    if rootless:
        assert s["linux"]["uidMappings"] == [
            {"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        assert s["linux"]["gidMappings"][0]["hostID"] == os.getegid()
        assert all(not o.startswith(("uid=", "gid="))
                   for m in s["mounts"] for o in m.get("options", []))
    # fresh objects each call (callers mutate them)
    assert kspec.default_spec(rootless) is not s
    s["process"]["capabilities"]["bounding"].append("X")
    assert "X" not in kspec.default_spec(rootless)["process"]["capabilities"]["effective"]


@needs_runc
@pytest.mark.parametrize("rootless", [False, True])
def test_default_spec_matches_runc(tmp_path, rootless):
    subprocess.run([RUNC, "spec"] + (["--rootless"] if rootless else []),
                   cwd=tmp_path, check=True, capture_output=True)
    ref = (tmp_path / "config.json").read_bytes()
    assert json.loads(ref) == kspec.default_spec(rootless)
    # byte for byte too: tab indent, no trailing newline
    assert kspec.dumps(kspec.default_spec(rootless)).encode() == ref


@needs_runc
def test_write_default_spec_matches_runc_file(tmp_path):
    ref_dir = tmp_path / "runc"
    ref_dir.mkdir()
    subprocess.run([RUNC, "spec"], cwd=ref_dir, check=True, capture_output=True)
    mine = tmp_path / "kago"
    mine.mkdir()
    kspec.write_default_spec(str(mine))
    assert (mine / "config.json").read_bytes() == (ref_dir / "config.json").read_bytes()
    assert (os.stat(mine / "config.json").st_mode & 0o777
            == os.stat(ref_dir / "config.json").st_mode & 0o777)


@needs_runc
def test_exists_message_matches_runc(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    r = subprocess.run([RUNC, "spec"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0
    with pytest.raises(InvalidArgument) as ei:
        kspec.write_default_spec(str(tmp_path))
    assert str(ei.value) in r.stderr


def test_write_default_spec(tmp_path):
    path = kspec.write_default_spec(str(tmp_path), rootless=False)
    assert path == os.path.join(str(tmp_path), "config.json")
    text = (tmp_path / "config.json").read_text()
    assert text.startswith('{\n\t"ociVersion": "1.0.2-dev",\n\t"process": {\n\t\t"terminal"')
    assert not text.endswith("\n")
    assert kspec.load(str(tmp_path)) == kspec.validate(kspec.default_spec())


def test_write_default_spec_refuses_existing(tmp_path):
    (tmp_path / "config.json").write_text("keep me")
    with pytest.raises(InvalidArgument) as ei:
        kspec.write_default_spec(str(tmp_path), rootless=True)
    assert str(ei.value) == "File config.json exists. Remove it first"
    assert (tmp_path / "config.json").read_text() == "keep me"


def test_write_default_spec_missing_bundle(tmp_path):
    from kago.errors import SyscallError
    with pytest.raises(SyscallError) as ei:
        kspec.write_default_spec(str(tmp_path / "nope"))
    assert "No such file or directory" in str(ei.value)


def test_rootless_written_spec_loads(tmp_path):
    kspec.write_default_spec(str(tmp_path), rootless=True)
    s = kspec.load(str(tmp_path))
    assert s["linux"]["namespaces"][-1] == {"type": "user"}


def test_import_is_lean():
    import sys
    # (json itself pulls in re and enum; nothing heavier may come with kago.spec)
    code = ("import sys, kago.spec; bad = [m for m in ('typing', 'dataclasses', "
            "'signal', 'subprocess', 'ctypes', 'pathlib') if m in sys.modules]; "
            "print(bad)")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True,
                         text=True, check=True, cwd=root)
    assert out.stdout.strip() == "[]"


def test_deep_nesting_is_refused_wherever_it_is():
    s = good()
    v = "x"
    for _ in range(100):
        v = [v]
    s["x-vendor"] = v
    e = err_of(s)
    assert e.path.startswith("x-vendor[0][0]") and e.reason == "nested too deeply (more than 64 levels)"


@pytest.mark.parametrize("value, words", [((1, 2), "expected a JSON value, got tuple"),
                                          (b"x", "expected a JSON value, got bytes"),
                                          ({1: "a"}, "object key 1 is not a string")])
def test_library_callers_non_json_values(value, words):
    s = good()
    s["annotations"]["k"] = value
    e = err_of(s)
    assert e.path.startswith("annotations") and words in e.reason


def test_validate_process_walks_exec_process_too():
    p = good()["process"]
    p["env"].append("X=\ud800")
    with pytest.raises(SpecError) as ei:
        kspec.validate_process(p)
    assert ei.value.path == "process.env[2]" and "surrogate" in ei.value.reason


def test_validate_resources_for_update():
    with pytest.raises(SpecError) as ei:
        kspec.validate_resources({"memory": {"limit": True}}, "resources")
    assert str(ei.value) == "config.json: resources.memory.limit: expected integer, got boolean"
    r = {"memory": {"limit": 1 << 20, "swap": None}, "pids": {"limit": -1}}
    assert kspec.validate_resources(r) == {"memory": {"limit": 1 << 20}, "pids": {"limit": -1}}
