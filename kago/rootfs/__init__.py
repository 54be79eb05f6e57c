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
from kago.rootfs.mounts import PROPAGATION, fdpath, open_in_root, parse_options

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


def _wrap(e: SyscallError, call, path, detail):
    return SyscallError(e.errno, call, path, detail)


class Rootfs:
    def __init__(self, ctx):
        self.ctx = ctx
        self.spec = ctx.spec
        self.linux = ctx.spec.get("linux") or {}
        self.root = ctx.rootfs
        self.rootfd = -1
        self.userns = ctx.userns

    # ---- before the createContainer hooks ---------------------------------
    def prepare(self):
        prop = self.linux.get("rootfsPropagation") or ""
        flag = PROPAGATION.get(prop, ksys.MS_SLAVE | ksys.MS_REC)
        ksys.mount(None, "/", None, flag)
        self._parent_private()
        ksys.mount(self.root, self.root, None, ksys.MS_BIND | ksys.MS_REC)
        self.rootfd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        dev_bound = False
        binds = set()
        for i, m in enumerate(self.spec.get("mounts") or ()):
            bound = self.mount(i, m)
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

    def mount(self, i, m):
        where = f"mounts[{i}]"
        dest = m.get("destination") or ""
        typ = m.get("type") or ""
        src = m.get("source") or ""
        o = parse_options(m.get("options"), where + ".options")
        is_bind = typ == "bind" or bool(o.flags & ksys.MS_BIND)
        create = "dir"
        if is_bind:
            if not os.path.isabs(src):
                src = os.path.join(self.ctx.bundle, src)
            try:
                st = os.stat(src)
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
                if is_bind:
                    ksys.mount(src, fdpath(fd), None, ksys.MS_BIND | (o.flags & ksys.MS_REC))
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
                if newns:
                    ksys.mount("cgroup2", fdpath(fd), "cgroup2", flags | ro)
                else:
                    d = next(iter(cg.dirs.values()))
                    ksys.mount(d, fdpath(fd), None, ksys.MS_BIND | ksys.MS_REC)
                    if ro:
                        fd = self._reopen(fd, dest)
                        self._remount(fd, ksys.MS_RDONLY | flags)
                return
            ksys.mount("tmpfs", fdpath(fd), "tmpfs", flags, "mode=755")
            for mp, fstype, superopts in cgroups._hierarchies():
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
                        d = cg.dirs.get(mp, mp)
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
                    host = path if os.path.exists(path) else None
                    if host is None:
                        raise SpecError(where or "linux.devices",
                                        f"cannot bind {path}: no such device on the host")
                    ksys.mount(host, fdpath(fd), None, ksys.MS_BIND)
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

    def _root_propagation(self):
        """rootfsPropagation for the new / itself (as runc does after the pivot):
        before it, the flag only set how the host's mounts reach our copies."""
        flag = PROPAGATION.get(self.linux.get("rootfsPropagation") or "")
        if flag:
            ksys.mount(None, "/", None, flag)

    def finalize(self):
        """Inside the new root: readonly root, readonly and masked paths."""
        root = self.spec.get("root") or {}
        if root.get("readonly"):
            self._remount_ro("/", recursive=False, bind=False)
        for p in self.linux.get("readonlyPaths") or ():
            self._readonly(p)
        for p in self.linux.get("maskedPaths") or ():
            self._mask(p)

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
