"""update: apply new ``linux.resources`` to a running container's cgroup.

Devices are not changed (as runc).  The values persisted in kago.json are
not rewritten: the cgroup files are the truth."""

from kago.container import state as _st
from kago.errors import InvalidArgument, InvalidState, SpecError

_CLASSES = {"memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma",
            "unified", "devices"}


def update(c, resources: dict):
    if not isinstance(resources, dict):
        raise InvalidArgument("update: resources must be a JSON object")
    unknown = set(resources) - _CLASSES
    if unknown:
        raise InvalidArgument(f"update: unknown resource class {sorted(unknown)[0]!r}")
    from kago.spec import validate_resources
    try:   # the same checks as config.json's linux.resources, at the same edge
        validate_resources(resources, "resources")
    except SpecError as e:
        raise InvalidArgument(f"update: {e.path}: {e.reason}") from None
    with _st.Lock(c.state_dir):
        status = c.status
        if status == "stopped":
            raise InvalidState(c.id, status, "running")
        r = {k: v for k, v in resources.items() if k != "devices"}
        c._cgroup().apply(r, update=True)
