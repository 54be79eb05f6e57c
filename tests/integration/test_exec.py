"""exec (issue 3): a tenant process in a running container.

Namespaces and cgroups are compared from the host (/proc/<pid>/ns links,
/proc/<pid>/cgroup); user, groups, capabilities, env, cwd, rlimits and fds
from inside (the process prints them) and, where it makes sense, from the
host too.  Exit statuses, signal forwarding, -d + --pid-file, and the
failures (missing binary, bad cwd, stopped or paused container).
"""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

NAMESPACES = ("pid", "mnt", "net", "uts", "ipc", "cgroup")
CAP_KILL, CAP_NET_BIND_SERVICE, CAP_SYS_ADMIN, CAP_AUDIT_WRITE = 5, 10, 21, 29


# ------------------------------------------------------------------ helpers

def state(run_kago, cid) -> dict:
    return json.loads(run_kago("state", cid).stdout)


def ps_json(run_kago, cid) -> list:
    return json.loads(run_kago("ps", "-f", "json", cid).stdout)


def status(pid) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def cmdline(pid) -> list:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().decode().split("\0")[:-1]


def alive(pid) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line of error, got:\n{err}"
    return lines[0]


def err_msg(r) -> str:
    """The msg of the one error record a failed command printed (logfmt)."""
    m = re.match(r'^time="[^"]+" level=error msg="(.*)"$', one_line(r.stderr))
    assert m, r.stderr
    return m.group(1).replace('\\"', '"')


def kv_lines(out: str) -> dict:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


CONTAINER_ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FOO=from-container",
                 "KEEP=kept", "TERM=xterm"]


def _with_cgroup_ns(config):
    config["linux"]["namespaces"].append({"type": "cgroup"})


@pytest.fixture
def running(bundle, run_kago, cid):
    """A running container (`sleep 1000`, cwd /etc, a marker in its rootfs,
    RLIMIT_NOFILE 777, a cgroup namespace too): returns its init's host pid."""
    b = bundle(["sleep", "1000"], edit=_with_cgroup_ns, process={
        "cwd": "/etc", "env": CONTAINER_ENV,
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 777, "hard": 777}]})
    (b / "rootfs" / "marker").write_text("the container's rootfs\n")
    run_kago("run", "-d", "--bundle", b, cid)
    return state(run_kago, cid)["pid"]


def exec_detached(run_kago, cid, tmp_path, *args, flags=()) -> int:
    pid_file = tmp_path / f"exec-{time.monotonic_ns()}.pid"
    run_kago("exec", "-d", "--pid-file", pid_file, *flags, cid, *args)
    return int(pid_file.read_text())


# ------------------------------------------------------------------ where it runs

def test_exec_joins_namespaces_cgroup_and_rootfs(running, run_kago, cid, tmp_path):
    init = running
    t = exec_detached(run_kago, cid, tmp_path, "sleep", "999")
    assert cmdline(t) == ["sleep", "999"]
    for ns in NAMESPACES:
        mine = os.readlink(f"/proc/{t}/ns/{ns}")
        assert mine == os.readlink(f"/proc/{init}/ns/{ns}"), ns
        # and really the container's, not the host's
        assert mine != os.readlink(f"/proc/self/ns/{ns}"), ns
    # the same cgroup in every hierarchy
    with open(f"/proc/{t}/cgroup") as a, open(f"/proc/{init}/cgroup") as b:
        assert a.read() == b.read()
    # pid 1 is init; the tenant has its own pid inside
    nspid = status(t)["NSpid"].split()
    assert len(nspid) == 2 and nspid[0] == str(t) and int(nspid[1]) > 1
    assert status(init)["NSpid"].split()[1] == "1"
    # the container's root
    marker = os.stat(f"/proc/{t}/root/marker")
    assert (marker.st_dev, marker.st_ino) == \
        (os.stat(f"/proc/{init}/root/marker").st_dev, os.stat(f"/proc/{init}/root/marker").st_ino)
    # and from inside: the rootfs, the hostname, pid 1
    out = run_kago("exec", cid, "sh", "-c",
                   "cat /marker; echo host=$(hostname); echo one=$(cat /proc/1/cmdline | tr '\\0' ' ')"
                   ).stdout
    assert "the container's rootfs" in out
    assert kv_lines(out)["host"] == "kago"
    assert kv_lines(out)["one"].strip() == "sleep 1000"


