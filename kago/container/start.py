"""start: release init through exec.fifo, then run poststart hooks."""

from kago import _debug
from kago import _json as json
from kago import _os as os   # not os: see kago/_os.py

from kago.container import state as _st


def start(c, notify_socket=None, wait_ready=True):
    """Release init.  With ``notify_socket``, forward its sd_notify READY
    (kago.notify) before returning - or, without ``wait_ready``, from a child
    process that :meth:`Container.wait` ends (``run`` in the foreground)."""
    nsock = None
    try:
        with _st.Lock(c.state_dir):
            status = c.status
            if status != "created":
                from kago.errors import InvalidState
                raise InvalidState(c.id, status, "created")
            if notify_socket:
                from kago import notify
                nsock = notify.bind(c.state_dir)   # before init can exec
            fifo = os.path.join(c.state_dir, _st.FIFO)
            _debug("releasing init through exec.fifo", pid=c._data["pid"], path=fifo)
            data = _read_fifo(fifo, c._data["pid"], c._data.get("start_time"))
            try:
                os.unlink(fifo)
            except FileNotFoundError:
                pass
        _started(c, data)
    except BaseException:
        if nsock is not None:
            nsock.close()
        raise
    if nsock is None:
        return
    if not wait_ready:
        c._notify_child = notify.forward_in_child(nsock, notify_socket, c._data["pid"],
                                                  c._data.get("start_time"))
        return
    try:
        notify.forward(nsock, notify_socket, c._data["pid"], c._data.get("start_time"))
    finally:
        nsock.close()


def _started(c, data):
    _debug("exec.fifo read", data=data.decode(errors="replace"))
    if data != b"0":
        from kago.errors import KagoError, from_wire
        body = data[1:] if data.startswith(b"0") else data
        try:
            raise from_wire(json.loads(body))
        except ValueError:
            raise KagoError(f"container {c.id}: init exited before exec") from None
    _debug("container started", pid=c._data["pid"])
    hooks = c.config().get("hooks", {}).get("poststart")
    if hooks:
        from kago.errors import KagoError
        from kago.hooks import run_hooks
        try:
            st = c.oci_state("running")
            run_hooks("poststart", hooks, st, cwd=st["bundle"])   # runc's cwd
        except KagoError as e:
            from kago import log
            log.warning(f"poststart hook failed: {e}")


def _read_fifo(path, pid, start_time=None):
    """Open exec.fifo for reading and read until init's exec closes it.

    Non-blocking, polled beside a pidfd of init, so a dead init can't hang us.
    Whatever the events say, the fifo is drained before deciding: a process
    that execs and exits at once (``echo hello``) makes the pidfd and the fifo
    ready together, and its ``0`` must still be read.

    Init blocks opening the fifo for writing until this open, so once init is
    gone - exited, even reaped already by a fast subreaper (conmon, a shim) so
    that its pid is free or taken by another process - everything it wrote is
    in the pipe: a gone init is drained like a dead one, never taken as an
    init that died before exec."""
    import select
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    pfd = -1
    chunks = []
    try:
        try:
            pfd = os.pidfd_open(pid)
        except ProcessLookupError:
            pass                      # reaped already: the fifo says how it went
        else:
            st = _st.proc_start_time(pid) if start_time not in (None, -1) else None
            if start_time not in (None, -1) and (st is None or st[1] != start_time):
                os.close(pfd)         # the pid was reused after init was reaped
                pfd = -1
        p = select.poll()
        p.register(fd, select.POLLIN | select.POLLHUP)
        if pfd >= 0:
            p.register(pfd, select.POLLIN)
        while True:
            events = p.poll() if pfd >= 0 else ()
            dead = pfd < 0 or any(f == pfd for f, _ in events)
            hup = any(f == fd and ev & select.POLLHUP for f, ev in events)
            eof = False
            while True:
                try:
                    b = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not b:
                    eof = True  # (also before any writer came: then poll waits)
                    break
                chunks.append(b)
            if dead:
                # init (or what it exec'd) is gone: everything it wrote is
                # in the pipe and was just read
                break
            if hup or (eof and chunks):
                break
    finally:
        os.close(fd)
        if pfd >= 0:
            os.close(pfd)
    return b"".join(chunks)
