"""The container's root filesystem: mounts, devices, pivot_root, masked and
readonly paths.  Runs in init, inside the new mount namespace.

Every destination is resolved inside the rootfs (openat2 RESOLVE_IN_ROOT) and
mounted onto the resolved fd through /proc/self/fd, so a symlink in the image
(or one swapped in during setup) can't send a mount onto the host.
"""

import errno
from kago import _os as os
import _stat as stat

from kago import sys as ksys
from kago import _json as json
from kago.errors import KagoError, SpecError, SyscallError
from kago.rootfs.mounts import (PROPAGATION, fdpath, idmapping, is_bind, open_in_root,
                                parse_options)

DEFAULT_DEVICES = (
    # path, type, major, minor, mode
    ("/dev/null", "c", 1, 3, 0o666),
    ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666),
    ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666),
    ("/dev/tty", "c", 5, 0, 0o666),
)

DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)

_LOCKED = (ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC | ksys.MS_NOATIME
           | ksys.MS_NODIRATIME | ksys.MS_RELATIME)


def _unescape(s):
    """A mountinfo path: space, tab, newline and backslash are octal escapes."""
    if "\\" not in s:
        return s
    for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        s = s.replace(esc, ch)
    return s


def _wrap(e: SyscallError, call, path, detail):
    return SyscallError(e.errno, call, path, detail)


def bind_sources(spec, bundle) -> list:
    """[(index, source)] of the bind mounts of ``mounts[]`` (relative sources
    are the bundle's)."""
    out = []
    for i, m in enumerate(spec.get("mounts") or ()):
        if is_bind(m):
            src = m.get("source") or ""
            out.append((i, src if os.path.isabs(src) else os.path.join(bundle, src)))
    return out