def test_exec_user_and_groups(running, run_kago, cid):
    script = "grep -E '^(Uid|Gid|Groups):' /proc/self/status"

    def ids(*flags):
        out = run_kago("exec", *flags, cid, "sh", "-c", script).stdout
        return {k: v.split() for k, _, v in (ln.partition(":") for ln in out.splitlines())}

    got = ids("-u", "1000:1001", "-g", "5", "-g", "2000")
    assert got["Uid"] == ["1000"] * 4
    assert got["Gid"] == ["1001"] * 4
    assert got["Groups"] == ["5", "2000"]
    got = ids("-u", "1234")          # the gid stays the container's (0)
    assert got["Uid"] == ["1234"] * 4 and got["Gid"] == ["0"] * 4
    got = ids()                      # the container's user
    assert got["Uid"] == ["0"] * 4 and got["Groups"] == []


def test_exec_capabilities(running, run_kago, cid):
    def caps(*flags):
        out = run_kago("exec", *flags, cid, "sh", "-c", "grep ^Cap /proc/self/status").stdout
        return {k: int(v, 16) for k, _, v in (ln.partition(":") for ln in out.splitlines())}

    base = (1 << CAP_KILL) | (1 << CAP_NET_BIND_SERVICE) | (1 << CAP_AUDIT_WRITE)
    c = caps()
    assert c["CapEff"] == base and c["CapBnd"] == base
    c = caps("--cap", "CAP_SYS_ADMIN")
    assert c["CapEff"] == base | (1 << CAP_SYS_ADMIN)
    assert c["CapPrm"] == base | (1 << CAP_SYS_ADMIN)
    assert c["CapBnd"] == base | (1 << CAP_SYS_ADMIN)
    # and it works: sethostname needs CAP_SYS_ADMIN in the uts namespace
    r = run_kago("exec", cid, "hostname", "nope", check=False)
    assert r.returncode != 0
    run_kago("exec", "--cap", "CAP_SYS_ADMIN", cid, "hostname", "renamed")
    assert run_kago("exec", cid, "hostname").stdout.strip() == "renamed"
    assert os.uname().nodename != "renamed"


def test_exec_env_cwd_rlimits(running, run_kago, cid):
    env = {**os.environ, "KAGO_HOST_ONLY": "leaked"}
    out = run_kago("exec", "-e", "FOO=from-exec", "-e", "NEW=x y", cid, "env", env=env).stdout
    lines = out.splitlines()
    assert [ln for ln in lines if ln.startswith("FOO=")] == ["FOO=from-exec"]
    assert "NEW=x y" in lines and "KEEP=kept" in lines
    assert "PATH=/usr/sbin:/usr/bin:/sbin:/bin" in lines
    assert not any("KAGO_HOST_ONLY" in ln for ln in lines)

    assert run_kago("exec", cid, "pwd").stdout.strip() == "/etc"      # the container's cwd
    assert run_kago("exec", "--cwd", "/tmp", cid, "pwd").stdout.strip() == "/tmp"
    assert run_kago("exec", cid, "sh", "-c", "ulimit -n").stdout.strip() == "777"


def test_exec_process_json(running, run_kago, cid, tmp_path):
    """--process FILE replaces the container's process entirely."""
    proc = {"args": ["sh", "-c", "echo uid=$(id -u) cwd=$(pwd) only=$ONLY foo=$FOO; exit 9"],
            "env": ["PATH=/bin", "ONLY=this"], "cwd": "/tmp",
            "user": {"uid": 4242, "gid": 4242}, "terminal": False}
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps(proc))
    r = run_kago("exec", "-p", pf, cid, check=False)
    assert r.returncode == 9, r.stderr
    assert r.stdout.split() == ["uid=4242", "cwd=/tmp", "only=this", "foo="]


