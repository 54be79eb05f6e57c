"""The classic runc container escapes, reproduced against kago (issue 5).

Each test runs the attack from inside a real container and checks that it
fails; its docstring says how a deliberately weakened kago lets it through
(each weakening was tried by hand while writing the test).
"""

import ctypes
import errno
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kago.security import capabilities, exe

from tests.integration.helpers import state_pid


def _host_caps():
    """Every capability this host's bounding set still has (a test machine
    may itself run with a reduced set)."""
    bnd = int(re.search(r"CapBnd:\s+([0-9a-f]+)", Path("/proc/self/status").read_text())
              .group(1), 16)
    return sorted(n for n, v in capabilities.CAPS.items() if bnd >> v & 1)


ALL_CAPS = _host_caps()
ROOT_ALL_CAPS = {"capabilities": {s: ALL_CAPS for s in ("bounding", "effective",
                                                         "permitted", "inheritable")}}
RW = {"root": {"readonly": False}}
SITE = "/opt/kago/venv/lib/python3.11/site-packages"


def kago_python():
    """The interpreter the launcher runs (its #! line)."""
    with open("/usr/local/bin/kago") as f:
        return f.readline()[2:].split()[0]


def lib_exec(state_root, cid, args, out, **proc):
    """`exec` through the library, run by the launcher's interpreter (as the
    CLI would): returns the Popen."""
    code = (f"import sys, json; sys.path.append({SITE!r})\n"
            "from kago import Container\n"
            "from kago.container.exec import exec_process\n"
            f"c = Container.load({str(state_root)!r}, {cid!r})\n"
            f"p = dict(c.config()['process'], args={args!r}, terminal=False, **{proc!r})\n"
            "sys.exit(exec_process(c, p))\n")
    return subprocess.Popen([kago_python(), "-IS", "-c", code], stdin=subprocess.DEVNULL,
                            stdout=out, stderr=subprocess.STDOUT)


# ------------------------------------------------------------ CVE-2019-5736

# an attacker in the container: every process running Python is a runtime
# process; try to open its executable for writing, directly and by reopening
# a kept read-only fd (the exploit's path once the binary is no longer busy).
# `>` is O_TRUNC: the kernel checks the mount's read-only flag before the
# text-busy state, so the two outcomes are told apart and nothing is written
# (the binary is busy: the target process is running it).
ATTACK_EXE = r"""
for p in /proc/[0-9]*; do
  [ "$p" = /proc/$$ ] && continue
  e=$(readlink $p/exe) || continue
  case "$e" in *python*) ;; *) continue;; esac
  echo "target $p $e"
  ( exec 3<$p/exe && echo "opened-ro $p" && ( exec 4>/proc/self/fd/3 ) && echo "WROTE-FD $p" ) 2>&1
  ( exec 5>$p/exe && echo "WROTE-EXE $p" ) 2>&1
done
echo attack-done
"""


def _check_exe_attack(out):
    assert "target" in out, f"the attacker saw no runtime process:\n{out}"
    assert "WROTE" not in out, out
    # every write attempt is refused by the read-only mount, not by luck
    # (ETXTBSY would only mean the interpreter happened to be busy)
    assert "Text file busy" not in out, out
    assert out.count("Read-only file system") >= 2, out


def test_kago_interpreter_is_read_only(run_kago):
    """The launcher runs kago's own interpreter copy on a read-only bind
    mount.  Weakened (setup.sh leaving ``#!/usr/bin/python3.11``): this fails,
    and ``ensure_protected`` is what re-execs through the copy."""
    interp = kago_python()
    assert exe.protected(interp), f"{interp} is writable"
    assert os.path.realpath(interp) != os.path.realpath(sys.executable)


