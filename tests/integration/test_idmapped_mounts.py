"""Idmapped mounts (runtime-spec 1.2: mounts[].uidMappings/gidMappings and the
idmap/ridmap options; issue 14), in real containers, checked from the host.

The mapping is read as runc 1.2 (and the kernel) read it: each range is
written to a user namespace's uid_map/gid_map, so ``containerID`` is the id
on the source filesystem and ``hostID`` the id the mount shows it as (in the
host's terms; a container's user namespace then maps that one as usual).
runc's tests/integration/idmap.bats reads the same way: (0, 100000, 65536)
with a container mapped 0 -> 100000 shows the host's root-owned files as
root inside.  So a host directory owned by uid 1000 shows as root inside a
container whose root is host 100000 with (containerID 1000, hostID 100000,
size 1) - and (containerID 0, hostID 1000, size 1) shows it as nobody there.
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.helpers import lines_with, one, state_pid, wait_file

OVERFLOW = int(Path("/proc/sys/kernel/overflowuid").read_text())
USERNS = {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
          "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}


def idmap(cid, hid, size=1):
    """uidMappings and gidMappings of one range."""
    return {"uidMappings": [{"containerID": cid, "hostID": hid, "size": size}],
            "gidMappings": [{"containerID": cid, "hostID": hid, "size": size}]}


def owner(p) -> str:
    st = os.lstat(p)
    return f"{st.st_uid}:{st.st_gid}"


def stat_lines(*paths) -> str:
    """Shell: print "st:PATH=UID:GID" for each path."""
    return "; ".join(f"stat -c 'st:%n=%u:%g' {p}" for p in paths)


# the uid_map of a helper process of each mapping these tests use (other
# tests on this machine run user namespaces of their own: look only for ours)
HELPER_MAPS = {"1000 100000 1", "0 1000 1", "1000 0 1"}


def helper_maps() -> list:
    """(pid, uid_map) of every process in a user namespace with one of the
    mappings these tests give their mounts (a helper of kago's that was not
    reaped would show here)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            m = " ".join(Path(f"/proc/{pid}/uid_map").read_text().split())
        except OSError:
            continue
        if m in HELPER_MAPS:
            out.append((int(pid), m))
    return out


def mounts_of(path) -> list:
    """Lines of the host's mountinfo that mount something at or under ``path``."""
    path = str(path)
    with open("/proc/self/mountinfo") as f:
        return [line for line in f
                if line.split()[4] == path or line.split()[4].startswith(path + "/")]


@pytest.fixture
def source(request):
    """A host directory owned by 1000:1000 (mode 0755) on ext4 (/var/tmp),
    holding f (1000:1000), rootf (0:0) and rootdir/ (0:0, 0755)."""
    d = Path(tempfile.mkdtemp(prefix="kago-idmap-", dir="/var/tmp"))
    request.addfinalizer(lambda: subprocess.run(["rm", "-rf", str(d)]))
    (d / "f").write_text("f\n")
    (d / "rootf").write_text("rootf\n")
    (d / "rootdir").mkdir()
    os.chown(d / "f", 1000, 1000)
    os.chown(d, 1000, 1000)
    os.chmod(d, 0o755)
    return d


def _userns_bundle(bundle, _kago_tracker, script, mounts, host=100000, join=None):
    """A bundle whose container root is host ``host`` (a new user namespace
    mapping 0 -> ``host``, or the one at ``join``), its rootfs reachable by it."""
    top = tempfile.mkdtemp(prefix="kago-idmap-", dir="/tmp")
    os.chmod(top, 0o711)
    _kago_tracker.bundles.append(top)

    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user", "path": join} if join
                                          else {"type": "user"})
        cfg["linux"].update(idmap(0, host, 65536))
        cfg["mounts"] += mounts
        cfg["root"]["path"] = top + "/rootfs"

    b = bundle(script, edit=edit)
    os.rename(b / "rootfs", top + "/rootfs")
    subprocess.run(["chown", "-R", "-h", f"{host}:{host}", top + "/rootfs"], check=True)
    return b


