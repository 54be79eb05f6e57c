"""The command line itself: list, spec, --version, python -m kago, the default
root, Go-style flags, --log/--log-format, and concurrent verbs on one id."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

RUNC = "/usr/sbin/runc"
VENV_PY = "/opt/kago/venv/bin/python"
DEFAULT_ROOT = "/run/kago"
KEYS = ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"]
EMPTY_TABLE = "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
LOG_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")


def run_cmd(cmd, cwd=None, timeout=30):
    """Run any command with files (not pipes) for stdio; CompletedProcess, text."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=out,
                           stderr=err, text=True, timeout=timeout, cwd=cwd)
        out.seek(0)
        err.seek(0)
        p.stdout, p.stderr = out.read(), err.read()
    return p


def state(run_kago, cid, **kw):
    return json.loads(run_kago("state", cid, **kw).stdout)


# ------------------------------------------------------------------------ list

def test_list_empty_root(run_kago, state_root):
    assert run_kago("list").stdout == EMPTY_TABLE
    assert run_kago("list", "-f", "json").stdout == "null\n"
    assert run_kago("list", "--format=json").stdout == "null\n"
    assert run_kago("list", "-q").stdout == ""
    missing = state_root / "not-there"
    assert run_kago("list", root=missing).stdout == EMPTY_TABLE
    # what runc prints for an empty root, byte for byte
    assert run_cmd([RUNC, "--root", missing, "list"]).stdout == EMPTY_TABLE


def test_list_formats(run_kago, bundle, make_cid):
    b = bundle(["sleep", "60"], rootfs="shared")
    a, z = sorted([make_cid(), make_cid()])
    run_kago("create", "-b", b, z)
    run_kago("run", "-d", "-b", b, a)
    sa, sz = state(run_kago, a), state(run_kago, z)

    table = run_kago("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert [row.split() for row in table[1:]] == [
        [a, str(sa["pid"]), "running", str(b), sa["created"], "root"],
        [z, str(sz["pid"]), "created", str(b), sz["created"], "root"]]
    # tabwriter columns: every cell of a column starts at the same offset
    for col in ("PID", "STATUS", "BUNDLE", "CREATED", "OWNER"):
        at = table[0].index(col)
        assert all(row[at - 1] == " " and row[at] != " " for row in table[1:]), table

    js = json.loads(run_kago("list", "-f", "json").stdout)
    assert [list(d) for d in js] == [KEYS, KEYS]
    assert [(d["id"], d["status"], d["pid"], d["owner"]) for d in js] == [
        (a, "running", sa["pid"], "root"), (z, "created", sz["pid"], "root")]

    assert run_kago("list", "-q").stdout == f"{a}\n{z}\n"
    assert run_kago("list", "--quiet", "-f", "json").stdout == f"{a}\n{z}\n"

    r = run_kago("list", "-f", "yaml", check=False)
    assert r.returncode == 1 and r.stderr.rstrip().endswith('msg="invalid format option"')
    for c in (a, z):
        run_kago("delete", "--force", c)


# ------------------------------------------------------------------------ spec

def test_spec_matches_runc(run_kago, tmp_path):
    k, r = tmp_path / "k", tmp_path / "r"
    k.mkdir()
    r.mkdir()
    run_kago("spec", cwd=k)
    assert run_cmd([RUNC, "spec"], cwd=r).returncode == 0
    kj, rj = json.loads((k / "config.json").read_text()), json.loads((r / "config.json").read_text())
    kj.pop("ociVersion")
    rj.pop("ociVersion")
    assert kj == rj
    assert oct((k / "config.json").stat().st_mode & 0o777) == "0o644"


