"""cgroup v2: one directory in the unified hierarchy.

Controllers are enabled in ``cgroup.subtree_control`` of every ancestor (not
the container's own cgroup: a leaf with processes can't delegate).

``linux.resources`` -> files (runc's fs2 conversions):

================  ==========================================================
memory            memory.max, memory.low (reservation), memory.swap.max
                  (= swap - limit), checkBeforeUpdate against memory.current;
                  swappiness, kernel, kernelTCP, disableOOMKiller: v1-only
cpu               cpu.weight (from shares), cpu.max "quota period",
                  cpu.max.burst, cpu.idle, cpuset.cpus/.mems;
                  realtime*: v1-only
pids              pids.max
blockIO           io.bfq.weight or io.weight (converted), io.weight per device,
                  io.max rbps/wbps/riops/wiops
hugepageLimits    hugetlb.<size>.max
rdma              rdma.max
unified           each key written as a file
devices           an eBPF program attached with bpf(2) (:mod:`.devices`)
network           v1-only (net_cls/net_prio): an error if requested
================  ==========================================================
"""

from kago import _os as os   # not os: see kago/_os.py

from kago.cgroups import CGROUP_ROOT, clean_path, container_dir
from kago.cgroups.fs import FsManager, read, read_int, unsupported, write
from kago.errors import CgroupError


def _own_path(path="/proc/self/cgroup"):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return "/"


