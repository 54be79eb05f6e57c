"""The container lifecycle through the command line: create -> start -> kill ->
delete, run (foreground and detached), statuses, pid files, exit codes, signals,
and the verbs' behaviour in each state, compared with runc where it matters.
"""

import json
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

RUNC = "/usr/sbin/runc"
STATE_KEYS = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def state(run_kago, cid):
    return json.loads(run_kago("state", cid).stdout)


def one_line(proc):
    """The single stderr line of a failed command."""
    assert proc.returncode != 0, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return lines[0]


def text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def ns_pids(pid):
    """Host pids of every live process in the pid namespace of ``pid``."""
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == ns:
                    found.append(int(name))
            except OSError:
                pass
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.fixture
def runc(make_cid, tmp_path):
    """runc(*args) with its own root; every container is force-deleted after."""
    root = tmp_path / "runc-root"
    ids = []

    def run(*args, check=True):
        # files, not pipes: a created container keeps runc's stdio open
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run([RUNC, "--root", str(root), *map(str, args)],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
                               timeout=30)
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read(), err.read()
        if check:
            assert p.returncode == 0, p
        return p
    run.ids = ids
    run.make_id = lambda: ids.append(make_cid("rc")) or ids[-1]
    yield run
    for i in ids:
        run("delete", "--force", i, check=False)


# ---------------------------------------------------------------- statuses

def test_statuses_created_running_stopped(run_kago, bundle, cid, state_root, tmp_path,
                                          wait_until, assert_clean):
    b = bundle("echo started $$; exec sleep 60")
    out = open(tmp_path / "out", "w")
    pf = tmp_path / "init.pid"
    run_kago("create", "--bundle", b, "--pid-file", pf, cid, stdout=out)
    st = state(run_kago, cid)
    assert st["status"] == "created"
    pid = st["pid"]
    assert pf.read_text() == str(pid)
    assert alive(pid)
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert (st["id"], st["bundle"], st["rootfs"]) == (cid, str(b), str(b / "rootfs"))
    assert RFC3339.match(st["created"]), st["created"]
    assert (state_root / cid / "state.json").is_file()
    time.sleep(0.1)
    assert text(tmp_path / "out") == ""          # args not run before start

    run_kago("start", cid)
    assert state(run_kago, cid)["status"] == "running"
    assert wait_until(lambda: text(tmp_path / "out"), what="output") == "started 1\n"
    assert state(run_kago, cid)["pid"] == pid    # init exec'd the args: same pid

    run_kago("kill", cid, "KILL")
    wait_until(lambda: state(run_kago, cid)["status"] == "stopped", what="stopped")
    st2 = state(run_kago, cid)
    assert st2["pid"] == 0 and st2["created"] == st["created"]
    run_kago("delete", cid)
    assert not (state_root / cid).exists()
    r = run_kago("state", cid, check=False)
    assert r.returncode == 1
    assert re.fullmatch(r'time="[-0-9T:Z+]+" level=error msg="container does not exist"',
                        one_line(r))
    out.close()
    assert_clean()


def test_state_json_matches_runc(run_kago, runc, bundle, cid, wait_until):
    """Same keys in the same order, same types, runc's layout (2-space indent,
    no trailing newline), for a created and for a stopped container."""
    b = bundle(["sleep", "60"], rootfs="shared")
    rid = runc.make_id()
    runc("create", "--bundle", b, rid)
    run_kago("create", "--bundle", b, cid)
    for phase in ("created", "stopped"):
        r_text = runc("state", rid).stdout
        k_text = run_kago("state", cid).stdout
        r, k = json.loads(r_text), json.loads(k_text)
        assert list(k) == list(r) == STATE_KEYS
        assert {key: type(v) for key, v in k.items()} == {key: type(v) for key, v in r.items()}
        assert k["status"] == r["status"] == phase
        assert (k["bundle"], k["rootfs"], k["owner"]) == (r["bundle"], r["rootfs"], r["owner"])
        assert not k_text.endswith("\n") and not r_text.endswith("\n")
        assert k_text.splitlines()[1] == f'  "ociVersion": "{k["ociVersion"]}",'
        assert len(k_text.splitlines()) == len(r_text.splitlines())
        if phase == "created":
            assert k["pid"] > 0 and r["pid"] > 0
            runc("kill", rid, "KILL")
            run_kago("kill", cid, "KILL")
            wait_until(lambda: not alive(r["pid"]) and not alive(k["pid"]), what="both killed")
        else:
            assert k["pid"] == r["pid"] == 0
    runc("delete", rid)
    run_kago("delete", cid)


