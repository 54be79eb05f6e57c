"""The root filesystem: root.readonly, mounts[] (bind ro/rw, tmpfs options,
propagation, recursive rro), rootfsPropagation, destinations resolved inside
the rootfs, devices, /dev symlinks, maskedPaths, readonlyPaths, --no-pivot
(issue 2, "Rootfs").  Checked from inside the container and from the host.
"""

import json
import os
import re
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.helpers import lines_with, one, state_pid, wait_file


def host_mountpoints() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def mountinfo_fields(line: str) -> dict:
    """mountinfo line -> {'point', 'opts', 'optional': [...], 'fstype', 'super'}"""
    left, _, right = line.partition(" - ")
    f = left.split()
    r = right.split()
    return {"point": f[4], "opts": f[5].split(","), "optional": f[6:],
            "fstype": r[0], "super": r[2].split(",") if len(r) > 2 else []}


def peer_group(point: str, kind: str) -> str | None:
    """The host's 'shared:N' (kind='shared') group of the mount at ``point``."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            m = mountinfo_fields(line)
            if m["point"] == point:
                for o in m["optional"]:
                    if o.startswith(kind + ":"):
                        return o.split(":", 1)[1]
    return None


@contextmanager
def host_tmpfs(path: Path, shared=False):
    """A tmpfs mounted on the host at ``path`` (unmounted, recursively, after)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "kago-test", str(path)],
                   check=True)
    try:
        if shared:
            subprocess.run(["mount", "--make-shared", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-R", "-l", str(path)], check=False)


EROFS = "Read-only file system"
# prints the mountinfo line of the container's / prefixed "root:"
ROOT_LINE = """awk '$5 == "/"' /proc/self/mountinfo | sed 's/^/root:/'"""


# --------------------------------------------------------------- root.readonly

def test_root_readonly_and_writable(bundle, run_kago, make_cid):
    script = ("touch /made-here 2>&1 | sed 's/^/touch:/'; "
              "touch /tmp/also 2>&1 | sed 's/^/tmp:/'; "
              "echo ok > /dev/shm/x && echo shm=ok; "
              + ROOT_LINE)
    ro = bundle(script, root={"readonly": True})
    out = run_kago("run", "--bundle", ro, make_cid()).stdout
    assert EROFS in one(out, "touch:"), out
    assert EROFS in one(out, "tmp:"), out
    assert one(out, "shm=") == "ok"  # mounts on top stay writable
    assert "ro" in mountinfo_fields(one(out, "root:"))["opts"]
    assert not (ro / "rootfs" / "made-here").exists()

    rw = bundle(script, root={"readonly": False})
    out = run_kago("run", "--bundle", rw, make_cid()).stdout
    assert lines_with(out, "touch:") == [] and lines_with(out, "tmp:") == [], out
    assert "rw" in mountinfo_fields(one(out, "root:"))["opts"]
    assert (rw / "rootfs" / "made-here").is_file()
    assert (rw / "rootfs" / "tmp" / "also").is_file()


# --------------------------------------------------------------------- mounts

def test_bind_and_tmpfs_mounts(bundle, run_kago, cid, tmp_path):
    rwdir, rodir = tmp_path / "rwdir", tmp_path / "rodir"
    rwdir.mkdir()
    rodir.mkdir()
    (rwdir / "from-host").write_text("rw-host\n")
    (rodir / "from-host").write_text("ro-host\n")
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("a single file\n")
    script = r"""
cat /mnt/rw/from-host | sed 's/^/rwread:/'
echo from-container > /mnt/rw/new && echo rwwrite=ok
cat /mnt/ro/from-host | sed 's/^/roread:/'
echo x 2>&1 > /mnt/ro/new | sed 's/^/rowrite:/'
echo x 2>&1 > /mnt/rel/new | sed 's/^/relwrite:/'
cat /mnt/rel/data.txt | sed 's/^/relread:/'
cat /etc/injected | sed 's/^/file:/'
echo x 2>&1 > /etc/injected | sed 's/^/filewrite:/'
stat -c 'tmode=%a' /mnt/t
printf '#!/bin/sh\necho ran\n' > /mnt/t/script && chmod 755 /mnt/t/script && echo made=ok
/mnt/t/script 2>&1 | sed 's/^/exec:/'
dd if=/dev/zero of=/mnt/t/big bs=1024 count=2048 2>&1 | grep -i 'space' | sed 's/^/dd:/'
grep -E ' /mnt/| /etc/injected ' /proc/self/mountinfo | sed 's/^/mi:/'
"""
    b = bundle(script, edit=lambda c: c["mounts"].extend([
        {"destination": "/mnt/rw", "type": "bind", "source": str(rwdir),
         "options": ["rbind", "rw"]},
        {"destination": "/mnt/ro", "type": "bind", "source": str(rodir),
         "options": ["bind", "ro", "nosuid", "nodev"]},
        {"destination": "/mnt/rel", "type": "none", "source": "reldata",
         "options": ["rbind", "ro"]},
        {"destination": "/etc/injected", "type": "bind", "source": str(hostfile),
         "options": ["bind", "ro"]},
        {"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=1770"]},
    ]))
    (b / "reldata").mkdir()
    (b / "reldata" / "data.txt").write_text("relative to the bundle\n")
    out = run_kago("run", "--bundle", b, cid).stdout

    assert one(out, "rwread:") == "rw-host"
    assert one(out, "rwwrite=") == "ok"
    assert (rwdir / "new").read_text() == "from-container\n"  # seen on the host
    assert one(out, "roread:") == "ro-host"
    assert EROFS in one(out, "rowrite:")
    assert not (rodir / "new").exists()
    assert one(out, "relread:") == "relative to the bundle"
    assert EROFS in one(out, "relwrite:")
    assert one(out, "file:") == "a single file"
    assert EROFS in one(out, "filewrite:")
    assert hostfile.read_text() == "a single file\n"
    # the mount points were made inside the rootfs, nothing on the host
    assert (b / "rootfs" / "etc" / "injected").is_file()
    assert (b / "rootfs" / "mnt" / "t").is_dir()

    mi = {m["point"]: m for m in map(mountinfo_fields, lines_with(out, "mi:"))}
    assert set(mi) == {"/mnt/rw", "/mnt/ro", "/mnt/rel", "/etc/injected", "/mnt/t"}, mi
    assert "rw" in mi["/mnt/rw"]["opts"]
    assert {"ro", "nosuid", "nodev"} <= set(mi["/mnt/ro"]["opts"])
    assert "ro" in mi["/etc/injected"]["opts"]
    t = mi["/mnt/t"]
    assert t["fstype"] == "tmpfs"
    assert {"rw", "nosuid", "nodev", "noexec"} <= set(t["opts"])
    assert {"size=1024k", "mode=1770"} <= set(t["super"]), t
    assert one(out, "tmode=") == "1770"
    assert one(out, "made=") == "ok"
    assert "Permission denied" in one(out, "exec:")   # noexec
    assert "No space left" in one(out, "dd:")          # size=1m


def test_bind_propagation_rslave_rprivate_rshared(bundle, run_kago, cid, tmp_path,
                                                  wait_until):
    """A host mount made after start reaches an rslave bind, not an rprivate
    one; mountinfo shows master:N (the host's peer group), none, shared:M."""
    src = tmp_path / "propsrc"
    out_path = tmp_path / "out"
    script = r"""
i=0; while [ ! -e /mnt/slave/sub/marker ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
cat /mnt/slave/sub/marker 2>&1 | sed 's/^/slave:/'
ls /mnt/private/sub | sed 's/^/private:/'
grep ' /mnt/' /proc/self/mountinfo | sed 's/^/mi:/'
echo done
"""
    with host_tmpfs(src, shared=True):
        (src / "sub").mkdir()
        group = peer_group(str(src), "shared")
        assert group, "test setup: the host source is not shared"
        b = bundle(script, edit=lambda c: c["mounts"].extend([
            {"destination": "/mnt/slave", "type": "bind", "source": str(src),
             "options": ["rbind", "rslave"]},
            {"destination": "/mnt/private", "type": "bind", "source": str(src),
             "options": ["rbind", "rprivate"]},
            {"destination": "/mnt/shared", "type": "bind", "source": str(src),
             "options": ["rbind", "rshared"]},
        ]))
        with open(out_path, "w") as out:
            run_kago("run", "-d", "--bundle", b, cid, stdout=out)
        subprocess.run(["mount", "-t", "tmpfs", "kago-test-sub", str(src / "sub")], check=True)
        (src / "sub" / "marker").write_text("propagated\n")
        text = wait_file(wait_until, out_path, "done")
        # nothing the container mounted came back to the host
        assert [p for p in host_mountpoints() if p.startswith(str(src))] == \
            [str(src), str(src / "sub")]
    assert one(text, "slave:") == "propagated"
    assert lines_with(text, "private:") == []
    mi = {m["point"]: m for m in map(mountinfo_fields, lines_with(text, "mi:"))}
    opt = {p: " ".join(m["optional"]) for p, m in mi.items()}
    assert f"master:{group}" in mi["/mnt/slave"]["optional"], opt
    assert not any(o.startswith("shared:") for o in mi["/mnt/slave"]["optional"]), opt
    assert not any(o.startswith(("shared:", "master:")) for o in mi["/mnt/private"]["optional"]), opt
    assert any(o.startswith("shared:") for o in mi["/mnt/shared"]["optional"]), opt
    assert "/mnt/slave/sub" in mi and "/mnt/private/sub" not in mi, opt
    run_kago("delete", "--force", cid)


def test_recursive_readonly_rro(bundle, run_kago, cid, tmp_path):
    """rro (mount_setattr AT_RECURSIVE) makes a sub-mount read-only too; plain
    ro on an rbind does not."""
    src = tmp_path / "rrosrc"
    src.mkdir()
    (src / "top").write_text("top\n")
    script = r"""
for d in /mnt/rro /mnt/rro/sub /mnt/ro /mnt/ro/sub; do
  if echo x > $d/written 2>/dev/null; then echo "w:$d=ok"; else echo "w:$d=fail"; fi
done
cat /mnt/rro/sub/inner | sed 's/^/inner:/'
grep ' /mnt/' /proc/self/mountinfo | sed 's/^/mi:/'
"""
    with host_tmpfs(src / "sub"):
        (src / "sub" / "inner").write_text("inner\n")
        b = bundle(script, edit=lambda c: c["mounts"].extend([
            {"destination": "/mnt/rro", "type": "bind", "source": str(src),
             "options": ["rbind", "rro"]},
            {"destination": "/mnt/ro", "type": "bind", "source": str(src),
             "options": ["rbind", "ro"]},
            {"destination": "/mnt/rflags", "type": "bind", "source": str(src),
             "options": ["rbind", "rnoexec", "rnosuid", "rnodev"]},
        ]))
        out = run_kago("run", "--bundle", b, cid).stdout
        written = {p: (src / p / "written").exists() for p in (".", "sub")}
    results = dict(x.split("=") for x in lines_with(out, "w:"))
    assert results == {"/mnt/rro": "fail", "/mnt/rro/sub": "fail",
                       "/mnt/ro": "fail", "/mnt/ro/sub": "ok"}, out
    assert written == {".": False, "sub": True}
    assert one(out, "inner:") == "inner"
    mi = {m["point"]: m for m in map(mountinfo_fields, lines_with(out, "mi:"))}
    assert "ro" in mi["/mnt/rro/sub"]["opts"] and "rw" in mi["/mnt/ro/sub"]["opts"], mi
    for point in ("/mnt/rflags", "/mnt/rflags/sub"):
        assert {"noexec", "nosuid", "nodev", "rw"} <= set(mi[point]["opts"]), mi[point]


def test_rootfs_propagation(bundle, run_kago, make_cid, tmp_path, wait_until):
    """rootfsPropagation on a rootfs that lives on a shared host mount: the
    default (rslave) and "slave" receive host mounts made under the rootfs
    later, "private" does not; "rshared" makes the container's / shared."""
    src = tmp_path / "shared-src"
    cases = {"default": None, "slave": "rslave", "private": "private", "shared": "rshared"}
    with host_tmpfs(src, shared=True):
        group = peer_group(str(src), "shared")
        template = bundle(rootfs="copy")
        subprocess.run(["cp", "-a", str(template / "rootfs"), str(src / "rootfs")], check=True)
        (src / "rootfs" / "mnt" / "sub").mkdir(parents=True)
        # /go is a plain file the host makes in the rootfs directory after its
        # mount: every container sees it, whatever the propagation
        script = (r"i=0; while [ ! -e /go ] && [ $i -lt 400 ]; do "
                  r"sleep 0.025; i=$((i+1)); done; "
                  r"cat /mnt/sub/marker 2>/dev/null | sed 's/^/seen:/'; "
                  + ROOT_LINE + "; echo done")
        outs = {}
        for name, prop in cases.items():
            def edit(c, prop=prop):
                c["root"]["path"] = str(src / "rootfs")
                if prop:
                    c["linux"]["rootfsPropagation"] = prop
            b = bundle(script, rootfs=None, edit=edit)
            outs[name] = tmp_path / f"out-{name}"
            with open(outs[name], "w") as out:
                run_kago("run", "-d", "--bundle", b, make_cid(name), stdout=out)
        subprocess.run(["mount", "-t", "tmpfs", "kago-test-sub", str(src / "rootfs/mnt/sub")],
                       check=True)
        (src / "rootfs" / "mnt" / "sub" / "marker").write_text("from host\n")
        (src / "rootfs" / "go").write_text("")
        texts = {n: wait_file(wait_until, p, "done") for n, p in outs.items()}
    roots = {n: mountinfo_fields(one(t, "root:"))["optional"] for n, t in texts.items()}
    assert lines_with(texts["default"], "seen:") == ["from host"], texts["default"]
    assert lines_with(texts["slave"], "seen:") == ["from host"], texts["slave"]
    assert lines_with(texts["private"], "seen:") == [], texts["private"]
    assert f"master:{group}" in roots["default"], roots
    assert f"master:{group}" in roots["slave"], roots
    assert not any(o.startswith(("master:", "shared:")) for o in roots["private"]), roots
    assert any(o.startswith("shared:") for o in roots["shared"]), roots


def test_symlinked_destination_stays_in_rootfs(bundle, run_kago, cid, tmp_path, wait_until):
    """rootfs/evil -> /tmp/<hostdir> (absolute) and rootfs/evil2 -> ../../..
    (relative, climbing out): mounts land inside the rootfs, never on the host."""
    name = f"kago-escape-{uuid.uuid4().hex[:8]}"
    hostdir, hostdir2 = Path("/tmp") / name, Path("/tmp") / (name + "-2")
    src = tmp_path / "bindsrc"
    src.mkdir()
    (src / "payload").write_text("payload\n")
    out_path = tmp_path / "out"
    try:
        for d in (hostdir, hostdir2):
            d.mkdir()
            (d / "host-file").write_text("host\n")
        hostfile = Path(str(hostdir) + "-file")
        hostfile.write_text("host file\n")
        script = ("ls -a /evil | sed 's/^/evil:/'; ls /evil2 | sed 's/^/evil2:/'; "
                  "cat /evilfile | sed 's/^/evilfile:/'; echo cwd=$(pwd); "
                  "grep -E ' /tmp/kago-escape' /proc/self/mountinfo | sed 's/^/mi:/'; "
                  "echo done; exec sleep 300")

        def edit(c):
            c["mounts"] += [
                {"destination": "/evil", "type": "tmpfs", "source": "tmpfs",
                 "options": ["size=1m"]},
                {"destination": "/evil2", "type": "bind", "source": str(src),
                 "options": ["bind", "ro"]},
                {"destination": "/evilfile", "type": "bind", "source": str(src / "payload"),
                 "options": ["bind", "ro"]}]
            c["process"]["cwd"] = "/evilcwd/sub"
        b = bundle(script, edit=edit)
        os.symlink(str(hostdir), b / "rootfs" / "evil")
        os.symlink("../../../../../../../../.." + str(hostdir2), b / "rootfs" / "evil2")
        os.symlink(str(hostfile), b / "rootfs" / "evilfile")
        os.symlink(str(hostdir) + "-cwd", b / "rootfs" / "evilcwd")  # not on the host
        with open(out_path, "w") as out:
            run_kago("run", "-d", "--bundle", b, cid, stdout=out)
        text = wait_file(wait_until, out_path, "done")
        # while the container runs: nothing is mounted on the host paths
        points = host_mountpoints()
        assert str(hostdir) not in points and str(hostdir2) not in points
        assert sorted(os.listdir(hostdir)) == ["host-file"]
        assert sorted(os.listdir(hostdir2)) == ["host-file"]
        # inside: the tmpfs and the bind are at the paths resolved in the rootfs
        assert [x for x in lines_with(text, "evil:") if x not in (".", "..")] == []
        assert lines_with(text, "evil2:") == ["payload"]
        assert one(text, "evilfile:") == "payload"
        assert one(text, "cwd=") == f"{hostdir}-cwd/sub"  # resolved in the rootfs
        assert hostfile.read_text() == "host file\n"
        assert str(hostfile) not in points
        assert not os.path.lexists(str(hostdir) + "-cwd")
        mi = {m["point"]: m for m in map(mountinfo_fields, lines_with(text, "mi:"))}
        assert mi[str(hostdir)]["fstype"] == "tmpfs"
        assert "ro" in mi[str(hostdir2)]["opts"]
        pid = state_pid(run_kago, cid)
        assert os.listdir(f"/proc/{pid}/root{hostdir2}") == ["payload"]
        run_kago("delete", "--force", cid)
        # the directories were made in the rootfs
        assert (b / "rootfs" / "tmp" / name).is_dir()
        assert (b / "rootfs" / "tmp" / (name + "-2")).is_dir()
        assert (b / "rootfs" / "tmp" / (name + "-file")).is_file()
        assert (b / "rootfs" / "tmp" / (name + "-cwd") / "sub").is_dir()  # the cwd
        assert sorted(os.listdir(hostdir)) == ["host-file"]
    finally:
        for d in (hostdir, hostdir2, Path(str(hostdir) + "-file"), Path(str(hostdir) + "-cwd")):
            if str(d) not in host_mountpoints():
                subprocess.run(["rm", "-rf", "--one-file-system", str(d)])


# -------------------------------------------------------------------- devices

DEFAULT_DEVICES = {
    "/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
    "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0),
}


def test_devices_and_dev_symlinks(bundle, run_kago, cid):
    paths = " ".join(list(DEFAULT_DEVICES) + ["/dev/fuse", "/dev/kago-fifo",
                                              "/dev/deep/er/null2"])
    # /dev/stderr reopens run_kago's stderr file (">>": no truncation)
    script = ("echo via-dev-stderr >> /dev/stderr; "
              f"for d in {paths}; do stat -c 'dev:%n|%F|%t|%T|%a|%u|%g' $d; done; "
              "for l in fd stdin stdout stderr ptmx; do echo link:$l=$(readlink /dev/$l); done; "
              "echo zero=$(head -c 4 /dev/zero | od -An -tx1 | tr -d ' '); "
              "echo discard > /dev/null && echo null=ok; "
              "test -c /dev/pts/ptmx && echo ptmx=ok")
    b = bundle(script, linux={"devices": [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
         "fileMode": 0o600, "uid": 1000, "gid": 1000},
        {"path": "/dev/kago-fifo", "type": "p", "fileMode": 0o640, "uid": 0, "gid": 5},
        {"path": "/dev/deep/er/null2", "type": "c", "major": 1, "minor": 3,
         "fileMode": 0o620},
    ]})
    result = run_kago("run", "--bundle", b, cid)
    out = result.stdout
    devs = {}
    for line in lines_with(out, "dev:"):
        n, kind, ma, mi, mode, uid, gid = line.split("|")
        devs[n] = (kind, int(ma, 16), int(mi, 16), mode, uid, gid)
    for path, (ma, mi) in DEFAULT_DEVICES.items():
        assert devs[path] == ("character special file", ma, mi, "666", "0", "0"), path
    assert devs["/dev/fuse"] == ("character special file", 10, 229, "600", "1000", "1000")
    assert devs["/dev/kago-fifo"][0] == "fifo"
    assert devs["/dev/kago-fifo"][3:] == ("640", "0", "5")
    assert devs["/dev/deep/er/null2"][:4] == ("character special file", 1, 3, "620")
    links = dict(x.split("=", 1) for x in lines_with(out, "link:"))
    assert links == {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
                     "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
                     "ptmx": "pts/ptmx"}
    assert one(out, "zero=") == "00000000"
    assert one(out, "null=") == "ok"
    assert "via-dev-stderr" in result.stderr.splitlines()
    assert one(out, "ptmx=") == "ok"
    # nothing was created on the host
    assert not os.path.exists("/dev/kago-fifo") and not os.path.exists("/dev/deep")


