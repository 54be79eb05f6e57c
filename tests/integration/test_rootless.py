"""kago as an ordinary user (issue 14, "Rootless").

Every test runs the installed launcher as the unprivileged user ``kagotest``
(made by scripts/setup.sh with /etc/subuid and /etc/subgid ranges) through
``setpriv``, in a work directory under /tmp the user can reach (root's
/tmp/pytest-of-root is 0700; in the cgroup-v2 VM /tmp is a tmpfs of its own,
where the user can make the exec.fifo: mkfifo on the host's 9p share fails).  The bundle is what ``kago spec --rootless`` writes (as the
user) with a busybox rootfs owned by the user.  After each test nothing of
the user's may be left: no process whose root or cwd is in the work
directory, no state under $XDG_RUNTIME_DIR/kago, no cgroup named after a
container (the shared tracker's checks).

On this host (cgroup v1, nothing delegated) containers run without a cgroup
of their own; the ``cgroupv2`` test runs in ../shared/cgv2's VM, where a
subtree is delegated to the user as systemd does (chowned), and checks that
a memory limit holds there and that pause/resume work.
"""

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from kago import cgroups

USER = "kagotest"
V2 = cgroups.is_v2_host()
SLOW = 15 if os.environ.get("KAGO_SLOW_HOST") else 1


def _user():
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pytest.skip(f"no user {USER}: scripts/setup.sh creates it (with subuid ranges)")


def _subids(path, name):
    try:
        with open(path) as f:
            for line in f:
                f_ = line.strip().split(":")
                if len(f_) == 3 and f_[0] == name:
                    return int(f_[1]), int(f_[2])
    except OSError:
        pass
    return None


class Rootless:
    """The user's side of one test: a work dir, $XDG_RUNTIME_DIR, bundles,
    and ``kago(...)`` run as the user."""

    def __init__(self, kago_bin, template, tracker):
        self.pw = _user()
        self.uid, self.gid = self.pw.pw_uid, self.pw.pw_gid
        self.kago_bin = kago_bin
        self.template = template
        self.work = Path(tempfile.mkdtemp(prefix="kago-rl-", dir="/tmp"))
        os.chmod(self.work, 0o755)
        os.chown(self.work, self.uid, self.gid)
        self.xdg = self.work / "xdg"
        self.xdg.mkdir(mode=0o700)
        os.chown(self.xdg, self.uid, self.gid)
        self.root = self.xdg / "kago"
        self.n = 0
        tracker.bundles.append(str(self.work))
        tracker.roots.append(str(self.root))
        tracker.kago_bin = kago_bin

    def env(self, **extra):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "XDG_RUNTIME_DIR": str(self.xdg), "USER": USER, "LOGNAME": USER,
               "HOME": str(self.work)}
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def as_user(self, argv, *, env=None, check=True, timeout=60, cwd=None, prefix=()):
        cmd = list(prefix) + ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                              "--init-groups", "--"] + [str(a) for a in argv]
        # output through files: a detached container keeps its stdio open
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(cmd, cwd=cwd or self.work, env=env or self.env(),
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True,
                               timeout=timeout)
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read(), err.read()
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}\nexit {p.returncode}\n--- stdout\n"
                                 f"{p.stdout}--- stderr\n{p.stderr}")
        return p

    def kago(self, *args, **kw):
        return self.as_user([self.kago_bin, *args], **kw)

    def bundle(self, args, *, subids=False, edit=None):
        """A bundle of `kago spec --rootless` (run as the user); ``subids``:
        container ids 1..65536 on the user's /etc/subuid range as well."""
        d = self.work / f"b{self.n}"
        self.n += 1
        d.mkdir()
        subprocess.run(["cp", "-a", str(self.template / "rootfs"), str(d / "rootfs")],
                       check=True)
        os.chown(d, self.uid, self.gid)
        self.as_user([self.kago_bin, "spec", "--rootless"], cwd=d)
        cfg = json.loads((d / "config.json").read_text())
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = ["sh", "-c", args] if isinstance(args, str) else list(args)
        cfg["hostname"] = "rootless"
        if subids:
            su, sg = _subids("/etc/subuid", USER), _subids("/etc/subgid", USER)
            if not su or not sg:
                pytest.skip(f"no /etc/subuid or /etc/subgid range for {USER}")
            cfg["linux"]["uidMappings"] = [
                {"containerID": 0, "hostID": self.uid, "size": 1},
                {"containerID": 1, "hostID": su[0], "size": min(su[1], 65536)}]
            cfg["linux"]["gidMappings"] = [
                {"containerID": 0, "hostID": self.gid, "size": 1},
                {"containerID": 1, "hostID": sg[0], "size": min(sg[1], 65536)}]
        if edit:
            edit(cfg)
        (d / "config.json").write_text(json.dumps(cfg, indent=1))
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(d)], check=True)
        return d

    def user_procs(self):
        """The user's processes (its uid or its subuid range) whose root or
        cwd is in this test's work dir."""
        su = _subids("/etc/subuid", USER) or (0, 0)
        out = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/status") as f:
                    uid = int(next(ln for ln in f if ln.startswith("Uid:")).split()[1])
                if not (uid == self.uid or su[0] <= uid < su[0] + su[1]):
                    continue
                where = [os.readlink(f"/proc/{name}/{w}") for w in ("root", "cwd")]
            except (OSError, StopIteration, ValueError):
                continue
            if any(w == str(self.work) or w.startswith(str(self.work) + "/") for w in where):
                out.append(int(name))
        return out

    def finish(self):
        problems = []
        for e in sorted(os.listdir(self.root)) if self.root.is_dir() else ():
            problems.append(f"state dir {self.root}/{e}")
            self.kago("delete", "--force", e, check=False)
        deadline = time.monotonic() + 3
        while self.user_procs() and time.monotonic() < deadline:
            time.sleep(0.05)
        for p in self.user_procs():
            problems.append(f"process {p} of {USER}")
            try:
                os.kill(p, 9)
            except OSError:
                pass
        return problems


