"""Shared fixtures for kago's tests.

Layout: ``tests/unit`` (no root, no real containers; also run on Python 3.12
and 3.13) and ``tests/integration`` (real containers, as root). Tests under
those folders get the ``unit`` / ``integration`` marker automatically, and
integration tests are skipped with a reason when not run as root.

Fixtures for integration tests:

``kago_bin`` (session)
    Path of the launcher: ``$KAGO_BIN``, default ``/usr/local/bin/kago``.
    Skips the test when it is missing (fails instead under scripts/test.sh,
    which sets ``KAGO_REQUIRE_BIN=1``).
``state_root``
    A fresh, empty ``--root`` directory (a short path under /tmp) per test.
``cid`` / ``make_cid(prefix="kt")``
    A unique container id / a factory of more.
``bundle(args=None, *, edit=None, rootfs="copy", **overrides) -> Path``
    A fresh bundle dir under tmp_path. config.json is mkbundle.sh's default
    (runc-spec-like, terminal false, root.readonly true, hostname "kago").
    ``args``: a list for process.args, or a string run as ``sh -c STRING``.
    ``overrides`` are merged into the config recursively: dicts merge, any
    other value replaces, ``None`` deletes the key
    (``bundle("id -u", process={"user": {"uid": 1000}}, hostname=None)``).
    ``edit``: a callable given the config dict, for anything else; it may
    edit in place or return a new dict. ``rootfs``: "copy" (``cp -a`` of a
    busybox rootfs built once per session; writable), "shared" (root.path is
    the absolute path of that shared rootfs; never write to it) or None (no
    rootfs: for tests of a missing rootfs).
``run_kago(*args, check=True, root=<state_root>, input=None, timeout=60, env=None, stdout=None, stderr=None)``
    Runs ``kago --root ROOT ARGS...`` and returns a CompletedProcess with text
    stdout/stderr. Output goes through temporary files, not pipes, so a
    detached container (``run -d``, ``create``) that keeps the descriptors
    never blocks the call; pass ``stdout=``/``stderr=`` (a file object or fd)
    to keep a container's output somewhere you can read later. ``root=None``
    passes no ``--root``. With ``check=True`` a non-zero exit raises
    ``KagoFailed`` (an AssertionError showing the command, status and output).
``wait_until(predicate, timeout=10, interval=0.02, what="condition")``
    Polls until ``predicate()`` is truthy; returns its value or fails.
``assert_clean()``
    Asserts, now, that this test has left nothing behind: no state dir under
    ``state_root``, no process, cgroup or mount of its containers.

After every test that used these fixtures, a finaliser force-deletes each
container left in ``state_root`` (``kago --root R delete --force ID``), then
checks that nothing leaked (state dir, a process still alive, a cgroup under
/sys/fs/cgroup named after a test container, a mount under a bundle or the
root), cleans up whatever did, and fails the test's teardown naming it.
Set ``KAGO_TEST_KEEP=1`` to keep bundles and roots for a look afterwards.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).absolute().parent
REPO = TESTS.parent
MKBUNDLE = REPO / "scripts" / "mkbundle.sh"
DEFAULT_KAGO_BIN = "/usr/local/bin/kago"
CGROUP_ROOT = "/sys/fs/cgroup"
IS_ROOT = os.geteuid() == 0


# ---------------------------------------------------------------- collection

def pytest_collection_modifyitems(config, items):
    need_root = pytest.mark.skip(reason="integration tests run real containers: need root")
    for item in items:
        try:
            kind = Path(str(item.path)).absolute().relative_to(TESTS).parts[0]
        except (ValueError, IndexError):
            continue
        if kind == "integration":
            item.add_marker(pytest.mark.integration)
            if not IS_ROOT:
                item.add_marker(need_root)
        elif kind == "unit":
            item.add_marker(pytest.mark.unit)


# ------------------------------------------------------------------- helpers

class KagoFailed(AssertionError):
    """A ``kago`` command exited non-zero; ``.result`` is its CompletedProcess."""

    def __init__(self, result: subprocess.CompletedProcess):
        self.result = result
        def show(text):
            if text is None:
                return "(not captured)\n"
            return text if text.endswith("\n") or not text else text + "\n"
        super().__init__(
            f"{' '.join(map(str, result.args))}\n"
            f"exit status {result.returncode}\n"
            f"--- stdout\n{show(result.stdout)}--- stderr\n{show(result.stderr)}")


def _merge(dst: dict, src: dict) -> dict:
    for key, value in src.items():
        if value is None:
            dst.pop(key, None)
        elif isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value)
        else:
            dst[key] = copy.deepcopy(value)
    return dst


def _starttime(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot); None if gone or a zombie.

    A zombie has exited: whoever it was reparented to reaps it in its own time.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _mountpoints() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point))
    return points


def _under(path: str, dirs) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _cgroups_named(ids) -> list[str]:
    """Directories under /sys/fs/cgroup whose name contains one of ids."""
    found = []
    if not ids:
        return found
    for top, dirs, _ in os.walk(CGROUP_ROOT):
        for d in dirs:
            if any(i in d for i in ids):
                found.append(os.path.join(top, d))
    return found


def _procs_in_cgroups(ids) -> dict[int, str]:
    """pid -> cgroup line, for processes whose cgroup path names one of ids."""
    found = {}
    if not ids:
        return found
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/cgroup") as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            path = line.split(":", 2)[-1]
            if any(i in path for i in ids) and _starttime(int(name)):
                found[int(name)] = line
                break
    return found


def _settle(probe, timeout: float = 2.0):
    """probe() until it finds nothing or timeout passes (a killed process
    takes a moment to exit); return the last finding."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


