"""checkpoint and restore through CRIU (issue 15).

criu 3.17 does not work on the build host's kernel (6.18), but it does inside
../shared/cgv2's VM (Debian's 6.1): the tests marked ``criu`` run there
(scripts/test.sh runs ``-m "cgroupv2 or criu"`` in the VM) and skip on a host
where ``criu check`` fails.  The flag checks (a bad --parent-path, ...) need
no criu and run everywhere: they must refuse before criu runs.

Each container counts in a file of its rootfs (``/cnt``, one number a line,
from a shell variable): a restored container goes on from where it was - the
numbers are consecutive, never starting over at 0.
"""

import json
import os
import select
import socket
import subprocess
import time

import pytest

SLOW = 15 if os.environ.get("KAGO_SLOW_HOST") else 1
RW = {"root": {"readonly": False}}
COUNT = "i=0; while true; do echo $i >> /cnt; i=$((i+1)); sleep 0.2; done"
_CRIU = {}


def criu_works():
    """(works, why) - ``criu check`` once per session."""
    if "v" not in _CRIU:
        try:
            p = subprocess.run(["criu", "check"], capture_output=True, text=True, timeout=120)
            ok = p.returncode == 0
            why = "" if ok else "criu does not work on this kernel: " + \
                (p.stderr.strip().splitlines() or ["criu check failed"])[-1]
        except FileNotFoundError:
            ok, why = False, "criu is not installed (scripts/setup.sh installs it)"
        _CRIU["v"] = (ok, why)
    return _CRIU["v"]


@pytest.fixture
def criu():
    ok, why = criu_works()
    if not ok:
        pytest.skip(why)


def counts(b):
    try:
        with open(b / "rootfs" / "cnt") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def wait_counts(wait_until, b, n):
    return wait_until(lambda: len(counts(b)) >= n and counts(b), timeout=20 * SLOW,
                      what=f"{n} counts")


def state(run_kago, cid):
    return json.loads(run_kago("state", cid).stdout)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in "ZX"
    except FileNotFoundError:
        return False


def start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def run_counter(run_kago, bundle, cid, args=COUNT, **kw):
    b = bundle(args, **RW, **kw)
    # stdio on /dev/null (the container's own, once init reopened it): criu
    # can't dump a descriptor of a file on a mount outside the container
    run_kago("run", "-d", "--bundle", b, cid, stdout=subprocess.DEVNULL,
             stderr=subprocess.DEVNULL)
    return b


def check_restored(run_kago, state_root, cid):
    """The state dir says running with the restored init's pid and start time,
    and that process is in the container's cgroup."""
    st = state(run_kago, cid)
    assert st["status"] == "running"
    pid = st["pid"]
    assert alive(pid)
    with open(os.path.join(state_root, cid, "state.json")) as f:
        raw = json.load(f)
    assert raw["pid"] == pid and raw["start_time"] == start_time(pid)
    with open(f"/proc/{pid}/cgroup") as f:
        cg = f.read()
    assert raw["cgroup_path"] in cg, cg
    return pid


def consecutive(seq):
    return seq == list(range(seq[0], seq[0] + len(seq)))


# ------------------------------------------------------------- dump / restore

@pytest.mark.criu
def test_checkpoint_restore_keeps_counting(criu, bundle, run_kago, cid, state_root, tmp_path,
                                           wait_until, assert_clean):
    b = run_counter(run_kago, bundle, cid)
    old = state(run_kago, cid)["pid"]
    wait_counts(wait_until, b, 3)
    img = tmp_path / "img"
    run_kago("checkpoint", "--image-path", img, cid, timeout=120 * SLOW)
    # criu killed it and kago deleted it, as runc does
    assert not alive(old)
    assert run_kago("state", cid, check=False).returncode == 1
    assert not (state_root / cid).exists()
    dumped = counts(b)
    time.sleep(0.5 * SLOW)
    assert counts(b) == dumped, "the container counted on after its checkpoint"
    assert (img / "inventory.img").is_file() and (img / "descriptors.json").is_file()

    run_kago("restore", "-d", "--image-path", img, "--bundle", b, cid,
             timeout=120 * SLOW)
    check_restored(run_kago, state_root, cid)
    wait_counts(wait_until, b, len(dumped) + 3)
    seq = counts(b)
    # one count sequence from 0: the shell's variable came back from the image
    assert seq[0] == 0 and consecutive(seq), seq
    run_kago("delete", "--force", cid)
    assert_clean()