def test_cve_2019_5736_during_create(bundle, run_kago, cid, state_root, tmp_path):
    """While the container is `created`, its init (pid 1 inside) is kago's
    Python.  A root process exec'd into it with every capability, including
    CAP_SYS_PTRACE and no user namespace (so PR_SET_DUMPABLE 0 does not stop
    /proc/1/exe from opening), tries to open the interpreter for writing
    through /proc/1/exe and through a kept fd.  Weakened (launcher on the
    host's writable python, no ensure_protected): the writes fail only with
    "Text file busy" - the exploit then waits for the binary to go idle and
    overwrites the host's Python."""
    b = bundle("sleep 30", process=ROOT_ALL_CAPS, **RW)
    run_kago("create", "--bundle", b, cid)
    pid = state_pid(run_kago, cid)
    assert "python" in os.readlink(f"/proc/{pid}/exe")
    out_path = tmp_path / "attack.out"
    with open(out_path, "w") as out:
        p = lib_exec(state_root, cid, ["sh", "-c", ATTACK_EXE], out, **ROOT_ALL_CAPS)
        assert p.wait(30) == 0, out_path.read_text()
    out = out_path.read_text()
    assert "target /proc/1 " in out
    _check_exe_attack(out)
    run_kago("delete", "--force", cid)


def test_cve_2019_5736_during_start(bundle, run_kago, cid, tmp_path):
    """At `start` the init runs the startContainer hooks - in the container,
    as children of the still-Python init - before it execs.  The hook is the
    attacker.  Weakened as above: "Text file busy" instead of EROFS."""
    b = bundle("true", process=ROOT_ALL_CAPS, **RW,
               hooks={"startContainer": [{"path": "/bin/sh",
                                          "args": ["sh", "-c", "{ " + ATTACK_EXE + "\n} > /attack.out 2>&1"]}]})
    run_kago("run", "--bundle", b, cid)
    _check_exe_attack((b / "rootfs" / "attack.out").read_text())


SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1


