"""sd_notify through the runtime, as runc does when ``NOTIFY_SOCKET`` is set.

systemd (or podman/conmon with ``--sdnotify=container``) gives the runtime a
``NOTIFY_SOCKET``.  The container can't reach that socket, so:

- ``create`` makes ``<state dir>/notify/``, bind-mounts it read-only at
  ``/run/notify`` in the container and sets ``NOTIFY_SOCKET=/run/notify/notify.sock``
  in the process's environment (:func:`setup_spec`);
- ``start`` binds ``<state dir>/notify/notify.sock`` (a datagram socket, mode
  0777 so a non-root container user can write to it) before it releases init,
  and after it waits for a ``READY=...`` datagram from inside, or for init to
  die (:func:`forward`);
- on ``READY`` it sends the host's socket that line, ``MAINPID=<init's pid>``
  and ``BARRIER=1`` with a pipe whose closing says systemd has processed them
  (30 s at most, then a warning).

Imported only when ``NOTIFY_SOCKET`` is set.
"""

import _socket

from kago import _os as os

DIR = "notify"
SOCK = "notify.sock"
IN_CONTAINER = "/run/notify/" + SOCK
BARRIER_TIMEOUT = 30.0


def setup_spec(spec: dict, state_dir: str) -> None:
    """Make the socket's directory and add its mount and variable to ``spec``
    (the in-memory spec init is built from; config.json is not touched)."""
    d = os.path.join(state_dir, DIR)
    os.mkdir(d, 0o755)
    spec.setdefault("mounts", []).append({
        "destination": "/run/notify", "source": d, "type": "bind",
        "options": ["bind", "nosuid", "noexec", "nodev", "ro"]})
    proc = spec["process"]
    proc["env"] = list(proc.get("env") or ()) + ["NOTIFY_SOCKET=" + IN_CONTAINER]


def bind(state_dir: str):
    """The container's end: a datagram socket at <state dir>/notify/notify.sock,
    or None when this container was created without NOTIFY_SOCKET."""
    d = os.path.join(state_dir, DIR)
    if not os.path.isdir(d):
        return None
    path = os.path.join(d, SOCK)
    try:
        os.unlink(path)       # a start that died before (runc would fail here)
    except FileNotFoundError:
        pass
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        s.bind(path)
        os.chmod(path, 0o777)
    except OSError:
        s.close()
        raise
    return s


def _address(host: str) -> str:
    # systemd's sockets may be abstract: "@name"
    return "\0" + host[1:] if host.startswith("@") else host


def forward(sock, host: str, pid: int, start_time=None) -> bool:
    """Wait for ``READY=`` from the container (or for ``pid`` to exit) and pass
    it on to ``host`` with MAINPID and a barrier.  True if READY was sent.
    ``start_time``: init's (state.json); a pid reused once a fast subreaper
    reaped init is not waited for."""
    import select
    try:
        pfd = os.pidfd_open(pid)
    except OSError:           # gone already (reaped): only what it sent before
        pfd = -1
    else:
        if start_time not in (None, -1):
            from kago.container.state import proc_start_time
            st = proc_start_time(pid)
            if st is None or st[1] != start_time:
                os.close(pfd)
                pfd = -1
    try:
        p = select.poll()
        p.register(sock.fileno(), select.POLLIN)
        if pfd >= 0:
            p.register(pfd, select.POLLIN)
        while True:
            events = dict(p.poll(None if pfd >= 0 else 0))
            if pfd >= 0 and pfd in events:
                # init is gone: a READY it sent just before exiting still counts
                p.unregister(pfd)
                os.close(pfd)
                pfd = -1
            if sock.fileno() in events:
                ready = next((line for line in sock.recv(4096).split(b"\n")
                              if line.startswith(b"READY=")), None)
                if ready is not None:
                    break
            elif pfd < 0:
                return False        # init is gone and nothing more is queued
    finally:
        if pfd >= 0:
            os.close(pfd)
    _notify_host(host, ready, pid)
    return True


def forward_in_child(sock, host: str, pid: int, start_time=None) -> int:
    """:func:`forward` in a child process (``run`` in the foreground waits for
    the container meanwhile); returns the child's pid, for the caller to kill
    and reap once the container has exited."""
    child = os.fork()
    if child == 0:
        code = 1
        try:
            forward(sock, host, pid, start_time)
            code = 0
        except BaseException as e:  # noqa: B902 - a child: log it and exit
            from kago import log
            log.warning(f"NOTIFY_SOCKET: {e}")
        finally:
            os._exit(code)
    sock.close()
    return child


def _notify_host(host: str, ready: bytes, pid: int) -> None:
    c = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
    try:
        try:
            c.connect(_address(host))
        except OSError as e:
            from kago.errors import SyscallError
            raise SyscallError(e.errno, "connect to NOTIFY_SOCKET", host) from None
        c.send(ready + b"\n")
        c.send(f"MAINPID={pid}\n".encode())
        _barrier(c)
    finally:
        c.close()


def _barrier(c) -> None:
    """sd_notify_barrier: systemd closes the pipe once it has read what we sent."""
    import select
    from kago.process.channel import send_fds
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        send_fds(c, b"BARRIER=1", [w])
        os.close(w)
        w = -1
        if not select.select([r], [], [], BARRIER_TIMEOUT)[0]:
            from kago import log
            log.warning(f"Timeout after waiting {BARRIER_TIMEOUT:g}s for barrier. Ignored.")
            return
        if os.read(r, 1):
            from kago.errors import KagoError
            raise KagoError("NOTIFY_SOCKET: unexpected read from synchronization pipe")
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
