"""The engine suite: kago under podman (+conmon), containerd (ctr and CRI) and
the Docker engine, each started by these fixtures with all its state under one
temporary folder, and stopped and cleaned up afterwards.

Run it (as root) with ``scripts/test.sh`` (its ``engines`` target) or directly:

    /opt/kago/venv/bin/python -m pytest tests/engines -q
    KAGO_ENGINE_RUNTIME=runc /opt/kago/venv/bin/python -m pytest tests/engines -q

It is collected only when named on the command line (``tests/engines`` or a
file in it): ``pytest tests`` leaves it out.

Switches (environment variable or pytest option):

``KAGO_ENGINE_RUNTIME`` / ``--engine-runtime`` = ``kago`` (default) | ``runc``
    The runtime every engine is pointed at, by path: ``$KAGO_BIN`` (default
    /usr/local/bin/kago) or Debian's runc. The same tests pass with both, so a
    failure with kago alone is kago's.
``KAGO_ENGINE_TRACE=1``
    Put a logging shim in front of the runtime: each call's argv is appended
    to ``<tmp>/runtime-argv.log`` (kept, with the whole folder, when
    ``KAGO_TEST_KEEP=1``), for comparing what an engine asks of kago and of runc.
``KAGO_ENGINE_DEBUG=1``
    Print each engine command and its output.

Fixtures: ``rt`` (runtime name and path), ``podman``, ``podman_rootless`` (podman
as the unprivileged user ``kagotest``), ``ctr``, ``cri``,
``docker`` (session-scoped engine handles; each skips with the reason when its
binaries are missing), ``pty_run`` (run a command on a pseudo-terminal),
``tag`` (this run's unique tag, also the cgroup parent ``kago-eng-<tag>``).

What the host needs, learnt here (see also README.md):
- this sandbox's bounding set lacks CAP_SYS_RESOURCE, so an engine's default
  rlimits above the host's hard limits fail with EPERM (runc too): podman gets
  ``default_ulimits`` at the host's limits in containers.conf, dockerd
  ``--default-ulimit``;
- podman passes ``--log-format json`` only to runtimes named in
  ``runtime_supports_json``: kago is added there, or errors arrive as text;
- no systemd as PID 1: every engine uses the cgroupfs driver.
"""

from __future__ import annotations

import json
import os
import pty
import pwd
import re
import resource
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).absolute().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
from _image import write_docker_archive  # noqa: E402

MIB64 = 64 * 1024 * 1024
IMAGE = "localhost/kago-bb:latest"
PAUSE_IMAGE = "localhost/kago-pause:latest"
# a detached container's process: exits on SIGTERM (pid 1 has no default action)
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]
DEBUG = os.environ.get("KAGO_ENGINE_DEBUG") == "1"
# Made outside the suite's folder whatever the flags: containerd 1.6's shim
# sockets (/run/containerd/s), ctr's fifos (/run/containerd/fifo) and the shim's
# runtime --root (/run/containerd/runc/<namespace>); podman's blob-info cache.
HOST_DIRS = ["/run/containerd", "/var/lib/containers/cache", "/run/containers", "/run/libpod"]


# ------------------------------------------------------------------ collection

def pytest_addoption(parser):
    parser.addoption("--engine-runtime", default=None, choices=("kago", "runc"),
                     help="runtime for the engine suite (default $KAGO_ENGINE_RUNTIME or kago)")


def pytest_collection_modifyitems(config, items):
    """Keep this tree out of a plain `pytest tests`: run only when named."""
    named = False
    for a in config.args:
        p = Path(a.split("::")[0]).absolute()
        if p == HERE or HERE in p.parents:
            named = True
    if not named:
        kept = [i for i in items if HERE not in Path(str(i.fspath)).parents]
        deselected = [i for i in items if HERE in Path(str(i.fspath)).parents]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept
        return
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="the engine suite starts daemons: needs root")
        for i in items:
            if HERE in Path(str(i.fspath)).parents:
                i.add_marker(skip)


# ------------------------------------------------------------------ helpers

