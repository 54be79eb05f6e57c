"""Fuzzing `kago create` as a process: a full config (tests/spec_fuzz.py, every
section, fitted to this host) mutated at a spread of JSON paths x kinds of bad
value.  Each case: kago either creates the container (then `delete --force`
removes it) or exits 1 with one line of its own words - the validator's
`config.json: <path>: <reason>` when the validator refuses it -, never a Python
exception's text; and nothing is left on the host: no state dir, process,
cgroup or mount, no directory outside the cgroup filesystem, no sysctl changed.
(tests/unit/test_spec_fuzz.py runs all 13,000+ cases through the validator.)
"""

import copy
import glob
import json
import os
import time

import pytest

from kago import spec as kspec
from kago.errors import SpecError
from tests.spec_fuzz import KINDS, PYTHON_WORDS, apply, dotted, full_config, mutations

ESCAPE = "/tmp/kago-fuzz-escape"      # where a path that climbs out would land
STRIDE = 37                           # 12,000+ cases / 37: ~330, every kind and path spread


def _block_device():
    """major, minor of a block device of this host (for the throttle rules)."""
    for dev in sorted(glob.glob("/sys/block/*/dev")):
        ma, mi = open(dev).read().split(":")
        return int(ma), int(mi)
    return None


def _sysctl(name):
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return f.read().strip()


def host_config(cid, sysctls):
    """full_config() fitted to this host: only the cgroup controllers and
    files it has; sysctls at the host's own values (a mutation that dropped a
    namespace must not be able to change the host even where kago lets it)."""
    c = full_config("rootfs", cid)
    res = c["linux"]["resources"]
    has = lambda ctrl: os.path.isdir(f"/sys/fs/cgroup/{ctrl}")  # noqa: E731
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    if not v2:
        del res["unified"]
    for ctrl, key in (("hugetlb", "hugepageLimits"), ("rdma", "rdma")):
        if not (has(ctrl) or v2):
            del res[key]
    if v2 or not (has("net_cls") and has("net_prio")):
        del res["network"]
    bio = res["blockIO"]
    dev = _block_device()
    if v2 or not os.path.exists("/sys/fs/cgroup/blkio/blkio.weight"):
        for k in ("weight", "leafWeight", "weightDevice"):
            del bio[k]
    for k in ("throttleReadBpsDevice", "throttleWriteIOPSDevice"):
        if dev is None:
            del bio[k]
        else:
            bio[k][0].update(major=dev[0], minor=dev[1])
    if v2:
        del res["memory"]["swappiness"]
    c["linux"]["sysctl"] = dict(sysctls)
    return c


def _cases(base):
    # a ".." cgroupsPath is cleaned into a cgroup whose parents (as runc) stay:
    # tests/integration/test_cgroup_paths.py checks it and removes them
    return [(p, k, v) for p, k, v in mutations(base)[::STRIDE]
            if not (p == ("linux", "cgroupsPath") and k == "dotdot-path")]


@pytest.fixture
def host_sysctls():
    names = ("net.ipv4.ip_forward", "kernel.msgmax")
    before = {n: _sysctl(n) for n in names}
    yield before
    after = {n: _sysctl(n) for n in names}
    for n, v in before.items():          # put back whatever changed, then fail
        if after[n] != v:
            with open("/proc/sys/" + n.replace(".", "/"), "w") as f:
                f.write(v)
    assert after == before


