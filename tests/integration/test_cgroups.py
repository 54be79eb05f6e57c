"""cgroups for real (issue 4): each resource by its cgroup files and by its
effect, pause/resume, events, update.

Every test here runs on the host's cgroup version: v1 (hybrid) on the build
machine, and v2 inside ../shared/cgv2's VM, where scripts/test.sh runs
``pytest tests/integration -m cgroupv2``.  Only test_unsupported_* differ.
"""

import json
import os
import select
import subprocess
import time

import pytest

from kago import cgroups
from tests.integration.helpers import one, wait_file

pytestmark = pytest.mark.cgroupv2

V2 = cgroups.is_v2_host()
SLOW = 15 if os.environ.get("KAGO_SLOW_HOST") else 1   # the TCG VM is 10-25x slower
RW = {"root": {"readonly": False}}
MiB = 1 << 20


def manager(state_root, cid):
    with open(os.path.join(state_root, cid, "kago.json")) as f:
        return cgroups.load(json.load(f)["cgroup"])


def cgpath(state_root, cid, v1, v2):
    """The file ``v1`` ("controller/file") or ``v2`` ("file") of container cid."""
    m = manager(state_root, cid)
    if V2:
        return os.path.join(m.dir, v2)
    ctrl, name = v1.split("/")
    return os.path.join(m.subsys[ctrl], name)


def cgread(state_root, cid, v1, v2):
    with open(cgpath(state_root, cid, v1, v2)) as f:
        return f.read().strip()


def kv(text):
    return {k: int(v) for k, v in (line.split()[:2] for line in text.splitlines())}


def resources(**r):
    return {"linux": {"resources": r}}


def rootfile(bundle_dir, name):
    try:
        with open(os.path.join(bundle_dir, "rootfs", name)) as f:
            return f.read()
    except FileNotFoundError:
        return None


def a_block_device():
    with open("/proc/partitions") as f:
        for line in f.readlines()[2:]:
            ma, mi, _, name = line.split()
            if not name.startswith(("loop", "ram", "zram")) and int(mi) % 16 == 0:
                return int(ma), int(mi)
    return None


# ------------------------------------------------------------------- files