# ------------------------------------------------------ masked / readonly paths

def test_masked_and_readonly_paths(bundle, run_kago, cid):
    script = r"""
echo timer=$(cat /proc/timer_list | wc -c); echo uptime=$(cat /proc/uptime | wc -c)
echo secret=$(cat /etc/secret | wc -c)
echo secretdir=$(ls -A /opt/secretdir | wc -l)
touch /opt/secretdir/x 2>&1 | sed 's/^/maskwrite:/'
echo host 2>&1 > /proc/sys/kernel/hostname | sed 's/^/procsys:/'
echo x 2>&1 > /data/new | sed 's/^/data:/'
cat /data/kept | sed 's/^/dataread:/'
touch /data/sub/x 2>&1 | sed 's/^/datasub:/'
touch /elsewhere && echo elsewhere=ok
grep -E ' (/proc/timer_list|/etc/secret|/opt/secretdir|/data|/proc/sys) ' /proc/self/mountinfo | sed 's/^/mi:/'
"""
    b = bundle(script, root={"readonly": False}, linux={
        "maskedPaths": ["/proc/timer_list", "/etc/secret", "/opt/secretdir", "/no/such/path"],
        "readonlyPaths": ["/proc/sys", "/data", "/no/such/ro"]})
    rootfs = b / "rootfs"
    (rootfs / "etc" / "secret").write_text("password\n")
    (rootfs / "opt" / "secretdir").mkdir(parents=True)
    (rootfs / "opt" / "secretdir" / "key").write_text("key\n")
    (rootfs / "data" / "sub").mkdir(parents=True)
    (rootfs / "data" / "kept").write_text("kept\n")
    out = run_kago("run", "--bundle", b, cid).stdout
    assert one(out, "timer=") == "0"
    assert one(out, "uptime=") != "0"  # an unmasked file of /proc reads
    assert one(out, "secret=") == "0"
    assert one(out, "secretdir=") == "0"
    assert EROFS in one(out, "maskwrite:")
    assert EROFS in one(out, "procsys:")
    assert EROFS in one(out, "data:")
    assert one(out, "dataread:") == "kept"
    assert EROFS in one(out, "datasub:")
    assert one(out, "elsewhere=") == "ok"
    mi = {m["point"]: m for m in map(mountinfo_fields, lines_with(out, "mi:"))}
    assert mi["/opt/secretdir"]["fstype"] == "tmpfs" and "ro" in mi["/opt/secretdir"]["opts"]
    assert "ro" in mi["/data"]["opts"] and "ro" in mi["/proc/sys"]["opts"]
    # the files under the masks are untouched
    assert (rootfs / "etc" / "secret").read_text() == "password\n"
    assert os.listdir(rootfs / "opt" / "secretdir") == ["key"]
    assert not (rootfs / "no").exists()