@pytest.fixture
def rl(kago_bin, bundle_template, _kago_tracker):
    r = Rootless(kago_bin, bundle_template, _kago_tracker)
    yield r
    problems = r.finish()
    assert not problems, "left behind by the user:\n  " + "\n  ".join(problems)


def _status(path):
    with open(path) as f:
        return {ln.split(":")[0]: ln.split(":", 1)[1].split() for ln in f if ":" in ln}


def _own_cgroups(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        return sorted(f.read().splitlines())


# --------------------------------------------------------------- state root

def test_state_root_is_xdg_runtime_dir(rl, cid):
    """No --root: $XDG_RUNTIME_DIR/kago, made 0700 + sticky (runc); list and
    delete find the container there; no /run/kago is touched."""
    b = rl.bundle("sleep 30")
    rl.kago("run", "-d", "--bundle", b, cid)
    st = os.stat(rl.root)
    assert st.st_uid == rl.uid and (st.st_mode & 0o7777) == 0o1700, oct(st.st_mode)
    assert (rl.root / cid / "state.json").is_file()
    out = rl.kago("list", "--format", "json").stdout
    assert [c["id"] for c in json.loads(out)] == [cid]
    assert json.loads(out)[0]["owner"] == USER
    rl.kago("delete", "--force", cid)
    assert os.listdir(rl.root) == []


def test_no_xdg_runtime_dir_is_an_error_naming_it(rl, cid):
    b = rl.bundle("true")
    for argv in (["run", "--bundle", b, cid], ["list"], ["state", cid]):
        p = rl.kago(*argv, env=rl.env(XDG_RUNTIME_DIR=None), check=False)
        assert p.returncode == 1, p
        assert "XDG_RUNTIME_DIR is not set" in p.stderr and "--root" in p.stderr, p.stderr
    assert not rl.root.exists()
    # --root still works without it; spec needs no state at all
    root = rl.work / "root"
    p = rl.kago("--root", root, "run", "--bundle", b, cid, env=rl.env(XDG_RUNTIME_DIR=None))
    assert p.returncode == 0 and os.listdir(root) == []


def test_real_root_ignores_xdg_root_in_userns_honours_it(kago_bin, tmp_path):
    """runc's shouldHonorXDGRuntimeDir: the host's root keeps /run/kago even
    with $XDG_RUNTIME_DIR set; root in a user namespace (unshare -r: the
    parent's ids are not all mapped) uses $XDG_RUNTIME_DIR/kago."""
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(xdg), "USER": "someone"}
    p = subprocess.run([kago_bin, "list", "-q"], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert not (xdg / "kago").exists()
    p = subprocess.run(["unshare", "--user", "--map-root-user", kago_bin, "list", "-q"],
                       env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (xdg / "kago").is_dir()
    env["USER"] = "root"        # runc: root in a user namespace with USER=root
    shutil.rmtree(xdg / "kago")
    subprocess.run(["unshare", "--user", "--map-root-user", kago_bin, "list", "-q"],
                   env=env, capture_output=True, text=True)
    assert not (xdg / "kago").exists()


# ------------------------------------------------------- --rootless, cgroups

def test_rootless_flag_values(rl, cid):
    b = rl.bundle("true")
    p = rl.kago("--rootless", "maybe", "run", "--bundle", b, cid, check=False)
    assert p.returncode == 1
    assert 'kago run failed: strconv.ParseBool: parsing \\"maybe\\": invalid syntax' \
        in p.stderr, p.stderr
    # false: cgroup permission errors are errors again (runc's words differ:
    # kago names the cgroup it tried)
    p = rl.kago("--rootless", "false", "run", "--bundle", b, cid, check=False)
    assert p.returncode == 1 and "Permission denied" in p.stderr, p.stderr
    assert "create cgroup /sys/fs/cgroup/" in p.stderr
    for v in ("true", "auto", "1", "t"):
        rl.kago("--rootless", v, "run", "--bundle", b, cid)
    assert os.listdir(rl.root) == []


@pytest.mark.skipif(V2, reason="the v1 host's behaviour (nothing writable); v2: "
                               "test_v2_not_delegated")
def test_no_writable_cgroup_runs_without_one(rl, cid):
    """Nothing writable (this v1 host): the container stays in the caller's
    cgroups; limits are runc's error; an explicit cgroupsPath is an error;
    pause is runc's error, resume says it is not paused."""
    # /sys/fs/cgroup inside: the caller's own cgroups bound (runc), where
    # init is (pid 1 listed), never a whole host hierarchy
    b = rl.bundle("for h in memory pids cpu; do grep -qx 1 /sys/fs/cgroup/$h/cgroup.procs "
                  "|| echo missing $h; done; echo checked")
    assert rl.kago("run", "--bundle", b, cid).stdout.split() == ["checked"]
    b = rl.bundle("sleep 30")
    rl.kago("run", "-d", "--bundle", b, cid)
    pid = json.loads(rl.kago("state", cid).stdout)["pid"]
    caller = _own_cgroups(os.getpid())     # setpriv does not move: the same cgroups
    assert _own_cgroups(pid) == caller
    assert not any(cid in line for line in _own_cgroups(pid))
    p = rl.kago("pause", cid, check=False)
    assert p.returncode == 1
    assert "cannot toggle freezer: cgroups not configured for container" in p.stderr
    assert json.loads(rl.kago("state", cid).stdout)["status"] == "running"
    p = rl.kago("resume", cid, check=False)
    assert p.returncode == 1 and "container not paused" in p.stderr
    p = rl.kago("update", "--memory", "100M", cid, check=False)
    assert p.returncode == 1
    assert "cannot set memory limit: container could not join or create cgroup" in p.stderr
    rl.kago("delete", "--force", cid)

    b2 = rl.bundle("true", edit=lambda c: c["linux"].update(
        resources={"memory": {"limit": 100 << 20}}))
    p = rl.kago("run", "--bundle", b2, cid, check=False)
    assert p.returncode == 1
    assert ("kago run failed: cannot set memory limit: container could not join or "
            "create cgroup") in p.stderr, p.stderr
    b3 = rl.bundle("true", edit=lambda c: c["linux"].update(cgroupsPath=f"/{cid}"))
    p = rl.kago("run", "--bundle", b3, cid, check=False)
    assert p.returncode == 1 and "Permission denied" in p.stderr, p.stderr
    assert os.listdir(rl.root) == []


# ------------------------------------------------------------ user namespace

def test_own_ids_mapped_directly(rl, cid):
    """One uid and one gid, the caller's own: written directly, setgroups
    "deny" first; container root is the user on the host."""
    b = rl.bundle("id -u; id -g; cat /proc/self/setgroups; cat /proc/self/uid_map; sleep 30")
    out = rl.work / "out"
    rl.as_user(["sh", "-c", f'"$@" > {out} 2>&1', "sh", rl.kago_bin, "run", "-d",
                "--bundle", b, cid])
    pid = json.loads(rl.kago("state", cid).stdout)["pid"]
    deadline = time.monotonic() + 10 * SLOW
    while "sleep" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace") \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    text = out.read_text().split()
    assert text[:3] == ["0", "0", "deny"], text
    assert text[3:6] == ["0", str(rl.uid), "1"], text
    st = _status(f"/proc/{pid}/status")
    assert st["Uid"] == [str(rl.uid)] * 4 and st["Gid"] == [str(rl.gid)] * 4
    # no capability over the host: CapEff is in the container's namespace only
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", str(rl.uid), "1"]
    rl.kago("delete", "--force", cid)


def test_subuid_ranges_through_newuidmap(rl, cid):
    """Container ids 1..65536 onto the user's /etc/subuid and /etc/subgid
    ranges: newuidmap/newgidmap (the uidmap package) write them; a process
    running as uid 1000 inside is subuid+999 on the host."""
    if not shutil.which("newuidmap"):
        pytest.skip("newuidmap missing: scripts/setup.sh installs the uidmap package")
    b = rl.bundle("cat /proc/self/uid_map /proc/self/gid_map; sleep 30", subids=True)
    rl.kago("run", "-d", "--bundle", b, cid)
    pid = json.loads(rl.kago("state", cid).stdout)["pid"]
    su, sg = _subids("/etc/subuid", USER), _subids("/etc/subgid", USER)
    with open(f"/proc/{pid}/uid_map") as f:
        assert [ln.split() for ln in f.read().splitlines()] == \
            [["0", str(rl.uid), "1"], ["1", str(su[0]), "65536"]]
    with open(f"/proc/{pid}/gid_map") as f:
        assert [ln.split() for ln in f.read().splitlines()] == \
            [["0", str(rl.gid), "1"], ["1", str(sg[0]), "65536"]]
    proc = {"args": ["sh", "-c", "id -u; id -g; sleep 20"], "cwd": "/",
            "user": {"uid": 1000, "gid": 1000}, "env": ["PATH=/bin"]}
    (rl.work / "proc.json").write_text(json.dumps(proc))
    os.chmod(rl.work / "proc.json", 0o644)
    p = rl.kago("exec", "-d", "--pid-file", rl.work / "exec.pid", "--process",
                rl.work / "proc.json", cid)
    assert p.returncode == 0, p
    epid = int((rl.work / "exec.pid").read_text())
    st = _status(f"/proc/{epid}/status")
    assert st["Uid"][0] == str(su[0] + 999) and st["Gid"][0] == str(sg[0] + 999), st
    rl.kago("delete", "--force", cid)


def test_rootless_needs_a_user_namespace(rl, cid):
    b = rl.bundle("true", edit=lambda c: c["linux"].update(
        namespaces=[n for n in c["linux"]["namespaces"] if n["type"] != "user"],
        uidMappings=None, gidMappings=None))
    p = rl.kago("run", "--bundle", b, cid, check=False)
    assert p.returncode == 1 and "rootless container requires user namespaces" in p.stderr
    b = rl.bundle("true", edit=lambda c: c["mounts"].append(
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["uid=5"]}))
    p = rl.kago("run", "--bundle", b, cid, check=False)
    assert p.returncode == 1
    assert "cannot specify uid= mount options for unmapped uid in rootless containers" \
        in p.stderr, p.stderr


# ------------------------------------------------------------------ the verbs

def test_every_verb_as_the_user(rl, cid):
    """create/start/state/list/exec/ps/events/kill/delete and run, as the
    user; ps and kill --all find the container's processes without a cgroup
    (its pid namespace)."""
    b = rl.bundle("sleep 60 & sleep 60; wait")
    rl.kago("create", "--bundle", b, cid)
    assert json.loads(rl.kago("state", cid).stdout)["status"] == "created"
    rl.kago("start", cid)
    st = json.loads(rl.kago("state", cid).stdout)
    assert st["status"] == "running"
    pid = st["pid"]
    assert _status(f"/proc/{pid}/status")["Uid"][0] == str(rl.uid)
    out = rl.kago("exec", cid, "sh", "-c", "echo $$ inside; hostname").stdout.split()
    assert out[1:] == ["inside", "rootless"], out
    pids = []
    deadline = time.monotonic() + 10 * SLOW
    while len(pids) < 3 and time.monotonic() < deadline:
        pids = json.loads(rl.kago("ps", "--format", "json", cid).stdout)
        time.sleep(0.05)
    assert pid in pids and len(pids) == 3, pids       # sh + two sleeps
    table = rl.kago("ps", cid).stdout
    assert "PID" in table.splitlines()[0] and \
        sum(ln.endswith(" sleep 60") for ln in table.splitlines()) == 2, table
    ev = json.loads(rl.kago("events", "--stats", cid).stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    # the stream too: a stats event every interval until stopped (here: killed by timeout)
    p = rl.as_user(["timeout", "-s", "KILL", str(2.5 * SLOW), rl.kago_bin, "events",
                    "--interval", "1s", cid], check=False)
    evs = [json.loads(ln) for ln in p.stdout.splitlines()]
    assert len(evs) >= 2 and all(e["type"] == "stats" and e["id"] == cid for e in evs), p
    assert "kagotest" in rl.kago("list").stdout
    rl.kago("kill", "--all", cid, "KILL")
    deadline = time.monotonic() + 10 * SLOW
    while time.monotonic() < deadline and \
            json.loads(rl.kago("state", cid).stdout)["status"] != "stopped":
        time.sleep(0.05)
    assert json.loads(rl.kago("state", cid).stdout)["status"] == "stopped"
    rl.kago("delete", cid)
    p = rl.kago("state", cid, check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr
    # run in the foreground: exit status passed on
    b2 = rl.bundle("exit 7")
    p = rl.kago("run", "--bundle", b2, cid, check=False)
    assert p.returncode == 7, p
    assert os.listdir(rl.root) == []


def test_devices_are_bind_mounted_host_nodes(rl, cid):
    """No mknod for a user: the default devices (and linux.devices) are the
    host's nodes bound in, as runc does rootless."""
    b = rl.bundle("ls -ln /dev/null /dev/zero /dev/fuse; grep -E ' /dev/(null|fuse) ' "
                  "/proc/self/mountinfo; echo ok > /dev/null && echo wrote",
                  edit=lambda c: c["linux"].update(devices=[
                      {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]))
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse on this host")
    p = rl.kago("run", "--bundle", b, cid)
    lines = p.stdout.splitlines()
    assert any("/dev/null" in ln and "1,   3" in ln for ln in lines), p.stdout
    assert any("/dev/fuse" in ln and "10, 229" in ln for ln in lines), p.stdout
    assert sum(1 for ln in lines if " /dev/null " in ln or " /dev/fuse " in ln) == 2, p.stdout
    assert lines[-1] == "wrote"


def test_locked_mount_flags_are_kept(rl, cid):
    """A bind of a host mount that is nosuid,nodev,noexec, asked read-only
    without those flags: they are locked in a user namespace, so the
    read-only remount keeps them (runc 1.1.5 fails here with EPERM)."""
    src = rl.work / "src"
    src.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nosuid,nodev,noexec,mode=755", "tmpfs",
                    str(src)], check=True)
    try:
        (src / "f").write_text("hi\n")
        b = rl.bundle("cat /mnt/f; grep ' /mnt ' /proc/self/mountinfo",
                      edit=lambda c: c["mounts"].append(
                          {"destination": "/mnt", "type": "bind", "source": str(src),
                           "options": ["bind", "ro"]}))
        p = rl.kago("run", "--bundle", b, cid)
        first, info = p.stdout.splitlines()[:2]
        assert first == "hi"
        opts = info.split()[5].split(",")
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(opts), info
    finally:
        subprocess.run(["umount", str(src)], check=True)


def test_idmapped_mount_as_the_user_is_the_kernels_refusal_in_kagos_words(rl, cid):
    """Idmapped mounts as an ordinary user: the kernel wants CAP_SYS_ADMIN over
    the source filesystem's user namespace (the host's, for the host's
    directories), so it refuses; kago says why, runs nothing and leaves
    nothing (runc refuses idmapped mounts for rootless containers outright)."""
    src = rl.work / "shared"
    src.mkdir()
    (src / "f").write_text("hi\n")
    subprocess.run(["chown", "-R", f"{rl.uid}:{rl.gid}", str(src)], check=True)
    b = rl.bundle("cat /mnt/f", edit=lambda c: c["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": str(src),
         "options": ["rbind", "idmap"]}))
    p = rl.kago("run", "--bundle", b, cid, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "failed to set MOUNT_ATTR_IDMAP" in p.stderr, p.stderr
    assert "a rootless kago can't idmap it" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
    mps = [ln.split()[4] for ln in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert not [m for m in mps if m.startswith(str(rl.work))], mps
    assert (src / "f").read_text() == "hi\n" and os.stat(src).st_uid == rl.uid
    assert not (rl.root / cid).exists()


def test_create_failing_after_init_started_leaves_no_init(rl, cid):
    """A create that fails once init is up (here: the pid file can't be
    written) kills init by its pidfd - without a cgroup of its own (this
    host's rootless case) nothing else would end it; the fixture fails on any
    process of the user left running."""
    b = rl.bundle("sleep 30")
    p = rl.kago("create", "--pid-file", rl.work / "no-such-dir" / "pid", "--bundle", b, cid,
                check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "no-such-dir" in p.stderr, p.stderr
    def left():     # init, blocked on exec.fifo, still carries create's command line
        out = []
        for name in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes()
                state = Path(f"/proc/{name}/stat").read_text().rpartition(")")[2].split()[0]
            except OSError:
                continue
            if cid.encode() in cmd and state not in ("Z", "X"):
                out.append(int(name))
        return out
    deadline = time.monotonic() + 5
    while left() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left() == []
    assert not (rl.root / cid).exists()


def test_spec_rootless_is_runcs(rl):
    """`kago spec --rootless` writes what `runc spec --rootless` writes (the
    user's own uid and gid mapped)."""
    if not shutil.which("runc"):
        pytest.skip("runc not installed")
    d1, d2 = rl.work / "s1", rl.work / "s2"
    for d in (d1, d2):
        d.mkdir()
        os.chown(d, rl.uid, rl.gid)
    rl.as_user(["runc", "spec", "--rootless"], cwd=d1)
    rl.kago("spec", "--rootless", cwd=d2)
    a = json.loads((d1 / "config.json").read_text())
    k = json.loads((d2 / "config.json").read_text())
    a.pop("ociVersion")
    k.pop("ociVersion")
    a["hostname"] = k["hostname"] = "x"
    assert k == a
    assert k["linux"]["uidMappings"] == [{"containerID": 0, "hostID": rl.uid, "size": 1}]
    assert k["linux"]["gidMappings"] == [{"containerID": 0, "hostID": rl.gid, "size": 1}]


# ------------------------------------------------------ cgroup v2 delegation

@pytest.mark.cgroupv2
@pytest.mark.skipif(not V2, reason="needs a cgroup v2 host (scripts/test.sh runs this "
                                   "in ../shared/cgv2's VM)")
def test_v2_delegated_subtree_memory_limit_holds(rl, cid):
    """A subtree chowned to the user (as systemd's Delegate=yes): kago makes
    the container's cgroup in it (<parent of own cgroup>/<id>, as runc), the
    memory limit is written and enforced (an allocation past it is OOM-killed
    inside the container's cgroup), pause/resume work, and delete removes
    the cgroup."""
    root = "/sys/fs/cgroup"
    deleg = f"{root}/kago-rl-{uuid.uuid4().hex[:8]}"
    os.mkdir(deleg)
    try:
        os.mkdir(f"{deleg}/shell")
        for p in (deleg, f"{deleg}/cgroup.procs", f"{deleg}/cgroup.subtree_control",
                  f"{deleg}/cgroup.threads", f"{deleg}/shell", f"{deleg}/shell/cgroup.procs",
                  f"{deleg}/shell/cgroup.threads"):
            os.chown(p, rl.uid, rl.gid)
        limit = 32 << 20
        b = rl.bundle("sleep 60", edit=lambda c: c["linux"].update(
            resources={"memory": {"limit": limit, "swap": limit}}))
        # the user's "session": a process in deleg/shell (root moves it there,
        # as systemd starts a user's processes in their delegated unit)
        in_shell = ["sh", "-c", f'echo $$ > {deleg}/shell/cgroup.procs && exec "$@"', "sh"]
        rl.as_user([rl.kago_bin, "run", "-d", "--bundle", b, cid], prefix=in_shell,
                   timeout=60 * SLOW)
        pid = json.loads(rl.kago("state", cid).stdout)["pid"]
        mine = f"{deleg}/{cid}"
        with open(f"/proc/{pid}/cgroup") as f:
            assert f.read().strip() == f"0::{mine[len(root):]}"
        assert Path(f"{mine}/memory.max").read_text().strip() == str(limit)
        # pause/resume: the v2 freezer is the user's to write
        rl.kago("pause", cid, timeout=60 * SLOW)
        assert json.loads(rl.kago("state", cid).stdout)["status"] == "paused"
        assert "frozen 1" in Path(f"{mine}/cgroup.events").read_text()
        rl.kago("resume", cid, timeout=60 * SLOW)
        assert json.loads(rl.kago("state", cid).stdout)["status"] == "running"
        # past the limit: killed by the kernel's OOM killer inside the cgroup
        p = rl.kago("exec", cid, "sh", "-c", "head -c 200000000 /dev/zero | tail > /dev/null; "
                    "echo rc=$?", timeout=120 * SLOW, prefix=in_shell)
        assert p.stdout.split() == ["rc=137"], p         # tail: SIGKILLed
        events = dict(ln.split() for ln in Path(f"{mine}/memory.events").read_text()
                      .splitlines())
        assert int(events["oom_kill"]) >= 1, events
        assert int(Path(f"{mine}/memory.peak").read_text()) <= limit \
            if os.path.exists(f"{mine}/memory.peak") else True
        assert json.loads(rl.kago("state", cid).stdout)["status"] == "running"
        rl.kago("delete", "--force", cid, timeout=60 * SLOW)
        assert not os.path.exists(mine)
    finally:
        for d in (f"{deleg}/shell", deleg):
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


@pytest.mark.cgroupv2
@pytest.mark.skipif(not V2, reason="needs a cgroup v2 host (scripts/test.sh runs this "
                                   "in ../shared/cgv2's VM)")
def test_v2_not_delegated(rl, cid):
    """v2 with nothing delegated (the user's processes in root's cgroups):
    no limits - the container runs in the caller's cgroup; limits - runc's
    error ``rootless needs no limits + no cgrouppath ...``."""
    b = rl.bundle("cat /proc/self/cgroup; grep -x 1 /sys/fs/cgroup/cgroup.procs")
    p = rl.kago("run", "--bundle", b, cid, timeout=60 * SLOW)
    # the caller's cgroup (no cgroup namespace here: the host's path), bound
    # at /sys/fs/cgroup (init listed there)
    assert p.stdout.split() == _own_cgroups(os.getpid()) + ["1"], p.stdout
    b2 = rl.bundle("true", edit=lambda c: c["linux"].update(
        resources={"memory": {"limit": 64 << 20}}))
    p = rl.kago("run", "--bundle", b2, cid, check=False, timeout=60 * SLOW)
    assert p.returncode == 1
    assert "rootless needs no limits + no cgrouppath when no permission is granted " \
           "for cgroups: mkdir /sys/fs/cgroup/" in p.stderr, p.stderr
    assert not any(cid in d for d in os.listdir("/sys/fs/cgroup"))


@pytest.mark.skipif(V2, reason="cgroup v1 delegation; v2: test_v2_delegated_subtree_*")
def test_v1_delegated_hierarchies(rl, cid):
    """v1 with the memory and freezer hierarchies delegated (a subtree
    chowned to the user, the user's process in it) and the others not: the
    container gets a cgroup in those two only (runc's rootless manager), the
    memory limit holds there, pause/resume work, a limit of a hierarchy not
    delegated is runc's error, and delete removes what it made."""
    name = f"kago-rl-{uuid.uuid4().hex[:8]}"
    hier = ("memory", "freezer")
    delegs = [f"/sys/fs/cgroup/{h}/{name}" for h in hier]
    for h in hier:
        if not os.path.isdir(f"/sys/fs/cgroup/{h}"):
            pytest.skip(f"no v1 {h} hierarchy")
    try:
        for d in delegs:
            os.makedirs(f"{d}/shell")
            for p in (d, f"{d}/cgroup.procs", f"{d}/shell", f"{d}/shell/cgroup.procs",
                      f"{d}/shell/tasks"):
                os.chown(p, rl.uid, rl.gid)
        limit = 48 << 20
        b = rl.bundle("sleep 60", edit=lambda c: c["linux"].update(
            resources={"memory": {"limit": limit}}))
        join = " && ".join(f"echo $$ > {d}/shell/cgroup.procs" for d in delegs)
        in_shell = ["sh", "-c", f'{join} && exec "$@"', "sh"]
        rl.as_user([rl.kago_bin, "run", "-d", "--bundle", b, cid], prefix=in_shell)
        pid = json.loads(rl.kago("state", cid).stdout)["pid"]
        mine = {h: f"{d}/shell/{cid}" for h, d in zip(hier, delegs)}
        cgs = dict((ln.split(":")[1], ln.split(":", 2)[2]) for ln in _own_cgroups(pid))
        for h in hier:
            assert "/sys/fs/cgroup/" + h + cgs[h] == mine[h], cgs
        assert cgs["pids"] == [ln.split(":", 2)[2] for ln in _own_cgroups(os.getpid())
                               if ln.split(":")[1] == "pids"][0]     # not delegated: ours
        assert int(Path(f"{mine['memory']}/memory.limit_in_bytes").read_text()) == limit
        rl.kago("pause", cid)
        assert Path(f"{mine['freezer']}/freezer.state").read_text().strip() == "FROZEN"
        assert json.loads(rl.kago("state", cid).stdout)["status"] == "paused"
        rl.kago("resume", cid)
        assert Path(f"{mine['freezer']}/freezer.state").read_text().strip() == "THAWED"
        rl.kago("update", "--memory", "64M", cid)
        assert int(Path(f"{mine['memory']}/memory.limit_in_bytes").read_text()) == 64 << 20
        p = rl.kago("update", "--pids-limit", "10", cid, check=False)
        assert p.returncode == 1
        assert "cannot set pids limit: container could not join or create cgroup" in p.stderr
        rl.kago("delete", "--force", cid)
        assert not any(os.path.exists(d) for d in mine.values())
    finally:
        for d in delegs:
            for sub in (f"{d}/shell/{cid}", f"{d}/shell", d):
                for _ in range(100):
                    try:
                        os.rmdir(sub)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.05)
