"""containerd through `ctr run --runc-binary <runtime>` (the io.containerd.runc.v2 shim)."""

from __future__ import annotations

import pytest
from conftest import IMAGE, LOOP, MIB64, cgroup_dir, cgroup_file, wait_until


def task_info(ctr, cid):
    """(pid, status) from `ctr task ls`, or None."""
    for line in ctr("task", "ls").stdout.splitlines()[1:]:
        f = line.split()
        if f and f[0] == cid:
            return int(f[1]), f[2]
    return None


@pytest.fixture
def running(ctr, cname):
    ctr("run", "-d", "--null-io", *ctr.run_args(cname), IMAGE, cname, *LOOP)
    yield cname
    ctr("task", "kill", "-s", "SIGKILL", cname, check=False)
    wait_until(lambda: (task_info(ctr, cname) or (0, "STOPPED"))[1] == "STOPPED", what="task stopped")
    ctr("task", "rm", "-f", cname, check=False)
    ctr("container", "rm", cname, check=False)


def test_run_output(ctr, cname):
    r = ctr("run", "--rm", *ctr.run_args(cname), IMAGE, cname,
            "sh", "-c", "echo hello from ctr; echo err >&2; exit 3", check=False)
    assert r.returncode == 3, r
    assert "hello from ctr" in r.stdout and "err" in r.stderr


def test_exec(ctr, running):
    r = ctr("task", "exec", "--exec-id", "e1", running, "sh", "-c", "echo pid1=$(cat /proc/1/comm)")
    assert r.stdout.strip() == "pid1=sh"
    assert ctr("task", "exec", "--exec-id", "e2", running, "sh", "-c", "exit 7",
               check=False).returncode == 7


def test_exec_tty(ctr, running):
    rc, out = ctr.pty("task", "exec", "-t", "--exec-id", "t1", running,
                      "sh", "-c", "test -t 0 && test -t 1 && echo tty-yes; tty")
    assert rc == 0, out
    assert "tty-yes" in out and "/dev/pts/" in out


def test_list(ctr, running):
    assert task_info(ctr, running)[1] == "RUNNING"
    assert running in ctr("container", "ls", "-q").stdout.split()


def test_memory_limit(ctr, cname):
    ctr("run", "-d", "--null-io", "--memory-limit", str(MIB64), *ctr.run_args(cname), IMAGE,
        cname, *LOOP)
    try:
        # containerd's default spec mounts no cgroupfs: the container shows its
        # cgroup in /proc/self/cgroup; the limit is read from the host
        inside = ctr("task", "exec", "--exec-id", "m", cname, "cat", "/proc/self/cgroup")
        assert f"memory:/{ctr.cgroup_parent}/{cname}" in inside.stdout, inside.stdout
        pid = task_info(ctr, cname)[0]
        assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == MIB64
    finally:
        ctr("task", "kill", "-s", "SIGKILL", cname, check=False)
        wait_until(lambda: task_info(ctr, cname)[1] == "STOPPED", what="task stopped")
        ctr("task", "rm", cname)
        ctr("container", "rm", cname)


def test_pause_unpause(ctr, running):
    pid = task_info(ctr, running)[0]
    ctr("task", "pause", running)
    assert task_info(ctr, running)[1] == "PAUSED"
    assert cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "FROZEN"
    ctr("task", "resume", running)
    assert task_info(ctr, running)[1] == "RUNNING"
    assert cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "THAWED"


def test_top(ctr, running):
    pid = task_info(ctr, running)[0]
    pids = [line.split()[0] for line in ctr("task", "ps", running).stdout.splitlines()[1:]]
    assert str(pid) in pids, pids


def test_memory_update(ctr, running, containerd, base):
    from conftest import update_task_memory
    pid = task_info(ctr, running)[0]
    update_task_memory(containerd, base, running, MIB64)
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == MIB64
    update_task_memory(containerd, base, running, 96 << 20)
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == 96 << 20


def test_stop_remove(ctr, cname):
    ctr("run", "-d", "--null-io", *ctr.run_args(cname), IMAGE, cname, *LOOP)
    pid = task_info(ctr, cname)[0]
    cg = cgroup_dir(pid)
    ctr("task", "kill", "-s", "SIGTERM", cname)
    wait_until(lambda: task_info(ctr, cname)[1] == "STOPPED", what="task stopped")
    ctr("task", "rm", cname)
    ctr("container", "rm", cname)
    assert task_info(ctr, cname) is None
    assert cname not in ctr("container", "ls", "-q").stdout.split()
    wait_until(lambda: not cg.exists(), timeout=10, what=f"{cg} removed")


def test_tty(ctr, cname):
    rc, out = ctr.pty("run", "--rm", "-t", *ctr.run_args(cname), IMAGE, cname,
                      "sh", "-c", "test -t 1 && echo tty-yes; tty")
    assert rc == 0, out
    assert "tty-yes" in out and "/dev/pts/0" in out


def test_error_message(ctr, cname):
    r = ctr("run", "--rm", *ctr.run_args(cname), IMAGE, cname, "/no/such/exe", check=False)
    ctr("container", "rm", cname, check=False)
    assert r.returncode != 0
    assert 'exec: "/no/such/exe": stat /no/such/exe: no such file or directory' in r.stderr, r.stderr
