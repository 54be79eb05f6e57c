"""kago.security.capabilities without containers: names, masks, the
order of calls (a recording libc double)."""

import pytest

from kago import sys as ksys
from kago.security import capabilities as caps


def test_table_is_linux_numbering():
    assert caps.CAPS["CAP_CHOWN"] == 0 and caps.CAPS["CAP_SYS_ADMIN"] == 21
    assert caps.CAPS["CAP_CHECKPOINT_RESTORE"] == 40
    assert sorted(caps.CAPS.values()) == list(range(41))


def test_to_mask_and_unknown_names_warn():
    warned = []
    m = caps.to_mask(["CAP_KILL", "chown", "NET_RAW", "CAP_BOGUS"], warned.append)
    assert m == (1 << 5) | (1 << 0) | (1 << 13)
    assert warned and "CAP_BOGUS" in warned[0]


def test_unknown_lists_unknown_and_unavailable_once(monkeypatch):
    monkeypatch.setattr(caps, "last_cap", lambda: 37)          # a kernel without CAP_PERFMON
    spec = {"bounding": ["CAP_KILL", "CAP_FLY", "perfmon"], "effective": ["CAP_FLY"],
            "ambient": ["CAP_BPF", "kill"]}
    assert caps.unknown(spec) == ["CAP_FLY", "perfmon", "CAP_BPF"]
    assert caps.unknown(None) == [] and caps.unknown({"bounding": ["CAP_CHOWN"]}) == []


def test_caps_absent_means_untouched():
    c = caps.Caps(None)
    assert not c.present


def test_caps_masked_to_the_kernel(monkeypatch):
    monkeypatch.setattr(caps, "last_cap", lambda: 37)
    c = caps.Caps({"bounding": ["CAP_BPF", "CAP_KILL"], "effective": ["CAP_PERFMON"]})
    assert c.masks["bounding"] == 1 << 5
    assert c.masks["effective"] == 0


class Recorder:
    def __init__(self):
        self.calls = []

    def prctl(self, *args):
        self.calls.append(("prctl",) + tuple(getattr(a, "value", a) for a in args))
        return 0

    def syscall(self, nr, *args):
        self.calls.append(("syscall", nr))
        return 0


@pytest.fixture
def rec(monkeypatch):
    r = Recorder()
    ksys.set_libc(r)
    monkeypatch.setattr(caps, "last_cap", lambda: 40)
    yield r
    ksys.set_libc(None)


def test_drop_bounding_drops_exactly_the_rest(rec):
    c = caps.Caps({"bounding": ["CAP_CHOWN", "CAP_KILL"]})
    caps.drop_bounding(c)
    dropped = [call[2] for call in rec.calls if call[1] == ksys.PR_CAPBSET_DROP]
    assert dropped == [n for n in range(41) if n not in (0, 5)]


def test_apply_sets_then_ambient(rec):
    c = caps.Caps({"effective": ["CAP_KILL"], "permitted": ["CAP_KILL"],
                   "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]})
    caps.apply(c)
    kinds = [call[0] if call[0] == "syscall" else call[2] if call[1] == ksys.PR_CAP_AMBIENT
             else None for call in rec.calls]
    # capset first, then clear the ambient set, then raise each (CHOWN=0, KILL=5)
    assert kinds[0] == "syscall"
    amb = [call for call in rec.calls if call[0] == "prctl" and call[1] == ksys.PR_CAP_AMBIENT]
    assert amb[0][2] == ksys.PR_CAP_AMBIENT_CLEAR_ALL
    assert [a[3] for a in amb[1:]] == [0, 5]
