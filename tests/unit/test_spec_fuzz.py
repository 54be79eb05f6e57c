"""Fuzzing kago.spec.validate: every JSON path of a full config x every kind of
bad value (tests/spec_fuzz.py), then random mutations from hypothesis.

Each case either raises SpecError naming the path (or a path the rule ties it
to) in kago's words, or is accepted - and then every consumer that can run
without a container takes it without a Python exception: the cgroup drivers
(against a fake cgroupfs), the systemd properties and their D-Bus encoding,
the device programs, seccomp's parser, mount options, capabilities, CPU lists,
the tty size, mknod's device number, and the JSON that kago writes back.
"""

import copy
import os
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kago import _json
from kago import spec as kspec
from kago.cgroups import devices, systemd
from kago.cgroups.dbus import _Writer
from kago.cgroups.v1 import V1Manager
from kago.cgroups.v2 import V2Manager
from kago.errors import KagoError, SpecError
from kago.process import extras
from kago.rootfs.mounts import parse_options
from kago.security import capabilities, seccomp
from tests.spec_fuzz import (DELETE, KINDS, PYTHON_WORDS, apply, dotted, full_config,
                             mutations, paths)

# cross-field rules: a change at the key (a path prefix) may be reported at these
RELATED = {
    "linux.namespaces": ("hostname", "domainname", "linux.maskedPaths",
                         "linux.readonlyPaths", "linux.timeOffsets",
                         "linux.uidMappings", "linux.gidMappings", "linux.sysctl"),
    "process.rlimits": ("process.rlimits",),
    "linux.seccomp.syscalls": ("linux.seccomp.listenerPath",),
}
RELATED_EXACT = {"linux": RELATED["linux.namespaces"]}   # linux removed: no namespaces


def _fake_v1(root):
    files = {"memory": ["memory.limit_in_bytes", "memory.soft_limit_in_bytes",
                        "memory.memsw.limit_in_bytes", "memory.swappiness",
                        "memory.kmem.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes",
                        "memory.oom_control", "memory.use_hierarchy",
                        "memory.usage_in_bytes"],
             "cpu": ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us",
                     "cpu.cfs_burst_us", "cpu.rt_period_us", "cpu.rt_runtime_us", "cpu.idle"],
             "cpuset": ["cpuset.cpus", "cpuset.mems"], "pids": ["pids.max"],
             "blkio": ["blkio.weight", "blkio.leaf_weight", "blkio.weight_device",
                       "blkio.leaf_weight_device", "blkio.throttle.read_bps_device",
                       "blkio.throttle.write_bps_device", "blkio.throttle.read_iops_device",
                       "blkio.throttle.write_iops_device"],
             "devices": ["devices.allow", "devices.deny"],
             "hugetlb": ["hugetlb.2MB.limit_in_bytes"],
             "net_cls": ["net_cls.classid"], "net_prio": ["net_prio.ifpriomap"],
             "rdma": ["rdma.max"]}
    subsys = {}
    for ctrl, names in files.items():
        d = os.path.join(root, "v1", ctrl, "kago", "c1")
        os.makedirs(d)
        for n in names:
            with open(os.path.join(d, n), "w") as f:
                f.write("0\n")
        subsys[ctrl] = d
    return V1Manager("/kago/c1", {os.path.join(root, "v1", c): d for c, d in subsys.items()},
                     subsys)


def _fake_v2(root):
    d = os.path.join(root, "v2", "kago", "c1")
    os.makedirs(d)
    for n in ("memory.max", "memory.low", "memory.swap.max", "memory.current", "cpu.weight",
              "cpu.max.burst", "cpu.idle", "cpuset.cpus", "cpuset.mems", "pids.max",
              "io.weight", "io.max", "hugetlb.2MB.max", "rdma.max"):
        with open(os.path.join(d, n), "w") as f:
            f.write("0\n")
    with open(os.path.join(d, "cpu.max"), "w") as f:
        f.write("max 100000\n")
    with open(os.path.join(d, "cgroup.controllers"), "w") as f:
        f.write("cpuset cpu io memory hugetlb pids rdma\n")
    return V2Manager("/kago/c1", {os.path.join(root, "v2"): d})


@pytest.fixture(scope="module")
def managers(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cgfs"))
    return _fake_v1(root), _fake_v2(root)


def _kago(f, *a):
    """Run a consumer: a KagoError is a fine answer, anything else is not."""
    try:
        return f(*a)
    except KagoError as e:
        _words(str(e))
        return None


def consume(spec, managers):
    """What kago does with an accepted config, short of a container."""
    _json.dumps(spec).encode()                      # kago.json / state.json
    proc = spec.get("process") or {}
    lx = spec["linux"]
    res = lx.get("resources")
    if res:
        v1, v2 = managers
        _kago(v1.apply, copy.deepcopy(res))
        _kago(v2.apply, copy.deepcopy(res), True)   # (devices: a real bpf(2) below)
        for is_v2 in (False, True):
            props = _kago(systemd.properties, res, is_v2)
            if props:
                _Writer().put("a(sv)", [props])
        rules = devices.rules_for(lx)
        _kago(devices.v2_program, rules)
        for r in rules:
            devices.v1_line(r)
    if lx.get("seccomp"):
        _kago(seccomp.parse, lx["seccomp"])
    for i, m in enumerate(spec.get("mounts") or ()):
        _kago(parse_options, m.get("options"), f"mounts[{i}].options")
    _kago(capabilities.Caps, proc.get("capabilities"))
    capabilities.unknown(proc.get("capabilities"))
    for rl in proc.get("rlimits") or ():
        kspec.RLIMITS[rl["type"]]
    aff = proc.get("execCPUAffinity") or {}
    for k in ("initial", "final"):
        if aff.get(k):
            _kago(extras.parse_cpus, aff[k], k)
    nodes = (lx.get("memoryPolicy") or {}).get("nodes")
    if nodes:
        _kago(extras.parse_cpus, nodes, "nodes")
    size = proc.get("consoleSize")
    if size:
        struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0)
    for d in lx.get("devices") or ():
        if d.get("type") != "p":
            os.makedev(d.get("major", 0), d.get("minor", 0))
        d.get("fileMode", 0o666) & 0o7777
    user = proc.get("user") or {}
    os.umask(os.umask(user.get("umask", 0o022)))


