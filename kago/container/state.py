"""State on disk: ``<root>/<id>/state.json`` and ``kago.json``.

state.json holds the OCI state plus what kago needs to recognise its init
(pid *and* start time, so a reused pid is never mistaken for the container);
kago.json (KagoConfig) is the small subset of config.json later verbs need.
Writes are atomic (temp file, rename: a reader sees the old or the new
file, never half of one; no fsync - state under /run does not outlive a
reboot, and runc does not sync either); :class:`Lock` serialises verbs
on one id with flock(2) on the state directory.
"""

from kago import _json as json
from kago import _os as os   # not os: see kago/_os.py

DEFAULT_ROOT = "/run/kago"
STATE = "state.json"
CONFIG = "kago.json"
FIFO = "exec.fifo"

_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def validate_id(cid: str):
    if not cid or cid in (".", "..") or not set(cid) <= _ID_OK or len(cid) > 1024:
        from kago.errors import InvalidArgument
        raise InvalidArgument(f"invalid id format: {cid}")


class Damaged(ValueError):
    """A state file that is not what kago wrote (``str()``: what is wrong)."""


_KINDS = {0o010000: "a FIFO", 0o020000: "a character device", 0o040000: "a directory",
          0o060000: "a block device", 0o120000: "a symbolic link", 0o140000: "a socket"}
MAX_SIZE = 64 << 20      # annotations may be large; anything bigger is not ours