def test_cve_2019_5736_during_exec_and_nondumpable(bundle, run_kago, cid, state_root,
                                                    tmp_path):
    """An exec'd process is kago's Python until its execve.  The test holds
    it right there - its filter notifies execve to a listener here, which
    keeps the notification pending - and lets the container's pid 1 attack
    it, and looks at it from the host: it must be non-dumpable (its /proc
    files owned by the host's root, not by its uid 1000).  Weakened (no
    PR_SET_DUMPABLE 0 in exec's intermediate): /proc/<pid>/fd is owned by
    1000; weakened interpreter: "Text file busy"."""
    import fcntl
    import socket
    import struct
    sock_path = str(tmp_path / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(4)
    srv.settimeout(20)
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock_path,
            "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_NOTIFY"}]}
    # pid 1: wait for the go, attack, report
    script = ("while [ ! -e /go ]; do sleep 0.05; done; { " + ATTACK_EXE
              + "\n} > /attack.out 2>&1; touch /attack.done; sleep 30")
    b = bundle(["sh", "-c", script], process=ROOT_ALL_CAPS, **RW,
               linux={"seccomp": prof})
    rootfs = b / "rootfs"

    fds = []
    answered_continue = []

    def continue_all(fd, hold_pid=None):
        """Answer pending notifications with CONTINUE; return a held one."""
        import select
        held = None
        while True:
            r, _, _ = select.select([fd], [], [], 0)
            if not r:
                return held
            buf = bytearray(80)
            try:
                fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf)
            except OSError:
                return held
            nid, npid = struct.unpack_from("=QI", buf)
            if hold_pid is not None and npid == hold_pid and held is None:
                held = nid
                continue
            fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND,
                        bytearray(struct.pack("=QqiI", nid, 0, 0,
                                              SECCOMP_USER_NOTIF_FLAG_CONTINUE)))
            answered_continue.append(npid)

    stop = threading.Event()

    def agent():
        """Collect the listeners; keep the init's filter answered (CONTINUE)."""
        srv.settimeout(0.02)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                msg, got, _, _ = socket.recv_fds(conn, 65536, 2)
                conn.close()
                fds.append((json.loads(msg), got[0]))
            except OSError:
                pass
            if fds:
                continue_all(fds[0][1])

    t = threading.Thread(target=agent, daemon=True)
    t.start()
    try:
        run_kago("run", "-d", "--bundle", b, cid)
        deadline = time.monotonic() + 10
        out = open(tmp_path / "exec.out", "w")
        p = lib_exec(state_root, cid, ["true"], out, user={"uid": 1000, "gid": 1000},
                     noNewPrivileges=True)
        while len(fds) < 2 and time.monotonic() < deadline + 10:
            time.sleep(0.02)
        assert len(fds) == 2, (tmp_path / "exec.out").read_text()
        msg, exec_fd = fds[1]
        tenant = msg["pid"]
        held = None
        while held is None and time.monotonic() < deadline + 20:
            held = continue_all(exec_fd, hold_pid=tenant)
            time.sleep(0.01)
        assert held is not None, "the exec'd process never reached execve"
        # the tenant: Python, just before execve, uid 1000
        assert "python" in os.readlink(f"/proc/{tenant}/exe")
        status = Path(f"/proc/{tenant}/status").read_text()
        assert re.search(r"^Uid:\s+1000\s", status, re.M), status
        assert os.stat(f"/proc/{tenant}/fd").st_uid == 0, "exec'd process is dumpable"
        (rootfs / "go").touch()
        deadline2 = time.monotonic() + 20
        while not (rootfs / "attack.done").exists() and time.monotonic() < deadline2:
            time.sleep(0.05)
        out_text = (rootfs / "attack.out").read_text()
        assert f"target /proc/" in out_text
        _check_exe_attack(out_text)
        # let it exec: then it is an ordinary (dumpable) process of uid 1000
        fcntl.ioctl(exec_fd, SECCOMP_IOCTL_NOTIF_SEND,
                    bytearray(struct.pack("=QqiI", held, 0, 0,
                                          SECCOMP_USER_NOTIF_FLAG_CONTINUE)))
        assert p.wait(20) == 0, (tmp_path / "exec.out").read_text()
    finally:
        stop.set()
        t.join(5)
        srv.close()
        for _, fd in fds:
            os.close(fd)
        run_kago("delete", "--force", cid, check=False)