def test_idmapped_mount_in_a_user_namespace(bundle, run_kago, cid, wait_until, tmp_path,
                                            _kago_tracker, source):
    """A host directory owned by uid 1000, mounted with (1000 -> 100000), is
    root's inside a container whose root is host 100000, and what that root
    creates through it is 1000's on the host; ``idmap`` alone takes the
    container's own mapping (host root's files are root's, and stay so);
    the same directory bound plainly shows 1000 as nobody."""
    src = str(source)
    script = (stat_lines("/m", "/m/f", "/m/rootf", "/lit", "/lit/f", "/i", "/i/f",
                         "/i/rootf", "/p", "/p/f") + "; "
              "touch /m/new && stat -c 'new=%u:%g' /m/new; "
              "touch /i/rootdir/viaidmap && stat -c 'viaidmap=%u:%g' /i/rootdir/viaidmap; "
              "touch /lit/x 2>&1 | sed 's/^/litw:/'; "
              "grep -E ' /(m|i|p) ' /proc/self/mountinfo | sed 's/^/mi:/'; "
              "echo done; exec sleep 300")
    b = _userns_bundle(bundle, _kago_tracker, script, [
        dict(destination="/m", type="bind", source=src, options=["bind"],
             **idmap(1000, 100000)),
        # the issue's own example: on-disk 0 is shown as host 1000, which is
        # no one in this container; what is 1000's on disk is no one either
        dict(destination="/lit", type="bind", source=src, options=["bind"],
             **idmap(0, 1000)),
        dict(destination="/i", type="bind", source=src, options=["rbind", "idmap"]),
        dict(destination="/p", type="bind", source=src, options=["bind"]),
    ])
    before = os.stat(source)
    out_path = tmp_path / "out"
    with open(out_path, "w") as out:
        run_kago("run", "-d", "--bundle", b, cid, stdout=out)
    out = wait_file(wait_until, out_path, "done")
    # the helper namespaces for (1000 -> 100000) and (0 -> 1000) are gone
    # while the container runs: reaped, their fds closed with main's child
    assert helper_maps() == []
    st = dict(x.split("=", 1) for x in lines_with(out, "st:"))
    nobody = f"{OVERFLOW}:{OVERFLOW}"
    assert st == {"/m": "0:0", "/m/f": "0:0", "/m/rootf": nobody,
                  "/lit": nobody, "/lit/f": nobody,
                  "/i": "1000:1000", "/i/f": "1000:1000", "/i/rootf": "0:0",
                  "/p": nobody, "/p/f": nobody}, out
    assert one(out, "new=") == "0:0"
    assert one(out, "viaidmap=") == "0:0"
    assert "Value too large" in one(out, "litw:")      # EOVERFLOW: root is unmapped there
    mi = {line.split()[4]: line for line in lines_with(out, "mi:")}
    assert "idmapped" in mi["/m"] and "idmapped" in mi["/i"], out
    assert "idmapped" not in mi["/p"], out
    # the host: files land with the mapped host ids, the directory is untouched
    assert owner(source / "new") == "1000:1000"
    assert owner(source / "rootdir" / "viaidmap") == "0:0"   # not 100000: idmapped
    assert not (source / "x").exists()
    after = os.stat(source)
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid,
                                                           before.st_mode)
    assert owner(source / "f") == "1000:1000" and owner(source / "rootf") == "0:0"
    assert mounts_of(source) == []      # the clones live only in the container
    run_kago("delete", "--force", cid)
    assert mounts_of(source) == [] and helper_maps() == []


