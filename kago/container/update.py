"""update: apply new ``linux.resources`` to a running container's cgroup.

Devices (``resources.devices``): the new rules + runc's default allow list
replace the container's, on cgroup v1 with the fewest writes
(kago.cgroups.devices.v1_apply); on v2 they are left alone, as runc's update
leaves devices.  The values persisted in kago.json are not rewritten: the
cgroup files are the truth."""

from kago.container import state as _st
from kago.errors import InvalidArgument, InvalidState

_CLASSES = {"memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma",
            "unified", "devices"}


def update(c, resources: dict):
    if not isinstance(resources, dict):
        raise InvalidArgument("update: resources must be a JSON object")
    unknown = set(resources) - _CLASSES
    if unknown:
        raise InvalidArgument(f"update: unknown resource class {sorted(unknown)[0]!r}")
    r = {k: v for k, v in resources.items() if k != "devices"}
    if resources.get("devices"):
        from kago.cgroups.devices import check_rules, rules_for
        from kago.errors import SpecError
        try:
            check_rules(resources["devices"], "resources.devices")
        except SpecError as e:
            raise InvalidArgument(f"update: {e.path}: {e.reason}") from None
        r["devices"] = rules_for({"resources": resources})
    with _st.Lock(c.state_dir):
        status = c.status
        if status == "stopped":
            raise InvalidState(c.id, status, "running")
        c._cgroup().apply(r, update=True)
