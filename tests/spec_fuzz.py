"""Malformed config.json values for the fuzz tests (tests/unit/test_spec_fuzz.py,
tests/integration/test_spec_fuzz.py).

:func:`full_config` uses every section kago consumes; :func:`paths` lists
every JSON path in it (object members and array items, containers included);
:func:`mutations` pairs each path with each kind of bad value (:data:`KINDS`):
wrong types, null, a missing key, extremes, NUL bytes, lone surrogates, very
long strings, deep nesting.  :func:`apply` makes the mutated copy.
"""

from __future__ import annotations

import copy
import pickle

#: Python exception names (and the traceback header) that must never reach a user
PYTHON_WORDS = ("Traceback", "TypeError", "KeyError", "ValueError", "AttributeError",
                "UnicodeEncodeError", "UnicodeDecodeError", "OverflowError",
                "IndexError", "RecursionError", "struct.error", "ZeroDivisionError",
                "MemoryError", "NameError", "AssertionError", "Exception", "object is not",
                "not supported between", "has no attribute", "embedded null",
                "surrogates not allowed", "too large to convert", "int too big")

DELETE = object()    # the "missing key" mutation


def deep(n=100):
    v = "x"
    for _ in range(n):
        v = [v] if n % 2 else {"a": v}
    return v


# (name, value or callable(original) -> value)
KINDS = [
    ("missing", DELETE),
    ("null", None),
    ("true", True),
    ("false", False),
    ("zero", 0),
    ("minus1", -1),
    ("int32max+1", 1 << 31),
    ("uint32max", (1 << 32) - 1),
    ("uint32max+1", 1 << 32),
    ("int64max+1", 1 << 63),
    ("uint64max+1", 1 << 64),
    ("int64min-1", -(1 << 63) - 1),
    ("huge", 10 ** 40),
    ("float", 1.5),
    ("float-int", 2.0),
    ("empty-string", ""),
    ("string", "x"),
    ("numeric-string", "7"),
    ("nul", "\0"),
    ("with-nul", lambda v: (v if isinstance(v, str) else "a") + "\0b"),
    ("surrogate", "\ud800"),
    ("with-surrogate", lambda v: (v if isinstance(v, str) else "a") + "\udcff"),
    ("long-string", "A" * 70000),
    ("long-path", "/" + "a/" * 3000 + "b"),
    ("dotdot-path", "/../../../../tmp/kago-fuzz-escape"),
    ("empty-array", []),
    ("array-of-int", [1]),
    ("array-of-null", [None]),
    ("array-of-nul", ["a\0"]),
    ("array-of-object", [{}]),
    ("empty-object", {}),
    ("object", {"a": 1}),
    ("object-nul-key", {"a\0b": "c"}),
    ("object-surrogate-key", {"\udfff": "c"}),
    ("deep-array", deep(101)),
    ("deep-object", deep(100)),
]

NAMES = [k for k, _ in KINDS]


