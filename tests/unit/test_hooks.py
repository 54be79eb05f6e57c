"""kago.hooks.run_one's working directory: the hook runs where it is told, and
a directory it can't enter is said as such (not as an exec failure)."""

from pathlib import Path

import pytest

from kago.errors import HookError
from kago.hooks import run_hooks


def test_hook_runs_in_the_given_directory(tmp_path):
    out = tmp_path / "out"
    hook = {"path": "/bin/sh", "args": ["sh", "-c", f"pwd > {out}"]}
    run_hooks("prestart", [hook], {"id": "c1"}, cwd=str(tmp_path))
    assert out.read_text() == f"{tmp_path}\n"


def test_a_missing_directory_is_named(tmp_path):
    gone = tmp_path / "gone"
    with pytest.raises(HookError) as e:
        run_hooks("poststart", [{"path": "/bin/true"}], {"id": "c1"}, cwd=str(gone))
    assert str(e.value) == \
        f"error running poststart hook #0: /bin/true: chdir to {gone} failed: No such file or directory"
    with pytest.raises(HookError) as e:      # and a missing hook is still an exec failure
        run_hooks("poststart", [{"path": str(gone)}], {"id": "c1"}, cwd=str(tmp_path))
    assert str(e.value) == f"error running poststart hook #0: {gone}: exec failed: No such file or directory"


def test_a_hook_gets_the_state_with_our_stdin_closed(tmp_path):
    """The state pipe may land on fd 0 itself (criu runs its action scripts
    with stdin closed): the hook still reads the state on its stdin."""
    import subprocess
    import sys
    out = tmp_path / "out"
    code = ("import json, sys; from kago.hooks import run_hooks; "
            f"run_hooks('prestart', [{{'path': '/bin/sh', 'args': ['sh', '-c', 'cat > {out}']}}], "
            "{'id': 'c1'})")
    import kago
    src = str(Path(kago.__file__).parent.parent)        # the kago under test
    r = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {src!r}); " + code],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
                       preexec_fn=lambda: __import__("os").close(0))
    assert r.returncode == 0, r.stderr
    assert out.read_text().replace(" ", "") == '{"id":"c1"}'
