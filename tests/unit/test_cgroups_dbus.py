"""kago's small D-Bus client: marshalling round trips and message framing."""

import socket
import struct

from kago.cgroups import dbus


def roundtrip(sig, value):
    w = dbus._Writer()
    w.put(sig, value)
    return dbus._Reader(bytes(w.buf)).get(sig)


def test_split_signature():
    assert dbus._split("ssa(sv)a(sa(sv))") == ["s", "s", "a(sv)", "a(sa(sv))"]
    assert dbus._split("a{sv}uy") == ["a{sv}", "u", "y"]


def test_roundtrip_systemd_call():
    props = [("Slice", ("s", "system.slice")), ("Delegate", ("b", True)),
             ("PIDs", ("au", [1234])), ("MemoryMax", ("t", 1 << 40)),
             ("AllowedCPUs", ("ay", [3])), ("DeviceAllow", ("a(ss)", [("char-*", "m")]))]
    out = roundtrip("ssa(sv)a(sa(sv))", ["kago-x.scope", "replace", props, []])
    assert out[0] == "kago-x.scope" and out[3] == []
    assert dict(out[2]) == {"Slice": "system.slice", "Delegate": True, "PIDs": [1234],
                            "MemoryMax": 1 << 40, "AllowedCPUs": [3],
                            "DeviceAllow": [("char-*", "m")]}


def test_roundtrip_alignment():
    assert roundtrip("yt", [1, 2]) == [1, 2]          # t is 8-aligned after one byte
    assert roundtrip("a{sv}", [{"a": ("i", -5)}]) == [{"a": -5}]
    assert roundtrip("ogn", ["/o/p", "as", -2]) == ["/o/p", "as", -2]


def test_message_framing_over_a_socket():
    a, b = socket.socketpair()
    conn = dbus.Connection.__new__(dbus.Connection)
    conn.sock, conn.serial, conn.buf, conn.pending = a, 0, b"", []
    conn._send(dbus.CALL, [(1, ("o", "/x")), (3, ("s", "M"))], "su", ["hi", 7])
    data = b.recv(4096)
    assert data[:1] == b"l" and data[1] == dbus.CALL
    assert data.endswith(struct.pack("<I", 2) + b"hi\0" + b"\0" * 1 + struct.pack("<I", 7))
    reader = dbus.Connection.__new__(dbus.Connection)
    reader.sock, reader.buf = b, data
    mtype, fields, body = reader.recv()
    assert mtype == dbus.CALL and fields[1] == "/x" and fields[3] == "M" and fields[8] == "su"
    assert body == ["hi", 7]
    a.close()
    b.close()


def test_error_is_one_line():
    e = dbus.DBusError("org.x.Error", "Traceback (most recent call last):\n  ...\nKeyError: 'u'\n")
    assert str(e) == "D-Bus: org.x.Error: KeyError: 'u'"