def send_bind_sources(ns_pid, spec, bundle, ch):
    """Main, once the intermediate has its namespaces (asked for with a user
    namespace and bind mounts, or idmapped mounts): a child of main - the
    host's credentials - enters the intermediate's mount namespace and opens
    bind sources there for init, sending the fds to the intermediate over
    ``ch`` (main's end, inherited).

    - With a user namespace, every bind source, O_PATH: init, the container's
      root, may not reach one kago can (a 0700 directory of the host's root).
      Opened inside the container's namespace, they are its (locked) copies
      of the host's mounts, as a bind by path there would be (runc 1.1's
      mount source fds).
    - An idmapped mount (with or without a user namespace): a detached clone
      of the source (open_tree OPEN_TREE_CLONE, AT_RECURSIVE for an rbind)
      with MOUNT_ATTR_IDMAP set (AT_RECURSIVE for ridmap), which init moves
      into place (move_mount), as runc 1.2 does.  The mapping's user
      namespace: the mount's uidMappings/gidMappings written to a helper
      process made for them (one per distinct mapping, reaped before the
      fds go), or, for ``idmap`` alone, the container's own (the
      intermediate's).

    Errors go the same way (the intermediate re-raises them to main);
    returns the child's exit status."""
    userns = any(n.get("type") == "user"
                 for n in (spec.get("linux") or {}).get("namespaces") or ())
    mounts = spec.get("mounts") or ()
    todo = [(i, src, idmapping(mounts[i])) for i, src in bind_sources(spec, bundle)]
    if not userns:      # init binds the others by path itself
        todo = [t for t in todo if t[2]]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            nsfds = {}      # mapping -> user namespace fd (closed with the child)
            for i, src, idm in todo:
                if idm and idm[1] is not None:
                    key = _mapping_key(idm)
                    if key not in nsfds:
                        nsfds[key] = userns_fd(idm[1], idm[2], f"mounts[{i}]")
            mntfd = os.open(f"/proc/{ns_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            ctr_userns = os.open(f"/proc/{ns_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
            if os.geteuid() != 0:
                # an ordinary user may enter a mount namespace only from the
                # user namespace that owns it (its own: the caller's access,
                # plus what the user has over the ids it mapped anyway)
                ksys.setns(ctr_userns, ksys.CLONE_NEWUSER, "the container's user namespace")
            ksys.setns(mntfd, ksys.CLONE_NEWNS, "the container's mount namespace")
            fds = []
            for i, src, idm in todo:
                if idm:
                    nsfd = ctr_userns if idm[1] is None else nsfds[_mapping_key(idm)]
                    fds.append(_idmapped_tree(i, src, mounts[i], idm[0], nsfd))
                    continue
                try:
                    fds.append(os.open(src, os.O_PATH | os.O_CLOEXEC))
                except OSError as e:
                    raise SpecError(f"mounts[{i}].source",
                                    f"bind source {src}: {e.strerror}") from None
            for k in range(0, max(len(todo), 1), _FDS_PER_MSG):   # one at least
                ch.sources([t[0] for t in todo[k:k + _FDS_PER_MSG]],
                           fds[k:k + _FDS_PER_MSG], k + _FDS_PER_MSG < len(todo))
            code = 0
        except BaseException as e:  # noqa: B902 - to the intermediate, then main
            ch.send_error(e)
            code = 0
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def _mapping_key(idm):
    return tuple((m["containerID"], m["hostID"], m["size"]) for m in idm[1]), \
        tuple((m["containerID"], m["hostID"], m["size"]) for m in idm[2])


def _idmapped_tree(i, src, m, recursive, nsfd) -> int:
    """A detached clone of ``src`` with MOUNT_ATTR_IDMAP (runc 1.2's words)."""
    flags = ksys.OPEN_TREE_CLONE | ksys.OPEN_TREE_CLOEXEC
    if "rbind" in (m.get("options") or ()):
        flags |= ksys.AT_RECURSIVE
    try:
        fd = ksys.open_tree(ksys.AT_FDCWD, src, flags)
    except SyscallError as e:
        raise SyscallError(e.errno, "open_tree(OPEN_TREE_CLONE)", src,
                           f"mounts[{i}]") from None
    try:
        ksys.mount_setattr(fd, "", ksys.AT_EMPTY_PATH | (ksys.AT_RECURSIVE if recursive
                                                         else 0),
                           ksys.MOUNT_ATTR_IDMAP, userns_fd=nsfd)
    except SyscallError as e:
        os.close(fd)
        hint = {errno.EINVAL: " (maybe the filesystem used doesn't support idmap mounts "
                              "on this kernel?)",
                # the kernel wants CAP_SYS_ADMIN over the filesystem's user namespace
                errno.EPERM: " (the filesystem is not kago's user namespace's: a rootless "
                             "kago can't idmap it)"}.get(e.errno, "")
        raise KagoError(f"mounts[{i}]: failed to set MOUNT_ATTR_IDMAP on {src}: "
                        f"{os.strerror(e.errno)}{hint}") from None
    return fd


def userns_fd(uid_maps, gid_maps, where="") -> int:
    """An fd of a new user namespace with these maps (runc's userns.Handles):
    a helper child unshares one and waits; we write its maps, open its
    /proc/PID/ns/user, let it go and reap it - the fd keeps the namespace.
    The helper dies with us (PDEATHSIG, and the pipe it waits on closes)."""
    go_r, go_w = os.pipe()          # the helper waits for EOF on go_r
    rep_r, rep_w = os.pipe()        # "0" once unshared, or the errno
    pid = os.fork()
    if pid == 0:
        try:
            os.close(go_w)
            os.close(rep_r)
            ksys.prctl(ksys.PR_SET_PDEATHSIG, 9)
            try:
                ksys.unshare(ksys.CLONE_NEWUSER)
                os.write(rep_w, b"0")
            except SyscallError as e:
                os.write(rep_w, str(e.errno).encode())
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(rep_w)
    try:
        rep = os.read(rep_r, 16)
        if rep != b"0":
            raise SyscallError(int(rep) if rep.isdigit() else errno.EIO, "unshare",
                               None, f"{where}: the id-mapping helper's user namespace")
        # setgroups "deny" first, as runc's helper: then gid_map needs no
        # CAP_SETGID (a rootless kago may map its own gid); the helper runs nothing
        for name, maps in (("setgroups", None), ("uid_map", uid_maps), ("gid_map", gid_maps)):
            data = b"deny" if maps is None else "".join(
                f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps).encode()
            try:
                fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, data)      # the kernel takes a map in one write
                finally:
                    os.close(fd)
            except OSError as e:
                raise SyscallError(e.errno, "write", f"/proc/{pid}/{name}",
                                   f"{where}: the id mapping") from None
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(go_w)
        os.close(rep_r)
        os.waitpid(pid, 0)


_FDS_PER_MSG = 200      # SCM_RIGHTS takes at most 253


def _own_cgroup_dir(mp, fstype):
    """Hierarchy ``mp``'s directory this process is in: what a rootless
    container without a cgroup of its own (it stays in the caller's) sees
    at /sys/fs/cgroup, as runc binds it - never the whole hierarchy."""
    from kago import cgroups
    names = os.path.basename(mp).split(",")
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, p = line.rstrip("\n").split(":", 2)
                if fstype == "cgroup2":
                    if ctrls == "":
                        return cgroups.join(mp, p)
                elif ctrls and any(n in ctrls.split(",") or "name=" + n in ctrls.split(",")
                                   for n in names):
                    return cgroups.join(mp, p)
    except OSError:
        pass
    raise SyscallError(2, "mount", f"cgroup {mp}", "no cgroup of this process in it")


class Rootfs:
    def __init__(self, ctx):
        self.ctx = ctx
        self.spec = ctx.spec
        self.linux = ctx.spec.get("linux") or {}
        self.root = ctx.rootfs
        self.rootfd = -1
        self.userns = ctx.userns
        self._ro_later = []     # O_PATH fds of mounts made read-only in finalize
        self.src_fds = getattr(ctx, "bind_fds", None) or {}   # send_bind_sources
        # "mount" in linux.namespaces (new or joined); else see leave_to
        self.own_mntns = any(n["type"] == "mount" for n in ctx.namespaces)

    # ---- before the createContainer hooks ---------------------------------
    def prepare(self):
        prop = self.linux.get("rootfsPropagation") or ""
        flag = PROPAGATION.get(prop, ksys.MS_SLAVE | ksys.MS_REC)
        if flag & ksys.MS_UNBINDABLE:
            # the rootfs can't be bound from an unbindable "/": private now,
            # unbindable once it is the root (_root_propagation, as crun)
            flag = ksys.MS_PRIVATE | (flag & ksys.MS_REC)
        ksys.mount(None, "/", None, flag)
        self._parent_private()
        ksys.mount(self.root, self.root, None, ksys.MS_BIND | ksys.MS_REC)
        self.rootfd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        dev_bound = False
        binds = set()
        mounts = self.spec.get("mounts") or ()
        dests = [m.get("destination") or "" for m in mounts]
        for i, m in enumerate(mounts):
            # a read-only tmpfs that later mounts go under (their mountpoints
            # are made in it), or /dev (its nodes), is mounted writable and
            # made read-only in finalize, as runc does.  Never a bind: its
            # mountpoints would be made in the host's directory
            d = dests[i]
            under = d.rstrip("/") + "/"
            later = d == "/dev" or (m.get("type") == "tmpfs" and any(
                x.startswith(under) for x in dests[i + 1:]))
            bound = self.mount(i, m, defer_ro=later)
            if bound is not None:
                binds.add(bound)
                # destinations have one spelling (kago.spec.clean): "//dev" is "/dev"
                if m.get("destination") == "/dev":
                    dev_bound = True
        if not dev_bound and binds:
            # /dev reached through a symlink of the image ("dev -> data", a bind
            # at /data): a bind is never filled with device nodes, however named
            dev_bound = self._identity("/dev") in binds
        if not dev_bound:
            self.devices()
            self.dev_symlinks()
        for fd in self.src_fds.values():    # bound (or unused): ours to close
            os.close(fd)
        self.src_fds = {}
        cwd = (self.spec.get("process") or {}).get("cwd")
        if cwd:
            os.close(open_in_root(self.rootfd, cwd, create="dir"))

    def _parent_private(self):
        """pivot_root fails if the rootfs' parent mount is shared: make it private."""
        best, shared = "", False
        try:
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    parts = line.split(" - ")[0].split()
                    mp = parts[4]
                    if (self.root == mp or self.root.startswith(mp.rstrip("/") + "/")) \
                            and len(mp) >= len(best):
                        best = mp
                        shared = any(x.startswith("shared:") for x in parts[6:])
        except OSError:
            return
        if best and shared:
            ksys.mount(None, best, None, ksys.MS_PRIVATE)

    def mount(self, i, m, defer_ro=False):
        where = f"mounts[{i}]"
        dest = m.get("destination") or ""
        typ = m.get("type") or ""
        src = m.get("source") or ""
        o = parse_options(m.get("options"), where + ".options")
        is_bind = typ == "bind" or bool(o.flags & ksys.MS_BIND)
        srcfd = self.src_fds.get(i, -1) if is_bind else -1
        tree = srcfd >= 0 and idmapping(m) is not None   # a detached idmapped clone
        defer_ro = defer_ro and bool(o.flags & ksys.MS_RDONLY) and not is_bind \
            and typ != "cgroup"
        if defer_ro:
            o.flags &= ~ksys.MS_RDONLY
        create = "dir"
        if is_bind:
            if not os.path.isabs(src):
                src = os.path.join(self.ctx.bundle, src)
            try:
                st = os.fstat(srcfd) if srcfd >= 0 else os.stat(src)
            except OSError as e:
                raise SpecError(where + ".source",
                                f"bind source {src}: {e.strerror}") from None
            if not stat.S_ISDIR(st.st_mode):
                create = "file"
        if typ == "cgroup":
            return self._mount_cgroup(i, dest, o)
        if typ in ("proc", "sysfs") or dest in ("/proc", "/sys"):
            self._ordinary_dir(dest, "bind" if is_bind else typ)
        try:
            fd = open_in_root(self.rootfd, dest, create=create)
        except SyscallError as e:
            raise _wrap(e, "mount", dest, f"{where}: resolve destination") from None
        try:
            try:
                if tree:
                    # idmapped, cloned by kago (send_bind_sources): moved into place
                    ksys.move_mount(srcfd, "", fd, "", ksys.MOVE_MOUNT_F_EMPTY_PATH
                                    | ksys.MOVE_MOUNT_T_EMPTY_PATH)
                elif is_bind:
                    # opened by kago with the host's credentials, if any
                    # (send_bind_sources): resolved once, never by init
                    ksys.mount(fdpath(srcfd) if srcfd >= 0 else src, fdpath(fd), None,
                               ksys.MS_BIND | (o.flags & ksys.MS_REC))
                if is_bind:     # the flags of the bind itself (remount)
                    rest = o.flags & ~(ksys.MS_BIND | ksys.MS_REC | ksys.MS_REMOUNT)
                    if rest:
                        fd = self._reopen(fd, dest)
                        self._remount(fd, rest, o.clear)
                else:
                    data = ",".join(o.data) or None
                    label = self.linux.get("mountLabel")
                    if label and typ not in ("mqueue", "sysfs", "proc"):
                        # runc: context="<mountLabel>" (not on proc/sysfs/mqueue)
                        from kago.security import selinux
                        data = selinux.mount_data(data or "", label) or None
                    ksys.mount(src or typ, fdpath(fd), typ, o.flags & ~ksys.MS_REMOUNT, data)
                if o.propagation or o.rec_set or o.rec_clr:
                    fd = self._reopen(fd, dest)
                    for p in o.propagation:
                        ksys.mount(None, fdpath(fd), None, p)
                    if o.rec_set or o.rec_clr:
                        ksys.mount_setattr(fd, "", ksys.AT_EMPTY_PATH | ksys.AT_RECURSIVE,
                                           o.rec_set, o.rec_clr)
                if defer_ro:    # this mount (not what is under it by now)
                    fd = self._reopen(fd, dest)
                    self._ro_later.append(os.dup(fd))
                if is_bind:     # what was bound (a host directory, say): its identity
                    fd = self._reopen(fd, dest)
                    st = os.fstat(fd)
                    return st.st_dev, st.st_ino
            except SyscallError as e:
                what = f"{src or typ} on {dest}"
                raise SyscallError(e.errno, "mount", what,
                                   f"{where}, type {typ or 'bind'}") from None
        finally:
            os.close(fd)

    def _identity(self, path):
        """(st_dev, st_ino) of ``path`` resolved in the rootfs, None if missing."""
        try:
            fd = open_in_root(self.rootfd, path)
        except SyscallError:
            return None
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        return st.st_dev, st.st_ino

    def _ordinary_dir(self, dest, typ):
        """proc and sysfs (and whatever goes on /proc or /sys) only on a real
        directory of the rootfs, never through a symlink (runc's rule)."""
        parent, name = os.path.split(dest)
        if not name:
            return
        pfd = open_in_root(self.rootfd, parent, create="dir")
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        finally:
            os.close(pfd)
        if not stat.S_ISDIR(st.st_mode):
            raise KagoError(f"error mounting {json.dumps(typ)} to rootfs at "
                            f"{json.dumps(dest)}: filesystem {json.dumps(typ)} "
                            "must be mounted on ordinary directory")

    def _reopen(self, fd, dest):
        os.close(fd)
        return open_in_root(self.rootfd, dest)

    def _remount(self, fd, flags, cleared=0):
        try:
            locked = os.statvfs(fdpath(fd)).f_flag & _LOCKED & ~cleared
        except OSError:
            locked = 0
        ksys.mount(None, fdpath(fd), None,
                   ksys.MS_REMOUNT | ksys.MS_BIND | flags | locked)

    def _mount_cgroup(self, i, dest, o):
        from kago import cgroups
        where = f"mounts[{i}]"
        flags = o.flags & (ksys.MS_NOSUID | ksys.MS_NODEV | ksys.MS_NOEXEC)
        ro = o.flags & ksys.MS_RDONLY
        cg = self.ctx.cgroup
        newns = self.ctx.new_cgroupns
        fd = open_in_root(self.rootfd, dest, create="dir")
        try:
            if cgroups.is_v2_host():
                mp_v2 = cgroups.CGROUP_ROOT
                if newns:
                    ksys.mount("cgroup2", fdpath(fd), "cgroup2", flags | ro)
                else:
                    d = next(iter(cg.dirs.values()), None) or _own_cgroup_dir(mp_v2, "cgroup2")
                    ksys.mount(d, fdpath(fd), None, ksys.MS_BIND | ksys.MS_REC)
                    if ro:
                        fd = self._reopen(fd, dest)
                        self._remount(fd, ksys.MS_RDONLY | flags)
                return
            ksys.mount("tmpfs", fdpath(fd), "tmpfs", flags, "mode=755")
            for mp, fstype, superopts in cgroups._hierarchies():
                if os.path.dirname(mp) != cgroups.CGROUP_ROOT:
                    continue      # not the host's (the rootfs's own rbind of /sys, say)
                name = os.path.basename(mp)
                sub = dest.rstrip("/") + "/" + name
                sfd = open_in_root(self.rootfd, sub, create="dir")
                try:
                    if newns:
                        if fstype == "cgroup2":
                            ksys.mount("cgroup2", fdpath(sfd), "cgroup2", flags | ro)
                        else:
                            keep = [x for x in superopts.split(",")
                                    if x not in ("rw", "ro") and not x.startswith("release_agent")]
                            ksys.mount("cgroup", fdpath(sfd), "cgroup", flags | ro,
                                       ",".join(keep))
                    else:
                        d = cg.dirs.get(mp) or _own_cgroup_dir(mp, fstype)
                        ksys.mount(d, fdpath(sfd), None, ksys.MS_BIND | ksys.MS_REC)
                        if ro:
                            sfd = self._reopen(sfd, sub)
                            self._remount(sfd, ksys.MS_RDONLY | flags)
                finally:
                    os.close(sfd)
            if ro:
                fd = self._reopen(fd, dest)
                ksys.mount(None, fdpath(fd), None, ksys.MS_REMOUNT | ksys.MS_RDONLY | flags)
        except SyscallError as e:
            raise SyscallError(e.errno, "mount", f"cgroup on {dest}",
                               f"{where}, type cgroup") from None
        finally:
            os.close(fd)

    # ---- devices -------------------------------------------------------------
    def devices(self):
        seen = set()
        devs = []
        for j, d in enumerate(self.linux.get("devices") or ()):
            devs.append((d, f"linux.devices[{j}]"))
            seen.add(d["path"])     # one spelling (kago.spec.clean)
        for path, typ, major, minor, mode in DEFAULT_DEVICES:
            if path not in seen:
                devs.append(({"path": path, "type": typ, "major": major,
                              "minor": minor, "fileMode": mode, "uid": 0, "gid": 0},
                             None))
        for d, where in devs:
            self._device(d, where)

    def _device(self, d, where):
        path = d["path"]
        typ = d.get("type", "c")
        parent, name = os.path.split(os.path.normpath(path))
        pfd = open_in_root(self.rootfd, parent, create="dir")
        try:
            try:
                os.unlink(name, dir_fd=pfd)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                raise SpecError(where or "linux.devices", f"{path} is a directory") from None
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK,
                    "p": stat.S_IFIFO}[typ]
            mode = d.get("fileMode")
            if mode is None:
                mode = 0o666
            dev = os.makedev(d.get("major", 0), d.get("minor", 0)) if typ != "p" else 0
            bind = self.userns
            if not bind:
                try:
                    os.mknod(name, kind | (mode & 0o7777), dev, dir_fd=pfd)
                except PermissionError:
                    bind = True
            if bind:
                if typ == "p":
                    raise SpecError(where or "linux.devices",
                                    f"cannot create fifo {path} in a user namespace")
                fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o644, dir_fd=pfd)
                os.close(fd)
                fd = open_in_root(self.rootfd, path)
                try:
                    # mknod is not ours to do (a user namespace): the host's
                    # node at the same path, if it is that very device
                    try:
                        hst = os.stat(path)
                    except OSError:
                        hst = None
                    if hst is None or stat.S_IFMT(hst.st_mode) != kind or hst.st_rdev != dev:
                        raise SpecError(where or "linux.devices",
                                        f"cannot bind {path}: no such device on the host"
                                        if hst is None else
                                        f"cannot bind {path}: the host's {path} is "
                                        "another device")
                    ksys.mount(path, fdpath(fd), None, ksys.MS_BIND)
                finally:
                    os.close(fd)
                return
            uid, gid = d.get("uid", 0), d.get("gid", 0)
            os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            if isinstance(e, SyscallError):
                raise
            raise SyscallError(e.errno, "mknod", path, where or "default device") from None
        finally:
            os.close(pfd)

    def dev_symlinks(self):
        dfd = open_in_root(self.rootfd, "/dev", create="dir")
        try:
            links = list(DEV_SYMLINKS)
            if os.path.exists("/proc/kcore"):
                links.append(("/proc/kcore", "/dev/core"))
            for target, link in links:
                try:
                    os.symlink(target, os.path.basename(link), dir_fd=dfd)
                except FileExistsError:
                    pass
            # /dev/ptmx -> pts/ptmx (the container's own devpts instance)
            try:
                os.unlink("ptmx", dir_fd=dfd)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                pass
            os.symlink("pts/ptmx", "ptmx", dir_fd=dfd)
        except OSError as e:
            raise SyscallError(e.errno, "symlink", "/dev", "dev symlinks") from None
        finally:
            os.close(dfd)

    # ---- after the createContainer hooks --------------------------------------
    def pivot(self, no_pivot=False):
        if self.rootfd >= 0:
            os.close(self.rootfd)
            self.rootfd = -1
        if no_pivot:
            self._hide_host_procfs()
            os.chdir(self.root)
            ksys.mount(self.root, "/", None, ksys.MS_MOVE)
            os.chroot(".")
            os.chdir("/")
            self._root_propagation()
            return
        oldroot = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        newroot = os.open(self.root, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(newroot)
            ksys.pivot_root(".", ".")
            os.fchdir(oldroot)
            ksys.mount(None, ".", None, ksys.MS_SLAVE | ksys.MS_REC)
            ksys.umount2(".", ksys.MNT_DETACH)
            os.chdir("/")
        finally:
            os.close(oldroot)
            os.close(newroot)
        self._root_propagation()

    def _hide_host_procfs(self):
        """--no-pivot: the host's mounts stay in our namespace under the
        rootfs moved onto "/", and a whole procfs or sysfs there would let
        the container mount a fresh one (the kernel's "fully visible" rule).
        As runc: every full proc/sysfs mount outside the rootfs is made a
        slave (the host never sees the unmount) and detached, or, where it
        can't be (locked in a user namespace), covered with a tmpfs."""
        root = self.root.rstrip("/") + "/"
        points = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields, fstype = left.split(), right.split(" ", 1)[0]
                if fstype in ("proc", "sysfs") and fields[3] == "/":
                    p = _unescape(fields[4])
                    if p != self.root and not p.startswith(root):
                        points.append(p)
        for p in points:
            try:
                ksys.mount(None, p, None, ksys.MS_SLAVE | ksys.MS_REC)
            except SyscallError as e:
                if e.errno == errno.ENOENT:     # under one detached already
                    continue
                raise
            try:
                ksys.umount2(p, ksys.MNT_DETACH)
            except SyscallError as e:
                if e.errno not in (errno.EINVAL, errno.EPERM):
                    raise
                ksys.mount("tmpfs", p, "tmpfs", ksys.MS_RDONLY, None)

    def _root_propagation(self, final=False):
        """rootfsPropagation for the new / itself (as runc does after the pivot):
        before it, the flag only set how the host's mounts reach our copies."""
        flag = PROPAGATION.get(self.linux.get("rootfsPropagation") or "")
        if flag and self.own_mntns:     # (else: a detached tree, see leave_to)
            if bool(flag & ksys.MS_UNBINDABLE) != final:
                return      # unbindable: after the console's and finalize's binds
            ksys.mount(None, "/", None, flag)

    def leave_to(self, host_mntns):
        """No mount namespace of the container's own: runc and crun mount the
        rootfs's mounts in the caller's namespace (and leave them there).  kago
        built them in a private one; now the whole tree is cloned, detached
        (open_tree), we go back into kago's namespace and chroot into the
        clone: the container shares kago's mount namespace, whose table never
        saw any of its mounts (nor can the container mount onto it: a detached
        tree takes no mounts from outside)."""
        tree = ksys.open_tree(ksys.AT_FDCWD, "/", ksys.OPEN_TREE_CLONE | ksys.AT_RECURSIVE
                              | ksys.OPEN_TREE_CLOEXEC)
        try:
            ksys.setns(host_mntns, ksys.CLONE_NEWNS, "kago's mount namespace")
            os.fchdir(tree)
            os.chroot(".")
            os.chdir("/")
        finally:
            os.close(tree)
            os.close(host_mntns)

    def finalize(self):
        """Inside the new root: readonly root, readonly and masked paths."""
        reopen_dev_null()
        for fd in self._ro_later:
            # the mount itself (held since it was made), whatever is on top of
            # it now; mount_setattr needs no /proc and keeps its other flags
            ksys.mount_setattr(fd, "", ksys.AT_EMPTY_PATH, ksys.MOUNT_ATTR_RDONLY)
            os.close(fd)
        self._ro_later = []
        root = self.spec.get("root") or {}
        if root.get("readonly"):
            self._remount_ro("/", recursive=False, bind=False)
        for p in self.linux.get("readonlyPaths") or ():
            self._readonly(p)
        for p in self.linux.get("maskedPaths") or ():
            self._mask(p)
        self._root_propagation(final=True)

    def _remount_ro(self, path, recursive, bind):
        try:
            locked = os.statvfs(path).f_flag & _LOCKED
        except OSError:
            locked = 0
        ksys.mount(None, path, None, ksys.MS_REMOUNT | ksys.MS_BIND | ksys.MS_RDONLY | locked)

    def _readonly(self, path):
        try:
            ksys.mount(path, path, None, ksys.MS_BIND | ksys.MS_REC)
        except SyscallError as e:
            if e.errno == errno.ENOENT:
                return
            raise
        self._remount_ro(path, True, True)

    def _mask(self, path):
        try:
            if os.path.isdir(path):
                ksys.mount("tmpfs", path, "tmpfs", ksys.MS_RDONLY, None)
            else:
                ksys.mount("/dev/null", path, None, ksys.MS_BIND)
        except SyscallError as e:
            if e.errno == errno.ENOENT:
                return
            raise


def reopen_dev_null():
    """stdio that is the host's /dev/null becomes the container's (runc's
    reOpenDevNull): a descriptor on a mount outside the container is one
    CRIU can't checkpoint."""
    try:
        null = os.stat("/dev/null")
    except OSError:
        return
    if null.st_mode & 0o170000 != stat.S_IFCHR:
        return
    fd = -1
    try:
        for i in (0, 1, 2):
            try:
                st = os.fstat(i)
            except OSError:
                continue
            if st.st_rdev == null.st_rdev and (st.st_dev, st.st_ino) != (null.st_dev, null.st_ino):
                if fd < 0:
                    fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
                os.dup2(fd, i)
    finally:
        if fd >= 0:
            os.close(fd)