def run(argv, *, check=True, timeout=60, env=None, input=None, cwd=None):
    """Run ARGV with output in temporary files (a daemon or shim that keeps
    the descriptors can't block us); return a text CompletedProcess."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            p = subprocess.run([str(a) for a in argv], stdout=out, stderr=err, env=env,
                               input=input.encode() if isinstance(input, str) else input,
                               stdin=None if input is not None else subprocess.DEVNULL,
                               timeout=timeout, cwd=cwd)
        except subprocess.TimeoutExpired:
            out.seek(0); err.seek(0)
            raise AssertionError(f"timed out after {timeout}s: {' '.join(map(str, argv))}\n"
                                 f"stdout: {out.read().decode(errors='replace')}\n"
                                 f"stderr: {err.read().decode(errors='replace')}") from None
        out.seek(0); err.seek(0)
        cp = subprocess.CompletedProcess(p.args, p.returncode, out.read().decode(errors="replace"),
                                         err.read().decode(errors="replace"))
    if DEBUG:
        print(f"$ {' '.join(cp.args)}\n-> {cp.returncode}\n{cp.stdout}{cp.stderr}")
    if check and cp.returncode != 0:
        raise AssertionError(f"exit {cp.returncode}: {' '.join(cp.args)}\n"
                             f"stdout: {cp.stdout}\nstderr: {cp.stderr}")
    return cp


def wait_until(pred, timeout=20, interval=0.1, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def pty_run(argv, *, timeout=30, env=None):
    """Run ARGV as a session leader on a new pseudo-terminal (stdin, stdout,
    stderr); return (exit status, everything written to the terminal)."""
    master, slave = pty.openpty()

    def ctty():
        os.setsid()
        import fcntl, termios
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen([str(a) for a in argv], stdin=slave, stdout=slave, stderr=slave,
                         env=env, preexec_fn=ctty, close_fds=True)
    os.close(slave)
    chunks = []
    end = time.monotonic() + timeout
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                p.kill()
                raise AssertionError(f"timed out on a pty: {' '.join(map(str, argv))}: "
                                     f"{b''.join(chunks)!r}")
            r, _, _ = select.select([master], [], [], min(left, 0.2))
            if r:
                try:
                    b = os.read(master, 65536)
                except OSError:      # EIO: every slave end is closed
                    break
                if not b:
                    break
                chunks.append(b)
            elif p.poll() is not None:
                # exited; drain what is left
                try:
                    while select.select([master], [], [], 0.2)[0]:
                        b = os.read(master, 65536)
                        if not b:
                            break
                        chunks.append(b)
                except OSError:
                    pass
                break
        rc = p.wait(timeout=max(1, end - time.monotonic()))
    finally:
        os.close(master)
    out = b"".join(chunks).decode(errors="replace")
    if DEBUG:
        print(f"$ (pty) {' '.join(map(str, argv))}\n-> {rc}\n{out}")
    return rc, out


def cgroup_file(pid: int, controller: str, name: str) -> Path:
    """The host path of NAME in PID's CONTROLLER cgroup (v1)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(","):
            return Path("/sys/fs/cgroup", controller, path.lstrip("/"), name)
    raise AssertionError(f"pid {pid} has no {controller} cgroup")


def cgroup_dir(pid: int, controller: str = "memory") -> Path:
    return cgroup_file(pid, controller, "x").parent


def last_json_error(log: str) -> str:
    """The msg of the last error record of a runc-style JSON log."""
    msg = ""
    for line in log.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("level") == "error":
            msg = rec.get("msg", "")
    return msg


# ------------------------------------------------------------------ session state

class Runtime:
    """The runtime under test: NAME (kago|runc) and the PATH engines are given."""

    def __init__(self, name, path, real):
        self.name, self.path, self.real = name, str(path), str(real)

    def __repr__(self):
        return f"Runtime({self.name}, {self.path})"


