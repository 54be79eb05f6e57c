"""Conformance of the rootfs code with runc and crun (issue 13, "Mounts and
rootfs" and two lifecycle items): no mount namespace, rootfsPropagation
"unbindable", read-only mounts with later submounts, --no-pivot and the
host's procfs, bind sources only kago can reach (user namespace), devices
the host lacks.  Real containers, checked from inside and from the host.
"""

import ctypes
import fcntl
import os
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.helpers import one, state_pid, wait_file

EROFS = "Read-only file system"


def host_mountinfo() -> list[str]:
    """The host's mount table (mount ids included: a remount shows too)."""
    with open("/proc/self/mountinfo") as f:
        return f.read().splitlines()


def ns_of(pid="self", kind="mnt") -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


USERNS = {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
          "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}


def userns_bundle(bundle, tracker, script, edit=None):
    """A bundle with a new user namespace (root = host uid 100000) whose
    rootfs that uid can reach (pytest's tmp dirs are 0700 root's)."""
    top = tempfile.mkdtemp(prefix="kago-userns-", dir="/tmp")
    os.chmod(top, 0o711)
    tracker.bundles.append(top)

    def full_edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"].update(USERNS)
        cfg["root"]["path"] = top + "/rootfs"
        if edit:
            edit(cfg)
    b = bundle(script, edit=full_edit)
    os.rename(b / "rootfs", top + "/rootfs")
    subprocess.run(["chown", "-R", "-h", "100000:100000", top + "/rootfs"], check=True)
    return b, Path(top)


# ------------------------------------------------ listmount/statmount (6.8+)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NS_GET_MNTNS_ID = 0x8008B705          # _IOR(0xb7, 5, __u64)
_SYS_STATMOUNT, _SYS_LISTMOUNT = 457, 458   # x86_64 and the generic table
_LSMT_ROOT = 0xFFFFFFFFFFFFFFFF
_STATMOUNT_SB_BASIC = 0x1


def mounts_of_namespace(pid) -> list[tuple[int, int, int]]:
    """(major, minor, magic) of the superblock of every mount in the mount
    namespace of ``pid`` - reachable from its root or not (listmount(2)):
    /proc/PID/mountinfo shows only what is under the process's root."""
    fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        buf = bytearray(8)
        try:
            fcntl.ioctl(fd, _NS_GET_MNTNS_ID, buf)
        except OSError as e:
            pytest.skip(f"NS_GET_MNTNS_ID: {e.strerror} (kernel older than 6.11?)")
        nsid = struct.unpack("Q", buf)[0]
    finally:
        os.close(fd)
    ids, last = [], 0
    while True:
        req = struct.pack("IIQQQ", 32, 0, _LSMT_ROOT, last, nsid)
        arr = (ctypes.c_uint64 * 512)()
        n = _libc.syscall(_SYS_LISTMOUNT, req, arr, 512, 0)
        if n < 0:
            err = ctypes.get_errno()
            pytest.skip(f"listmount: {os.strerror(err)}")
        ids += arr[:n]
        if n < 512:
            break
        last = arr[n - 1]
    out = []
    for mid in ids:
        req = struct.pack("IIQQQ", 32, 0, mid, _STATMOUNT_SB_BASIC, nsid)
        res = ctypes.create_string_buffer(4096)
        if _libc.syscall(_SYS_STATMOUNT, req, res, 4096, 0) < 0:
            raise OSError(ctypes.get_errno(), "statmount")
        _size, _opts, _mask, major, minor, magic = struct.unpack_from("IIQIIQ", res.raw)
        out.append((major, minor, magic))
    return out


def dev_of(path) -> tuple[int, int]:
    st = os.stat(path)
    return os.major(st.st_dev), os.minor(st.st_dev)


# ------------------------------------------------------ no mount namespace

def _no_mntns(cfg):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                  if n["type"] != "mount"]
    # runc's validator: masked/readonly paths need a mount namespace
    cfg["linux"].pop("maskedPaths", None)
    cfg["linux"].pop("readonlyPaths", None)