def test_resource_files(bundle, run_kago, cid, state_root):
    r = {"memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB},
         "pids": {"limit": 20},
         "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"}}
    dev = a_block_device()
    if dev:
        r["blockIO"] = {"throttleReadBpsDevice": [
            {"major": dev[0], "minor": dev[1], "rate": MiB}]}
    b = bundle(["sleep", "600"], linux={"resources": r})
    run_kago("run", "-d", "-b", b, cid)
    f = lambda v1, v2: cgread(state_root, cid, v1, v2)  # noqa: E731
    if V2:
        assert f("", "memory.max") == str(64 * MiB)
        assert f("", "memory.low") == str(32 * MiB)
        if os.path.exists(cgpath(state_root, cid, "", "memory.swap.max")):
            assert f("", "memory.swap.max") == str(32 * MiB)
        assert f("", "pids.max") == "20"
        assert f("", "cpu.max") == "20000 100000"
        assert f("", "cpu.weight") == str(1 + (512 - 2) * 9999 // 262142)
        assert f("", "cpuset.cpus") == "0"
        if dev:
            assert f"{dev[0]}:{dev[1]} rbps={MiB} " in f("", "io.max") + " "
    else:
        assert f("memory/memory.limit_in_bytes", "") == str(64 * MiB)
        assert f("memory/memory.soft_limit_in_bytes", "") == str(32 * MiB)
        assert f("memory/memory.memsw.limit_in_bytes", "") == str(96 * MiB)
        assert f("pids/pids.max", "") == "20"
        assert f("cpu/cpu.shares", "") == "512"
        assert f("cpu/cpu.cfs_quota_us", "") == "20000"
        assert f("cpu/cpu.cfs_period_us", "") == "100000"
        assert f("cpuset/cpuset.cpus", "") == "0"
        if dev:
            assert f("blkio/blkio.throttle.read_bps_device", "") == f"{dev[0]}:{dev[1]} {MiB}"
    # the container's init is in it
    pid = json.loads(run_kago("state", cid).stdout)["pid"]
    assert pid in manager(state_root, cid).pids()
    dirs = list(manager(state_root, cid).dirs.values())
    run_kago("delete", "--force", cid)
    assert not any(os.path.exists(d) for d in dirs)


def test_cgroups_path_absolute_and_relative(bundle, run_kago, make_cid, state_root):
    a, r = make_cid(), make_cid()
    run_kago("run", "-d", "-b", bundle(["sleep", "600"], linux={"cgroupsPath": f"/kt-abs/{a}"}),
             a)
    run_kago("run", "-d", "-b", bundle(["sleep", "600"], linux={"cgroupsPath": f"kt-rel-{r}"}),
             r)
    pa = json.loads(run_kago("state", a).stdout)["pid"]
    pr = json.loads(run_kago("state", r).stdout)["pid"]
    with open(f"/proc/{pa}/cgroup") as f:
        lines = f.read().splitlines()
    assert any(line.endswith(f":/kt-abs/{a}") for line in lines), lines
    with open(f"/proc/{pr}/cgroup") as f:
        lines = f.read().splitlines()
    assert any(line.endswith(f"/kt-rel-{r}") for line in lines), lines
    parents = [os.path.dirname(d) for d in manager(state_root, a).dirs.values()]
    for c in (a, r):
        dirs = list(manager(state_root, c).dirs.values())
        run_kago("delete", "--force", c)
        assert not any(os.path.exists(d) for d in dirs)
    for p in parents:       # /kt-abs itself is not the container's: kago leaves it
        os.rmdir(p)


def test_default_path(bundle, run_kago, cid, state_root):
    run_kago("run", "-d", "-b", bundle(["sleep", "600"]), cid)
    pid = json.loads(run_kago("state", cid).stdout)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        text = f.read()
    assert f":/kago/{cid}\n" in text


# ------------------------------------------------------------------ effects

def test_memory_limit_oom_kill_and_oom_event(bundle, run_kago, cid, state_root, kago_bin):
    b = bundle("while [ ! -e /go ]; do sleep 0.05; done; "
               "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd=$? > /dd; exec sleep 600",
               linux={"resources": {"memory": {"limit": 16 * MiB, "swap": 16 * MiB}}}, **RW)
    run_kago("run", "-d", "-b", b, cid)
    ev = subprocess.Popen([kago_bin, "--root", str(state_root), "events", "--interval", "60s",
                           cid], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = _read_event(ev, 10 * SLOW)       # a stats event right away
        assert first["type"] == "stats" and first["id"] == cid
        assert first["data"]["memory"]["usage"]["limit"] == 16 * MiB
        open(os.path.join(b, "rootfs", "go"), "w").close()
        oom = _read_event(ev, 20 * SLOW)
        assert oom == {"type": "oom", "id": cid}
    finally:
        ev.kill()
        ev.wait()
    deadline = time.monotonic() + 10 * SLOW
    # the shell's `> /dd` creates the file before `echo` writes to it
    while not (rootfile(b, "dd") or "").endswith("\n") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rootfile(b, "dd") == "dd=137\n"          # SIGKILLed by the OOM killer
    m = manager(state_root, cid)
    assert m.oom_kills() >= 1
    ev_file = cgread(state_root, cid, "memory/memory.oom_control", "memory.events")
    assert kv(ev_file)["oom_kill"] >= 1


def _read_event(proc, timeout):
    r, _, _ = select.select([proc.stdout], [], [], timeout)
    assert r, f"no event within {timeout}s"
    line = proc.stdout.readline()
    assert line, f"events exited: {proc.stderr.read()}"
    return json.loads(line)


def test_pids_limit_makes_fork_fail(bundle, run_kago, cid, state_root, wait_until):
    # the subshell forks until refused (ash then gives up on it): 1 + 1 + 6 sleeps
    b = bundle("exec 2>/err; (i=0; while [ $i -lt 20 ]; do sleep 600 & i=$((i+1)); done); "
               "echo started > /done; exec sleep 600",
               linux={"resources": {"pids": {"limit": 8}}}, **RW)
    run_kago("run", "-d", "-b", b, cid)
    wait_until(lambda: rootfile(b, "done"), timeout=20 * SLOW, what="the forks")
    err = rootfile(b, "err")
    assert "fork" in err and "Resource temporarily unavailable" in err, err
    assert cgread(state_root, cid, "pids/pids.max", "pids.max") == "8"
    wait_until(lambda: cgread(state_root, cid, "pids/pids.current", "pids.current") == "7",
               timeout=10 * SLOW, what="the subshell to exit")
    if V2:
        assert kv(cgread(state_root, cid, "", "pids.events"))["max"] >= 1
    # delete kills all of them, forked or not
    pids = manager(state_root, cid).pids()
    assert len(pids) == 7
    run_kago("delete", "--force", cid)
    for p in pids:
        assert _gone(p)


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_cpu_quota_throttles(bundle, run_kago, cid, state_root):
    b = bundle("while :; do :; done",
               linux={"resources": {"cpu": {"quota": 10000, "period": 100000}}})
    run_kago("run", "-d", "-b", b, cid)
    t0 = time.monotonic()
    time.sleep(1.5)
    c = _lib(state_root, cid)
    s = c.stats()
    wall = time.monotonic() - t0
    thr = s["cpu"]["throttling"]
    assert thr.get("throttled_periods", 0) > 0, s["cpu"]
    used = s["cpu"]["usage"]["total"] / 1e9
    # ~10% of one cpu, not 100% (under TCG emulation the guest's clock is coarse)
    assert used < (0.75 if SLOW > 1 else 0.3) * wall, (used, wall)
    assert thr.get("throttled_time", 0) > 0
    stat = kv(cgread(state_root, cid, "cpu/cpu.stat", "cpu.stat"))
    assert stat["nr_throttled"] >= thr["throttled_periods"]


def _lib(state_root, cid):
    from kago import Container
    return Container.load(str(state_root), cid)


def test_denied_device_cannot_be_opened(bundle, run_kago, cid, state_root):
    devs = [{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666},
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}]
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}]
    b = bundle("(echo kago-device-test > /dev/kmsg) 2>/e1; echo $? > /r1; "
               "(echo x > /dev/fuse) 2>/e2; echo $? > /r2; "
               "(cat /dev/kmsg) 2>/e3 </dev/null & sleep 0.2; "
               "(echo > /dev/null) 2>/e4; echo $? > /r4",
               linux={"devices": devs, "resources": {"devices": rules}}, **RW)
    run_kago("run", "-b", b, cid, timeout=60 * SLOW)
    assert rootfile(b, "r1") == "0\n"                        # allowed: write
    assert rootfile(b, "r2") != "0\n"                        # not in the list
    assert "Operation not permitted" in rootfile(b, "e2")
    assert "Operation not permitted" in rootfile(b, "e3")    # kmsg: read not allowed
    assert rootfile(b, "r4") == "0\n"                        # the default list
    if not V2:
        lines = cgread(state_root, cid, "devices/devices.list", "") \
            if os.path.exists(state_root / cid) else ""
        assert "c 1:11 w" in lines or lines == ""