# ------------------------------------------------------------------ no pivot

def test_no_pivot(bundle, run_kago, cid, tmp_path):
    marker = uuid.uuid4().hex
    script = ("cat /marker | sed 's/^/marker:/'; echo pid=$$; "
              f"ls {tmp_path} 2>&1 | sed 's/^/host:/'; "
              + ROOT_LINE + "; "
              "touch /x 2>&1 | sed 's/^/ro:/'")
    b = bundle(script)
    (b / "rootfs" / "marker").write_text(marker + "\n")
    out = run_kago("run", "--no-pivot", "--bundle", b, cid).stdout
    assert one(out, "marker:") == marker
    assert one(out, "pid=") == "1"
    assert "No such file" in one(out, "host:")  # the host's files are out of reach
    assert EROFS in one(out, "ro:")
    assert "ro" in mountinfo_fields(one(out, "root:"))["opts"]


def test_no_pivot_library(bundle, state_root, cid, wait_until):
    """The same through the library (in-process: the source tree)."""
    from kago import Container, ContainerBuilder
    marker = uuid.uuid4().hex
    b = bundle("cat /marker > /seen; echo $$ >> /seen", root={"readonly": False})
    (b / "rootfs" / "marker").write_text(marker + "\n")
    c = ContainerBuilder(cid, root=str(state_root)).as_init(
        str(b), detach=True, no_pivot=True).build()
    assert c.status == "created"
    c.start()
    wait_until(lambda: Container.load(str(state_root), cid).status == "stopped",
               what="container to exit")
    assert (b / "rootfs" / "seen").read_text().split() == [marker, "1"]
    Container.load(str(state_root), cid).delete()