@pytest.fixture(scope="session")
def tag():
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def base(tag):
    """The one temporary folder holding every engine's state (a short path:
    unix socket paths are limited to 108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix=f"ke-{tag}-", dir="/tmp"))
    fresh = [p for p in HOST_DIRS if not os.path.lexists(p)]
    yield d
    leaks = _leftovers(d, tag)
    _force_clean(d, tag)
    # what the engines put outside BASE by design (paths compiled into them),
    # removed when this run made them
    mps = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for p in fresh:
        if not any(m == p or m.startswith(p + "/") for m in mps):
            shutil.rmtree(p, ignore_errors=True)
    if os.environ.get("KAGO_TEST_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)
    else:
        print(f"kept {d}")
    if leaks:
        pytest.fail("left behind after the engine suite: " + "; ".join(leaks), pytrace=False)


@pytest.fixture(scope="session")
def rt(request, base):
    name = (request.config.getoption("--engine-runtime")
            or os.environ.get("KAGO_ENGINE_RUNTIME") or "kago")
    if name not in ("kago", "runc"):
        raise pytest.UsageError(f"KAGO_ENGINE_RUNTIME={name}: want kago or runc")
    real = (os.environ.get("KAGO_BIN", "/usr/local/bin/kago") if name == "kago"
            else shutil.which("runc") or "/usr/sbin/runc")
    if not os.access(real, os.X_OK):
        pytest.skip(f"{name} not installed at {real}")
    path = real
    if os.environ.get("KAGO_ENGINE_TRACE") == "1":
        # same basename: podman decides JSON logging by the runtime's name
        shim = base / "shim" / name
        shim.parent.mkdir()
        shim.write_text(f'#!/bin/sh\necho "$$ $(date +%s.%N) $*" >> {base}/runtime-argv.log\n'
                        f'exec {real} "$@"\n')
        shim.chmod(0o755)
        path = shim
    return Runtime(name, path, real)


@pytest.fixture(scope="session")
def rootfs(base):
    """A busybox rootfs (scripts/mkbundle.sh) and a docker archive of it with
    two images: IMAGE (Cmd sh) and PAUSE_IMAGE (a CRI sandbox's process)."""
    b = base / "bundle"
    run(["bash", REPO / "scripts" / "mkbundle.sh", "--no-config", b])
    archive = write_docker_archive(b / "rootfs", base / "images.tar", {
        IMAGE: ["sh"],
        PAUSE_IMAGE: LOOP,
    })
    return b / "rootfs", archive


def _need(*binaries):
    missing = [b for b in binaries if not shutil.which(b)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/setup.sh installs them)")


def _leftovers(base: Path, tag: str) -> list[str]:
    leaks = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4]
        if mp.startswith(str(base)) or mp.startswith("/run/netns/"):
            if mp.startswith(str(base)):
                leaks.append(f"mount {mp}")
    for pid in _pids_mentioning(str(base)):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        leaks.append(f"process {pid} ({cmd[:120]})")
    # The engines' parent cgroups (kago-eng-<tag>-*, podman's .../conmon, a CRI
    # pod's) stay, as they would with runc; each test checks that its container's
    # own cgroup went away. Here: no process may be left in any of them.
    for top in Path("/sys/fs/cgroup").glob(f"*/kago-eng-{tag}*"):
        for d in [top, *top.rglob("*")]:
            try:
                procs = (d / "cgroup.procs").read_text().split() if d.is_dir() else []
            except OSError:
                continue
            if procs:
                leaks.append(f"cgroup {d} with processes {procs}")
    return leaks


def _pids_mentioning(text: str) -> list[int]:
    out = []
    me = os.getpid()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit() or int(p.name) == me:
            continue
        try:
            if text.encode() in (p / "cmdline").read_bytes():
                out.append(int(p.name))
        except OSError:
            pass
    return out


def _force_clean(base: Path, tag: str) -> None:
    for pid in _pids_mentioning(str(base)):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.2)
    mps = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mp in sorted((m for m in mps if m.startswith(str(base))), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
    dirs = [d for d in Path("/sys/fs/cgroup").glob(f"*/kago-eng-{tag}*")]
    for top in dirs:
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                        reverse=True) + [top]:
            try:
                for pid in (d / "cgroup.procs").read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
            for _ in range(20):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def stop_daemon(proc: subprocess.Popen, timeout=20):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_daemon(argv, log: Path, sock: Path, what: str, timeout=30, env=None):
    logf = open(log, "ab")
    proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=logf,
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    logf.close()

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}:\n"
                                 + log.read_text(errors="replace")[-3000:])
        if not sock.exists():
            return False
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(str(sock))
            return True
        except OSError:
            return False
        finally:
            s.close()

    wait_until(up, timeout=timeout, what=f"{what} socket {sock}")
    return proc


