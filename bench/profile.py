#!/usr/bin/env python3
"""Where kago's time goes, per verb: interpreter start-up, imports, the verb's
own work (syscalls, waiting).  Run (as root) through `bash bench/run.sh profile`.

For each verb (state, start, kill, delete, delete --force, create, run):
- wall and cpu of the real call (the launcher), median of -n samples;
- start-up: `INTERP -IS -c pass` (the launcher's interpreter and flags);
- imports: the modules the verb imported (from `-X importtime` of a real call),
  imported again in the same order by `INTERP -IS -c "import ..."`: its wall
  minus start-up, median of -n samples; and the costliest of them;
- work = wall - start-up - imports: the verb itself;
- `strace -f -c -w` of one call: syscalls made and the wall time spent in them,
  blocking ones (wait4, poll, select, read of a fifo, flock, ...) being the
  waiting; strace slows every syscall down, so its times are upper bounds;
- `cProfile` of `kago.cli.main()` in one call: the functions the work is in.
"""

import argparse
import glob
import cProfile  # noqa: F401  (make sure it exists before the scratch dir is made)
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402

STRACE = shutil.which("strace", path=B.ENV["PATH"])
BLOCKING = {"wait4", "waitid", "poll", "ppoll", "select", "pselect6", "epoll_wait",
            "epoll_pwait", "flock", "nanosleep", "clock_nanosleep", "futex", "read",
            "recvmsg", "recvfrom", "pause", "rt_sigsuspend", "rt_sigtimedwait"}


def launcher_info(path):
    """(interpreter argv, [sys.path additions]) of a `#!INTERP -IS` launcher."""
    with open(path) as f:
        text = f.read(4096)
    if not text.startswith("#!"):
        sys.exit("profile: %s is not a script launcher" % path)
    interp = text[2:].splitlines()[0].split()
    paths = re.findall(r'sys\.path\.(?:append|insert)\((?:0,\s*)?["\']([^"\']+)["\']\)', text)
    return interp, paths


