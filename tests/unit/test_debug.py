"""kago._debug: the --debug records' call site costs a lookup and imports
nothing when debug is off; with kago.log configured for debug it writes one
record (text or json) to the --log file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import kago
from kago import log

REPO = Path(__file__).absolute().parents[2]


def test_debug_off_imports_nothing():
    code = ("import sys\n"
            f"sys.path.insert(0, {str(REPO)!r})\n"
            "import kago\n"
            "kago._debug('a step', pid=1)\n"
            "print('kago.log' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-IS", "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "False\n" and r.stderr == "", r


@pytest.fixture
def reset():
    yield
    log.configure()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_on_writes_a_record(tmp_path, reset, fmt):
    f = tmp_path / "k.log"
    log.configure(str(f), fmt, debug=False)
    kago._debug("not written")
    assert f.read_text() == ""
    log.configure(str(f), fmt, debug=True)
    kago._debug("cgroup created", path="/kago/x", pid=7)
    line = f.read_text()
    if fmt == "json":
        rec = json.loads(line)
        assert (rec["level"], rec["msg"], rec["path"], rec["pid"]) == \
            ("debug", "cgroup created", "/kago/x", 7)
    else:
        assert 'level=debug msg="cgroup created" path=/kago/x pid=7\n' in line