def _words(msg):
    for w in PYTHON_WORDS:
        assert w not in msg, msg


def _canon(path):
    return path.replace('["', ".").replace('"]', "")


def _related(err_path, mutated):
    err_path, mutated = _canon(err_path), _canon(mutated)
    if not err_path:
        return mutated.count(".") == 0 and "[" not in mutated   # a top-level value
    if err_path.startswith(mutated) or mutated.startswith(err_path):
        return True
    for key, others in RELATED.items():
        if mutated.startswith(key) and err_path.startswith(others):
            return True
    return err_path.startswith(RELATED_EXACT.get(mutated, ("\0",)))


def check_case(base, path, value, managers):
    doc = apply(base, path, value)
    where = dotted(path)
    try:
        out = kspec.validate(doc)
    except SpecError as e:
        _words(str(e))
        assert str(e).startswith("config.json: ")
        assert _related(e.path, where), f"mutated {where}, error at {e.path!r}: {e}"
        return "refused"
    consume(out, managers)
    return "accepted"


def test_the_full_config_is_valid_and_consumable(managers):
    base = full_config()
    consume(kspec.validate(copy.deepcopy(base)), managers)
    assert len(paths(base)) > 300


def test_every_path_times_every_kind_of_bad_value(managers):
    """The enumeration: >= 10,000 cases, each refused in kago's words at its
    path, or accepted and consumable."""
    base = full_config()
    cases = mutations(base)
    assert len(cases) >= 10_000
    t0 = time.monotonic()
    seen = {"refused": 0, "accepted": 0}
    failures = []
    for path, kind, value in cases:
        try:
            seen[check_case(base, path, value, managers)] += 1
        except Exception as e:  # noqa: BLE001 - collected, reported together
            failures.append(f"{dotted(path)} <- {kind}: {type(e).__name__}: {str(e)[:300]}")
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures[:40])
    # every kind was refused somewhere and the ones that can't be right never pass
    print(f"\n{len(cases)} cases in {time.monotonic() - t0:.1f}s: {seen}")
    assert seen["refused"] > len(cases) // 2


@pytest.mark.parametrize("kind", ["nul", "surrogate", "deep-array", "deep-object",
                                  "object-nul-key", "object-surrogate-key"])
def test_unclean_values_are_refused_at_every_path(kind):
    """NUL, lone surrogates and deep nesting are refused wherever they are,
    unknown keys and annotations included, naming the path."""
    base = full_config()
    value = dict(KINDS)[kind]
    for path in paths(base) + [("annotations", "new"), ("linux", "x-vendor"), ("extra",)]:
        doc = copy.deepcopy(base)
        obj = doc
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = copy.deepcopy(value)
        with pytest.raises(SpecError) as ei:
            kspec.validate(doc)
        assert _canon(ei.value.path).startswith(dotted(path)), (path, str(ei.value))
        _words(str(ei.value))


# ------------------------------------------------------------------ hypothesis

JSON_LEAVES = (st.none() | st.booleans()
               | st.integers(min_value=-(1 << 70), max_value=1 << 70)
               | st.floats(allow_nan=False, allow_infinity=False)
               | st.text(max_size=20)
               | st.sampled_from(["\0", "\ud800", "a\udc00b", "/", "..", "-1", "0-1",
                                  "2MB", "SCMP_ACT_ALLOW", "rwm", "c", "RLIMIT_CORE"]))
JSON = st.recursive(JSON_LEAVES, lambda kids: st.lists(kids, max_size=3)
                    | st.dictionaries(st.text(max_size=8), kids, max_size=3), max_leaves=8)
BASE = full_config()
PATHS = paths(BASE)


@settings(max_examples=1500, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON | st.just(DELETE)),
                min_size=1, max_size=3))
def test_random_mutations(managers, changes):
    """Up to three random JSON values at random paths at once."""
    doc = BASE
    for path, value in changes:
        try:
            doc = apply(doc, path, value if value is DELETE else (lambda _v, x=value: x))
        except (KeyError, IndexError, TypeError):
            pass   # an earlier change removed or replaced the parent
    try:
        out = kspec.validate(copy.deepcopy(doc))
    except SpecError as e:
        _words(str(e))
        assert str(e).startswith("config.json: ")
        return
    consume(out, managers)
