"""Capabilities in real containers (issue 5): the five sets read from
/proc/<pid>/status inside the container match the spec, for init and for
exec'd processes, as root and as a non-root user (ambient caps across the
uid change), and unknown names are a warning, not a failure."""

import os
import re
from pathlib import Path

import pytest

from kago import Container
from kago.container.exec import exec_process
from kago.security.capabilities import CAPS

SETS = {"bounding": "CapBnd", "effective": "CapEff", "permitted": "CapPrm",
        "inheritable": "CapInh", "ambient": "CapAmb"}
SHOW = "grep -E '^(Cap|NoNewPrivs|Uid)' /proc/self/status"


def mask(names):
    m = 0
    for n in names:
        m |= 1 << CAPS[n]
    return m


def parse(out):
    got = {}
    for key in SETS.values():
        found = re.findall(rf"^{key}:\s+([0-9a-f]+)$", out, re.M)
        assert found, f"{key} missing in:\n{out}"
        got[key] = int(found[-1], 16)
    return got


DEFAULT = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
           "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
           "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


def caps(bounding, effective=None, permitted=None, inheritable=(), ambient=()):
    return {"bounding": list(bounding), "effective": list(effective or bounding),
            "permitted": list(permitted or bounding), "inheritable": list(inheritable),
            "ambient": list(ambient)}


def run_show(bundle, run_kago, cid, capset, user=None):
    proc = {"capabilities": capset}
    if user:
        proc["user"] = user
    b = bundle(SHOW, process=proc)
    r = run_kago("run", "--bundle", b, cid)
    return parse(r.stdout), r


def test_root_default_set(bundle, run_kago, cid):
    got, _ = run_show(bundle, run_kago, cid, caps(DEFAULT))
    m = mask(DEFAULT)
    assert got == {"CapBnd": m, "CapEff": m, "CapPrm": m, "CapInh": 0, "CapAmb": 0}


@pytest.mark.parametrize("nnp", [True, False])
def test_root_sets_differ(bundle, run_kago, cid, nnp):
    """Root after execve: the kernel gives uid 0 permitted = bounding |
    inheritable and effective = permitted - unless noNewPrivileges, which
    caps permitted at what it was before execve (the spec's permitted).
    Inheritable stays as set."""
    bnd = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETPCAP"]
    b = bundle(SHOW, process={"noNewPrivileges": nnp, "capabilities": caps(
        bnd, effective=["CAP_KILL"], permitted=["CAP_KILL", "CAP_CHOWN"],
        inheritable=["CAP_NET_RAW"])})
    got = parse(run_kago("run", "--bundle", b, cid).stdout)
    assert got["CapBnd"] == mask(bnd)
    assert got["CapInh"] == mask(["CAP_NET_RAW"])
    want = mask(["CAP_KILL", "CAP_CHOWN"]) if nnp else mask(bnd)
    assert got["CapPrm"] == got["CapEff"] == want


def test_non_root_with_ambient(bundle, run_kago, cid):
    """uid 1000: only ambient caps survive execve (into permitted and
    effective).  That needs them kept across the uid change (keep-caps) and
    raised after it, in runc's order."""
    amb = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    got, r = run_show(bundle, run_kago, cid,
                      caps(DEFAULT, inheritable=amb, ambient=amb),
                      user={"uid": 1000, "gid": 1000})
    assert re.search(r"^Uid:\s+1000\s", r.stdout, re.M)
    assert got == {"CapBnd": mask(DEFAULT), "CapEff": mask(amb), "CapPrm": mask(amb),
                   "CapInh": mask(amb), "CapAmb": mask(amb)}


def test_non_root_without_ambient_has_none(bundle, run_kago, cid):
    got, _ = run_show(bundle, run_kago, cid, caps(DEFAULT), user={"uid": 1000, "gid": 1000})
    assert got["CapEff"] == got["CapPrm"] == got["CapAmb"] == 0
    assert got["CapBnd"] == mask(DEFAULT)