def test_spec_rootless_and_bundle_flag(run_kago, tmp_path):
    run_kago("spec", "--rootless", "--bundle", tmp_path)
    c = json.loads((tmp_path / "config.json").read_text())
    assert {"type": "user"} in c["linux"]["namespaces"]
    assert c["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert c["linux"]["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in c["linux"]
    r = tmp_path / "r"
    r.mkdir()
    assert run_cmd([RUNC, "spec", "--rootless", "-b", r]).returncode == 0
    rc = json.loads((r / "config.json").read_text())
    assert {**c, "ociVersion": ""} == {**rc, "ociVersion": ""}


def test_spec_refuses_existing_config(run_kago, tmp_path):
    (tmp_path / "config.json").write_text("{}\n")
    r = run_kago("spec", "-b", tmp_path, check=False)
    assert r.returncode == 1
    assert r.stderr.rstrip().endswith('msg="File config.json exists. Remove it first"')
    assert len(r.stderr.splitlines()) == 1
    assert (tmp_path / "config.json").read_text() == "{}\n"


def test_spec_then_run(run_kago, bundle, cid, tmp_path, assert_clean):
    """The default spec runs a container (with a rootfs and a few edits)."""
    b = bundle(["true"])
    (b / "config.json").unlink()
    run_kago("spec", "-b", b)
    c = json.loads((b / "config.json").read_text())
    c["process"]["terminal"] = False
    c["process"]["args"] = ["sh", "-c", "hostname; echo $PATH"]
    (b / "config.json").write_text(json.dumps(c))
    r = run_kago("run", "-b", b, cid)
    assert r.stdout == "runc\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    assert_clean()


# ------------------------------------------------------------ version, -m kago

def test_version(run_kago, kago_bin):
    import kago
    for flag in ("--version", "-v"):
        out = run_cmd([kago_bin, flag]).stdout
        assert out == f"kago version {kago.__version__}\nspec: {kago.OCI_VERSION}\n"


def test_python_m_kago(kago_bin):
    if not os.access(VENV_PY, os.X_OK):
        pytest.skip(f"{VENV_PY} is not installed")
    # cwd / so that the installed package is used, not this source tree
    p = run_cmd([VENV_PY, "-m", "kago", "--version"], cwd="/")
    assert p.returncode == 0, p
    assert p.stdout == run_cmd([kago_bin, "--version"]).stdout
    assert p.stdout.startswith("kago version ")


# ---------------------------------------------------------------- default root

def test_default_root_when_no_root_flag(run_kago, bundle, cid, state_root, assert_clean):
    """podman passes no --root: /run/kago must be used, by every verb."""
    d = os.path.join(DEFAULT_ROOT, cid)
    try:
        run_kago("create", "-b", bundle(["sleep", "60"]), cid, root=None)
        assert os.path.isfile(os.path.join(d, "state.json"))
        assert not (state_root / cid).exists()
        assert state(run_kago, cid, root=None)["status"] == "created"
        assert cid in run_kago("list", "-q", root=None).stdout.split()
        run_kago("start", cid, root=None)
        assert state(run_kago, cid, root=None)["status"] == "running"
        run_kago("delete", "--force", cid, root=None)
        assert not os.path.exists(d)
    finally:
        if os.path.exists(d):
            run_kago("delete", "--force", cid, root=None, check=False)
            shutil.rmtree(d, ignore_errors=True)
    assert_clean()


# ------------------------------------------------------------- Go-style flags

def test_go_style_flags(run_kago, kago_bin, bundle, make_cid, state_root, tmp_path):
    b = bundle(["sleep", "60"], rootfs="shared")
    k = lambda *a, **kw: run_cmd([kago_bin, *a], **kw)  # noqa: E731  (no implicit --root)
    c1, c2, c3 = make_cid(), make_cid(), make_cid()
    assert k("-root", state_root, "create", "-b", b, c1).returncode == 0
    assert k(f"--root={state_root}", "create", f"--bundle={b}", c2).returncode == 0
    # flags after the positional argument, and a relative --root
    rel = os.path.relpath(state_root, tmp_path)
    assert k("--root", rel, "create", c3, "--bundle", b, "--pid-file", "p3",
             cwd=tmp_path).returncode == 0
    assert (tmp_path / "p3").read_text() == str(state(run_kago, c3)["pid"])
    assert run_kago("list", "-q").stdout.split() == sorted([c1, c2, c3])
    assert state(run_kago, c2)["bundle"] == str(b)
    assert k("-root", state_root, "delete", c1, "--force").returncode == 0
    assert k(f"--root={state_root}", "delete", "-f", c2).returncode == 0
    assert k("--root", rel, "kill", c3, "KILL", cwd=tmp_path).returncode == 0
    assert k("--root", state_root, "delete", c3, "--force").returncode == 0
    assert run_kago("list", "-q").stdout == ""


# ------------------------------------------------------------------- logging

def _log_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("case", ["not-found", "bad-config"])
def test_log_json_matches_runc(run_kago, kago_bin, bundle, cid, tmp_path, case):
    """--log F --log-format json: runc's {"level","msg","time"} records, the last
    error naming what failed, and the bare message on stderr too."""
    if case == "not-found":
        args, want = ["start", cid], "container does not exist"
    else:
        b = bundle(["true"], rootfs=None)
        args, want = ["create", "-b", b, cid], "root.path"
    klog, rlog = tmp_path / "kago.log", tmp_path / "runc.log"
    r = run_kago("--log", klog, "--log-format", "json", *args, check=False)
    rr = run_cmd([RUNC, "--root", tmp_path / "rr", "--log", rlog, "--log-format", "json", *args])
    assert r.returncode == rr.returncode == 1
    k_recs, r_recs = _log_lines(klog), _log_lines(rlog)
    assert [list(x) for x in k_recs] == [list(x) for x in r_recs] == [["level", "msg", "time"]]
    last = k_recs[-1]
    assert last["level"] == "error" and want in last["msg"]
    assert LOG_TIME.match(last["time"]) and LOG_TIME.match(r_recs[-1]["time"])
    if case == "not-found":
        assert last["msg"] == r_recs[-1]["msg"]
    else:
        assert last["msg"].startswith("kago create failed: ")
    # like runc: with a log file, stderr gets the bare message
    assert r.stderr == last["msg"] + "\n"
    assert rr.stderr == r_recs[-1]["msg"] + "\n"


def test_log_text_format_appends(run_kago, cid, tmp_path):
    log = tmp_path / "k.log"
    run_kago("--log", log, "state", cid, check=False)
    run_kago("--log", log, "--log-format", "text", "kill", cid, check=False)
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(r'time="[^"]+" level=error msg="container does not exist"', line)


def test_log_of_failed_run_in_container(run_kago, bundle, cid, tmp_path, state_root,
                                        assert_clean):
    log = tmp_path / "k.log"
    r = run_kago("--log", log, "--log-format", "json", "run", "-b", bundle(["nope"]), cid,
                 check=False)
    assert r.returncode == 1
    last = _log_lines(log)[-1]
    assert last["msg"] == 'kago run failed: exec: "nope": executable file not found in $PATH'
    assert not (state_root / cid).exists()
    assert_clean()


# ---------------------------------------------------------------- concurrency

def _spawn(kago_bin, root, *args):
    out = tempfile.TemporaryFile("w+")
    p = subprocess.Popen([kago_bin, "--root", str(root), *map(str, args)],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, text=True)
    return p, out


def _finish(p, out):
    p.wait(timeout=30)
    out.seek(0)
    text = out.read()
    out.close()
    return p.returncode, text


def test_concurrent_force_deletes(run_kago, kago_bin, bundle, cid, state_root, assert_clean):
    b = bundle("sleep 100 & sleep 101 & wait", rootfs="shared")
    for _ in range(3):
        run_kago("run", "-d", "-b", b, cid)
        procs = [_spawn(kago_bin, state_root, "delete", "--force", cid) for _ in range(3)]
        procs.append(_spawn(kago_bin, state_root, "delete", cid))
        procs.append(_spawn(kago_bin, state_root, "kill", cid, "KILL"))
        results = [_finish(*p) for p in procs]
        for code, text in results[:3]:
            assert (code, text) == (0, ""), results
        for code, text in results[3:]:
            assert "Traceback" not in text
            assert code == 0 or (code == 1 and re.search(
                r'msg="(container does not exist|container not running|'
                r'cannot delete container \S+ that is not stopped: running)"', text)), results
        assert not (state_root / cid).exists()
        assert_clean()


def test_concurrent_starts(run_kago, kago_bin, bundle, cid, state_root):
    run_kago("create", "-b", bundle("echo started", rootfs="shared"), cid)
    procs = [_spawn(kago_bin, state_root, "start", cid) for _ in range(4)]
    results = sorted(_finish(*p) for p in procs)
    assert [code for code, _ in results] == [0, 1, 1, 1], results
    for _, text in results[1:]:
        assert re.search(r'msg="cannot start (an already running container|'
                         r'a container that has stopped)"$', text.strip()), results
    run_kago("delete", "--force", cid)


# ------------------------------------------------------------- the import set

def _imported(kago_bin, state_root, *args):
    """Run the installed launcher under ``-X importtime``: (result, module names)."""
    with open(kago_bin) as f:
        interp = f.readline()[2:].split()[0]      # the launcher's #! interpreter
    p = run_cmd([interp, "-IS", "-X", "importtime", kago_bin, "--root", state_root, *args])
    mods = {line.rsplit("|", 1)[1].strip() for line in p.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}
    return p, mods


def test_fork_chain_imports_neither_os_nor_ctypes(run_kago, kago_bin, bundle, make_cid,
                                                  state_root, assert_clean):
    """run, create and exec (main, intermediate and init alike) do without
    `os` (kago._os) and `ctypes` (kago._ffi): ≈ 3 ms of cpu and 0.5 MiB a call."""
    b = bundle("echo ran-in-container", linux={"seccomp": {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mknodat"], "action": "SCMP_ACT_ERRNO"}]}})
    never = {"os", "ctypes", "posixpath", "_collections_abc", "subprocess", "json",
             "struct", "stat", "resource", "copy"}
    p, mods = _imported(kago_bin, state_root, "run", "-b", b, make_cid())
    assert p.returncode == 0 and "ran-in-container" in p.stdout, p
    assert {"kago.process.init", "kago.rootfs", "kago._ffi", "kago.security.seccomp"} <= mods
    assert not mods & never, sorted(mods & never)
    sleeper = make_cid()
    run_kago("run", "-d", "-b", bundle(["sleep", "100"]), sleeper)
    p, mods = _imported(kago_bin, state_root, "exec", sleeper, "sh", "-c", "echo ran-exec")
    assert p.returncode == 0 and p.stdout == "ran-exec\n", p
    assert "kago.container.exec" in mods and not mods & never, sorted(mods & never)
    run_kago("delete", "--force", sleeper)
    assert_clean()
