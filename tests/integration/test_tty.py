"""Terminals (issue 3): the pty master sent over a console socket (create +
start, exec -t), consoleSize, long socket paths, `kago run` of a terminal relayed to a
real terminal (tmux), and the error cases.

The console-socket receiver is written here, the way containerd, conmon and
runc's recvtty receive the master: an AF_UNIX SOCK_STREAM listener, one
connection, one SCM_RIGHTS message.
"""

import fcntl
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest

TIOCGPTN = 0x80045430


# ------------------------------------------------------------------ helpers

class ConsoleSocket:
    """A console-socket listener at ``path`` (any length: bound through an
    O_PATH fd of its directory, so paths over 108 bytes work)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        d, base = os.path.split(self.path)
        dfd = os.open(d, os.O_PATH)
        try:
            self.sock.bind(f"/proc/self/fd/{dfd}/{base}")
        finally:
            os.close(dfd)
        self.sock.listen(1)
        self.fds: list[int] = []

    def receive(self, timeout: float = 20) -> tuple[bytes, int]:
        """(the message's bytes, the one fd) of the next connection."""
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(timeout)
            msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
        self.fds += fds
        assert len(fds) == 1, f"expected one fd over the console socket, got {fds} ({msg!r})"
        return msg, fds[0]

    def pending(self) -> bool:
        """Whether anyone has connected (without waiting)."""
        r, _, _ = select.select([self.sock], [], [], 0)
        return bool(r)

    def close(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@pytest.fixture
def console(tmp_path):
    made = []

    def make(path=None) -> ConsoleSocket:
        s = ConsoleSocket(path or tmp_path / f"console-{len(made)}.sock")
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def long_dir(base: Path, length: int = 140) -> Path:
    """A directory under base whose socket path will exceed 108 bytes."""
    d = base
    while len(str(d)) < length:
        d = d / ("d" * 40)
    d.mkdir(parents=True)
    return d


class Master:
    """Reads and writes on a received pty master, accumulating the output."""

    def __init__(self, fd: int):
        self.fd = fd
        self.out = b""
        self.eof = False

    def write(self, data: str):
        os.write(self.fd, data.encode())

    def read_until(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out:
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(f"{text!r} never came through the pty master; "
                                     f"got {self.out!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: every slave fd closed
                data = b""
            if not data:
                self.eof = True
            self.out += data
        return self.text

    def read_to_eof(self, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            assert left > 0, f"the pty never closed; got {self.out!r}"
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                continue
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            if not data:
                self.eof = True
            self.out += data
        return self.text

    @property
    def text(self) -> str:
        return self.out.decode(errors="replace").replace("\r\n", "\n")


def ptn(fd: int) -> int:
    """The pty number of a master (TIOCGPTN only works on a master)."""
    return struct.unpack("I", fcntl.ioctl(fd, TIOCGPTN, b"\0" * 4))[0]


def fdinfo(fd: int) -> dict:
    out = {}
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k.strip()] = v.strip()
    return out


def check_master(fd: int, container_pid: int) -> int:
    """The received fd is a pty master from the container's own devpts
    (not the host's); returns its pty number."""
    assert os.isatty(fd)
    n = ptn(fd)
    info = fdinfo(fd)
    if "tty-index" in info:
        assert int(info["tty-index"]) == n
    # the container's devpts instance, seen through init's root
    ctr_pts = os.stat(f"/proc/{container_pid}/root/dev/pts")
    assert os.fstat(fd).st_dev == ctr_pts.st_dev, "master not from the container's devpts"
    assert os.fstat(fd).st_dev != os.stat("/dev/pts").st_dev, "master from the host's devpts"
    return n


def lines_with(text: str, prefix: str) -> list[str]:
    return [line[len(prefix):].strip() for line in text.splitlines() if line.startswith(prefix)]


def state(run_kago, cid) -> dict:
    return json.loads(run_kago("state", cid).stdout)


def tty_nr(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[4])


def pts_tty_nr(n: int) -> int:
    """/proc/PID/stat's tty_nr of /dev/pts/N (major 136 + N // 256)."""
    major, minor = 136 + n // 256, n % 256
    return (minor & 0xFF) | (major << 8) | ((minor & ~0xFF) << 12)


# the container side: every fact on its own line, then an echo of the input
PROBE = (
    "echo tty=$(tty); echo size=$(stty size); "
    "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo stdio=tty; "
    "echo console=$(stat -L -c %t:%T /dev/console) pts=$(stat -L -c %t:%T $(tty)); "
    "echo ready; read line; echo got:$line; exit 5"
)


# ------------------------------------------------- console socket: create + start

def test_console_socket_create_start(bundle, run_kago, cid, console, wait_until, assert_clean):
    b = bundle(PROBE, process={"terminal": True, "consoleSize": {"height": 31, "width": 97}})
    s = console()
    run_kago("create", "--bundle", b, "--console-socket", s.path, cid)
    msg, fd = s.receive()
    st = state(run_kago, cid)
    assert st["status"] == "created"
    n = check_master(fd, st["pid"])
    assert msg  # runc sends the master's name with it
    # init has the slave as its controlling terminal, already before start
    assert tty_nr(st["pid"]) == pts_tty_nr(n)

    run_kago("start", cid)
    m = Master(fd)
    text = m.read_until("ready")
    assert lines_with(text, "tty=") == [f"/dev/pts/{n}"] or \
        lines_with(text, "tty=") == ["/dev/console"]
    assert lines_with(text, "size=") == ["31 97"]
    assert lines_with(text, "stdio=") == ["tty"]
    console_dev, pts_dev = _console_pts(text)
    assert console_dev == pts_dev, "/dev/console is not the container's pty"
    # input reaches the process, its output comes back
    m.write("hello through the master\n")
    m.read_until("got:hello through the master")
    m.read_to_eof()
    wait_until(lambda: state(run_kago, cid)["status"] == "stopped", what="container to stop")
    run_kago("delete", cid)
    assert_clean()


def _console_pts(text: str) -> tuple[str, str]:
    line = [ln for ln in text.splitlines() if ln.startswith("console=")][0]
    console_part, pts_part = line.split()
    return console_part.split("=", 1)[1], pts_part.split("=", 1)[1]


def test_console_socket_long_path(bundle, run_kago, cid, console, tmp_path, wait_until,
                                  assert_clean):
    path = long_dir(tmp_path) / "console.sock"
    assert len(str(path).encode()) > 108
    b = bundle("echo size=$(stty size); read line; echo got:$line",
               process={"terminal": True, "consoleSize": {"height": 12, "width": 34}})
    s = console(path)
    run_kago("create", "--bundle", b, "--console-socket", path, cid)
    _, fd = s.receive()
    check_master(fd, state(run_kago, cid)["pid"])
    run_kago("start", cid)
    m = Master(fd)
    assert lines_with(m.read_until("size="), "size=") in ([], ["12 34"])
    m.write("long\n")
    m.read_until("got:long")
    assert lines_with(m.text, "size=") == ["12 34"]
    m.read_to_eof()
    wait_until(lambda: state(run_kago, cid)["status"] == "stopped", what="container to stop")
    run_kago("delete", cid)
    assert_clean()


def test_console_socket_relative_to_bundle(bundle, run_kago, cid, console, assert_clean):
    """runc resolves a relative --console-socket against the bundle."""
    b = bundle("echo tty=$(tty)", process={"terminal": True})
    s = console(b / "rel.sock")
    run_kago("create", "--bundle", b, "--console-socket", "rel.sock", cid, cwd="/")
    _, fd = s.receive()
    n = check_master(fd, state(run_kago, cid)["pid"])
    run_kago("start", cid)
    m = Master(fd)
    m.read_to_eof()
    assert lines_with(m.text, "tty=")[0] in (f"/dev/pts/{n}", "/dev/console")
    run_kago("delete", "--force", cid)
    assert_clean()


# ------------------------------------------------- console socket: exec -t

@pytest.fixture
def running(bundle, run_kago, cid):
    """A running container (`sleep 1000`, no terminal): (bundle, init pid)."""
    b = bundle(["sleep", "1000"])
    run_kago("run", "-d", "--bundle", b, cid)
    return b, state(run_kago, cid)["pid"]


def spawn_kago(kago_bin, state_root, *args, **kw) -> subprocess.Popen:
    return subprocess.Popen([kago_bin, "--root", str(state_root), *map(str, args)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def finish(proc: subprocess.Popen, timeout: float = 20) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} did not exit; stderr: {err}") from None
    return proc.returncode, out, err


def test_exec_tty_console_socket(running, run_kago, cid, console, kago_bin, state_root,
                                 tmp_path):
    """exec -p process.json (terminal, consoleSize) --console-socket: the
    foreground exec waits and exits with the process's status."""
    _, init = running
    proc = {"terminal": True, "consoleSize": {"height": 40, "width": 120},
            "args": ["sh", "-c", PROBE], "cwd": "/",
            "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 0, "gid": 0}}
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps(proc))
    s = console()
    p = spawn_kago(kago_bin, state_root, "exec", "-p", pf, "--console-socket", s.path, cid)
    try:
        _, fd = s.receive()
        n = check_master(fd, init)
        m = Master(fd)
        text = m.read_until("ready")
        assert lines_with(text, "tty=") == [f"/dev/pts/{n}"]
        assert lines_with(text, "size=") == ["40 120"]
        assert lines_with(text, "stdio=") == ["tty"]
        m.write("to the tenant\n")
        m.read_until("got:to the tenant")
    finally:
        rc, out, err = finish(p)
    assert rc == 5, err
    assert out == ""   # everything went through the pty
    assert state(run_kago, cid)["status"] == "running"


def test_exec_t_console_socket_long_path(running, run_kago, cid, console, kago_bin, state_root,
                                         tmp_path):
    """exec -t --console-socket with a socket path over 108 bytes; the
    exec'd shell is a session leader with the pty as its controlling tty."""
    _, init = running
    path = long_dir(tmp_path) / "exec.sock"
    assert len(str(path).encode()) > 108
    s = console(path)
    p = spawn_kago(kago_bin, state_root, "exec", "-t", "--console-socket", path, cid,
                   "sh", "-c", "echo tty=$(tty) sid=$(cut -d' ' -f6 /proc/$$/stat) pid=$$; "
                   "echo ready; read line; echo got:$line")
    try:
        _, fd = s.receive()
        n = check_master(fd, init)
        m = Master(fd)
        m.read_until("ready")
        line = lines_with(m.text, "tty=")[0].split()
        assert line[0] == f"/dev/pts/{n}"
        assert line[1].split("=")[1] == line[2].split("=")[1], "not a session leader"
        m.write("x\n")
        m.read_until("got:x")
    finally:
        rc, _, err = finish(p)
    assert rc == 0, err


def test_exec_t_keeps_the_containers_console_size(bundle, run_kago, cid, console, tmp_path):
    """exec -t starts from the container's process, consoleSize included (runc)."""
    b = bundle(["sleep", "1000"], process={"consoleSize": {"height": 22, "width": 66}})
    run_kago("run", "-d", "--bundle", b, cid)
    s = console()
    run_kago("exec", "-d", "-t", "--console-socket", s.path, cid,
             "sh", "-c", "echo size=$(stty size)")
    _, fd = s.receive()
    m = Master(fd)
    m.read_to_eof()
    assert lines_with(m.text, "size=") == ["22 66"]


def test_exec_detached_tty_console_socket(running, run_kago, cid, console, tmp_path, wait_until):
    """exec -d -t --console-socket: returns at once; the master still works."""
    _, init = running
    s = console()
    pid_file = tmp_path / "tenant.pid"
    run_kago("exec", "-d", "-t", "--console-socket", s.path, "--pid-file", pid_file, cid,
             "sh", "-c", "read line; echo got:$line")
    _, fd = s.receive()
    check_master(fd, init)
    tenant = int(pid_file.read_text())
    assert tty_nr(tenant) == pts_tty_nr(ptn(fd))
    m = Master(fd)
    m.write("detached\n")
    m.read_until("got:detached")
    m.read_to_eof()


# ------------------------------------------------- errors

def one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line of error, got:\n{err}"
    return lines[0]


def test_create_terminal_without_console_socket(bundle, run_kago, cid, state_root, assert_clean):
    b = bundle("true", process={"terminal": True})
    r = run_kago("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0
    assert "console socket" in one_line(r.stderr)
    assert not (state_root / cid).exists()
    assert_clean()


def test_console_socket_with_terminal_false(bundle, run_kago, cid, console, state_root,
                                            assert_clean):
    b = bundle("true")   # process.terminal false
    s = console()
    for verb in (["create"], ["run", "-d"]):
        r = run_kago(*verb, "--bundle", b, "--console-socket", s.path, cid, check=False)
        assert r.returncode != 0
        line = one_line(r.stderr)
        assert "console socket" in line and "terminal" in line, line
        assert not s.pending(), "connected to the console socket anyway"
        assert not (state_root / cid).exists()
        assert_clean()


@pytest.fixture(params=["missing", "regular-file", "no-listener", "directory"])
def bad_socket(request, tmp_path) -> Path:
    path = tmp_path / "bad.sock"
    if request.param == "regular-file":
        path.write_text("")
    elif request.param == "no-listener":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(path))
        s.close()   # the socket file stays, nobody listens
    elif request.param == "directory":
        path.mkdir()
    return path


def test_create_unreachable_console_socket(bundle, run_kago, cid, bad_socket, state_root,
                                           assert_clean):
    b = bundle("true", process={"terminal": True})
    r = run_kago("create", "--bundle", b, "--console-socket", bad_socket, cid, check=False)
    assert r.returncode != 0
    assert str(bad_socket) in one_line(r.stderr)
    assert not (state_root / cid).exists()
    assert_clean()


def test_exec_console_socket_errors(running, run_kago, cid, tmp_path, console):
    _, init = running
    before = json.loads(run_kago("ps", "-f", "json", cid).stdout)
    assert before == [init]
    missing = tmp_path / "missing.sock"
    s = console()
    cases = [
        (["-t", "--console-socket", missing], str(missing)),
        (["--console-socket", s.path], "terminal"),          # a socket, no terminal
        (["-d", "-t"], "console socket"),                    # detached tty, nowhere to send it
    ]
    for flags, expect in cases:
        r = run_kago("exec", *flags, cid, "sh", "-c", "echo leaked > /dev/shm/x", check=False)
        assert r.returncode != 0, flags
        assert expect in one_line(r.stderr), (flags, r.stderr)
        assert json.loads(run_kago("ps", "-f", "json", cid).stdout) == [init], flags
        assert not s.pending()
    r = run_kago("exec", cid, "cat", "/dev/shm/x", check=False)
    assert r.returncode != 0   # none of them ran
    assert state(run_kago, cid)["status"] == "running"


# ------------------------------------------------- run (terminal, no socket) under tmux

class Tmux:
    """A private tmux server (its own socket), killed at the end."""

    def __init__(self):
        exe = shutil.which("tmux")
        if exe is None:
            pytest.fail("tmux is not installed (scripts/setup.sh installs it)", pytrace=False)
        self.exe = exe
        self.name = f"kago-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args, check=True) -> str:
        r = subprocess.run([self.exe, "-L", self.name, "-f", "/dev/null", *map(str, args)],
                           capture_output=True, text=True, timeout=20,
                           env={**os.environ, "TERM": "xterm"})
        if check and r.returncode != 0:
            raise AssertionError(f"tmux {' '.join(map(str, args))}: {r.stderr}")
        return r.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-J", "-t", "t")

    def pane(self, fmt: str) -> str:
        return self("display-message", "-p", "-t", "t", fmt).strip()

    def kill(self):
        self("kill-server", check=False)
        # the server's socket file (tmux leaves it behind when killed)
        tmpdir = os.environ.get("TMUX_TMPDIR") or "/tmp"
        try:
            os.unlink(os.path.join(tmpdir, f"tmux-{os.geteuid()}", self.name))
        except FileNotFoundError:
            pass


@pytest.fixture
def tmux():
    t = Tmux()
    yield t
    t.kill()


@pytest.mark.parametrize("mode", ["run", "exec"])
def test_relay_under_tmux(bundle, run_kago, cid, kago_bin, state_root, tmux, tmp_path,
                          wait_until, assert_clean, mode):
    """No console socket: kago relays the pty to its own terminal.  run: a
    terminal: true container; exec -t: a shell in a running container."""
    kago = f"{kago_bin} --root {state_root}"
    if mode == "run":
        b = bundle(["sh"], process={"terminal": True})
        command = f"{kago} run --bundle {b} {cid}"
    else:
        b = bundle(["sleep", "1000"])
        run_kago("run", "-d", "--bundle", b, cid)
        command = f"{kago} exec -t {cid} sh"
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "pane.sh"
    script.write_text(
        f"stty -g > {out}/before.tmp; mv {out}/before.tmp {out}/before\n"
        f"{command}\n"
        f"echo $? > {out}/rc\n"
        f"stty -g > {out}/after.tmp; mv {out}/after.tmp {out}/after\n"
        "exec sleep 600\n")
    tmux("new-session", "-d", "-s", "t", "-x", 80, "-y", 24, f"sh {script}")
    tmux("set-option", "-g", "status", "off")
    pane_tty = tmux.pane("#{pane_tty}")

    wait_until(lambda: (out / "before").exists(), what="the pane's script")
    # the prompt of the container's shell
    def prompt():
        screen = tmux.screen()
        assert not (out / "rc").exists(), f"kago exited early:\n{screen}"
        return screen.rstrip().endswith("/ #")
    wait_until(prompt, timeout=20, what="the container's prompt in the pane")
    st = state(run_kago, cid)
    assert st["status"] == "running"
    # while kago relays, the outer terminal is in raw mode (no echo, no canon)
    flags = subprocess.run(["stty", "-a", "-F", pane_tty], capture_output=True,
                           text=True).stdout.split()
    assert "-icanon" in flags and "-echo" in flags, flags

    # a command and its output
    tmux("send-keys", "-t", "t", "echo out-$((6*7))", "Enter")
    wait_until(lambda: "out-42" in tmux.screen(), what="the command's output")
    tmux("send-keys", "-t", "t", "tty", "Enter")
    wait_until(lambda: "/dev/pts/" in tmux.screen() or "/dev/console" in tmux.screen(),
               what="tty's output")

    def size_shown(marker):
        tmux("send-keys", "-t", "t", f"echo {marker}=$(stty size)", "Enter")
        def found():
            got = [ln.split("=", 1)[1].strip() for ln in tmux.screen().splitlines()
                   if ln.startswith(f"{marker}=")]
            return got[0] if got else None
        return wait_until(found, what=f"{marker} in the pane")

    # the size follows the pane: at start and after resizes (SIGWINCH)
    expect = f"{tmux.pane('#{pane_height}')} {tmux.pane('#{pane_width}')}"
    assert size_shown("size0") == expect
    tmux("resize-window", "-t", "t", "-x", 100, "-y", 30)
    wait_until(lambda: tmux.pane("#{pane_width}") == "100", what="tmux to resize")
    expect1 = f"{tmux.pane('#{pane_height}')} {tmux.pane('#{pane_width}')}"
    assert expect1 != expect
    wait_until(lambda: size_shown("size1") == expect1, timeout=5,
               what=f"stty size {expect1} inside after resize-window")
    tmux("resize-window", "-t", "t", "-x", 61, "-y", 17)
    wait_until(lambda: tmux.pane("#{pane_width}") == "61", what="tmux to resize")
    expect2 = f"{tmux.pane('#{pane_height}')} {tmux.pane('#{pane_width}')}"
    wait_until(lambda: size_shown("size2") == expect2, timeout=5,
               what=f"stty size {expect2} inside after the second resize")

    # exit: kago returns the status and restores the terminal
    tmux("send-keys", "-t", "t", "exit 3", "Enter")
    wait_until(lambda: (out / "after").exists(), timeout=20, what=f"kago {mode} to exit")
    assert (out / "rc").read_text().strip() == "3"
    assert (out / "after").read_text() == (out / "before").read_text()
    flags = subprocess.run(["stty", "-a", "-F", pane_tty], capture_output=True,
                           text=True).stdout.split()
    assert "icanon" in flags and "echo" in flags, flags
    if mode == "exec":
        assert state(run_kago, cid)["status"] == "running"
        assert ps_json_of(run_kago, cid) == [st["pid"]]   # the shell is gone
    run_kago("delete", "--force", cid, check=mode == "exec")  # run removed it itself
    assert_clean()


def ps_json_of(run_kago, cid) -> list:
    return json.loads(run_kago("ps", "-f", "json", cid).stdout)


def test_console_pty_belongs_to_the_user_and_group_tty(bundle, run_kago, cid, console,
                                                      kago_bin, state_root, tmp_path,
                                                      wait_until, assert_clean):
    """The pty is process.user.uid's, its group the devpts mount's gid=5 (tty),
    as runc leaves it: for the first process and for exec -t alike; seen from
    inside (stat of the tty) and from the host (through init's root)."""
    probe = "echo owner=$(stat -L -c %u:%g $(tty)); echo ready; read line"
    b = bundle(probe, process={"terminal": True, "user": {"uid": 1000, "gid": 1000}})
    s = console()
    run_kago("create", "--bundle", b, "--console-socket", s.path, cid)
    _, fd = s.receive()
    init = state(run_kago, cid)["pid"]
    n = check_master(fd, init)
    run_kago("start", cid)
    m = Master(fd)
    text = m.read_until("ready")
    assert lines_with(text, "owner=") == ["1000:5"], text
    host = os.stat(f"/proc/{init}/root/dev/pts/{n}")
    assert (host.st_uid, host.st_gid) == (1000, 5)

    proc = {"terminal": True, "args": ["sh", "-c", probe], "cwd": "/",
            "env": ["PATH=/usr/bin:/bin"], "user": {"uid": 1001, "gid": 1001}}
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps(proc))
    s2 = console()
    p = spawn_kago(kago_bin, state_root, "exec", "-p", pf, "--console-socket", s2.path, cid)
    try:
        _, fd2 = s2.receive()
        n2 = check_master(fd2, init)
        m2 = Master(fd2)
        text = m2.read_until("ready")
        assert lines_with(text, "owner=") == ["1001:5"], text
        host = os.stat(f"/proc/{init}/root/dev/pts/{n2}")
        assert (host.st_uid, host.st_gid) == (1001, 5)
        m2.write("done\n")
    finally:
        finish(p)
    m.write("done\n")
    m.read_to_eof()
    wait_until(lambda: state(run_kago, cid)["status"] == "stopped", what="container to stop")
    run_kago("delete", cid)
    assert_clean()
