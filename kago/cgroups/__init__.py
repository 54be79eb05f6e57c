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


def clean_path(path: str) -> str:
    """runc's ``utils.CleanPath``: Go's ``filepath.Clean``, with a relative
    path cleaned as if from ``/`` and kept relative (``../../x`` -> ``x``,
    ``..`` -> ``.``), so that no ``..`` survives to climb out of whatever it
    is joined to.  A NUL byte is an error (no path can hold one)."""
    if "\0" in path:
        from kago.errors import CgroupError
        raise CgroupError(f"cgroup path {path!r} contains a NUL byte")
    parts = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    if path.startswith("/"):
        return "/" + "/".join(parts)
    return "/".join(parts) or "."


def join(mountpoint: str, path: str) -> str:
    """``path`` (cleaned from ``/``, relative or not) under ``mountpoint``:
    the one place a cgroup path meets a hierarchy, and never outside it."""
    sub = clean_path("/" + path)
    return mountpoint.rstrip("/") + sub if sub != "/" else mountpoint


def container_dir(mountpoint: str, path: str, given: str) -> str:
    """:func:`join` for a container's own cgroup (``given``: cgroupsPath as
    written): never the hierarchy's root, which holds every process of the
    host (no limit would hold, and removing it would reach them all)."""
    d = join(mountpoint, path)
    if d == mountpoint.rstrip("/") or d == mountpoint:
        from kago.errors import CgroupError
        raise CgroupError(f"linux.cgroupsPath {given!r}: is the root cgroup of "
                          f"{mountpoint}, not a cgroup of the container's own", d)
    return d


def is_under(d: str, top: str) -> bool:
    """Is directory ``d`` ``top`` or below it (both clean, absolute)?"""
    top = top.rstrip("/")
    return d == top or d.startswith(top + "/")


def parse_sub_cgroups(args) -> dict:
    """``exec --cgroup`` arguments (runc's: ``PATH`` alone, or ``CTRL:PATH``
    with ``CTRL`` a comma list) -> {controller: path}, ``""``: every one."""
    from kago.errors import InvalidArgument
    if isinstance(args, str):
        args = [args]
    paths = {}
    for a in args:
        cs = a.split(":", 2)
        if len(cs) > 2:
            raise InvalidArgument(f"invalid --cgroup argument: {a}")
        if len(cs) == 1:
            if len(args) != 1:
                raise InvalidArgument(f"invalid --cgroup argument: {a} "
                                      "(missing <controller>: prefix)")
            paths[""] = a
            continue
        for ctrl in cs[0].split(","):
            if not ctrl:
                raise InvalidArgument(f"invalid --cgroup argument: {a} "
                                      "(empty <controller> prefix)")
            if ctrl in paths:
                raise InvalidArgument(f"invalid --cgroup argument(s): controller {ctrl} "
                                      "specified multiple times")
            paths[ctrl] = cs[1]
    return paths


def sub_cgroup(base: str, sub: str) -> str:
    """The directory ``sub`` names below the container's cgroup directory
    ``base``: ``base`` itself or a descendant, never above (runc's words)."""
    d = clean_path(base + "/" + sub)
    if not is_under(d, base) or "\0" in sub:
        from kago.errors import InvalidArgument
        raise InvalidArgument(f"{sub} is not a sub cgroup path")
    return d


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
    if driver == "none":       # rootless, no cgroup of its own
        from kago.cgroups.fs import NoCgroup
        return NoCgroup.from_json(d)
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