# ------------------------------------------------------------------ podman

class Podman:
    def __init__(self, base: Path, rt: Runtime, tag: str):
        self.dir = base / "podman"
        self.rt = rt
        self.cgroup_parent = f"/kago-eng-{tag}-podman"
        d = self.dir
        for sub in ("root", "runroot", "tmp", "xdg/containers"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
        conf = d / "xdg" / "containers" / "containers.conf"
        conf.write_text(f"""\
[containers]
netns = "none"
log_driver = "k8s-file"
# this sandbox lacks CAP_SYS_RESOURCE: no rlimit above the host's hard limits
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
image_copy_tmp_dir = "{d}/tmp"
runtime = "{rt.name}"
# podman passes --log-format json only to the runtimes named here
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "kago"]

[engine.runtimes]
{rt.name} = ["{rt.path}"]
""")
        (d / "storage.conf").write_text(f"""\
[storage]
driver = "overlay"
runroot = "{d}/runroot"
graphroot = "{d}/root"
""")
        self.env = dict(os.environ, CONTAINERS_CONF=str(conf),
                        CONTAINERS_STORAGE_CONF=str(d / "storage.conf"),
                        XDG_CONFIG_HOME=str(d / "xdg"), XDG_DATA_HOME=str(d / "xdg"),
                        TMPDIR=str(d / "tmp"))
        self.argv = ["podman", "--root", d / "root", "--runroot", d / "runroot",
                     "--tmpdir", d / "tmp", "--runtime", rt.path,
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                     "--storage-driver", "overlay"]

    def __call__(self, *args, check=True, timeout=60):
        return run(self.argv + list(args), check=check, timeout=timeout, env=self.env)

    def pty(self, *args, timeout=30):
        return pty_run(self.argv + list(args), timeout=timeout, env=self.env)

    def run_args(self):
        """Flags every `podman run` of the suite gets."""
        return ["--network", "none", "--cgroup-parent", self.cgroup_parent]

    def close(self):
        self("rm", "--all", "--force", "--time", "0", check=False, timeout=120)
        self("system", "reset", "--force", check=False, timeout=120)


@pytest.fixture(scope="session")
def podman(base, rt, rootfs, tag):
    _need("podman", "conmon")
    pm = Podman(base, rt, tag)
    try:
        pm("load", "-i", rootfs[1], timeout=120)
        yield pm
    finally:
        pm.close()


# ------------------------------------------------------------------ rootless podman

ROOTLESS_USER = "kagotest"      # scripts/setup.sh: no home, /etc/subuid + /etc/subgid ranges


class RootlessPodman:
    """podman run by the unprivileged user ``kagotest`` (setpriv), next to the
    root one: podman's default user namespace (container root = the user,
    1..65536 on its /etc/subuid range, through newuidmap), native overlay
    storage in it, cgroupfs (on this v1 host the user has no cgroup: podman
    itself refuses pause and limits), --network none.  Everything of the user
    lives in one folder the user owns (HOME, XDG_RUNTIME_DIR - where the
    runtime keeps its state when podman gives no --root - storage, config).

    ``close()``: podman removes everything; podman's own helpers of this user
    (its pause process, the session dbus-daemon it starts) are ended - found
    by this folder in their environment -, and anything else of the user still
    running, or a runtime state dir left in $XDG_RUNTIME_DIR/<runtime>, is a
    leak (``leaks``)."""

    def __init__(self, base: Path, rt: Runtime, tag: str, archive: Path):
        try:
            pw = pwd.getpwnam(ROOTLESS_USER)
        except KeyError:
            pytest.skip(f"no user {ROOTLESS_USER} (scripts/setup.sh creates it)")
        if not shutil.which("newuidmap"):
            pytest.skip("newuidmap missing (scripts/setup.sh installs uidmap)")
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.rt = rt
        # the logging shim lives under BASE (root's 0700 folder): the user runs the real one
        self.runtime = rt.real if str(rt.path).startswith(str(base)) else rt.path
        self.dir = d = Path(tempfile.mkdtemp(prefix=f"ke-{tag}-rl-", dir="/tmp"))
        os.chmod(d, 0o755)
        for sub in ("home/.config/containers", "xdg", "run", "root", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d / "xdg", 0o700)
        conf = d / "home" / ".config" / "containers" / "containers.conf"
        conf.write_text(f"""\
[containers]
netns = "none"
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
runtime = "{rt.name}"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "kago"]

[engine.runtimes]
{rt.name} = ["{self.runtime}"]
""")
        storage = d / "home" / ".config" / "containers" / "storage.conf"
        storage.write_text(f"""\
[storage]
driver = "overlay"
runroot = "{d}/run"
graphroot = "{d}/root"
""")
        shutil.copy(archive, d / "images.tar")
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(d)], check=True)
        self.xdg = d / "xdg"
        self.env = {"HOME": str(d / "home"), "USER": ROOTLESS_USER, "LOGNAME": ROOTLESS_USER,
                    "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
                    "XDG_RUNTIME_DIR": str(self.xdg),
                    "XDG_CONFIG_HOME": str(d / "home" / ".config"),
                    "XDG_DATA_HOME": str(d / "home" / ".local" / "share"),
                    "CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage),
                    "TMPDIR": str(d / "tmp")}
        self.argv = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                     "--", "podman", "--runtime", self.runtime, "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file"]

    def __call__(self, *args, check=True, timeout=60):
        return run(self.argv + list(args), check=check, timeout=timeout, env=self.env,
                   cwd=self.dir)

    def run_args(self):
        return ["--network", "none"]

    def user_pids(self) -> list[int]:
        """The user's processes started from this folder's environment."""
        mark = f"XDG_RUNTIME_DIR={self.xdg}".encode()
        out = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                if p.stat().st_uid != self.uid:
                    continue
                if mark in (p / "environ").read_bytes().split(b"\0"):
                    out.append(int(p.name))
            except OSError:
                pass
        return out

    def close(self) -> list[str]:
        leaks = []
        self("rm", "--all", "--force", "--time", "0", check=False, timeout=120)
        state = self.xdg / self.rt.name
        if state.is_dir() and os.listdir(state):
            leaks.append(f"runtime state {state}: {os.listdir(state)}")
        self("system", "reset", "--force", check=False, timeout=120)
        time.sleep(0.2)
        killed = set()
        for pid in self.user_pids():
            killed.add(pid)
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if os.path.basename(cmd) not in ("dbus-daemon", "podman", "catatonit"):
                leaks.append(f"process {pid} of {ROOTLESS_USER} ({cmd})")
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        end = time.monotonic() + 10
        while time.monotonic() < end:     # gone (or a zombie): nothing of theirs runs
            left = [p for p in killed if _alive(p)] + \
                [p for p in self.user_pids() if p not in killed]
            if not left:
                break
            for p in left:
                killed.add(p)
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        mps = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for mp in sorted((m for m in mps if m.startswith(str(self.dir))), key=len, reverse=True):
            leaks.append(f"mount {mp}")
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        if os.environ.get("KAGO_TEST_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)
        # the session dbus-daemon podman started listens on a socket of its
        # own in /tmp (not $TMPDIR), which outlives it: remove the user's
        uid = pwd.getpwnam(ROOTLESS_USER).pw_uid
        for sock in Path("/tmp").glob("dbus-*"):
            try:
                if sock.lstat().st_uid == uid and stat.S_ISSOCK(sock.lstat().st_mode):
                    sock.unlink()
            except OSError:
                pass
        return leaks


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in "ZX"
    except OSError:
        return False


@pytest.fixture(scope="session")
def podman_rootless(base, rt, rootfs, tag):
    _need("podman", "conmon", "setpriv")
    pm = RootlessPodman(base, rt, tag, rootfs[1])
    leaks = []
    try:
        pm("load", "-i", pm.dir / "images.tar", timeout=120)
        yield pm
    finally:
        leaks = pm.close()
    if leaks:
        pytest.fail("left behind by rootless podman: " + "; ".join(leaks), pytrace=False)


# ------------------------------------------------------------------ containerd

class Containerd:
    NS = "kagotest"

    def __init__(self, base: Path, rt: Runtime, tag: str):
        self.dir = d = base / "containerd"
        self.rt = rt
        self.tag = tag
        self.sock = d / "c.sock"
        for sub in ("root", "state", "cni/conf", "cni/bin", "opt", "pods"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        self.handler = rt.name
        self.config = d / "config.toml"
        self.config.write_text(f"""\
version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # the sandbox asks for oomScoreAdj -998; lowering it needs CAP_SYS_RESOURCE,
  # which this sandbox's bounding set lacks: cap it at containerd's own value
  restrict_oom_score_adj = true
  disable_cgroup = false
  [{cri}.cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "{self.handler}"
    [{cri}.containerd.runtimes.{self.handler}]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.{self.handler}.options]
        BinaryName = "{rt.path}"
        SystemdCgroup = false
""")
        self.proc = start_daemon(["containerd", "--config", self.config], d / "containerd.log",
                                 self.sock, "containerd")

    def ctr(self, *args, ns=None, check=True, timeout=60):
        return run(["ctr", "--address", self.sock, "--namespace", ns or self.NS, *args],
                   check=check, timeout=timeout)

    def ctr_pty(self, *args, ns=None, timeout=30):
        return pty_run(["ctr", "--address", self.sock, "--namespace", ns or self.NS, *args],
                       timeout=timeout)

    def cleanup_namespace(self, ns):
        tasks = self.ctr("task", "ls", "-q", ns=ns, check=False).stdout.split()
        for t in tasks:
            self.ctr("task", "kill", "-s", "SIGKILL", t, ns=ns, check=False)
        for t in tasks:
            for _ in range(50):
                if self.ctr("task", "rm", "-f", t, ns=ns, check=False).returncode == 0:
                    break
                time.sleep(0.1)
        for c in self.ctr("container", "ls", "-q", ns=ns, check=False).stdout.split():
            self.ctr("container", "rm", c, ns=ns, check=False)

    def close(self):
        if self.proc.poll() is None:
            for ns in self.ctr("namespace", "ls", "-q", check=False).stdout.split():
                self.cleanup_namespace(ns)
        stop_daemon(self.proc)


@pytest.fixture(scope="session")
def containerd(base, rt, tag):
    _need("containerd", "ctr", "containerd-shim-runc-v2")
    c = Containerd(base, rt, tag)
    try:
        yield c
    finally:
        c.close()


class Ctr:
    """`ctr` against the suite's containerd, with the runtime by path."""

    def __init__(self, cd: Containerd, rootfs_archive):
        self.cd = cd
        self.cgroup_parent = f"kago-eng-{cd.tag}-ctr"
        cd.ctr("images", "import", rootfs_archive, timeout=120)

    def __call__(self, *args, check=True, timeout=60):
        return self.cd.ctr(*args, check=check, timeout=timeout)

    def run_args(self, cid):
        return ["--runc-binary", self.cd.rt.path, "--cgroup", f"/{self.cgroup_parent}/{cid}"]

    def pty(self, *args, timeout=30):
        return self.cd.ctr_pty(*args, timeout=timeout)


@pytest.fixture(scope="session")
def ctr(containerd, rootfs):
    c = Ctr(containerd, rootfs[1])
    yield c
    containerd.cleanup_namespace(Containerd.NS)


# ------------------------------------------------------------------ CRI

def grpc_modules(base: Path, proto: str):
    """(NAME_pb2, NAME_pb2_grpc) compiled from tests/engines/NAME.proto into BASE."""
    try:
        import grpc  # noqa: F401
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as e:
        pytest.skip(f"needs grpcio and grpcio-tools ({e}); scripts/setup.sh installs them")
    import importlib
    out = base / "grpc-gen"
    out.mkdir(exist_ok=True)
    if not (out / f"{proto}_pb2.py").exists():
        inc = Path(grpc_tools.__file__).parent / "_proto"
        rc = protoc.main(["protoc", f"-I{HERE}", f"-I{inc}", f"--python_out={out}",
                          f"--grpc_python_out={out}", str(HERE / f"{proto}.proto")])
        assert rc == 0, f"protoc failed on {proto}.proto"
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return importlib.import_module(f"{proto}_pb2"), importlib.import_module(f"{proto}_pb2_grpc")


def update_task_memory(cd: "Containerd", base: Path, cid: str, limit: int, ns=None):
    """containerd's Tasks.Update with LinuxResources {memory: {limit}} (JSON in an
    Any, as containerd's typeurl encodes runtime-spec types): the shim runs
    `<runtime> update --resources -`."""
    import grpc
    from google.protobuf import any_pb2
    pb, stubs = grpc_modules(base, "tasks")
    res = any_pb2.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
                      value=json.dumps({"memory": {"limit": limit, "swap": limit}}).encode())
    with grpc.insecure_channel(f"unix://{cd.sock}") as ch:
        stubs.TasksStub(ch).Update(pb.UpdateTaskRequest(container_id=cid, resources=res),
                                   metadata=[("containerd-namespace", ns or cd.NS)], timeout=30)


class Cri:
    """A CRI client (the calls kubelet makes) against the suite's containerd."""

    NS = "k8s.io"

    def __init__(self, cd: Containerd, base: Path, archive):
        import grpc
        self.cd = cd
        self.pb, grpc_mod = grpc_modules(base, "cri")
        self.channel = grpc.insecure_channel(f"unix://{cd.sock}")
        self.rs = grpc_mod.RuntimeServiceStub(self.channel)
        self.logs = cd.dir / "pods"
        cd.ctr("images", "import", archive, ns=self.NS, timeout=120)
        self.pods = []
        self.cgroup_parent = f"/kago-eng-{cd.tag}-cri"

    def call(self, name, **kw):
        req = getattr(self.pb, name + "Request")(**kw)
        return getattr(self.rs, name)(req, timeout=60)

    def pod(self, name):
        pb = self.pb
        cfg = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="kagotest"),
            log_directory=str(self.logs / name),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"{self.cgroup_parent}/{name}",
                security_context=pb.LinuxSandboxSecurityContext(
                    # as kubelet: the node's network here (no CNI), a pid
                    # namespace per container, the pod's ipc namespace
                    namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER,
                                                         ipc=pb.POD))))
        (self.logs / name).mkdir(parents=True, exist_ok=True)
        pid = self.call("RunPodSandbox", config=cfg, runtime_handler=self.cd.handler).pod_sandbox_id
        self.pods.append(pid)
        return pid, cfg

    def container(self, pod, name, args, *, memory=0, tty=False, start=True):
        pb = self.pb
        pod_id, pod_cfg = pod
        cfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=IMAGE),
            args=args, log_path=f"{name}.log", tty=tty,
            linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(
                memory_limit_in_bytes=memory)))
        cid = self.call("CreateContainer", pod_sandbox_id=pod_id, config=cfg,
                        sandbox_config=pod_cfg).container_id
        if start:
            self.call("StartContainer", container_id=cid)
        return cid

    def status(self, cid):
        return self.call("ContainerStatus", container_id=cid, verbose=True)

    def pid(self, cid):
        return json.loads(self.status(cid).info["info"])["pid"]

    def log(self, pod_name, name):
        """The container's output from its CRI log file (`<time> <stream> <tag> <text>`)."""
        p = self.logs / pod_name / f"{name}.log"
        lines = p.read_text().splitlines() if p.exists() else []
        return "\n".join(line.split(" ", 3)[3] if line.count(" ") >= 3 else "" for line in lines)

    def close(self):
        for p in self.pods:
            for call in ("StopPodSandbox", "RemovePodSandbox"):
                try:
                    self.call(call, pod_sandbox_id=p)
                except Exception as e:  # noqa: BLE001 - best effort, reported by the leak check
                    print(f"CRI {call} {p}: {e}")
        self.channel.close()