def test_no_device_rules_is_not_the_hosts_every_device(bundle, run_kago, cid, state_root,
                                                       tmp_path, wait_until):
    """A config without resources.devices gets runc's default list, not an
    allow-all cgroup: with CAP_MKNOD the container can make a node of a host
    disk or of /dev/mem, but never open it (checked inside and in the host's
    devices cgroup)."""
    disk = os.stat("/").st_dev
    major, minor = os.major(disk), os.minor(disk)
    caps = ["CAP_MKNOD", "CAP_DAC_OVERRIDE", "CAP_CHOWN"]
    out_path = tmp_path / "out"
    b = bundle(f"mknod /dev/kt-disk b {major} {minor} && echo made=disk; "
               "mknod /dev/kt-mem c 1 1 && echo made=mem; "
               "(head -c1 /dev/kt-disk >/dev/null) 2>&1 | sed 's/^/disk:/'; "
               "(head -c1 /dev/kt-mem >/dev/null) 2>&1 | sed 's/^/mem:/'; "
               "echo x > /dev/null && echo null=ok; echo done; exec sleep 300",
               linux={"resources": {}},
               process={"capabilities": {k: caps for k in
                                         ("bounding", "effective", "permitted")}})
    with open(out_path, "w") as out:
        run_kago("run", "-d", "-b", b, cid, stdout=out)
    text = wait_file(wait_until, out_path, "done")
    assert "made=disk" in text and "made=mem" in text, text
    assert "disk:" in text and "Operation not permitted" in one(text, "disk:"), text
    assert "Operation not permitted" in one(text, "mem:"), text
    assert one(text, "null=") == "ok"
    if not V2:
        lines = cgread(state_root, cid, "devices/devices.list", "").splitlines()
        assert "a *:* rwm" not in lines and "c 1:3 rwm" in lines, lines
    run_kago("delete", "--force", cid)


