"""Terminals: a pty from the container's own devpts, the master sent over the
console socket with SCM_RIGHTS (as runc, so containerd, conmon and recvtty
receive it), the slave made the process's stdio and controlling tty.
Also the relay used by ``kago run -t`` / ``exec -t`` without a console socket."""

from kago import _os as os

TIOCSPTLCK = 0x40045431
TIOCGPTN = 0x80045430
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGWINSZ = 0x5413


def connect_console_socket(path: str):
    """Connect to the console socket at ``path`` (also paths over 108 bytes:
    through an O_PATH fd of its directory)."""
    import _socket
    from kago.errors import KagoError
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    dfd = -1
    try:
        target = path
        if len(path.encode()) >= 108:
            d, base = os.path.split(path)
            dfd = os.open(d or ".", os.O_PATH | os.O_CLOEXEC)
            target = f"/proc/self/fd/{dfd}/{base}"
        s.connect(target)
    except OSError as e:
        s.close()
        raise KagoError(f"console socket {path}: {e.strerror}") from None
    finally:
        if dfd >= 0:
            os.close(dfd)
    return s


def open_pty(size=None):
    """(master fd, slave fd, slave path) from /dev/ptmx of the current mount ns."""
    import fcntl
    import _struct as struct
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    path = f"/dev/pts/{n}"
    slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    if size:
        set_size(master, size.get("height", 0), size.get("width", 0))
    return master, slave, path


def set_size(fd, rows, cols):
    import fcntl
    import _struct as struct
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def send_master(sock_fd: int, master: int):
    import _socket
    from kago.process.channel import send_fds
    s = _socket.socket(fileno=sock_fd)
    try:
        send_fds(s, b"/dev/ptmx", [master])
    finally:
        s.detach()


def make_controlling(slave: int, setsid=True):
    import fcntl
    if setsid:
        try:
            os.setsid()
        except PermissionError:
            pass
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)


def preload():
    import _socket  # noqa: F401
    import fcntl  # noqa: F401
    import _struct as struct  # noqa: F401
    import kago.process.channel  # noqa: F401


def recv_master(sock) -> int:
    from kago.process.channel import recv_fds
    _, fds = recv_fds(sock, 4096, 1)
    if not fds:
        from kago.errors import KagoError
        raise KagoError("no pty master received from the container")
    return fds[0]


def relay(master: int, done_fd: int | None = None):
    """Copy our stdin to the pty and the pty to our stdout until the pty closes.
    Puts our terminal in raw mode (restored after) and forwards SIGWINCH."""
    import select
    import signal
    import termios
    import tty as _tty
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        _tty.setraw(0)
        _copy_size(0, master)

    def winch(_s, _f):
        if os.isatty(0):
            _copy_size(0, master)
    old = signal.signal(signal.SIGWINCH, winch)
    fds = [master, 0]
    try:
        while True:
            try:
                r, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in r:
                data = os.read(0, 65536)
                if not data:
                    fds.remove(0)
                else:
                    os.write(master, data)
    finally:
        signal.signal(signal.SIGWINCH, old)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)


def _copy_size(src, dst):
    import fcntl
    try:
        ws = fcntl.ioctl(src, TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, TIOCSWINSZ, ws)
    except OSError:
        pass