@pytest.mark.parametrize("proc, words", [
    ({"args": ["true"], "cwd": "/", "user": {"umask": 2147483648}},
     "config.json: process.user.umask: 2147483648 is out of range [0, 4095]"),
    ({"args": ["true"], "cwd": "/", "scheduler": {"policy": "SCHED_OTHER", "nice": "x"}},
     "config.json: process.scheduler.nice: expected integer, got string"),
    ({"args": ["true"], "cwd": "/", "env": ["A=\ud800"]},
     "config.json: process.env[0]: contains a lone UTF-16 surrogate"),
    ({"args": ["tr\u0000ue"], "cwd": "/"}, "config.json: process.args[0]: contains a nul byte"),
    ({"args": ["true"], "cwd": "/", "execCPUAffinity": {"initial": "0-99999999999"}},
     "config.json: process.execCPUAffinity.initial: invalid list"),
    ('{"args": ' * 3000 + '1' + '}' * 3000, "invalid JSON: nested too deeply"),
])
def test_exec_malformed_process_json_gets_kagos_words(running, run_kago, cid, tmp_path,
                                                      proc, words):
    """--process FILE goes through the same checks as config.json's process;
    nothing runs (exec's own failure: exit 255, runc's "exec failed: ")."""
    pf = tmp_path / "process.json"
    pf.write_text(proc if isinstance(proc, str) else json.dumps(proc))
    before = json.loads(run_kago("ps", "--format", "json", cid).stdout)
    r = run_kago("exec", "-p", pf, cid, check=False)
    assert r.returncode in (1, 255), r.stderr
    assert words.replace('"', '\\"') in r.stderr or words in r.stderr, r.stderr
    for w in ("Traceback", "Error:", "TypeError", "ValueError", "UnicodeEncodeError",
              "OverflowError", "RecursionError"):
        assert w not in r.stderr
    assert json.loads(run_kago("ps", "--format", "json", cid).stdout) == before == [running]


def test_exec_no_new_privs(bundle, run_kago, cid):
    b = bundle(["sleep", "1000"], process={"noNewPrivileges": False})
    run_kago("run", "-d", "--bundle", b, cid)
    nnp = "grep ^NoNewPrivs: /proc/self/status | tr -dc 0-9"
    assert run_kago("exec", cid, "sh", "-c", nnp).stdout == "0"
    assert run_kago("exec", "--no-new-privs", cid, "sh", "-c", nnp).stdout == "1"


def test_exec_stdio(running, run_kago, cid):
    r = run_kago("exec", cid, "sh", "-c", "cat; echo to-err >&2", input="from stdin\n")
    assert r.stdout == "from stdin\n"
    assert r.stderr == "to-err\n"


def test_exec_into_created_container(bundle, run_kago, cid):
    """runc allows exec while the container is created (init waits on its fifo)."""
    b = bundle(["sleep", "1000"])
    run_kago("create", "--bundle", b, cid)
    out = run_kago("exec", cid, "sh", "-c", "echo one=$(cat /proc/1/cmdline | tr '\\0' ' ')").stdout
    assert kv_lines(out)["one"].strip() != "sleep 1000"   # not exec'd yet
    assert state(run_kago, cid)["status"] == "created"
    run_kago("start", cid)
    assert state(run_kago, cid)["status"] == "running"


# ------------------------------------------------------------------ exit and signals

@pytest.mark.parametrize("script, code", [
    ("exit 0", 0), ("exit 42", 42), ("exit 255", 255),
    ("kill -9 $$", 128 + 9), ("kill -TERM $$", 128 + 15),
])
def test_exec_exit_status(running, run_kago, cid, script, code):
    r = run_kago("exec", cid, "sh", "-c", script, check=False)
    assert r.returncode == code, r.stderr
    assert r.stderr == ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGINT])
