"""kago.hooks.run_one's working directory: the hook runs where it is told, and
a directory it can't enter is said as such (not as an exec failure)."""

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
