"""Namespaces, hostname/domainname and sysctl, seen from inside the container
and from the host (issue 2, "Namespaces").

Each test runs real containers through the launcher (``kago run``), prints
what the container sees with busybox, and compares with the host's view.
"""

import json
import os
import subprocess
import tempfile
from pathlib import Path

from tests.integration.helpers import lines_with, one, state_pid, wait_file

NS_PROC = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts",
           "mount": "mnt", "cgroup": "cgroup", "user": "user", "time": "time"}

# prints "NAME=LINK" for each namespace of the shell (pid 1 of the container)
SHOW_NS = ("for n in pid mnt uts ipc net cgroup user time; do "
           "echo ns:$n=$(readlink /proc/self/ns/$n); done")


def host_ns(pid="self") -> dict:
    return {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in NS_PROC.values()}


def parse_ns(out: str) -> dict:
    return dict(line[3:].split("=", 1) for line in out.splitlines() if line.startswith("ns:"))


def namespaces(*types, **paths) -> list[dict]:
    out = [{"type": t} for t in types]
    out += [{"type": t, "path": p} for t, p in paths.items()]
    return out


# ---------------------------------------------------------------------------


def test_new_namespaces_all_differ_from_host(bundle, run_kago, cid):
    """pid, mount, uts, ipc, network, cgroup, time: each new, pid 1, lo up,
    cgroup root at the container's cgroup, time offsets applied."""
    script = ("echo pid=$$; " + SHOW_NS + "; "
              "echo up=$(cat /proc/uptime); "
              "cat /proc/self/timens_offsets | sed 's/^/off:/'; "
              "ip -o link | sed 's/^/link:/'; "
              "ls /sys/class/net | sed 's/^/sysnet:/'; "
              "cat /proc/self/cgroup | sed 's/^/cg:/'")
    b = bundle(script, linux={
        "namespaces": namespaces("pid", "network", "ipc", "uts", "mount", "cgroup", "time"),
        "timeOffsets": {"boottime": {"secs": 1000000, "nanosecs": 0},
                        "monotonic": {"secs": 86400 * 3, "nanosecs": 0}}})
    with open("/proc/uptime") as f:
        host_up_before = float(f.read().split()[0])
    out = run_kago("run", "--bundle", b, cid).stdout
    with open("/proc/uptime") as f:
        host_up_after = float(f.read().split()[0])

    assert one(out, "pid=") == "1"
    inside, host = parse_ns(out), host_ns()
    for ours in ("pid", "mnt", "uts", "ipc", "net", "cgroup", "time"):
        assert inside[ours] != host[ours], f"{ours} namespace is the host's"
        assert inside[ours].startswith(ours + ":[")
    assert inside["user"] == host["user"], "no user namespace was asked for"

    # time namespace: the boottime offset shows in /proc/uptime, both offsets
    # in /proc/self/timens_offsets
    up = float(one(out, "up=").split()[0])
    assert host_up_before + 1000000 - 1 <= up <= host_up_after + 1000000 + 1, out
    offsets = {f[0]: (int(f[1]), int(f[2])) for f in map(str.split, lines_with(out, "off:"))}
    assert offsets == {"monotonic": (86400 * 3, 0), "boottime": (1000000, 0)}

    # network namespace: only lo, and it is up
    links = lines_with(out, "link:")
    assert len(links) == 1 and ": lo:" in links[0], out
    assert "UP" in links[0].split("<", 1)[1].split(">", 1)[0].split(","), links[0]
    assert lines_with(out, "sysnet:") == ["lo"]

    # cgroup namespace: every hierarchy's path is "/" inside (on the host the
    # process is in /kago/<id>)
    cgs = lines_with(out, "cg:")
    assert cgs and all(line.rsplit(":", 1)[1] == "/" for line in cgs), cgs


