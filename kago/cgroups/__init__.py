"""cgroup managers.

``manager_for(path, systemd=False)`` returns the manager for this host: v2 when
/sys/fs/cgroup is a pure cgroup2 mount, v1 (with the hybrid ``unified``
hierarchy joined too) otherwise.  Resources, the freezer and the systemd
driver come with the cgroups work; this module already creates, joins, lists,
signals and removes the container's cgroup, so no process can escape cleanup
by forking.
"""

import os

from kago.errors import CgroupError

CGROUP_ROOT = "/sys/fs/cgroup"


def default_path(container_id: str) -> str:
    return f"/kago/{container_id}"


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


class Manager:
    """Filesystem cgroup manager (v1 hierarchies, or the v2 unified tree)."""

    def __init__(self, path: str, dirs: dict | None = None):
        self.path = path if path.startswith("/") else "/" + path
        # mountpoint -> the container's directory in that hierarchy
        if dirs is None:
            dirs = {}
            for mp, fstype, opts in _hierarchies():
                dirs[mp] = os.path.join(mp, self.path.lstrip("/"))
        self.dirs = dirs

    # --- persistence (kago.json) ---
    def to_json(self):
        return {"path": self.path, "dirs": self.dirs}

    @classmethod
    def from_json(cls, d):
        return cls(d["path"], d.get("dirs") or {})

    def _procs_file(self, d):
        return os.path.join(d, "cgroup.procs")

    def create(self):
        made = []
        try:
            for mp, d in self.dirs.items():
                if not os.path.isdir(d):
                    os.makedirs(d, exist_ok=True)
                    made.append(d)
                if os.path.basename(mp) == "cpuset" or "cpuset" in mp.split(",")[-1:]:
                    self._init_cpuset(mp, d)
        except OSError as e:
            for d in reversed(made):
                _rmdir(d)
            raise CgroupError(f"create cgroup {d}: {e.strerror}", d) from None

    @staticmethod
    def _init_cpuset(mp, d):
        # a new v1 cpuset cgroup starts empty: copy cpus/mems down from the
        # nearest ancestor that has them
        rel = os.path.relpath(d, mp).split("/")
        cur = mp
        for part in rel:
            parent, cur = cur, os.path.join(cur, part)
            for name in ("cpuset.cpus", "cpuset.mems"):
                fn = os.path.join(cur, name)
                try:
                    with open(fn) as f:
                        if f.read().strip():
                            continue
                    with open(os.path.join(parent, name)) as f:
                        val = f.read().strip()
                    with open(fn, "w") as f:
                        f.write(val)
                except FileNotFoundError:
                    pass

    def add(self, pid: int):
        for d in self.dirs.values():
            try:
                with open(self._procs_file(d), "w") as f:
                    f.write(str(pid))
            except OSError as e:
                raise CgroupError(f"join cgroup {d}: {e.strerror}", d) from None

    def pids(self) -> list:
        """Every pid in the container's cgroup (the first readable hierarchy)."""
        for d in self.dirs.values():
            try:
                with open(self._procs_file(d)) as f:
                    return [int(x) for x in f.read().split()]
            except FileNotFoundError:
                continue
            except OSError:
                continue
        return []

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def signal_all(self, sig: int):
        import signal as _s
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        del _s

    def kill_all_and_wait(self, timeout: float = 10.0):
        """SIGKILL every process in the cgroup until it is empty."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            if time.monotonic() > deadline:
                raise CgroupError(f"cgroup {self.path} still has processes {pids}",
                                  self.path)
            time.sleep(0.002)

    def remove(self, timeout: float = 5.0):
        import time
        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            while True:
                err = _rmdir(d)
                if err is None:
                    break
                if time.monotonic() > deadline:
                    raise CgroupError(f"remove cgroup {d}: {os.strerror(err)}", d)
                time.sleep(0.002)


def _rmdir(d):
    try:
        os.rmdir(d)
    except FileNotFoundError:
        pass
    except OSError as e:
        return e.errno
    return None


def manager_for(path: str, systemd: bool = False) -> Manager:
    return Manager(path)
