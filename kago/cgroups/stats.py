"""Statistics in the shape of runc's ``events`` ``data`` object (its
types/events.go, with Go's omitempty: zero values are left out where runc
leaves them out)."""

from kago import _os as os

from kago.cgroups.fs import read

_NS_PER_TICK = 1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100)


def _r(d, name):
    try:
        return read(d, name)
    except (OSError, TypeError):
        return None


def _int(d, name, default=0):
    v = _r(d, name)
    if v is None:
        return default
    if v == "max":
        return 2 ** 64 - 1
    try:
        return int(v)
    except ValueError:
        return default


def _kv(text):
    out = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def _omit(d: dict, *keys):
    for k in keys:
        if not d.get(k):
            d.pop(k, None)
    return d


def _cpus(text):
    """'0-2,5' -> [0, 1, 2, 5]."""
    out = []
    for part in (text or "").split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        out += range(int(a), int(b or a) + 1)
    return out


def _empty():
    return {"cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
            "memory": {}, "pids": {}, "blkio": {}, "hugetlb": {},
            "intel_rdt": {}, "network_interfaces": None}


# ---------------------------------------------------------------- v1
def v1_stats(subsys: dict) -> dict:
    s = _empty()
    acct = subsys.get("cpuacct")
    if acct:
        u = {"total": _int(acct, "cpuacct.usage")}
        pc = _r(acct, "cpuacct.usage_percpu")
        u["percpu"] = [int(x) for x in pc.split()] if pc else []
        for key, name in (("percpu_kernel", "cpuacct.usage_percpu_sys"),
                          ("percpu_user", "cpuacct.usage_percpu_user")):
            v = _r(acct, name)
            u[key] = [int(x) for x in v.split()] if v else []
        st = _kv(_r(acct, "cpuacct.stat"))
        u["kernel"] = st.get("system", 0) * _NS_PER_TICK
        u["user"] = st.get("user", 0) * _NS_PER_TICK
        s["cpu"]["usage"] = _omit(u, "total", "percpu", "percpu_kernel", "percpu_user")
    cpu = subsys.get("cpu")
    if cpu:
        st = _kv(_r(cpu, "cpu.stat"))
        s["cpu"]["throttling"] = _omit({"periods": st.get("nr_periods", 0),
                                        "throttled_periods": st.get("nr_throttled", 0),
                                        "throttled_time": st.get("throttled_time", 0)},
                                       "periods", "throttled_periods", "throttled_time")
    cs = subsys.get("cpuset")
    if cs:
        s["cpuset"] = _cpuset(cs, "cpuset.")
    mem = subsys.get("memory")
    if mem:
        raw = _kv(_r(mem, "memory.stat"))
        m = {"cache": raw.get("cache", 0)}

        def entry(prefix):
            e = {"limit": _int(mem, prefix + "limit_in_bytes"),
                 "usage": _int(mem, prefix + "usage_in_bytes"),
                 "max": _int(mem, prefix + "max_usage_in_bytes"),
                 "failcnt": _int(mem, prefix + "failcnt")}
            return _omit(e, "usage", "max")
        m["usage"] = entry("memory.")
        if os.path.exists(os.path.join(mem, "memory.memsw.usage_in_bytes")):
            m["swap"] = entry("memory.memsw.")
        else:
            m["swap"] = {"limit": 0, "failcnt": 0}
        m["kernel"] = entry("memory.kmem.")
        m["kernelTCP"] = entry("memory.kmem.tcp.")
        m["raw"] = raw
        s["memory"] = _omit(m, "cache", "raw")
    pids = subsys.get("pids")
    if pids:
        lim = _r(pids, "pids.max")
        s["pids"] = _omit({"current": _int(pids, "pids.current"),
                           "limit": 0 if lim in (None, "max") else int(lim)},
                          "current", "limit")
    blk = subsys.get("blkio")
    if blk:
        b = {}
        for key, name in (("ioServiceBytesRecursive", "blkio.io_service_bytes_recursive"),
                          ("ioServicedRecursive", "blkio.io_serviced_recursive"),
                          ("ioQueuedRecursive", "blkio.io_queued_recursive"),
                          ("ioServiceTimeRecursive", "blkio.io_service_time_recursive"),
                          ("ioWaitTimeRecursive", "blkio.io_wait_time_recursive"),
                          ("ioMergedRecursive", "blkio.io_merged_recursive"),
                          ("ioTimeRecursive", "blkio.time_recursive"),
                          ("sectorsRecursive", "blkio.sectors_recursive")):
            text = _r(blk, name)
            if text is None and key in ("ioServiceBytesRecursive", "ioServicedRecursive"):
                # no CFQ/BFQ: the throttle layer's figures (as runc falls back)
                text = _r(blk, name.replace("blkio.", "blkio.throttle."))
            e = _blkio_entries(text)
            if e:
                b[key] = e
        s["blkio"] = b
    hug = subsys.get("hugetlb")
    if hug:
        s["hugetlb"] = _hugetlb(hug, v1=True)
    elif subsys.get("unified"):  # hybrid: hugetlb bound to the unified tree
        s["hugetlb"] = _hugetlb(subsys["unified"], v1=False)
    return s


