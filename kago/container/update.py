"""update: apply new ``linux.resources`` to a running container's cgroup.

Devices (``resources.devices``): the new rules + runc's default allow list
replace the container's, on cgroup v1 with the fewest writes
(kago.cgroups.devices.v1_apply); on v2 they are left alone, as runc's update
leaves devices.  The values persisted in kago.json are not rewritten: the
cgroup files are the truth."""

from kago.container import state as _st
from kago.errors import InvalidArgument, InvalidState, SpecError

_CLASSES = {"memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma",
            "unified", "devices"}


# runc decodes ``update -r`` into Go structs, whose field names match JSON
# keys case-insensitively ({"CPU": {"Shares": 512}} is cpu.shares); a map's
# keys (unified, rdma's device names) stay as written.  name -> its fields.
_DEV = ("allow", "type", "major", "minor", "access")
_WDEV = ("major", "minor", "weight", "leafWeight")
_TDEV = ("major", "minor", "rate")
_GO_FIELDS = {
    "": {"memory": None, "cpu": None, "pids": None, "blockIO": None,
         "hugepageLimits": None, "network": None, "rdma": None, "unified": None,
         "devices": None},
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness",
               "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"),
    "cpu": ("shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod",
            "cpus", "mems", "idle"),
    "pids": ("limit",),
    "blockIO": ("weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
                "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                "throttleWriteIOPSDevice"),
    "network": ("classID", "priorities"),
    "devices[]": _DEV, "hugepageLimits[]": ("pageSize", "limit"),
    "weightDevice[]": _WDEV, "throttleReadBpsDevice[]": _TDEV,
    "throttleWriteBpsDevice[]": _TDEV, "throttleReadIOPSDevice[]": _TDEV,
    "throttleWriteIOPSDevice[]": _TDEV, "priorities[]": ("name", "priority"),
    "rdma{}": ("hcaHandles", "hcaObjects"),
}


def _go_keys(obj, name=""):
    """``obj`` with its keys spelled as the struct ``name``'s fields, matched as
    Go's encoding/json does (exact first, else case-insensitive; the last of
    two spellings wins); values of known fields converted the same way."""
    fields = _GO_FIELDS.get(name)
    if not isinstance(obj, dict) or fields is None:
        return obj
    fold = {f.lower(): f for f in fields}
    out = {}
    for k, v in obj.items():
        canon = k if k in fields else fold.get(k.lower(), k) if isinstance(k, str) else k
        if canon == "rdma" and name == "" and isinstance(v, dict):
            v = {dev: _go_keys(lim, "rdma{}") for dev, lim in v.items()}
        elif isinstance(v, list) and canon + "[]" in _GO_FIELDS:
            v = [_go_keys(x, canon + "[]") for x in v]
        elif canon in _GO_FIELDS and canon != "unified":
            v = _go_keys(v, canon)
        out[canon] = v
    return out


def update(c, resources: dict):
    if not isinstance(resources, dict):
        raise InvalidArgument("update: resources must be a JSON object")
    resources = _go_keys(resources)
    unknown = set(resources) - _CLASSES
    if unknown:
        raise InvalidArgument(f"update: unknown resource class {sorted(unknown)[0]!r}")
    from kago.spec import validate_resources
    try:   # the same checks as config.json's linux.resources, at the same edge
        validate_resources(resources, "resources")
    except SpecError as e:
        raise InvalidArgument(f"update: {e.path}: {e.reason}") from None
    r = {k: v for k, v in resources.items() if k != "devices"}
    if resources.get("devices"):
        from kago.cgroups.devices import rules_for   # (validate_resources checked them)
        r["devices"] = rules_for({"resources": resources})
    with _st.Lock(c.state_dir):
        status = c.status
        if status == "stopped":
            raise InvalidState(c.id, status, "running")
        c._cgroup().apply(r, update=True)