def test_no_mount_namespace_runs_in_kagos_and_leaves_its_table_alone(
        bundle, run_kago, cid, tmp_path, wait_until):
    """No "mount" in linux.namespaces: the container is in kago's mount
    namespace (spec: inherited), with its mounts (proc, /dev, devpts, a
    read-only root) - and the host's mount table never changes: runc and
    crun mount all of it there and leave it (kago builds the tree in a
    private namespace and chroots into a detached clone of it)."""
    out_path = tmp_path / "out"
    script = ("echo mnt=$(readlink /proc/self/ns/mnt); "
              "test -d /proc/1/fd && echo proc=ok; "
              "echo x > /dev/null && echo null=ok; "
              "test -c /dev/pts/ptmx && echo pts=ok; "
              "touch /x 2>&1 | sed 's/^/ro:/'; "
              "mkdir -p /tmp/m; mount -t tmpfs t /tmp/m 2>&1 | sed 's/^/mnt:/'; "
              "echo done; exec sleep 300")
    b = bundle(script, edit=_no_mntns)
    before = host_mountinfo()
    with open(out_path, "w") as out:
        run_kago("run", "-d", "--bundle", b, cid, stdout=out)
    out = wait_file(wait_until, out_path, "done")
    pid = state_pid(run_kago, cid)
    # inside: kago's namespace, and everything of the config is there
    assert one(out, "mnt=") == ns_of() == ns_of(pid)
    assert one(out, "proc=") == "ok"
    assert one(out, "null=") == "ok"
    assert one(out, "pts=") == "ok"
    assert EROFS in one(out, "ro:")
    # the container can't mount onto the tree (nor onto the host's table)
    assert one(out, "mnt:")
    # host: the table is what it was; the container's /dev is not the bundle's
    assert host_mountinfo() == before
    assert os.path.exists(f"/proc/{pid}/root/dev/null")
    assert not os.path.exists(b / "rootfs" / "dev" / "null")
    # an exec'd process takes init's root too, never the host's filesystem
    r = run_kago("exec", cid, "sh", "-c", "test -d /work -o -d /opt && echo host || echo ctr; "
                 "echo x > /dev/null && echo null=ok")
    assert r.stdout.split() == ["ctr", "null=ok"], r.stdout
    pf = tmp_path / "exec.pid"
    run_kago("exec", "-d", "--pid-file", pf, cid, "sleep", "300")
    tenant = int(pf.read_text())
    root_of = [os.stat(f"/proc/{p}/root/.") for p in (pid, tenant)]
    assert (root_of[0].st_dev, root_of[0].st_ino) == (root_of[1].st_dev, root_of[1].st_ino)
    assert (root_of[1].st_dev, root_of[1].st_ino) != (os.stat("/").st_dev, os.stat("/").st_ino)
    run_kago("delete", "--force", cid)
    assert host_mountinfo() == before


def test_no_mount_namespace_with_a_user_namespace_is_refused(bundle, run_kago, cid):
    def edit(cfg):
        _no_mntns(cfg)
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"].update(USERNS)
    b = bundle("true", edit=edit)
    before = host_mountinfo()
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode == 1
    assert "linux.namespaces: a user namespace needs a mount namespace of its own" \
        in r.stderr, r.stderr
    assert host_mountinfo() == before


# ------------------------------------------------------ rootfsPropagation

