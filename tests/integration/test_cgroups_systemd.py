"""The systemd cgroup driver against python-dbusmock's systemd template on a
private dbus-daemon (no systemd on the build machine): the unit kago starts,
the properties it sends, the cgroup it ends up in, and the unit stopped on
delete.  The mock records every call; kago's own D-Bus client reads them
back (org.freedesktop.DBus.Mock.GetCalls)."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from kago import cgroups

pytestmark = pytest.mark.cgroupv2

MiB = 1 << 20
V2 = cgroups.is_v2_host()
SLICE = "kagotest.slice"


def _mock_python():
    """An interpreter that can run dbusmock (it needs dbus-python and gi)."""
    for py in (sys.executable, "/usr/bin/python3"):
        r = subprocess.run([py, "-c", "import dbusmock, dbus, gi"], capture_output=True)
        if r.returncode == 0:
            return py
    return None


@pytest.fixture
def systemd_mock(tmp_path):
    """A private bus with the systemd mock on it; yields its address."""
    daemon = shutil.which("dbus-daemon")
    py = _mock_python()
    if not daemon or not py:
        pytest.skip("needs dbus-daemon and python-dbusmock (scripts/setup.sh installs them)")
    sock = tmp_path / "bus"
    address = f"unix:path={sock}"
    conf = tmp_path / "bus.conf"
    conf.write_text(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>{address}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow own="*"/><allow send_type="method_call"/>
<allow send_destination="*" eavesdrop="true"/><allow receive_sender="*"/></policy>
</busconfig>""")
    bus = subprocess.Popen([daemon, f"--config-file={conf}", "--nofork", "--nopidfile"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mock = None
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert time.monotonic() < deadline, "dbus-daemon did not start"
            time.sleep(0.02)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=address)
        mock = subprocess.Popen([py, "-m", "dbusmock", "--template", "systemd"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        from kago.cgroups.dbus import Connection
        deadline = time.monotonic() + 20
        while True:
            c = Connection(address)
            try:
                owned = c.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                               "org.freedesktop.DBus", "NameHasOwner", "s",
                               ["org.freedesktop.systemd1"])[0]
            finally:
                c.close()
            if owned:
                break
            assert mock.poll() is None, mock.stderr.read().decode()
            assert time.monotonic() < deadline, "the systemd mock did not start"
            time.sleep(0.05)
        # the template has no SetUnitProperties (kago update): add a no-op one
        c = Connection(address)
        try:
            c.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                   "org.freedesktop.DBus.Mock", "AddMethod", "sssss",
                   ["org.freedesktop.systemd1.Manager", "SetUnitProperties", "sba(sv)", "", ""])
        finally:
            c.close()
        yield address
    finally:
        for p in (mock, bus):
            if p is not None:
                p.kill()
                p.wait()
        for d in _slice_dirs():
            try:
                os.rmdir(d)
            except OSError:
                pass


def _slice_dirs():
    if V2:
        return ["/sys/fs/cgroup/" + SLICE]
    return [os.path.join("/sys/fs/cgroup", h, SLICE) for h in os.listdir("/sys/fs/cgroup")]


def calls(address):
    from kago.cgroups.dbus import Connection
    c = Connection(address)
    try:
        return c.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                      "org.freedesktop.DBus.Mock", "GetCalls")[0]
    finally:
        c.close()