def test_namespaces_seen_from_host_and_without_cgroupns(bundle, run_kago, cid, wait_until,
                                                         tmp_path):
    """The host sees init's namespaces differ from its own; NSpid says it is 1
    inside; without a cgroup namespace the container sees its host cgroup path."""
    out_path = tmp_path / "out"
    b = bundle("cat /proc/self/cgroup | sed 's/^/cg:/'; echo done; exec sleep 300",
               linux={"namespaces": namespaces("pid", "network", "ipc", "uts", "mount")})
    with open(out_path, "w") as out:
        run_kago("run", "-d", "--bundle", b, cid, stdout=out)
    text = wait_file(wait_until, out_path, "done")
    pid = state_pid(run_kago, cid)
    theirs, ours = host_ns(pid), host_ns()
    for n in ("pid", "mnt", "uts", "ipc", "net"):
        assert theirs[n] != ours[n], n
    for n in ("cgroup", "user", "time"):
        assert theirs[n] == ours[n], n
    with open(f"/proc/{pid}/status") as f:
        nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
    assert nspid == [str(pid), "1"]
    # no cgroup namespace: the container's own cgroup path shows, the same as
    # the host's view of the process
    with open(f"/proc/{pid}/cgroup") as f:
        host_view = f.read().split()
    assert sorted(lines_with(text, "cg:")) == sorted(host_view)
    assert any(cid in line for line in host_view), host_view
    run_kago("delete", "--force", cid)


def test_join_namespaces_by_path(bundle, run_kago, make_cid, wait_until, tmp_path):
    """A second container joins the first's network, uts, ipc, pid, cgroup and
    time namespaces through linux.namespaces[].path."""
    first, second = make_cid("first"), make_cid("second")
    b1 = bundle(["sleep", "301"], hostname="kago-first", linux={
        "namespaces": namespaces("pid", "network", "ipc", "uts", "mount", "cgroup", "time"),
        "timeOffsets": {"boottime": {"secs": 5000}}})
    run_kago("run", "-d", "--bundle", b1, first)
    pid1 = state_pid(run_kago, first)
    ns1 = host_ns(pid1)

    out_path = tmp_path / "out2"
    script = ("echo pid=$$; " + SHOW_NS + "; echo host=$(hostname); "
              "echo one=$(tr '\\0' ' ' < /proc/1/cmdline); "
              "grep boottime /proc/self/timens_offsets | sed 's/^/off:/'; "
              "ls /sys/class/net | sed 's/^/sysnet:/'; echo done; exec sleep 302")
    b2 = bundle(script, hostname=None, linux={"namespaces": namespaces(
        "mount", network=f"/proc/{pid1}/ns/net", uts=f"/proc/{pid1}/ns/uts",
        ipc=f"/proc/{pid1}/ns/ipc", pid=f"/proc/{pid1}/ns/pid",
        cgroup=f"/proc/{pid1}/ns/cgroup", time=f"/proc/{pid1}/ns/time")})
    with open(out_path, "w") as out:
        run_kago("run", "-d", "--bundle", b2, second, stdout=out)
    out = wait_file(wait_until, out_path, "done")
    pid2 = state_pid(run_kago, second)

    inside = parse_ns(out)
    for n in ("net", "uts", "ipc", "pid", "cgroup", "time"):
        assert inside[n] != host_ns()[n], n
        assert inside[n] == ns1[n], f"{n}: joined {inside[n]}, first has {ns1[n]}"
    assert one(out, "off:").split() == ["boottime", "5000", "0"]
    assert inside["mnt"] not in (ns1["mnt"], host_ns()["mnt"])
    assert host_ns(pid2) == {**ns1, "mnt": inside["mnt"]}
    # the uts namespace carries the first container's hostname
    assert one(out, "host=") == "kago-first"
    # one pid namespace: the first's init is pid 1 for the second; the second
    # is not pid 1 there
    assert one(out, "one=").strip() == "sleep 301"
    assert one(out, "pid=") != "1"
    with open(f"/proc/{pid2}/status") as f:
        nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
    assert len(nspid) == 2 and nspid[0] == str(pid2) and nspid[1] not in ("1", str(pid2))
    assert lines_with(out, "sysnet:") == ["lo"]
    run_kago("delete", "--force", second)
    run_kago("delete", "--force", first)


