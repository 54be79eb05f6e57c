"""start: release init through exec.fifo, then run poststart hooks."""

from kago import _json as json
import os

from kago.container import state as _st
from kago.errors import InvalidState, KagoError, from_wire


def start(c):
    with _st.Lock(c.state_dir):
        status = c.status
        if status != "created":
            raise InvalidState(c.id, status, "created")
        fifo = os.path.join(c.state_dir, _st.FIFO)
        data = _read_fifo(fifo, c._data["pid"])
        try:
            os.unlink(fifo)
        except FileNotFoundError:
            pass
    if data != b"0":
        body = data[1:] if data.startswith(b"0") else data
        try:
            raise from_wire(json.loads(body))
        except ValueError:
            raise KagoError(f"container {c.id}: init exited before exec") from None
    hooks = c.config().get("hooks", {}).get("poststart")
    if hooks:
        from kago.hooks import run_hooks
        try:
            run_hooks("poststart", hooks, c.oci_state("running"))
        except KagoError as e:
            from kago import log
            log.warning(f"poststart hook failed: {e}")


def _read_fifo(path, pid):
    """Open exec.fifo for reading and read until init's exec closes it.

    Non-blocking, polled beside a pidfd of init, so a dead init can't hang us."""
    import select
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        pfd = os.pidfd_open(pid)
    except ProcessLookupError:
        os.close(fd)
        return b""
    chunks = []
    try:
        p = select.poll()
        p.register(fd, select.POLLIN | select.POLLHUP)
        p.register(pfd, select.POLLIN)
        done = False
        while not done:
            for f, ev in p.poll():
                if f == fd:
                    while True:
                        try:
                            b = os.read(fd, 65536)
                        except BlockingIOError:
                            break
                        if not b:
                            if chunks:
                                done = True
                            elif ev & select.POLLHUP:
                                done = True
                            break
                        chunks.append(b)
                    if ev & select.POLLHUP and not done:
                        done = True
                elif f == pfd and not chunks:
                    # init exited without opening the fifo
                    done = True
                elif f == pfd:
                    p.unregister(pfd)
    finally:
        os.close(fd)
        os.close(pfd)
    return b"".join(chunks)
