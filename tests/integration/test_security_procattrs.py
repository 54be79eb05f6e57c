"""The remaining process attributes in real containers (issue 5):
personality, ioPriority, scheduler, memoryPolicy (init) and execCPUAffinity
(exec), each read back from the host or from inside."""

import ctypes
import json
import os
import re
from pathlib import Path

import pytest

from kago import Container
from kago.container.exec import exec_process
from tests.integration.helpers import state_pid


def created(bundle, run_kago, cid, **over):
    """A created container (init waiting for start, attributes applied)."""
    b = bundle("sleep 30", **over)
    run_kago("create", "--bundle", b, cid)
    return state_pid(run_kago, cid)


def test_personality_linux32(bundle, run_kago, cid):
    b = bundle("cat /proc/self/personality; uname -m",
               linux={"personality": {"domain": "LINUX32"}})
    out = run_kago("run", "--bundle", b, cid).stdout.split()
    assert out[0] == "00000008"
    assert re.fullmatch(r"i[3-6]86", out[1]), out


def test_personality_bad_domain(bundle, run_kago, cid):
    b = bundle("true", linux={"personality": {"domain": "SVR4"}})
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode != 0 and "linux.personality.domain" in r.stderr


def _ioprio_get(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    nr = 252 if os.uname().machine == "x86_64" else 31
    return libc.syscall(nr, 1, pid)


@pytest.mark.parametrize("cls,num,prio", [("IOPRIO_CLASS_BE", 2, 6),
                                          ("IOPRIO_CLASS_IDLE", 3, 0),
                                          ("IOPRIO_CLASS_RT", 1, 3)])
def test_io_priority(bundle, run_kago, cid, cls, num, prio):
    pid = created(bundle, run_kago, cid,
                  process={"ioPriority": {"class": cls, "priority": prio}})
    v = _ioprio_get(pid)
    assert (v >> 13, v & 0xFF) == (num, prio)
    run_kago("delete", "--force", cid)


def test_scheduler_rr(bundle, run_kago, cid):
    """A real-time policy: on a cgroup v1 host with RT group scheduling the
    container's cgroup needs real-time runtime, as with runc."""
    rt = {}
    if os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        rt = {"resources": {"cpu": {"realtimeRuntime": 10000, "realtimePeriod": 1000000}}}
    pid = created(bundle, run_kago, cid, linux=rt,
                  process={"scheduler": {"policy": "SCHED_RR", "priority": 7,
                                         "flags": ["SCHED_FLAG_RESET_ON_FORK"]}})
    # SCHED_RESET_ON_FORK shows as bit 0x40000000 in sched_getscheduler
    assert os.sched_getscheduler(pid) & 0xFF == os.SCHED_RR
    assert os.sched_getparam(pid).sched_priority == 7
    run_kago("delete", "--force", cid)


def test_scheduler_batch_nice(bundle, run_kago, cid):
    pid = created(bundle, run_kago, cid,
                  process={"scheduler": {"policy": "SCHED_BATCH", "nice": 5}})
    assert os.sched_getscheduler(pid) == os.SCHED_BATCH
    assert os.getpriority(os.PRIO_PROCESS, pid) == 5
    run_kago("delete", "--force", cid)


def test_scheduler_rt_without_priority_is_a_spec_error(bundle, run_kago, cid):
    b = bundle("true", process={"scheduler": {"policy": "SCHED_FIFO"}})
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode != 0 and "process.scheduler.priority" in r.stderr


@pytest.mark.skipif(not Path("/proc/self/numa_maps").exists(), reason="no NUMA")
@pytest.mark.parametrize("mode,word", [("MPOL_BIND", "bind:0"),
                                       ("MPOL_INTERLEAVE", "interleave:0"),
                                       ("MPOL_PREFERRED", "prefer:0")])
def test_memory_policy(bundle, run_kago, cid, mode, word):
    b = bundle("head -1 /proc/self/numa_maps",
               linux={"memoryPolicy": {"mode": mode, "nodes": "0"}})
    out = run_kago("run", "--bundle", b, cid).stdout
    assert word in out, out


def test_memory_policy_bad_mode(bundle, run_kago, cid):
    b = bundle("true", linux={"memoryPolicy": {"mode": "MPOL_SOMEWHERE", "nodes": "0"}})
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode != 0 and "linux.memoryPolicy.mode" in r.stderr


@pytest.fixture
def reaper():
    yield
    from kago import sys as ksys
    ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 0)


@pytest.mark.skipif(os.cpu_count() < 2, reason="needs 2 CPUs")
def test_exec_cpu_affinity(bundle, run_kago, cid, state_root, tmp_path, reaper):
    b = bundle("sleep 60")
    run_kago("run", "-d", "--bundle", b, cid)
    c = Container.load(str(state_root), cid)
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
    saved = os.dup(1)
    os.dup2(fd, 1)
    try:
        for final in ("0", "1", "0-1"):
            p = dict(c.config()["process"], terminal=False,
                     args=["sh", "-c", "grep Cpus_allowed_list /proc/self/status"],
                     execCPUAffinity={"initial": "1", "final": final})
            assert exec_process(c, p) == 0
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(fd)
    got = re.findall(r"Cpus_allowed_list:\s+(\S+)", out.read_text())
    assert got == ["0", "1", "0-1"]
    # the container's init is untouched
    assert os.sched_getaffinity(c.pid) == os.sched_getaffinity(0)
    run_kago("delete", "--force", cid)
