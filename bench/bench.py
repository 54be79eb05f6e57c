#!/usr/bin/env python3
"""kago's benchmark: kago, runc and crun side by side, interleaved and paired.

    bash bench/run.sh [-n RUNS] [--scale N] [--only M[,M]] [--json FILE] [RUNTIME...]

RUNTIME is a name (kago = /usr/local/bin/kago, or anything on PATH), a path, or
a quoted command line ('python3 -IS /x/kago.py'); the default is `kago runc crun`.

Method (docs/performance.md says more):
- every runtime call is posix_spawn'ed with stdio on /dev/null (stderr kept in a
  scratch file for error messages) and reaped with wait4: wall = monotonic clock
  from spawn to reap; cpu = ru_utime + ru_stime of the reaped runtime process and
  the children it reaped itself (a container's init, reparented to this harness,
  is not part of a `create`'s cpu: its own cpu is reported in the init table);
- peak RSS comes from a separate pass in which each timed call runs under
  `/usr/bin/time -f %M` (a small C parent: a process spawned straight from this
  Python inherits Python's RSS high-water mark through exec);
- rounds are interleaved and paired: round k runs the measure once per runtime,
  the order rotating each round (A B C, B C A, C A B, ...); a ratio is the median
  of the per-round ratios, so it survives drift of a shared, noisy machine;
- set-up and tear-down of a sample (create before `start`, delete after
  `create`, ...) are outside the timed region; one warm-up round is not recorded;
- this process is a child subreaper, so it reaps containers' inits and waits for
  them as an engine's shim does (create+start+wait+delete);
- each runtime gets its own --root in a scratch dir; containers, cgroups and
  the scratch dir are removed at the end, also on failure or Ctrl-C;
- a measure a runtime fails (e.g. a verb it does not implement yet) is reported
  as n/a with the runtime's error, and the run goes on.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MKBUNDLE = os.path.join(REPO, "scripts", "mkbundle.sh")
KAGO = "/usr/local/bin/kago"
TIME = "/usr/bin/time"
PR_SET_CHILD_SUBREAPER = 36
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       "HOME": "/root", "LC_ALL": "C"}
DEVNULL = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
PREFIX = "kb%d" % os.getpid()      # every container id starts with this
MIB = 1024.0
OCI_VERSION = "1.0.2-dev"          # what `runc spec` writes

# measure name (for --only) -> headline label
MEASURES = [
    ("run", "run /bin/true"),
    ("lifecycle", "create+start+wait+delete"),
    ("create", "create"),
    ("start", "start"),
    ("state", "state"),
    ("kill", "kill"),
    ("delete", "delete (created)"),
    ("delete-force", "delete --force (running)"),
    ("exec", "exec /bin/true"),
    ("pause", "pause+resume"),
    ("run-podman", "run /bin/true, podman config"),
    ("create-podman", "create, podman config"),
    ("exec-podman", "exec /bin/true, podman config"),
    ("run-podman-noseccomp", "run /bin/true, podman config without seccomp"),
    ("podman", "podman run --rm"),
    ("ctr", "ctr run --rm"),
    ("cri", "CRI pod+container"),
    ("docker", "docker run --rm"),
    ("scale", "scale"),
]
NAMES = [m for m, _ in MEASURES]
ENGINES = ["podman", "ctr", "cri", "docker"]     # run with --engines only
# runtime calls in a label (its own cost subtracts that many interpreter floors)
CALLS = {"create+start+wait+delete": 3, "pause+resume": 2,
         "  wait (start returned -> init reaped)": 0}
# issue 16: a light verb's own cost (call - interpreter floor) <= runc's whole call
LIGHT = ["start", "state", "kill", "delete (created)", "delete --force (running)",
         "  pause", "  resume"]
# issue 16: <= 1.10x runc wall, on the bench bundle and on podman's config
HEAVY = ["create", "run /bin/true", "exec /bin/true", "create, podman config",
         "run /bin/true, podman config", "exec /bin/true, podman config",
         "run /bin/true, podman config without seccomp"]
PODMAN_TEMPLATE = os.path.join(HERE, "podman-config.json")


class CallFailed(Exception):
    pass


class Interrupted(BaseException):
    pass


class Sample:
    __slots__ = ("wall", "cpu", "rss")

    def __init__(self, wall, cpu, rss=0):
        self.wall, self.cpu, self.rss = wall, cpu, rss


# ---------------------------------------------------------------------------
# spawning and waiting

def wait_exit(pid, timeout=None, child=True):
    """Wait for ``pid`` to exit; reap it if it is our child.  Returns
    (status, rusage) for a reaped child, None otherwise.  Kills it on timeout."""
    try:
        pfd = os.pidfd_open(pid)
    except ProcessLookupError:
        pfd = -1
    if pfd >= 0:
        try:
            r, _, _ = select.select([pfd], [], [], timeout)
            if not r:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                select.select([pfd], [], [], 10)
        finally:
            os.close(pfd)
    try:
        _, status, ru = os.wait4(pid, 0)
        return status, ru
    except ChildProcessError:
        return None


def spawn(argv, *, timeout=120.0, rss=False, stdout=None, env=None):
    """Run argv; return (rc, Sample, stderr text).  stdout: an fd, or /dev/null."""
    tid = threading.get_ident()
    errpath = os.path.join(Bench.work, ".err.%d" % tid)
    errfd = os.open(errpath, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    rsspath = os.path.join(Bench.work, ".rss.%d" % tid)
    if rss:
        argv = [TIME, "-f", "%M", "-o", rsspath] + list(argv)
    fa = [(os.POSIX_SPAWN_DUP2, DEVNULL, 0),
          (os.POSIX_SPAWN_DUP2, DEVNULL if stdout is None else stdout, 1),
          (os.POSIX_SPAWN_DUP2, errfd, 2)]
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env or ENV, file_actions=fa)
        res = wait_exit(pid, timeout)
        t1 = time.perf_counter()
        os.lseek(errfd, 0, os.SEEK_SET)
        err = os.read(errfd, 8192).decode(errors="replace")
    finally:
        os.close(errfd)
    if res is None:                       # cannot happen for our own child
        return 255, Sample(t1 - t0, 0.0), err
    status, ru = res
    rc = os.waitstatus_to_exitcode(status)
    peak = ru.ru_maxrss
    if rss:
        try:
            with open(rsspath) as f:
                peak = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            peak = 0
    if t1 - t0 >= timeout:
        err = "timed out after %.0f s; " % timeout + err
    return rc, Sample(t1 - t0, ru.ru_utime + ru.ru_stime, peak), err


def first_line(err):
    """The first non-empty line of a runtime's stderr (the msg of a
    logrus-style `time=... level=error msg="..."` line)."""
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    if lines and lines[0].startswith("Traceback"):
        lines = lines[-1:]                  # the exception, not the frames
    for line in lines:
        if line:
            m = re.search(r'level=\w+ msg="((?:[^"\\]|\\.)*)"', line)
            if m:
                line = m.group(1).replace('\\"', '"')
            return line[:200]
    return ""


def reap():
    """Reap containers' inits that were re-parented to us and have exited."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def read_pid(path):
    with open(path) as f:
        return int(f.read().strip())