class Prof:
    def __init__(self, a, launcher):
        self.a = a
        self.launcher = launcher
        self.interp, self.paths = launcher_info(launcher)
        self.root = os.path.join(B.Bench.work, "root")
        os.makedirs(self.root, exist_ok=True)
        self.n = 0

    def kago(self, *args):
        return [self.launcher, "--root", self.root] + list(args)

    def new_id(self):
        self.n += 1
        return "%s-p%d" % (B.PREFIX, self.n)

    def must(self, *args):
        rc, s, err = B.spawn(self.kago(*args))
        if rc != 0:
            raise B.CallFailed("kago %s: exit %d: %s" % (args[0], rc, B.first_line(err)))
        return s

    def quiet(self, *args):
        B.spawn(self.kago(*args), timeout=30)

    # ---- verbs: (setup() -> cid, argv(cid), teardown(cid))
    def created(self, bundle=None):
        cid = self.new_id()
        self.must("create", "--bundle", bundle or self.sleep_b, cid)
        return cid

    def running(self):
        cid = self.created()
        self.must("start", cid)
        return cid

    def gone(self, cid):
        if os.path.lexists(os.path.join(self.root, cid)):
            self.quiet("delete", "--force", cid)
        B.reap()

    def verbs(self):
        shared = {}

        def shared_running():
            if "cid" not in shared:
                shared["cid"] = self.running()
            return shared["cid"]

        nothing = lambda cid: None
        return shared, [
            ("state", shared_running, lambda c: ["state", c], nothing),
            ("start", self.created, lambda c: ["start", c], self.gone),
            ("kill", self.running, lambda c: ["kill", c, "KILL"], self.gone),
            ("delete (created)", self.created, lambda c: ["delete", c], self.gone),
            ("delete --force (running)", self.running, lambda c: ["delete", "--force", c],
             self.gone),
            ("create", self.new_id, lambda c: ["create", "--bundle", self.sleep_b, c],
             self.gone),
            ("run /bin/true", self.new_id, lambda c: ["run", "--bundle", self.true_b, c],
             self.gone),
        ]

    # ---- measurements
    def timed(self, argv, n):
        walls, cpus = [], []
        for _ in range(n):
            rc, s, err = B.spawn(argv)
            if rc != 0:
                raise B.CallFailed("%s: exit %d: %s" % (" ".join(argv[-3:]), rc,
                                                        B.first_line(err)))
            walls.append(s.wall)
            cpus.append(s.cpu)
        return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3

    def sampled(self, setup, argv_of, teardown, wrap, n):
        """n runs of the verb under wrap(argv); returns [(rc, Sample, stderr)]."""
        out = []
        for _ in range(n):
            cid = setup()
            try:
                out.append(B.spawn(wrap(self.kago(*argv_of(cid)))))
            finally:
                teardown(cid)
        return out

    def importtime(self, setup, argv_of, teardown):
        (rc, _, err), = self.sampled(setup, argv_of, teardown,
                                     lambda av: self.interp + ["-X", "importtime"] + av, 1)
        mods = []     # (depth, name, self us, cumulative us)
        for line in err.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
            if m:
                mods.append((len(m.group(3)) // 2, m.group(4), int(m.group(1)),
                             int(m.group(2))))
        return mods

    def strace(self, setup, argv_of, teardown, release=False):
        """strace -f -c -w of one call.  -b execve: a process is left once it
        execs, so the container's process is not followed; with ``release`` the
        call is `create`, whose init waits for `start` before it execs: `start`
        (not traced) is run once state.json is there."""
        out = os.path.join(B.Bench.work, "strace.txt")
        cid = setup()
        try:
            argv = [STRACE, "-f", "-b", "execve", "-c", "-w", "-o", out] + self.kago(*argv_of(cid))
            pid = os.posix_spawn(argv[0], argv, B.ENV, file_actions=[
                (os.POSIX_SPAWN_DUP2, B.DEVNULL, 0), (os.POSIX_SPAWN_DUP2, B.DEVNULL, 1),
                (os.POSIX_SPAWN_DUP2, B.DEVNULL, 2)])
            if release:
                st = os.path.join(self.root, cid, "state.json")
                for _ in range(2000):
                    if os.path.exists(st):
                        break
                    B.time.sleep(0.005)
                self.quiet("start", cid)
            B.wait_exit(pid, 120)
        finally:
            teardown(cid)
        rows = []
        with open(out) as f:
            for line in f:
                p = line.split()
                # % time, seconds, usecs/call, calls, [errors], syscall
                if len(p) >= 5 and re.match(r"^[\d.]+$", p[0]) and p[-1] != "total":
                    try:
                        rows.append((p[-1], float(p[1]) * 1e3, int(p[3])))
                    except ValueError:
                        pass
        return rows

    def cprofile(self, setup, argv_of, teardown):
        prof = os.path.join(B.Bench.work, "cprofile.out")
        code = (
            "import sys, os\n"
            + "".join("sys.path.append(%r)\n" % p for p in self.paths)
            + "from kago.cli import main\n"
            "import cProfile\n"
            "me = os.getpid(); _exit = os._exit\n"
            "def ex(c):\n"
            "    if os.getpid() == me: raise SystemExit(c)\n"
            "    _exit(c)\n"
            "os._exit = ex\n"
            "p = cProfile.Profile()\n"
            "try:\n"
            "    p.runcall(main)\n"
            "except SystemExit:\n"
            "    pass\n"
            "finally:\n"
            "    if os.getpid() == me: p.dump_stats(%r)\n" % prof)

        def wrap(av):
            return self.interp + ["-c", code] + av[1:]

        self.sampled(setup, argv_of, teardown, wrap, 1)
        import pstats
        import io
        s = io.StringIO()
        try:
            st = pstats.Stats(prof, stream=s)
        except (OSError, TypeError, EOFError):
            return []
        rows = []
        for (fn, line, name), (cc, nc, tt, ct, _) in st.stats.items():
            rows.append((ct * 1e3, tt * 1e3, nc, "%s:%d(%s)" % (_short(fn), line, name)))
        rows.sort(reverse=True)
        return rows


