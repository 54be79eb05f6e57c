"""cgroup managers: one interface, three drivers.

=============  =====================  ==========================================
driver         module                 when
=============  =====================  ==========================================
``v1``         :mod:`kago.cgroups.v1`  a v1 (or hybrid) host: one directory per
                                       mounted hierarchy (+ the hybrid
                                       ``unified`` tree, joined too)
``v2``         :mod:`kago.cgroups.v2`  /sys/fs/cgroup is a pure cgroup2 mount
``systemd``    :mod:`kago.cgroups.systemd`  ``--systemd-cgroup``: a transient
                                       scope started over D-Bus, then the v1 or
                                       v2 files under it (as runc does)
=============  =====================  ==========================================

Every manager offers the :class:`Manager` protocol below.  ``dirs`` maps a
hierarchy's mountpoint to the container's directory in it (v2: a single
entry); it is persisted in kago.json (``to_json``) and state.json
(``cgroup_dirs``), and :func:`load` rebuilds the manager from it.

This module is imported by the hot verbs (``state``, ``kill``, ``delete``): it
imports nothing but ``posix`` (:mod:`kago._os`); the drivers import little more, and the stats,
device-filter and D-Bus code load only when used.

Freezer, stats and devices: :mod:`.freezer`, :mod:`.stats`, :mod:`.devices`.
"""

from kago import _os as os   # not os: see kago/_os.py

CGROUP_ROOT = "/sys/fs/cgroup"


class Manager:
    """The interface every driver implements (documentation; the drivers
    derive from :class:`kago.cgroups.fs.FsManager`).

    ``create()``                     make the directories (nothing joined yet)
    ``apply(resources)``             write ``linux.resources`` (create, update)
    ``add(pid)``                     move ``pid`` into the cgroup
    ``pids()``                       every pid in it
    ``exists()``
    ``signal_all(sig)`` / ``kill_all_and_wait(timeout)``
    ``freeze()`` / ``thaw()`` / ``frozen()``
    ``stats()``                      runc's ``events --stats`` ``data`` object
    ``oom_kills()``                  the count of OOM kills so far
    ``remove()``                     remove the (empty) cgroup
    ``to_json()`` / :func:`load`
    """

    driver = "?"

    @classmethod
    def from_json(cls, d):
        return load(d)


DEFAULT_PARENT = "/kago"


def default_path(container_id: str) -> str:
    return f"{DEFAULT_PARENT}/{container_id}"


def _hierarchies(mountinfo="/proc/self/mountinfo"):
    """[(mountpoint, fstype, superopts)] of the cgroup mounts of this process."""
    out = []
    with open(mountinfo) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = right.split()
            if not fields or fields[0] not in ("cgroup", "cgroup2"):
                continue
            mp = left.split()[4].replace("\\040", " ")
            out.append((mp, fields[0], fields[2] if len(fields) > 2 else ""))
    return out


def is_v2_host() -> bool:
    return os.path.exists(CGROUP_ROOT + "/cgroup.controllers")


def manager_for(path: str, systemd: bool = False, container_id: str = ""):
    """The manager for ``path`` (``linux.cgroupsPath`` or :func:`default_path`)
    on this host; ``systemd``: the systemd driver (``slice:prefix:name``)."""
    if systemd:
        from kago.cgroups.systemd import SystemdManager
        return SystemdManager.for_path(path, container_id)
    if is_v2_host():
        from kago.cgroups.v2 import V2Manager
        return V2Manager.for_path(path)
    from kago.cgroups.v1 import V1Manager
    return V1Manager.for_path(path)


def load(d: dict):
    """Rebuild a manager from its ``to_json()``."""
    driver = d.get("driver")
    if driver is None:  # kago.json written before the drivers existed
        dirs = d.get("dirs") or {}
        driver = "v2" if list(dirs) == [CGROUP_ROOT] else "v1"
    if driver == "systemd":
        from kago.cgroups.systemd import SystemdManager
        return SystemdManager.from_json(d)
    if driver == "v2":
        from kago.cgroups.v2 import V2Manager
        return V2Manager.from_json(d)
    from kago.cgroups.v1 import V1Manager
    return V1Manager.from_json(d)


def is_frozen(dirs: dict) -> bool:
    """Is the cgroup with these ``dirs`` (state.json's ``cgroup_dirs``)
    frozen?  For ``state``: reads one small file, imports nothing."""
    for mp, d in dirs.items():
        if mp.endswith("/freezer"):
            return _read(os.path.join(d, "freezer.state")) == "FROZEN"
    if list(dirs) == [CGROUP_ROOT]:
        ev = _read(os.path.join(dirs[CGROUP_ROOT], "cgroup.events"))
        return "frozen 1" in ev.splitlines()
    return False


def _read(path) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


# --- overlapping the first cgroup attach with the work before it ---------------
#
# Moving a process into a cgroup (a write to cgroup.procs) takes the kernel's
# global cgroup_threadgroup_rwsem for writing.  When no writer took it lately,
# that first waits for an RCU grace period (rcu_sync_enter): 5-45 ms on this
# 2-vcpu VM, median ≈ 13 ms - the largest single wait of `create`, `run` and
# `exec`, paid by the intermediate before it can unshare and fork init (runc
# pays it too, but while its child is already starting).  For a grace period
# after a writer is done, the next writer does not wait.  So `create`, `run`
# and `exec` start, as early as they can, a thread that moves this process
# into the cgroup it is already in (a no-op the kernel still takes the lock
# for, after checking our pid is listed there): the grace period passes while
# main imports and prepares, and the intermediate's own joins then go through
# at once.  Joined before main forks, so no thread of ours runs at fork time.
# Anything unexpected (no cgroupfs, our cgroup not found) and it does nothing.

_prewarm = None
_prewarm_path = []


def _own_procs_file():
    """cgroup.procs of the cgroup this process is in (unified or pids), or None."""
    here = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(","):
                here[c] = path
    cands = []
    if "" in here:
        cands += [CGROUP_ROOT + "/unified" + here[""], CGROUP_ROOT + here[""]]
    if "pids" in here:
        cands.append(CGROUP_ROOT + "/pids" + here["pids"])
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


def _noop_attach(path):
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(os.getpid()).encode())      # where we already are
    finally:
        os.close(fd)


def prewarm_attach():
    """Start the grace period of the first cgroup attach now, in a thread."""
    global _prewarm
    if _prewarm is not None:
        return
    import _thread
    done = _prewarm = _thread.allocate_lock()
    try:
        path = _own_procs_file()        # here, not in the thread: its own
    except (OSError, ValueError):        # malloc arena would cost ≈ 0.2 MiB
        path = None
    if not path:
        return
    _prewarm_path.append(path)
    data = str(os.getpid()).encode()
    done.acquire()

    def run():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, data)       # where we already are
            finally:
                os.close(fd)
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
        if _prewarm_path:
            try:
                path = _own_procs_file()  # looked up again: a long-lived library
                if path:                  # caller may have been moved since
                    _noop_attach(path)
            except (OSError, ValueError):
                pass
