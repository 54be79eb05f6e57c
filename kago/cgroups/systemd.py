"""The systemd driver (``--systemd-cgroup``), as runc's.

``linux.cgroupsPath`` is ``slice:prefix:name`` (default
``system.slice:kago:<id>``): the container gets the transient unit
``prefix-name.scope`` (or the slice ``name`` if it ends in ``.slice``) in
``slice``, started over D-Bus with StartTransientUnit: Delegate=yes, PIDs=[the
intermediate process], and the resources systemd knows as unit properties
(MemoryMax/MemoryLimit, CPUWeight/CPUShares, CPUQuotaPerSecUSec, TasksMax,
AllowedCPUs, DevicePolicy/DeviceAllow, ...).  Then, as runc does, the
v1/v2 filesystem manager for the scope's path creates whatever systemd did
not, joins the pid and writes every resource: systemd's view and the files
agree, and what systemd can't express is still applied.

The D-Bus client (:mod:`kago.cgroups.dbus`) is imported only here, and only
when the bus is needed (create/join, update, remove).
"""

import os

from kago.cgroups import is_v2_host
from kago.errors import CgroupError

SYSTEMD = "org.freedesktop.systemd1"
SYSTEMD_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"


def parse_path(path, container_id):
    """'slice:prefix:name' -> (slice, unit name)."""
    if not path:
        path = f"system.slice:kago:{container_id}"
    parts = path.split(":")
    if len(parts) != 3:
        raise CgroupError(f"expected cgroupsPath to be of format \"slice:prefix:name\" "
                          f"for systemd cgroups, got {path!r} instead")
    slice_, prefix, name = parts
    slice_ = slice_ or "system.slice"
    for what, v in (("prefix", prefix), ("name", name)):
        # one unit name, as systemd takes it: never a path ('/', '..') or a NUL
        if "/" in v or "\0" in v or v in (".", ".."):
            raise CgroupError(f"invalid systemd unit {what} {v!r} in cgroupsPath {path!r}")
    if name.endswith(".slice"):
        unit = name
    else:
        unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return slice_, unit


def expand_slice(slice_):
    """'a-b-c.slice' -> '/a.slice/a-b.slice/a-b-c.slice' ('-.slice' -> '/')."""
    if not slice_.endswith(".slice") or "/" in slice_:
        raise CgroupError(f"invalid systemd slice name {slice_!r}")
    name = slice_[:-len(".slice")]
    if name == "-":
        return "/"
    if not name or "\0" in name or name.startswith("-") or name.endswith("-") \
            or "--" in name:
        raise CgroupError(f"invalid systemd slice name {slice_!r}")
    path, prefix = "", ""
    for part in name.split("-"):
        prefix = f"{prefix}-{part}" if prefix else part
        path += f"/{prefix}.slice"
    return path


class SystemdManager:
    driver = "systemd"

    def __init__(self, slice_, unit, fs, v2):
        self.slice = slice_
        self.unit = unit
        self.fs = fs                # the v1/v2 manager of the unit's cgroup
        self.v2 = v2
        self._pending = {}

    @classmethod
    def for_path(cls, path, container_id=""):
        slice_, unit = parse_path(path, container_id)
        cgpath = os.path.join(expand_slice(slice_), unit)
        v2 = is_v2_host()
        if v2:
            from kago.cgroups.v2 import V2Manager
            fs = V2Manager.for_path(cgpath)
        else:
            from kago.cgroups.v1 import V1Manager
            fs = V1Manager.for_path(cgpath)
        return cls(slice_, unit, fs, v2)

    def to_json(self):
        return {"driver": "systemd", "slice": self.slice, "unit": self.unit,
                "v2": self.v2, "fs": self.fs.to_json(), "path": self.fs.path,
                "dirs": self.fs.dirs}

    @classmethod
    def from_json(cls, d):
        from kago.cgroups import load
        return cls(d["slice"], d["unit"], load(d["fs"]), d.get("v2", False))

    # the filesystem side
    @property
    def path(self):
        return self.fs.path

    @property
    def dirs(self):
        return self.fs.dirs

    def __getattr__(self, name):
        # pids, exists, signal_all, freeze, thaw, frozen, stats, oom_kills, ...
        if name.startswith("_") or name == "fs":
            raise AttributeError(name)
        return getattr(self.fs, name)

    # --- lifecycle -----------------------------------------------------------
    def create(self):
        """Nothing yet: the scope is started with its first pid (add)."""

    def apply(self, resources, update=False):
        if not update:
            self._pending = resources or {}
            return
        # devices: never through systemd on update (runc's SkipDevices: its
        # rewrite of the list would take /dev/null away for a moment); the
        # filesystem part makes v1's minimal transition
        props = properties({k: v for k, v in (resources or {}).items() if k != "devices"},
                           self.v2)
        if props:
            bus = _bus()
            try:
                bus.call(SYSTEMD, SYSTEMD_PATH, MANAGER, "SetUnitProperties", "sba(sv)",
                         [self.unit, True, props])
            finally:
                bus.close()
        self.fs.apply(resources, update=True)

    def add(self, pid):
        """Start the scope with ``pid`` in it, wait for the job, then the
        filesystem part (create, resources, join)."""
        props = [("Description", ("s", f"kago container {self.unit}")),
                 ("Slice", ("s", self.slice)),
                 ("Delegate", ("b", True)),
                 ("DefaultDependencies", ("b", False)),
                 ("PIDs", ("au", [pid])),
                 ("MemoryAccounting", ("b", True)),
                 ("CPUAccounting", ("b", True)),
                 ("IOAccounting" if self.v2 else "BlockIOAccounting", ("b", True)),
                 ("TasksAccounting", ("b", True))]
        if self.unit.endswith(".slice"):
            props = [p for p in props if p[0] not in ("PIDs", "Delegate")] + \
                [("Wants", ("as", [self.slice]))]
        props += properties(self._pending, self.v2)
        start_unit(self.unit, props)
        self.fs.create()
        self.fs.apply(self._pending)
        self.fs.add(pid)

    def kill_all_and_wait(self, timeout=10.0):
        self.fs.kill_all_and_wait(timeout)

    def remove(self, timeout=5.0):
        try:
            stop_unit(self.unit)
        except CgroupError:
            pass  # a scope whose processes are gone is already collected
        self.fs.remove(timeout)


