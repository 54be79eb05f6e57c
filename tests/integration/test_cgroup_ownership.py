"""kago kills only what is the container's (issue 12, item 3).

With a pid namespace of its own, killing init is the teardown; the members of
the container's cgroup are killed one by one only when kago made that cgroup
for the container or the container shares a pid namespace (runc's rule).  A
cgroup that exists before create: runc's warning when processes are in it
(they survive a failed create and a delete: runc 1.1.5 does the same), refused
when it is frozen.  Checked on the host: the bystander's pid, the cgroup
directories, the state dir.
"""

import json
import os
import subprocess
import time

import pytest

CGROUP_ROOT = "/sys/fs/cgroup"


def hierarchies():
    """Mountpoints of this host's cgroup hierarchies."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                out.append(left.split()[4])
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def gone(pid, timeout=5.0):
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def cgroup_dirs_named(name):
    found = []
    for top, dirs, _ in os.walk(CGROUP_ROOT):
        found += [os.path.join(top, d) for d in dirs if name in d]
    return found


def remove_cgroup(dirs):
    for d in dirs:
        for _ in range(100):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)


@pytest.fixture
def bystander(cid):
    """A `sleep` placed, before any create, in a cgroup made here (every
    hierarchy) at /<cid>-pre; yields (pid, cgroupsPath, dirs)."""
    path = f"/{cid}-pre"
    dirs = [mp + path for mp in hierarchies()]
    p = subprocess.Popen(["sleep", "600"])
    try:
        for d in dirs:
            os.makedirs(d)
            for knob in ("cpuset.cpus", "cpuset.mems"):   # v1 cpuset starts empty
                if os.path.exists(os.path.join(d, knob)):
                    with open(os.path.join(os.path.dirname(d), knob)) as f:
                        value = f.read()
                    with open(os.path.join(d, knob), "w") as f:
                        f.write(value)
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write(str(p.pid))
        yield p.pid, path, dirs
    finally:
        p.kill()
        p.wait()
        remove_cgroup(dirs)


def test_bystander_survives_a_failed_create_and_a_delete(run_kago, bundle, cid, state_root,
                                                         bystander):
    pid, path, dirs = bystander
    # 1. a create that fails (no such binary) in that cgroup
    r = run_kago("run", "-d", "-b", bundle(["/nonexistent"], rootfs="shared",
                                           linux={"cgroupsPath": path}), cid, check=False)
    assert r.returncode == 1
    assert "container's cgroup is not empty: 1 process(es) found" in r.stderr
    assert "kago run failed: " in r.stderr
    assert alive(pid), "the failed create killed a process that was not the container's"
    assert os.listdir(state_root) == []
    assert all(os.path.isdir(d) for d in dirs)    # not kago's: still there, still in use
    # 2. a container that runs there, then delete --force
    run_kago("run", "-d", "-b", bundle(["sh", "-c", "sleep 600 & exec sleep 601"],
                                       rootfs="shared", linux={"cgroupsPath": path}), cid)
    init = json.loads(run_kago("state", cid).stdout)["pid"]
    with open(os.path.join(dirs[0], "cgroup.procs")) as f:
        members = {int(x) for x in f.read().split()}
    assert pid in members and init in members and len(members) == 3, members
    run_kago("kill", "--all", cid, "STOP")     # the container's processes only
    def stopped(p):
        with open(f"/proc/{p}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "T"
    deadline = time.monotonic() + 5
    while not all(stopped(m) for m in members - {pid}) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(stopped(m) for m in members - {pid}) and not stopped(pid)
    r = run_kago("delete", "--force", cid)
    assert all(gone(m) for m in members - {pid}), "the container's processes survived"
    assert alive(pid), "delete --force killed a process that was not the container's"
    assert "cgroup not removed" in r.stderr, r.stderr
    assert os.listdir(state_root) == []
    with open(os.path.join(dirs[0], "cgroup.procs")) as f:
        assert f.read().split() == [str(pid)]


def test_empty_pre_existing_cgroup_is_removed_as_runc_does(run_kago, bundle, cid, state_root):
    """No bystander: the cgroup is used without a warning and delete removes
    it (runc's Destroy removes the cgroup whoever made it)."""
    path = f"/{cid}-pre"
    dirs = [mp + path for mp in hierarchies()]
    try:
        for d in dirs:
            os.makedirs(d)
        r = run_kago("run", "-d", "-b", bundle(["sleep", "600"], rootfs="shared",
                                               linux={"cgroupsPath": path}), cid)
        assert "not empty" not in r.stderr
        init = json.loads(run_kago("state", cid).stdout)["pid"]
        r = run_kago("delete", "--force", cid)
        assert r.stderr == ""
        assert gone(init)
        assert [d for d in dirs if os.path.exists(d)] == []
    finally:
        remove_cgroup(dirs)


def test_frozen_pre_existing_cgroup_is_refused(run_kago, bundle, cid, state_root):
    """runc: "container's cgroup unexpectedly frozen"; kago's `run -d` used to
    hang there for ever."""
    path = f"/{cid}-pre"
    if os.path.isdir(f"{CGROUP_ROOT}/freezer"):
        d = f"{CGROUP_ROOT}/freezer{path}"
        knob, frozen, thawed = "freezer.state", "FROZEN", "THAWED"
    elif os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers"):
        d = f"{CGROUP_ROOT}{path}"
        knob, frozen, thawed = "cgroup.freeze", "1", "0"
    else:
        pytest.skip("no cgroup freezer on this host")
    os.makedirs(d)
    try:
        with open(os.path.join(d, knob), "w") as f:
            f.write(frozen)
        t0 = time.monotonic()
        r = run_kago("run", "-d", "-b", bundle(["sleep", "600"], rootfs="shared",
                                               linux={"cgroupsPath": path}), cid,
                     check=False, timeout=30)
        assert time.monotonic() - t0 < 5
        assert r.returncode == 1
        assert "kago run failed: container's cgroup unexpectedly frozen" in r.stderr
        assert os.listdir(state_root) == []
        assert cgroup_dirs_named(cid) == [d]        # nothing made beside the frozen one
        with open(os.path.join(d, "cgroup.procs")) as f:
            assert f.read() == ""
    finally:
        with open(os.path.join(d, knob), "w") as f:
            f.write(thawed)
        remove_cgroup([d])


def test_delete_force_of_a_paused_container(run_kago, bundle, cid, state_root):
    """Thawed, killed and removed: no process (init and an exec'd one), no
    cgroup, no state."""
    run_kago("run", "-d", "-b", bundle(["sleep", "600"], rootfs="shared"), cid)
    run_kago("exec", "-d", cid, "sleep", "601")
    pids = json.loads(run_kago("ps", "--format", "json", cid).stdout)
    assert len(pids) == 2
    run_kago("pause", cid)
    assert json.loads(run_kago("state", cid).stdout)["status"] == "paused"
    run_kago("delete", "--force", cid, timeout=30)
    assert all(gone(p) for p in pids)
    assert cgroup_dirs_named(cid) == []
    assert os.listdir(state_root) == []


def test_no_pid_namespace_kills_the_cgroup_members(run_kago, bundle, cid, state_root):
    """Without a pid namespace of its own the container's other processes
    outlive init: delete --force kills the cgroup's members (runc's
    signalAllProcesses)."""
    b = bundle(["sh", "-c", "sleep 600 & exec sleep 601"], rootfs="shared",
               edit=lambda c: c["linux"].update(namespaces=[
                   n for n in c["linux"]["namespaces"] if n["type"] != "pid"]))
    run_kago("run", "-d", "-b", b, cid)
    pids = json.loads(run_kago("ps", "--format", "json", cid).stdout)
    assert len(pids) == 2
    run_kago("delete", "--force", cid)
    assert all(gone(p) for p in pids)
    assert cgroup_dirs_named(cid) == []