def test_kago_create_with_mutated_full_configs(bundle, run_kago, make_cid, state_root,
                                               tmp_path, assert_clean, host_sysctls):
    cid0 = make_cid("kf")
    base = host_config(cid0, host_sysctls)
    b = bundle(["true"])
    cfg = b / "config.json"

    def create(doc, cid):
        cfg.write_text(json.dumps(doc))
        log = tmp_path / "log.json"
        log.unlink(missing_ok=True)
        r = run_kago("--log", log, "--log-format", "json", "create", "-b", b, cid,
                     check=False)
        msgs = [json.loads(line)["msg"] for line in log.read_text().splitlines()] \
            if log.exists() else []
        return r, msgs

    # the base itself creates, starts and is deleted cleanly
    r, _ = create(base, cid0)
    assert r.returncode == 0, r.stderr
    run_kago("start", cid0)
    run_kago("delete", "--force", cid0)
    assert_clean()

    cases = _cases(base)
    assert len(cases) >= 300
    assert {k for _, k, _ in cases} == {k for k, _ in KINDS}
    t0 = time.monotonic()
    seen = {"refused": 0, "failed": 0, "created": 0}
    failed = []     # accepted by the validator, refused later (the kernel, a hook, ...)
    for path, kind, value in cases:
        cid = make_cid("kf")
        doc = apply(base, path, value)
        lx = doc.get("linux")
        if isinstance(lx, dict) and path != ("linux", "cgroupsPath"):
            lx["cgroupsPath"] = f"/kago/{cid}"     # tracked by name
        what = f"{dotted(path)} <- {kind}"
        try:
            kspec.validate(copy.deepcopy(doc))
            refused = None
        except SpecError as e:
            refused = e
        r, msgs = create(doc, cid)
        for w in PYTHON_WORDS:
            assert w not in r.stderr, f"{what}: {r.stderr}"
        if r.returncode == 0:
            assert refused is None, what
            seen["created"] += 1
            d = run_kago("delete", "--force", cid, check=False)
            assert d.returncode == 0, f"{what}: delete: {d.stderr}"
        else:
            assert r.returncode == 1, f"{what}: exit {r.returncode}: {r.stderr}"
            assert msgs and msgs[-1].startswith("kago create failed: "), f"{what}: {r.stderr}"
            if refused is not None:
                assert msgs[-1] == f"kago create failed: {refused}", what
                seen["refused"] += 1
            else:
                seen["failed"] += 1
                failed.append(f"{what}: {msgs[-1][:200]}")
        assert os.listdir(state_root) == [], what
        assert not os.path.lexists(ESCAPE), what
        assert_clean()
    print(f"\n{len(cases)} creates in {time.monotonic() - t0:.0f}s: {seen}")
    print("\n".join(failed))
    assert seen["refused"] > len(cases) // 2
    assert seen["created"] > 0


# the cases issue 12 found with Python's words, each through `kago create`
KNOWN = [
    (("hostname",), "kago\ud800", "hostname: contains a lone UTF-16 surrogate"),
    (("annotations", "org.example.fuzz"), "\udfff", 'annotations["org.example.fuzz"]: '
     "contains a lone UTF-16 surrogate"),
    (("linux", "resources", "devices"), True,
     "linux.resources.devices: expected array, got boolean"),
    (("linux", "resources", "memory"), True,
     "linux.resources.memory: expected object, got boolean"),
    (("process", "scheduler", "nice"), "x", "process.scheduler.nice: expected integer, got string"),
    (("process", "user", "umask"), 2147483648,
     "process.user.umask: 2147483648 is out of range [0, 4095]"),
    (("process", "user", "uid"), 4294967295,
     "process.user.uid: 4294967295 is out of range [0, 4294967294]"),
    (("mounts", 7, "source"), "/etc\0", "mounts[7].source: contains a nul byte"),
    (("hooks", "prestart", 0, "path"), "/bin/true\0", "hooks.prestart[0].path: contains a nul byte"),
    (("process", "env", 2), "A=\0", "process.env[2]: contains a nul byte"),
    (("linux", "namespaces", 0, "path"), "/proc/1/ns/pid\0",
     "linux.namespaces[0].path: contains a nul byte"),
    (("linux", "resources", "hugepageLimits"), [{"pageSize": "../../../../tmp/x", "limit": 1}],
     "linux.resources.hugepageLimits[0].pageSize: invalid huge page size"),
]


@pytest.mark.parametrize("path, value, words", KNOWN, ids=[dotted(k[0]) for k in KNOWN])
def test_known_python_words_cases(bundle, run_kago, cid, state_root, tmp_path, assert_clean,
                                  host_sysctls, path, value, words):
    doc = apply(host_config(cid, host_sysctls), path, value)
    b = bundle(["true"])
    (b / "config.json").write_text(json.dumps(doc))
    log = tmp_path / "log.json"
    r = run_kago("--log", log, "--log-format", "json", "create", "-b", b, cid, check=False)
    assert r.returncode == 1, r.stderr
    msg = json.loads(log.read_text().splitlines()[-1])["msg"]
    assert msg.startswith(f"kago create failed: config.json: {words}"), msg
    for w in PYTHON_WORDS:
        assert w not in r.stderr
    assert os.listdir(state_root) == []
    assert_clean()