# ------------------------------------------------------------------ freezer

FREEZE_PROG = ("trap 'echo CONT >> /sig' CONT; trap 'echo TSTP >> /sig' TSTP; "
               "i=0; while :; do i=$((i+1)); echo $i > /count; sleep 0.02; done")


def test_pause_resume_invisible(bundle, run_kago, cid, state_root, wait_until):
    b = bundle(FREEZE_PROG, **RW)
    run_kago("run", "-d", "-b", b, cid)
    count = lambda: int(rootfile(b, "count") or 0)  # noqa: E731
    wait_until(lambda: count() > 3, timeout=10 * SLOW, what="the counter")
    t = time.monotonic()
    run_kago("pause", cid)
    pause_s = time.monotonic() - t
    assert json.loads(run_kago("state", cid).stdout)["status"] == "paused"
    if V2:
        assert "frozen 1" in cgread(state_root, cid, "", "cgroup.events").splitlines()
        assert cgread(state_root, cid, "", "cgroup.freeze") == "1"
    else:
        assert cgread(state_root, cid, "freezer/freezer.state", "") == "FROZEN"
    pid = json.loads(run_kago("state", cid).stdout)["pid"]
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    assert "State:\tT" not in status                # not stopped by a signal
    n = count()
    time.sleep(0.5)
    assert count() == n, "the counter moved while paused"
    r = run_kago("pause", cid, check=False)         # already paused
    assert r.returncode != 0 and "container not running" in r.stderr
    run_kago("resume", cid)
    assert json.loads(run_kago("state", cid).stdout)["status"] == "running"
    wait_until(lambda: count() > n + 3, timeout=10 * SLOW, what="the counter after resume")
    assert rootfile(b, "sig") is None, "the container saw a signal"
    r = run_kago("resume", cid, check=False)
    assert r.returncode != 0 and "container not paused" in r.stderr
    assert pause_s < 5 * SLOW


def test_kill_paused(bundle, run_kago, cid, state_root, wait_until):
    run_kago("run", "-d", "-b", bundle(["sleep", "600"]), cid)
    run_kago("pause", cid)
    run_kago("kill", cid, "KILL")
    wait_until(lambda: json.loads(run_kago("state", cid).stdout)["status"] == "stopped",
               timeout=10 * SLOW, what="the paused container to die")
    run_kago("delete", cid)


