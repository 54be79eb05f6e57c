"""The Docker engine (Debian's dockerd, on the suite's own containerd) with
`--add-runtime kago=<path>` and `docker run --runtime kago --network none`."""

from __future__ import annotations

import pytest
from conftest import IMAGE, LOOP, MIB64, cgroup_dir, cgroup_file, wait_until


@pytest.fixture
def running(docker, cname):
    docker("run", "-d", "--name", cname, *docker.run_args(), IMAGE, *LOOP)
    yield cname
    docker("rm", "-f", cname, check=False)


def inspect(docker, name, fmt):
    return docker("inspect", "-f", fmt, name).stdout.strip()


def test_run_output(docker, cname):
    r = docker("run", "--rm", "--name", cname, *docker.run_args(), IMAGE,
               "sh", "-c", "echo hello from docker; echo err >&2; exit 3", check=False)
    assert r.returncode == 3, r
    assert "hello from docker" in r.stdout and "err" in r.stderr


def test_exec(docker, running):
    r = docker("exec", running, "sh", "-c", "echo pid1=$(cat /proc/1/comm)")
    assert r.stdout.strip() == "pid1=sh"
    assert docker("exec", running, "sh", "-c", "exit 7", check=False).returncode == 7


def test_exec_tty(docker, running):
    rc, out = docker.pty("exec", "-it", running, "sh", "-c", "test -t 0 && test -t 1 && echo tty-yes; tty")
    assert rc == 0, out
    assert "tty-yes" in out and "/dev/pts/" in out


def test_list(docker, running):
    r = docker("ps", "--format", "{{.Names}} {{.Status}}")
    assert any(line.startswith(running + " Up") for line in r.stdout.splitlines()), r.stdout


def test_memory_limit(docker, cname):
    docker("run", "-d", "--name", cname, "--memory", "64m", *docker.run_args(), IMAGE, *LOOP)
    try:
        inside = docker("exec", cname, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert int(inside.stdout) == MIB64
        pid = int(inspect(docker, cname, "{{.State.Pid}}"))
        assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == MIB64
    finally:
        docker("rm", "-f", cname)


def test_pause_unpause(docker, running):
    pid = int(inspect(docker, running, "{{.State.Pid}}"))
    docker("pause", running)
    assert inspect(docker, running, "{{.State.Status}}") == "paused"
    assert cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "FROZEN"
    docker("unpause", running)
    assert inspect(docker, running, "{{.State.Status}}") == "running"
    assert cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "THAWED"
    assert docker("exec", running, "true").returncode == 0


def test_top(docker, running):
    docker("exec", "-d", running, "sleep", "1001")
    out = wait_until(lambda: (o := docker("top", running).stdout) and "sleep 1001" in o and o,
                     what="sleep in docker top")
    assert "while" in out, out


def test_memory_update(docker, running):
    pid = int(inspect(docker, running, "{{.State.Pid}}"))
    docker("update", "--memory", "64m", "--memory-swap", "-1", running)
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == MIB64
    docker("update", "--memory", "96m", "--memory-swap", "-1", running)
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == 96 << 20


def test_stop_remove(docker, cname):
    docker("run", "-d", "--name", cname, *docker.run_args(), IMAGE, *LOOP)
    cg = cgroup_dir(int(inspect(docker, cname, "{{.State.Pid}}")))
    docker("stop", "-t", "10", cname, timeout=60)
    assert inspect(docker, cname, "{{.State.Status}}") == "exited"
    assert inspect(docker, cname, "{{.State.ExitCode}}") == "0"
    docker("rm", cname)
    assert docker("ps", "-aq", "--filter", f"name={cname}").stdout.strip() == ""
    wait_until(lambda: not cg.exists(), timeout=10, what=f"{cg} removed")


def test_tty(docker, cname):
    rc, out = docker.pty("run", "--rm", "-t", "--name", cname, *docker.run_args(), IMAGE,
                         "sh", "-c", "test -t 1 && echo tty-yes; tty")
    assert rc == 0, out
    assert "tty-yes" in out and "/dev/pts/0" in out


def test_error_message(docker, cname):
    r = docker("run", "--rm", "--name", cname, *docker.run_args(), IMAGE, "/no/such/exe",
               check=False)
    assert r.returncode != 0
    assert 'exec: "/no/such/exe": stat /no/such/exe: no such file or directory' in r.stderr, r.stderr
