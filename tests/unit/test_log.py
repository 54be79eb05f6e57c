"""kago.log: runc's (logrus') log line shapes, where they go, and what is kept."""

import json
import os
import re
import stat
import time

import pytest

from kago import log

TIME_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)"


@pytest.fixture(autouse=True)
def _reset_log():
    log.configure()
    yield
    log.configure()


@pytest.fixture
def tz():
    """Set a POSIX TZ (no tzdata needed) for the test; restored after."""
    old = os.environ.get("TZ")

    def set_tz(value):
        os.environ["TZ"] = value
        time.tzset()

    yield set_tz
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


def lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


# ---- JSON -----------------------------------------------------------------

def test_json_line_shape(tmp_path):
    p = tmp_path / "log.json"
    log.configure(str(p), "json")
    log.error("container does not exist")
    (line,) = lines(p)
    assert re.fullmatch(r'\{"level":"error","msg":"container does not exist","time":"'
                        + TIME_RE + r'"\}', line)
    assert json.loads(line)["msg"] == "container does not exist"


def test_json_keys_sorted_with_fields(tmp_path):
    p = tmp_path / "log.json"
    log.configure(str(p), "json")
    log.warning("hook failed", zeta="z", alpha=1, ok=True)
    (line,) = lines(p)
    assert list(json.loads(line)) == ["alpha", "level", "msg", "ok", "time", "zeta"]
    assert '"alpha":1' in line and '"ok":true' in line and '"level":"warning"' in line


def test_json_escapes_like_go(tmp_path):
    # Go escapes <, >, & (HTML-safe), control chars as \u00XX except \n \r \t,
    # and keeps other non-ASCII text as UTF-8
    p = tmp_path / "log.json"
    log.configure(str(p), "json")
    log.error('a<b>&"c"\\ \n\t\r\x08\x1f é ✓ \u2028')
    raw = (tmp_path / "log.json").read_bytes().decode()
    assert ('"msg":"a\\u003cb\\u003e\\u0026\\"c\\"\\\\ \\n\\t\\r\\u0008\\u001f é ✓ \\u2028"'
            in raw)
    assert json.loads(raw)["msg"] == 'a<b>&"c"\\ \n\t\r\x08\x1f é ✓ \u2028'


def test_json_string_invalid_utf8_becomes_replacement():
    assert log.json_string("x\udcffy") == '"x\\ufffdy"'


# ---- text -----------------------------------------------------------------

def test_text_line_shape(tmp_path):
    p = tmp_path / "log.txt"
    log.configure(str(p), "text")
    log.error("container does not exist")
    (line,) = lines(p)
    assert re.fullmatch(r'time="' + TIME_RE + r'" level=error msg="container does not exist"',
                        line)


def test_text_quoting_like_logrus():
    t = 0.0
    # only [A-Za-z0-9-._/@^+] stays bare
    assert log.format_record("info", "ready", {}, t, "text").endswith(" level=info msg=ready\n")
    assert log.format_record("info", "a b", {}, t, "text").endswith(' msg="a b"\n')
    assert log.format_record("info", "", {}, t, "text").endswith(" msg=\n")
    line = log.format_record("error", 'say "hi"\n', {"id": "c1", "n": 3}, t, "text")
    assert line.endswith(' level=error msg="say \\"hi\\"\\n" id=c1 n=3\n')


def test_go_quote():
    assert log.go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert log.go_quote("\n\t\x00\x7f") == '"\\n\\t\\x00\\x7f"'
    assert log.go_quote("é✓") == '"é✓"'
    assert log.go_quote("\u200b") == '"\\u200b"'
    assert log.go_quote("x\udc80") == '"x\\x80"'


def test_colored_on_a_terminal():
    line = log.format_record("error", "container does not exist", {}, log._START + 1.5,
                             "text", colored=True)
    assert line == "\x1b[31mERRO\x1b[0m[0001] " + "container does not exist".ljust(44) + " \n"
    line = log.format_record("warning", "w\n", {"k": "v"}, log._START, "text", colored=True)
    assert line.startswith("\x1b[33mWARN\x1b[0m[0000] w ")
    assert line.endswith(" \x1b[33mk\x1b[0m=v\n")


# ---- time -----------------------------------------------------------------

@pytest.mark.parametrize("zone, suffix", [("UTC0", "Z"), ("CET-1", "+01:00"),
                                          ("IST-5:30", "+05:30"), ("EST5", "-05:00")])
def test_rfc3339_local_time(tz, zone, suffix):
    tz(zone)
    s = log.rfc3339(1_700_000_000)
    assert re.fullmatch(TIME_RE, s)
    assert s.endswith(suffix)
    if zone == "UTC0":
        assert s == "2023-11-14T22:13:20Z"


# ---- where records go -------------------------------------------------------

def test_last_line_holds_the_error(tmp_path):
    p = tmp_path / "log.json"
    log.configure(str(p), "json")
    log.info("starting")
    log.warning("something odd")
    log.error("kago create failed: config.json: process.args: must not be empty")
    last = json.loads(lines(p)[-1])
    assert last["level"] == "error"
    assert last["msg"] == "kago create failed: config.json: process.args: must not be empty"


def test_appends_and_creates_0644(tmp_path):
    p = tmp_path / "log"
    old = os.umask(0)
    try:
        log.configure(str(p), "json")
        log.error("one")
        log.configure(str(p), "json")
        log.error("two")
    finally:
        os.umask(old)
    assert [json.loads(x)["msg"] for x in lines(p)] == ["one", "two"]
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644


def test_debug_only_with_debug(tmp_path):
    p = tmp_path / "log"
    log.configure(str(p), "text")
    log.debug("hidden")
    log.info("shown")
    log.configure(str(p), "text", debug=True)
    log.debug("now shown")
    got = lines(p)
    assert len(got) == 2
    assert "msg=shown" in got[0] and 'msg="now shown"' in got[1]
    assert "level=debug" in got[1]


def test_stderr_without_log_file(capsys):
    assert log.to_stderr()
    log.configure(None, "json")
    log.error("boom")
    err = capsys.readouterr().err
    assert json.loads(err)["msg"] == "boom"


def test_to_stderr_false_with_file(tmp_path):
    log.configure(str(tmp_path / "l"), "text")
    assert not log.to_stderr()
    log.configure()
    assert log.to_stderr()


def test_invalid_format():
    with pytest.raises(ValueError, match="^invalid log-format: xml$"):
        log.configure(None, "xml")


def test_unopenable_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        log.configure(str(tmp_path / "no" / "such" / "log"))
    assert log.to_stderr()


def test_import_is_cheap():
    # log.py must not pull heavy modules into the CLI's hot path
    import subprocess
    import sys
    code = ("import sys; sys.path.insert(0, %r); import kago.log; "
            "print(' '.join(sorted(sys.modules)))" % os.path.dirname(os.path.dirname(
                os.path.dirname(os.path.abspath(__file__)))))
    out = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    for heavy in ("json", "re", "logging", "datetime", "typing", "os"):
        assert heavy not in out, heavy


def test_init_warnings_go_to_the_log(tmp_path, capfd):
    # init's warnings (seccomp: an architecture libseccomp lacks) are records
    # in kago's log, never bare text on the container's own stderr
    from kago.process import init
    p = tmp_path / "log.json"
    log.configure(str(p), "json")
    init._warn("seccomp: architecture sh not supported by libseccomp, ignored")
    (line,) = lines(p)
    rec = json.loads(line)
    assert (rec["level"], rec["msg"]) == (
        "warning", "seccomp: architecture sh not supported by libseccomp, ignored")
    assert capfd.readouterr().err == ""