def test_transient_scope(systemd_mock, bundle, run_kago, cid, state_root, assert_clean):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=systemd_mock)
    r = {"memory": {"limit": 64 * MiB}, "pids": {"limit": 33},
         "cpu": {"shares": 512, "quota": 25000, "period": 100000},
         "devices": [{"allow": False, "access": "rwm"}]}
    b = bundle(["sleep", "600"], linux={"cgroupsPath": f"{SLICE}:kago:{cid}", "resources": r})
    run_kago("--systemd-cgroup", "run", "-d", "-b", b, cid, env=env)
    unit = f"kago-{cid}.scope"
    start = [c for c in calls(systemd_mock) if c[1] == "StartTransientUnit"]
    assert len(start) == 1
    name, mode, props, aux = start[0][2]
    assert (name, mode, aux) == (unit, "replace", [])
    props = dict(props)
    assert props["Slice"] == SLICE and props["Delegate"] is True
    assert props["DefaultDependencies"] is False
    assert props["Description"] == f"kago container {unit}"
    assert len(props["PIDs"]) == 1 and props["PIDs"][0] > 0
    assert props["MemoryMax" if V2 else "MemoryLimit"] == 64 * MiB
    assert props["TasksMax"] == 33
    if V2:
        assert props["CPUWeight"] == 1 + (512 - 2) * 9999 // 262142
    else:
        assert props["CPUShares"] == 512
    assert props["CPUQuotaPerSecUSec"] == 250000
    assert props["CPUQuotaPeriodUSec"] == 100000
    assert props["DevicePolicy"] == "strict"
    assert ("/dev/char/1:3", "rwm") in props["DeviceAllow"]
    # the container lives in /kagotest.slice/kago-<id>.scope, with the limits
    pid = json.loads(run_kago("state", cid).stdout)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        text = f.read()
    assert f"/{SLICE}/{unit}\n" in text
    with open(os.path.join(state_root, cid, "kago.json")) as f:
        m = cgroups.load(json.load(f)["cgroup"])
    assert m.driver == "systemd" and pid in m.pids()
    limit = os.path.join(m.dir if V2 else m.fs.subsys["pids"], "pids.max")
    assert open(limit).read().strip() == "33"
    # update: SetUnitProperties, and the files
    run_kago("update", "--pids-limit", "44", cid, env=env)
    setp = [c for c in calls(systemd_mock) if c[1] == "SetUnitProperties"]
    assert setp and setp[-1][2][0] == unit and setp[-1][2][1] is True
    assert dict(setp[-1][2][2])["TasksMax"] == 44
    assert open(limit).read().strip() == "44"
    # pause works through the files
    run_kago("pause", cid)
    assert json.loads(run_kago("state", cid).stdout)["status"] == "paused"
    # delete: StopUnit, and the cgroup is gone
    run_kago("delete", "--force", cid, env=env)
    stop = [c for c in calls(systemd_mock) if c[1] == "StopUnit"]
    assert stop and stop[-1][2] == [unit, "replace"]
    assert not m.exists()
    assert_clean()


def test_bad_systemd_path(systemd_mock, bundle, run_kago, cid, assert_clean):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=systemd_mock)
    b = bundle(["true"], linux={"cgroupsPath": "/not/systemd"})
    r = run_kago("--systemd-cgroup", "run", "-b", b, cid, env=env, check=False)
    assert r.returncode != 0
    assert 'expected cgroupsPath to be of format' in r.stderr and 'slice:prefix:name' in r.stderr
    assert_clean()


@pytest.mark.parametrize("path,words", [
    ("{slice}:kago:../../../../tmp/{cid}", "invalid systemd unit name"),
    ("{slice}:../../../../tmp:{cid}", "invalid systemd unit prefix"),
    ("{slice}:kago:..", "invalid systemd unit name"),
    ("../../tmp/{cid}.slice:kago:{cid}", "invalid systemd slice name"),
])
def test_systemd_path_never_leaves_the_cgroup_mounts(path, words, systemd_mock, bundle,
                                                     run_kago, cid, assert_clean):
    """slice:prefix:name are names, not paths: refused before any unit is
    started or directory made (issue 12, item 2)."""
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=systemd_mock)
    b = bundle(["true"], linux={"cgroupsPath": path.format(slice=SLICE, cid=cid)})
    r = run_kago("--systemd-cgroup", "run", "-b", b, cid, env=env, check=False)
    assert r.returncode == 1
    assert words in r.stderr, r.stderr
    assert not [c for c in calls(systemd_mock) if c[1] == "StartTransientUnit"]
    for d in (f"/tmp/{cid}", f"/tmp/{cid}.slice", f"/sys/fs/cgroup/tmp/{cid}"):
        assert not os.path.lexists(d), d
    assert_clean()


def test_no_bus_is_a_clear_error(bundle, run_kago, cid, tmp_path, assert_clean):
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={tmp_path}/nobus")
    b = bundle(["true"], linux={"cgroupsPath": f"{SLICE}:kago:{cid}"})
    r = run_kago("--systemd-cgroup", "run", "-b", b, cid, env=env, check=False)
    assert r.returncode != 0
    assert f"D-Bus: connect to unix:path={tmp_path}/nobus" in r.stderr
    assert_clean()
    for d in _slice_dirs():
        try:
            os.rmdir(d)
        except OSError:
            pass


def test_slice_expansion_and_unit_names():
    from kago.cgroups.systemd import expand_slice, parse_path, properties
    assert expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert expand_slice("-.slice") == "/"
    assert parse_path("system.slice:docker:1234", "x") == ("system.slice", "docker-1234.scope")
    assert parse_path("", "x") == ("system.slice", "kago-x.scope")
    assert parse_path(":p:n", "x") == ("system.slice", "p-n.scope")
    assert parse_path("machine.slice::n.slice", "x") == ("machine.slice", "n.slice")
    p = dict(properties({"cpu": {"quota": 12345, "period": 100000, "cpus": "0,9"}}, True))
    assert p["CPUQuotaPerSecUSec"] == ("t", 130000)          # rounded up to 10ms
    assert p["AllowedCPUs"] == ("ay", [1, 2])
