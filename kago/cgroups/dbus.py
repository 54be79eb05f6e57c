"""A small blocking D-Bus client: enough of the wire protocol to call systemd.

Only imported by the systemd cgroup driver.  One unix-socket connection,
SASL EXTERNAL authentication, method calls with typed arguments, replies and
errors, and signals (filtered with AddMatch) read while waiting.

Values are marshalled from a signature, e.g.
``call(dest, path, iface, "StartTransientUnit", "ssa(sv)a(sa(sv))",
[name, "replace", [("PIDs", ("au", [pid]))], []])``; a variant is written
as a ``(signature, value)`` pair.

Wire format (D-Bus specification, "Message Protocol"): little-endian; a
12-byte fixed header, header fields ``a(yv)``, padding to 8, the body.
"""

import os
import socket
import _struct as struct

from kago.errors import CgroupError

SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"

_ALIGN = {"y": 1, "b": 4, "n": 2, "q": 2, "i": 4, "u": 4, "x": 8, "t": 8, "d": 8,
          "h": 4, "s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
_FIXED = {"y": "B", "b": "I", "n": "h", "q": "H", "i": "i", "u": "I", "x": "q",
          "t": "Q", "d": "d", "h": "I"}

CALL, RETURN, ERROR, SIGNAL = 1, 2, 3, 4


class DBusError(CgroupError):
    def __init__(self, name, message):
        lines = (message or "").strip().splitlines()   # one line (a Python
        message = lines[-1] if lines else ""            # service: a traceback)
        super().__init__(f"D-Bus: {name}: {message}")
        self.text = message
        self.name = name


def _split(sig):
    """'sa(sv)u' -> ['s', 'a(sv)', 'u']."""
    out, i = [], 0
    while i < len(sig):
        j = _end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _end(sig, i):
    c = sig[i]
    if c == "a":
        return _end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        depth, j = 0, i
        while True:
            if sig[j] == c:
                depth += 1
            elif sig[j] == close:
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
    return i + 1


class _Writer:
    def __init__(self):
        self.buf = bytearray()

    def pad(self, n):
        self.buf += b"\0" * (-len(self.buf) % n)

    def put(self, sig, value):
        for t, v in zip(_split(sig), value):
            self.one(t, v)

    def one(self, t, v):
        c = t[0]
        self.pad(_ALIGN[c])
        if c in _FIXED:
            self.buf += struct.pack("<" + _FIXED[c], int(v))
        elif c in "so":
            b = v.encode()
            self.buf += struct.pack("<I", len(b)) + b + b"\0"
        elif c == "g":
            b = v.encode()
            self.buf += struct.pack("<B", len(b)) + b + b"\0"
        elif c == "v":
            vsig, val = v
            self.one("g", vsig)
            self.one(vsig, val)
        elif c == "a":
            at = len(self.buf)
            self.buf += b"\0\0\0\0"
            elem = t[1:]
            self.pad(_ALIGN[elem[0]])
            start = len(self.buf)
            items = v.items() if elem[0] == "{" else v
            for item in items:
                self.one(elem, item)
            struct.pack_into("<I", self.buf, at, len(self.buf) - start)
        elif c in "({":
            self.put(t[1:-1], v)
        else:
            raise ValueError(f"D-Bus type {c!r} not supported")


class _Reader:
    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos

    def align(self, n):
        self.pos += -self.pos % n

    def get(self, sig):
        return [self.one(t) for t in _split(sig)]

    def one(self, t):
        c = t[0]
        self.align(_ALIGN[c])
        if c in _FIXED:
            fmt = "<" + _FIXED[c]
            v = struct.unpack_from(fmt, self.buf, self.pos)[0]
            self.pos += struct.calcsize(fmt)
            return bool(v) if c == "b" else v
        if c in "so":
            n = struct.unpack_from("<I", self.buf, self.pos)[0]
            s = self.buf[self.pos + 4:self.pos + 4 + n].decode()
            self.pos += 5 + n
            return s
        if c == "g":
            n = self.buf[self.pos]
            s = self.buf[self.pos + 1:self.pos + 1 + n].decode()
            self.pos += 2 + n
            return s
        if c == "v":
            vsig = self.one("g")
            return self.one(vsig)
        if c == "a":
            n = struct.unpack_from("<I", self.buf, self.pos)[0]
            self.pos += 4
            elem = t[1:]
            self.align(_ALIGN[elem[0]])
            end = self.pos + n
            out = []
            while self.pos < end:
                out.append(self.one(elem))
            return dict(out) if elem[0] == "{" else out
        if c in "({":
            return tuple(self.get(t[1:-1]))
        raise ValueError(f"D-Bus type {c!r} not supported")


class Connection:
    """A connection to a bus (``address``: a D-Bus address, default the
    system bus or $DBUS_SYSTEM_BUS_ADDRESS)."""

    def __init__(self, address=None, timeout=25.0):
        address = address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or SYSTEM_BUS
        self.serial = 0
        self.pending = []     # signals read while waiting for a reply
        self.sock = self._connect(address, timeout)
        self._auth()
        self.unique_name = self.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus", "Hello")[0]

    @staticmethod
    def _connect(address, timeout):
        err = None
        for a in address.split(";"):
            kind, _, params = a.partition(":")
            kv = dict(p.split("=", 1) for p in params.split(",") if "=" in p)
            if kind != "unix":
                continue
            path = kv.get("path") or ("\0" + kv["abstract"] if "abstract" in kv else None)
            if path is None:
                continue
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            s.settimeout(timeout)
            try:
                s.connect(_unescape(path))
                return s
            except OSError as e:
                s.close()
                err = e
        raise CgroupError(f"D-Bus: connect to {address}: "
                          f"{err.strerror if err else 'no usable unix address'}")

    def _auth(self):
        uid = str(os.geteuid()).encode().hex()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid.encode() + b"\r\n")
        line = self._line()
        if not line.startswith(b"OK "):
            raise CgroupError(f"D-Bus: authentication refused: {line.decode(errors='replace')}")
        self.sock.sendall(b"BEGIN\r\n")
        self.buf = b""

    def _line(self):
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = self.sock.recv(1)
            if not chunk:
                raise CgroupError("D-Bus: connection closed during authentication")
            data += chunk
        return data[:-2]

    def close(self):
        self.sock.close()

    # --- messages ---------------------------------------------------------
    def _send(self, mtype, fields, sig="", args=(), flags=0):
        self.serial += 1
        body = _Writer()
        if sig:
            body.put(sig, args)
            fields.append((8, ("g", sig)))
        h = _Writer()
        h.buf += struct.pack("<cBBBII", b"l", mtype, flags, 1, len(body.buf), self.serial)
        h.one("a(yv)", fields)
        h.pad(8)
        self.sock.sendall(bytes(h.buf) + bytes(body.buf))
        return self.serial

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise CgroupError("D-Bus: connection closed by the bus")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv(self):
        """The next message: (type, fields dict, body values)."""
        fixed = self._recv_exact(16)
        if fixed[:1] != b"l":
            raise CgroupError("D-Bus: big-endian messages are not supported")
        mtype, _, _, blen, _, flen = struct.unpack_from("<BBBIII", fixed, 1)
        rest = self._recv_exact(flen + (-(16 + flen) % 8) + blen)
        msg = fixed + rest
        r = _Reader(msg, 12)
        fields = dict(r.one("a(yv)"))
        r.align(8)
        sig = fields.get(8, "")
        body = r.get(sig) if sig else []
        return mtype, fields, body

    def call(self, dest, path, iface, member, sig="", args=()):
        fields = [(1, ("o", path)), (3, ("s", member)), (6, ("s", dest))]
        if iface:
            fields.append((2, ("s", iface)))
        serial = self._send(CALL, fields, sig, args)
        while True:
            mtype, f, body = self.recv()
            if mtype == SIGNAL:
                self.pending.append((f, body))
                continue
            if f.get(5) != serial:
                continue
            if mtype == ERROR:
                raise DBusError(f.get(4, "?"), body[0] if body else "")
            return body

    def add_match(self, rule):
        self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                  "AddMatch", "s", [rule])

    def wait_signal(self, pred, timeout=25.0):
        """The body of the first signal whose (fields, body) satisfies pred."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            for i, (f, body) in enumerate(self.pending):
                if pred(f, body):
                    del self.pending[i]
                    return body
            self.pending.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise CgroupError(f"D-Bus: no reply from systemd within {timeout:g}s")
            self.sock.settimeout(left)
            try:
                mtype, f, body = self.recv()
            except socket.timeout:
                continue
            if mtype == SIGNAL:
                self.pending.append((f, body))


def _unescape(path):
    out, i = "", 0
    while i < len(path):
        if path[i] == "%" and i + 2 < len(path) + 1:
            out += chr(int(path[i + 1:i + 3], 16))
            i += 3
        else:
            out += path[i]
            i += 1
    return out