def stream_exec(url: str, timeout=30) -> tuple[bytes, bytes]:
    """Read an exec session from a CRI streaming URL (what kubectl exec does
    after the Exec call) over a WebSocket with the v4.channel.k8s.io protocol:
    each binary message is one channel byte (1 stdout, 2 stderr, 3 status)
    and data. Returns (stdout, status); no stdin is sent."""
    import base64
    import urllib.parse
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, f"stream server closed during the handshake: {buf!r}"
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert head.split()[1] == b"101", head

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out

    chans: dict[int, bytes] = {}
    try:
        while True:
            b0, b1 = need(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = int.from_bytes(need(2), "big")
            elif n == 127:
                n = int.from_bytes(need(8), "big")
            if b1 & 0x80:
                need(4)    # a server never masks; tolerate it anyway
            payload = need(n)
            if opcode == 8:          # close
                break
            if opcode in (1, 2) and payload:
                chans[payload[0]] = chans.get(payload[0], b"") + payload[1:]
    except EOFError:
        pass
    finally:
        s.close()
    return chans.get(1, b""), chans.get(3, b"")


@pytest.fixture(scope="session")
def cri(containerd, base, rootfs):
    c = Cri(containerd, base, rootfs[1])
    yield c
    c.close()
    containerd.cleanup_namespace(Cri.NS)


# ------------------------------------------------------------------ docker

class Docker:
    def __init__(self, base: Path, rt: Runtime, cd: Containerd, tag: str):
        self.dir = d = base / "docker"
        self.rt = rt
        self.runtime = "kago" if rt.name == "kago" else "ref-runc"   # "runc" is reserved
        for sub in ("root", "exec", "cfg"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        self.sock = d / "docker.sock"
        (d / "daemon.json").write_text("{}\n")
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.cgroup_parent = f"/kago-eng-{tag}-docker"
        self.proc = start_daemon(
            ["dockerd", "--config-file", d / "daemon.json",
             "--data-root", d / "root", "--exec-root", d / "exec", "--pidfile", d / "docker.pid",
             "-H", f"unix://{self.sock}", "--containerd", cd.sock,
             "--containerd-namespace", f"moby-{tag}", "--containerd-plugins-namespace",
             f"moby-plugins-{tag}",
             "--add-runtime", f"{self.runtime}={rt.path}",
             "--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false",
             "--userland-proxy=false", "--storage-driver", "overlay2",
             "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", self.cgroup_parent,
             "--default-ulimit", f"nofile={nofile}:{nofile}",
             "--log-level", "warn"],
            d / "dockerd.log", self.sock, "dockerd", timeout=60)
        self.env = dict(os.environ, DOCKER_CONFIG=str(d / "cfg"), DOCKER_HOST=f"unix://{self.sock}")
        self.bin = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"
        self.cd = cd
        self.tag = tag

    def __call__(self, *args, check=True, timeout=60):
        return run([self.bin, *args], check=check, timeout=timeout, env=self.env)

    def pty(self, *args, timeout=30):
        return pty_run([self.bin, *args], timeout=timeout, env=self.env)

    def run_args(self):
        return ["--runtime", self.runtime, "--network", "none"]

    def close(self):
        if self.proc.poll() is None:
            ids = self("ps", "-aq", check=False).stdout.split()
            if ids:
                self("rm", "-f", *ids, check=False, timeout=120)
        stop_daemon(self.proc)
        for ns in (f"moby-{self.tag}", f"moby-plugins-{self.tag}"):
            self.cd.cleanup_namespace(ns)
        # dockerd's own mounts (overlay, the exec root) when it did not unmount them
        mps = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for mp in sorted((m for m in mps if m.startswith(str(self.dir))), key=len, reverse=True):
            subprocess.run(["umount", mp], stderr=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def docker(base, rt, containerd, rootfs, tag):
    _need("dockerd")
    dk = Docker(base, rt, containerd, tag)
    try:
        dk("load", "-i", rootfs[1], timeout=120)
        yield dk
    finally:
        dk.close()


@pytest.fixture
def cname(request):
    """A unique container name for this test."""
    n = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[-30:]
    return f"ke-{n}-{uuid.uuid4().hex[:6]}"
