"""The :class:`Container`: a handle on one container's state directory.

Verbs live one per module (start.py, kill.py, delete.py, ...) and are imported
only when called, so ``kago state`` loads almost nothing.
"""

from kago import _os as os   # not os: see kago/_os.py
from kago.container import state as _st


class Container:
    """A container known to a kago root.  Get one from
    :meth:`ContainerBuilder.build` or :meth:`Container.load`."""

    def __init__(self, root: str, id: str, data: dict):
        self.root = root
        self.id = id
        self._data = data
        self.state_dir = os.path.join(root, id)
        self._cfg = None
        self._child = False  # True when this process is init's (sub)reaper
        self._pty_master = None  # run -t without a console socket: we relay
        self._notify_child = 0   # start(wait_ready=False): the READY forwarder

    # ---- loading -----------------------------------------------------------
    @classmethod
    def load(cls, root: str, id: str) -> "Container":
        """Load container ``id`` from ``root``; :class:`ContainerNotFound` if
        absent, :class:`ContainerDamaged` if its state.json is not what create
        wrote (the damaged entry :meth:`list` returns for it can still be
        ``delete(force=True)``-d, as ``kago delete --force ID`` does)."""
        _st.validate_id(id)
        try:
            data = _st.load_state(os.path.join(root, id), id)
        except FileNotFoundError:
            from kago.errors import ContainerNotFound   # (not imported on success)
            raise ContainerNotFound(id) from None
        except _st.Damaged as e:
            from kago.errors import ContainerDamaged
            raise ContainerDamaged(id, str(e)) from None
        return cls(root, id, data)

    @classmethod
    def list(cls, root: str) -> list:
        """Every container under ``root``, sorted by id.  A damaged one is
        listed too: its ``damaged`` says what is wrong (``state()`` raises
        :class:`ContainerDamaged`); a directory without state.json (a create
        at work, or one killed early) is left out, as runc does."""
        out = []
        try:
            names = sorted(os.listdir(root))
        except FileNotFoundError:
            return out
        from kago.errors import ContainerDamaged, KagoError
        for name in names:
            try:
                _st.validate_id(name)
                if os.lstat(os.path.join(root, name)).st_mode & 0o170000 != 0o040000:
                    continue                    # not a state dir: not ours
                out.append(cls.load(root, name))
            except ContainerDamaged as e:
                out.append(cls._damaged_entry(root, name, e.reason))
            except (KagoError, OSError):    # no state.json (a create at work, or
                continue                    # one killed), a foreign entry, gone
        return out

    @classmethod
    def _damaged_entry(cls, root, id, reason):
        c = cls(root, id, {})
        c.damaged = reason
        return c

    damaged = ""   # what is wrong with a damaged state dir (Container.list)

    def _raise_damaged(self, reason):
        from kago.errors import ContainerDamaged
        raise ContainerDamaged(self.id, reason)

    def config(self) -> dict:
        """KagoConfig: the subset of config.json persisted at create
        (:class:`ContainerDamaged` if kago.json is missing or damaged)."""
        if self._cfg is None:
            try:
                self._cfg = _st.load_config(self.state_dir)
            except FileNotFoundError:
                self._raise_damaged("kago.json is missing")
            except _st.Damaged as e:
                self._raise_damaged(str(e))
        return self._cfg

    def _cgroup(self):
        from kago.cgroups import load
        return load(self.config()["cgroup"])

    # ---- attributes ----------------------------------------------------------
    @property
    def pid(self) -> int:
        """Host pid of the container's init (0 once stopped)."""
        return self._data.get("pid", 0) if self.status not in ("stopped", "damaged") else 0

    @property
    def bundle(self) -> str:
        return self._data["bundle"]

    @property
    def created(self) -> str:
        return self._data["created"]

    def _alive(self) -> bool:
        pid = self._data.get("pid") or 0
        if pid <= 0:
            return False
        st = _st.proc_start_time(pid)
        if st is None or st[0] in ("Z", "X", "x"):
            return False
        return st[1] == self._data.get("start_time")

    @property
    def status(self) -> str:
        """creating, created, running, paused or stopped - read afresh each
        time ("damaged" for a damaged entry of :meth:`list`)."""
        if self.damaged:
            return "damaged"
        if self._data.get("status") == "creating":
            # state.json is written before the fork chain: "creating" while
            # the kago that is creating it lives, "stopped" if it was killed
            who = self._data.get("creator") or (0, 0)
            st = _st.proc_start_time(who[0]) if who[0] > 0 else None
            return "creating" if st and st[1] == who[1] and st[0] != "Z" else "stopped"
        if not self._alive():
            return "stopped"
        if self._frozen():
            return "paused"
        if os.path.exists(os.path.join(self.state_dir, _st.FIFO)):
            return "created"
        return "running"

    def _frozen(self) -> bool:
        from kago.cgroups import is_frozen
        return is_frozen(self._data.get("cgroup_dirs") or {})

    def state(self) -> dict:
        """The OCI state document, as ``runc state`` prints it."""
        if self.damaged:
            self._raise_damaged(self.damaged)
        status = self.status
        d = self._data
        s = {"ociVersion": d["ociVersion"], "id": self.id,
             "pid": d["pid"] if status != "stopped" else 0, "status": status,
             "bundle": d["bundle"], "rootfs": d["rootfs"], "created": d["created"],
             "owner": d.get("owner", "")}
        if d.get("annotations"):
            s["annotations"] = d["annotations"]
        return s

    def oci_state(self, status=None) -> dict:
        """The state given to hooks (spec's state schema); no ``pid`` once stopped."""
        status = status or self.status
        d = self._data
        s = {"ociVersion": d["ociVersion"], "id": self.id, "status": status,
             "pid": d["pid"], "bundle": d["bundle"]}
        if status == "stopped":
            # as runc (pid 0, omitted): a stopped container's pid may belong to
            # another process by now; a poststop hook must not act on it
            del s["pid"]
        if d.get("annotations"):
            s["annotations"] = d["annotations"]
        return s

    # ---- verbs ---------------------------------------------------------------
    def start(self, notify_socket=None, wait_ready=True):
        """Start a created container: runs ``process.args``.

        With ``notify_socket`` (and a container built with one), returns once
        the container has sent ``READY=`` (passed on to that socket) or died;
        with ``wait_ready=False`` at once, a child process passing it on while
        :meth:`wait` waits (``kago run`` in the foreground)."""
        from kago.container.start import start
        start(self, notify_socket, wait_ready)

    def kill(self, signal="SIGTERM", all: bool = False):
        """Send ``signal`` (name, number or numeric string) to init, or with
        ``all`` to every process in the container's cgroup."""
        from kago.container.kill import kill
        kill(self, signal, all)

    def delete(self, force: bool = False):
        """Remove a stopped (or created) container; ``force`` kills a running one."""
        from kago.container.delete import delete
        delete(self, force)

    def wait(self) -> int:
        """``run`` only (this process is init's reaper): wait for the container
        to exit, forwarding signals; returns the exit status as a shell does."""
        from kago.container.run import wait
        try:
            return wait(self)
        finally:
            if self._notify_child:      # start(wait_ready=False)'s forwarder
                try:
                    os.kill(self._notify_child, 9)
                except ProcessLookupError:
                    pass
                os.waitpid(self._notify_child, 0)
                self._notify_child = 0

    def exec(self, process: dict, *, detach: bool = False, pid_file=None,
             console_socket=None, preserve_fds: int = 0, cgroup=None,
             ignore_paused: bool = False) -> int:
        """Run ``process`` (an OCI process object) inside the container.

        Foreground: waits, forwarding signals, and returns its exit status.
        ``detach``: returns its host pid once it has exec'd.  ``cgroup``: runc's
        ``--cgroup`` value(s), a string or a list (``PATH`` or
        ``CTRL[,CTRL]:PATH``): a sub-cgroup of the container's to join."""
        from kago.container.exec import exec_process
        return exec_process(self, process, detach=detach, pid_file=pid_file,
                            console_socket=console_socket, preserve_fds=preserve_fds,
                            cgroup=cgroup, ignore_paused=ignore_paused)

    def processes(self) -> list:
        """Host pids of every process in the container's cgroup."""
        cg = self._cgroup()
        if cg.driver == "none":       # rootless, no cgroup: init's pid namespace
            return sorted(pidns_members(self.pid, self.config().get("namespaces", [])))
        return sorted(cg.pids())

    def ps(self, fmt: str = "table", ps_args=None) -> str:
        """``kago ps``: the processes as a ps table or a JSON pid array."""
        from kago.container.ps import ps
        return ps(self, fmt, ps_args)

    def pause(self):
        """Freeze every process of a running container (``paused``)."""
        from kago.container.pause import pause
        pause(self)

    def resume(self):
        """Thaw a paused container (``running`` again)."""
        from kago.container.pause import resume
        resume(self)

    def stats(self) -> dict:
        """The cgroup statistics, as the ``data`` of a runc ``stats`` event."""
        from kago.container.events import stats
        return stats(self)

    def events(self, interval: float = 5, stats: bool = False):
        """A generator of runc-shaped events: ``{"type": "stats", "id", "data"}``
        every ``interval`` seconds and ``{"type": "oom", "id"}`` at each OOM
        kill, until the container stops.  ``stats``: one stats event, then stop."""
        from kago.container.events import events
        return events(self, interval, stats)

    def update(self, resources: dict):
        """Apply ``resources`` (an OCI ``linux.resources`` object, or a part of
        one) to the running container's cgroup."""
        from kago.container.update import update
        update(self, resources)

    def checkpoint(self, image_path=None, **options) -> str:
        """Dump the container with CRIU into ``image_path`` (default
        ``./checkpoint``); ``options`` are runc's checkpoint flags
        (:class:`kago.container.checkpoint.CheckpointOptions`: ``leave_running``,
        ``pre_dump``, ``parent_path``, ``tcp_established``, ...).  Unless
        ``leave_running`` or ``pre_dump``, the container is gone afterwards
        (criu killed it; it is deleted).  Returns the image directory."""
        from kago.container.checkpoint import CheckpointOptions, checkpoint
        return checkpoint(self, CheckpointOptions(image_path=image_path, **options))

    def __repr__(self):
        return f"<Container {self.id} {self.status}>"


def pidns_members(pid, namespaces) -> list:
    """A container without a cgroup of its own (rootless): init and, with a
    pid namespace of its own, every process in that namespace (what this
    caller may inspect: a user's container, in a user namespace it owns)."""
    if not pid:
        return []
    from kago.container.state import own_pidns
    if not own_pidns(namespaces):
        return [pid]
    try:
        st = os.stat(f"/proc/{pid}/ns/pid")
    except OSError:
        return []
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            s = os.stat(f"/proc/{name}/ns/pid")
        except OSError:
            continue
        if s.st_ino == st.st_ino and s.st_dev == st.st_dev:
            out.append(int(name))
    return out