STDLIB = ["shutil", "re", "enum", "ctypes", "socket", "json", "subprocess", "signal",
          "select", "fcntl", "struct", "errno", "tempfile"]


def startup_table(p, n):
    """Interpreter start-up variants and the cost of stdlib imports, interleaved."""
    I = p.interp[0]
    vs = [("`%s` (the launcher's)" % " ".join(p.interp), p.interp + ["-c", "pass"]),
          ("the same, ending in os._exit(0)", p.interp + ["-c", "import os; os._exit(0)"])]
    real = os.path.realpath("/usr/bin/python3")
    if os.path.exists(real) and real != os.path.realpath(I):
        vs.append(("`%s -IS`" % real, [real, "-IS", "-c", "pass"]))
    if os.path.exists(real):
        vs.append(("`%s -I` (site and its .pth files)" % real, [real, "-I", "-c", "pass"]))
    for v in ("3.11", "3.12", "3.13", "3.14"):
        for extra in sorted(glob.glob("/root/.pyenv/versions/%s.*/bin/python%s" % (v, v)))[-1:]:
            vs.append(("`%s -IS` (pyenv's build)" % extra, [extra, "-IS", "-c", "pass"]))
    if os.path.exists("/root/.pyenv/shims/python3"):
        vs.append(("`/root/.pyenv/shims/python3 -c pass` (pyenv shim)",
                   ["/root/.pyenv/shims/python3", "-c", "pass"]))
    vs.append(("+ import os", p.interp + ["-c", "import os"]))
    for m in STDLIB:
        vs.append(("+ import os, %s" % m, p.interp + ["-c", "import os, %s" % m]))
    code = "import sys\n" + "".join("sys.path.append(%r)\n" % x for x in p.paths)
    vs.append(("+ import kago.cli", p.interp + ["-c", code + "import kago.cli"]))
    res = {k: [] for k, _ in vs}
    for r in range(n):
        k = r % len(vs)
        for name, av in vs[k:] + vs[:k]:
            rc, smp, err = B.spawn(av)
            if rc == 0:
                res[name].append((smp.wall * 1e3, smp.cpu * 1e3))
    out = ["| interpreter / imports | wall ms | cpu ms | cpu over the start-up |",
           "|---|---:|---:|---:|"]
    med = lambda name, i: statistics.median(x[i] for x in res[name])
    base = med(vs[0][0], 1)
    os_ms = med("+ import os", 1) if res["+ import os"] else base
    for name, _ in vs:
        if not res[name]:
            continue
        over = name.startswith("+ import os, ")
        out.append("| %s | %.1f | %.1f | %+.1f%s |" % (
            name, med(name, 0), med(name, 1), med(name, 1) - (os_ms if over else base),
            " (over `import os`)" if over else ""))
    return out


def _parents(mods):
    """{module: the module whose import pulled it in ('' at top level)}.
    -X importtime lists a module after the ones it imported, one level deeper."""
    out = {}
    for i, (depth, name, _, _) in enumerate(mods):
        out[name] = ""
        for d2, n2, _, _ in mods[i + 1:]:
            if d2 < depth:
                out[name] = n2
                break
    return out


def _short(fn):
    for key in ("/kago/", "/lib/python3"):
        i = fn.rfind(key)
        if i >= 0:
            return fn[i + 1:]
    return fn