def test_idmap_alone_takes_a_joined_user_namespace(bundle, run_kago, make_cid, wait_until,
                                                   tmp_path, _kago_tracker, source):
    """``idmap`` without mappings in a container that joins another's user
    namespace (linux.namespaces path) is idmapped with that namespace's
    mapping (0 -> 200000 here), not with linux.uidMappings (0 -> 100000, which
    a joined namespace ignores): host root's files are root's inside."""
    first, second = make_cid(), make_cid()
    out_path = tmp_path / "out"
    b1 = _userns_bundle(bundle, _kago_tracker, "echo up; exec sleep 300", [], host=200000)
    with open(out_path, "w") as out:
        run_kago("run", "-d", "--bundle", b1, first, stdout=out)
    wait_file(wait_until, out_path, "up")
    pid = state_pid(run_kago, first)
    b2 = _userns_bundle(bundle, _kago_tracker,
                        stat_lines("/i/rootf", "/i/f") + "; cat /proc/self/uid_map",
                        [dict(destination="/i", type="bind", source=str(source),
                              options=["rbind", "idmap"])],
                        host=200000, join=f"/proc/{pid}/ns/user")
    with open(b2 / "config.json") as f:
        cfg = json.load(f)
    cfg["linux"].update(USERNS)         # ignored with a joined user namespace
    with open(b2 / "config.json", "w") as f:
        json.dump(cfg, f)
    out = run_kago("run", "--bundle", b2, second).stdout
    st = dict(x.split("=", 1) for x in lines_with(out, "st:"))
    assert st == {"/i/rootf": "0:0", "/i/f": "1000:1000"}, out
    assert out.split()[-3:] == ["0", "200000", "65536"], out
    run_kago("delete", "--force", first)
    assert mounts_of(source) == []


@pytest.mark.parametrize("mntns", [True, False], ids=["mount-ns", "no-mount-ns"])
def test_idmapped_mount_without_a_user_namespace(bundle, run_kago, cid, source, mntns,
                                                 assert_clean):
    """No user namespace: the mount shows the mapped ids as they are (runc's
    "[no userns]" cases): (1000 -> 0) makes the 1000-owned directory root's
    and what root creates there 1000's on the host; (0 -> 1000) shows root's
    files as 1000 and refuses root's writes (EOVERFLOW); a read-only one stays
    read-only and idmapped.  Also with no mount namespace of the container's
    own (the tree is built in a private one and chrooted into)."""
    src = str(source)
    script = (stat_lines("/m", "/m/f", "/m/rootf", "/lit/f", "/lit/rootf", "/ro/f") + "; "
              "touch /m/new && stat -c 'new=%u:%g' /m/new; "
              "touch /lit/x 2>&1 | sed 's/^/litw:/'; "
              "touch /ro/y 2>&1 | sed 's/^/row:/'; "
              "grep ' /ro ' /proc/self/mountinfo | sed 's/^/mi:/'; echo done")

    def edit(cfg):
        cfg["mounts"] += [
            dict(destination="/m", type="bind", source=src, options=["bind"],
                 **idmap(1000, 0)),
            dict(destination="/lit", type="bind", source=src, options=["rbind"],
                 **idmap(0, 1000)),
            dict(destination="/ro", type="bind", source=src, options=["bind", "ro", "nosuid"],
                 **idmap(1000, 0)),
        ]
        if not mntns:
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                          if n["type"] != "mount"]
            for k in ("maskedPaths", "readonlyPaths"):
                cfg["linux"].pop(k, None)

    out = run_kago("run", "--bundle", bundle(script, edit=edit), cid).stdout
    st = dict(x.split("=", 1) for x in lines_with(out, "st:"))
    nobody = f"{OVERFLOW}:{OVERFLOW}"
    assert st == {"/m": "0:0", "/m/f": "0:0", "/m/rootf": nobody,
                  "/lit/f": nobody, "/lit/rootf": "1000:1000", "/ro/f": "0:0"}, out
    assert one(out, "new=") == "0:0"
    assert "Value too large" in one(out, "litw:")
    assert "Read-only file system" in one(out, "row:")
    if mntns:   # (a detached tree - no mount namespace - is in no mountinfo)
        mi = one(out, "mi:").split()
        assert "idmapped" in mi[5] and "ro" in mi[5].split(",") and "nosuid" in mi[5], mi
    assert owner(source / "new") == "1000:1000"
    assert owner(source) == "1000:1000" and owner(source / "rootf") == "0:0"
    assert not (source / "x").exists() and not (source / "y").exists()
    assert mounts_of(source) == [] and helper_maps() == []
    assert_clean()