def test_user_namespace_id_mappings(bundle, run_kago, cid, wait_until, tmp_path,
                                    _kago_tracker, request):
    """Container root is host uid/gid 100000 (uidMappings/gidMappings); files
    it creates belong to 100000 on the host."""
    # container root is host uid 100000 for the kernel's permission checks: its
    # rootfs must be reachable, and pytest's tmp dirs are 0700 root's
    top = tempfile.mkdtemp(prefix="kago-userns-", dir="/tmp")
    os.chmod(top, 0o711)
    _kago_tracker.bundles.append(top)
    out_path = tmp_path / "out"
    script = ("echo uidmap=$(cat /proc/self/uid_map); echo gidmap=$(cat /proc/self/gid_map); "
              "echo id=$(id -u):$(id -g); echo userns=$(readlink /proc/self/ns/user); "
              "echo made > /tmp/made-inside; "
              "stat -c 'owner=%u:%g' /bin/busybox; "
              "for d in /dev/null /dev/fuse; do stat -c 'dev:%n|%F|%t|%T' $d; done; "
              "echo x > /dev/null && echo devnull=ok; "
              "grep boottime /proc/self/timens_offsets | sed 's/^/off:/'; "
              "cat /mnt/locked/f | sed 's/^/locked:/'; "
              "grep ' /mnt/locked ' /proc/self/mountinfo | sed 's/^/mi:/'; "
              "echo done; exec sleep 300")
    # a ro bind of a host mount that is nosuid,nodev,noexec: in a user
    # namespace those flags are locked and must be kept on the remount
    locked = Path(top) / "locked"
    locked.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "nosuid,nodev,noexec,mode=755",
                    "kago-locked", str(locked)], check=True)
    request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(locked)]))
    (locked / "f").write_text("locked flags\n")

    def edit(cfg):
        cfg["linux"]["namespaces"] += [{"type": "user"}, {"type": "time"}]
        cfg["linux"]["timeOffsets"] = {"boottime": {"secs": 7777}}
        # no mknod in a user namespace: devices are bind mounts of the host's
        cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10,
                                    "minor": 229, "fileMode": 0o600}]
        cfg["mounts"].append({"destination": "/mnt/locked", "type": "bind",
                              "source": str(locked), "options": ["bind", "ro"]})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["root"]["readonly"] = False
        cfg["root"]["path"] = top + "/rootfs"

    b = bundle(script, edit=edit)
    os.rename(b / "rootfs", top + "/rootfs")
    subprocess.run(["chown", "-R", "-h", "100000:100000", top + "/rootfs"], check=True)
    with open(out_path, "w") as out:
        run_kago("run", "-d", "--bundle", b, cid, stdout=out)
    out = wait_file(wait_until, out_path, "done")
    assert one(out, "uidmap=").split() == ["0", "100000", "65536"]
    assert one(out, "gidmap=").split() == ["0", "100000", "65536"]
    assert one(out, "id=") == "0:0"
    assert one(out, "owner=") == "0:0"  # host 100000 is root inside
    assert one(out, "userns=") != host_ns()["user"]
    devs = dict(line.split("|", 1) for line in lines_with(out, "dev:"))
    assert devs == {"/dev/null": "character special file|1|3",
                    "/dev/fuse": "character special file|a|e5"}, out
    assert one(out, "devnull=") == "ok"
    assert one(out, "off:").split() == ["boottime", "7777", "0"]
    assert one(out, "locked:") == "locked flags"
    opts = one(out, "mi:").split()[5].split(",")
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(opts), opts
    # the host's view: the process runs as 100000, the file is 100000's
    pid = state_pid(run_kago, cid)
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f)
    assert status["Uid"].split() == ["100000"] * 4
    assert status["Gid"].split() == ["100000"] * 4
    assert os.readlink(f"/proc/{pid}/ns/user") == one(out, "userns=")
    st = os.stat(top + "/rootfs/tmp/made-inside")
    assert (st.st_uid, st.st_gid) == (100000, 100000)
    run_kago("delete", "--force", cid)