def test_delete_force_paused_with_children(bundle, run_kago, cid, state_root, assert_clean):
    run_kago("run", "-d", "-b", bundle("sleep 600 & sleep 600 & exec sleep 600"), cid)
    run_kago("pause", cid)
    m = manager(state_root, cid)
    assert len(m.pids()) == 3
    run_kago("delete", "--force", cid, timeout=30 * SLOW)
    assert not m.exists()
    assert_clean()


def test_kill_all_paused(bundle, run_kago, cid, state_root, wait_until):
    run_kago("run", "-d", "-b", bundle("sleep 600 & exec sleep 600"), cid)
    run_kago("pause", cid)
    run_kago("kill", "--all", cid, "KILL")
    m = manager(state_root, cid)
    wait_until(lambda: not m.pids(), timeout=10 * SLOW, what="every process to die")
    run_kago("delete", cid)


def test_pause_created_container(bundle, run_kago, cid):
    run_kago("create", "-b", bundle(["true"]), cid)
    run_kago("pause", cid)
    assert json.loads(run_kago("state", cid).stdout)["status"] == "paused"
    run_kago("resume", cid)
    assert json.loads(run_kago("state", cid).stdout)["status"] == "created"


# ------------------------------------------------------------------ events

def test_events_stats_match_files(bundle, run_kago, cid, state_root):
    b = bundle("sleep 600 & sleep 600 & exec sleep 600",
               linux={"resources": {"memory": {"limit": 48 * MiB}, "pids": {"limit": 30}}})
    run_kago("run", "-d", "-b", b, cid)
    out = run_kago("events", "--stats", cid).stdout
    assert out.endswith("\n") and out.count("\n") == 1
    ev = json.loads(out)
    assert ev["type"] == "stats" and ev["id"] == cid
    d = ev["data"]
    assert set(d) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert d["pids"] == {"current": 3, "limit": 30}
    assert str(d["pids"]["current"]) == cgread(state_root, cid, "pids/pids.current",
                                               "pids.current")
    assert d["memory"]["usage"]["limit"] == int(cgread(
        state_root, cid, "memory/memory.limit_in_bytes", "memory.max"))
    usage = int(cgread(state_root, cid, "memory/memory.usage_in_bytes", "memory.current"))
    assert abs(d["memory"]["usage"]["usage"] - usage) < 4 * MiB
    if V2:
        total = kv(cgread(state_root, cid, "", "cpu.stat"))["usage_usec"] * 1000
    else:
        total = int(cgread(state_root, cid, "cpuacct/cpuacct.usage", ""))
    assert 0 < d["cpu"]["usage"]["total"] <= total