def test_run_detached_with_pid_file(run_kago, bundle, cid, tmp_path, wait_until):
    b = bundle("echo hello; exec sleep 60")
    out = open(tmp_path / "out", "w")
    t0 = time.monotonic()
    run_kago("run", "-d", "--pid-file", tmp_path / "p", "-b", b, cid, stdout=out, timeout=20)
    assert time.monotonic() - t0 < 10
    st = state(run_kago, cid)
    assert st["status"] == "running"
    assert (tmp_path / "p").read_text() == str(st["pid"])
    assert wait_until(lambda: text(tmp_path / "out")) == "hello\n"
    run_kago("delete", "--force", cid)
    out.close()


def test_create_relative_pid_file(run_kago, bundle, cid, tmp_path):
    """runc resolves --pid-file (and --bundle) against the current directory."""
    b = bundle(["sleep", "60"])
    (tmp_path / "sub").mkdir()
    run_kago("create", "-b", os.path.relpath(b, tmp_path / "sub"), "--pid-file", "rel.pid", cid,
             cwd=tmp_path / "sub")
    assert (tmp_path / "sub" / "rel.pid").read_text() == str(state(run_kago, cid)["pid"])
    assert state(run_kago, cid)["bundle"] == str(b)
    run_kago("delete", cid)


def test_start_twice_and_start_stopped(run_kago, bundle, cid, wait_until):
    run_kago("create", "-b", bundle(["sleep", "60"]), cid)
    run_kago("start", cid)
    r = run_kago("start", cid, check=False)
    assert r.returncode == 1
    assert one_line(r).endswith('level=error msg="cannot start an already running container"')
    assert state(run_kago, cid)["status"] == "running"
    run_kago("kill", cid, "9")
    wait_until(lambda: state(run_kago, cid)["status"] == "stopped", what="stopped")
    r = run_kago("start", cid, check=False)
    assert r.returncode == 1
    assert one_line(r).endswith('msg="cannot start a container that has stopped"')
    run_kago("delete", cid)


# ------------------------------------------------------------------- run (foreground)