@pytest.mark.parametrize("prop", ["unbindable", "runbindable"])
def test_rootfs_propagation_unbindable(bundle, run_kago, make_cid, prop):
    """crun's order: the rootfs is bound while "/" is private, and made
    unbindable once it is the root (today's runc fails: EINVAL)."""
    b = bundle("awk '$5 == \"/\"' /proc/self/mountinfo | sed 's/^/root:/'; "
               "mkdir -p /tmp/b; mount --bind / /tmp/b 2>&1 | sed 's/^/bind:/'",
               linux={"rootfsPropagation": prop}, root={"readonly": False},
               process={"capabilities": {k: ["CAP_SYS_ADMIN"] for k in
                                         ("bounding", "effective", "permitted")}})
    before = host_mountinfo()
    out = run_kago("run", "--bundle", b, make_cid()).stdout
    root = one(out, "root:")
    assert "unbindable" in root.partition(" - ")[0].split()[6:], root
    # an unbindable root can't be bound
    assert "Invalid argument" in one(out, "bind:")
    assert host_mountinfo() == before


# ------------------------------------------ read-only mounts with submounts

def test_read_only_dev_with_later_submounts(bundle, run_kago, cid, tmp_path):
    """/dev tmpfs "ro", then /dev/pts, /dev/shm, /dev/mqueue, and a read-only
    tmpfs with a tmpfs under it: the submounts and device nodes are made
    first, the read-only remount after (runc's finalizeRootfs).  A read-only
    bind is read-only at once (as runc): a later mount under it needs its
    mountpoint there already, never made in the host's directory."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "f").write_text("host file\n")

    def edit(cfg):
        for m in cfg["mounts"]:
            if m["destination"] == "/dev":
                m["options"].append("ro")
        cfg["mounts"] += [
            {"destination": "/data", "type": "bind", "source": str(data),
             "options": ["bind", "ro"]},
            {"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m"]},
            {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m", "ro"]},
            {"destination": "/scratch/a/b", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m"]},
        ]
    script = ("touch /dev/x 2>&1 | sed 's/^/devro:/'; "
              "echo x > /dev/null && echo null=ok; "
              "grep -c ' /dev/pts ' /proc/self/mountinfo | sed 's/^/pts=/'; "
              "echo s > /dev/shm/s && echo shm=ok; "
              "grep ' /dev ' /proc/self/mountinfo | sed 's/^/dev:/'; "
              "touch /data/x 2>&1 | sed 's/^/dataro:/'; "
              "cat /data/f | sed 's/^/f:/'; "
              "echo y > /data/sub/y && echo sub=ok; "
              "touch /scratch/x 2>&1 | sed 's/^/scratchro:/'; "
              "echo z > /scratch/a/b/z && echo scratchsub=ok")
    b = bundle(script, edit=edit)
    out = run_kago("run", "--bundle", b, cid).stdout
    assert EROFS in one(out, "devro:")
    assert one(out, "null=") == "ok"
    assert one(out, "pts=") == "1"
    assert one(out, "shm=") == "ok"
    assert "ro" in one(out, "dev:").split()[5].split(",")
    assert EROFS in one(out, "dataro:")
    assert one(out, "f:") == "host file"
    assert one(out, "sub=") == "ok"
    assert EROFS in one(out, "scratchro:")
    assert one(out, "scratchsub=") == "ok"
    # host: its directory got no mountpoint, no write
    assert sorted(os.listdir(data)) == ["f", "sub"] and not os.listdir(data / "sub")


# ------------------------------------------------ --no-pivot and procfs

def test_no_pivot_leaves_no_host_procfs_or_sysfs_in_the_namespace(
        bundle, run_kago, cid, tmp_path, wait_until):
    """--no-pivot moves the rootfs onto "/" and chroots: the host's mounts
    would stay in the container's mount namespace, a whole procfs among them
    (a fresh procfs mount is allowed while one is fully visible).  As runc,
    every host proc/sysfs mount outside the rootfs is detached there."""
    out_path = tmp_path / "out"
    script = ("mkdir -p /tmp/p; mount -t proc proc /tmp/p 2>&1 | sed 's/^/mount:/'; "
              "test -d /tmp/p/1 && echo fresh=ok; umount /tmp/p; "
              "echo done; exec sleep 300")
    caps = ["CAP_SYS_ADMIN", "CAP_KILL", "CAP_AUDIT_WRITE"]
    b = bundle(script, root={"readonly": False},
               process={"capabilities": {k: caps for k in
                                         ("bounding", "effective", "permitted")}})
    before = host_mountinfo()
    with open(out_path, "w") as out:
        run_kago("run", "-d", "--no-pivot", "--bundle", b, cid, stdout=out)
    out = wait_file(wait_until, out_path, "done")
    pid = state_pid(run_kago, cid)
    sbs = {(ma, mi) for ma, mi, _magic in mounts_of_namespace(pid)}
    host_proc, host_sys = dev_of("/proc"), dev_of("/sys")
    assert host_proc not in sbs, "the host's procfs is still mounted in the container's namespace"
    assert host_sys not in sbs, "the host's sysfs is still mounted in the container's namespace"
    # the container's own procfs and sysfs are there
    assert dev_of(f"/proc/{pid}/root/proc") in sbs
    # the host still has its own, untouched
    assert host_mountinfo() == before
    # a fresh procfs: in the initial user namespace the kernel applies no
    # "fully visible" rule (nor, with a user namespace, while the container's
    # own /proc is whole): allowed, as runc 1.1.5 allows it here
    assert one(out, "fresh=") == "ok"
    run_kago("delete", "--force", cid)


# ------------------------------------------ bind sources only kago can reach

def test_user_namespace_bind_source_behind_a_0700_host_directory(
        bundle, run_kago, cid, wait_until, tmp_path, _kago_tracker, request):
    """Container root is host uid 100000: it can't search a 0700 directory
    of the host's root.  kago opens each source with the host's credentials
    inside the container's mount namespace (a child of main) and init binds
    through the fd, as runc 1.1 passes mount source fds.  The source is the
    container's (locked) copy of the host's mount: a read-only host mount
    stays read-only even for a container root with CAP_SYS_ADMIN."""
    out_path = tmp_path / "out"
    script = ("stat -c 'owner=%u:%g %a' /data; cat /data/f | sed 's/^/f:/'; "
              "echo new > /data/made && echo write=ok; "
              "grep ' /data ' /proc/self/mountinfo | sed 's/^/mi:/'; "
              "cat /rodata/g | sed 's/^/g:/'; "
              "mount -o remount,bind,rw /rodata 2>&1 | sed 's/^/remount:/'; "
              "touch /rodata/h 2>&1 | sed 's/^/rowrite:/'; "
              "mount -o remount,bind,ro /data && echo control=ok; "
              "echo done; exec sleep 300")
    holder = {}
    caps = ["CAP_SYS_ADMIN", "CAP_KILL", "CAP_AUDIT_WRITE", "CAP_DAC_OVERRIDE"]

    def edit(cfg):
        private = Path(cfg["root"]["path"]).parent / "private"
        holder["data"] = data = private / "data"
        holder["rodata"] = rodata = private / "rodata"
        cfg["mounts"].append({"destination": "/data", "type": "bind",
                              "source": str(data), "options": ["rbind", "rw"]})
        cfg["mounts"].append({"destination": "/rodata", "type": "bind",
                              "source": str(rodata), "options": ["rbind"]})
        cfg["root"]["readonly"] = False
        cfg["process"]["capabilities"] = {k: caps for k in
                                          ("bounding", "effective", "permitted")}

    b, top = userns_bundle(bundle, _kago_tracker, script, edit)
    private, data = top / "private", holder["data"]
    private.mkdir(mode=0o700)
    data.mkdir()
    (data / "f").write_text("for the container\n")
    os.chown(data, 100000, 100000)
    os.chown(data / "f", 100000, 100000)
    os.chmod(data, 0o700)
    os.chmod(data / "f", 0o600)
    rodata = holder["rodata"]
    rodata.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=755", "kago-ro",
                    str(rodata)], check=True)
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(rodata)]))
    (rodata / "g").write_text("read only\n")
    subprocess.run(["mount", "-o", "remount,ro", str(rodata)], check=True)
    before = host_mountinfo()
    with open(out_path, "w") as out:
        run_kago("run", "-d", "--bundle", b, cid, stdout=out)
    out = wait_file(wait_until, out_path, "done")
    assert one(out, "owner=") == "0:0 700"      # host 100000 is root inside
    assert one(out, "f:") == "for the container"
    assert one(out, "write=") == "ok"
    assert one(out, "g:") == "read only"
    # the host's read-only flag is locked: no remount rw, no write
    assert "permission denied" in one(out, "remount:")
    assert EROFS in one(out, "rowrite:")
    assert one(out, "control=") == "ok"     # (a remount of its own is allowed)
    # a slave of the host's mount (the rest of the host's mounts are), never a peer
    assert not any(o.startswith("shared:") for o in one(out, "mi:").split(" - ")[0].split()[6:])
    # host side: the write landed in the host's directory as uid 100000
    st = os.stat(data / "made")
    assert (st.st_uid, st.st_gid) == (100000, 100000)
    # the host's private dir was not opened up, its table not touched
    assert (private.stat().st_mode & 0o777) == 0o700
    assert host_mountinfo() == before
    run_kago("delete", "--force", cid)


def test_user_namespace_missing_bind_source_is_a_spec_error(bundle, run_kago, cid,
                                                            tmp_path, _kago_tracker):
    nope = tmp_path / "nope"

    def edit(cfg):
        cfg["mounts"].append({"destination": "/data", "type": "bind",
                              "source": str(nope), "options": ["bind"]})
    b, _ = userns_bundle(bundle, _kago_tracker, "true", edit)
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode == 1
    assert f"mounts[7].source: bind source {nope}: No such file or directory" \
        in r.stderr, r.stderr


# ------------------------------------------------- devices the host lacks

def _unused_char_device() -> tuple[int, int]:
    used = set()
    for top, _dirs, files in os.walk("/dev"):
        for f in files:
            try:
                st = os.lstat(os.path.join(top, f))
            except OSError:
                continue
            if (st.st_mode & 0o170000) == 0o020000:
                used.add((os.major(st.st_rdev), os.minor(st.st_rdev)))
    for minor in range(42, 250):
        if (1, minor) not in used:
            return 1, minor
    pytest.skip("every c 1:42..249 has a node on this host")


def test_device_the_host_lacks_is_made_with_mknod(bundle, run_kago, cid):
    """Not in a user namespace kago may mknod: a device number no host node
    has is created inside with its mode and owner (never on the host)."""
    major, minor = _unused_char_device()
    name = f"kago-nohost-{minor}"
    b = bundle(f"stat -c 'dev:%F|%t|%T|%a|%u|%g' /dev/{name}", linux={"devices": [
        {"path": f"/dev/{name}", "type": "c", "major": major, "minor": minor,
         "fileMode": 0o640, "uid": 1000, "gid": 5}]})
    out = run_kago("run", "--bundle", b, cid).stdout
    kind, ma, mi, mode, uid, gid = one(out, "dev:").split("|")
    assert (kind, int(ma, 16), int(mi, 16), mode, uid, gid) == \
        ("character special file", major, minor, "640", "1000", "5")
    assert not os.path.exists(f"/dev/{name}")
    assert not (b / "rootfs" / "dev" / name).exists()   # /dev is the container's tmpfs


def test_device_in_a_user_namespace_must_be_the_hosts_same_device(
        bundle, run_kago, cid, _kago_tracker):
    """In a user namespace there is no mknod: the host's node at that path
    is bound - only if it is that device (a config can't bind /dev/zero as
    its "c 1:3")."""
    def edit(cfg):
        cfg["linux"]["devices"] = [{"path": "/dev/zero", "type": "c", "major": 1,
                                    "minor": 3}]
    b, _ = userns_bundle(bundle, _kago_tracker, "true", edit)
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode == 1
    assert "linux.devices[0]: cannot bind /dev/zero: the host's /dev/zero is another device" \
        in r.stderr, r.stderr
