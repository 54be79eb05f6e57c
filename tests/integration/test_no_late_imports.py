"""Nothing is imported in a container's processes once they have left the
host's filesystem (issue 12, item 8).

After unshare(user) the children are host uid 100000 to the kernel: a
Python installed under a 0700 directory (pyenv under /root, a venv in a
home) is out of their reach; after pivot_root nothing of the host is
visible at all, and the busybox rootfs has no Python.  main imports what
they need first (``kago.process.main.preload``); a late import is a
``ModuleNotFoundError`` in the container process (user namespace + seccomp
failed so on Python 3.12: the seccomp cache key imported ``_sha2``).

Here kago runs from a private prefix: a 0700 directory holding the
interpreter's standard library (a symlink the interpreter finds as its
prefix) and a copy of the kago package, so the container's processes can
reach neither - any late import fails.  One container combines every
feature whose code runs in those processes: user namespace, seccomp (an
engine's real profile), all six hooks, a terminal over a console socket,
cgroups with resources, and exec (plain and with a terminal).
"""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).absolute().parent.parent
REPO = TESTS.parent
DATA = TESTS / "data"
UID = 100000


def interpreters():
    """The interpreter running the tests and the other versions setup.sh gives
    the prefix (3.12/3.13 under /root/.pyenv: ``_sha2`` is a lib-dynload there)."""
    found = {os.path.realpath(getattr(sys, "_base_executable", sys.executable))}
    prefix = os.path.dirname(os.path.dirname(os.environ.get("KAGO_BIN", "/usr/local/bin/kago")))
    for v in sorted(glob.glob(os.path.join(prefix, "venv-3.*", "bin", "python"))):
        found.add(os.path.realpath(v))
    return sorted(found)


def _version(py):
    r = subprocess.run([py, "-I", "-S", "-c",
                        "import sys, sysconfig; print('%d.%d' % sys.version_info[:2]); "
                        "print(sysconfig.get_path('stdlib'))"],
                       capture_output=True, text=True, check=True)
    v, stdlib = r.stdout.split()
    return v, stdlib