def proc_status(pid):
    """{'VmRSS': KiB, 'VmHWM': KiB} of pid (empty if gone)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0])
    except (OSError, ValueError):
        pass
    return out


def proc_cpu_ms(pid):
    """CPU time (ms) used so far by every live thread of pid (schedstat, ns)."""
    total = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        return None
    return total / 1e6


# ---------------------------------------------------------------------------
# runtimes

class Runtime:
    def __init__(self, spec, root):
        parts = spec.split()
        exe = parts[0]
        if exe == "kago" and len(parts) == 1:
            exe = KAGO
        elif "/" not in exe:
            exe = shutil.which(exe, path=ENV["PATH"]) or exe
        self.argv = [exe] + parts[1:]
        if len(parts) == 1:
            self.name = "kago" if spec == "kago" else os.path.basename(exe)
        else:
            self.name = spec
        self.kind = os.path.basename(exe)        # runc / crun decide the baselines
        self.root = root
        self.pidfiles = os.path.join(root, ".pid")
        self.n = 0
        self.version = ""
        shebang = ""
        try:
            with open(exe, "rb") as f:
                shebang = f.read(200).split(b"\n")[0].decode(errors="replace")
        except OSError:
            pass
        self.floor = floor_argv(self.argv, shebang)

    def cmd(self, *args):
        return self.argv + ["--root", self.root] + list(args)

    def probe(self):
        if not os.access(self.argv[0], os.X_OK):
            return "not found or not executable: %s" % self.argv[0]
        os.makedirs(self.root, 0o700, exist_ok=True)
        os.makedirs(self.pidfiles, 0o700, exist_ok=True)
        rc, _, err = spawn_out(self.argv + ["--version"])
        self.version = first_line(err[0]) if rc == 0 else ""
        return None if rc == 0 else "--version failed: %s" % first_line(err[1])


def floor_argv(argv, shebang=""):
    """The start-up floor of a runtime written in Python: its interpreter running
    `-IS -c pass` (the launcher's interpreter, from argv or the script's #! line);
    None for any other runtime (its whole call is its own cost)."""
    def python(word):
        return "python" in os.path.basename(word)

    if len(argv) > 1 and python(argv[0]):
        return [argv[0], "-IS", "-c", "pass"]
    words = shebang[2:].split() if shebang.startswith("#!") else []
    if words and os.path.basename(words[0]) == "env" and len(words) > 1:
        words = [shutil.which(words[1], path=ENV["PATH"]) or words[1]] + words[2:]
    if words and python(words[0]):
        return [words[0], "-IS", "-c", "pass"]
    return None


def spawn_out(argv, timeout=60.0):
    """Run argv, return (rc, Sample, (stdout, stderr))."""
    r, w = os.pipe()
    try:
        rc, s, err = _spawn_pipe(argv, w, r, timeout)
    finally:
        os.close(r)
    return rc, s, err


def _spawn_pipe(argv, w, r, timeout):
    out = []
    done = threading.Event()

    def reader():
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            out.append(b)
        done.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        rc, s, err = spawn(argv, timeout=timeout, stdout=w)
    finally:
        os.close(w)
    done.wait(5)
    return rc, s, (b"".join(out).decode(errors="replace"), err)


# ---------------------------------------------------------------------------
# the bench

class Bench:
    work = "/tmp"

    def __init__(self, args, runtimes):
        self.a = args
        self.rts = runtimes
        self.rss_mode = False
        self.data = {}        # label -> rt.name -> {round: Sample}
        self.rssdata = {}     # label -> rt.name -> [KiB]
        self.extras = {}      # label -> rt.name -> [number]
        self.failed = {}      # (measure, rt.name) -> reason
        self.scale = {}       # (par, rt.name) -> {up, list, down...} medians, "rounds": [...]
        self.scale_runs = {}  # (par, rt.name) -> {round: {up, list, down...} seconds}
        self.floor = {}       # label -> rt.name -> {round: Sample}: CALLS x `-IS -c pass`
        self.running = {}     # rt.name -> id of a running bench-bundle container
        self.running_pod = {} # rt.name -> id of a running podman-config container
        self.engines = None   # bench/engines.py's Engines with --engines
        self.sample_ids = []  # ids made by the sample in progress
        self.lock = threading.Lock()

    # ---- ids and calls
    def new_id(self, rt):
        with self.lock:
            rt.n += 1
            cid = "%s-%s-%d" % (PREFIX, rt.kind[:4].replace(".", ""), rt.n)
            self.sample_ids.append((rt, cid))
        return cid

    def pidfile(self, rt, cid):
        return os.path.join(rt.pidfiles, cid)

    def call(self, rt, *args, timed=True, timeout=None):
        """A runtime call that must succeed.  Timed calls run under
        /usr/bin/time in the RSS pass."""
        rc, s, err = spawn(rt.cmd(*args), rss=timed and self.rss_mode,
                           timeout=timeout or self.a.timeout)
        if rc != 0:
            raise CallFailed("`%s %s` exit %d: %s" % (rt.name, " ".join(args[:1]), rc,
                                                      first_line(err) or "(no message)"), err)
        return s

    def quiet(self, rt, *args, timeout=30.0):
        rc, _, _ = spawn(rt.cmd(*args), timeout=timeout)
        return rc

    def gone(self, rt, cid):
        """Remove container cid if the runtime left it (untimed)."""
        if os.path.lexists(os.path.join(rt.root, cid)):
            self.quiet(rt, "delete", "--force", cid)
        try:
            os.unlink(self.pidfile(rt, cid))
        except FileNotFoundError:
            pass

    def state_pid(self, rt, cid):
        rc, _, (out, _) = spawn_out(rt.cmd("state", cid))
        if rc == 0:
            try:
                return int(json.loads(out)["pid"])
            except (ValueError, KeyError, TypeError):
                pass
        return None

    # ---- measures: each returns ({label: Sample}, {extra label: number})
    def m_run(self, rt, bundle=None, label="run /bin/true"):
        cid = self.new_id(rt)
        s = self.call(rt, "run", "--bundle", bundle or self.bundle_true, cid)
        self.gone(rt, cid)
        return {label: s}, {}

    def m_run_podman(self, rt):
        return self.m_run(rt, self.pod_true, "run /bin/true, podman config")

    def m_run_podman_noseccomp(self, rt):
        return self.m_run(rt, self.pod_noseccomp, "run /bin/true, podman config without seccomp")

    def m_create_podman(self, rt):
        cid = self.new_id(rt)
        s = self.call(rt, "create", "--bundle", self.pod_sleep, "--pid-file",
                      self.pidfile(rt, cid), cid)
        self.quiet(rt, "delete", "--force", cid)
        self.gone(rt, cid)
        reap()
        return {"create, podman config": s}, {}

    def m_exec_podman(self, rt):
        return {"exec /bin/true, podman config":
                self.call(rt, "exec", self.running_pod[rt.name], "/bin/true")}, {}

    def m_lifecycle(self, rt):
        cid = self.new_id(rt)
        pidf = self.pidfile(rt, cid)
        t0 = time.perf_counter()
        c = self.call(rt, "create", "--bundle", self.bundle_true, "--pid-file", pidf, cid)
        pid = read_pid(pidf)
        s = self.call(rt, "start", cid)
        tw = time.perf_counter()
        wait_exit(pid, self.a.timeout)              # as a shim does
        tw = time.perf_counter() - tw
        d = self.call(rt, "delete", cid)
        total = time.perf_counter() - t0
        self.gone(rt, cid)
        return ({"create+start+wait+delete": Sample(total, c.cpu + s.cpu + d.cpu,
                                                    max(c.rss, s.rss, d.rss)),
                 "  wait (start returned -> init reaped)": Sample(tw, 0.0),
                 "  delete (stopped)": d}, {})

    def m_create(self, rt):
        cid = self.new_id(rt)
        pidf = self.pidfile(rt, cid)
        s = self.call(rt, "create", "--bundle", self.bundle_sleep, "--pid-file", pidf, cid)
        pid = self.state_pid(rt, cid) or read_pid(pidf)
        st = proc_status(pid)
        cpu = proc_cpu_ms(pid)
        self.quiet(rt, "delete", "--force", cid)
        self.gone(rt, cid)
        reap()
        ex = {}
        if st:
            ex = {"VmRSS KiB": st.get("VmRSS", 0), "VmHWM KiB": st.get("VmHWM", 0)}
        if cpu is not None:
            ex["cpu ms so far"] = cpu
        return {"create": s}, ex

    def _created(self, rt, bundle=None):
        cid = self.new_id(rt)
        pidf = self.pidfile(rt, cid)
        self.call(rt, "create", "--bundle", bundle or self.bundle_sleep, "--pid-file", pidf,
                  cid, timed=False)
        return cid, read_pid(pidf)

    def _running(self, rt, bundle=None):
        cid, pid = self._created(rt, bundle)
        self.call(rt, "start", cid, timed=False)
        return cid, pid

    def m_start(self, rt):
        cid, _ = self._created(rt)
        s = self.call(rt, "start", cid)
        self.quiet(rt, "delete", "--force", cid)
        self.gone(rt, cid)
        reap()
        return {"start": s}, {}

    def m_kill(self, rt):
        cid, pid = self._running(rt)
        s = self.call(rt, "kill", cid, "KILL")
        wait_exit(pid, self.a.timeout)
        self.call(rt, "delete", cid, timed=False)
        self.gone(rt, cid)
        return {"kill": s}, {}

    def m_delete(self, rt):
        cid, _ = self._created(rt)
        s = self.call(rt, "delete", cid)
        self.gone(rt, cid)
        reap()
        return {"delete (created)": s}, {}

    def m_delete_force(self, rt):
        cid, _ = self._running(rt)
        s = self.call(rt, "delete", "--force", cid)
        self.gone(rt, cid)
        reap()
        return {"delete --force (running)": s}, {}

    def m_state(self, rt):
        return {"state": self.call(rt, "state", self.running[rt.name])}, {}

    def m_exec(self, rt):
        return {"exec /bin/true": self.call(rt, "exec", self.running[rt.name], "/bin/true")}, {}

    def m_pause(self, rt):
        cid = self.running[rt.name]
        p = self.call(rt, "pause", cid)
        try:
            r = self.call(rt, "resume", cid)
        except CallFailed:
            raise
        return {"pause+resume": Sample(p.wall + r.wall, p.cpu + r.cpu, max(p.rss, r.rss)),
                "  pause": p, "  resume": r}, {}

    # ---- rounds
    def one(self, measure, fn, rt):
        """One sample of measure for rt; on failure clean up what it made and
        mark the measure n/a for rt.  Returns the result or None."""
        self.sample_ids = []
        try:
            return fn(rt)
        except CallFailed as e:
            self.failed[(measure, rt.name)] = str(e)
            if e.args[1:]:
                say("bench: %s: %s fails; its stderr:\n%s" % (measure, rt.name,
                                                              e.args[1].rstrip()[-3000:]))
        except (OSError, ValueError) as e:
            self.failed[(measure, rt.name)] = "%s: %s" % (type(e).__name__, e)
        for r, cid in self.sample_ids:
            self.gone(r, cid)
        reap()
        return None

    def record(self, rnd, rt, res):
        samples, extras = res
        for label, s in samples.items():
            self.data.setdefault(label, {}).setdefault(rt.name, {})[rnd] = s
        for label, v in extras.items():
            self.extras.setdefault(label, {}).setdefault(rt.name, []).append(v)

    def rotate(self, rnd):
        k = rnd % len(self.rts)
        return self.rts[k:] + self.rts[:k]

    def record_floor(self, rnd, rt, res):
        """Right after rt's call of round rnd: its interpreter's bare start-up
        (`-IS -c pass`), CALLS[label] times for each label of the result."""
        rc, s, _ = spawn(rt.floor, timeout=self.a.timeout)
        if rc != 0:
            return
        for label in res[0]:
            k = CALLS.get(label, 1)
            if k:
                self.floor.setdefault(label, {}).setdefault(rt.name, {})[rnd] = Sample(
                    k * s.wall, k * s.cpu)

    def run_measure(self, measure, fn, rss=True, floor=True, runs=None):
        live = [rt for rt in self.rts if (measure, rt.name) not in self.failed]
        say("# %s: warm-up" % measure)
        for rt in live:
            self.one(measure, fn, rt)
        for rnd in range(runs or self.a.runs):
            for rt in self.rotate(rnd):
                if (measure, rt.name) in self.failed:
                    continue
                res = self.one(measure, fn, rt)
                if res is not None:
                    self.record(rnd, rt, res)
                    if floor and rt.floor:
                        self.record_floor(rnd, rt, res)
        if not rss or self.a.rss_runs <= 0 or not os.access(TIME, os.X_OK):
            return
        self.rss_mode = True
        try:
            for rnd in range(self.a.rss_runs):
                for rt in self.rotate(rnd):
                    if (measure, rt.name) in self.failed:
                        continue
                    res = self.one(measure, fn, rt)
                    if res is not None:
                        for label, s in res[0].items():
                            if s.rss:
                                self.rssdata.setdefault(label, {}).setdefault(
                                    rt.name, []).append(s.rss)
        finally:
            self.rss_mode = False

    def run_scale(self, rt, n, par, rnd=0):
        ids = [self.new_id(rt) for _ in range(n)]

        cpu = {"up": 0.0, "down": 0.0}

        def add(k, *ss):
            with self.lock:
                cpu[k] += sum(x.cpu for x in ss)

        def up(cid):
            add("up", self.call(rt, "create", "--bundle", self.bundle_sleep, cid, timed=False),
                self.call(rt, "start", cid, timed=False))

        def down(cid):
            add("down", self.call(rt, "delete", "--force", cid, timed=False))

        def each(f):
            if par == 1:
                for cid in ids:
                    f(cid)
            else:
                ex = ThreadPoolExecutor(par)
                try:
                    list(ex.map(f, ids))
                finally:    # on an error or Ctrl-C, start no more calls
                    ex.shutdown(wait=True, cancel_futures=True)

        res = {}
        try:
            t0 = time.perf_counter()
            each(up)
            res["up"] = time.perf_counter() - t0
            rc, s, (out, err) = spawn_out(rt.cmd("list", "-q"))
            if rc != 0:
                raise CallFailed("`%s list` exit %d: %s" % (rt.name, rc, first_line(err)))
            res["list"] = s.wall
            listed = sum(1 for line in out.split() if line.startswith(PREFIX))
            if listed != n:
                raise CallFailed("`%s list -q` listed %d of %d containers" % (rt.name, listed, n))
            t0 = time.perf_counter()
            each(down)
            res["down"] = time.perf_counter() - t0
            res["up cpu"], res["down cpu"] = cpu["up"], cpu["down"]
        except CallFailed as e:
            self.failed[("scale %d" % par, rt.name)] = str(e)
            res = None
        for cid in ids:
            self.gone(rt, cid)
        reap()
        if res:
            self.scale_runs.setdefault((par, rt.name), {})[rnd] = res

    # ---- the whole run
    def start_shared(self, table, bundle, measures):
        """One running container per runtime for measures that need one."""
        for rt in self.rts:
            self.sample_ids = []
            try:
                table[rt.name] = self._running(rt, bundle)[0]
            except (CallFailed, OSError, ValueError) as e:
                for m in measures:
                    self.failed[(m, rt.name)] = "no running container: %s" % e
                for r, cid in self.sample_ids:
                    self.gone(r, cid)

    def stop_shared(self, table):
        for rt in self.rts:
            cid = table.pop(rt.name, None)
            if cid:
                self.quiet(rt, "resume", cid)
                self.gone(rt, cid)
        reap()

    def run(self):
        only = set(filter(None, self.a.only.split(",")))
        want = [m for m in NAMES if not only or m in only]
        simple = [("run", self.m_run), ("lifecycle", self.m_lifecycle),
                  ("create", self.m_create), ("start", self.m_start),
                  ("kill", self.m_kill), ("delete", self.m_delete),
                  ("delete-force", self.m_delete_force),
                  ("run-podman", self.m_run_podman), ("create-podman", self.m_create_podman),
                  ("run-podman-noseccomp", self.m_run_podman_noseccomp)]
        onrun = [("state", self.m_state), ("exec", self.m_exec), ("pause", self.m_pause)]
        t0 = time.perf_counter()
        for m, fn in simple:
            if m in want:
                self.run_measure(m, fn)
        for table, bundle, group in ((self.running, self.bundle_sleep, onrun),
                                     (self.running_pod, self.pod_sleep,
                                      [("exec-podman", self.m_exec_podman)])):
            if not any(m in want for m, _ in group):
                continue
            self.start_shared(table, bundle, [m for m, _ in group])
            try:
                for m, fn in group:
                    if m in want:
                        self.run_measure(m, fn)
            finally:
                self.stop_shared(table)
        if self.engines:
            for m in ENGINES:
                fn = self.engines.measures.get(m)
                if m in want and fn:
                    self.run_measure(m, fn, rss=False, floor=False, runs=self.a.engine_runs)
        if "scale" in want and self.a.scale > 0:
            # rounds interleaved and rotated as the other measures, so a ratio
            # is paired (a failed run makes that runtime's scale n/a)
            for rnd in range(self.a.scale_rounds):
                for par in (1, self.a.par):
                    for rt in self.rotate(rnd):
                        if ("scale %d" % par, rt.name) in self.failed:
                            continue
                        say("# scale: %s, %d containers, parallel %d, round %d"
                            % (rt.name, self.a.scale, par, rnd + 1))
                        self.run_scale(rt, self.a.scale, par, rnd)
            for key, runs in self.scale_runs.items():
                if ("scale %d" % key[0], key[1]) not in self.failed:
                    self.scale[key] = scale_summary(runs)
        self.elapsed = time.perf_counter() - t0


def say(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# set-up and clean-up

def build_bundles(work):
    true_b = os.path.join(work, "bundle-true")
    sleep_b = os.path.join(work, "bundle-sleep")
    for argv in (["bash", MKBUNDLE, true_b, "/bin/true"],
                 ["bash", MKBUNDLE, "--rootfs", os.path.join(true_b, "rootfs"), sleep_b,
                  "/bin/sleep", "1000"]):
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("bench: %s failed:\n%s" % (" ".join(argv), r.stderr))
    # mkbundle.sh writes ociVersion 1.2.0, which crun 1.8.1 refuses ("unknown
    # version specified"); `runc spec`'s version is accepted by all three.
    for b in (true_b, sleep_b):
        p = os.path.join(b, "config.json")
        with open(p) as f:
            c = json.load(f)
        c["ociVersion"] = OCI_VERSION
        with open(p, "w") as f:
            json.dump(c, f, indent=1)
    return true_b, sleep_b


def podman_config(template, rootfs, userdata, args, hard):
    """config.json as podman 4.3.1 sends it (bench/podman-config.json, captured
    with a runtime that copies its bundle's config.json) for ROOTFS running
    ARGS: its mounts (with the files podman binds from its per-container
    userdata dir made under USERDATA), capabilities, rlimits, seccomp profile,
    masked and read-only paths, devices and pids limit.  Two changes: no
    cgroupsPath (one bundle serves many containers: each runtime's default
    path by id), and each rlimit at most HARD (type -> the caller's hard limit:
    raising one needs CAP_SYS_RESOURCE, which this sandbox lacks, so runc and
    kago both fail with EPERM above it, as the engine suite found)."""
    text = json.dumps(template).replace("@USERDATA@", userdata).replace("@ROOTFS@", rootfs)
    c = json.loads(text)
    c["process"]["args"] = list(args)
    c["linux"].pop("cgroupsPath", None)
    for r in c["process"].get("rlimits", []):
        h = hard.get(r["type"])
        if h is not None and h >= 0:
            r["hard"], r["soft"] = min(r["hard"], h), min(r["soft"], h)
    return c


def build_podman_bundles(work, rootfs):
    """bundle-podman-true, -sleep and -noseccomp (true, without podman's seccomp
    profile) on the bench bundle's rootfs."""
    import resource
    with open(PODMAN_TEMPLATE) as f:
        template = json.load(f)
    userdata = os.path.join(work, "podman-userdata")
    os.makedirs(os.path.join(userdata, "shm"), exist_ok=True)
    for name, text in (("hosts", "127.0.0.1 localhost\n"), ("hostname", "bench\n"),
                       (".containerenv", "")):
        with open(os.path.join(userdata, name), "w") as f:
            f.write(text)
    hard = {}
    for r in template["process"].get("rlimits", []):
        n = getattr(resource, r["type"], None)
        if n is not None:
            hard[r["type"]] = resource.getrlimit(n)[1]
    out = []
    for name, args in (("bundle-podman-true", ["/bin/true"]),
                       ("bundle-podman-sleep", ["/bin/sleep", "1000"]),
                       ("bundle-podman-noseccomp", ["/bin/true"])):
        b = os.path.join(work, name)
        os.makedirs(b, exist_ok=True)
        c = podman_config(template, rootfs, userdata, args, hard)
        if name.endswith("noseccomp"):
            del c["linux"]["seccomp"]
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(c, f, indent=1)
        out.append(b)
    return out


def cgroup_mounts():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] in (["cgroup"], ["cgroup2"]):
                out.append(left.split()[4].replace("\\040", " "))
    return out


def our_cgroups(depth=4):
    """Directories named PREFIX* in every cgroup hierarchy (deepest first)."""
    found = []

    def walk(d, lvl):
        try:
            it = list(os.scandir(d))
        except OSError:
            return
        for e in it:
            if not e.is_dir(follow_symlinks=False):
                continue
            if PREFIX in e.name:
                found.append(e.path)
                walk(e.path, lvl + 1)
            elif lvl < depth:
                walk(e.path, lvl + 1)

    for mp in cgroup_mounts():
        walk(mp, 1)
    return sorted(set(found), key=lambda p: -p.count("/"))


def clean_cgroups():
    left = our_cgroups()
    for d in left:
        for fz, val in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            try:
                with open(os.path.join(d, fz), "w") as f:
                    f.write(val)
            except OSError:
                pass
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pids = []
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for d in left:
        while True:
            reap()
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    say("bench: warning: could not remove cgroup %s" % d)
                    break
                time.sleep(0.05)
    return left


def cleanup(bench, work, keep):
    for rt in bench.rts if bench else ():
        try:
            names = os.listdir(rt.root)
        except OSError:
            names = []
        for cid in names:
            if cid.startswith(PREFIX):
                bench.quiet(rt, "resume", cid, timeout=10)
                bench.quiet(rt, "delete", "--force", cid)
    reap()
    left = clean_cgroups()
    if left:
        say("bench: removed %d cgroup(s) left behind by the runtimes" % len(left))
    reap()
    if keep:
        say("bench: scratch dir kept: %s" % work)
        return
    with open("/proc/self/mountinfo") as f:
        mounted = [ln.split()[4] for ln in f if ln.split()[4].startswith(work + "/")]
    if mounted:
        say("bench: warning: mounts under %s (%s); not removing it" % (work, mounted[0]))
        return
    shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------
# report

def med(xs):
    return statistics.median(xs) if xs else None


def quartiles(xs):
    if len(xs) < 4:
        return min(xs), max(xs)
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def paired_ratio(a, b):
    """median over common rounds of a.wall / b.wall"""
    rr = [a[k].wall / b[k].wall for k in a if k in b and b[k].wall > 0]
    return statistics.median(rr) if rr else None


def paired_cpu_ratio(a, b):
    """median over common rounds of a.cpu / b.cpu (rounds with a cpu reading)"""
    rr = [a[k].cpu / b[k].cpu for k in a if k in b and a[k].cpu and b[k].cpu]
    return statistics.median(rr) if rr else None


def scale_summary(runs):
    """{round: {measure: seconds}} -> the medians, with the rounds kept."""
    keys = next(iter(runs.values())).keys()
    out = {k: statistics.median([r[k] for r in runs.values()]) for k in keys}
    out["rounds"] = {str(k): v for k, v in runs.items()}
    return out


def scale_ratio(r, q, key):
    """r[key] / q[key]: the median of the per-round ratios when both ran in
    the same rounds (paired), else the ratio of the medians."""
    a, c = r.get("rounds") or {}, q.get("rounds") or {}
    common = [k for k in a if k in c and c[k][key] > 0]
    if common:
        return statistics.median([a[k][key] / c[k][key] for k in common])
    return r[key] / q[key]


def own_samples(ss, fl):
    """Per round: a call's wall and cpu minus its interpreter floor measured in
    the same round (rounds with both)."""
    return {k: Sample(ss[k].wall - fl[k].wall, ss[k].cpu - fl[k].cpu) for k in ss if k in fl}


def own_of(b, label, rt):
    """rt's own-cost samples for label: the call minus the floor for a runtime in
    Python, the whole call for any other; None when not measured."""
    ss = b.data.get(label, {}).get(rt.name)
    if not ss:
        return None
    if not getattr(rt, "floor", None):
        return ss
    fl = b.floor.get(label, {}).get(rt.name)
    return own_samples(ss, fl) if fl else None


def base_of(rts, kind):
    for rt in rts:
        if rt.kind == kind:
            return rt
    return None


def machine_info(rts):
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    info = {"nproc": os.cpu_count(), "kernel": platform.release(),
            "cpu": "", "harness python": sys.version.split()[0],
            "loadavg at start": open("/proc/loadavg").read().split()[:3]}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ctl = "/sys/fs/cgroup/unified/cgroup.controllers"
    info["cgroups"] = ("v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else
                       "v1 + unified (hybrid)" if os.path.isdir("/sys/fs/cgroup/unified") else "v1")
    if os.path.exists(ctl):
        info["unified controllers seen by the runtimes"] = open(ctl).read().strip() or "(none)"
    for rt in rts:
        info["%s version" % rt.name] = rt.version
        exe = rt.argv[0]
        try:
            with open(exe, "rb") as f:
                head = f.read(200)
            if head.startswith(b"#!"):
                interp = head[2:].split(b"\n")[0].decode(errors="replace").strip()
                info["%s interpreter" % rt.name] = interp
                py = interp.split()[0]
                v = cmd([py, "-c", "import sys; print(sys.version.split()[0])"])
                if v:
                    info["%s interpreter" % rt.name] += " (Python %s)" % v
        except OSError:
            pass
    return info


def fmt(x, spec="%.1f"):
    return "-" if x is None else spec % x


def report(b, info, out=sys.stdout):
    rts = b.rts
    runc, crun = base_of(rts, "runc"), base_of(rts, "crun")
    bases = [x for x in (runc, crun) if x]
    p = lambda s="": print(s, file=out)
    p("# kago bench: %d rounds per measure (+1 warm-up), peak RSS from %d more under %s"
      % (b.a.runs, b.a.rss_runs, TIME))
    p("# medians; x runc / x crun = median of the per-round wall ratios (paired);"
      " iqr = interquartile range of wall / median")
    p("# machine: " + ", ".join("%s: %s" % kv for kv in info.items()))
    p()
    summary(b, bases, p)
    p()
    hdr = "| measure | runtime | wall ms | cpu ms | peak RSS MiB |"
    sep = "|---|---|---:|---:|---:|"
    for bs in bases:
        hdr += " x %s |" % bs.name
        sep += "---:|"
    hdr += " iqr |"
    sep += "---:|"
    p(hdr)
    p(sep)
    for measure, head in MEASURES:
        if measure == "scale":
            continue
        labels = [head] + sorted({lb for lb in b.data if lb.startswith("  ")
                                  and _belongs(lb, measure)}, key=_suborder)
        for label in labels:
            per = b.data.get(label, {})
            if not per and not any((measure, rt.name) in b.failed for rt in rts):
                continue
            shown = False
            for rt in rts:
                ss = per.get(rt.name)
                if not ss and label != head:
                    continue
                name = "" if shown else label
                shown = True
                if not ss:
                    why = b.failed.get((measure, rt.name), "no samples")
                    p("| %s | %s | n/a: %s |%s" % (name, rt.name, why.replace("|", "/"),
                                                   " |" * (3 + len(bases))))
                    continue
                walls = [s.wall for s in ss.values()]
                w = med(walls)
                c = med([s.cpu for s in ss.values()])
                r = med(b.rssdata.get(label, {}).get(rt.name, []))
                q1, q3 = quartiles(walls)
                row = "| %s | %s | %.1f | %s | %s |" % (
                    name, rt.name, w * 1e3, fmt(c * 1e3 if c else None),
                    fmt(r / MIB if r else None))
                for bs in bases:
                    bss = per.get(bs.name)
                    row += " %s |" % (fmt(paired_ratio(ss, bss), "%.2f") if bss else "-")
                row += " %.0f%% |" % ((q3 - q1) / w * 100 if w else 0)
                p(row)
    # the waiting init
    if b.extras:
        p()
        p("# a created (waiting) init, read from /proc/<pid given by `state`>/status: medians")
        p("| runtime | VmRSS MiB | VmHWM MiB | its cpu ms so far |")
        p("|---|---:|---:|---:|")
        for rt in rts:
            g = lambda k: med(b.extras.get(k, {}).get(rt.name, []))
            rss, hwm, cpu = g("VmRSS KiB"), g("VmHWM KiB"), g("cpu ms so far")
            if rss is None:
                p("| %s | n/a | | |" % rt.name)
                continue
            p("| %s | %.1f | %.1f | %s |" % (rt.name, rss / MIB, (hwm or 0) / MIB, fmt(cpu)))
    own_table(b, bases, p)
    # scale
    if b.scale or any(k[0].startswith("scale") for k in b.failed):
        p()
        p("# scale: %d containers (`sleep 1000`): create+start each, `list -q`, "
          "delete --force each; cpu = the runtime calls' own (wait4); medians of %s "
          "rounds, ratios paired by round" % (b.a.scale, getattr(b.a, "scale_rounds", 1)))
        hdr = "| parallel | runtime | up s | ms/container | up cpu s | list ms | delete s | delete cpu s |"
        sep = "|---:|---|---:|---:|---:|---:|---:|---:|"
        for bs in bases:
            hdr += " up x %s | delete x %s |" % (bs.name, bs.name)
            sep += "---:|---:|"
        p(hdr)
        p(sep)
        for par in (1, b.a.par):
            for rt in rts:
                r = b.scale.get((par, rt.name))
                if not r:
                    why = b.failed.get(("scale %d" % par, rt.name), "not run")
                    p("| %d | %s | n/a: %s |%s" % (par, rt.name, why.replace("|", "/"),
                                                   " |" * (5 + 2 * len(bases))))
                    continue
                row = "| %d | %s | %.2f | %.1f | %.2f | %.1f | %.2f | %.2f |" % (
                    par, rt.name, r["up"], r["up"] / b.a.scale * 1e3, r["up cpu"],
                    r["list"] * 1e3, r["down"], r["down cpu"])
                for bs in bases:
                    q = b.scale.get((par, bs.name))
                    row += " %s | %s |" % ((fmt(scale_ratio(r, q, "up"), "%.2f"),
                                            fmt(scale_ratio(r, q, "down"), "%.2f")) if q
                                           else ("-", "-"))
                p(row)
    # targets
    for rt in rts:
        if runc and rt is not runc and rt is not crun:
            p()
            p("# issue 16 targets for %s (wall, median of paired ratios; own cost = the call "
              "minus its interpreter's `-IS -c pass` in the same round)" % rt.name)
            for line in targets16(b, rt, runc):
                p(line)
    if runc and crun:
        for rt in rts:
            if rt in (runc, crun):
                continue
            p()
            p("# retired targets for %s (issue 6, and issues 2 and 3 where they set one; "
              "wall unless it says cpu: median of paired ratios)" % rt.name)
            for line in targets(b, rt, runc, crun):
                p(line)
    p()
    p("# total %.0f s" % b.elapsed)


def own_table(b, bases, p):
    """Own cost: each call minus its interpreter floor (runtimes in Python)."""
    withfloor = [rt for rt in b.rts if getattr(rt, "floor", None)]
    if not withfloor or not b.floor:
        return
    p()
    p("# own cost: a call minus the launcher's interpreter running `-IS -c pass`, spawned "
      "right after it in the same round (x the label's runtime calls); a runtime not in "
      "Python: its whole call. x runc / x crun: paired, own cost / their whole call")
    hdr = "| measure | runtime | call wall ms | floor wall ms | own wall ms | own cpu ms |"
    sep = "|---|---|---:|---:|---:|---:|"
    for bs in bases:
        hdr += " own x %s |" % bs.name
        sep += "---:|"
    p(hdr)
    p(sep)
    for measure, head in MEASURES:
        labels = [head] + sorted({lb for lb in b.data if lb.startswith("  ")
                                  and _belongs(lb, measure)}, key=_suborder)
        for label in labels:
            if label not in b.floor or CALLS.get(label, 1) == 0:
                continue
            shown = False
            for rt in b.rts:
                own = own_of(b, label, rt)
                if not own:
                    continue
                ss = b.data[label][rt.name]
                fl = b.floor.get(label, {}).get(rt.name)
                row = "| %s | %s | %.1f | %s | %.1f | %.1f |" % (
                    "" if shown else label.strip(), rt.name,
                    med([x.wall for x in ss.values()]) * 1e3,
                    fmt(med([x.wall for x in fl.values()]) * 1e3) if fl else "-",
                    med([x.wall for x in own.values()]) * 1e3,
                    med([x.cpu for x in own.values()]) * 1e3)
                shown = True
                for bs in bases:
                    bss = b.data.get(label, {}).get(bs.name)
                    row += " %s |" % (fmt(paired_ratio(own, bss), "%.2f") if bss else "-")
                p(row)


def summary(b, bases, p):
    """One row per measure: each runtime's median wall, then each other
    runtime's paired ratio to runc and crun."""
    rts = b.rts
    others = [rt for rt in rts if rt not in bases]
    hdr = "| wall ms (median) |" + "".join(" %s |" % rt.name for rt in rts)
    sep = "|---|" + "---:|" * len(rts)
    for rt in others:
        for bs in bases:
            hdr += " %s x %s |" % (rt.name, bs.name)
            sep += "---:|"
    owners = [rt for rt in others if getattr(rt, "floor", None)] if b.floor else []
    for rt in owners:
        hdr += " %s own ms |" % rt.name
        sep += "---:|"
        for bs in bases[:1]:
            hdr += " %s own x %s |" % (rt.name, bs.name)
            sep += "---:|"
    p(hdr)
    p(sep)
    for measure, head in MEASURES:
        per = b.data.get(head)
        if measure == "scale" or (not per and not any((measure, rt.name) in b.failed
                                                       for rt in rts)):
            continue
        per = per or {}
        row = "| %s |" % head
        for rt in rts:
            ss = per.get(rt.name)
            row += " %s |" % ("%.1f" % (med([x.wall for x in ss.values()]) * 1e3) if ss
                              else "n/a")
        for rt in others:
            for bs in bases:
                a, c = per.get(rt.name), per.get(bs.name)
                row += " %s |" % (fmt(paired_ratio(a, c), "%.2f") if a and c else "n/a")
        for rt in owners:
            own = own_of(b, head, rt) if CALLS.get(head, 1) else None
            row += " %s |" % (fmt(med([x.wall for x in own.values()]) * 1e3) if own else "-")
            for bs in bases[:1]:
                c = per.get(bs.name)
                row += " %s |" % (fmt(paired_ratio(own, c), "%.2f") if own and c else "-")
        p(row)
    w = {rt.name: med(b.extras.get("VmRSS KiB", {}).get(rt.name, [])) for rt in rts}
    if any(v is not None for v in w.values()):
        p("| waiting init VmRSS MiB |" + "".join(
            " %s |" % (fmt(w[rt.name] / MIB) if w[rt.name] is not None else "n/a")
            for rt in rts) + " |" * (len(others) * len(bases) + len(owners) * (1 + min(1, len(bases)))))
    peaks = {}
    for rt in rts:
        v = [med(x[rt.name]) for x in b.rssdata.values() if x.get(rt.name)]
        peaks[rt.name] = max(v) if v else None
    if any(v is not None for v in peaks.values()):
        p("| highest peak RSS of a call, MiB |" + "".join(
            " %s |" % (fmt(peaks[rt.name] / MIB) if peaks[rt.name] is not None else "n/a")
            for rt in rts) + " |" * (len(others) * len(bases) + len(owners) * (1 + min(1, len(bases)))))


def _belongs(label, measure):
    sub = {"lifecycle": ("  wait", "  delete (stopped)"), "pause": ("  pause", "  resume")}
    return label.startswith(sub.get(measure, ("\0",)))


def _suborder(label):
    order = ["  wait", "  delete (stopped)", "  pause", "  resume"]
    for i, o in enumerate(order):
        if label.startswith(o):
            return i
    return 99


def targets(b, rt, runc, crun):
    out = []

    def ratio(label, base):
        a, c = b.data.get(label, {}).get(rt.name), b.data.get(label, {}).get(base.name)
        return paired_ratio(a, c) if a and c else None

    def line(what, val, limit, unit="x"):
        if val is None:
            return                          # not measured in this run
        ok = val <= limit
        out.append("- [%s] %s: %.2f%s (target <= %g%s)" % ("met" if ok else "NOT met", what,
                                                          val, unit, limit, unit))

    for measure, head in MEASURES:
        if measure == "scale":
            continue
        if (measure, rt.name) in b.failed:
            out.append("- [n/a] %s <= runc: %s fails: %s" % (head, rt.name,
                                                             b.failed[(measure, rt.name)]))
            continue
        line("%s <= runc" % head, ratio(head, runc), 1.0)
    a = b.data.get("run /bin/true", {}).get(rt.name)
    c = b.data.get("run /bin/true", {}).get(runc.name)
    line("run /bin/true cpu <= 1.5 x runc cpu (issue 2)",
         paired_cpu_ratio(a, c) if a and c else None, 1.5)
    for head, lim in (("state", 1.5), ("start", 1.5), ("kill", 1.5),
                      ("run /bin/true", 2.0), ("create+start+wait+delete", 2.0),
                      ("delete --force (running)", 1.0)):
        line("%s <= %g x crun" % (head, lim), ratio(head, crun), lim)
    peaks = [(med(v[rt.name]), lb) for lb, v in b.rssdata.items() if v.get(rt.name)]
    if peaks:
        worst, lb = max(peaks)
        rpeaks = [med(v[runc.name]) for v in b.rssdata.values() if v.get(runc.name)]
        out.append("- [%s] peak RSS of any call <= 10 MiB: %.1f MiB (%s); runc's highest %.1f MiB"
                   % ("met" if worst <= 10 * MIB else "NOT met", worst / MIB, lb.strip(),
                      max(rpeaks) / MIB if rpeaks else 0))
    w = med(b.extras.get("VmRSS KiB", {}).get(rt.name, []))
    line("waiting init VmRSS <= 10 MiB", w / MIB if w is not None else None, 10.0, " MiB")
    return out


def targets16(b, rt, runc):
    """Issue 16's targets for rt against runc, one line each, met or not."""
    out = []

    def line(what, val, limit, unit="x", extra=""):
        if val is None:
            return
        out.append("- [%s] %s: %.2f%s (target <= %g%s)%s" % (
            "met" if val <= limit else "NOT met", what, val, unit, limit, unit, extra))

    base = lambda lb: b.data.get(lb, {}).get(runc.name)
    for label in LIGHT:
        own, c = own_of(b, label, rt), base(label)
        if own and c:
            cpu = paired_cpu_ratio(own, c)     # (a round's own cpu may come out <= 0: noise)
            line("own cost of %s <= runc's whole call" % label.strip(), paired_ratio(own, c), 1.0,
                 extra=" [own %.1f ms, runc %.1f ms; cpu: own %.1f ms, runc %.1f ms, %s]" % (
                     med([x.wall for x in own.values()]) * 1e3,
                     med([x.wall for x in c.values()]) * 1e3,
                     med([x.cpu for x in own.values()]) * 1e3,
                     med([x.cpu for x in c.values()]) * 1e3,
                     "%.2fx" % cpu if cpu is not None else "n/a"))
    for label in HEAVY:
        a, c = b.data.get(label, {}).get(rt.name), base(label)
        if a and c:
            line("%s <= 1.10 x runc" % label, paired_ratio(a, c), 1.10)
    for m in ENGINES:
        label = dict(MEASURES)[m]
        a, c = b.data.get(label, {}).get(rt.name), base(label)
        if a and c:
            line("%s <= 1.03 x runc" % label, paired_ratio(a, c), 1.03)
        elif (m, rt.name) in b.failed or (m, runc.name) in b.failed:
            out.append("- [n/a] %s: %s" % (label, b.failed.get((m, rt.name))
                                           or "runc: " + b.failed.get((m, runc.name))))
    scale = getattr(b, "scale", {})
    par = getattr(b.a, "par", 4) if hasattr(b, "a") else 4
    for p, lim, what in ((1, 1.2, "one by one"), (par, 1.0, "%d at a time" % par)):
        r, q = scale.get((p, rt.name)), scale.get((p, runc.name))
        if r and q:
            line("scale: containers up %s <= %g x runc" % (what, lim), scale_ratio(r, q, "up"),
                 lim)
    w = med(b.extras.get("VmRSS KiB", {}).get(rt.name, []))
    wr = med(b.extras.get("VmRSS KiB", {}).get(runc.name, []))
    if w is not None and wr:
        line("waiting init VmRSS <= runc's (%.1f MiB)" % (wr / MIB), w / MIB, wr / MIB, " MiB")
    peaks = [(med(v[rt.name]), lb) for lb, v in b.rssdata.items() if v.get(rt.name)]
    rpeaks = [(med(v[runc.name]), lb) for lb, v in b.rssdata.items() if v.get(runc.name)]
    if peaks and rpeaks:
        worst, lb = max(peaks)
        rworst, rlb = max(rpeaks)
        line("highest peak RSS of a call (%s) <= runc's highest (%s, %.1f MiB)"
             % (lb.strip(), rlb.strip(), rworst / MIB), worst / MIB, rworst / MIB, " MiB")
    return out


def dump_json(b, info, path):
    out = {"machine": info, "runs": b.a.runs, "rss_runs": b.a.rss_runs, "scale_n": b.a.scale,
           "par": b.a.par, "scale_rounds": b.a.scale_rounds, "elapsed": b.elapsed,
           "runtimes": {rt.name: rt.argv for rt in b.rts},
           "samples": {lb: {n: {str(k): [s.wall, s.cpu, s.rss] for k, s in ss.items()}
                            for n, ss in per.items()} for lb, per in b.data.items()},
           "peak_rss_kib": b.rssdata, "init": b.extras,
           "scale": {"%d|%s" % k: v for k, v in b.scale.items()},
           "floor": {lb: {n: {str(k): [s.wall, s.cpu] for k, s in ss.items()}
                          for n, ss in per.items()} for lb, per in b.floor.items()},
           "floor_argv": {rt.name: rt.floor for rt in b.rts if rt.floor},
           "failed": {"%s|%s" % k: v for k, v in b.failed.items()}}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


# ---------------------------------------------------------------------------

def from_json(path):
    """Re-print the report of a run saved with --json."""
    with open(path) as f:
        d = json.load(f)

    class A:
        runs, rss_runs = d.get("runs", 0), d.get("rss_runs", 3)
        scale, par = d.get("scale_n", 100), d.get("par", 4)
        scale_rounds = d.get("scale_rounds", 1)

    rts = []
    for name, argv in d["runtimes"].items():
        rt = Runtime.__new__(Runtime)
        rt.name, rt.argv = name, argv
        rt.kind = os.path.basename(argv[0]) if name != "kago" else "kago"
        rt.floor = d.get("floor_argv", {}).get(name)
        rts.append(rt)
    b = Bench(A, rts)
    for lb, per in d["samples"].items():
        for n, ss in per.items():
            for k, v in ss.items():
                b.data.setdefault(lb, {}).setdefault(n, {})[int(k)] = Sample(*v)
    for lb, per in d.get("floor", {}).items():
        for n, ss in per.items():
            for k, v in ss.items():
                b.floor.setdefault(lb, {}).setdefault(n, {})[int(k)] = Sample(*v)
    b.rssdata, b.extras = d.get("peak_rss_kib", {}), d.get("init", {})
    b.scale = {(int(k.split("|")[0]), k.split("|", 1)[1]): v for k, v in d.get("scale", {}).items()}
    b.failed = {tuple(k.split("|", 1)): v for k, v in d.get("failed", {}).items()}
    b.elapsed = d.get("elapsed", 0.0)
    report(b, d.get("machine", {}))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    ap.add_argument("runtimes", nargs="*", default=["kago", "runc", "crun"],
                    help="runtime names, paths or command lines (default: kago runc crun)")
    ap.add_argument("-n", "--runs", type=int, default=15, help="rounds per measure (default 15)")
    ap.add_argument("--scale", type=int, default=100,
                    help="containers in the scale test (default 100; 0 skips it)")
    ap.add_argument("--par", type=int, default=4, help="parallelism of the parallel scale test")
    ap.add_argument("--engine-runs", type=int, default=31,
                    help="rounds per engine with --engines (default 31: an engine call "
                         "varies by +-50%% here)")
    ap.add_argument("--scale-rounds", type=int, default=3,
                    help="rounds of the scale test, interleaved and paired (default 3)")
    ap.add_argument("--only", default="", help="comma-separated measures: " + ",".join(NAMES))
    ap.add_argument("--rss-runs", type=int, default=3,
                    help="rounds of the peak-RSS pass under /usr/bin/time (default 3; 0 skips)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a call is killed")
    ap.add_argument("--json", help="write every sample to this file")
    ap.add_argument("--work", help="scratch dir to use (default: a new one under /run)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir")
    ap.add_argument("--from-json", metavar="FILE", help="re-print the report of a saved run")
    ap.add_argument("--engines", nargs="?", const=",".join(ENGINES), default="",
                    metavar="E[,E]",
                    help="also time engines end to end with each runtime (bench/engines.py): "
                         + ",".join(ENGINES) + " (default all of them); needs the engine "
                         "suite's Python (pytest, grpcio)")
    a = ap.parse_args(argv)
    if a.from_json:
        from_json(a.from_json)
        return 0
    bad = set(filter(None, a.engines.split(","))) - set(ENGINES)
    if bad:
        ap.error("unknown engine(s) %s; known: %s" % (",".join(sorted(bad)), ",".join(ENGINES)))
    bad = set(filter(None, a.only.split(","))) - set(NAMES)
    if bad:
        ap.error("unknown measure(s) %s; known: %s" % (",".join(sorted(bad)), ",".join(NAMES)))
    if a.runs < 1:
        ap.error("-n must be >= 1")
    if os.geteuid() != 0:
        sys.exit("bench: needs root: bash bench/run.sh (prefix sudo where you use it)")

    # no descriptor of ours (e.g. run.sh's lock on fd 9) reaches a runtime
    for fd in os.listdir("/proc/self/fd"):
        if int(fd) > 2:
            try:
                os.set_inheritable(int(fd), False)
            except OSError:
                pass
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("bench: prctl(PR_SET_CHILD_SUBREAPER) failed")

    def on_signal(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)

    # also SIGINT: a shell starts background jobs with it ignored, and Python
    # keeps an inherited SIG_IGN
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    if a.work:
        os.makedirs(a.work, exist_ok=True)
        work = os.path.abspath(a.work)
    else:
        work = tempfile.mkdtemp(prefix="kago-bench.", dir="/run")
    Bench.work = work
    b = None
    rc = 0
    try:
        rts, names = [], set()
        for i, spec in enumerate(a.runtimes):
            rt = Runtime(spec, os.path.join(work, "root%d" % i))
            if rt.name in names:
                rt.name = "%s#%d" % (rt.name, i)
            names.add(rt.name)
            why = rt.probe()
            if why:
                say("bench: %s: %s" % (rt.name, why))
                sys.exit(2)
            rts.append(rt)
        say("# bundles (scripts/mkbundle.sh) in %s" % work)
        b = Bench(a, rts)
        b.bundle_true, b.bundle_sleep = build_bundles(work)
        b.pod_true, b.pod_sleep, b.pod_noseccomp = build_podman_bundles(work, os.path.join(b.bundle_true,
                                                                           "rootfs"))
        if a.engines:
            sys.path.insert(0, HERE)
            import engines
            say("# engines: starting %s for %s" % (a.engines, ", ".join(r.name for r in rts)))
            b.engines = engines.Engines(b, sys.modules[__name__], say)
            b.engines.start_all(a.engines.split(","))
        info = machine_info(rts)
        b.run()
        report(b, info)
        if a.json:
            dump_json(b, info, a.json)
    except (KeyboardInterrupt, Interrupted) as e:
        say("bench: interrupted (%s); cleaning up" % (e or "SIGINT"))
        rc = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if b is not None and b.engines:
            b.engines.close()
        cleanup(b, work, a.keep or bool(a.work))
    return rc


if __name__ == "__main__":
    sys.exit(main())
