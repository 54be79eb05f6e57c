"""ps (issue 3): exactly the container's processes, from its cgroup.

Processes are spawned inside (by init's shell, by exec -d, by an exec'd
shell), then `kago ps -f json` is compared with what was spawned (the process
tree under init plus the exec'd pids, found from the host) and with the
container's cgroup.procs in every hierarchy; the table is ps's own output for
those pids; a neighbouring container and a host process never show up.
"""

import json
import os
import subprocess

import pytest

SPAWN = "sleep 1001 & sleep 1002 & exec sleep 1000"


def state(run_kago, cid) -> dict:
    return json.loads(run_kago("state", cid).stdout)


def ps_json(run_kago, cid) -> list:
    r = run_kago("ps", "--format", "json", cid)
    pids = json.loads(r.stdout)
    assert isinstance(pids, list) and all(isinstance(p, int) for p in pids)
    return pids


def cmd(pid) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().rstrip(b"\0").replace(b"\0", b" ").decode()


def children(pid) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def tree(pid) -> set[int]:
    found = {pid}
    for c in children(pid):
        found |= tree(c)
    return found


def cgroup_procs(pid) -> dict[str, set[int]]:
    """For every hierarchy ``pid`` is in: the pids in that cgroup and below."""
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = right.split()[:3]
            point = left.split()[4]
            if fstype == "cgroup2":
                mounts[""] = point
            elif fstype == "cgroup":
                for o in opts.split(","):
                    mounts.setdefault(o, point)
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            key = ctrls.split(",")[0]
            if key not in mounts:
                continue
            top = mounts[key] + path
            pids = set()
            for d, _, _ in os.walk(top):
                with open(os.path.join(d, "cgroup.procs")) as f2:
                    pids |= {int(x) for x in f2.read().split()}
            out[top] = pids
    return out


@pytest.fixture
def busy(bundle, run_kago, cid, tmp_path, wait_until):
    """A running container with six sleeps: init (`sleep 1000`) and two
    children started by its shell, one exec -d, and an exec'd shell's two.
    Returns (init pid, {pid: cmdline} of everything spawned)."""
    b = bundle(SPAWN)
    run_kago("run", "-d", "--bundle", b, cid)
    init = state(run_kago, cid)["pid"]
    pf1, pf2 = tmp_path / "e1.pid", tmp_path / "e2.pid"
    run_kago("exec", "-d", "--pid-file", pf1, cid, "sleep", "1003")
    run_kago("exec", "-d", "--pid-file", pf2, cid, "sh", "-c", "sleep 1004 & exec sleep 1005")
    e1, e2 = int(pf1.read_text()), int(pf2.read_text())

    def spawned():
        pids = tree(init) | tree(e1) | tree(e2)
        cmds = {p: cmd(p) for p in pids}
        want = {f"sleep {n}" for n in range(1000, 1006)}
        return cmds if set(cmds.values()) == want else None
    return init, wait_until(spawned, what="the six sleeps")


def test_ps_json_is_exactly_the_container(busy, bundle, run_kago, cid, make_cid):
    init, spawned = busy
    # a neighbour container and a host process, neither of which may show up
    other = make_cid()
    run_kago("run", "-d", "--bundle", bundle(["sleep", "1000"]), other)
    host = subprocess.Popen(["sleep", "1000"])
    try:
        mine = cid
        pids = ps_json(run_kago, mine)
        assert sorted(pids) == sorted(spawned)
        assert len(pids) == len(set(pids)) == 6
        # ... which is what the cgroup holds, in every hierarchy
        procs = cgroup_procs(init)
        assert procs, "no cgroup of the container found"
        for d, in_cg in procs.items():
            assert mine in d
            assert in_cg == set(pids), d
        assert host.pid not in pids
        other_pids = ps_json(run_kago, other)
        assert other_pids == [state(run_kago, other)["pid"]]
        assert not set(other_pids) & set(pids)
        # a process that exits leaves the list
        victim = next(p for p, c in spawned.items() if c == "sleep 1003")
        os.kill(victim, 9)
        expect = sorted(set(pids) - {victim})
        assert _eventually(lambda: sorted(ps_json(run_kago, mine)) == expect)
    finally:
        host.kill()
        host.wait()


def _eventually(pred, timeout=10.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_ps_table(busy, run_kago, cid):
    init, spawned = busy
    out = run_kago("ps", cid).stdout
    lines = out.splitlines()
    header = subprocess.run(["ps", "-ef"], capture_output=True, text=True).stdout.splitlines()[0]
    assert lines[0] == header                     # ps -ef's header, as runc
    col = header.split().index("PID")
    rows = {int(line.split()[col]): line for line in lines[1:]}
    assert len(rows) == len(lines) - 1
    assert sorted(rows) == sorted(spawned)
    for pid, line in rows.items():
        assert line.endswith(spawned[pid]), line
    # the default and explicit --format table are the same table (pids, at least)
    again = run_kago("ps", "--format", "table", cid).stdout.splitlines()
    assert again[0] == header
    assert sorted(int(ln.split()[col]) for ln in again[1:]) == sorted(spawned)


def test_ps_args(busy, run_kago, cid):
    init, spawned = busy
    out = run_kago("ps", cid, "--", "-o", "pid,comm").stdout.splitlines()
    assert out[0].split() == ["PID", "COMMAND"]
    rows = dict(line.split() for line in out[1:])
    assert {int(p): c for p, c in rows.items()} == {p: "sleep" for p in spawned}
    # PID need not be the first column; args without `--` go to ps too (runc)
    out = run_kago("ps", cid, "-o", "comm,pid,ppid").stdout.splitlines()
    assert out[0].split() == ["COMMAND", "PID", "PPID"]
    assert sorted(int(line.split()[1]) for line in out[1:]) == sorted(spawned)
    # children of init have init as parent
    parents = {int(line.split()[1]): int(line.split()[2]) for line in out[1:]}
    for pid, c in spawned.items():
        if c in ("sleep 1001", "sleep 1002"):
            assert parents[pid] == init


def test_ps_errors(busy, run_kago, cid, make_cid):
    def one_line(err):
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1, err
        return lines[0]

    r = run_kago("ps", cid, "--", "-o", "comm", check=False)
    assert r.returncode != 0 and "PID" in one_line(r.stderr)
    r = run_kago("ps", "-f", "xml", cid, check=False)
    assert r.returncode != 0 and "format" in one_line(r.stderr)
    r = run_kago("ps", make_cid(), check=False)
    assert r.returncode != 0 and "does not exist" in one_line(r.stderr)
    r = run_kago("ps", check=False)
    assert r.returncode != 0


def test_ps_created_and_paused(bundle, run_kago, cid):
    b = bundle(["sleep", "1000"])
    run_kago("create", "--bundle", b, cid)
    init = state(run_kago, cid)["pid"]
    assert ps_json(run_kago, cid) == [init]          # created: init, waiting
    run_kago("start", cid)
    r = run_kago("pause", cid, check=False)
    if r.returncode == 0:
        assert state(run_kago, cid)["status"] == "paused"
        assert ps_json(run_kago, cid) == [init]      # frozen, still listed
        run_kago("resume", cid)
    run_kago("delete", "--force", cid)