def test_events_interval_stream(bundle, run_kago, cid, kago_bin, state_root):
    run_kago("run", "-d", "-b", bundle(["sleep", "600"]), cid)
    p = subprocess.Popen([kago_bin, "--root", str(state_root), "events", "--interval",
                          "100ms", cid], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        evs = [_read_event(p, 10 * SLOW) for _ in range(3)]
        assert all(e["type"] == "stats" and e["id"] == cid for e in evs)
        run_kago("kill", cid, "KILL")
        p.wait(timeout=10 * SLOW)                   # ends when the container stops
    finally:
        p.kill()
        p.wait()


def test_events_errors(bundle, run_kago, cid, wait_until):
    run_kago("create", "-b", bundle(["true"]), cid)
    r = run_kago("events", "--interval", "0s", cid, check=False)
    assert r.returncode != 0 and "duration interval must be greater than 0" in r.stderr
    run_kago("kill", cid, "KILL")
    wait_until(lambda: json.loads(run_kago("state", cid).stdout)["status"] == "stopped",
               timeout=10 * SLOW, what="the killed container to stop")
    r = run_kago("events", "--stats", cid, check=False)
    assert r.returncode != 0 and f"container with id {cid} is not running" in r.stderr


# ------------------------------------------------------------------ update

def test_update_flags_live(bundle, run_kago, cid, state_root):
    run_kago("run", "-d", "-b", bundle(["sleep", "600"],
                                      linux={"resources": {"memory": {"limit": 64 * MiB}}}),
             cid)
    run_kago("update", "--memory", "100m", "--memory-swap", "200M", "--memory-reservation",
             "50m", "--pids-limit", "42", "--cpu-quota", "30000", "--cpu-period", "100000",
             "--cpu-share", "256", "--cpuset-cpus", "0", cid)
    f = lambda v1, v2: cgread(state_root, cid, v1, v2)  # noqa: E731
    if V2:
        assert f("", "memory.max") == str(100 * MiB)
        if os.path.exists(cgpath(state_root, cid, "", "memory.swap.max")):
            assert f("", "memory.swap.max") == str(100 * MiB)
        assert f("", "memory.low") == str(50 * MiB)
        assert f("", "pids.max") == "42"
        assert f("", "cpu.max") == "30000 100000"
        assert f("", "cpu.weight") == str(1 + (256 - 2) * 9999 // 262142)
    else:
        assert f("memory/memory.limit_in_bytes", "") == str(100 * MiB)
        assert f("memory/memory.memsw.limit_in_bytes", "") == str(200 * MiB)
        assert f("memory/memory.soft_limit_in_bytes", "") == str(50 * MiB)
        assert f("pids/pids.max", "") == "42"
        assert f("cpu/cpu.cfs_quota_us", "") == "30000"
        assert f("cpu/cpu.shares", "") == "256"
        assert f("cpuset/cpuset.cpus", "") == "0"
    # -r - : a linux.resources object on stdin
    run_kago("update", "-r", "-", cid, input=json.dumps({"pids": {"limit": 7},
                                                         "cpu": {"quota": -1}}))
    assert f("pids/pids.max", "pids.max") == "7"
    assert f("cpu/cpu.cfs_quota_us", "cpu.max") == ("max 100000" if V2 else "-1")
    # keys as runc's Go decoder matches them: struct fields case-insensitively
    run_kago("update", "-r", "-", cid, input=json.dumps({"PIDS": {"Limit": 9},
                                                         "Cpu": {"SHARES": 512}}))
    assert f("pids/pids.max", "pids.max") == "9"
    if not V2:
        assert f("cpu/cpu.shares", "") == "512"
    r = run_kago("update", "--memory", "lots", cid, check=False)
    assert r.returncode != 0 and "invalid value for memory: invalid size: 'lots'" in r.stderr
    r = run_kago("update", "--cpu-share", "-5", cid, check=False)
    assert r.returncode != 0 and "invalid value for cpu-share" in r.stderr


def test_update_takes_effect(bundle, run_kago, cid, state_root, tmp_path, wait_until):
    # ash gives up on a subshell whose fork is refused; the outer shell carries on
    b = bundle("while [ ! -e /go ]; do sleep 0.05; done; exec 2>/err; "
               "(sleep 600 & sleep 600 & sleep 600 & wait); echo done > /done; "
               "while [ ! -e /go2 ]; do sleep 0.05; done; "
               "(sleep 600 & sleep 600 & sleep 600 & echo forked > /forked; wait)", **RW)
    run_kago("run", "-d", "-b", b, cid)
    res = tmp_path / "r.json"
    res.write_text(json.dumps({"pids": {"limit": 3}}))
    run_kago("update", "-r", res, cid)
    open(os.path.join(b, "rootfs", "go"), "w").close()
    wait_until(lambda: rootfile(b, "done"), timeout=10 * SLOW, what="the refused forks")
    assert "can't fork" in rootfile(b, "err")
    run_kago("update", "--pids-limit", "100", cid)
    open(os.path.join(b, "rootfs", "go2"), "w").close()
    wait_until(lambda: rootfile(b, "forked"), timeout=10 * SLOW, what="forks to work again")
    assert len(manager(state_root, cid).pids()) == 5


def test_update_bad_resources_file(bundle, run_kago, cid, tmp_path):
    run_kago("create", "-b", bundle(["true"]), cid)
    missing = tmp_path / "nope.json"
    r = run_kago("update", "-r", missing, cid, check=False)
    assert r.returncode == 1
    assert f'msg="open {missing}: no such file or directory"' in r.stderr   # runc's words
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    r = run_kago("update", "-r", bad, cid, check=False)
    assert r.returncode == 1 and "unable to parse resources" in r.stderr
    run_kago("delete", "--force", cid)


@pytest.mark.parametrize("doc, words", [
    ('{"memory": {"limit": true}}', "update: resources.memory.limit: expected integer, got boolean"),
    ('{"memory": true}', "update: resources.memory: expected object, got boolean"),
    ('{"devices": true}', "update: resources.devices: expected array, got boolean"),
    ('{"cpu": {"cpus": "0-99999999999"}}', "update: resources.cpu.cpus: invalid list"),
    ('{"hugepageLimits": [{"pageSize": "../../x", "limit": 1}]}',
     "resources.hugepageLimits[0].pageSize: invalid huge page size"),
    ('{"unified": {"pids.max": "1\\u0000"}}', 'update: resources.unified[\\"pids.max\\"]: contains a nul byte'),
    ('{"pids": {"limit": "\\ud800"}}', "update: resources.pids.limit: contains a lone UTF-16 surrogate"),
    ('{"pids": ' * 5000 + '1' + '}' * 5000, "unable to parse resources: nested too deeply"),
])
def test_update_malformed_resources_get_kagos_words(bundle, run_kago, cid, tmp_path,
                                                    state_root, doc, words):
    """update -r: the same checks as config.json's linux.resources; the cgroup
    is left as it was."""
    run_kago("create", "-b", bundle(["true"]), cid)
    m = manager(state_root, cid)
    d = m.subsys.get("pids") if hasattr(m, "subsys") else m.dir
    before = open(os.path.join(d, "pids.max")).read()
    f = tmp_path / "r.json"
    f.write_text(doc)
    r = run_kago("update", "-r", f, cid, check=False)
    assert r.returncode == 1, r.stderr
    assert words in r.stderr
    for name in ("Error", "Traceback", "Exception"):
        assert name not in r.stderr
    assert open(os.path.join(d, "pids.max")).read() == before
    run_kago("delete", "--force", cid)


def test_update_stopped_container(bundle, run_kago, cid, wait_until):
    run_kago("create", "-b", bundle(["true"]), cid)
    run_kago("kill", cid, "KILL")
    wait_until(lambda: json.loads(run_kago("state", cid).stdout)["status"] == "stopped",
               timeout=10 * SLOW, what="the killed container to stop")
    r = run_kago("update", "--pids-limit", "5", cid, check=False)
    assert r.returncode != 0 and "container not running" in r.stderr


# ------------------------------------------------------------------ library

def test_library_api(bundle, cid, state_root):
    from kago import ContainerBuilder
    from kago.errors import InvalidState
    c = ContainerBuilder(cid, root=str(state_root)).as_init(
        str(bundle(["sleep", "600"], linux={"resources": {"pids": {"limit": 9}}}))).build()
    try:
        c.start()
        c.pause()
        assert c.status == "paused"
        with pytest.raises(InvalidState):
            c.pause()
        c.resume()
        assert c.status == "running"
        s = c.stats()
        assert s["pids"] == {"current": 1, "limit": 9}
        c.update({"pids": {"limit": 11}})
        assert c.stats()["pids"]["limit"] == 11
        gen = c.events(interval=0.1)
        assert next(gen)["type"] == "stats"
        assert next(gen)["type"] == "stats"
        gen.close()
        assert [e["type"] for e in c.events(stats=True)] == ["stats"]
    finally:
        c.delete(force=True)


# ------------------------------------------------------------------ errors

def test_unsupported_resource_is_a_clear_error(bundle, run_kago, cid, assert_clean):
    if V2:
        r = {"memory": {"kernel": 64 * MiB}}
        want = "linux.resources.memory.kernel: kernel memory limits exist only in cgroup v1"
    else:
        r = {"network": {"classID": 0x100001}}
        want = "linux.resources.network.classID: the net_cls cgroup controller is not mounted"
    res = run_kago("run", "-b", bundle(["true"], linux={"resources": r}), cid, check=False)
    assert res.returncode != 0
    assert want in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert_clean()


@pytest.mark.skipif(V2, reason="unified is honoured on cgroup v2; this checks v1's refusal")
def test_unified_on_v1_is_runcs_invalid_configuration(bundle, run_kago, cid, assert_clean):
    r = {"unified": {"memory.max": "100000000"}}
    res = run_kago("run", "-b", bundle(["true"], linux={"resources": r}), cid, check=False)
    assert res.returncode == 1
    assert "linux.resources.unified: invalid configuration: cannot use unified on cgroup v1" \
        in res.stderr, res.stderr
    assert not os.path.exists(f"/sys/fs/cgroup/memory/kago/{cid}")
    assert_clean()


def test_unrequested_resources_are_silent(bundle, run_kago, cid):
    # zero/empty classes this host may not support: nothing is asked, nothing fails
    r = {"network": {}, "hugepageLimits": [], "rdma": {}, "blockIO": {},
         "memory": {"limit": 0}, "cpu": {"realtimeRuntime": 0}}
    out = run_kago("run", "-b", bundle(["echo", "hi"], linux={"resources": r}), cid)
    assert out.stdout == "hi\n"


def test_hugetlb_limit(bundle, run_kago, cid, state_root):
    """v1 hybrid hosts may bind hugetlb to the unified tree (this build machine
    does): kago writes the limit there; no hugetlb anywhere: a clear error."""
    r = {"hugepageLimits": [{"pageSize": "2MB", "limit": 8 * MiB}]}
    b = bundle(["sleep", "600"], linux={"resources": r})
    res = run_kago("run", "-d", "-b", b, cid, check=False)
    m_root = "/sys/fs/cgroup" if V2 else "/sys/fs/cgroup/unified"
    try:
        have = "hugetlb" in open(os.path.join(m_root, "cgroup.controllers")).read().split()
    except OSError:
        have = False
    if not have and not os.path.isdir("/sys/fs/cgroup/hugetlb"):
        assert res.returncode != 0 and "hugepageLimits[0]: the hugetlb" in res.stderr
        return
    assert res.returncode == 0, res.stderr
    m = manager(state_root, cid)
    if not V2 and "hugetlb" in m.subsys:
        path = os.path.join(m.subsys["hugetlb"], "hugetlb.2MB.limit_in_bytes")
    else:
        path = os.path.join(m.dir if V2 else m.subsys["unified"], "hugetlb.2MB.max")
    assert open(path).read().strip() == str(8 * MiB)
    assert "2MB" in _lib(state_root, cid).stats()["hugetlb"]


def test_delete_kills_a_fork_loop(bundle, run_kago, cid, state_root, assert_clean, wait_until):
    """Processes that keep forking can't escape delete (v1: frozen first; v2: cgroup.kill)."""
    b = bundle("(while :; do sleep 100 & sleep 0.01; done) & "
               "(while :; do sleep 100 & sleep 0.01; done) & "
               "while :; do sleep 100 & sleep 0.01; done")
    run_kago("run", "-d", "-b", b, cid)
    m = manager(state_root, cid)
    wait_until(lambda: len(m.pids()) > 5, timeout=10 * SLOW, what="the fork loops to fork")
    run_kago("delete", "--force", cid, timeout=60 * SLOW)
    assert not m.exists()
    assert_clean()
