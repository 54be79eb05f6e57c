"""Small helpers shared by the integration tests (fixtures live in tests/conftest.py)."""

import json
from pathlib import Path


def lines_with(out: str, prefix: str) -> list[str]:
    """The rest of every line of ``out`` that starts with ``prefix``."""
    return [line[len(prefix):] for line in out.splitlines() if line.startswith(prefix)]


def one(out: str, prefix: str) -> str:
    """The rest of the one line of ``out`` that starts with ``prefix``."""
    found = lines_with(out, prefix)
    assert len(found) == 1, f"expected one {prefix!r} line in:\n{out}"
    return found[0]


def state_pid(run_kago, cid) -> int:
    """The host pid of container ``cid``'s init, from ``kago state``."""
    return json.loads(run_kago("state", cid).stdout)["pid"]


def wait_file(wait_until, path, text):
    """Wait until the file at ``path`` contains ``text``; return its content."""
    def ready():
        try:
            data = Path(path).read_text()
        except FileNotFoundError:
            return None
        return data if text in data else None
    return wait_until(ready, what=f"{text!r} in {path}")
