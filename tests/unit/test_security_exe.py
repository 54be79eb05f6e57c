"""kago.security.exe without mounts: the re-exec's command line."""

import subprocess
import sys

import kago
from kago.security import exe


def test_reexec_keeps_kagos_own_location_only():
    args = exe.reexec_args("/x/python3.11", ["/venv/bin/kago", "run", "--bundle", "b", "id"])
    assert args[:3] == ["/x/python3.11", "-IS", "-c"] and args[4:] == ["run", "--bundle", "b", "id"]
    home = kago.__file__.rsplit("/", 2)[0]
    assert f"sys.path.append({home!r})" in args[3] and "'/venv/bin/kago'" in args[3]


def test_reexec_command_line_runs_kago_from_an_isolated_interpreter():
    """-IS has no site-packages and no script dir: kago is found all the same."""
    args = exe.reexec_args(sys.executable, ["kago", "--version"])
    r = subprocess.run(args, capture_output=True, text=True, cwd="/", timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("kago version ")