def properties(r, v2):
    """The unit properties for resources ``r`` (runc's conversions)."""
    out = []
    mem = r.get("memory") or {}
    if mem.get("limit"):
        lim = mem["limit"]
        out.append(("MemoryMax" if v2 else "MemoryLimit", ("t", 2**64 - 1 if lim < 0 else lim)))
    if v2 and mem.get("reservation"):
        res = mem["reservation"]     # -1: unlimited, as the fs drivers read it
        out.append(("MemoryLow", ("t", 2**64 - 1 if res < 0 else res)))
    cpu = r.get("cpu") or {}
    if cpu.get("shares"):
        if v2:
            out.append(("CPUWeight", ("t", 1 + ((cpu["shares"] - 2) * 9999) // 262142)))
        else:
            out.append(("CPUShares", ("t", cpu["shares"])))
    if cpu.get("period"):
        out.append(("CPUQuotaPeriodUSec", ("t", cpu["period"])))
    if cpu.get("quota"):
        q = cpu["quota"]
        if q < 0:
            out.append(("CPUQuotaPerSecUSec", ("t", 2**64 - 1)))
        else:
            period = cpu.get("period") or 100000
            per_sec = q * 1000000 // period
            if per_sec % 10000:  # systemd's granularity is 10ms: round up
                per_sec = (per_sec // 10000 + 1) * 10000
            out.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    if v2 and cpu.get("cpus"):
        out.append(("AllowedCPUs", ("ay", _bitmask(cpu["cpus"]))))
    if v2 and cpu.get("mems"):
        out.append(("AllowedMemoryNodes", ("ay", _bitmask(cpu["mems"]))))
    pids = r.get("pids") or {}
    if pids.get("limit"):
        out.append(("TasksMax", ("t", 2**64 - 1 if pids["limit"] < 0 else pids["limit"])))
    bio = r.get("blockIO") or {}
    if bio.get("weight"):
        if v2:
            out.append(("IOWeight", ("t", 1 + (bio["weight"] - 10) * 9999 // 990)))
        else:
            out.append(("BlockIOWeight", ("t", bio["weight"])))
    devs = r.get("devices")
    if devs:
        out += _device_properties(devs)
    return out


def _bitmask(spec):
    from kago.cgroups.stats import _cpus
    bits = bytearray()
    for c in _cpus(spec):
        while len(bits) <= c // 8:
            bits.append(0)
        bits[c // 8] |= 1 << (c % 8)
    return list(bits)


def _device_properties(rules):
    """DevicePolicy=strict + DeviceAllow for a list that starts by denying
    all; other lists are left to the filesystem part."""
    if not rules or rules[0].get("allow") or (rules[0].get("type") or "a") != "a":
        return []
    allow = []
    for r in rules[1:]:
        if not r.get("allow"):
            continue
        t = r.get("type") or "a"
        acc = r.get("access") or "rwm"
        major, minor = r.get("major"), r.get("minor")
        wild = lambda v: v is None or v < 0  # noqa: E731
        if t == "a":
            allow += [("char-*", acc), ("block-*", acc)]
        elif wild(major) and wild(minor):
            allow.append((f"{'char' if t == 'c' else 'block'}-*", acc))
        elif not wild(major) and not wild(minor):
            allow.append((f"/dev/{'char' if t == 'c' else 'block'}/{major}:{minor}", acc))
        # major:* has no systemd spelling (runc looks it up in /proc/devices)
    return [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", allow))]


def _bus():
    from kago.cgroups import dbus
    return dbus.Connection()


def start_unit(unit, props, timeout=30.0):
    """StartTransientUnit and wait for its job (JobRemoved) to be done."""
    from kago.cgroups.dbus import DBusError
    bus = _bus()
    try:
        bus.add_match(f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}',"
                      "member='JobRemoved'")
        try:
            job = bus.call(SYSTEMD, SYSTEMD_PATH, MANAGER, "StartTransientUnit",
                           "ssa(sv)a(sa(sv))", [unit, "replace", props, []])[0]
        except DBusError as e:
            if e.name == "org.freedesktop.systemd1.UnitExists":
                raise CgroupError(f"systemd unit {unit} already exists") from None
            raise CgroupError(f"start systemd unit {unit}: {e.name}: {e.text}") from None
        body = bus.wait_signal(lambda f, b: f.get(3) == "JobRemoved" and len(b) >= 4
                               and b[1] == job, timeout)
        if body[3] != "done":
            raise CgroupError(f"start systemd unit {unit}: job {body[3]}")
    finally:
        bus.close()


def stop_unit(unit, timeout=30.0):
    from kago.cgroups.dbus import DBusError
    bus = _bus()
    try:
        bus.add_match(f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}',"
                      "member='JobRemoved'")
        try:
            job = bus.call(SYSTEMD, SYSTEMD_PATH, MANAGER, "StopUnit", "ss",
                           [unit, "replace"])[0]
        except DBusError as e:
            raise CgroupError(f"stop systemd unit {unit}: {e.name}: {e.text}") from None
        bus.wait_signal(lambda f, b: f.get(3) == "JobRemoved" and len(b) >= 4
                        and b[1] == job, timeout)
    finally:
        bus.close()
