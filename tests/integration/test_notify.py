"""sd_notify through kago (NOTIFY_SOCKET, as runc): the container gets a socket
of its own at /run/notify/notify.sock; `start` (and `run -d`) return once it
has said READY, which kago passes on to the caller's socket with MAINPID and a
BARRIER; `run` in the foreground passes it on while it waits.  The "host"
socket here is a datagram socket of the test's, standing in for systemd or
conmon.  Inside, the host's /usr/bin/python3.11 (bind-mounted read-only with
/usr and the libraries) sends the datagram.
"""

import array
import json
import os
import socket
import subprocess
import threading
import time

import pytest

SEND_READY = ("/usr/bin/python3.11 -IS -c 'import os, socket; "
              "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
              "s.connect(os.environ[\"NOTIFY_SOCKET\"]); s.send(b\"STATUS=up\\nREADY=1\")'")
HOST_USR = [{"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
            {"destination": "/lib", "type": "bind", "source": "/usr/lib",
             "options": ["rbind", "ro"]},
            {"destination": "/lib64", "type": "bind", "source": "/usr/lib64",
             "options": ["rbind", "ro"]}]

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/python3.11"),
                                reason="needs Debian's /usr/bin/python3.11 to send from inside")


class Host:
    """A NOTIFY_SOCKET receiver: records each datagram, closes passed fds (the
    barrier's pipe: its closing is the acknowledgement)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.got = []
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop:
            try:
                msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(16))
            except socket.timeout:
                continue
            fds = array.array("i")
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[:len(data) - len(data) % 4])
            for fd in fds:
                os.close(fd)
            self.got.append((msg, len(fds)))

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path / "host.sock")
    yield h
    h.close()


def with_notify(host):
    return dict(os.environ, NOTIFY_SOCKET=host.path)


def notify_bundle(bundle, script):
    def edit(c):
        c["mounts"] += HOST_USR
    return bundle(script, edit=edit)


def state(run_kago, cid):
    return json.loads(run_kago("state", cid).stdout)


def test_create_start_forwards_ready(bundle, run_kago, cid, state_root, host, tmp_path,
                                     assert_clean):
    out = tmp_path / "out"
    b = notify_bundle(bundle, 'echo "$NOTIFY_SOCKET"; stat -c %a /run/notify/notify.sock; '
                              "sleep 0.5; " + SEND_READY + "; echo sent; sleep 600")
    with open(out, "w") as o:
        run_kago("create", "-b", b, cid, env=with_notify(host), stdout=o)
    assert os.path.isdir(state_root / cid / "notify")
    t0 = time.monotonic()
    run_kago("start", cid, env=with_notify(host))
    took = time.monotonic() - t0
    # start returned once READY was passed on: the datagrams are there already
    pid = state(run_kago, cid)["pid"]
    assert host.got == [(b"READY=1\n", 0), (f"MAINPID={pid}\n".encode(), 0), (b"BARRIER=1", 1)]
    assert took >= 0.4, took                  # it waited for the container's READY
    lines = out.read_text().split()
    assert lines[:3] == ["/run/notify/notify.sock", "777", "sent"]
    run_kago("delete", "--force", cid)
    assert not (state_root / cid).exists()
    assert_clean()


def test_start_returns_when_the_container_dies_without_ready(bundle, run_kago, cid, host,
                                                              assert_clean):
    b = notify_bundle(bundle, "sleep 0.3; exit 3")
    run_kago("create", "-b", b, cid, env=with_notify(host))
    run_kago("start", cid, env=with_notify(host), timeout=20)
    assert state(run_kago, cid)["status"] == "stopped"
    assert host.got == []
    run_kago("delete", cid)
    assert_clean()


def test_run_detached_and_foreground(bundle, run_kago, make_cid, host, assert_clean):
    b = notify_bundle(bundle, SEND_READY + "; sleep 0.5")
    d = make_cid()
    run_kago("run", "-d", "-b", b, d, env=with_notify(host))
    assert [m for m, _ in host.got][0] == b"READY=1\n"   # before run -d returned
    assert host.got[2] == (b"BARRIER=1", 1)
    run_kago("delete", "--force", d)
    host.got.clear()
    r = run_kago("run", "-b", b, make_cid(), env=with_notify(host))
    assert r.returncode == 0
    assert [m for m, _ in host.got][0::2] == [b"READY=1\n", b"BARRIER=1"]
    assert host.got[1][0].startswith(b"MAINPID=")
    # the forwarding child is gone with the container
    left = subprocess.run(["pgrep", "-f", f"kago.* run -b {b}"], capture_output=True, text=True)
    assert left.stdout == ""
    assert_clean()


def test_without_notify_socket_nothing_is_added(bundle, run_kago, cid, state_root):
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    b = bundle("env; ls /run")
    r = run_kago("run", "-b", b, cid, env=env)
    assert "NOTIFY_SOCKET" not in r.stdout and "notify" not in r.stdout


def test_unreachable_host_socket_is_reported(bundle, run_kago, cid, tmp_path, assert_clean):
    b = notify_bundle(bundle, SEND_READY + "; sleep 600")
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "nobody.sock"))
    run_kago("create", "-b", b, cid, env=env)
    r = run_kago("start", cid, env=env, check=False)
    assert r.returncode == 1
    assert f'msg="connect to NOTIFY_SOCKET {tmp_path}/nobody.sock: No such file or directory"' \
        in r.stderr, r.stderr
    assert state(run_kago, cid)["status"] == "running"   # started, as runc leaves it
    run_kago("delete", "--force", cid)
    assert_clean()
