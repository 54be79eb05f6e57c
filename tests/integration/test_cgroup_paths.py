"""cgroup paths stay inside the cgroup filesystem (issue 12, item 2).

``linux.cgroupsPath`` is cleaned as runc's utils.CleanPath does (Go's
filepath.Clean from ``/``; a relative path stays relative, under our own
cgroup) before it meets a hierarchy: a ``..`` can't climb out of a cgroup
mount, and the container's cgroup is where the cleaned path says.
``exec --cgroup [CTRL[,CTRL]:]PATH`` only ever names a sub-cgroup of the
container's (runc's ``PATH is not a sub cgroup path``).  Both checked on the
host: its directories, /proc/PID/cgroup of the processes.
"""

import json
import os
import re
import time

import pytest

CG = "/sys/fs/cgroup"


def _mounts() -> dict:
    """controller (or "" for cgroup2, name=systemd) -> mountpoint."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, opts = right.split()[:3]
            mp = left.split()[4]
            if fstype == "cgroup2":
                out.setdefault("", mp)
            elif fstype == "cgroup":
                for o in opts.split(","):
                    if o not in ("rw", "ro", "relatime", "nosuid", "nodev", "noexec",
                                 "clone_children", "noprefix", "xattr"):
                        out.setdefault(o, mp)
    return out


def _cgroups_of(pid) -> dict:
    """controller (first of its hierarchy; "" for cgroup2) -> path, from /proc/PID/cgroup."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            out[ctrls.split(",")[0]] = path
    return out


def _own_cgroups() -> dict:
    return _cgroups_of(os.getpid())


def _rmdirs_up(d, stop):
    """rmdir d and its parents up to (not including) stop, while empty."""
    while d.startswith(stop.rstrip("/") + "/"):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError:
            return
        d = os.path.dirname(d)


def _err(r) -> str:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    m = re.match(r'^time="[^"]+" level=error msg="(.*)"$', lines[0])
    assert m, r.stderr
    return m.group(1).replace('\\"', '"')


def _outside(cid) -> list:
    """Host paths the old '..' joins reached (all named after the test's id)."""
    cands = [f"/tmp/{cid}", f"/{cid}", f"/sys/{cid}", f"/sys/fs/{cid}", f"{CG}/{cid}",
             f"{CG}/tmp/{cid}", "/sys/fs/cgroup/kago-esc"]
    return [p for p in cands if os.path.lexists(p)]


# ------------------------------------------------------------ linux.cgroupsPath

HOSTILE = [
    # (cgroupsPath, cleaned absolute path below our own cgroup ("" = absolute))
    ("/../../../../tmp/{cid}/a", "/tmp/{cid}/a", False),
    ("/../{cid}/b", "/{cid}/b", False),
    ("/a/../../..//./../tmp/{cid}/c/", "/tmp/{cid}/c", False),
    ("../../../../tmp/{cid}/d", "tmp/{cid}/d", True),        # relative: own cgroup
    ("x/../../../../../{cid}/e", "{cid}/e", True),
]


@pytest.mark.parametrize("raw,clean,relative", HOSTILE,
                         ids=["abs-climb", "abs-one-up", "abs-mixed", "rel-climb", "rel-mixed"])
def test_hostile_cgroups_path_stays_in_the_cgroup_mounts(
        raw, clean, relative, bundle, run_kago, cid, state_root, assert_clean):
    raw, clean = raw.format(cid=cid), clean.format(cid=cid)
    mounts = _mounts()
    own = _own_cgroups()
    made = []
    try:
        run_kago("run", "-d", "-b", bundle(["sleep", "600"], linux={"cgroupsPath": raw}), cid)
        pid = json.loads(run_kago("state", cid).stdout)["pid"]
        # nothing outside a cgroup mount: not /tmp/<id>, not the tmpfs at /sys/fs/cgroup
        assert _outside(cid) == []
        # the container is where the cleaned path says, in every hierarchy
        got = _cgroups_of(pid)
        for ctrl, path in got.items():
            if ctrl not in mounts:
                continue
            want = clean
            if relative:
                want = os.path.join(own[ctrl], clean)
            assert path == want, (ctrl, path, want)
            d = mounts[ctrl] + want
            assert os.path.isdir(d), d
            made.append((d, mounts[ctrl]))
        assert made
        run_kago("delete", "--force", cid)
        for d, _ in made:
            assert not os.path.exists(d), d
    finally:
        for d, mp in made:          # the parents kago made and (as runc) leaves
            _rmdirs_up(os.path.dirname(d), mp)
    assert _outside(cid) == []
    assert_clean()