def full_config(rootfs: str = "rootfs", cid: str = "fuzz") -> dict:
    """A config that uses every section kago consumes (valid on this host's
    kind of machine: cgroup v1 with the usual controllers, busybox rootfs)."""
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
    hook = {"path": "/bin/true", "args": ["true", "x"], "env": ["A=1"], "timeout": 10}
    return {
        "ociVersion": "1.2.0",
        "process": {
            "terminal": False,
            "consoleSize": {"height": 24, "width": 80},
            "user": {"uid": 0, "gid": 0, "umask": 18, "additionalGids": [5, 10]},
            "args": ["true", "arg"],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "A=b"],
            "cwd": "/tmp",
            "capabilities": {"bounding": list(caps), "effective": list(caps),
                             "permitted": list(caps), "inheritable": [],
                             "ambient": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512},
                        {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}],
            "noNewPrivileges": True,
            "apparmorProfile": "",
            "selinuxLabel": "",
            "oomScoreAdj": 10,
            "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
            "scheduler": {"policy": "SCHED_OTHER", "nice": 1, "priority": 0,
                          "flags": ["SCHED_FLAG_RESET_ON_FORK"], "runtime": 0,
                          "deadline": 0, "period": 0},
            "execCPUAffinity": {"initial": "0", "final": "0-1"},
        },
        "root": {"path": rootfs, "readonly": True},
        "hostname": "fuzz",
        "domainname": "fuzz.example",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/mnt", "type": "bind", "source": "/etc",
             "options": ["rbind", "ro", "rprivate"]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=755", "size=1m"],
             "uidMappings": [], "gidMappings": []},
        ],
        "hooks": {k: [dict(hook, args=list(hook["args"]), env=list(hook["env"]))]
                  for k in ("prestart", "createRuntime", "createContainer",
                            "startContainer", "poststart", "poststop")},
        "annotations": {"org.example.fuzz": "yes", "b": ""},
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount",
                                                 "cgroup", "time")],
            "timeOffsets": {"monotonic": {"secs": 5, "nanosecs": 100},
                            "boottime": {"secs": -5, "nanosecs": 0}},
            "devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                 "fileMode": 0o666, "uid": 0, "gid": 0},
                {"path": "/dev/kago-fifo", "type": "p", "fileMode": 0o600},
            ],
            "resources": {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
                    {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "m"},
                ],
                "memory": {"limit": 268435456, "reservation": 134217728,
                           "swappiness": 10, "disableOOMKiller": False,
                           "checkBeforeUpdate": False},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000,
                        "cpus": "0-1", "mems": "0"},
                "pids": {"limit": 64},
                "blockIO": {"weight": 100, "leafWeight": 100,
                            "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                            "throttleReadBpsDevice": [{"major": 8, "minor": 0,
                                                       "rate": 10485760}],
                            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0,
                                                         "rate": 1000}]},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
                "network": {"classID": 1048577,
                            "priorities": [{"name": "lo", "priority": 1}]},
                "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 100}},
                "unified": {"pids.max": "64"},
            },
            "cgroupsPath": f"/kago/{cid}",
            "sysctl": {"net.ipv4.ip_forward": "0", "kernel.msgmax": "8192"},
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/bus"],
            "rootfsPropagation": "rslave",
            "mountLabel": "",
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "syscalls": [
                    {"names": ["acct", "bpf"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                    {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 8, "valueTwo": 0,
                               "op": "SCMP_CMP_EQ"}]},
                ],
            },
            "personality": {"domain": "LINUX", "flags": []},
            "memoryPolicy": {"mode": "MPOL_DEFAULT", "nodes": "", "flags": []},
        },
    }


def paths(doc, prefix=()):
    """Every JSON path in ``doc`` as a tuple of keys/indexes (not the root)."""
    out = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc)
    for k, v in items:
        p = prefix + (k,)
        out.append(p)
        if isinstance(v, (dict, list)) and v:
            out += paths(v, p)
    return out


def dotted(path) -> str:
    """("linux", "devices", 0, "major") -> "linux.devices[0].major" (as kago prints)."""
    s = ""
    for k in path:
        s += f"[{k}]" if isinstance(k, int) else (f".{k}" if s else k)
    return s


def apply(doc, path, value):
    """A deep copy of ``doc`` with ``path`` set to ``value`` (DELETE: removed;
    a callable gets the old value)."""
    doc = pickle.loads(pickle.dumps(doc, -1))    # a deep copy, 10x faster
    obj = doc
    for k in path[:-1]:
        obj = obj[k]
    old = obj.get(path[-1]) if isinstance(obj, dict) else obj[path[-1]]
    if value is DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value(old) if callable(value) else copy.deepcopy(value)
    return doc


def mutations(doc):
    """(path, kind name, value) for every path of ``doc`` x every kind."""
    return [(p, name, value) for p in paths(doc) for name, value in KINDS]
