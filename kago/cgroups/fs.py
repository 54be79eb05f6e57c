"""What the v1 and v2 filesystem managers share: directories, joining,
listing, signalling and removing, and the one place cgroup files are written
(errors name the resource and the file)."""

from kago import _os as os   # not os: see kago/_os.py
import time

from kago.cgroups import CGROUP_ROOT, is_under


def _error(message, path=None):
    """A :class:`kago.errors.CgroupError`; kago.errors is imported only when
    one is made (delete, pause and resume never need it otherwise)."""
    from kago.errors import CgroupError
    return CgroupError(message, path)


def _is_error(e) -> bool:
    from kago.errors import CgroupError
    return isinstance(e, CgroupError)


class FsManager:
    """Base of the filesystem drivers.  ``dirs``: mountpoint -> directory."""

    driver = "fs"

    def __init__(self, path: str, dirs: dict):
        self.path = path if path.startswith("/") else "/" + path
        self.dirs = dirs

    # --- persistence ---------------------------------------------------------
    def to_json(self) -> dict:
        return {"driver": self.driver, "path": self.path, "dirs": self.dirs}

    @classmethod
    def from_json(cls, d):
        return cls(d["path"], d.get("dirs") or {})

    # --- lifecycle -----------------------------------------------------------
    def create(self):
        made = []
        d = None
        try:
            for mp, d in self.dirs.items():
                if not is_under(d, mp):   # (kago.cgroups.join made it: never)
                    raise _error(f"create cgroup {d}: not under the cgroup mount {mp}", d)
                made += _makedirs(d)
                self._prepare(mp, d)
        except OSError as e:
            for m in reversed(made):
                _rmdir(m)
            raise _error(f"create cgroup {d}: {e.strerror}", d) from None
        except BaseException:
            for m in reversed(made):
                _rmdir(m)
            raise

    def _prepare(self, mp, d):
        """Per-hierarchy set-up after mkdir (cpuset copy-down, v2 controllers)."""

    def add(self, pid: int):
        data = str(pid).encode()
        for d in self.dirs.values():
            try:
                _write_bytes(os.path.join(d, "cgroup.procs"), data)
            except OSError as e:
                raise _error(f"join cgroup {d}: {e.strerror}", d) from None

    def sub_dirs(self, paths: dict) -> list:
        """The directories ``exec --cgroup`` joins (``paths``: from
        :func:`kago.cgroups.parse_sub_cgroups`): every hierarchy's directory,
        with its sub-cgroup where one is named - only below the container's."""
        from kago.cgroups import sub_cgroup
        ctrl = self._controller_dirs()
        unknown = [c for c in paths if c and c not in ctrl]
        if unknown:
            from kago.errors import InvalidArgument
            raise InvalidArgument(f"unknown controller {unknown[0]} in SubCgroupPaths")
        out = []
        for d in self.dirs.values():
            sub = paths.get("")
            for c, cd in ctrl.items():
                if cd == d and c in paths:
                    sub = paths[c]
            out.append(sub_cgroup(d, sub) if sub is not None else d)
        return out

    def _controller_dirs(self) -> dict:
        """controller -> directory, for ``exec --cgroup CTRL:PATH`` (v2: none:
        a path without a controller, as runc)."""
        return {}

    def pids(self) -> list:
        """Every pid in the container's cgroup and its sub-cgroups (``exec
        --cgroup``), as runc's GetAllPids, from the first readable hierarchy."""
        for d in self.dirs.values():
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            for sub in _subdirs(d):
                try:
                    with open(os.path.join(sub, "cgroup.procs")) as f:
                        pids += [int(x) for x in f.read().split()]
                except OSError:
                    pass
            return pids
        return []

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def signal_all(self, sig: int):
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill_all_and_wait(self, timeout: float = 10.0):
        """SIGKILL every process in the cgroup until it is empty (a frozen
        cgroup is thawed: SIGKILL is only delivered to running tasks).  Waits
        on pidfds of the processes signalled, so it returns as soon as they
        are gone; a process forked meanwhile is found on the next round."""
        deadline = time.monotonic() + timeout
        thawed = False
        last = None
        while True:
            pids = self.pids()
            if not pids:
                return
            from kago.pidfd import open_pidfds, wait_fds
            fds = open_pidfds(pids)
            for pid in fds.values():
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            if not thawed:
                thawed = True
                try:
                    if self.frozen():
                        self.thaw()
                except Exception as e:  # noqa: BLE001 - a CgroupError only
                    if not _is_error(e):
                        raise
            wait_fds(fds, max(0.0, deadline - time.monotonic()))
            if time.monotonic() > deadline:
                raise _error(f"cgroup {self.path} still has processes {pids}",
                             self.path)
            if last == pids:        # listed again although they exited: don't spin
                time.sleep(0.002)
            last = pids

    def remove(self, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            while True:
                err = _rmdir(d)      # the common case: no sub-cgroup, no process
                if err is None:
                    break
                subs = _subdirs(d)   # EBUSY from sub-cgroups (exec --cgroup)?
                for sub in reversed(subs):   # deepest first
                    _rmdir(sub)
                if subs:
                    err = _rmdir(d)
                    if err is None:
                        break
                if time.monotonic() > deadline:
                    raise _error(f"remove cgroup {d}: {os.strerror(err)}", d)
                # busy: wait for what is still in it to exit, or a moment
                fds = {}
                if err == 16:   # EBUSY
                    from kago.pidfd import open_pidfds
                    fds = open_pidfds(self.pids())
                if fds:
                    from kago.pidfd import wait_fds
                    wait_fds(fds, min(0.05, max(0.0, deadline - time.monotonic())))
                else:
                    time.sleep(0.002)
        self._remove_default_parent()

    def remove_if_empty(self) -> list:
        """rmdir what can go now (sub-cgroups deepest first, then each
        directory), waiting for nothing: the directories left (busy: they
        still have processes)."""
        left = []
        for d in self.dirs.values():
            if _rmdir(d) is None:
                continue
            for sub in reversed(_subdirs(d)):
                _rmdir(sub)
            if _rmdir(d) is not None:
                left.append(d)
        if not left:
            self._remove_default_parent()
        return left

    def _remove_default_parent(self):
        """The default path is /kago/<id>: take the shared ``kago`` parent away
        too once the last container in it is gone (EBUSY/ENOTEMPTY: not yet)."""
        from kago.cgroups import DEFAULT_PARENT
        if os.path.dirname(self.path) != DEFAULT_PARENT:
            return
        for d in self.dirs.values():
            _rmdir(os.path.dirname(d))

    # --- freezer (the drivers override) --------------------------------------
    def frozen(self) -> bool:
        return False

    def thaw(self):
        pass


def _makedirs(d) -> list:
    """mkdir -p; returns the directories made, outermost first.  Retried when
    a concurrent delete removes an (empty) parent between two mkdirs."""
    for attempt in range(3):
        try:
            return _makedirs_once(d)
        except FileNotFoundError:
            if attempt == 2:
                raise
    return []


def _makedirs_once(d) -> list:
    made = []
    missing = []
    cur = d
    while not os.path.isdir(cur):
        missing.append(cur)
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    for m in reversed(missing):
        try:
            os.mkdir(m, 0o755)
            made.append(m)
        except FileExistsError:
            pass
    return made


def _subdirs(d) -> list:
    """The cgroups under ``d``, parents before children."""
    out = []
    try:
        with os.scandir(d) as it:
            subs = [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return out
    for sub in subs:
        out.append(sub)
        out += _subdirs(sub)
    return out


def _rmdir(d):
    try:
        os.rmdir(d)
    except FileNotFoundError:
        pass
    except OSError as e:
        return e.errno
    return None


# --- reading and writing cgroup files --------------------------------------
def read(d, name) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def read_int(d, name, default=0) -> int:
    try:
        v = read(d, name)
    except OSError:
        return default
    if v == "max":
        return -1
    try:
        return int(v)
    except ValueError:
        return default


def write(d, name, value, what=""):
    """Write ``value`` to ``d/name``; :class:`CgroupError` naming ``what``
    (the spec key, e.g. ``memory.limit``) and the file on failure."""
    path = os.path.join(d, name)
    data = str(value).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _error(f"{_what(what)}{path} does not exist: "
                     "not supported by this host's kernel", path) from None
    except OSError as e:
        raise _error(f"{_what(what)}open {path}: {e.strerror}", path) from None
    try:
        os.write(fd, data)
    except OSError as e:
        raise _error(f"{_what(what)}write {value!s} to {path}: {e.strerror}",
                     path) from None
    finally:
        os.close(fd)


def _write_bytes(path, data):
    """One write(2) through a raw fd: no file object (a cgroup file takes one
    value per write, and the fork chain's children write a dozen of them)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _what(what):
    return f"linux.resources.{what}: " if what else ""


def unsupported(what, why):
    return _error(f"linux.resources.{what}: {why}", None)


# --- overlapping the first cgroup attach with the work before it ---------------
#
# Moving a process into a cgroup (a write to cgroup.procs) takes the kernel's
# global cgroup_threadgroup_rwsem for writing.  When no writer took it lately,
# that first waits for an RCU grace period (rcu_sync_enter): 5-45 ms on this
# 2-vcpu VM, median ≈ 13 ms - the largest single wait of `create`, `run` and
# `exec`, paid by the intermediate before it can unshare and fork init (runc
# pays it too, but while its child is already starting).  For a grace period
# after a writer is done, the next writer does not wait.  So `create`, `run`
# and `exec` start, as early as they can, a thread that moves itself into the
# cgroup this process is in (its tid into `tasks` or cgroup.threads: a no-op
# the kernel still takes the lock for; our pid was first checked to be listed
# in that cgroup's cgroup.procs): the grace period passes while
# main imports and prepares, and the intermediate's own joins then go through
# at once.  Joined before main forks, so no thread of ours runs at fork time.
# Anything unexpected (no cgroupfs, our cgroup not found) and it does nothing.

_prewarm = None          # the thread's lock, once started
_prewarm_used = False    # our cgroup.procs was found: repeat the no-op


def _own_procs_file(root=CGROUP_ROOT):
    """cgroup.procs of the cgroup this process is in (unified or pids), or None."""
    here = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(","):
                here[c] = path
    cands = []
    if "" in here:
        cands += [root + "/unified" + here[""], root + here[""]]
    if "pids" in here:
        cands.append(root + "/pids" + here["pids"])
    me = str(os.getpid())
    for d in cands:
        path = d.rstrip("/") + "/cgroup.procs"
        try:
            with open(path) as f:
                if me in f.read().split():
                    return path
        except OSError:
            continue
    return None


def prewarm_attach():
    """Start the grace period of the first cgroup attach now, in a thread."""
    global _prewarm, _prewarm_used
    if _prewarm is not None:
        return
    import _thread
    done = _prewarm = _thread.allocate_lock()
    try:
        path = _own_procs_file()        # here: the thread only writes (each
    except (OSError, ValueError):        # page it touches is peak RSS)
        path = None
    if not path:
        return
    _prewarm_used = True
    d = path.rsplit("/", 1)[0]
    # the thread moves only itself (its tid into `tasks`, v1, or cgroup.threads):
    # the same lock and grace period as moving the process, but if something
    # moves this process meanwhile, the thread's late write can't move it back
    threads = d + "/tasks" if os.path.exists(d + "/tasks") else d + "/cgroup.threads"
    done.acquire()

    def run():
        try:
            _write_bytes(threads, str(_thread.get_native_id()).encode())
        except BaseException:            # never a traceback from this thread
            pass
        finally:
            done.release()

    try:
        _thread.start_new_thread(run, ())
    except RuntimeError:                 # no thread: nothing to overlap
        done.release()


def prewarm_done():
    """Before forking: wait for :func:`prewarm_attach`'s thread, then attach
    once more, here.  Right after the thread's grace period this is immediate
    and keeps the kernel's no-wait window open for the intermediate's joins a
    moment later (had the thread ridden an older window that has closed since,
    this waits the grace period the intermediate would have waited)."""
    if _prewarm is not None:
        _prewarm.acquire()
        _prewarm.release()
        if _prewarm_used:
            try:
                path = _own_procs_file()  # looked up again: a long-lived library
                if path:                  # caller may have been moved since
                    _write_bytes(path, str(os.getpid()).encode())
            except (OSError, ValueError):
                pass


# --- rootless ----------------------------------------------------------------
# runc's order of the v1 subsystems: the first one a resource needs names the
# error when the container has no cgroup in its hierarchy
def _set(v) -> bool:
    """Does a resources value ask for anything?  Engines send zeros and empty
    objects for what they leave alone (runc writes nothing for those)."""
    if isinstance(v, dict):
        return any(_set(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return bool(v)
    return v not in (None, 0, "", False)


_V1_NEED = (("cpuset", lambda r: _set((r.get("cpu") or {}).get("cpus"))
             or _set((r.get("cpu") or {}).get("mems"))),
            ("memory", lambda r: _set(r.get("memory"))),
            ("cpu", lambda r: _set({k: v for k, v in (r.get("cpu") or {}).items()
                                    if k not in ("cpus", "mems")})),
            ("pids", lambda r: _set(r.get("pids"))),
            ("blkio", lambda r: _set(r.get("blockIO"))),
            ("hugetlb", lambda r: _set(r.get("hugepageLimits"))),
            ("net_cls", lambda r: _set((r.get("network") or {}).get("classID"))),
            ("net_prio", lambda r: _set((r.get("network") or {}).get("priorities"))),
            ("rdma", lambda r: _set(r.get("rdma"))),
            ("unified", lambda r: _set(r.get("unified"))))


def needed_controllers(r) -> list:
    """The v1 controllers ``linux.resources`` ``r`` asks something of, in
    runc's order (devices aside: a rootless container has no device cgroup of
    its own, as runc)."""
    return [c for c, need in _V1_NEED if need(r or {})]


def writable(d, mp) -> bool:
    """Can this process make (or join) the cgroup ``d`` of the hierarchy
    ``mp``?  Its nearest existing ancestor (or, when ``d`` exists, its
    cgroup.procs) writable by us: a delegated subtree (chowned to the user,
    as systemd's Delegate=yes), never a root-owned hierarchy."""
    if os.path.isdir(d):
        return os.access(os.path.join(d, "cgroup.procs"), os.W_OK)
    cur = d
    while not os.path.isdir(cur):
        if cur == mp or cur == "/":
            return False
        cur = os.path.dirname(cur)
    return os.access(cur, os.W_OK | os.X_OK)


class NoCgroup(FsManager):
    """A rootless container without a cgroup of its own (runc's rootless
    cgroup manager where the caller can write no cgroup): its processes stay
    in the caller's cgroup.  Limits are refused with runc's error; pause and
    resume too.  ``why``: the error for limits (v1: None, runc's per
    controller words)."""

    driver = "none"

    def __init__(self, path, dirs=None, why=None):
        super().__init__(path, {})
        self.why = why

    def to_json(self) -> dict:
        d = super().to_json()
        if self.why:
            d["why"] = self.why
        return d

    @classmethod
    def from_json(cls, d):
        w = d.get("why")
        return cls(d["path"], None, w if type(w) is str else None)

    def apply(self, r: dict, update: bool = False):
        need = needed_controllers(r)
        if not need:
            return
        if self.why:
            raise _error(self.why)
        raise _error(f"cannot set {need[0]} limit: container could not join or create cgroup")

    def freeze(self):
        raise _error("cannot toggle freezer: cgroups not configured for container")

    def stats(self) -> dict:
        from kago.cgroups.stats import v1_stats
        return v1_stats({})

    def oom_kills(self) -> int:
        return 0

    def oom_notifier(self):
        return None


def rootless_view(cg, resources):
    """runc's rootless cgroup manager for a container without a cgroupsPath:
    the hierarchies where the caller can't make the container's cgroup are
    left out (the container stays in the caller's cgroup there).  Returns
    ``cg`` (every one writable), ``cg`` without them (v1), or a
    :class:`NoCgroup`; limits needing a dropped controller are refused, at
    once for v2 as runc (``rootless needs no limits ...``), on apply for v1."""
    gone = [mp for mp, d in cg.dirs.items() if not writable(d, mp)]
    if not gone:
        return cg
    if cg.driver == "v2":
        d = cg.dirs[gone[0]]
        why = ("rootless needs no limits + no cgrouppath when no permission is granted "
               f"for cgroups: mkdir {d}: permission denied")
        if needed_controllers(resources):
            raise _error(why, d)
        return NoCgroup(cg.path, None, why)
    if len(gone) == len(cg.dirs):
        return NoCgroup(cg.path)
    cg.drop(gone)
    return cg
