"""One spelling of every path (issue 12, item 4).

A host directory bind-mounted at /dev, however the destination is spelled,
is the container's /dev: kago makes no device nodes or /dev symlinks in it
(in the host's directory) and changes nothing of its ownership. proc and sysfs
(and anything mounted on /proc or /sys) are refused on a symlink of the rootfs,
in runc's words. Masked and readonly paths work however they are spelled.
"""

import os
import re
import stat

import pytest

from tests.integration.helpers import one

SPELLINGS = ["/dev", "/dev/", "/./dev", "//dev", "dev", "/x/../dev"]


def err_msg(r) -> str:
    """The msg of the one error record a failed command printed (logfmt)."""
    m = re.fullmatch(r'time="[^"]+" level=error msg="(.*)"', r.stderr.strip())
    assert m, r.stderr
    return m.group(1).replace('\\"', '"').replace("\\\\", "\\")


def snapshot(d):
    """(name, type bits, uid, gid, mode) of d and of everything in it."""
    out = []
    for root, dirs, files in os.walk(d):
        for name in [""] + dirs + files:
            p = os.path.join(root, name) if name else root
            st = os.lstat(p)
            out.append((os.path.relpath(p, d), stat.S_IFMT(st.st_mode), st.st_uid,
                        st.st_gid, stat.S_IMODE(st.st_mode)))
    return sorted(out)


def no_dev_mounts(cfg, dest):
    """The template's /dev tmpfs and the mounts under /dev replaced by a bind of
    the host dir (set later) at ``dest``."""
    cfg["mounts"] = [m for m in cfg["mounts"]
                     if m["destination"] != "/dev" and not m["destination"].startswith("/dev/")]
    return cfg


@pytest.mark.parametrize("dest", SPELLINGS)
def test_host_dir_bound_at_dev_gets_no_device_nodes(bundle, run_kago, cid, tmp_path,
                                                     assert_clean, dest):
    host = tmp_path / "hostdev"
    host.mkdir(mode=0o755)
    os.chown(host, 4321, 4321)
    (host / "marker").write_text("host file\n")
    os.chown(host / "marker", 4321, 4321)
    before = snapshot(host)

    def edit(cfg):
        no_dev_mounts(cfg, dest)
        cfg["mounts"].append({"destination": dest, "type": "bind", "source": str(host),
                              "options": ["rbind", "rw"]})
        # devices the config asks for, chowned to someone: not in a host dir either
        cfg["linux"]["devices"] = [
            {"path": "/dev/kago-null", "type": "c", "major": 1, "minor": 3,
             "fileMode": 0o666, "uid": 1234, "gid": 1234},
            {"path": "//dev/./kago-zero", "type": "c", "major": 1, "minor": 5,
             "uid": 1234, "gid": 1234}]
        return cfg

    b = bundle("echo ls=$(ls -A /dev | tr '\\n' ' ')", edit=edit)
    out = run_kago("run", "--bundle", b, cid).stdout
    # the bind is the container's /dev (so the test checks the right thing) ...
    assert one(out, "ls=").split() == ["marker"], out
    # ... and the host's directory is exactly as it was
    assert snapshot(host) == before
    assert_clean()


@pytest.mark.parametrize("link, target, dest", [
    ("dev", "data", "/data"),            # the image's /dev is a symlink to the bind
    ("devlink", "dev", "/devlink"),      # the bind reaches /dev through a symlink
    ("devlink", "/dev/", "/devlink/"),
])
def test_host_dir_bound_at_dev_through_a_symlink_gets_no_device_nodes(
        bundle, run_kago, cid, tmp_path, assert_clean, link, target, dest):
    host = tmp_path / "hostdev"
    host.mkdir(mode=0o755)
    os.chown(host, 4321, 4321)
    (host / "marker").write_text("host file\n")
    before = snapshot(host)

    def edit(cfg):
        no_dev_mounts(cfg, dest)
        cfg["mounts"].append({"destination": dest, "type": "bind", "source": str(host),
                              "options": ["rbind", "rw"]})
        cfg["linux"]["devices"] = [
            {"path": "/dev/kago-null", "type": "c", "major": 1, "minor": 3,
             "fileMode": 0o666, "uid": 1234, "gid": 1234}]
        return cfg

    b = bundle("echo ls=$(ls -A /dev/ | tr '\\n' ' ')", edit=edit)
    rootfs = b / "rootfs"
    if link == "dev":
        os.rmdir(rootfs / "dev")
    os.symlink(target, rootfs / link)
    out = run_kago("run", "--bundle", b, cid).stdout
    assert one(out, "ls=").split() == ["marker"], out
    assert snapshot(host) == before
    assert_clean()


def test_dev_spelled_otherwise_still_gets_devices_on_tmpfs(bundle, run_kago, cid,
                                                           assert_clean):
    """Not a bind: a tmpfs at "//dev/" is /dev and gets the devices and links."""
    def edit(cfg):
        for m in cfg["mounts"]:
            if m["destination"] == "/dev":
                m["destination"] = "//dev/"
        return cfg
    b = bundle("ls -l /dev/null /dev/zero /dev/tty; readlink /dev/fd; readlink /dev/ptmx", edit=edit)
    out = run_kago("run", "--bundle", b, cid).stdout
    assert out.count("\nc") + out.startswith("c") == 3, out
    assert "/proc/self/fd\npts/ptmx" in out, out
    assert_clean()


@pytest.mark.parametrize("fs, where, target", [
    ("proc", "/proc", "proc.real"), ("proc", "/proc", "/proc.real"),
    ("sysfs", "/sys", "sys.real"), ("proc", "//proc/", "proc.real"),
    ("bind", "/sys", "sys.real"),
])
def test_proc_and_sys_on_a_symlink_refused(bundle, run_kago, cid, state_root, tmp_path,
                                           assert_clean, fs, where, target):
    name = where.strip("/")

    def edit(cfg):
        for m in cfg["mounts"]:
            if m["destination"] == "/" + name:
                m["destination"] = where
                if fs == "bind":   # runc spec --rootless: /sys is a bind of the host's
                    m.update(type="none", source="/" + name,
                             options=["rbind", "nosuid", "noexec", "nodev", "ro"])
        return cfg

    b = bundle("echo started", edit=edit)
    rootfs = b / "rootfs"
    os.rename(rootfs / name, rootfs / (name + ".real"))
    os.symlink(target, rootfs / name)
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode == 1 and "started" not in r.stdout, r
    dest = "/" + name
    assert err_msg(r).endswith(f'error mounting "{fs}" to rootfs at "{dest}": '
                               f'filesystem "{fs}" must be mounted on ordinary directory'), r
    # nothing was mounted through the link
    assert os.listdir(rootfs / (name + ".real")) == []
    assert not os.path.exists(state_root / cid)
    assert_clean()


def test_masked_and_readonly_paths_spelled_otherwise(bundle, run_kago, cid, assert_clean):
    b = bundle("cat /proc/self/mountinfo",
               linux={"maskedPaths": ["//proc/timer_list/", "/proc/./acpi"],
                      "readonlyPaths": ["/proc/x/../sys/", "//proc//bus"]})
    out = run_kago("run", "--bundle", b, cid).stdout
    mounts = {}
    for line in out.splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        mounts[f[4]] = (f[5].split(","), right.split()[0])
    assert "/proc/timer_list" in mounts, out          # /dev/null bound over it
    assert mounts["/proc/acpi"][1] == "tmpfs" and "ro" in mounts["/proc/acpi"][0], out
    assert "ro" in mounts["/proc/sys"][0] and "ro" in mounts["/proc/bus"][0], out
    assert_clean()