class _Tracker:
    """What one test created: roots, bundles, ids, shared paths to watch."""

    def __init__(self, request):
        self.request = request
        self.roots: list[str] = []
        self.bundles: list[str] = []
        self.watched: list[str] = []     # mounts under these are leaks, never removed
        self.ids: set[str] = set()
        self.kago_bin: str | None = None

    # -- finaliser
    def finish(self) -> None:
        problems: list[str] = []
        keep = bool(os.environ.get("KAGO_TEST_KEEP"))
        # 1. force-delete every container left in a root
        inits: dict[int, str] = {}
        for root in self.roots:
            for entry in self._entries(root):
                self.ids.add(entry)
                pid = self._state_pid(root, entry)
                if pid and _starttime(pid):
                    inits[pid] = _starttime(pid)
                if self.kago_bin:
                    try:
                        subprocess.run([self.kago_bin, "--root", root, "delete", "--force", entry],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, timeout=30)
                    except subprocess.TimeoutExpired:
                        problems.append(f"`kago delete --force {entry}` timed out")
        # 2. then look for anything left
        problems += self.leaks(inits)
        # 3. remove the roots and bundles (never through a mount)
        if not keep:
            points = _mountpoints()
            for d in self.roots + self.bundles:
                if not _under_any_mount(d, points):
                    shutil.rmtree(d, ignore_errors=True)
        if problems:
            pytest.fail("left behind by this test (cleaned up now):\n  " + "\n  ".join(problems),
                        pytrace=False)

    def leaks(self, inits: dict[int, str] | None = None, clean: bool = True) -> list[str]:
        problems = []
        for root in self.roots:
            for entry in self._entries(root):
                problems.append(f"state dir {root}/{entry}")
                self.ids.add(entry)
                pid = self._state_pid(root, entry)
                if pid and _starttime(pid) and inits is not None:
                    inits.setdefault(pid, _starttime(pid))
        inits = inits or {}
        alive = _settle(lambda: [p for p, t in inits.items() if _starttime(p) == t])
        for pid in alive:
            problems.append(f"container init pid {pid} still alive")
            if clean:
                _kill(pid)
        for pid, line in _settle(lambda: _procs_in_cgroups(self.ids)).items():
            problems.append(f"process {pid} in cgroup {line}")
            if clean:
                _kill(pid)
        cgroups = _settle(lambda: _cgroups_named(self.ids), timeout=1.0)
        for cg in cgroups:
            problems.append(f"cgroup {cg}")
        mounts = [p for p in _mountpoints() if _under(p, self.roots + self.bundles + self.watched)]
        for m in mounts:
            problems.append(f"mount {m}")
        if clean:
            for m in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", m], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            for cg in sorted(cgroups, key=len, reverse=True):
                _remove_cgroup(cg)
            for root in self.roots:
                for entry in self._entries(root):
                    if not _under_any_mount(os.path.join(root, entry), _mountpoints()):
                        shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
        return problems

    @staticmethod
    def _entries(root: str) -> list[str]:
        try:
            return sorted(e for e in os.listdir(root) if os.path.isdir(os.path.join(root, e)))
        except FileNotFoundError:
            return []

    @staticmethod
    def _state_pid(root: str, entry: str) -> int | None:
        path = os.path.join(root, entry, "state.json")
        if not os.path.isfile(path) or os.path.islink(path):
            return None         # a test's damaged state.json (a FIFO would block open)
        try:
            with open(path) as f:
                pid = json.load(f).get("pid")
            return int(pid) if pid and int(pid) > 0 else None
        except (OSError, ValueError, TypeError, AttributeError):
            return None


