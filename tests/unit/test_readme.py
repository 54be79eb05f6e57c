"""The README's commands work as written on a fresh Debian (issue 12, item
10): a minimal Debian has no sudo, so the commands are plain ``bash ...``
"as root (prefix sudo where you use it)", and no script calls sudo itself or
tells the user to."""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).absolute().parent.parent.parent
SCRIPTS = ["scripts/setup.sh", "scripts/test.sh", "bench/run.sh"]
DOCS = ["README.md", "bench/README.md", *sorted(str(p.relative_to(REPO))
                                               for p in (REPO / "docs").glob("*.md"))]


def sh_blocks(text):
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def test_readmes_first_commands():
    first = sh_blocks((REPO / "README.md").read_text())[0]
    assert "as root (prefix sudo where you use it)" in first
    cmds = [ln.split("#")[0].strip() for ln in first.splitlines()]
    cmds = [c for c in cmds if c]
    assert cmds == ["bash scripts/setup.sh", "bash scripts/test.sh"]
    for c in cmds:
        assert (REPO / c.split()[1]).is_file()


@pytest.mark.parametrize("doc", DOCS)
def test_no_documented_command_needs_sudo(doc):
    for block in sh_blocks((REPO / doc).read_text()):
        for ln in block.splitlines():
            assert not re.match(r"\s*sudo\b", ln), f"{doc}: {ln}"
    # inline `sudo bash ...` too
    assert not re.search(r"`sudo ", (REPO / doc).read_text()), doc


SUDO_CALL = re.compile(r"(^|[;&|(`]|\$\()\s*sudo\b")


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_never_run_or_suggest_sudo(script):
    for n, ln in enumerate((REPO / script).read_text().splitlines(), 1):
        code = ln.split("#")[0] if not ln.lstrip().startswith("#") else ""
        assert not SUDO_CALL.search(code), f"{script}:{n}: {ln}"
        assert "sudo bash" not in ln, f"{script}:{n}: {ln}"


def _as_nobody():
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_say_how_to_run_as_root(script):
    """Not root: the script stops at once and names the plain command."""
    r = subprocess.run(["bash", str(REPO / script)], capture_output=True, text=True,
                       preexec_fn=_as_nobody, cwd="/", timeout=30,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.returncode != 0
    assert f"bash {script} (prefix sudo where you use it)" in r.stderr, r.stderr
