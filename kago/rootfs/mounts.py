"""mounts[] options: the flag tables and safe resolution inside the rootfs."""

import errno
from kago import _os as os

from kago import sys as ksys
from kago.errors import SyscallError

# option -> (clear?, flag)
FLAGS = {
    "acl": (False, ksys.MS_POSIXACL),
    "async": (True, ksys.MS_SYNCHRONOUS),
    "atime": (True, ksys.MS_NOATIME),
    "bind": (False, ksys.MS_BIND),
    "defaults": (False, 0),
    "dev": (True, ksys.MS_NODEV),
    "diratime": (True, ksys.MS_NODIRATIME),
    "dirsync": (False, ksys.MS_DIRSYNC),
    "exec": (True, ksys.MS_NOEXEC),
    "iversion": (False, ksys.MS_IVERSION),
    "lazytime": (False, ksys.MS_LAZYTIME),
    "loud": (True, ksys.MS_SILENT),
    "mand": (False, ksys.MS_MANDLOCK),
    "noacl": (True, ksys.MS_POSIXACL),
    "noatime": (False, ksys.MS_NOATIME),
    "nodev": (False, ksys.MS_NODEV),
    "nodiratime": (False, ksys.MS_NODIRATIME),
    "noexec": (False, ksys.MS_NOEXEC),
    "noiversion": (True, ksys.MS_IVERSION),
    "nolazytime": (True, ksys.MS_LAZYTIME),
    "nomand": (True, ksys.MS_MANDLOCK),
    "norelatime": (True, ksys.MS_RELATIME),
    "nostrictatime": (True, ksys.MS_STRICTATIME),
    "nosuid": (False, ksys.MS_NOSUID),
    "nosymfollow": (False, ksys.MS_NOSYMFOLLOW),
    "rbind": (False, ksys.MS_BIND | ksys.MS_REC),
    "relatime": (False, ksys.MS_RELATIME),
    "remount": (False, ksys.MS_REMOUNT),
    "ro": (False, ksys.MS_RDONLY),
    "rw": (True, ksys.MS_RDONLY),
    "silent": (False, ksys.MS_SILENT),
    "strictatime": (False, ksys.MS_STRICTATIME),
    "suid": (True, ksys.MS_NOSUID),
    "sync": (False, ksys.MS_SYNCHRONOUS),
    "symfollow": (True, ksys.MS_NOSYMFOLLOW),
}

PROPAGATION = {
    "private": ksys.MS_PRIVATE,
    "shared": ksys.MS_SHARED,
    "slave": ksys.MS_SLAVE,
    "unbindable": ksys.MS_UNBINDABLE,
    "rprivate": ksys.MS_PRIVATE | ksys.MS_REC,
    "rshared": ksys.MS_SHARED | ksys.MS_REC,
    "rslave": ksys.MS_SLAVE | ksys.MS_REC,
    "runbindable": ksys.MS_UNBINDABLE | ksys.MS_REC,
}

# recursive attributes through mount_setattr(2): option -> (clear?, attr)
RECURSIVE = {
    "rro": (False, ksys.MOUNT_ATTR_RDONLY),
    "rrw": (True, ksys.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, ksys.MOUNT_ATTR_NOSUID),
    "rsuid": (True, ksys.MOUNT_ATTR_NOSUID),
    "rnodev": (False, ksys.MOUNT_ATTR_NODEV),
    "rdev": (True, ksys.MOUNT_ATTR_NODEV),
    "rnoexec": (False, ksys.MOUNT_ATTR_NOEXEC),
    "rexec": (True, ksys.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, ksys.MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, ksys.MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, ksys.MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, ksys.MOUNT_ATTR__ATIME),
    "rnoatime": (False, ksys.MOUNT_ATTR_NOATIME),
    "ratime": (True, ksys.MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, ksys.MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, ksys.MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, ksys.MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, ksys.MOUNT_ATTR_NOSYMFOLLOW),
}

# options kago accepts and handles elsewhere (or deliberately ignores)
EXTRA = ("tmpcopyup",)

# idmapped bind mounts (runtime-spec 1.2): option -> MOUNT_ATTR_IDMAP applied
# recursively (AT_RECURSIVE: every mount of an rbind, not only its top)?
IDMAP = {"idmap": False, "ridmap": True}


class MountOpts:
    __slots__ = ("flags", "clear", "propagation", "rec_set", "rec_clr", "data", "extra",
                 "idmap")

    def __init__(self):
        self.flags = 0
        self.clear = 0
        self.propagation = []
        self.rec_set = 0
        self.rec_clr = 0
        self.data = []
        self.extra = []
        self.idmap = None       # "idmap" / "ridmap" (kago.spec refuses both)