def test_exec_forwards_signals(running, kago_bin, state_root, cid, tmp_path, wait_until, sig):
    name = sig.name[3:]
    out = tmp_path / "out"
    with open(out, "w") as f:
        p = subprocess.Popen(
            [kago_bin, "--root", str(state_root), "exec", cid, "sh", "-c",
             f"trap 'echo got {name}; exit 7' {name}; echo ready; "
             "while :; do sleep 0.05; done"],
            stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "ready" in out.read_text(), what="the exec'd shell")
        p.send_signal(sig)
        rc = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert f"got {name}" in out.read_text()
    assert rc == 7


def test_exec_detach_pid_file(running, run_kago, cid, tmp_path):
    init = running
    pid_file = tmp_path / "sub" / "tenant.pid"
    pid_file.parent.mkdir()
    t0 = time.monotonic()
    r = run_kago("exec", "-d", "--pid-file", pid_file, cid, "sleep", "1000")
    assert time.monotonic() - t0 < 10
    assert r.stdout == "" and r.stderr == ""
    t = int(pid_file.read_text())
    assert alive(t) and cmdline(t) == ["sleep", "1000"]
    assert os.readlink(f"/proc/{t}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    assert sorted(ps_json(run_kago, cid)) == sorted([init, t])
    # a relative --pid-file is against kago's cwd
    run_kago("exec", "-d", "--pid-file", "rel.pid", cid, "sleep", "1001", cwd=tmp_path)
    t2 = int((tmp_path / "rel.pid").read_text())
    assert cmdline(t2) == ["sleep", "1001"]
    run_kago("delete", "--force", cid)
    assert not alive(t) and not alive(t2)


# ------------------------------------------------------------------ failures

@pytest.mark.parametrize("args, flags, expect", [
    (["no-such-binary"], [], ["no-such-binary", "not found"]),
    (["/bin/no-such-binary"], [], ["/bin/no-such-binary", "no such file"]),
    (["/etc/passwd"], [], ["/etc/passwd", "permission denied"]),
    (["pwd"], ["--cwd", "/no/such/dir"], ["/no/such/dir", "no such file"]),
    (["pwd"], ["--cwd", "/etc/passwd"], ["/etc/passwd", "not a directory"]),
])
def test_exec_failure_reports_reason(running, run_kago, cid, args, flags, expect):
    init = running
    for detach in ([], ["-d"]):
        r = run_kago("exec", *detach, *flags, cid, *args, check=False)
        assert r.returncode == 255, r          # runc's exec: fatalWithCode(.., 255)
        assert err_msg(r).startswith("exec failed: "), r.stderr
        line = one_line(r.stderr).lower()
        for e in expect:
            assert e.lower() in line, (e, line)
        assert r.stdout == ""
        assert ps_json(run_kago, cid) == [init]     # no tenant left
    assert state(run_kago, cid)["status"] == "running"


def test_exec_usage_errors(running, run_kago, cid, make_cid):
    # runc's words and exit status (255: exec's own failures, 1: usage)
    r = run_kago("exec", cid, check=False)
    assert (r.returncode, err_msg(r)) == (255, "exec failed: process args cannot be empty")
    missing = make_cid()
    r = run_kago("exec", missing, "true", check=False)
    assert (r.returncode, err_msg(r)) == (255, "exec failed: container does not exist")
    r = run_kago("exec", "-u", "root", cid, "true", check=False)
    assert r.returncode == 255 and "root" in one_line(r.stderr)
    r = run_kago("exec", check=False)
    assert r.returncode == 1 and "Incorrect Usage" in r.stdout


def test_exec_stopped_container(bundle, run_kago, cid, wait_until):
    b = bundle("true")
    run_kago("create", "--bundle", b, cid)
    run_kago("start", cid)
    wait_until(lambda: state(run_kago, cid)["status"] == "stopped", what="container to stop")
    r = run_kago("exec", cid, "true", check=False)
    assert r.returncode == 255
    assert err_msg(r).startswith("exec failed: cannot exec in a stopped container")
    run_kago("delete", cid)


def test_exec_paused_container(running, run_kago, cid, kago_bin, state_root, wait_until):
    init = running
    run_kago("pause", cid)
    assert state(run_kago, cid)["status"] == "paused"
    r = run_kago("exec", cid, "echo", "ran", check=False)
    assert r.returncode == 255
    assert err_msg(r) == \
        "exec failed: cannot exec in a paused container (use --ignore-paused to override)"
    assert ps_json(run_kago, cid) == [init]
    # --ignore-paused: allowed; it runs (at the latest) once the container is thawed
    p = subprocess.Popen([kago_bin, "--root", str(state_root), "exec", "--ignore-paused", cid,
                          "echo", "ran"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        assert state(run_kago, cid)["status"] == "paused"
        run_kago("resume", cid)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert out == "ran\n"
    assert state(run_kago, cid)["status"] == "running"


# ------------------------------------------------------------------ fds

def _kago_with_fds(kago_bin, state_root, files: dict, *args) -> subprocess.CompletedProcess:
    """Run kago with extra open fds: files maps fd number -> path (read)."""
    redir = " ".join(f'{fd}<"{path}"' for fd, path in files.items())
    return subprocess.run(["sh", "-c", f'exec "$@" {redir}', "sh", kago_bin,
                           "--root", str(state_root), *map(str, args)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


def _fd_listing(out: str) -> dict:
    """`ls -l /proc/self/fd` -> {fd: link target or ''}."""
    fds = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 9 and parts[-1].isdigit() and "->" not in parts:
            fds[int(parts[-1])] = ""
        elif "->" in parts:
            i = parts.index("->")
            fds[int(parts[i - 1])] = " ".join(parts[i + 1:])
    return fds


def test_exec_no_fd_leak(running, run_kago, cid, kago_bin, state_root, tmp_path):
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    for f in (a, b, c):
        f.write_text(f.name)
    # kago itself holds fds 3, 4 and 9: none reaches the process
    r = _kago_with_fds(kago_bin, state_root, {3: a, 4: b, 9: c},
                       "exec", cid, "ls", "-l", "/proc/self/fd")
    assert r.returncode == 0, r.stderr
    fds = _fd_listing(r.stdout)
    assert set(fds) == {0, 1, 2, 3}, r.stdout     # 3: the directory ls reads
    assert not any(str(tmp_path) in t for t in fds.values()), r.stdout
    # from the host, a detached exec has exactly 0, 1, 2
    t = exec_detached(run_kago, cid, tmp_path, "sleep", "1000")
    assert sorted(int(x) for x in os.listdir(f"/proc/{t}/fd")) == [0, 1, 2]


def test_exec_preserve_fds(running, run_kago, cid, kago_bin, state_root, tmp_path):
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    for f in (a, b, c):
        f.write_text(f"content of {f.name}\n")
    r = _kago_with_fds(kago_bin, state_root, {3: a, 4: b, 5: c},
                       "exec", "--preserve-fds", 2, cid, "sh", "-c",
                       "cat <&3; cat <&4; ls /proc/self/fd | tr '\\n' ' '")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["content of a", "content of b"]
    # sh's 0-4 and ls's own directory fd; 5 (not preserved) is gone
    assert sorted(int(x) for x in lines[2].split()) == [0, 1, 2, 3, 4, 5]
    r = _kago_with_fds(kago_bin, state_root, {3: a, 4: b, 5: c},
                       "exec", "--preserve-fds", 2, cid, "sh", "-c", "cat <&5")
    assert r.returncode != 0
    # fds that are not open are skipped (crun), not an error
    r = run_kago("exec", "--preserve-fds", 40, cid, "true", check=False)
    assert r.returncode == 0, r.stderr


def test_exec_preserve_fds_with_a_hole(running, run_kago, cid, kago_bin, state_root,
                                       tmp_path):
    """--preserve-fds 3 with 3 and 5 open and 4 closed in the caller: the
    exec'd process gets 3 and 5 (their content), nothing at 4 - the lowest
    free number, where kago's own namespace fds, channel socket and error
    pipe land - and no other fd of kago's."""
    a, c = tmp_path / "a", tmp_path / "c"
    a.write_text("content of a\n")
    c.write_text("content of c\n")
    # the shell that starts kago holds 0-2, 3 and 5 only: 4 is closed
    r = _kago_with_fds(kago_bin, state_root, {3: a, 5: c},
                       "exec", "-d", "--pid-file", tmp_path / "t.pid", "--preserve-fds", 3, cid,
                       "sh", "-c", "exec sleep 300 >/dev/null 2>&1")
    assert r.returncode == 0, r.stderr
    t = int((tmp_path / "t.pid").read_text())
    found = {int(n): os.readlink(f"/proc/{t}/fd/{n}") for n in os.listdir(f"/proc/{t}/fd")}
    assert sorted(found) == [0, 1, 2, 3, 5], found
    assert found[3] == str(a) and found[5] == str(c)
    # in the foreground, reading them from inside
    r = _kago_with_fds(kago_bin, state_root, {3: a, 5: c},
                       "exec", "--preserve-fds", 3, cid, "sh", "-c",
                       "cat <&3; cat <&5; cat <&4 || echo no-fd-4")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["content of a", "content of c", "no-fd-4"], r


# ------------------------------------------------------------------ --cgroup

def _cgroup_dirs(pid) -> list[str]:
    """Host directories of every hierarchy pid is in."""
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = right.split()[:3]
            if fstype == "cgroup2":
                mounts[""] = left.split()[4]
            elif fstype == "cgroup":
                for o in opts.split(","):
                    if o not in ("rw", "ro", "relatime", "nosuid", "nodev", "noexec"):
                        mounts.setdefault(o, left.split()[4])
    dirs = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            key = ctrls.split(",")[0]
            if key in mounts:
                dirs.append(mounts[key] + path)
    return dirs


def test_exec_cgroup_sub(running, run_kago, cid, tmp_path):
    init = running
    dirs = _cgroup_dirs(init)
    assert dirs and all(cid in d for d in dirs)
    r = run_kago("exec", "--cgroup", "sub", cid, "true", check=False)
    assert r.returncode != 0 and "sub" in one_line(r.stderr)   # it must exist
    for d in dirs:
        os.mkdir(os.path.join(d, "sub"))
        if os.path.exists(os.path.join(d, "cpuset.cpus")):    # v1 cpuset: copy down
            for k in ("cpuset.cpus", "cpuset.mems"):
                Path(d, "sub", k).write_text(Path(d, k).read_text())
    t = exec_detached(run_kago, cid, tmp_path, "sleep", "1000", flags=["--cgroup", "sub"])
    assert sorted(_cgroup_dirs(t)) == sorted(os.path.join(d, "sub") for d in dirs)
    # a process in a sub-cgroup is still the container's
    assert sorted(ps_json(run_kago, cid)) == sorted([init, t])
    run_kago("delete", "--force", cid)
    assert not alive(t)
    assert not any(os.path.exists(d) for d in dirs)


# ------------------------------------------------------------------ the library

def test_library_exec_and_processes(running, state_root, cid, tmp_path, wait_until):
    from kago import Container
    c = Container.load(str(state_root), cid)
    out = tmp_path / "lib.out"
    t = c.exec({"args": ["sh", "-c", "echo $((40+2)) > /dev/shm/lib; exec sleep 1000"],
                "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}},
               detach=True, pid_file=str(out))
    assert int(out.read_text()) == t
    assert sorted(c.processes()) == sorted([running, t])
    wait_until(lambda: cmdline(t) == ["sleep", "1000"], what="the tenant to exec sleep")
    with open(f"/proc/{t}/root/dev/shm/lib") as f:
        assert f.read() == "42\n"
    from kago.errors import ExecError
    with pytest.raises(ExecError) as err:
        c.exec({"args": ["nope"], "cwd": "/", "env": ["PATH=/bin"]}, detach=True)
    assert "nope" in str(err.value)
