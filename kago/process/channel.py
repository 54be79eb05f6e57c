"""Typed channels between main, intermediate and init.

Each channel is one end of a ``socketpair(AF_UNIX, SOCK_SEQPACKET)``.  A
message is one datagram: a JSON object ``{"t": TYPE, ...}`` (fds travel beside
it with SCM_RIGHTS).  The role classes below only offer the messages their
role may legally send, so a process can't send out of turn by accident.

The sequence of a ``create`` (``run`` is the same followed by ``start``):

====  ==============  ===============  ===========================================
step  from            to               message / meaning
====  ==============  ===============  ===========================================
 1    intermediate    main             ``idmap_req`` (only with a new user ns):
                                       write my uid_map/gid_map
 2    main            intermediate     ``idmap_done``
 2b   intermediate    main             ``sources_req`` (a user namespace and bind
                                       mounts, or idmapped mounts; its
                                       namespaces all made)
 2c   main's child    intermediate     ``sources`` {idx, more} + fds: each bind
                                       source opened O_PATH in our mount ns
                                       with the host's credentials (an
                                       idmapped one: its detached clone)
 3    intermediate    main             ``init_pid`` {pid}: host pid of init;
                                       the intermediate then exits
 4    init            main             ``hooks_req``: mounts done, run prestart
                                       and createRuntime hooks now
 5    main            init             ``hooks_done`` (or ``abort``)
 6    init            main             ``ready``: init waits on exec.fifo
 any  child           main             ``error`` {error}: a typed exception
                                       (:func:`kago.errors.to_wire`); main
                                       re-raises it and tears everything down
====  ==============  ===============  ===========================================

After step 6 main writes state.json and returns.  ``start`` later opens
exec.fifo for reading; init then runs startContainer hooks, writes ``0`` and
execs; the fifo's write end is close-on-exec, so EOF tells ``start`` that the
exec happened (anything else on the fifo is an error document).
"""

import sys

import _socket

from kago import _json as json
from kago.errors import KagoError, from_wire, to_wire

_SCM_RIGHTS = 1
_SOL_SOCKET = 1
_MSG_CMSG_CLOEXEC = 0x40000000


def send_fds(sock, data: bytes, fds):
    """socket.send_fds without importing socket (whose enums cost ~10 ms)."""
    raw = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds)
    sock.sendmsg([data], [(_SOL_SOCKET, _SCM_RIGHTS, raw)])


def recv_fds(sock, bufsize: int, maxfds: int):
    """(data, fds) - the fds arrive close-on-exec."""
    data, anc, _flags, _addr = sock.recvmsg(bufsize, _socket.CMSG_SPACE(maxfds * 4),
                                            _MSG_CMSG_CLOEXEC)
    fds = []
    for level, typ, raw in anc:
        if level == _SOL_SOCKET and typ == _SCM_RIGHTS:
            n = len(raw) - len(raw) % 4
            fds += [int.from_bytes(raw[i:i + 4], sys.byteorder, signed=True)
                    for i in range(0, n, 4)]
    return data, fds

_MAXMSG = 65536


class ChannelClosed(KagoError):
    pass


class Channel:
    """One end of a SEQPACKET socketpair carrying JSON messages and fds."""

    def __init__(self, sock, peer: str):
        self.sock = sock
        self.peer = peer

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def _send(self, t: str, fds=(), **fields):
        fields["t"] = t
        data = json.dumps(fields).encode()
        if fds:
            send_fds(self.sock, data, list(fds))
        else:
            self.sock.send(data)

    def _recv(self, *expected: str, timeout: float | None = None, maxfds: int = 4):
        """Receive one message of an ``expected`` type: returns (msg, fds).

        An ``error`` message is re-raised as the child's exception; EOF raises
        :class:`ChannelClosed`."""
        self.sock.settimeout(timeout)
        try:
            data, fds = recv_fds(self.sock, _MAXMSG, maxfds)
        except TimeoutError:
            raise ChannelClosed(f"timed out waiting for {self.peer}") from None
        finally:
            self.sock.settimeout(None)
        if not data:
            raise ChannelClosed(f"{self.peer} exited without reporting")
        msg = json.loads(data)
        t = msg.get("t")
        if t == "error":
            raise from_wire(msg["error"])
        if expected and t not in expected:
            raise KagoError(f"protocol error: {self.peer} sent {t!r}, "
                            f"expected {' or '.join(expected)}")
        return msg, fds

    def send_error(self, exc: BaseException):
        try:
            self._send("error", error=to_wire(exc))
        except OSError:
            pass


def pair(a: type, b: type, peer_of_a: str, peer_of_b: str):
    s1, s2 = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    return a(s1, peer_of_a), b(s2, peer_of_b)


# --- main <-> intermediate ---------------------------------------------------

class MainToIntermediate(Channel):
    """main's end of the intermediate channel."""

    def idmap_done(self):
        self._send("idmap_done")

    def sources(self, indexes, fds, more: bool):
        """(sent by main's child: kago.rootfs.send_bind_sources)"""
        self._send("sources", fds, idx=indexes, more=more)

    def recv(self):
        return self._recv("idmap_req", "sources_req", "init_pid")


class IntermediateToMain(Channel):
    """intermediate's end."""

    def request_idmap(self):
        self._send("idmap_req")
        self._recv("idmap_done")

    def request_sources(self) -> dict:
        """mounts[] index -> O_PATH fd of each bind source, opened in our
        mount namespace with the host's credentials."""
        self._send("sources_req")
        out = {}
        while True:
            msg, fds = self._recv("sources", maxfds=256)
            out.update(zip(msg["idx"], fds))
            if not msg["more"]:
                return out

    def init_pid(self, pid: int):
        self._send("init_pid", pid=pid)


# --- main <-> init -----------------------------------------------------------

class MainToInit(Channel):
    """main's end of the init channel."""

    def hooks_done(self):
        self._send("hooks_done")

    def abort(self):
        try:
            self._send("abort")
        except OSError:
            pass

    def recv(self):
        return self._recv("hooks_req", "ready")


class InitToMain(Channel):
    """init's end."""

    def request_hooks(self):
        self._send("hooks_req")
        self._recv("hooks_done")

    def ready(self):
        self._send("ready")