def _under_any_mount(d: str, points) -> bool:
    return any(_under(p, [d]) for p in points)


def _remove_cgroup(path: str) -> None:
    for _ in range(50):
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            pids = []
        for p in pids:
            _kill(p)
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


# ------------------------------------------------------------------ fixtures

@pytest.fixture
def _kago_tracker(request):
    tracker = _Tracker(request)
    yield tracker
    tracker.finish()


@pytest.fixture(scope="session")
def kago_bin() -> str:
    path = os.environ.get("KAGO_BIN", DEFAULT_KAGO_BIN)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        msg = f"kago launcher {path} is not installed (as root: bash scripts/setup.sh)"
        if os.environ.get("KAGO_REQUIRE_BIN"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path


@pytest.fixture
def state_root(_kago_tracker, kago_bin) -> Path:
    root = tempfile.mkdtemp(prefix="kago-t-", dir="/tmp")
    _kago_tracker.roots.append(root)
    _kago_tracker.kago_bin = kago_bin
    return Path(root)


@pytest.fixture
def make_cid(request, _kago_tracker):
    stem = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name.removeprefix("test_"))[:24].strip("-")

    def make(prefix: str = "kt") -> str:
        cid = f"{prefix}-{stem}-{uuid.uuid4().hex[:8]}"
        _kago_tracker.ids.add(cid)
        return cid

    return make


@pytest.fixture
def cid(make_cid) -> str:
    return make_cid()


@pytest.fixture(scope="session")
def bundle_template(tmp_path_factory) -> Path:
    """A bundle built once per session by scripts/mkbundle.sh (rootfs + config.json)."""
    path = tmp_path_factory.mktemp("template") / "bundle"
    proc = subprocess.run(["bash", str(MKBUNDLE), str(path)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"mkbundle.sh failed:\n{proc.stderr}", pytrace=False)
    return path


@pytest.fixture
def bundle(bundle_template, tmp_path, _kago_tracker):
    with open(bundle_template / "config.json") as f:
        template = json.load(f)
    count = 0

    def make(args=None, *, edit=None, rootfs="copy", **overrides) -> Path:
        nonlocal count
        d = tmp_path / ("bundle" if count == 0 else f"bundle{count}")
        count += 1
        d.mkdir()
        _kago_tracker.bundles.append(str(d))
        config = copy.deepcopy(template)
        if isinstance(args, str):
            config["process"]["args"] = ["sh", "-c", args]
        elif args is not None:
            config["process"]["args"] = [str(a) for a in args]
        if rootfs == "copy":
            subprocess.run(["cp", "-a", str(bundle_template / "rootfs"), str(d / "rootfs")],
                           check=True)
        elif rootfs == "shared":
            config["root"]["path"] = str(bundle_template / "rootfs")
            _kago_tracker.watched.append(str(bundle_template / "rootfs"))
        elif rootfs is not None:
            raise ValueError(f"rootfs must be 'copy', 'shared' or None, not {rootfs!r}")
        _merge(config, overrides)
        if edit is not None:
            edited = edit(config)
            if edited is not None:
                config = edited
        with open(d / "config.json", "w") as f:
            json.dump(config, f, indent=2)
        return d

    return make


@pytest.fixture
def run_kago(kago_bin, state_root, _kago_tracker):
    def run(*args, check: bool = True, root=state_root, input: str | None = None,
            timeout: float = 60, env: dict | None = None, stdout=None, stderr=None,
            **kwargs) -> subprocess.CompletedProcess:
        cmd = [kago_bin]
        if root is not None:
            cmd += ["--root", str(root)]
        cmd += [str(a) for a in args]
        with tempfile.TemporaryFile("w+", errors="replace") as out, \
                tempfile.TemporaryFile("w+", errors="replace") as err:
            try:
                proc = subprocess.run(
                    cmd, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                    stdout=out if stdout is None else stdout,
                    stderr=err if stderr is None else stderr,
                    timeout=timeout, env=env, text=True, **kwargs)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{' '.join(cmd)}: no exit within {timeout}s") from None
            out.seek(0)
            err.seek(0)
            proc.stdout = out.read() if stdout is None else None
            proc.stderr = err.read() if stderr is None else None
        if check and proc.returncode != 0:
            raise KagoFailed(proc)
        return proc

    return run


@pytest.fixture
def wait_until():
    def wait(predicate, timeout: float = 10, interval: float = 0.02, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
            time.sleep(interval)

    return wait


@pytest.fixture
def assert_clean(_kago_tracker):
    def check() -> None:
        problems = _kago_tracker.leaks(clean=False)
        assert not problems, "left behind:\n  " + "\n  ".join(problems)

    return check