def _cpuset(d, p):
    return {"cpus": _cpus(_r(d, p + "effective_cpus") or _r(d, p + "cpus")),
            "cpu_exclusive": _int(d, p + "cpu_exclusive"),
            "mems": _cpus(_r(d, p + "effective_mems") or _r(d, p + "mems")),
            "mem_hardwall": _int(d, p + "mem_hardwall"),
            "mem_exclusive": _int(d, p + "mem_exclusive"),
            "memory_migrate": _int(d, p + "memory_migrate"),
            "memory_spread_page": _int(d, p + "memory_spread_page"),
            "memory_spread_slab": _int(d, p + "memory_spread_slab"),
            "memory_pressure": _int(d, p + "memory_pressure"),
            "sched_load_balance": _int(d, p + "sched_load_balance"),
            "sched_relax_domain_level": _int(d, p + "sched_relax_domain_level")}


def _blkio_entries(text):
    out = []
    for line in (text or "").splitlines():
        f = line.split()
        if len(f) < 2 or ":" not in f[0]:
            continue
        ma, _, mi = f[0].partition(":")
        e = {"major": int(ma), "minor": int(mi)}
        if len(f) == 3:
            e["op"] = f[1]
            e["value"] = int(f[2])
        else:
            e["value"] = int(f[1])
        out.append(_omit(e, "major", "minor", "op", "value"))
    return out


def _page_sizes():
    out = []
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return out
    for n in names:  # hugepages-2048kB -> 2MB
        kb = int(n.split("-")[1][:-2])
        if kb >= 1 << 20:
            out.append(f"{kb >> 20}GB")
        elif kb >= 1 << 10:
            out.append(f"{kb >> 10}MB")
        else:
            out.append(f"{kb}KB")
    return out


def _hugetlb(d, v1):
    out = {}
    for size in _page_sizes():
        p = f"hugetlb.{size}."
        if v1:
            e = {"usage": _int(d, p + "usage_in_bytes"),
                 "max": _int(d, p + "max_usage_in_bytes"),
                 "failcnt": _int(d, p + "failcnt")}
        else:
            ev = _kv(_r(d, p + "events"))
            e = {"usage": _int(d, p + "current"), "failcnt": ev.get("max", 0)}
        if _r(d, p + ("usage_in_bytes" if v1 else "current")) is not None:
            out[size] = _omit(e, "usage", "max")
    return out


# ---------------------------------------------------------------- v2
def v2_stats(d) -> dict:
    s = _empty()
    st = _kv(_r(d, "cpu.stat"))
    u = {"total": st.get("usage_usec", 0) * 1000,
         "kernel": st.get("system_usec", 0) * 1000,
         "user": st.get("user_usec", 0) * 1000}
    s["cpu"]["usage"] = _omit(u, "total")
    s["cpu"]["throttling"] = _omit({"periods": st.get("nr_periods", 0),
                                    "throttled_periods": st.get("nr_throttled", 0),
                                    "throttled_time": st.get("throttled_usec", 0) * 1000},
                                   "periods", "throttled_periods", "throttled_time")
    if _r(d, "cpuset.cpus.effective") is not None:
        s["cpuset"] = {"cpus": _cpus(_r(d, "cpuset.cpus.effective")),
                       "mems": _cpus(_r(d, "cpuset.mems.effective")),
                       "cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
                       "memory_migrate": 0, "memory_spread_page": 0,
                       "memory_spread_slab": 0, "memory_pressure": 0,
                       "sched_load_balance": 0, "sched_relax_domain_level": 0}
    if _r(d, "memory.current") is not None:
        raw = _kv(_r(d, "memory.stat"))
        ev = _kv(_r(d, "memory.events"))
        m = {"cache": raw.get("file", 0),
             "usage": _omit({"limit": _int(d, "memory.max"),
                             "usage": _int(d, "memory.current"),
                             "max": _int(d, "memory.peak"),
                             "failcnt": ev.get("max", 0)}, "usage", "max"),
             # runc reports v2 swap as memory+swap, like v1's memsw
             "swap": _omit({"limit": _int(d, "memory.swap.max"),
                            "usage": _int(d, "memory.swap.current") +
                            _int(d, "memory.current"),
                            "failcnt": 0}, "usage"),
             "kernel": {"limit": 0, "failcnt": 0},
             "kernelTCP": {"limit": 0, "failcnt": 0},
             "raw": raw}
        if _r(d, "memory.swap.max") is None:
            m["swap"] = {"limit": 0, "failcnt": 0}
        s["memory"] = _omit(m, "cache", "raw")
    if _r(d, "pids.current") is not None:
        lim = _r(d, "pids.max")
        s["pids"] = _omit({"current": _int(d, "pids.current"),
                           "limit": 0 if lim in (None, "max") else int(lim)},
                          "current", "limit")
    io = _r(d, "io.stat")
    if io:
        sb, sv = [], []
        for line in io.splitlines():
            f = line.split()
            ma, _, mi = f[0].partition(":")
            kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
            for op, key in (("Read", "rbytes"), ("Write", "wbytes")):
                sb.append({"major": int(ma), "minor": int(mi), "op": op,
                           "value": int(kv.get(key, 0))})
            for op, key in (("Read", "rios"), ("Write", "wios")):
                sv.append({"major": int(ma), "minor": int(mi), "op": op,
                           "value": int(kv.get(key, 0))})
        s["blkio"] = {"ioServiceBytesRecursive": [_omit(e, "major", "minor", "value")
                                                  for e in sb],
                      "ioServicedRecursive": [_omit(e, "major", "minor", "value")
                                              for e in sv]}
    s["hugetlb"] = _hugetlb(d, v1=False)
    return s
