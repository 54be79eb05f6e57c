"""Device rules (issue 13, "cgroups and update"): only r, w and m ever reach
devices.allow/deny, and `update` of device rules on cgroup v1 makes runc's
minimal transition (the devices emulator): a running container never loses
/dev/null while its rules change.  Checked inside the container and from the
host (devices.list)."""

import json
import os
import time

import pytest

from kago import cgroups

V2 = cgroups.is_v2_host()
v1_only = pytest.mark.skipif(V2, reason="devices.list/allow/deny are cgroup v1's; on v2 "
                                        "update leaves devices as runc's does")
RW = {"root": {"readonly": False}}
FUSE = {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}
DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_FUSE = {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
# opens /dev/null for ever, as fast as a shell can (builtins only, no fork:
# the moment a deny-all would take it away is microseconds), in two loops (one
# per core); any failure is a line in /fails, progress a count in /count
NULL_LOOP = ("loop() { i=0; while :; do true </dev/null || echo FAIL-r$1 $i >> /fails; "
             "true >/dev/null || echo FAIL-w$1 $i >> /fails; i=$((i+1)); "
             "[ $((i % 500)) = 0 ] && echo $i > /count$1; done; }; "
             "loop 1 & loop 2")


def devices_list(state_root, cid):
    with open(os.path.join(state_root, cid, "kago.json")) as f:
        m = cgroups.load(json.load(f)["cgroup"])
    with open(os.path.join(m.subsys["devices"], "devices.list")) as f:
        return f.read().splitlines()


def rootfile(b, name):
    try:
        with open(os.path.join(b, "rootfs", name)) as f:
            return f.read()
    except FileNotFoundError:
        return None


def update(run_kago, tmp_path, cid, devs, check=True, args=()):
    f = tmp_path / "res.json"
    f.write_text(json.dumps({"devices": devs}))
    return run_kago(*args, "update", "-r", str(f), cid, check=check)


def fuse_opens(run_kago, cid):
    """Open /dev/fuse read-write inside (no I/O: the fuse driver refuses that)."""
    r = run_kago("exec", cid, "sh", "-c", "exec 3<>/dev/fuse", check=False)
    return r.returncode == 0, r.stdout + r.stderr


@v1_only
def test_update_devices_minimal_transition(bundle, run_kago, cid, state_root, tmp_path,
                                           wait_until):
    b = bundle(NULL_LOOP, linux={"devices": [FUSE],
                                 "resources": {"devices": [DENY_ALL, ALLOW_FUSE]}}, **RW)
    run_kago("run", "-d", "-b", b, cid)

    def count():            # (the loop truncates and rewrites it: skip an empty read)
        for _ in range(100):
            text = (rootfile(b, "count1") or "").strip()
            if text:
                return int(text)
            time.sleep(0.001)
        return 0
    wait_until(lambda: count() > 5, what="the /dev/null loop")
    before = devices_list(state_root, cid)
    assert "c 10:229 rwm" in before and "c 1:3 rwm" in before, before
    assert "a *:* rwm" not in before
    assert fuse_opens(run_kago, cid)[0]

    # denied: gone from the host's devices.list, refused inside; /dev/null stays
    log = tmp_path / "update.log"
    update(run_kago, tmp_path, cid, [DENY_ALL], args=("--debug", "--log", str(log)))
    after = devices_list(state_root, cid)
    assert "c 10:229 rwm" not in after and "c 1:3 rwm" in after, after
    assert sorted(after) == sorted(x for x in before if x != "c 10:229 rwm")
    ok, out = fuse_opens(run_kago, cid)
    assert not ok and "Operation not permitted" in out, out
    # the one write it took: no deny-all on a running container
    written = [line for line in log.read_text().splitlines() if "rules written" in line]
    assert len(written) == 1 and 'rules="deny c 10:229 rwm"' in written[0], written

    # allowed again
    update(run_kago, tmp_path, cid, [DENY_ALL, ALLOW_FUSE])
    assert sorted(devices_list(state_root, cid)) == sorted(before)
    assert fuse_opens(run_kago, cid)[0]

    # the same rules again: nothing to write at all
    log.write_text("")
    update(run_kago, tmp_path, cid, [DENY_ALL, ALLOW_FUSE], args=("--debug", "--log", str(log)))
    assert 'rules=none' in log.read_text(), log.read_text()

    # many updates while the loop runs: not one failed open of /dev/null
    n0 = count()
    t0 = time.monotonic()
    for _ in range(15):
        update(run_kago, tmp_path, cid, [DENY_ALL])
        update(run_kago, tmp_path, cid, [DENY_ALL, ALLOW_FUSE])
    n1 = wait_until(lambda: count() > n0 and count(), what="the loop going on")
    assert rootfile(b, "fails") is None, rootfile(b, "fails")
    print(f"30 updates in {time.monotonic() - t0:.2f}s, {n1 - n0} loop iterations, 0 fails")
    assert sorted(devices_list(state_root, cid)) == sorted(before)
    run_kago("delete", "--force", cid)


@v1_only
@pytest.mark.parametrize("access,why", [
    ("rwa", 'invalid device access "rwa": only r, w and m'),
    ("RWM", 'invalid device access "RWM": only r, w and m'),
    ("", "cannot be empty"),
    ("r w", 'invalid device access "r w": only r, w and m'),
])
def test_update_refuses_bad_access(bundle, run_kago, cid, state_root, tmp_path, access, why):
    b = bundle("sleep 100", linux={"devices": [FUSE],
                                   "resources": {"devices": [DENY_ALL, ALLOW_FUSE]}})
    run_kago("run", "-d", "-b", b, cid)
    before = devices_list(state_root, cid)
    r = update(run_kago, tmp_path, cid,
               [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 11,
                           "access": access}], check=False)
    assert r.returncode == 1
    err = r.stderr.replace('\\"', '"')          # logfmt's quoting
    assert "update: resources.devices[1].access" in err and why in err, err
    assert "Invalid argument" not in r.stderr and "Traceback" not in r.stderr
    assert devices_list(state_root, cid) == before       # nothing written
    assert fuse_opens(run_kago, cid)[0]
    run_kago("delete", "--force", cid)


def test_create_refuses_bad_access(bundle, run_kago, cid, assert_clean):
    b = bundle("true", linux={"resources": {"devices": [
        DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rwa"}]}})
    r = run_kago("create", "-b", b, cid, check=False)
    assert r.returncode == 1
    assert ('config.json: linux.resources.devices[1].access: invalid device access "rwa": '
            "only r, w and m") in r.stderr.replace('\\"', '"'), r.stderr
    assert_clean()
