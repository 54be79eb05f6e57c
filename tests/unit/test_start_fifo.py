"""start._read_fifo when init was reaped before `start` opened its pidfd (a
fast subreaper: conmon, a shim): the fifo alone decides (the integration
side, under load: tests/integration/test_start_race.py)."""

import os

from kago.container.start import _read_fifo


def _init_like(path, data):
    """A child that, like init, opens the fifo for writing, writes data and
    exits (exec: the write end closes); returned reaped, with the pipe kept
    by a reader of ours."""
    keep = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    pid = os.fork()
    if pid == 0:
        fd = os.open(path, os.O_WRONLY)
        if data:
            os.write(fd, data)
        os._exit(0)
    os.waitpid(pid, 0)          # reaped: the pid is free now
    return pid, keep


def test_a_reaped_init_that_wrote_0_has_started(tmp_path):
    path = str(tmp_path / "exec.fifo")
    os.mkfifo(path)
    pid, keep = _init_like(path, b"0")
    try:
        assert _read_fifo(path, pid) == b"0"
    finally:
        os.close(keep)


def test_a_reaped_init_that_wrote_nothing_did_not(tmp_path):
    path = str(tmp_path / "exec.fifo")
    os.mkfifo(path)
    pid, keep = _init_like(path, b"")
    try:
        assert _read_fifo(path, pid) == b""
    finally:
        os.close(keep)


def test_a_reused_pid_is_not_init(tmp_path):
    """init died before it opened the fifo and its pid now belongs to another
    process (ours): its start time differs, so the fifo decides at once (no
    writer ever came: not started) instead of waiting for that process."""
    import signal
    path = str(tmp_path / "exec.fifo")
    os.mkfifo(path)

    def hung(*_):
        raise AssertionError("_read_fifo waited for a process that is not init")
    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(5)
    try:
        assert _read_fifo(path, os.getpid(), start_time=1) == b""
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
