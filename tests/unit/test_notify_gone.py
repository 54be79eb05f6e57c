"""notify.forward when init is gone before it looks (a fast subreaper reaped
it): a READY it sent first is passed on, nothing else is waited for."""

import os
import socket

import pytest

from kago import notify


@pytest.fixture
def reaped_pid():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


@pytest.fixture
def sent(monkeypatch):
    got = []
    monkeypatch.setattr(notify, "_notify_host", lambda host, ready, pid: got.append(ready))
    return got


def _pair():
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


def test_ready_sent_before_a_reaped_init_exited_counts(reaped_pid, sent):
    rx, tx = _pair()
    tx.send(b"STATUS=up")
    tx.send(b"X=1\nREADY=1\n")
    assert notify.forward(rx, "/host", reaped_pid) is True
    assert sent == [b"READY=1"]


def test_reaped_init_without_ready_returns_at_once(reaped_pid, sent):
    rx, tx = _pair()
    tx.send(b"STATUS=starting")
    assert notify.forward(rx, "/host", reaped_pid) is False
    assert sent == []


def test_a_reused_pid_is_not_waited_for(sent):
    rx, tx = _pair()
    # our own pid, alive, but with another start time: init was reaped and
    # its pid reused - forward must not wait for this process to exit
    assert notify.forward(rx, "/host", os.getpid(), start_time=1) is False
    tx.send(b"READY=1")
    assert notify.forward(rx, "/host", os.getpid(), start_time=1) is True
    assert sent == [b"READY=1"]