def test_run_exit_code(run_kago, bundle, cid, state_root, assert_clean):
    r = run_kago("run", "-b", bundle("echo out; echo err >&2; exit 3"), cid, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    assert not (state_root / cid).exists()        # run deletes the container after
    assert_clean()


def test_run_killed_by_signal_exits_128_plus_n(kago_bin, run_kago, bundle, cid, state_root,
                                               tmp_path, wait_until, assert_clean):
    pf = tmp_path / "run.pid"
    p = subprocess.Popen([kago_bin, "--root", state_root, "run", "--pid-file", pf, "-b",
                          bundle(["sleep", "60"]), cid], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: (state_root / cid / "state.json").exists()
                   and state(run_kago, cid)["status"] == "running", what="running")
        assert pf.read_text() == str(state(run_kago, cid)["pid"])
        run_kago("kill", cid, "SIGKILL")
        assert p.wait(timeout=10) == 128 + signal.SIGKILL
    finally:
        p.kill()
        p.wait()
    assert not (state_root / cid).exists()
    assert_clean()


def test_run_forwards_signals(kago_bin, bundle, cid, state_root, tmp_path, wait_until,
                              assert_clean):
    b = bundle("trap 'echo usr1' USR1; trap 'echo term; exit 9' TERM; echo ready; "
               "while :; do sleep 0.05; done")
    out = open(tmp_path / "out", "w")
    p = subprocess.Popen([kago_bin, "--root", state_root, "run", "-b", b, cid],
                         stdin=subprocess.DEVNULL, stdout=out)
    try:
        wait_until(lambda: "ready" in text(tmp_path / "out"), what="the container's traps")
        os.kill(p.pid, signal.SIGUSR1)
        wait_until(lambda: "usr1" in text(tmp_path / "out"), what="USR1 forwarded")
        assert p.poll() is None                      # USR1 was handled: still running
        os.kill(p.pid, signal.SIGTERM)
        assert p.wait(timeout=10) == 9               # the container's trap decided
    finally:
        p.kill()
        p.wait()
        out.close()
    assert text(tmp_path / "out") == "ready\nusr1\nterm\n"
    assert not (state_root / cid).exists()
    assert_clean()


def test_run_keep(run_kago, bundle, cid, state_root):
    r = run_kago("run", "--keep", "-b", bundle("exit 4"), cid, check=False)
    assert r.returncode == 4
    st = state(run_kago, cid)
    assert (st["status"], st["pid"]) == ("stopped", 0)
    assert run_kago("list", "-q").stdout == f"{cid}\n"
    run_kago("delete", cid)
    assert not (state_root / cid).exists()


# ------------------------------------------------------------------------ kill

def test_kill_signal_forms(run_kago, bundle, cid, tmp_path, wait_until):
    nums = (10, 12, 15, 34, 37, 64)
    script = "".join(f"trap 'echo got {n}' {n}; " for n in nums)
    b = bundle(script + "echo ready; while :; do sleep 0.05; done")
    out = open(tmp_path / "out", "w")
    run_kago("run", "-d", "-b", b, cid, stdout=out)
    wait_until(lambda: "ready" in text(tmp_path / "out"), what="traps set")
    seen = {}
    for form, n in [("USR1", 10), ("SIGUSR1", 10), ("10", 10), ("sigusr2", 12), ("15", 15),
                    ("TERM", 15), (None, 15), ("RTMIN", 34), ("SIGRTMIN", 34), ("34", 34),
                    ("SIGRTMIN+3", 37), ("RTMIN+3", 37), ("RTMAX", 64), ("SIGRTMAX", 64)]:
        run_kago("kill", cid, *([form] if form else []))
        seen[n] = seen.get(n, 0) + 1
        wait_until(lambda: text(tmp_path / "out").count(f"got {n}\n") == seen[n],
                   timeout=5, what=f"signal {n} from `kill {form}`")
    r = run_kago("kill", cid, "NOPE", check=False)
    assert r.returncode == 1 and one_line(r).endswith(r'msg="unknown signal \"NOPE\""')
    assert state(run_kago, cid)["status"] == "running"
    run_kago("delete", "--force", cid)
    out.close()


@pytest.mark.parametrize("form", ["KILL", "SIGKILL", "9", "kill"])
def test_kill_kill_forms(run_kago, bundle, cid, wait_until, form):
    run_kago("run", "-d", "-b", bundle(["sleep", "60"]), cid)
    run_kago("kill", cid, form)
    wait_until(lambda: state(run_kago, cid)["status"] == "stopped", what="stopped")
    run_kago("delete", cid)


def test_kill_stopped(run_kago, bundle, cid, state_root, wait_until, assert_clean):
    """kill of a stopped container fails, but CRI's `kill --all ID 9` of one
    exits 0, and containerd's shim's `delete ID` + `delete --force ID` too."""
    run_kago("run", "-d", "-b", bundle(["sleep", "60"]), cid)
    run_kago("kill", cid, "9")
    wait_until(lambda: state(run_kago, cid)["status"] == "stopped", what="stopped")
    r = run_kago("kill", cid, "15", check=False)
    assert r.returncode == 1 and one_line(r).endswith('msg="container not running"')
    assert run_kago("kill", "--all", cid, "9").returncode == 0
    assert run_kago("kill", "-a", cid, "KILL").returncode == 0
    assert run_kago("delete", cid).returncode == 0
    assert run_kago("delete", "--force", cid).returncode == 0
    assert not (state_root / cid).exists()
    assert_clean()


def test_kill_all_reaches_every_process(run_kago, bundle, cid, tmp_path, wait_until):
    b = bundle("sleep 100 & sleep 101 & echo forked; wait")
    out = open(tmp_path / "out", "w")
    run_kago("run", "-d", "-b", b, cid, stdout=out)
    wait_until(lambda: "forked" in text(tmp_path / "out"), what="children")
    pid = state(run_kago, cid)["pid"]
    procs = wait_until(lambda: len(ns_pids(pid)) == 3 and ns_pids(pid), what="3 processes")
    run_kago("kill", "--all", cid, "KILL")
    wait_until(lambda: not any(alive(p) for p in procs), what="all processes killed")
    assert state(run_kago, cid)["status"] == "stopped"
    run_kago("delete", cid)
    out.close()


# ---------------------------------------------------------------------- delete

def test_delete_running_needs_force(run_kago, bundle, cid, state_root, tmp_path, wait_until,
                                    assert_clean):
    b = bundle("sleep 100 & sleep 101 & echo forked; wait")
    out = open(tmp_path / "out", "w")
    run_kago("run", "-d", "-b", b, cid, stdout=out)
    wait_until(lambda: "forked" in text(tmp_path / "out"), what="children")
    pid = state(run_kago, cid)["pid"]
    procs = wait_until(lambda: len(ns_pids(pid)) == 3 and ns_pids(pid), what="3 processes")
    r = run_kago("delete", cid, check=False)
    assert r.returncode == 1
    assert one_line(r).endswith(f'msg="cannot delete container {cid} that is not stopped: running"')
    assert state(run_kago, cid)["status"] == "running" and all(alive(p) for p in procs)
    run_kago("delete", "--force", cid)
    assert not any(alive(p) for p in procs)          # gone when delete returns
    assert not (state_root / cid).exists()
    out.close()
    assert_clean()


def test_delete_kills_orphans_without_pid_namespace(run_kago, bundle, cid, tmp_path,
                                                    state_root, wait_until, assert_clean):
    """No pid namespace: init's exit kills nothing, a forked child outlives it
    (status stopped); delete, without --force, must still kill it (cgroup)."""
    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
    out = open(tmp_path / "out", "w")
    run_kago("run", "-d", "-b", bundle("sleep 100 & echo $!; exec sleep 0.2", edit=edit), cid,
             stdout=out)
    init = state(run_kago, cid)["pid"]
    child = int(wait_until(lambda: text(tmp_path / "out").strip(), what="child pid"))
    assert child > 1 and alive(child)              # a host pid: no pid namespace
    wait_until(lambda: state(run_kago, cid)["status"] == "stopped", what="init exited")
    assert not alive(init) and alive(child)
    run_kago("delete", cid)
    assert not alive(child)
    assert not (state_root / cid).exists()
    out.close()
    assert_clean()


def test_delete_created(run_kago, bundle, cid, state_root, assert_clean):
    run_kago("create", "-b", bundle(["sleep", "60"]), cid)
    pid = state(run_kago, cid)["pid"]
    run_kago("delete", cid)
    assert not alive(pid)
    assert not (state_root / cid).exists()
    assert_clean()


def test_kill_created_container_with_sigterm(run_kago, runc, bundle, cid, wait_until):
    """`kill ID` (SIGTERM) ends a created container, as it ends runc's (CRI's
    StopContainer sends SIGTERM first); a signal it would ignore does not."""
    b = bundle(["sleep", "60"], rootfs="shared")
    rid = runc.make_id()
    runc("create", "-b", b, rid)
    run_kago("create", "-b", b, cid)
    for tool, i in ((runc, rid), (run_kago, cid)):
        tool("kill", i, "USR1")
        time.sleep(0.2)
        assert json.loads(tool("state", i).stdout)["status"] == "created", tool
        tool("kill", i)
        wait_until(lambda: json.loads(tool("state", i).stdout)["status"] == "stopped",
                   timeout=5, what=f"{i} stopped by SIGTERM")
    r = run_kago("start", cid, check=False)
    assert r.returncode == 1 and one_line(r).endswith('msg="cannot start a container that has stopped"')
    runc("delete", rid)
    run_kago("delete", cid)


def test_reused_pid_is_not_the_container(run_kago, bundle, cid, state_root, assert_clean):
    """state.json's pid is alive, but its start time is not the init's: a pid
    reused by another process must not be taken for the container."""
    run_kago("run", "-d", "-b", bundle(["sleep", "60"]), cid)
    path = state_root / cid / "state.json"
    data = json.loads(path.read_text())
    pid = data["pid"]
    data["start_time"] = int(data["start_time"]) - 1
    path.write_text(json.dumps(data))
    st = state(run_kago, cid)
    assert (st["status"], st["pid"]) == ("stopped", 0)
    assert alive(pid)
    r = run_kago("kill", cid, "KILL", check=False)
    assert r.returncode == 1 and one_line(r).endswith('msg="container not running"')
    assert alive(pid)                 # kill did not signal the "other" process
    assert "stopped" in run_kago("list").stdout.splitlines()[1].split()
    run_kago("delete", cid)           # stopped: no --force needed; its cgroup is emptied
    assert not (state_root / cid).exists()
    assert_clean()


def test_default_cgroup_parent_goes_with_the_last_container(run_kago, bundle, make_cid):
    """Without linux.cgroupsPath the cgroup is /kago/<id> in every hierarchy;
    the shared ``kago`` parent is removed once its last container is deleted,
    and kept while another one still lives in it."""
    parent = "/sys/fs/cgroup/pids/kago"
    if os.path.isdir(parent) and any(e.is_dir() for e in os.scandir(parent)):
        pytest.skip("other kago containers already live under /kago on this host")
    b = bundle(["sleep", "100"], edit=lambda c: c["linux"].pop("cgroupsPath", None))
    one, two = make_cid(), make_cid()
    run_kago("run", "-d", "--bundle", b, one)
    run_kago("run", "-d", "--bundle", b, two)
    assert os.path.isdir(f"{parent}/{one}") and os.path.isdir(f"{parent}/{two}")
    run_kago("delete", "--force", one)
    assert not os.path.exists(f"{parent}/{one}")
    assert os.path.isdir(f"{parent}/{two}")         # the parent stays for `two`
    run_kago("delete", "--force", two)
    for h in os.listdir("/sys/fs/cgroup"):
        assert not os.path.exists(f"/sys/fs/cgroup/{h}/kago"), h