def test_cgroups_path_with_a_nul_byte_is_refused(bundle, run_kago, cid, assert_clean):
    b = bundle(["true"], linux={"cgroupsPath": f"/kago-esc/{cid}\u0000/../../x"})
    r = run_kago("create", "-b", b, cid, check=False)
    assert r.returncode == 1
    assert _err(r) == ("kago create failed: config.json: linux.cgroupsPath: "
                       "contains a nul byte")
    assert _outside(cid) == []
    assert_clean()


# ------------------------------------------------------------ exec --cgroup

@pytest.fixture
def running(bundle, run_kago, cid):
    run_kago("run", "-d", "-b", bundle(["sleep", "1000"]), cid)
    return json.loads(run_kago("state", cid).stdout)["pid"]


def _ps(run_kago, cid) -> list:
    return sorted(json.loads(run_kago("ps", "--format", "json", cid).stdout))


@pytest.mark.parametrize("arg,words", [
    ("../..", "../.. is not a sub cgroup path"),
    ("..", ".. is not a sub cgroup path"),
    ("/../..", "/../.. is not a sub cgroup path"),
    ("sub/../../x", "sub/../../x is not a sub cgroup path"),
    ("memory:..", ".. is not a sub cgroup path"),
    ("pids,memory:../..", "../.. is not a sub cgroup path"),
    ("whaaat:/", "unknown controller whaaat in SubCgroupPaths"),
    ("a:b:c", "invalid --cgroup argument: a:b:c"),
    (",memory:x", "invalid --cgroup argument: ,memory:x (empty <controller> prefix)"),
])
def test_exec_cgroup_outside_the_container_is_refused(
        arg, words, running, run_kago, cid, state_root):
    init = running
    before = _cgroups_of(init)
    marker = f"/proc/{init}/root/tmp/ran"
    r = run_kago("exec", "--cgroup", arg, cid, "sh", "-c", "touch /tmp/ran; sleep 100",
                 check=False)
    assert r.returncode == 255, r.stderr
    assert _err(r) == f"exec failed: {words}"
    # the process was never started: no marker, nothing new in the container
    time.sleep(0.1)
    assert not os.path.exists(marker)
    assert _ps(run_kago, cid) == [init]
    # and the root cgroup (or any above the container's) got nothing of ours
    assert _cgroups_of(init) == before


def test_exec_cgroup_arguments_are_checked_together(running, run_kago, cid):
    r = run_kago("exec", "--cgroup", "sub", "--cgroup", "memory:sub", cid, "true", check=False)
    assert r.returncode == 255
    assert _err(r) == "exec failed: invalid --cgroup argument: sub (missing <controller>: prefix)"
    r = run_kago("exec", "--cgroup", "memory:a", "--cgroup", "pids,memory:b", cid, "true",
                 check=False)
    assert r.returncode == 255
    assert _err(r) == ("exec failed: invalid --cgroup argument(s): controller memory "
                       "specified multiple times")


def test_exec_cgroup_controller_prefix_applies_to_that_controller_only(
        running, run_kago, cid, tmp_path):
    init = running
    mounts = _mounts()
    base = _cgroups_of(init)
    if "memory" not in base or "pids" not in base or "memory" not in mounts:
        pytest.skip("needs the v1 memory and pids controllers (hybrid host)")
    made = []
    try:
        for ctrl in ("memory", "pids"):
            d = mounts[ctrl] + base[ctrl] + "/sub"
            os.mkdir(d)
            made.append(d)
        pid_file = tmp_path / "t.pid"
        # a sub-cgroup spelled the long way round is still a sub-cgroup
        run_kago("exec", "-d", "--pid-file", pid_file, "--cgroup", "memory:x/../sub/.",
                 "--cgroup", "pids:/sub", cid, "sleep", "1000")
        t = int(pid_file.read_text())
        got = _cgroups_of(t)
        assert got["memory"] == base["memory"] + "/sub"
        assert got["pids"] == base["pids"] + "/sub"
        for ctrl, path in got.items():           # every other one: the container's
            if ctrl not in ("memory", "pids"):
                assert path == base[ctrl], (ctrl, path)
        assert sorted(_ps(run_kago, cid)) == sorted([init, t])
        # the whole container's sub-cgroup, no prefix: every hierarchy
        pid_file2 = tmp_path / "t2.pid"
        r = run_kago("exec", "-d", "--pid-file", pid_file2, "--cgroup", "sub", cid, "true",
                     check=False)
        # the sub-cgroup exists only in memory and pids: refused, as runc
        assert r.returncode == 255 and "sub" in _err(r)
        # "/" is the container's own cgroup
        pid_file3 = tmp_path / "t3.pid"
        run_kago("exec", "-d", "--pid-file", pid_file3, "--cgroup", "/", cid, "sleep", "1000")
        t3 = int(pid_file3.read_text())
        assert _cgroups_of(t3) == base
        run_kago("delete", "--force", cid)
        assert not any(os.path.exists(d) for d in made)
    finally:
        for d in made:
            try:
                os.rmdir(d)
            except OSError:
                pass