@pytest.mark.criu
def test_checkpoint_leave_running(criu, bundle, run_kago, cid, state_root, tmp_path,
                                  wait_until, assert_clean):
    b = run_counter(run_kago, bundle, cid)
    pid = state(run_kago, cid)["pid"]
    wait_counts(wait_until, b, 3)
    before = len(counts(b))
    img = tmp_path / "img"
    run_kago("checkpoint", "--leave-running", "--image-path", img, cid, timeout=120 * SLOW)
    after = len(counts(b))
    st = state(run_kago, cid)
    assert st["status"] == "running" and st["pid"] == pid and alive(pid)
    wait_counts(wait_until, b, after + 3)           # still counting
    run_kago("delete", "--force", cid)
    assert not alive(pid)
    # the image is a whole one: restore it, and it counts on from the dump
    n = len(counts(b))
    run_kago("restore", "-d", "--image-path", img, "--bundle", b, cid,
             timeout=120 * SLOW)
    check_restored(run_kago, state_root, cid)
    wait_counts(wait_until, b, n + 3)
    resumed = counts(b)[n]
    assert before <= resumed <= after + 1, (before, resumed, after)
    assert consecutive(counts(b)[n:])
    run_kago("delete", "--force", cid)
    assert_clean()


@pytest.mark.criu
def test_restore_under_new_id(criu, bundle, run_kago, make_cid, state_root, tmp_path,
                              wait_until, assert_clean):
    old_id, new_id = make_cid(), make_cid()
    b = run_counter(run_kago, bundle, old_id)
    wait_counts(wait_until, b, 3)
    img = tmp_path / "img"
    run_kago("checkpoint", "--image-path", img, old_id, timeout=120 * SLOW)
    n = len(counts(b))
    pid_file = tmp_path / "restored.pid"
    run_kago("restore", "--detach", "--image-path", img, "--bundle", b,
             "--pid-file", pid_file, new_id, timeout=120 * SLOW)
    pid = check_restored(run_kago, state_root, new_id)
    assert int(pid_file.read_text()) == pid
    with open(f"/proc/{pid}/cgroup") as f:
        cg = f.read()
    assert new_id in cg and old_id not in cg, cg
    assert run_kago("state", old_id, check=False).returncode == 1
    ids = run_kago("list", "-q").stdout.split()
    assert ids == [new_id]
    wait_counts(wait_until, b, n + 3)
    assert consecutive(counts(b))
    run_kago("delete", "--force", new_id)
    assert_clean()


@pytest.mark.criu
def test_pre_dump_then_dump(criu, bundle, run_kago, cid, state_root, tmp_path, wait_until,
                            assert_clean):
    b = run_counter(run_kago, bundle, cid)
    pid = state(run_kago, cid)["pid"]
    wait_counts(wait_until, b, 3)
    img = tmp_path / "img"
    run_kago("checkpoint", "--pre-dump", "--image-path", img / "pre", cid, timeout=120 * SLOW)
    # a pre-dump leaves it running
    assert state(run_kago, cid)["pid"] == pid and alive(pid)
    assert (img / "pre" / "pagemap-1.img").is_file() or list((img / "pre").glob("pagemap-*"))
    n = len(counts(b))
    wait_counts(wait_until, b, n + 2)
    run_kago("checkpoint", "--image-path", img / "final", "--parent-path", "../pre", cid,
             timeout=120 * SLOW)
    assert not alive(pid)
    assert os.readlink(img / "final" / "parent") == "../pre"   # criu linked the pre-dump
    n = len(counts(b))
    run_kago("restore", "-d", "--image-path", img / "final", "--bundle", b, cid,
             timeout=120 * SLOW)
    check_restored(run_kago, state_root, cid)
    wait_counts(wait_until, b, n + 3)
    assert counts(b)[0] == 0 and consecutive(counts(b))
    run_kago("delete", "--force", cid)
    assert_clean()