def main():
    ap = argparse.ArgumentParser(prog="bench/run.sh profile", description=__doc__.split("\n")[0])
    ap.add_argument("kago", nargs="?", default=B.KAGO, help="kago launcher (default %(default)s)")
    ap.add_argument("-n", "--runs", type=int, default=15)
    ap.add_argument("--only", default="",
                    help="comma-separated: state,start,kill,delete,create,run,startup")
    ap.add_argument("--top", type=int, default=15, help="rows per detail table")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("profile: needs root")
    B.ctypes.CDLL(None).prctl(B.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    work = tempfile.mkdtemp(prefix="kago-prof.", dir="/run")
    B.Bench.work = work
    have_strace = STRACE is not None
    try:
        p = Prof(a, a.kago)
        p.true_b, p.sleep_b = B.build_bundles(work)
        pr = lambda s="": print(s, flush=True)
        pr("# kago profile: %s (%s), medians of %d; ms; loadavg %s" % (
            a.kago, " ".join(p.interp), a.runs, " ".join(open("/proc/loadavg").read().split()[:3])))
        pr("# cpu (ru_utime+ru_stime of the call and the children it reaped), split as:"
           " start-up = `%s -c pass`; imports = `-c 'import <the modules -X importtime saw"
           " the verb import>'` - start-up (so it includes their finalisation at exit); work = the"
           " verb - that; exit = interpreter"
           " finalisation (main() raising SystemExit - the same ending in os._exit after a"
           " flush); off-cpu = wall - cpu of the call (waiting, or running in a process it"
           " does not reap); each paired within a round, medians" % " ".join(p.interp))
        pr()
        shared, verbs = p.verbs()
        only = set(filter(None, a.only.split(",")))
        summary, details = [], []
        try:
            for name, setup, argv_of, teardown in verbs:
                if only and name.split()[0] not in only:
                    continue
                B.say("# profile: %s" % name)
                # rounds: via main / via os._exit, start-up alone, the verb, its imports alone
                walls, cpus, ups, imps, works, fins = [], [], [], [], [], []
                pre = "import sys, os\n" + "".join("sys.path.append(%r)\n" % x for x in p.paths)
                via_main = pre + "from kago.cli import main\nmain(sys.argv[1:])\n"
                via_exit = pre + ("from kago.cli import run\nrc = run(sys.argv[1:])\n"
                                  "sys.stdout.flush(); sys.stderr.flush(); os._exit(rc)\n")
                mods = p.importtime(setup, argv_of, teardown)
                replay = pre + "".join("import %s\n" % m[1] for m in mods
                                       if m[0] == 0 and m not in _startup_mods(p))
                offs = []
                it_self, it_cum = {}, {}
                for _ in range(a.runs):
                    (rc1, s1, _), = p.sampled(setup, argv_of, teardown,
                                              lambda av: p.interp + ["-c", via_main] + av[1:], 1)
                    (rc2, s2, _), = p.sampled(setup, argv_of, teardown,
                                              lambda av: p.interp + ["-c", via_exit] + av[1:], 1)
                    if rc1 == 0 and rc2 == 0:
                        fins.append((s1.cpu - s2.cpu) * 1e3)
                    up = p.timed(p.interp + ["-c", "pass"], 1)[1]
                    (rc, s, err), = p.sampled(setup, argv_of, teardown, lambda av: av, 1)
                    if rc != 0:
                        raise B.CallFailed("%s: %s" % (name, B.first_line(err)))
                    rp = p.timed(p.interp + ["-c", replay], 1)[1]
                    for m in p.importtime(setup, argv_of, teardown):
                        it_self.setdefault(m[1], []).append(m[2])
                        it_cum.setdefault(m[1], []).append(m[3])
                    walls.append(s.wall * 1e3)
                    cpus.append(s.cpu * 1e3)
                    ups.append(up)
                    imps.append(rp - up)
                    works.append(s.cpu * 1e3 - rp)
                    offs.append((s.wall - s.cpu) * 1e3)
                med = statistics.median
                wall, cpu, start_w = med(walls), med(cpus), med(ups)
                imports, work_ms = med(imps), med(works)
                fin = med(fins) if fins else float("nan")
                off = med(offs)
                kmods = [m for m in mods if m[1].startswith("kago")]
                stdmods = [m for m in mods if not m[1].startswith("kago")
                           and m not in _startup_mods(p)]
                summary.append((name, wall, cpu, start_w, imports, work_ms, fin, off, len(kmods),
                                len(stdmods)))
                d = ["## %s: %.1f ms wall, %.1f ms cpu: start-up %.1f, imports %.1f, work %.1f"
                     " (exit %.1f); off-cpu %.1f" % (name, wall, cpu, start_w, imports, work_ms,
                                                     fin, off)]
                d.append("")
                d.append("imports (-X importtime, median of %d calls; self / cumulative us; "
                         "the costliest %d by self), %d kago modules, %d others beyond start-up:"
                         % (a.runs, a.top, len(kmods), len(stdmods)))
                d.append("")
                d.append("| module | imported by | self us | cumulative us |")
                d.append("|---|---|---:|---:|")
                ext = [m for m in mods if m not in _startup_mods(p)]
                parent = _parents(mods)
                ms = lambda k, name: statistics.median(k.get(name) or [0])
                for m in sorted(ext, key=lambda m: -ms(it_self, m[1]))[:a.top]:
                    d.append("| %s | %s | %d | %d |" % (m[1], parent.get(m[1]) or "-",
                                                        ms(it_self, m[1]), ms(it_cum, m[1])))
                d.append("")
                d.append("modules imported: " + ", ".join(m[1] for m in mods
                                                         if m not in _startup_mods(p)))
                if have_strace:
                    rows = p.strace(setup, argv_of, teardown, release=name == "create")
                    total = sum(r[2] for r in rows)
                    blocking = sum(r[1] for r in rows if r[0] in BLOCKING)
                    d.append("")
                    d.append("syscalls (strace -f -c -w of one call, all processes): %d calls; "
                             "%.1f ms in blocking calls (%s)" % (
                                 total, blocking, ", ".join(
                                     "%s %.1f" % (r[0], r[1]) for r in
                                     sorted(rows, key=lambda r: -r[1]) if r[0] in BLOCKING)[:300]))
                    d.append("")
                    d.append("| syscall | ms (under strace) | calls |")
                    d.append("|---|---:|---:|")
                    for r in sorted(rows, key=lambda r: -r[1])[:a.top]:
                        d.append("| %s | %.2f | %d |" % r)
                rows = p.cprofile(setup, argv_of, teardown)
                if rows:
                    d.append("")
                    d.append("cProfile of main() (one call, profiler overhead included):")
                    d.append("")
                    d.append("| function | cumulative ms | own ms | calls |")
                    d.append("|---|---:|---:|---:|")
                    for ct, tt, nc, fn in rows[:a.top + 4]:
                        d.append("| %s | %.2f | %.2f | %d |" % (fn, ct, tt, nc))
                details.append(d)
        finally:
            if "cid" in shared:
                p.gone(shared["cid"])
        if not only or "startup" in only:
            B.say("# profile: interpreter start-up and stdlib imports")
            pr("\n".join(startup_table(p, a.runs)))
            pr()
        pr("| verb | wall ms | cpu ms | cpu: start-up | cpu: imports | cpu: work | of which exit "
           "| off-cpu (wall - cpu) | kago modules | other modules |")
        pr("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in summary:
            pr("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %d |" % row)
        for d in details:
            pr()
            pr("\n".join(d))
    finally:
        try:
            for cid in os.listdir(os.path.join(work, "root")):
                B.spawn([a.kago, "--root", os.path.join(work, "root"), "delete", "--force", cid],
                        timeout=30)
        except OSError:
            pass
        B.reap()
        B.clean_cgroups()
        shutil.rmtree(work, ignore_errors=True)


_STARTUP = None


def _startup_mods(p):
    """The importtime records of a bare `INTERP -IS -c pass` (by name)."""
    global _STARTUP
    if _STARTUP is None:
        r = subprocess.run(p.interp + ["-X", "importtime", "-c", "pass"], capture_output=True,
                           text=True)
        names = set()
        for line in r.stderr.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+\d+ \| \s*(\S+)", line)
            if m:
                names.add(m.group(1))
        _STARTUP = _Names(names)
    return _STARTUP


class _Names:
    def __init__(self, names):
        self.names = names

    def __contains__(self, m):
        return m[1] in self.names


if __name__ == "__main__":
    main()
