"""`start` against a fast reaper (issue 12, item 6).

conmon and containerd's shims are child subreapers: the container's init is
reparented to them once `kago create`'s intermediate exits, and they reap it
the moment it exits.  A process that execs and exits at once (`/bin/true`)
can be gone - reaped, its pid free - before `kago start` has looked at it;
it did start, and `start` must say so.  An init that dies before it execs
is still an error (test_lifecycle covers a failing execve).

The helper below is such a subreaper: PR_SET_CHILD_SUBREAPER, then a
blocking waitpid(-1) loop (it wakes the instant a child exits), while
two children of it run `kago create` + `kago start` + `kago delete` of one id
each, over and over, with every core kept busy.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ITERATIONS = int(os.environ.get("KAGO_START_RACE_N", "500"))
RUNNERS = 2       # create/start/delete loops side by side (250 each): wall time

REAPER = textwrap.dedent(r"""
    import ctypes, json, os, subprocess, sys, tempfile
    kago, root, bundle, cid, n, nrun, expect, out = sys.argv[1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:          # PR_SET_CHILD_SUBREAPER
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
    def run(cid, n, out):
        fails, starts = [], 0
        err = tempfile.TemporaryFile()
        def kago_(*args):
            err.seek(0); err.truncate()
            r = subprocess.run([kago, "--root", root, *args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err, timeout=60)
            err.seek(0)
            return r.returncode, err.read().decode(errors="replace").strip()
        for i in range(n):
            rc, msg = kago_("create", "--bundle", bundle, cid)
            if rc:
                fails.append(f"{i}: create: {msg}")
            else:
                rc, msg = kago_("start", cid)
                starts += 1
                if expect == "started" and rc:
                    fails.append(f"{i}: start: {msg}")
                elif expect != "started" and (rc == 0 or expect not in msg):
                    fails.append(f"{i}: start: exit status {rc}: {msg}")
            rc, msg = kago_("delete", "--force", cid)
            if rc:
                fails.append(f"{i}: delete: {msg}")
        with open(out, "w") as f:
            json.dump({"starts": starts, "fails": fails}, f)
    runners = {}
    for k in range(int(nrun)):         # their own ids, in parallel
        pid = os.fork()
        if pid == 0:
            try:
                run(f"{cid}-{k}", int(n) // int(nrun), f"{out}.{k}")
            finally:
                os._exit(0)
        runners[pid] = k
    rc = 0
    while runners:                     # reap everything, at once
        pid, status = os.waitpid(-1, 0)
        if runners.pop(pid, None) is not None:
            rc = rc or os.waitstatus_to_exitcode(status)
    sys.exit(rc)
""")


def _busy():
    """One spinning process per core (killed by the caller)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)]


def _hammer(kago_bin, state_root, cid, b, tmp_path, n, expect):
    """Run the reaper harness: n create/start/delete rounds with every core
    busy; returns (starts, failures, seconds)."""
    script = tmp_path / "reaper.py"
    script.write_text(REAPER)
    out = tmp_path / "result.json"
    load = _busy()
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, str(script), kago_bin, str(state_root), str(b),
                            cid, str(n), str(RUNNERS), expect, str(out)],
                           capture_output=True, text=True, timeout=600)
    finally:
        for p in load:
            p.send_signal(signal.SIGKILL)
            p.wait()
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    starts, fails = 0, []
    for k in range(RUNNERS):
        one = json.loads(Path(f"{out}.{k}").read_text())
        starts += one["starts"]
        fails += one["fails"]
    print(f"{starts} starts in {took:.1f} s, {len(fails)} failed")
    return starts, fails


def test_start_of_a_process_that_exits_at_once_under_a_fast_reaper(
        kago_bin, state_root, cid, bundle, tmp_path, assert_clean):
    b = bundle(["/bin/true"], rootfs="shared")
    starts, fails = _hammer(kago_bin, state_root, cid, b, tmp_path, ITERATIONS, "started")
    assert starts == ITERATIONS, fails[:5]
    assert fails == [], f"{len(fails)} of {ITERATIONS} failed:\n" + "\n".join(fails[:10])
    assert_clean()


def test_init_that_dies_before_exec_is_still_an_error_under_a_fast_reaper(
        kago_bin, state_root, cid, bundle, tmp_path, assert_clean):
    """A startContainer hook SIGKILLs init (no pid namespace: the hook's
    parent is init): init is gone - reaped at once - before it wrote ``0``
    and exec'd, so every `start` fails."""
    def edit(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] != "pid"]
        cfg["hooks"] = {"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "kill -9 $PPID"]}]}
    b = bundle(["/bin/true"], rootfs="shared", edit=edit)
    n = 20
    starts, fails = _hammer(kago_bin, state_root, cid, b, tmp_path, n,
                            "init exited before exec")
    assert starts == n, fails[:5]
    assert fails == [], f"{len(fails)} of {n} wrong:\n" + "\n".join(fails[:10])
    assert_clean()