# ------------------------------------------------------------------- terminal

class ConsoleSocket:
    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.fds = []

    def receive(self, timeout=60):
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
        self.fds += fds
        assert len(fds) == 1, fds
        return fds[0]

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.sock.close()


def read_until(fd, text, timeout):
    out = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in out:
        left = deadline - time.monotonic()
        assert left > 0, f"{text!r} never came through the pty; got {out!r}"
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            assert data, f"the pty closed; got {out!r}"
            out += data
    return out.decode(errors="replace")


@pytest.mark.criu
def test_checkpoint_restore_terminal(criu, bundle, run_kago, cid, state_root, tmp_path,
                                     assert_clean):
    b = bundle("n=0; while read l; do n=$((n+1)); echo \"got:$n:$l\"; done",
               process={"terminal": True}, **RW)
    s1 = ConsoleSocket(tmp_path / "c1.sock")
    s2 = ConsoleSocket(tmp_path / "c2.sock")
    try:
        run_kago("run", "-d", "--console-socket", s1.path, "--bundle", b, cid)
        m1 = s1.receive()
        os.write(m1, b"one\n")
        read_until(m1, "got:1:one", 20 * SLOW)
        run_kago("checkpoint", "--image-path", tmp_path / "img", cid, timeout=120 * SLOW)
        run_kago("restore", "-d", "--console-socket", s2.path, "--image-path",
                 tmp_path / "img", "--bundle", b, cid, timeout=120 * SLOW)
        pid = check_restored(run_kago, state_root, cid)
        m2 = s2.receive()
        os.write(m2, b"two\n")
        # the shell's counter came back too: this is its second line
        read_until(m2, "got:2:two", 20 * SLOW)
        # the restored shell's terminal is the new pty
        assert os.readlink(f"/proc/{pid}/fd/0").startswith("/dev/pts/")
        run_kago("delete", "--force", cid)
    finally:
        s1.close()
        s2.close()
    assert_clean()


# ------------------------------------------------------------------------ TCP

# the server's stdin never ends (busybox nc quits at its EOF); the client
# connects once the server listens (port 5000 = 0x1388, state 0A = LISTEN;
# busybox listens on IPv6's ::, dual stack)
SERVER = ("sleep 100000 | nc -l -p 5000 > /srv.out & "
          "until grep -qE ':1388 0+:0000 0A' /proc/net/tcp /proc/net/tcp6; do sleep 0.1; done; "
          "i=0; while true; do echo $i; i=$((i+1)); sleep 0.2; done | nc 127.0.0.1 5000")


def srv_counts(b):
    try:
        with open(b / "rootfs" / "srv.out") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


@pytest.mark.criu
def test_tcp_established(criu, bundle, run_kago, cid, state_root, tmp_path, wait_until,
                         assert_clean):
    b = run_counter(run_kago, bundle, cid, SERVER)      # its own network namespace
    pid = state(run_kago, cid)["pid"]
    wait_until(lambda: len(srv_counts(b)) >= 3, timeout=15 * SLOW, what="TCP traffic")
    # an established connection is refused without the flag, and left running
    r = run_kago("checkpoint", "--image-path", tmp_path / "no", cid, check=False,
                 timeout=120 * SLOW)
    assert r.returncode == 1 and "criu failed" in r.stderr, r.stderr
    assert state(run_kago, cid)["pid"] == pid and alive(pid)
    img = tmp_path / "img"
    run_kago("checkpoint", "--tcp-established", "--image-path", img, cid, timeout=120 * SLOW)
    assert not alive(pid)
    n = len(srv_counts(b))
    run_kago("restore", "-d", "--tcp-established", "--image-path", img, "--bundle", b, cid,
             timeout=120 * SLOW)
    check_restored(run_kago, state_root, cid)
    # the same connection carries on: both ends came back
    wait_until(lambda: len(srv_counts(b)) >= n + 3, timeout=15 * SLOW,
               what="TCP traffic after restore")
    seq = srv_counts(b)
    assert seq[0] == 0 and consecutive(seq), seq
    run_kago("delete", "--force", cid)
    assert_clean()


