"""cgroup v1: one directory per mounted hierarchy.

``linux.resources`` -> files (what runc's fs driver writes, in its order):

================  ==========================================================
memory            memory.limit_in_bytes, .soft_limit_in_bytes,
                  .memsw.limit_in_bytes (swap = memory+swap), .swappiness,
                  .kmem.limit_in_bytes, .kmem.tcp.limit_in_bytes,
                  .oom_control (disableOOMKiller), .use_hierarchy
cpu               cpu.shares, .cfs_period_us, .cfs_quota_us, .cfs_burst_us,
                  .rt_period_us, .rt_runtime_us, .idle; cpuset.cpus/.mems
pids              pids.max
blockIO           blkio.weight (or blkio.bfq.weight), .leaf_weight,
                  .weight_device, .leaf_weight_device,
                  .throttle.{read,write}_{bps,iops}_device
hugepageLimits    hugetlb.<size>.limit_in_bytes
network           net_cls.classid, net_prio.ifpriomap
rdma              rdma.max
devices           devices.deny / devices.allow (:mod:`.devices`)
unified           an error (runc: "invalid configuration: cannot use unified on cgroup v1")
================  ==========================================================

A class whose controller is not mounted here is an error only if requested.
"""

from kago import _os as os   # not os: see kago/_os.py

from kago.cgroups import _hierarchies, clean_path, container_dir
from kago.cgroups.fs import FsManager, _error, _is_error, read, read_int, unsupported, write

_NOT_CONTROLLERS = {"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode",
                    "nsdelegate", "memory_recursiveprot", "memory_localevents",
                    "favordynmods", "memory_hugetlb_accounting"}


def _controllers(mp, superopts):
    out = []
    for o in superopts.split(","):
        if o in _NOT_CONTROLLERS or o.startswith("release_agent="):
            continue
        out.append(o)  # includes name=systemd
    return out


def _own_cgroups(path="/proc/self/cgroup"):
    """controller (or name=...) -> this process's cgroup path; "" -> v2 path."""
    own = {}
    try:
        with open(path) as f:
            for line in f:
                _, ctrls, p = line.rstrip("\n").split(":", 2)
                for c in (ctrls.split(",") if ctrls else [""]):
                    own[c] = p
    except OSError:
        pass
    return own