def parse_options(options, where="") -> MountOpts:
    o = MountOpts()
    for opt in options or ():
        f = FLAGS.get(opt)
        if f is not None:
            clear, flag = f
            if clear:
                o.flags &= ~flag
                o.clear |= flag
            else:
                o.flags |= flag
            continue
        p = PROPAGATION.get(opt)
        if p is not None:
            o.propagation.append(p)
            continue
        r = RECURSIVE.get(opt)
        if r is not None:
            clear, attr = r
            if clear:
                o.rec_clr |= attr
                if attr & ksys.MOUNT_ATTR__ATIME == attr and attr:
                    pass
            else:
                o.rec_set |= attr
                if attr in (ksys.MOUNT_ATTR_NOATIME, ksys.MOUNT_ATTR_STRICTATIME,
                            ksys.MOUNT_ATTR_RELATIME):
                    o.rec_clr |= ksys.MOUNT_ATTR__ATIME
            continue
        if opt in EXTRA:
            o.extra.append(opt)
            continue
        if opt in IDMAP:
            o.idmap = opt
            continue
        o.data.append(opt)
    return o


def is_bind(m) -> bool:
    """A bind mount: type "bind", or a "bind"/"rbind" option (as runc)."""
    if m.get("type") == "bind":
        return True
    opts = m.get("options") or ()
    return "bind" in opts or "rbind" in opts


def idmapping(m):
    """An idmapped mount's (recursive, uidMappings, gidMappings), else None.

    Idmapped: an ``idmap``/``ridmap`` option or non-empty mappings (empty ones
    with neither option are a plain mount, runtime-spec #1224).  Mappings None:
    the container's user namespace is the mapping (``idmap`` alone, runc 1.2).
    ``recursive``: ``ridmap`` - MOUNT_ATTR_IDMAP on every mount of an rbind."""
    opts = m.get("options") or ()
    uids, gids = m.get("uidMappings"), m.get("gidMappings")
    rec = "ridmap" in opts
    if not (uids or gids or rec or "idmap" in opts):
        return None
    if not uids and not gids:
        return rec, None, None
    return rec, uids, gids


def _components(path: str):
    return [c for c in path.split("/") if c and c != "."]


def open_in_root(rootfd: int, path: str, *, create: str | None = None,
                 mode: int = 0o755, _depth: int = 0) -> int:
    """Open ``path`` (resolved as if ``rootfd`` were /) as an O_PATH fd.

    Symlinks, ``..`` and absolute links are all resolved inside the root
    (openat2 RESOLVE_IN_ROOT), so nothing in the image can point us at the
    host.  With ``create`` = "dir" or "file", missing components are made
    (directories, and the last one as ``create`` says); a dangling symlink on
    the way has its target made, resolved inside the root too."""
    rel = "/".join(_components(path)) or "."
    resolve = ksys.RESOLVE_IN_ROOT | ksys.RESOLVE_NO_MAGICLINKS
    try:
        return ksys.openat2(rootfd, rel, os.O_PATH, 0, resolve)
    except SyscallError as e:
        if e.errno != errno.ENOENT or create is None:
            raise
    comps = _components(path)
    for i in range(1, len(comps) + 1):
        sub = "/".join(comps[:i])
        try:
            fd = ksys.openat2(rootfd, sub, os.O_PATH, 0, resolve)
            os.close(fd)
            continue
        except SyscallError as e:
            if e.errno != errno.ENOENT:
                raise
        parent = "/".join(comps[:i - 1]) or "."
        pfd = ksys.openat2(rootfd, parent, os.O_PATH | os.O_DIRECTORY, 0, resolve)
        kind = create if i == len(comps) else "dir"
        link = None
        try:
            if kind == "file":
                fd = os.open(comps[i - 1], os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=pfd)
                os.close(fd)
            else:
                os.mkdir(comps[i - 1], mode, dir_fd=pfd)
        except OSError as e:
            # EEXIST (mkdir) / ELOOP (O_NOFOLLOW): a dangling symlink, or a race
            link = _readlink(comps[i - 1], pfd)
            if link is None and not isinstance(e, FileExistsError):
                raise SyscallError(e.errno, "mkdir" if create != "file" else "create",
                                   path) from None
        finally:
            os.close(pfd)
        if link is not None:
            if _depth >= 40:
                raise SyscallError(errno.ELOOP, "mkdir", path)
            if not link.startswith("/"):
                link = "/" + parent + "/" + link
            os.close(open_in_root(rootfd, link, create=kind, mode=mode, _depth=_depth + 1))
    return ksys.openat2(rootfd, rel, os.O_PATH, 0, resolve)


def _readlink(name, dir_fd):
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None


def fdpath(fd: int) -> str:
    return f"/proc/self/fd/{fd}"