# ------------------------------------------------- flags, checked before criu

@pytest.mark.parametrize("args, message", [
    (["--parent-path", "/abs"], "--parent-path must be relative"),
    (["--parent-path", "missing"], "invalid --parent-path: stat "),
    (["--parent-path", "afile"], "not a directory"),
    (["--manage-cgroups-mode", "bogus"], "Invalid manage cgroups mode"),
    (["--empty-ns", "pid"], "namespace 'pid' is not supported"),
    (["--page-server", "nohost"], "Use --page-server ADDRESS:PORT"),
    (["--page-server", "1.2.3.4:x"], "Invalid port number"),
])
def test_checkpoint_bad_flags_refused_first(args, message, bundle, run_kago, cid, tmp_path,
                                            assert_clean):
    b = bundle("sleep 1000")
    run_kago("run", "-d", "--bundle", b, cid)
    pid = state(run_kago, cid)["pid"]
    img = tmp_path / "img"
    img.mkdir()
    (img / "afile").write_text("")
    # a --criu that would fail loudly if it ran: the flags are refused before
    r = run_kago("--criu", "/nonexistent/criu", "checkpoint", "--image-path", img, *args, cid,
                 check=False)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert sorted(os.listdir(img)) == ["afile"]
    assert state(run_kago, cid)["pid"] == pid and alive(pid)
    run_kago("delete", "--force", cid)
    assert_clean()


def test_checkpoint_not_running(bundle, run_kago, cid, tmp_path, assert_clean):
    run_kago("create", "--bundle", bundle("true"), cid)
    r = run_kago("checkpoint", "--image-path", tmp_path / "img", cid, check=False)
    assert r.returncode == 1 and "container not running" in r.stderr, r.stderr
    run_kago("delete", "--force", cid)
    assert_clean()


@pytest.mark.parametrize("args, message", [
    (["--image-path", "/nonexistent/img"], "invalid --image-path"),
    (["--manage-cgroups-mode", "x"], "Invalid manage cgroups mode"),
    (["--empty-ns", "mount"], "namespace 'mount' is not supported"),
])
def test_restore_bad_flags_make_nothing(args, message, bundle, run_kago, cid, state_root,
                                        assert_clean):
    b = bundle("true")
    r = run_kago("--criu", "/nonexistent/criu", "restore", "--bundle", b, *args, cid,
                 check=False)
    assert r.returncode == 1 and message in r.stderr, r.stderr
    assert not (state_root / cid).exists()
    assert_clean()


# ---------------------------------------------------------------------- hooks

