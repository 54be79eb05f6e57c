"""``python -m kago`` (and the ``kago`` console script) from any environment
kago is pip-installed in (issue 12, item 9).

``create``/``run``/``exec`` re-execute the command line through kago's
read-only copy of the interpreter with ``-IS`` (CVE-2019-5736,
kago/security/exe.py); that drops the venv's site-packages, so the re-exec
must say where this kago came from.  Here: a fresh venv of Debian's python3
(an interpreter on a writable mount, so the re-exec happens), kago installed
into it from a wheel of this tree, built offline; KAGO_PREFIX points the
interpreter copy at a temp dir.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).absolute().parent.parent.parent


def _run(cmd, **kw):
    # cwd "/": not this tree, which `python -m`/`-c` would put first on sys.path
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120,
                       cwd="/", **kw)
    assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv with kago pip-installed (no network: a wheel built here)."""
    import importlib.util
    for mod in ("setuptools", "wheel", "pip"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"building kago's wheel offline needs {mod} in the test venv")
    base = shutil.which("python3", path="/usr/bin:/bin")
    if not base:
        pytest.skip("no /usr/bin/python3 to make a venv from")
    d = tmp_path_factory.mktemp("venv")
    stage = d / "stage"
    stage.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / f, stage / f)
    shutil.copytree(REPO / "kago", stage / "kago", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "--no-index", "-w", d / "whl", stage])
    _run([base, "-m", "venv", "--without-pip", d / "v"])
    wheels = list((d / "whl").glob("kago-*.whl"))
    assert len(wheels) == 1, wheels
    _run([sys.executable, "-m", "pip", "--python", d / "v" / "bin" / "python", "install", "-q",
          "--no-deps", "--no-index", wheels[0]])
    py = d / "v" / "bin" / "python"
    where = _run([py, "-c", "import kago; print(kago.__file__)"]).stdout.strip()
    assert where.startswith(str(d / "v")), where
    return d


@pytest.fixture
def prefix(tmp_path):
    """KAGO_PREFIX for the interpreter copy; its read-only bind mount goes at the end."""
    p = tmp_path / "prefix"
    yield p
    for interp in (p / "libexec").glob("python*"):
        while subprocess.run(["umount", "-l", str(interp)],
                             stderr=subprocess.DEVNULL).returncode == 0:
            pass


@pytest.mark.parametrize("how", ["python -m kago", "console script"])
def test_create_run_exec_from_a_venv(how, venv, prefix, bundle, state_root, make_cid,
                                     wait_until):
    v = venv / "v" / "bin"
    cmd = [v / "python", "-m", "kago"] if how == "python -m kago" else [v / "kago"]
    env = dict(os.environ, KAGO_PREFIX=str(prefix))

    def kago(*args, check=True):
        # files, not pipes: a created container keeps its stdio open
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            r = subprocess.run([str(c) for c in (*cmd, "--root", state_root, *args)], env=env,
                               stdout=out, stderr=err, timeout=60, cwd="/")
            out.seek(0)
            err.seek(0)
            r.stdout, r.stderr = out.read(), err.read()
        if check:
            assert r.returncode == 0, f"kago {args}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    # run in the foreground
    r = kago("run", "--bundle", bundle("echo ran-from-venv"), make_cid())
    assert "ran-from-venv" in r.stdout
    # the command line went through the read-only interpreter copy
    interp = prefix / "libexec" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert interp.is_file() and os.statvfs(interp).f_flag & os.ST_RDONLY
    # create, start, exec into it; the host sees its process
    cid = make_cid()
    kago("create", "--bundle", bundle("sleep 60"), cid)
    kago("start", cid)
    st = json.loads(kago("state", cid).stdout)
    assert st["status"] == "running"
    assert Path(f"/proc/{st['pid']}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    r = kago("exec", cid, "sh", "-c", "echo exec-from-venv; cat /proc/1/cmdline")
    assert r.stdout.startswith("exec-from-venv\nsleep"), r.stdout
    kago("delete", "--force", cid)
    assert not os.path.exists(os.path.join(state_root, cid))