def test_init_nondumpable_until_exec(bundle, run_kago, cid, wait_until):
    """The init, as uid 1000 and waiting for `start`, is non-dumpable (its
    /proc files belong to the host's root: no container process of uid 1000
    can open /proc/1/fd, /proc/1/exe, /proc/1/mem); after it execs the
    container's program it is an ordinary process of uid 1000.  Weakened (no
    PR_SET_DUMPABLE 0 in init): /proc/<init>/fd is owned by 1000 at once."""
    b = bundle("sleep 30", process={"user": {"uid": 1000, "gid": 1000}})
    run_kago("create", "--bundle", b, cid)
    pid = state_pid(run_kago, cid)
    assert "python" in os.readlink(f"/proc/{pid}/exe")
    assert re.search(r"^Uid:\s+1000\s", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert os.stat(f"/proc/{pid}/fd").st_uid == 0
    run_kago("start", cid)
    wait_until(lambda: "python" not in os.readlink(f"/proc/{pid}/exe"), what="exec")
    assert os.stat(f"/proc/{pid}/fd").st_uid == 1000
    run_kago("delete", "--force", cid)


# ------------------------------------------------------------ CVE-2024-21626

def test_cve_2024_21626_no_host_fd_reaches_the_container(bundle, run_kago, cid,
                                                         state_root, tmp_path):
    """runc leaked an fd of the host's cgroup directory into the container
    process (fd 7): with cwd /proc/self/fd/7 the container started *in the
    host's filesystem*.  Here: the container process and the init waiting
    for start hold no descriptor of any host directory or socket; the
    container process has exactly 0, 1, 2.  Weakened (close_range_cloexec
    left out of attrs.apply, or an fd opened without O_CLOEXEC): extra fds
    show up in the listing."""
    b = bundle("exec sleep 30", **RW)
    run_kago("create", "--bundle", b, cid)
    pid = state_pid(run_kago, cid)
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if int(fd) <= 2:
            continue
        # what init may hold until exec (the O_PATH exec.fifo, its channel):
        # close-on-exec, and never a directory
        p = f"/proc/{pid}/fd/{fd}"
        flags = int(re.search(r"flags:\s+(\d+)", Path(f"/proc/{pid}/fdinfo/{fd}")
                              .read_text()).group(1), 8)
        assert flags & os.O_CLOEXEC, f"init fd {fd} -> {target} is inheritable"
        assert not os.path.isdir(p), f"init holds a directory fd {fd} -> {target}"
    run_kago("start", cid)
    deadline = time.monotonic() + 10
    while "python" in os.readlink(f"/proc/{pid}/exe") and time.monotonic() < deadline:
        time.sleep(0.02)
    fds = {int(f): os.readlink(f"/proc/{pid}/fd/{f}") for f in os.listdir(f"/proc/{pid}/fd")}
    assert sorted(fds) == [0, 1, 2], fds
    run_kago("delete", "--force", cid)


@pytest.mark.parametrize("fd", range(3, 12))
def test_cve_2024_21626_cwd_proc_self_fd(bundle, run_kago, make_cid, fd):
    """The exploit's config: process.cwd = /proc/self/fd/N.  Either there is
    no such fd when kago chdirs (an error), or the cwd is inside the
    container.  Weakened (a host dir fd inherited at chdir): the process runs
    with its cwd in the host and `ls ..` lists the host."""
    b = bundle("pwd; ls -a .. | head -50", process={"cwd": f"/proc/self/fd/{fd}"})
    r = run_kago("run", "--bundle", b, make_cid(), check=False)
    if r.returncode == 0:
        # it ran: its cwd must be in the container's filesystem
        assert not r.stdout.startswith("(unreachable)"), r.stdout
        host_only = {"opt", "work", "root"} & set(r.stdout.split())
        assert not host_only, r.stdout
    else:
        assert f"proc/self/fd/{fd}" in r.stderr, r.stderr


def test_cve_2024_21626_exec_cwd(bundle, run_kago, cid, state_root, tmp_path):
    """The same through exec (runc's variant 2): the exec'd process gets
    cwd /proc/self/fd/N for every N; it must fail or stay inside."""
    b = bundle("sleep 30", **RW)
    run_kago("run", "-d", "--bundle", b, cid)
    for n in range(3, 10):
        out_path = tmp_path / f"exec{n}.out"
        with open(out_path, "w") as out:
            p = lib_exec(state_root, cid, ["sh", "-c", "pwd; ls -a .."], out,
                         cwd=f"/proc/self/fd/{n}")
            rc = p.wait(30)
        text = out_path.read_text()
        if rc == 0:
            assert "(unreachable)" not in text and not ({"opt", "work"} & set(text.split())), \
                text
        else:
            assert f"proc/self/fd/{n}" in text or "cwd" in text, text
    run_kago("delete", "--force", cid)


# ------------------------------------------------------------ CVE-2021-30465

RENAME_EXCHANGE = 2


def _exchange(a, b):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, a.encode(), -100, b.encode(), RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def test_cve_2021_30465_symlink_swap_during_mounts(bundle, run_kago, make_cid, tmp_path):
    """runc resolved a mount destination as a path string and then mounted
    onto it; swapping a directory for a symlink in between sent the mount
    outside the rootfs (and, with the attacker's volumes, let a container
    mount over the host).  Here a thread keeps exchanging rootfs/data (a
    directory) with a symlink to a host directory while containers are
    created with a bind mount on /data.  Every time, the volume must be
    mounted inside the rootfs (at /data, or where the symlink leads *inside*
    the root: /<host dir>), never on the host directory.  Weakened
    (``ksys.mount(src, os.path.join(rootfs, dest))``): the host directory
    gets the mount in some iterations - its marker disappears from view and
    the volume's appears there."""
    host = tmp_path / "host-target"
    host.mkdir()
    (host / "HOST-MARKER").write_text("host")
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "VOL-MARKER").write_text("vol")
    b = bundle("sleep 30", **RW)
    cfg = json.loads((b / "config.json").read_text())
    cfg["mounts"].append({"destination": "/data", "type": "bind", "source": str(vol),
                          "options": ["rbind", "rw"]})
    (b / "config.json").write_text(json.dumps(cfg))
    rootfs = b / "rootfs"
    (rootfs / "data").mkdir()
    os.symlink(str(host), rootfs / "data-swap")
    # where the symlink leads when resolved inside the root
    (rootfs / str(host).lstrip("/")).mkdir(parents=True)
    stop = threading.Event()
    running = threading.Event()
    running.set()
    swaps = [0]

    def swapper():
        while not stop.is_set():
            running.wait()
            try:
                _exchange(str(rootfs / "data"), str(rootfs / "data-swap"))
                swaps[0] += 1
            except OSError:
                pass

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    results = []
    try:
        for _ in range(15):
            c = make_cid()
            r = run_kago("create", "--bundle", b, c, check=False)
            if r.returncode == 0:
                running.clear()
                time.sleep(0.01)
                pid = json.loads(run_kago("state", c).stdout)["pid"]
                # from inside the container's root (chroot-like view)
                found = subprocess.run(
                    ["chroot", f"/proc/{pid}/root", "/bin/sh", "-c",
                     f"for p in /data /data-swap {host}; do "
                     "[ -e $p/VOL-MARKER ] && echo $p; done"],
                    capture_output=True, text=True).stdout.split()
                results.append(found)
                running.set()
                run_kago("delete", "--force", c)
            else:
                results.append(r.stderr.strip().splitlines()[-1:])
            assert (host / "HOST-MARKER").exists()
            assert not (host / "VOL-MARKER").exists()
    finally:
        stop.set()
        t.join(5)
    assert swaps[0] > 0
    ok = [r for r in results if r and r[0] in ("/data", "/data-swap", str(host))]
    assert ok, results
    for r in results:
        # created: mounted inside; or failed cleanly (a path that changed
        # under it), never silently somewhere else
        assert r, results