class V1Manager(FsManager):
    driver = "v1"

    def __init__(self, path, dirs, subsys=None):
        super().__init__(path, dirs)
        if subsys is None:  # from the mountpoints' names
            subsys = {}
            for mp, d in dirs.items():
                for c in os.path.basename(mp).split(","):
                    subsys.setdefault(c, d)
        self.subsys = subsys
        self.dropped = []     # rootless: controllers without a cgroup of ours

    def drop(self, mountpoints):
        """Rootless: no cgroup of ours in these hierarchies (see
        :func:`kago.cgroups.fs.rootless_view`)."""
        for mp in mountpoints:
            d = self.dirs.pop(mp)
            for c in [c for c, cd in self.subsys.items() if cd == d]:
                del self.subsys[c]
                self.dropped.append(c)

    @classmethod
    def for_path(cls, path, mountinfo="/proc/self/mountinfo", own_cgroups=None):
        given, path = path, clean_path(path)   # no '..' left: see kago.cgroups.join
        rel = not path.startswith("/")
        own = (own_cgroups if own_cgroups is not None else _own_cgroups()) if rel else {}
        dirs, subsys = {}, {}
        for mp, fstype, opts in _hierarchies(mountinfo):
            ctrls = _controllers(mp, opts) if fstype == "cgroup" else [""]
            base = "/"
            if rel:   # under our own cgroup in this hierarchy, as runc
                base = next((own[c] for c in ctrls if c in own), "/")
            dirs[mp] = container_dir(mp, base + "/" + path, given)
            for c in ctrls:
                subsys.setdefault(c or "unified", dirs[mp])
        return cls(path, dirs, subsys)

    def to_json(self):
        d = super().to_json()
        d["subsys"] = self.subsys
        if self.dropped:
            d["dropped"] = self.dropped
        return d

    @classmethod
    def from_json(cls, d):
        m = cls(d["path"], d.get("dirs") or {}, d.get("subsys"))
        dropped = d.get("dropped")
        if type(dropped) is list:
            m.dropped = [c for c in dropped if type(c) is str]
        return m

    def _controller_dirs(self):
        return self.subsys

    def _prepare(self, mp, d):
        if self.subsys.get("cpuset") == d:
            _init_cpuset(mp, d)

    def _dir(self, ctrl, what):
        d = self.subsys.get(ctrl)
        if d is None and ctrl in self.dropped:
            raise _error(f"cannot set {ctrl} limit: container could not join or create cgroup")
        if d is None:
            raise unsupported(what, f"the {ctrl} cgroup controller is not mounted "
                                    "on this host")
        return d

    # --- resources -----------------------------------------------------------
    def apply(self, r: dict, update: bool = False):
        if not r:
            return
        if r.get("devices"):     # create and update: the minimal transition
            from kago.cgroups.devices import v1_apply
            v1_apply(self._dir("devices", "devices"), r["devices"])
        if r.get("memory"):
            self._memory(r["memory"], update)
        if r.get("cpu"):
            self._cpu(r["cpu"])
        if r.get("pids") and r["pids"].get("limit", 0) != 0:
            lim = r["pids"]["limit"]
            write(self._dir("pids", "pids.limit"), "pids.max",
                  "max" if lim < 0 else lim, "pids.limit")
        if r.get("blockIO"):
            self._blkio(r["blockIO"])
        for i, h in enumerate(r.get("hugepageLimits") or ()):
            what = f"hugepageLimits[{i}]"
            d, name = self._hugetlb(what)
            write(d, name.format(h["pageSize"]), h["limit"], what)
        net = r.get("network") or {}
        if net.get("classID"):
            write(self._dir("net_cls", "network.classID"), "net_cls.classid",
                  net["classID"], "network.classID")
        for i, p in enumerate(net.get("priorities") or ()):
            what = f"network.priorities[{i}]"
            write(self._dir("net_prio", what), "net_prio.ifpriomap",
                  f"{p['name']} {p['priority']}", what)
        for dev, lim in (r.get("rdma") or {}).items():
            parts = [f"{k}={lim[v]}" for k, v in (("hca_handle", "hcaHandles"),
                                                  ("hca_object", "hcaObjects"))
                     if lim.get(v) is not None]
            if parts:
                write(self._dir("rdma", f"rdma.{dev}"), "rdma.max",
                      f"{dev} {' '.join(parts)}", f"rdma.{dev}")
        if r.get("unified"):
            raise unsupported("unified", "invalid configuration: cannot use unified on cgroup v1")

    def _hugetlb(self, what):
        """(directory, file pattern): the v1 hugetlb hierarchy, or on a hybrid
        host whose hugetlb controller is bound to the unified (v2) tree, that."""
        if "hugetlb" in self.subsys:
            return self.subsys["hugetlb"], "hugetlb.{}.limit_in_bytes"
        u = self.subsys.get("unified")
        mp = self._mount_of(u) if u else None
        try:
            ok = mp is not None and "hugetlb" in read(mp, "cgroup.controllers").split()
        except OSError:
            ok = False
        if not ok:
            raise unsupported(what, "the hugetlb cgroup controller is not mounted on "
                                    "this host")
        from kago.cgroups.v2 import V2Manager
        V2Manager(self.path, {mp: u})._prepare(mp, u)
        return u, "hugetlb.{}.max"

    def _memory(self, m, update):
        what = "memory"
        limit, swap = m.get("limit") or 0, m.get("swap") or 0
        if limit or swap or m.get("reservation") or m.get("swappiness") is not None \
                or m.get("kernel") or m.get("kernelTCP") or m.get("disableOOMKiller") \
                or m.get("useHierarchy") is not None:
            d = self._dir("memory", what)
        else:
            return
        if m.get("checkBeforeUpdate") and update and limit > 0:
            usage = read_int(d, "memory.usage_in_bytes")
            if usage >= limit:
                raise _error(f"linux.resources.memory.limit: {limit} is below the "
                             f"current usage {usage} ({d}/memory.usage_in_bytes)", d)
        if limit == -1 and swap == 0:
            swap = -1  # unlimited both, as runc
        has_memsw = os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes"))
        if swap and not has_memsw:
            if swap != -1:
                raise unsupported("memory.swap", "swap accounting is off on this host "
                                  "(no memory.memsw.limit_in_bytes)")
            swap = 0
        if limit and swap:
            cur = read_int(d, "memory.limit_in_bytes", -1)
            if swap == -1 or cur < swap:
                write(d, "memory.memsw.limit_in_bytes", swap, "memory.swap")
                write(d, "memory.limit_in_bytes", limit, "memory.limit")
            else:
                write(d, "memory.limit_in_bytes", limit, "memory.limit")
                write(d, "memory.memsw.limit_in_bytes", swap, "memory.swap")
        elif limit:
            write(d, "memory.limit_in_bytes", limit, "memory.limit")
        elif swap:
            write(d, "memory.memsw.limit_in_bytes", swap, "memory.swap")
        if m.get("reservation"):
            write(d, "memory.soft_limit_in_bytes", m["reservation"], "memory.reservation")
        if m.get("swappiness") is not None:
            s = m["swappiness"]
            if not 0 <= s <= 100:
                raise unsupported("memory.swappiness", f"{s} is not in 0..100")
            write(d, "memory.swappiness", s, "memory.swappiness")
        if m.get("kernel"):
            write(d, "memory.kmem.limit_in_bytes", m["kernel"], "memory.kernel")
        if m.get("kernelTCP"):
            write(d, "memory.kmem.tcp.limit_in_bytes", m["kernelTCP"], "memory.kernelTCP")
        if m.get("disableOOMKiller"):
            write(d, "memory.oom_control", 1, "memory.disableOOMKiller")
        if m.get("useHierarchy") is not None:
            want = 1 if m["useHierarchy"] else 0
            if read_int(d, "memory.use_hierarchy", -1) != want:
                write(d, "memory.use_hierarchy", want, "memory.useHierarchy")

    def _cpu(self, c):
        if c.get("cpus") or c.get("mems"):
            d = self._dir("cpuset", "cpu.cpus")
            if c.get("cpus"):
                write(d, "cpuset.cpus", c["cpus"], "cpu.cpus")
            if c.get("mems"):
                write(d, "cpuset.mems", c["mems"], "cpu.mems")
        keys = ("shares", "quota", "period", "burst", "realtimeRuntime",
                "realtimePeriod", "idle")
        if not any(c.get(k) for k in keys) and c.get("burst") is None \
                and c.get("idle") is None:
            return
        d = self._dir("cpu", "cpu")
        if c.get("realtimePeriod"):
            write(d, "cpu.rt_period_us", c["realtimePeriod"], "cpu.realtimePeriod")
        if c.get("realtimeRuntime"):
            _rt_runtime(self._mount_of(d), d, c["realtimeRuntime"])
        if c.get("shares"):
            write(d, "cpu.shares", c["shares"], "cpu.shares")
        period, quota = c.get("period") or 0, c.get("quota") or 0
        if period:
            try:
                write(d, "cpu.cfs_period_us", period, "cpu.period")
            except Exception as e:  # noqa: BLE001 - a CgroupError only
                if not _is_error(e):
                    raise
                # the old quota may not fit the new period: quota first
                if not quota:
                    raise
                write(d, "cpu.cfs_quota_us", quota, "cpu.quota")
                write(d, "cpu.cfs_period_us", period, "cpu.period")
        if quota:
            write(d, "cpu.cfs_quota_us", quota, "cpu.quota")
        if c.get("burst") is not None:
            write(d, "cpu.cfs_burst_us", c["burst"], "cpu.burst")
        if c.get("idle") is not None:
            write(d, "cpu.idle", c["idle"], "cpu.idle")

    def _mount_of(self, d):
        for mp, dd in self.dirs.items():
            if dd == d:
                return mp
        return d

    def _blkio(self, b):
        keys = ("weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                "throttleWriteIOPSDevice")
        if not any(b.get(k) for k in keys):
            return
        d = self._dir("blkio", "blockIO")
        if b.get("weight"):
            name = "blkio.weight"
            if not os.path.exists(os.path.join(d, name)) and \
                    os.path.exists(os.path.join(d, "blkio.bfq.weight")):
                name = "blkio.bfq.weight"
            write(d, name, b["weight"], "blockIO.weight")
        if b.get("leafWeight"):
            write(d, "blkio.leaf_weight", b["leafWeight"], "blockIO.leafWeight")
        for i, w in enumerate(b.get("weightDevice") or ()):
            what = f"blockIO.weightDevice[{i}]"
            if w.get("weight"):
                write(d, "blkio.weight_device", f"{w['major']}:{w['minor']} {w['weight']}",
                      what)
            if w.get("leafWeight"):
                write(d, "blkio.leaf_weight_device",
                      f"{w['major']}:{w['minor']} {w['leafWeight']}", what)
        for key, name in (("throttleReadBpsDevice", "read_bps_device"),
                          ("throttleWriteBpsDevice", "write_bps_device"),
                          ("throttleReadIOPSDevice", "read_iops_device"),
                          ("throttleWriteIOPSDevice", "write_iops_device")):
            for i, t in enumerate(b.get(key) or ()):
                write(d, f"blkio.throttle.{name}", f"{t['major']}:{t['minor']} {t['rate']}",
                      f"blockIO.{key}[{i}]")

    def kill_all_and_wait(self, timeout: float = 10.0):
        """v1 has no cgroup.kill: freeze, SIGKILL everything, thaw, so that
        nothing forks its way out between reading cgroup.procs and the kill."""
        d = self.subsys.get("freezer")
        if d and self.pids():
            from kago.cgroups.freezer import v1_freeze, v1_thaw
            try:
                v1_freeze(d, timeout=2.0)
                self.signal_all(9)
            except Exception as e:  # noqa: BLE001 - a CgroupError only
                if not _is_error(e):
                    raise
            finally:
                try:
                    v1_thaw(d)
                except Exception as e:  # noqa: BLE001 - a CgroupError only
                    if not _is_error(e):
                        raise
        super().kill_all_and_wait(timeout)

    # --- freezer -------------------------------------------------------------
    def freeze(self):
        from kago.cgroups.freezer import v1_freeze
        if "freezer" in self.dropped:
            raise _error("cannot toggle freezer: cgroups not configured for container")
        v1_freeze(self._dir("freezer", "freezer"))

    def thaw(self):
        from kago.cgroups.freezer import v1_thaw
        d = self.subsys.get("freezer")
        if d:
            v1_thaw(d)

    def frozen(self) -> bool:
        d = self.subsys.get("freezer")
        if not d:
            return False
        try:
            return read(d, "freezer.state") == "FROZEN"
        except OSError:
            return False

    # --- stats and events ----------------------------------------------------
    def stats(self) -> dict:
        from kago.cgroups.stats import v1_stats
        return v1_stats(self.subsys)

    def oom_kills(self) -> int:
        d = self.subsys.get("memory")
        if not d:
            return 0
        try:
            for line in read(d, "memory.oom_control").splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
        except OSError:
            pass
        return 0

    def oom_notifier(self):
        """(fd, True): an eventfd readable at each OOM (registered on
        memory.oom_control through cgroup.event_control), or None."""
        d = self.subsys.get("memory")
        if not d:
            return None
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            ofd = os.open(os.path.join(d, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            try:
                with open(os.path.join(d, "cgroup.event_control"), "w") as f:
                    f.write(f"{efd} {ofd}")
            finally:
                os.close(ofd)
        except OSError:
            os.close(efd)
            return None
        return efd, True


def _init_cpuset(mp, d):
    """A new v1 cpuset cgroup starts empty: copy cpus/mems down from the
    nearest ancestor that has them."""
    rel = os.path.relpath(d, mp).split("/")
    cur = mp
    for part in rel:
        if part in (".", ""):
            continue
        parent, cur = cur, os.path.join(cur, part)
        for name in ("cpuset.cpus", "cpuset.mems"):
            try:
                if read(cur, name):
                    continue
                write(cur, name, read(parent, name))
            except FileNotFoundError:
                pass
            except OSError as e:
                raise _error(f"cpuset {cur}/{name}: {e.strerror}", cur) from None


def _rt_runtime(mp, d, runtime):
    """cpu.rt_runtime_us: an ancestor with less real-time budget (kago's own
    /kago parent starts with 0) refuses it, so hand the budget down first."""
    chain = []
    cur = d
    while cur != mp and cur.startswith(mp):
        chain.append(cur)
        cur = os.path.dirname(cur)
    for anc in reversed(chain[1:]):
        if read_int(anc, "cpu.rt_runtime_us", -1) < runtime:
            try:
                write(anc, "cpu.rt_runtime_us", runtime, "cpu.realtimeRuntime")
            except Exception as e:  # noqa: BLE001 - a CgroupError only
                if not _is_error(e):
                    raise
                break
    write(d, "cpu.rt_runtime_us", runtime, "cpu.realtimeRuntime")