class V2Manager(FsManager):
    driver = "v2"

    @classmethod
    def for_path(cls, path, root=CGROUP_ROOT):
        given, path = path, clean_path(path)   # no '..' left: see kago.cgroups.join
        if not path.startswith("/"):
            # relative: under the parent of our own cgroup (as runc)
            base = os.path.dirname(clean_path(_own_path()))
            path = clean_path(base + "/" + path)
        return cls(path, {root: container_dir(root, path, given)})

    @property
    def dir(self):
        return next(iter(self.dirs.values()))

    @property
    def root(self):
        return next(iter(self.dirs))

    def _prepare(self, mp, d):
        """Enable every available controller down to ``d``'s parent."""
        rel = os.path.relpath(d, mp)
        cur = mp
        parts = [] if rel == "." else rel.split("/")
        for part in parts:
            try:
                avail = read(cur, "cgroup.controllers").split()
                on = set(read(cur, "cgroup.subtree_control").split())
            except OSError as e:
                raise CgroupError(f"read {cur}/cgroup.controllers: {e.strerror}", cur) \
                    from None
            want = [c for c in avail if c not in on]
            if want:
                try:
                    write(cur, "cgroup.subtree_control", " ".join("+" + c for c in want))
                except CgroupError:
                    # one by one: enable what can be (a busy ancestor refuses some)
                    for c in want:
                        try:
                            write(cur, "cgroup.subtree_control", "+" + c)
                        except CgroupError:
                            pass
            cur = os.path.join(cur, part)

    def _has(self, ctrl, what):
        try:
            ok = ctrl in read(self.dir, "cgroup.controllers").split()
        except OSError:
            ok = False
        if not ok:
            raise unsupported(what, f"the {ctrl} controller is not enabled for "
                                    f"{self.dir} (cgroup.controllers)")
        return self.dir

    # --- resources -----------------------------------------------------------
    def apply(self, r: dict, update: bool = False):
        if not r:
            return
        if r.get("memory"):
            self._memory(r["memory"], update)
        if r.get("cpu"):
            self._cpu(r["cpu"])
        if r.get("pids") and r["pids"].get("limit", 0) != 0:
            lim = r["pids"]["limit"]
            write(self._has("pids", "pids.limit"), "pids.max",
                  "max" if lim < 0 else lim, "pids.limit")
        if r.get("blockIO"):
            self._io(r["blockIO"])
        for i, h in enumerate(r.get("hugepageLimits") or ()):
            what = f"hugepageLimits[{i}]"
            write(self._has("hugetlb", what), f"hugetlb.{h['pageSize']}.max",
                  h["limit"], what)
        net = r.get("network") or {}
        if net.get("classID") or net.get("priorities"):
            raise unsupported("network", "net_cls/net_prio exist only in cgroup v1; "
                                         "this host uses cgroup v2")
        for dev, lim in (r.get("rdma") or {}).items():
            parts = [f"{k}={lim[v]}" for k, v in (("hca_handle", "hcaHandles"),
                                                  ("hca_object", "hcaObjects"))
                     if lim.get(v) is not None]
            if parts:
                write(self._has("rdma", f"rdma.{dev}"), "rdma.max",
                      f"{dev} {' '.join(parts)}", f"rdma.{dev}")
        for key, val in (r.get("unified") or {}).items():
            what = f"unified[{key!r}]"
            if "/" in key or key.startswith(".") or "." not in key:
                raise unsupported(what, "not a cgroup interface file name")
            ctrl = key.split(".", 1)[0]
            if ctrl != "cgroup":
                self._has(ctrl, what)
            write(self.dir, key, val, what)
        if r.get("devices") and not update:
            from kago.cgroups.devices import v2_apply
            v2_apply(self.dir, r["devices"])
        elif r.get("devices"):
            from kago import _debug
            _debug("devices left as they are: cgroup v2 (as runc's update)", path=self.dir)

    def _memory(self, m, update):
        limit, swap = m.get("limit") or 0, m.get("swap") or 0
        for k in ("kernel", "kernelTCP"):
            if m.get(k):
                raise unsupported(f"memory.{k}", "kernel memory limits exist only in "
                                                 "cgroup v1; this host uses cgroup v2")
        if m.get("swappiness") is not None and m["swappiness"] != 0 and \
                m["swappiness"] != -1:
            raise unsupported("memory.swappiness", "exists only in cgroup v1; "
                                                   "this host uses cgroup v2")
        if m.get("disableOOMKiller"):
            raise unsupported("memory.disableOOMKiller", "exists only in cgroup v1; "
                                                         "this host uses cgroup v2")
        if m.get("useHierarchy") is False:
            raise unsupported("memory.useHierarchy", "cgroup v2 is always hierarchical")
        if not (limit or swap or m.get("reservation")):
            return
        d = self._has("memory", "memory")
        if m.get("checkBeforeUpdate") and update and limit > 0:
            usage = read_int(d, "memory.current")
            if usage >= limit:
                raise CgroupError(f"linux.resources.memory.limit: {limit} is below the "
                                  f"current usage {usage} ({d}/memory.current)", d)
        # swap: v1's memory+swap total -> v2's swap alone
        if limit == -1 and swap == 0:
            swap_v2 = -1
        elif swap in (-1, 0):
            swap_v2 = swap
        elif limit in (0, -1):
            raise unsupported("memory.swap", "a swap limit needs a memory limit")
        elif swap < limit:
            raise unsupported("memory.swap", f"memory+swap {swap} is below memory {limit}")
        else:
            swap_v2 = swap - limit
        if swap_v2:
            if os.path.exists(os.path.join(d, "memory.swap.max")):
                write(d, "memory.swap.max", "max" if swap_v2 == -1 else swap_v2,
                      "memory.swap")
            elif swap_v2 != -1:
                raise unsupported("memory.swap", "no swap accounting on this host "
                                                 "(no memory.swap.max)")
        if limit:
            write(d, "memory.max", "max" if limit == -1 else limit, "memory.limit")
        if m.get("reservation"):
            res = m["reservation"]
            write(d, "memory.low", "max" if res == -1 else res, "memory.reservation")

    def _cpu(self, c):
        for k in ("realtimeRuntime", "realtimePeriod"):
            if c.get(k):
                raise unsupported(f"cpu.{k}", "real-time group scheduling exists only "
                                              "in cgroup v1; this host uses cgroup v2")
        if c.get("cpus") or c.get("mems"):
            d = self._has("cpuset", "cpu.cpus")
            if c.get("cpus"):
                write(d, "cpuset.cpus", c["cpus"], "cpu.cpus")
            if c.get("mems"):
                write(d, "cpuset.mems", c["mems"], "cpu.mems")
        shares, quota, period = c.get("shares") or 0, c.get("quota") or 0, \
            c.get("period") or 0
        if not (shares or quota or period) and c.get("burst") is None \
                and c.get("idle") is None:
            return
        d = self._has("cpu", "cpu")
        if shares:
            write(d, "cpu.weight", 1 + ((shares - 2) * 9999) // 262142, "cpu.shares")
        if quota or period:
            cur = read(d, "cpu.max").split()
            q = ("max" if quota < 0 else str(quota)) if quota else cur[0]
            p = str(period) if period else cur[1]
            write(d, "cpu.max", f"{q} {p}", "cpu.quota")
        if c.get("burst") is not None:
            write(d, "cpu.max.burst", c["burst"], "cpu.burst")
        if c.get("idle") is not None:
            write(d, "cpu.idle", c["idle"], "cpu.idle")

    def _io(self, b):
        if b.get("leafWeight") or any(w.get("leafWeight") for w in
                                      b.get("weightDevice") or ()):
            raise unsupported("blockIO.leafWeight", "exists only in cgroup v1; this "
                                                    "host uses cgroup v2")
        keys = ("weight", "weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                "throttleReadIOPSDevice", "throttleWriteIOPSDevice")
        if not any(b.get(k) for k in keys):
            return
        d = self._has("io", "blockIO")
        if b.get("weight"):
            if os.path.exists(os.path.join(d, "io.bfq.weight")):
                write(d, "io.bfq.weight", b["weight"], "blockIO.weight")
            else:
                write(d, "io.weight", 1 + (b["weight"] - 10) * 9999 // 990,
                      "blockIO.weight")
        for i, w in enumerate(b.get("weightDevice") or ()):
            if w.get("weight"):
                name = "io.bfq.weight" if os.path.exists(os.path.join(d, "io.bfq.weight")) \
                    else "io.weight"
                v = w["weight"] if name == "io.bfq.weight" else \
                    1 + (w["weight"] - 10) * 9999 // 990
                write(d, name, f"{w['major']}:{w['minor']} {v}",
                      f"blockIO.weightDevice[{i}]")
        for key, name in (("throttleReadBpsDevice", "rbps"),
                          ("throttleWriteBpsDevice", "wbps"),
                          ("throttleReadIOPSDevice", "riops"),
                          ("throttleWriteIOPSDevice", "wiops")):
            for i, t in enumerate(b.get(key) or ()):
                rate = t["rate"] or "max"
                write(d, "io.max", f"{t['major']}:{t['minor']} {name}={rate}",
                      f"blockIO.{key}[{i}]")

    # --- freezer -------------------------------------------------------------
    def freeze(self):
        from kago.cgroups.freezer import v2_set
        v2_set(self.dir, True)

    def thaw(self):
        from kago.cgroups.freezer import v2_set
        if os.path.isdir(self.dir):
            v2_set(self.dir, False)

    def frozen(self) -> bool:
        try:
            return "frozen 1" in read(self.dir, "cgroup.events").splitlines()
        except OSError:
            return False

    def kill_all_and_wait(self, timeout: float = 10.0):
        # cgroup.kill (5.14+) kills everything at once, forkers included
        try:
            write(self.dir, "cgroup.kill", "1")
        except CgroupError:
            pass
        super().kill_all_and_wait(timeout)

    # --- stats and events ----------------------------------------------------
    def stats(self) -> dict:
        from kago.cgroups.stats import v2_stats
        return v2_stats(self.dir)

    def oom_kills(self) -> int:
        try:
            for line in read(self.dir, "memory.events").splitlines():
                k, _, v = line.partition(" ")
                if k == "oom_kill":
                    return int(v)
        except OSError:
            pass
        return 0

    def oom_notifier(self):
        """(fd, False): memory.events, which wakes poll (POLLPRI) at each
        change; or None."""
        try:
            return os.open(os.path.join(self.dir, "memory.events"),
                           os.O_RDONLY | os.O_CLOEXEC), False
        except OSError:
            return None