class PrivateKago:
    """kago run by ``py`` from a 0700 prefix ``top``: <top>/lib/pythonX.Y -> the
    interpreter's stdlib, <top>/lib/kago-site/kago a copy of the package.  The
    CLI re-execs itself through <top>/libexec/pythonX.Y (KAGO_PREFIX=top, the
    read-only copy, CVE-2019-5736), whose prefix is then <top>."""

    def __init__(self, py, top: Path, root):
        self.py, self.top, self.root = py, top, str(root)
        v, stdlib = _version(py)
        self.version = v
        top.mkdir(mode=0o700)
        (top / "lib").mkdir()
        os.symlink(stdlib, top / "lib" / f"python{v}")
        shutil.copytree(REPO / "kago", top / "lib" / "kago-site" / "kago",
                        ignore=shutil.ignore_patterns("__pycache__"))
        self.code = (f"import sys; sys.path.append({str(top / 'lib' / 'kago-site')!r}); "
                     "from kago.cli import main; main()")
        self.interp = top / "libexec" / f"python{v}"

    def __call__(self, *args, check=True, timeout=60, **kw):
        env = dict(os.environ, KAGO_PREFIX=str(self.top))
        r = subprocess.run([self.py, "-I", "-S", "-c", self.code, "--root", self.root, *args],
                           env=env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and r.returncode:
            raise AssertionError(f"kago {' '.join(map(str, args))}: exit {r.returncode}\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def close(self):
        for _ in range(4):
            if subprocess.run(["umount", "-l", str(self.interp)],
                              stderr=subprocess.DEVNULL).returncode:
                break


def unreachable_for_uid(path, uid=UID) -> bool:
    """Can a process of host uid ``uid`` not open ``path``?"""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            try:
                os.close(os.open(path, os.O_RDONLY))
                os._exit(1)
            except PermissionError:
                os._exit(0)
            except BaseException:
                os._exit(2)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def recv_master(sock, timeout=20) -> int:
    sock.settimeout(timeout)
    conn, _ = sock.accept()
    with conn:
        _, fds, _, _ = socket.recv_fds(conn, 4096, 4)
    assert len(fds) == 1, fds
    return fds[0]


def read_master(fd, until, timeout=20) -> str:
    out, end = b"", time.monotonic() + timeout
    os.set_blocking(fd, False)
    while until.encode() not in out and time.monotonic() < end:
        try:
            b = os.read(fd, 4096)
            if not b:
                break
            out += b
        except BlockingIOError:
            time.sleep(0.02)
        except OSError:       # EIO: the other side is closed and drained
            break
    return out.decode(errors="replace")


def listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(1)
    return s


@pytest.mark.parametrize("py", interpreters(), ids=lambda p: os.path.basename(p))
def test_every_feature_with_the_hosts_python_out_of_reach(py, bundle, state_root, make_cid,
                                                         tmp_path, _kago_tracker, kago_bin):
    top = Path(tempfile.mkdtemp(prefix="kago-nli-", dir="/tmp"))
    os.chmod(top, 0o711)                 # the rootfs is reachable for uid 100000 ...
    _kago_tracker.bundles.append(str(top))
    kago = PrivateKago(py, top / "private", state_root)   # ... kago and the stdlib are not
    try:
        _run_all(kago, top, bundle, make_cid(), tmp_path)
    finally:
        kago.close()
        shutil.rmtree(top, ignore_errors=True)


def _run_all(kago, top, bundle, cid, tmp_path):
    os_py = kago.top / "lib" / f"python{kago.version}" / "os.py"
    assert os_py.is_file() and unreachable_for_uid(os_py), "the stdlib must be out of reach"
    host_log = top / "hooks.log"          # host-side hooks (0711 top: root writes it)
    prof = json.loads((DATA / "seccomp_podman_4.3.1_debian12.json").read_text())

    def host_hook(name):
        return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {name} >> {host_log}"]}

    def ctr_hook(name, log):   # in the container's namespaces, as its root (uid 100000)
        return {"path": "/bin/sh", "args": ["sh", "-c", f"echo {name} >> {log}"]}

    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]

    def edit(cfg):
        lx = cfg["linux"]
        lx["namespaces"].append({"type": "user"})
        lx["uidMappings"] = [{"containerID": 0, "hostID": UID, "size": 65536}]
        lx["gidMappings"] = [{"containerID": 0, "hostID": UID, "size": 65536}]
        lx["seccomp"] = prof
        lx["resources"] = dict(lx.get("resources") or {},
                               memory={"limit": 256 << 20}, pids={"limit": 200})
        cfg["process"]["terminal"] = True
        cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        cfg["hooks"] = {"prestart": [host_hook("prestart")],
                        "createRuntime": [host_hook("createRuntime")],
                        # before pivot_root: the host's /bin/sh, the rootfs by its host path
                        "createContainer": [ctr_hook("createContainer",
                                                     top / "rootfs" / "hooks.log")],
                        "startContainer": [ctr_hook("startContainer", "/hooks.log")],
                        "poststart": [host_hook("poststart")],
                        "poststop": [host_hook("poststop")]}
        cfg["root"] = {"path": str(top / "rootfs"), "readonly": False}
        # an idmapped mount: host 1000's directory is the container root's
        cfg["mounts"].append({"destination": "/idm", "type": "bind", "source": str(idsrc),
                              "options": ["rbind", "ridmap"],
                              "uidMappings": [{"containerID": 1000, "hostID": UID, "size": 1}],
                              "gidMappings": [{"containerID": 1000, "hostID": UID, "size": 1}]})

    idsrc = top / "idsrc"
    idsrc.mkdir()
    os.chown(idsrc, 1000, 1000)
    b = bundle("echo init-ok; id -u; stat -c idm=%u:%g /idm; grep ^Seccomp: /proc/self/status; "
               "swapoff /no-such-swap; echo swap=$?; exec sleep 60", edit=edit)
    os.rename(b / "rootfs", top / "rootfs")
    subprocess.run(["chown", "-R", "-h", f"{UID}:{UID}", str(top / "rootfs")], check=True)
    cons = listener(tmp_path / "c.sock")
    kago("create", "--bundle", b, "--console-socket", tmp_path / "c.sock", cid)
    # the re-exec through the private prefix's read-only interpreter happened
    assert kago.interp.is_file() and _is_mountpoint(kago.interp)
    master = recv_master(cons)
    try:
        kago("start", cid)
        out = read_master(master, "swap=")
        assert "init-ok" in out and "Seccomp:\t2" in out, out
        assert "idm=0:0" in out, out
        assert "Operation not permitted" in out, out        # the profile's swapoff rule
        st = json.loads(kago("state", cid).stdout)
        pid = st["pid"]
        assert st["status"] == "running"
        # the host's side: the process, its user namespace, its filter, its cgroup
        status = Path(f"/proc/{pid}/status").read_text()
        assert "Seccomp:\t2" in status
        assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", str(UID), "65536"]
        mem = [ln.split(":", 2)[2] for ln in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
               if ln.split(":")[1] == "memory"]
        if mem:
            limit = Path(f"/sys/fs/cgroup/memory{mem[0]}/memory.limit_in_bytes").read_text()
            assert int(limit) == 256 << 20
        assert host_log.read_text().split() == ["prestart", "createRuntime", "poststart"]
        # exec: plain, then with a terminal
        r = kago("exec", cid, "sh", "-c", "swapoff /no-such-swap; echo swap=$?; "
                 "grep ^Seccomp: /proc/self/status; cat /hooks.log")
        assert "swap=1" in r.stdout and "Seccomp:\t2" in r.stdout, r
        assert r.stdout.split()[-2:] == ["createContainer", "startContainer"], r
        assert "Operation not permitted" in r.stderr, r
        ecs = listener(tmp_path / "e.sock")
        try:
            r = kago("exec", "-t", "--console-socket", tmp_path / "e.sock", cid,
                     "sh", "-c", "echo exec-tty=$(tty)")
            emaster = recv_master(ecs)
            try:
                assert "exec-tty=/dev/pts/" in read_master(emaster, "\n"), r
            finally:
                os.close(emaster)
        finally:
            ecs.close()
        kago("delete", "--force", cid)
        assert host_log.read_text().split()[-1] == "poststop"
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    finally:
        os.close(master)
        cons.close()
        kago("delete", "--force", cid, check=False)


def _is_mountpoint(p) -> bool:
    real = os.path.realpath(p)
    return any(line.split()[4] == real for line in Path("/proc/self/mountinfo").read_text().splitlines())
