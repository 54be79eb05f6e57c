"""kago.signals: the name <-> number table and parse_signal's runc-compatible input."""

import signal as pysignal

import pytest

from kago.errors import InvalidArgument
from kago.signals import SIGNALS, SIGRTMAX, SIGRTMIN, parse_signal, signal_name


@pytest.mark.parametrize("n", range(1, 65))
def test_every_number_round_trips(n):
    name = signal_name(n)
    assert name.startswith("SIG")
    assert parse_signal(name) == n
    assert parse_signal(name[3:]) == n          # without the SIG prefix
    assert parse_signal(name.lower()) == n      # runc upper-cases
    assert parse_signal(str(n)) == n
    assert parse_signal(n) == n


def test_names_are_unique():
    names = [signal_name(n) for n in range(1, 65)]
    assert len(set(names)) == 64


def test_standard_table_matches_host_libc():
    # the host's signal module (glibc headers) is the ground truth on x86_64/arm64
    for sig in pysignal.Signals:
        if sig.name in ("SIGRTMIN", "SIGRTMAX"):
            continue
        assert SIGNALS[sig.name] == sig.value, sig.name
    assert SIGRTMIN == pysignal.SIGRTMIN == 34
    assert SIGRTMAX == pysignal.SIGRTMAX == 64


@pytest.mark.parametrize("value, expected", [
    ("KILL", 9), ("SIGKILL", 9), ("sigkill", 9), ("Kill", 9), ("9", 9), (9, 9),
    ("TERM", 15), ("hup", 1), ("SIGSTKFLT", 16), ("PWR", 30), ("SYS", 31),
    ("WINCH", 28), ("CHLD", 17), ("IO", 29), ("ABRT", 6),
    ("+9", 9), ("009", 9), ("0", 0), (0, 0), ("64", 64),
])
def test_parse_forms(value, expected):
    assert parse_signal(value) == expected


@pytest.mark.parametrize("alias, n", [
    ("SIGIOT", 6), ("IOT", 6), ("SIGCLD", 17), ("cld", 17), ("SIGPOLL", 29),
    ("POLL", 29), ("SIGUNUSED", 31), ("SIGPWR", 30), ("SIGSTKFLT", 16),
])
def test_aliases(alias, n):
    assert parse_signal(alias) == n
    assert SIGNALS[alias if alias.startswith("SIG") else "SIG" + alias.upper()] == n


def test_aliases_do_not_change_canonical_names():
    assert signal_name(6) == "SIGABRT"
    assert signal_name(17) == "SIGCHLD"
    assert signal_name(29) == "SIGIO"
    assert signal_name(31) == "SIGSYS"


@pytest.mark.parametrize("value, n", [
    ("RTMIN", 34), ("SIGRTMIN", 34), ("sigrtmin", 34), ("SIGRTMIN+3", 37),
    ("rtmin+3", 37), ("RTMIN+0", 34), ("RTMIN+30", 64), ("RTMAX", 64),
    ("SIGRTMAX", 64), ("RTMAX-2", 62), ("SIGRTMAX-14", 50), ("RTMAX-0", 64),
    ("RTMAX-32", 32), ("RTMIN-1", 33), ("RTMIN-2", 32),
])
def test_realtime(value, n):
    assert parse_signal(value) == n


@pytest.mark.parametrize("n, name", [
    (32, "SIGRTMIN-2"), (33, "SIGRTMIN-1"), (34, "SIGRTMIN"), (35, "SIGRTMIN+1"),
    (37, "SIGRTMIN+3"), (49, "SIGRTMIN+15"), (50, "SIGRTMAX-14"), (62, "SIGRTMAX-2"),
    (63, "SIGRTMAX-1"), (64, "SIGRTMAX"), (9, "SIGKILL"), (1, "SIGHUP"),
])
def test_signal_name(n, name):
    assert signal_name(n) == name


@pytest.mark.parametrize("value", [
    "FOO", "SIGFOO", "", "SIG", " 9", "9 ", "9x", "1_0", "٣",  # Arabic-Indic 3
    "RTMIN+31", "RTMIN-3", "RTMAX+1", "RTMAX-33", "RTMIN+", "RTMINX", "RTMIN+1x",
    "RTMIN+003", "SIGSIGKILL", "KILL9", "65", "99", "-1", "4294967305",
])
def test_unknown_signal_message(value):
    with pytest.raises(InvalidArgument) as ei:
        parse_signal(value)
    assert str(ei.value) == f'unknown signal "{value}"'


@pytest.mark.parametrize("value", [-1, 65, 1 << 40, True, None, 9.0, b"KILL"])
def test_bad_types_and_ranges(value):
    with pytest.raises(InvalidArgument) as ei:
        parse_signal(value)
    assert str(ei.value).startswith("unknown signal")


@pytest.mark.parametrize("n", [0, -1, 65, 100, "9", None, True])
def test_signal_name_rejects(n):
    with pytest.raises(InvalidArgument):
        signal_name(n)


def test_module_does_not_import_signal():
    import subprocess
    import sys
    code = "import sys, kago.signals; print('signal' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True, cwd=_repo_root())
    assert out.stdout.strip() == "False"


def _repo_root():
    import os
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
