"""Rootless podman (as the user ``kagotest``, podman's own user namespace
through newuidmap, conmon, --network none) with the runtime given by path:
run, exec, stop, rm, ``--userns=keep-id``; the host side is checked too
(the container's processes run as the user and its /etc/subuid range)."""

from __future__ import annotations

import pytest
from conftest import IMAGE, LOOP, wait_until


def _subid(path, user="kagotest"):
    with open(path) as f:
        for line in f:
            name, start, count = line.strip().split(":")
            if name == user:
                return int(start), int(count)
    pytest.skip(f"no {path} range for {user}")


def pid_of(pm, name):
    return int(pm("inspect", "-f", "{{.State.Pid}}", name).stdout)


def host_ids(pid):
    with open(f"/proc/{pid}/status") as f:
        st = {ln.split(":")[0]: ln.split()[1:] for ln in f if ":" in ln}
    return int(st["Uid"][0]), int(st["Gid"][0])


@pytest.fixture
def running(podman_rootless, cname):
    podman_rootless("run", "-d", "--name", cname, *podman_rootless.run_args(), IMAGE, *LOOP)
    yield cname
    podman_rootless("rm", "-f", "-t", "0", cname, check=False)


def test_run_default_userns(podman_rootless, cname):
    """podman's default: container root is the user, 1..65536 its subuids
    (newuidmap: a multi-range map)."""
    su = _subid("/etc/subuid")
    r = podman_rootless("run", "--rm", "--name", cname, *podman_rootless.run_args(), IMAGE,
                        "sh", "-c", "id -u; cat /proc/self/uid_map; echo err >&2; exit 3",
                        check=False)
    assert r.returncode == 3, r
    lines = r.stdout.split("\n")
    assert lines[0] == "0", r.stdout
    maps = [ln.split() for ln in lines[1:] if ln.strip()]
    assert maps[0][1:] == [str(podman_rootless.uid), "1"] and \
        maps[1][1:] == [str(su[0]), str(su[1])], maps
    assert "err" in r.stderr


def test_keep_id(podman_rootless, cname):
    """--userns=keep-id: the user is itself inside (uid and gid)."""
    pm = podman_rootless
    r = pm("run", "--rm", "--userns=keep-id", "--name", cname, *pm.run_args(), IMAGE,
           "sh", "-c", "id -u; id -g; grep -E '^ *%d ' /proc/self/uid_map" % pm.uid)
    out = r.stdout.split("\n")
    assert out[:2] == [str(pm.uid), str(pm.gid)], r.stdout
    assert out[2].split() == [str(pm.uid), "0", "1"], r.stdout


def test_exec_and_host_ids(podman_rootless, running):
    pm = podman_rootless
    r = pm("exec", running, "sh", "-c", "echo in-container pid1=$(cat /proc/1/comm)")
    assert r.stdout.strip() == "in-container pid1=sh"
    assert pm("exec", running, "sh", "-c", "exit 7", check=False).returncode == 7
    # on the host: container root is the user; uid 1000 inside is subuid + 999
    assert host_ids(pid_of(pm, running)) == (pm.uid, pm.gid)
    su, sg = _subid("/etc/subuid"), _subid("/etc/subgid")
    pm("exec", "-d", "--user", "1000:1000", running, "sleep", "1002")
    out = pm("top", running, "pid", "args").stdout
    assert "sleep 1002" in out, out
    found = []

    def sleeper():
        import os
        for p in os.listdir("/proc"):
            try:
                if p.isdigit() and open(f"/proc/{p}/cmdline", "rb").read() == b"sleep\x001002\x00":
                    found.append(int(p))
            except OSError:
                pass
        return found
    wait_until(sleeper, what="the exec'd sleep on the host")
    assert host_ids(found[0]) == (su[0] + 999, sg[0] + 999)


def test_list(podman_rootless, running):
    r = podman_rootless("ps", "--format", "{{.Names}} {{.Status}}")
    assert any(line.startswith(running + " Up") for line in r.stdout.splitlines()), r.stdout


def test_stop_remove(podman_rootless, cname):
    pm = podman_rootless
    pm("run", "-d", "--name", cname, *pm.run_args(), IMAGE, *LOOP)
    pid = pid_of(pm, cname)
    pm("stop", "-t", "10", cname, timeout=60)
    assert pm("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cname).stdout.split() \
        == ["exited", "0"]
    pm("rm", cname)
    assert pm("ps", "-a", "-q", "--filter", f"name={cname}").stdout.strip() == ""
    import os
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or
               open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z",
               what="the container's init gone")
    state = pm.xdg / pm.rt.name
    assert not state.exists() or os.listdir(state) == [], os.listdir(state)


def test_error_message(podman_rootless, cname):
    r = podman_rootless("run", "--rm", "--name", cname, *podman_rootless.run_args(), IMAGE,
                        "/no/such/exe", check=False)
    assert r.returncode != 0
    assert 'exec: "/no/such/exe": stat /no/such/exe: no such file or directory' in r.stderr, \
        r.stderr