def test_cve_2021_30465_symlink_destination_stays_inside(bundle, run_kago, cid, tmp_path):
    """The static form: the destination is a symlink in the image pointing
    at an absolute host path (and one with ../..).  The mount lands where the
    link leads *inside* the root.  Weakened (path-string resolution): the
    host directory is mounted over in the container's namespace and the
    marker check from /proc/<pid>/root fails."""
    host = tmp_path / "host-target2"
    host.mkdir()
    (host / "HOST-MARKER").write_text("host")
    vol = tmp_path / "vol2"
    vol.mkdir()
    (vol / "VOL-MARKER").write_text("vol")
    b = bundle("sleep 30", **RW)
    cfg = json.loads((b / "config.json").read_text())
    cfg["mounts"] += [
        {"destination": "/evil", "type": "bind", "source": str(vol), "options": ["rbind"]},
        {"destination": "/evil2", "type": "bind", "source": str(vol), "options": ["rbind"]}]
    (b / "config.json").write_text(json.dumps(cfg))
    rootfs = b / "rootfs"
    os.symlink(str(host), rootfs / "evil")
    os.symlink("../../../../../../../.." + str(host), rootfs / "evil2")
    (rootfs / str(host).lstrip("/")).mkdir(parents=True)
    run_kago("create", "--bundle", b, cid)
    pid = state_pid(run_kago, cid)
    assert os.path.exists(f"/proc/{pid}/root{host}/VOL-MARKER")
    assert not (host / "VOL-MARKER").exists()
    assert (host / "HOST-MARKER").exists()
    run_kago("delete", "--force", cid)