def read_regular(path, dir_fd=None) -> bytes:
    """The bytes of the regular file at ``path`` (relative to ``dir_fd`` if
    given).  Anything else (a FIFO, which would block the reader, a symlink, a
    directory, a device) is never opened: :class:`Damaged`.
    FileNotFoundError when it is missing."""
    name = os.path.basename(path)
    st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    if st.st_mode & 0o170000 != 0o100000:
        raise Damaged(f"{name} is {_KINDS.get(st.st_mode & 0o170000, 'not a file')}, "
                      "not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as e:  # ELOOP: swapped for a symlink since the lstat
        raise Damaged(f"open {name}: {e.strerror}") from None
    try:
        st2 = os.fstat(fd)
        if st2.st_mode & 0o170000 != 0o100000 or st2.st_ino != st.st_ino \
                or st2.st_dev != st.st_dev:
            raise Damaged(f"{name} changed while it was opened")
        if st2.st_size > MAX_SIZE:
            raise Damaged(f"{name} is too large ({st2.st_size} bytes)")
        chunks = []
        while True:
            b = os.read(fd, max(st2.st_size + 1, 4096))
            if not b:
                break
            chunks.append(b)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def read_json(path, dir_fd=None):
    """JSON from the regular file at ``path``: :class:`Damaged` if it is not
    one or not valid JSON (truncated, garbage, nested too deep)."""
    data = read_regular(path, dir_fd)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise Damaged(f"{os.path.basename(path)} is not valid JSON") from None


def _read_checked(state_dir, name, check, *args):
    """``name`` in ``state_dir`` (itself never a symlink), through ``check``."""
    try:
        dfd = os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        if e.errno in (20, 40):     # ENOTDIR, ELOOP: a file or a symlink, not a dir
            raise Damaged(f"{os.path.basename(state_dir)} is not a state directory") \
                from None
        raise
    try:
        data = read_json(name, dfd)
    finally:
        os.close(dfd)
    why = check(data, *args)
    if why:
        raise Damaged(f"{name}: {why}")
    return data


def load_state(state_dir, cid):
    """state.json of container ``cid``, checked: FileNotFoundError when it is
    missing (or ``state_dir`` is), :class:`Damaged` when it is not what
    create wrote."""
    return _read_checked(state_dir, STATE, check_state, cid)


def load_config(state_dir):
    """kago.json, checked (FileNotFoundError / :class:`Damaged`)."""
    return _read_checked(state_dir, CONFIG, check_config)


# --- what create wrote, checked once where it is read: a damaged file is
# --- reported as such, never a KeyError or TypeError further on ------------
def _int(v) -> bool:
    return type(v) is int           # not bool


def _strmap(v) -> bool:
    return type(v) is dict and all(type(k) is str and type(x) is str for k, x in v.items())


def check_state(d, cid) -> str:
    """What is wrong with state.json ``d`` ("" when nothing is)."""
    if type(d) is not dict:
        return "not a JSON object"
    for k in ("ociVersion", "bundle", "rootfs", "created"):
        if type(d.get(k)) is not str:
            return f"{k}: missing or not a string"
    if d.get("id", cid) != cid:
        return "id: not the container's id"
    if not _int(d.get("pid")) or d["pid"] < 0:
        return "pid: missing or not a pid"
    if not _int(d.get("start_time")):
        return "start_time: missing or not an integer"
    if type(d.get("status", "")) is not str or type(d.get("owner", "")) is not str:
        return "status or owner: not a string"
    cr = d.get("creator")
    if cr is not None and (type(cr) is not list or len(cr) != 2
                           or not _int(cr[0]) or not _int(cr[1])):
        return "creator: not [pid, start time]"
    if d.get("annotations") is not None and not _strmap(d["annotations"]):
        return "annotations: not an object of strings"
    if not cgroup_dirs_ok(d.get("cgroup_dirs", {})):
        return "cgroup_dirs: not cgroup directories"
    if type(d.get("cgroup_path", "")) is not str or \
            type(d.get("cgroup_made", False)) is not bool or \
            type(d.get("own_pidns", True)) is not bool:
        return "cgroup_path, cgroup_made or own_pidns: wrong type"
    return ""


def cgroup_dirs_ok(dirs) -> bool:
    """mountpoint -> a directory strictly inside it, spelled once (no ``..``)."""
    if not _strmap(dirs):
        return False
    norm = os._path_normpath
    for mp, d in dirs.items():
        if not mp.startswith("/") or not d.startswith(mp.rstrip("/") + "/") \
                or norm(d) != d:
            return False
    return True


def _cgroup_json_ok(c) -> bool:
    if type(c) is not dict or type(c.get("path")) is not str:
        return False
    if c.get("driver") == "systemd":
        return type(c.get("slice")) is str and type(c.get("unit")) is str \
            and _cgroup_json_ok(c.get("fs")) and cgroup_dirs_ok(c.get("dirs", {}))
    if c.get("driver") == "none":       # rootless: no cgroup of its own
        return c.get("dirs", {}) == {}
    if c.get("driver") not in (None, "v1", "v2"):
        return False
    return cgroup_dirs_ok(c.get("dirs", {})) and \
        (c.get("subsys") is None or _strmap(c["subsys"]))


def check_config(c) -> str:
    """What is wrong with kago.json ``c`` ("" when nothing is)."""
    if type(c) is not dict:
        return "not a JSON object"
    if not _cgroup_json_ok(c.get("cgroup")):
        return "cgroup: not what kago wrote"
    hooks = c.get("hooks", {})
    if type(hooks) is not dict or not all(
            type(v) is list and all(type(h) is dict and type(h.get("path")) is str
                                    for h in v) for v in hooks.values()):
        return "hooks: not lists of hooks"
    ns = c.get("namespaces", [])
    if type(ns) is not list or not all(type(n) is dict and type(n.get("type")) is str
                                       for n in ns):
        return "namespaces: not a list of namespaces"
    if type(c.get("process", {})) is not dict or \
            type(c.get("cgroup_made", True)) is not bool:
        return "process or cgroup_made: wrong type"
    return ""


def own_pidns(namespaces) -> bool:
    """A new pid namespace of its own (not the host's, not one joined by path)?"""
    return any(n.get("type") == "pid" and not n.get("path") for n in namespaces)


def write_json_atomic(path, data):
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(data, separators=(",", ":")).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def write_text_atomic(path, text, mode=0o644):
    d = os.path.dirname(path) or "."
    tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def remove_tree(path):
    """rm -rf for a state directory, without shutil (which imports re, enum,
    fnmatch...: several ms for three files).  A symlink is removed, never
    followed."""
    try:
        if os.lstat(path).st_mode & 0o170000 == 0o120000:
            os.unlink(path)
            return
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                remove_tree(e.path)
            else:
                os.unlink(e.path)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


class Lock:
    """flock(2) on the container's state directory."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self.fd = -1

    def __enter__(self):
        """Lock; :class:`ContainerNotFound` if the directory is gone, or went
        while we waited (another verb deleted the container)."""
        import fcntl
        try:
            self.fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                              | os.O_CLOEXEC)
        except OSError as e:    # ELOOP: the entry is a symlink, not a state dir
            if isinstance(e, (FileNotFoundError, NotADirectoryError)) or e.errno == 40:
                raise self._not_found() from None
            raise
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        if os.fstat(self.fd).st_nlink == 0:
            os.close(self.fd)
            self.fd = -1
            raise self._not_found()
        return self

    def _not_found(self):
        from kago.errors import ContainerNotFound
        return ContainerNotFound(os.path.basename(self.state_dir.rstrip("/")))

    def __exit__(self, *exc):
        os.close(self.fd)
        self.fd = -1


def proc_start_time(pid: int):
    """(state letter, start time in clock ticks) of ``pid``, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])


def rfc3339_now() -> str:
    import time
    ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    frac_s = f"{frac:09d}".rstrip("0")
    return f"{base}.{frac_s}Z" if frac_s else f"{base}Z"

