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


def read_json(path):
    with open(path, "rb") as f:
        return json.loads(f.read())


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
    fnmatch...: several ms for three files)."""
    try:
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
            self.fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise self._not_found() from None
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