def test_ridmap_maps_the_submounts_of_an_rbind(bundle, run_kago, cid, source, request,
                                               assert_clean):
    """An rbind takes the source's submounts along (open_tree AT_RECURSIVE);
    ``ridmap`` idmaps every one of them, ``idmap`` only the top one (a tmpfs
    submount here: tmpfs takes idmapped mounts too)."""
    sub = source / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "kago-idmap-sub", str(sub)],
                   check=True)
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(sub)]))
    (sub / "g").write_text("g\n")
    os.chown(sub / "g", 1000, 1000)
    src = str(source)
    script = stat_lines("/r/f", "/r/sub/g", "/n/f", "/n/sub/g", "/b/sub/g")

    def edit(cfg):
        cfg["mounts"] += [
            dict(destination="/r", type="bind", source=src, options=["rbind", "ridmap"],
                 **idmap(1000, 0)),
            dict(destination="/n", type="bind", source=src, options=["rbind", "idmap"],
                 **idmap(1000, 0)),
            # a plain bind (not rbind) leaves the submount out
            dict(destination="/b", type="bind", source=src, options=["bind"],
                 **idmap(1000, 0)),
        ]

    out = run_kago("run", "--bundle", bundle(script, edit=edit), cid, check=False)
    st = dict(x.split("=", 1) for x in lines_with(out.stdout, "st:"))
    assert st == {"/r/f": "0:0", "/r/sub/g": "0:0", "/n/f": "0:0",
                  "/n/sub/g": "1000:1000"}, out.stdout + out.stderr
    assert "/b/sub/g" in out.stderr     # an empty mountpoint: no such file
    assert owner(sub / "g") == "1000:1000"
    assert len(mounts_of(source)) == 1  # the test's own tmpfs, nothing of kago's
    assert helper_maps() == []
    assert_clean()


def test_idmapped_mount_errors(bundle, run_kago, cid, make_cid, source, assert_clean):
    """A filesystem without idmapped mounts (sysfs), a missing source, and
    the spec's rules (runc's words), each refused before the container runs,
    with nothing left: no state, mount, helper process."""
    def run(mount, userns=False):
        def edit(cfg):
            cfg["mounts"].append(dict(destination="/m", **mount))
            if userns:
                cfg["linux"]["namespaces"].append({"type": "user"})
                cfg["linux"].update(USERNS)
        return run_kago("run", "--bundle", bundle("true", edit=edit), make_cid(),
                        check=False)

    r = run(dict(type="bind", source="/sys/kernel", options=["rbind"], **idmap(0, 1000)))
    assert r.returncode == 1
    assert ("failed to set MOUNT_ATTR_IDMAP on /sys/kernel: Invalid argument (maybe the "
            "filesystem used doesn't support idmap mounts on this kernel?)") in r.stderr
    r = run(dict(type="bind", source=str(source / "missing"), options=["bind"],
                 **idmap(0, 1000)))
    assert r.returncode == 1 and "open_tree" in r.stderr and "missing" in r.stderr, r.stderr
    r = run(dict(type="tmpfs", source="tmpfs", options=["idmap"]), userns=True)
    assert r.returncode == 1
    assert ("config.json: mounts[7].options: id-mapped mounts are only supported for "
            "bind-mounts") in r.stderr, r.stderr
    r = run(dict(type="bind", source=str(source), options=["bind", "idmap"]))
    assert ("config.json: mounts[7].options: id-mapped mounts must have both uid and gid "
            "mappings specified") in r.stderr, r.stderr
    assert helper_maps() == [] and mounts_of(source) == []
    assert_clean()


def test_features_lists_idmapped_mounts(run_kago):
    feat = json.loads(run_kago("features", root=None).stdout)
    assert {"idmap", "ridmap"} <= set(feat["mountOptions"])
    assert feat["linux"]["mountExtensions"] == {"idmap": {"enabled": True}}