def test_ambient_not_in_inheritable_is_skipped(bundle, run_kago, cid):
    """runc: an ambient cap that isn't also permitted+inheritable can't be
    raised; it is skipped, not fatal."""
    got, _ = run_show(bundle, run_kago, cid,
                      caps(DEFAULT, inheritable=["CAP_KILL"],
                           ambient=["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
                      user={"uid": 1000, "gid": 1000})
    assert got["CapAmb"] == mask(["CAP_KILL"])


def test_empty_sets(bundle, run_kago, cid):
    got, _ = run_show(bundle, run_kago, cid, caps([]))
    assert got == {k: 0 for k in SETS.values()}


def test_unknown_capability_is_a_warning(bundle, run_kago, cid):
    got, r = run_show(bundle, run_kago, cid, caps(["CAP_KILL", "CAP_FLY_TO_THE_MOON"]))
    assert got["CapBnd"] == mask(["CAP_KILL"])
    assert "CAP_FLY_TO_THE_MOON" in r.stderr


def test_unknown_capability_warning_goes_to_the_log(bundle, run_kago, cid, tmp_path):
    # runc's text, as a warning record in kago's --log (what an engine reads),
    # never in the container's own stderr (an engine's container log)
    import json
    b = bundle(SHOW + "; sleep 600", process={"capabilities": caps(
        ["CAP_KILL", "CAP_FLY", "CAP_FLY", "CAP_SWIM"], permitted=["CAP_KILL", "CAP_RUN"])})
    log, out, err = tmp_path / "log.json", tmp_path / "out", tmp_path / "err"
    with open(out, "w") as o, open(err, "w") as e:
        run_kago("--log", log, "--log-format", "json", "create", "-b", b, cid,
                 stdout=o, stderr=e)
    run_kago("start", cid)
    want = "ignoring unknown or unavailable capabilities: [CAP_FLY CAP_SWIM CAP_RUN]"
    records = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert [(r["level"], r["msg"]) for r in records] == [("warning", want)]
    # exec: the same warning for --cap, on kago's stderr; the process runs
    x = run_kago("exec", "--cap", "CAP_NOPE", cid, "sh", "-c", SHOW)
    assert 'level=warning msg="ignoring unknown or unavailable capabilities: [' in x.stderr
    assert "CAP_NOPE" in x.stderr and "CapBnd" in x.stdout
    run_kago("delete", "--force", cid)
    assert "CapBnd" in out.read_text()
    assert err.read_text() == ""


def test_no_capabilities_object_keeps_the_full_set(bundle, run_kago, cid):
    def drop(c):
        del c["process"]["capabilities"]
    b = bundle(SHOW, edit=drop)
    got = parse(run_kago("run", "--bundle", b, cid).stdout)
    host_bnd = int(re.search(r"CapBnd:\s+([0-9a-f]+)",
                             Path("/proc/self/status").read_text()).group(1), 16)
    assert got["CapBnd"] == host_bnd


@pytest.fixture
def reaper():
    yield
    from kago import sys as ksys
    ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 0)


@pytest.mark.parametrize("uid", [0, 1000])
def test_exec_gets_its_own_sets(bundle, run_kago, cid, state_root, tmp_path, reaper, uid):
    b = bundle("sleep 60", process={"capabilities": caps(DEFAULT)})
    run_kago("run", "-d", "--bundle", b, cid)
    c = Container.load(str(state_root), cid)
    amb = ["CAP_KILL"]
    p = dict(c.config()["process"], args=["sh", "-c", SHOW], terminal=False,
             user={"uid": uid, "gid": uid},
             capabilities=caps(["CAP_KILL", "CAP_CHOWN"], inheritable=amb, ambient=amb))
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
    saved = os.dup(1)
    os.dup2(fd, 1)
    try:
        assert exec_process(c, p) == 0
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(fd)
    got = parse(out.read_text())
    bnd = mask(["CAP_KILL", "CAP_CHOWN"])
    assert got["CapBnd"] == bnd and got["CapInh"] == mask(amb) and got["CapAmb"] == mask(amb)
    if uid == 0:
        assert got["CapEff"] == got["CapPrm"] == bnd
    else:
        assert got["CapEff"] == got["CapPrm"] == mask(amb)
    # the container's init kept its own sets
    init = Path(f"/proc/{c.pid}/status").read_text()
    assert parse(init)["CapBnd"] == mask(DEFAULT)
    run_kago("delete", "--force", cid)