def _read(path):
    with open(path) as f:
        return f.read().strip()


def test_hostname_domainname_sysctl(bundle, run_kago, cid):
    host_before = {p: _read(p) for p in ("/proc/sys/kernel/hostname",
                                         "/proc/sys/kernel/domainname",
                                         "/proc/sys/net/ipv4/ip_forward",
                                         "/proc/sys/kernel/shmmax")}
    forward = "0" if host_before["/proc/sys/net/ipv4/ip_forward"] == "1" else "1"
    shmmax = "123456789" if host_before["/proc/sys/kernel/shmmax"] != "123456789" else "987654"
    script = ("echo hn=$(hostname); echo uname=$(uname -n); "
              "echo dn=$(cat /proc/sys/kernel/domainname); "
              "echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); "
              "echo shmmax=$(cat /proc/sys/kernel/shmmax)")
    b = bundle(script, hostname="box-one", domainname="example.test",
               linux={"sysctl": {"net.ipv4.ip_forward": forward, "kernel.shmmax": shmmax}})
    out = run_kago("run", "--bundle", b, cid).stdout
    assert one(out, "hn=") == "box-one"
    assert one(out, "uname=") == "box-one"
    assert one(out, "dn=") == "example.test"
    assert one(out, "fwd=") == forward
    assert one(out, "shmmax=") == shmmax
    # all of it stayed in the container's namespaces
    assert {p: _read(p) for p in host_before} == host_before


def test_user_namespace_library(bundle, state_root, cid, wait_until, tmp_path, _kago_tracker):
    """Through the library (in-process, the source tree): a user namespace,
    the process as container uid 1000 = host uid 101000, a pid file."""
    from kago import Container, ContainerBuilder
    top = tempfile.mkdtemp(prefix="kago-userns-", dir="/tmp")
    os.chmod(top, 0o711)
    _kago_tracker.bundles.append(top)
    script = ("{ echo id=$(id -u):$(id -g); echo uidmap=$(cat /proc/self/uid_map); "
              "echo pid=$$; } > /tmp/out; touch /tmp/by-user; echo done >> /tmp/out; "
              "exec sleep 300")

    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        cfg["root"] = {"path": top + "/rootfs", "readonly": False}

    b = bundle(script, edit=edit)
    os.rename(b / "rootfs", top + "/rootfs")
    subprocess.run(["chown", "-R", "-h", "100000:100000", top + "/rootfs"], check=True)
    pid_file = tmp_path / "pid"
    c = ContainerBuilder(cid, root=str(state_root)).as_init(
        str(b), detach=True, pid_file=str(pid_file)).build()
    try:
        assert c.status == "created"
        assert int(pid_file.read_text()) == c.pid > 0
        c.start()
        out = wait_file(wait_until, top + "/rootfs/tmp/out", "done")
        assert one(out, "id=") == "1000:1000"
        assert one(out, "uidmap=").split() == ["0", "100000", "65536"]
        assert one(out, "pid=") == "1"
        loaded = Container.load(str(state_root), cid)
        assert loaded.status == "running" and loaded.pid == c.pid
        with open(f"/proc/{c.pid}/status") as f:
            status = dict(line.split(":", 1) for line in f)
        assert status["Uid"].split() == ["101000"] * 4
        assert status["Gid"].split() == ["101000"] * 4
        st = os.stat(top + "/rootfs/tmp/by-user")
        assert (st.st_uid, st.st_gid) == (101000, 101000)
    finally:
        Container.load(str(state_root), cid).delete(force=True)
    assert not (state_root / cid).exists()