@pytest.mark.criu
def test_restore_runs_prestart_hooks(criu, bundle, run_kago, cid, state_root, tmp_path,
                                     wait_until, assert_clean):
    """As runc: prestart and createRuntime run once criu has set the namespaces
    up, with the restored init's pid (not the old one) in their state."""
    out = tmp_path / "hooks"
    out.mkdir()
    hooks = {k: [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {out}/{k}.json"]}]
             for k in ("prestart", "createRuntime")}
    b = run_counter(run_kago, bundle, cid, hooks=hooks)
    old = state(run_kago, cid)["pid"]
    wait_counts(wait_until, b, 3)
    for f in out.iterdir():
        f.unlink()
    run_kago("checkpoint", "--image-path", tmp_path / "img", cid, timeout=120 * SLOW)
    assert not list(out.iterdir())
    run_kago("restore", "-d", "--image-path", tmp_path / "img", "--bundle", b, cid,
             timeout=120 * SLOW)
    pid = check_restored(run_kago, state_root, cid)
    for k in ("prestart", "createRuntime"):
        st = json.loads((out / f"{k}.json").read_text())
        assert st["id"] == cid and st["pid"] == pid != old, st
    run_kago("delete", "--force", cid)
    assert_clean()


@pytest.mark.criu
def test_restore_foreground_waits(criu, bundle, run_kago, cid, state_root, tmp_path,
                                  wait_until, assert_clean):
    """Without -d, restore waits for the restored container (kago's child
    through --restore-sibling), exits with its status and deletes it, as runc."""
    b = run_counter(run_kago, bundle, cid,
                    "i=0; while [ $i -lt 30 ]; do echo $i >> /cnt; i=$((i+1)); sleep 0.2; done; "
                    "exit 7")
    wait_counts(wait_until, b, 3)
    run_kago("checkpoint", "--image-path", tmp_path / "img", cid, timeout=120 * SLOW)
    assert len(counts(b)) < 30
    r = run_kago("restore", "--image-path", tmp_path / "img", "--bundle", b, cid,
                 check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                 timeout=120 * SLOW)
    assert r.returncode == 7
    assert counts(b) == list(range(30))
    assert not (state_root / cid).exists()
    assert_clean()


def test_host_dev_null_stdio_reopened_in_container(bundle, run_kago, cid, wait_until,
                                                   assert_clean):
    """runc's reOpenDevNull: stdio that is the host's /dev/null becomes the
    container's own (a descriptor on a host mount is one criu can't dump);
    other stdio (a file) is left as it is."""
    b = bundle("sleep 1000")
    with open(os.devnull, "w") as null:
        run_kago("run", "-d", "--bundle", b, cid, stdout=null)
    pid = state(run_kago, cid)["pid"]
    host = os.stat("/dev/null")
    inside = os.stat(f"/proc/{pid}/root/dev/null")
    assert (inside.st_dev, inside.st_ino) != (host.st_dev, host.st_ino)
    for fd in (0, 1):
        st = os.stat(f"/proc/{pid}/fd/{fd}")
        assert (st.st_dev, st.st_ino) == (inside.st_dev, inside.st_ino), fd
    # stderr: run_kago's temporary file, not /dev/null: untouched
    assert os.readlink(f"/proc/{pid}/fd/2").startswith("/tmp/")
    run_kago("delete", "--force", cid)
    assert_clean()


@pytest.mark.criu
def test_joined_network_namespace_is_external(criu, bundle, run_kago, cid, state_root,
                                              tmp_path, wait_until, assert_clean):
    """A network namespace joined by path is not the container's to dump: it
    is external (runc: extRootNetNS), and the restored container is back in it."""
    name = f"kago-ck-{os.getpid()}-{cid[-8:]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        path = f"/run/netns/{name}"

        def join(cfg):
            for n in cfg["linux"]["namespaces"]:
                if n["type"] == "network":
                    n["path"] = path

        b = run_counter(run_kago, bundle, cid, edit=join)
        wait_counts(wait_until, b, 3)
        img = tmp_path / "img"
        run_kago("checkpoint", "--image-path", img, cid, timeout=120 * SLOW)
        assert json.loads((img / "kago-checkpoint.json").read_text())["network"] == \
            "extRootNetNS"
        n = len(counts(b))
        run_kago("restore", "-d", "--image-path", img, "--bundle", b, cid, timeout=120 * SLOW)
        pid = check_restored(run_kago, state_root, cid)
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(path).st_ino
        wait_counts(wait_until, b, n + 3)
        assert consecutive(counts(b))
        run_kago("delete", "--force", cid)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    assert_clean()
