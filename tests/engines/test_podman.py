"""podman (with conmon, cgroupfs, --network none) with the runtime given by path."""

from __future__ import annotations

import pytest
from conftest import IMAGE, LOOP, MIB64, cgroup_dir, cgroup_file, wait_until


@pytest.fixture
def running(podman, cname):
    """A detached container running LOOP (removed afterwards)."""
    podman("run", "-d", "--name", cname, *podman.run_args(), IMAGE, *LOOP)
    yield cname
    podman("rm", "-f", "-t", "0", cname, check=False)


def pid_of(podman, name):
    return int(podman("inspect", "-f", "{{.State.Pid}}", name).stdout)


def status_of(podman, name):
    return podman("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


def test_run_output(podman, cname):
    r = podman("run", "--rm", "--name", cname, *podman.run_args(), IMAGE,
               "sh", "-c", "echo hello from $(hostname); echo err >&2; exit 3", check=False)
    assert r.returncode == 3, r
    assert "hello from" in r.stdout and "err" in r.stderr


def test_exec(podman, running):
    r = podman("exec", running, "sh", "-c", "echo in-container pid1=$(cat /proc/1/comm)")
    assert r.stdout.strip() == "in-container pid1=sh"
    assert podman("exec", running, "sh", "-c", "exit 7", check=False).returncode == 7


def test_exec_tty(podman, running):
    rc, out = podman.pty("exec", "-it", running, "sh", "-c", "test -t 0 && test -t 1 && echo tty-yes; tty")
    assert rc == 0, out
    assert "tty-yes" in out and "/dev/pts/" in out


def test_list(podman, running):
    r = podman("ps", "--format", "{{.Names}} {{.Status}}")
    assert any(line.startswith(running + " Up") for line in r.stdout.splitlines()), r.stdout


def test_memory_limit(podman, cname):
    podman("run", "-d", "--name", cname, "--memory", "64m", *podman.run_args(), IMAGE, *LOOP)
    try:
        inside = podman("exec", cname, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert int(inside.stdout) == MIB64
        host = cgroup_file(pid_of(podman, cname), "memory", "memory.limit_in_bytes")
        assert int(host.read_text()) == MIB64
    finally:
        podman("rm", "-f", "-t", "0", cname)


def test_pause_unpause(podman, running):
    pid = pid_of(podman, running)
    podman("pause", running)
    assert status_of(podman, running) == "paused"
    assert cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "FROZEN"
    podman("unpause", running)
    assert status_of(podman, running) == "running"
    assert cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "THAWED"
    assert podman("exec", running, "true").returncode == 0


def test_top(podman, running):
    podman("exec", "-d", running, "sleep", "1001")
    out = podman("top", running, "pid", "args").stdout
    assert "sleep 1001" in out and "while" in out, out


def test_memory_update(podman, running):
    pid = pid_of(podman, running)
    podman("update", "--memory", "64m", running)
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == MIB64
    podman("update", "--memory", "96m", running)
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == 96 << 20


def test_stop_remove(podman, cname):
    podman("run", "-d", "--name", cname, *podman.run_args(), IMAGE, *LOOP)
    pid = pid_of(podman, cname)
    cg = cgroup_dir(pid)
    podman("stop", "-t", "10", cname, timeout=60)
    assert status_of(podman, cname) == "exited"
    assert podman("inspect", "-f", "{{.State.ExitCode}}", cname).stdout.strip() == "0"
    podman("rm", cname)
    assert podman("ps", "-a", "-q", "--filter", f"name={cname}").stdout.strip() == ""
    wait_until(lambda: not cg.exists(), timeout=10, what=f"{cg} removed")


def test_tty(podman, cname):
    rc, out = podman.pty("run", "--rm", "-t", "--name", cname, *podman.run_args(), IMAGE,
                         "sh", "-c", "test -t 1 && echo tty-yes; tty")
    assert rc == 0, out
    assert "tty-yes" in out and "/dev/pts/0" in out


def test_error_message(podman, cname):
    r = podman("run", "--rm", "--name", cname, *podman.run_args(), IMAGE, "/no/such/exe",
               check=False)
    assert r.returncode != 0
    # the runtime's own message (its --log JSON's last error), not "exit status 1"
    assert 'exec: "/no/such/exe": stat /no/such/exe: no such file or directory' in r.stderr, r.stderr
