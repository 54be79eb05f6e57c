"""kago.cgroups.fs.prewarm_attach: the first cgroup attach's kernel wait, overlapped.

The effect is a latency (measured in docs/performance.md, never asserted here);
these tests check that it is harmless: the process stays where it was, no
thread outlives prewarm_done(), and a host without a usable cgroup.procs is
simply skipped."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(code):
    res = subprocess.run([sys.executable, "-IS", "-c",
                          f"import sys; sys.path.insert(0, {str(REPO)!r})\n" + code],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""                       # the thread never prints
    return res.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="moving a process in its cgroup needs root")
def test_prewarm_leaves_the_process_where_it_was_and_no_thread_behind():
    out = _run(
        "import os\n"
        "from kago.cgroups import fs as cgroups\n"
        "before = open('/proc/self/cgroup').read()\n"
        "path = cgroups._own_procs_file()\n"
        "cgroups.prewarm_attach()\n"
        "cgroups.prewarm_attach()                  # once per process\n"
        "cgroups.prewarm_done()\n"
        "cgroups.prewarm_done()\n"
        "assert open('/proc/self/cgroup').read() == before\n"
        "print(path)\n"
        "import time\n"
        "end = time.monotonic() + 5    # the thread released its lock; it may\n"
        "while len(os.listdir('/proc/self/task')) > 1 and time.monotonic() < end:\n"
        "    time.sleep(0.001)         # still be leaving the kernel a moment\n"
        "print(len(os.listdir('/proc/self/task')))\n"
        "print(cgroups._prewarm_used)\n"
        "print(path is not None and str(os.getpid()) in open(path).read().split())\n")
    path, threads, used, listed = out.splitlines()
    assert threads == "1"                         # no thread at the fork that follows
    if path == "None":
        pytest.skip("no cgroup.procs of ours under /sys/fs/cgroup on this host")
    assert listed == "True"                       # the file it wrote to lists that process
    assert used == "True"


def test_prewarm_without_a_cgroupfs_does_nothing(tmp_path):
    from kago.cgroups.fs import _own_procs_file
    root = str(tmp_path)                          # nothing mounted here
    assert _own_procs_file(root) is None
    # a cgroup.procs that does not list us is not ours: never written
    (tmp_path / "unified").mkdir()
    procs = tmp_path / "unified" / "cgroup.procs"
    procs.write_text("1\n2\n")
    assert _own_procs_file(root) is None
    assert procs.read_text() == "1\n2\n"
    procs.write_text(f"1\n{os.getpid()}\n")
    here = Path("/proc/self/cgroup").read_text()
    expect = str(procs) if any(line.split(":", 2)[1] == "" and line.split(":", 2)[2] == "/"
                               for line in here.splitlines()) else None
    assert _own_procs_file(root) == expect


def _run_in_own_cgroup(code):
    """_run(code) with ``os``, ``cgroups`` (kago.cgroups.fs) and ``first`` (our
    cgroup.procs) defined; skips the test on a host where we have none."""
    out = _run("import os\n"
               "from kago.cgroups import fs as cgroups\n"
               "first = cgroups._own_procs_file()\n"
               "if first is None:\n"
               "    print('skip'); raise SystemExit\n" + code)
    if out.strip() == "skip":
        pytest.skip("no cgroup.procs of ours under /sys/fs/cgroup on this host")
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="moving a process between cgroups needs root")
def test_prewarm_done_never_moves_a_process_back():
    # a library caller moved to another cgroup after prewarm_attach() must stay
    # there: prewarm_done() looks our cgroup up again instead of reusing the path
    out = _run_in_own_cgroup(
        "cgroups.prewarm_attach()\n"
        "base = os.path.dirname(first)\n"
        "d = os.path.join(base, f'kago-prewarm-test-{os.getpid()}')\n"
        "os.mkdir(d)\n"
        "try:\n"
        "    with open(os.path.join(d, 'cgroup.procs'), 'w') as f:\n"
        "        f.write(str(os.getpid()))\n"
        "    cgroups.prewarm_done()\n"
        "    print(str(os.getpid()) in open(os.path.join(d, 'cgroup.procs')).read().split())\n"
        "    print(cgroups._own_procs_file() == os.path.join(d, 'cgroup.procs'))\n"
        "finally:\n"
        "    with open(first, 'w') as f:\n"
        "        f.write(str(os.getpid()))\n"
        "    os.rmdir(d)\n")
    assert out.split() == ["True", "True"]


@pytest.mark.skipif(os.geteuid() != 0, reason="moving a thread in its cgroup needs root")
def test_the_thread_moves_only_itself():
    # its write names its own tid, in the threads file beside our cgroup.procs
    out = _run_in_own_cgroup(
        "seen = []\n"
        "real = cgroups._write_bytes\n"
        "def rec(path, data):\n"
        "    import _thread\n"
        "    seen.append((path, data, _thread.get_native_id()))\n"
        "    return real(path, data)\n"
        "cgroups._write_bytes = rec\n"
        "cgroups.prewarm_attach()\n"
        "cgroups.prewarm_done()\n"
        "procs = cgroups._own_procs_file()\n"
        "(tpath, tdata, tid), (ppath, pdata, _) = seen\n"
        "print(tpath.rsplit('/', 1)[0] == procs.rsplit('/', 1)[0],\n"
        "      tpath.rsplit('/', 1)[1] in ('tasks', 'cgroup.threads'),\n"
        "      tdata == str(tid).encode(), tid != os.getpid(),\n"
        "      (ppath, pdata) == (procs, str(os.getpid()).encode()))\n")
    assert out.split() == ["True"] * 5
