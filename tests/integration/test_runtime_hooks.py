"""OCI hooks, all six: order, the state each is given on stdin, the namespace
each runs in, ``timeout``, and what a failure does (issue 2, "Hooks").

Every hook is a ``#!/bin/sh`` script appending one line to a log:
``NAME<TAB>mnt ns<TAB>net ns<TAB>pid ns<TAB>$HOOKVAR<TAB>state JSON``.
prestart, createRuntime, createContainer, poststart and poststop are host
paths; startContainer resolves in the container, so the script is copied into
the rootfs and logs to a host directory bind-mounted at /hooklog.
"""

import json
import os

import pytest

HOOK = r"""#!/bin/sh
state=$(cat)
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(readlink /proc/self/ns/mnt)" \
    "$(readlink /proc/self/ns/net)" "$(readlink /proc/self/ns/pid)" "$HOOKVAR" "$(pwd)" \
    "$state" >> "$2"
"""

HOST_KINDS = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
ALL_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer",
             "poststart", "poststop")


def ns(pid="self") -> dict:
    return {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in ("mnt", "net", "pid")}


def read_log(path) -> list[dict]:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        name, mnt, net, pid, var, cwd, state = line.split("\t")
        out.append({"name": name, "mnt": mnt, "net": net, "pid": pid, "var": var, "cwd": cwd,
                    "state": json.loads(state)})
    return out


def state_of(run_kago, cid) -> dict:
    return json.loads(run_kago("state", cid).stdout)


@pytest.fixture
def hooked(bundle, tmp_path):
    """bundle(args, hooks={kind: extra hook fields or a script body}) with the
    logging hook (or the given script) for each kind; returns (bundle, log)."""
    logdir = tmp_path / "hooklog"
    logdir.mkdir()
    log = logdir / "log"
    script = tmp_path / "hook.sh"
    script.write_text(HOOK)
    script.chmod(0o755)

    def make(args, kinds=ALL_KINDS, scripts=None, timeouts=None, **overrides):
        scripts = scripts or {}
        timeouts = timeouts or {}
        hooks = {}
        for k in kinds:
            in_container = k == "startContainer"
            path = str(script)
            if k in scripts:
                path = str(tmp_path / f"{k}.sh")
                with open(path, "w") as f:
                    f.write("#!/bin/sh\n" + scripts[k] + "\n")
                os.chmod(path, 0o755)
            h = {"path": "/" + os.path.basename(path) if in_container else path,
                 "args": ["hook", k, "/hooklog/log" if in_container else str(log)],
                 "env": [f"HOOKVAR=var-{k}"]}
            if k in timeouts:
                h["timeout"] = timeouts[k]
            hooks.setdefault(k, []).append(h)

        def edit(c):
            c["hooks"] = hooks
            c["mounts"].append({"destination": "/hooklog", "type": "bind",
                                "source": str(logdir), "options": ["rbind", "rw"]})
        b = bundle(args, edit=edit, **overrides)
        for k in kinds:
            if k == "startContainer":
                src = tmp_path / f"{k}.sh" if k in scripts else script
                dst = b / "rootfs" / os.path.basename(str(src))
                dst.write_text(src.read_text())
                dst.chmod(0o755)
        return b

    make.log = log
    make.logdir = logdir
    return make


# ---------------------------------------------------------------------------


def test_all_six_hooks_order_state_namespaces(hooked, run_kago, cid, wait_until):
    b = hooked(["sleep", "300"], annotations={"org.example.kago": "annotated"})
    host = ns()
    log = hooked.log

    run_kago("create", "--bundle", b, cid)
    pid = state_of(run_kago, cid)["pid"]
    inside = ns(pid)
    assert inside["mnt"] != host["mnt"] and inside["pid"] != host["pid"]
    entries = read_log(log)
    assert [e["name"] for e in entries] == ["prestart", "createRuntime", "createContainer"]

    run_kago("start", cid)
    wait_until(lambda: len(read_log(log)) >= 5, what="startContainer and poststart hooks")
    assert state_of(run_kago, cid)["status"] == "running"
    run_kago("kill", cid, "KILL")
    wait_until(lambda: state_of(run_kago, cid)["status"] == "stopped", what="stopped")
    run_kago("delete", cid)

    entries = read_log(log)
    assert [e["name"] for e in entries] == list(ALL_KINDS)
    by = {e["name"]: e for e in entries}
    want_status = {"prestart": "created", "createRuntime": "creating",
                   "createContainer": "creating", "startContainer": "created",
                   "poststart": "running", "poststop": "stopped"}
    for kind, e in by.items():
        st = e["state"]
        assert st["id"] == cid, kind
        assert st["bundle"] == str(b), kind
        assert st["status"] == want_status[kind], (kind, st)
        assert "ociVersion" in st, kind
        assert st.get("annotations") == {"org.example.kago": "annotated"}, (kind, st)
        assert e["var"] == f"var-{kind}", kind   # the hook's env
        if kind != "poststop":  # pid is optional once stopped
            assert st["pid"] == pid, (kind, st)
        else:
            assert "pid" not in st, st        # as runc: it may be another process's now
    # the working directory, as runc: the bundle, its rootfs for createContainer
    # (before pivot_root), the container's cwd for startContainer, the caller's
    # for poststop
    assert {k: by[k]["cwd"] for k in ALL_KINDS} == {
        "prestart": str(b), "createRuntime": str(b), "createContainer": f"{b}/rootfs",
        "startContainer": "/", "poststart": str(b), "poststop": os.getcwd()}
    # where each ran: the runtime's namespaces, or the container's
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        assert by[kind]["mnt"] == host["mnt"], kind
        assert by[kind]["net"] == host["net"], kind
        assert by[kind]["pid"] == host["pid"], kind
    for kind in ("createContainer", "startContainer"):
        assert by[kind]["mnt"] == inside["mnt"], kind
        assert by[kind]["net"] == inside["net"], kind
        assert by[kind]["pid"] == inside["pid"], kind


def test_hooks_with_run(hooked, run_kago, cid):
    """`kago run` runs all six, the process between startContainer and poststop."""
    b = hooked("echo process >> /hooklog/log")
    run_kago("run", "--bundle", b, cid)
    lines = hooked.log.read_text().splitlines()
    names = [line.split("\t")[0] for line in lines]
    assert names[:4] == ["prestart", "createRuntime", "createContainer", "startContainer"]
    assert names[-1] == "poststop"
    assert set(names[4:6]) == {"process", "poststart"} and len(names) == 7, names


def test_hook_timeout(hooked, run_kago, cid, assert_clean, tmp_path):
    import random
    import time
    nap = f"29.{random.randrange(10**6):06d}"   # recognisable in /proc/*/cmdline
    b = hooked(["true"], kinds=("createRuntime",),
               scripts={"createRuntime": f"exec sleep {nap}"},
               timeouts={"createRuntime": 1})
    t0 = time.monotonic()
    r = run_kago("create", "--bundle", b, cid, check=False)
    took = time.monotonic() - t0
    assert r.returncode != 0
    assert took < 10, f"create took {took:.1f}s with a 1s hook timeout"
    assert "createRuntime" in r.stderr and "timed out" in r.stderr, r.stderr
    assert_clean()
    # the hook was killed, not left sleeping
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    assert nap.encode() not in f.read(), f"hook process {p} still alive"
            except OSError:
                pass


def test_hook_timeout_with_a_state_bigger_than_the_pipe(hooked, run_kago, cid, assert_clean):
    """A hook that never reads its stdin, given a state larger than a pipe's
    buffer (big annotations), still times out instead of blocking kago."""
    import time
    b = hooked(["true"], kinds=("prestart",), scripts={"prestart": "exec sleep 30"},
               timeouts={"prestart": 1},
               annotations={f"big.{i}": "x" * 1000 for i in range(200)})
    t0 = time.monotonic()
    r = run_kago("create", "--bundle", b, cid, check=False, timeout=25)
    took = time.monotonic() - t0
    assert r.returncode != 0
    assert "prestart" in r.stderr and "timed out after 1s" in r.stderr, r.stderr
    assert took < 10, f"create took {took:.1f}s with a 1s hook timeout"
    assert_clean()


def test_hook_within_timeout_succeeds(hooked, run_kago, cid):
    b = hooked(["true"], kinds=("prestart",),
               scripts={"prestart": f"cat > /dev/null; sleep 0.2; echo ok >> {hooked.log}"},
               timeouts={"prestart": 5})
    run_kago("run", "--bundle", b, cid)
    assert hooked.log.read_text() == "ok\n"


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create(hooked, run_kago, cid, kind, assert_clean,
                                          state_root):
    b = hooked("echo ran >> /hooklog/ran", kinds=(kind,),
               scripts={kind: "cat > /dev/null; echo hook-says-no >&2; exit 3"})
    r = run_kago("create", "--bundle", b, cid, check=False)
    assert r.returncode != 0
    assert kind in r.stderr, r.stderr
    assert "status 3" in r.stderr or "exit" in r.stderr, r.stderr
    assert_clean()
    assert os.listdir(state_root) == []
    r = run_kago("state", cid, check=False)
    assert r.returncode != 0
    # `run` fails the same way, and the process never runs
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode != 0 and kind in r.stderr
    assert not (hooked.logdir / "ran").exists()
    assert_clean()


def test_failing_start_container_hook_fails_start(hooked, run_kago, cid, wait_until,
                                                  assert_clean):
    b = hooked("echo ran >> /hooklog/ran; sleep 300", kinds=("startContainer", "poststop"),
               scripts={"startContainer": "exit 4"})
    run_kago("create", "--bundle", b, cid)
    r = run_kago("start", cid, check=False)
    assert r.returncode != 0
    assert "startContainer" in r.stderr, r.stderr
    wait_until(lambda: state_of(run_kago, cid)["status"] == "stopped",
               what="the container to be stopped")
    assert not (hooked.logdir / "ran").exists(), "process.args ran after a failed hook"
    run_kago("delete", cid)
    assert [e["name"] for e in read_log(hooked.log)] == ["poststop"]
    # `run` fails the same way and cleans up (poststop included)
    hooked.log.unlink()
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode != 0 and "startContainer" in r.stderr, r.stderr
    assert not (hooked.logdir / "ran").exists()
    assert [e["name"] for e in read_log(hooked.log)] == ["poststop"]
    assert_clean()


def test_failing_poststart_and_poststop_only_warn(hooked, run_kago, cid, state_root):
    b = hooked(["sleep", "300"], kinds=("poststart", "poststop"),
               scripts={"poststart": "exit 5", "poststop": "exit 6"})
    run_kago("create", "--bundle", b, cid)
    r = run_kago("start", cid)
    assert "poststart" in r.stderr, r.stderr   # warned
    assert state_of(run_kago, cid)["status"] == "running"
    r = run_kago("delete", "--force", cid)
    assert "poststop" in r.stderr, r.stderr
    assert not (state_root / cid).exists()


def test_failing_poststop_hook_warns_and_the_next_one_runs(bundle, run_kago, cid, state_root,
                                                           tmp_path, assert_clean):
    """spec: a poststop failure MUST be logged and the remaining hooks still run;
    delete completes."""
    log = tmp_path / "poststop.log"
    fail = tmp_path / "fail.sh"
    fail.write_text(f"#!/bin/sh\necho first >> {log}\nexit 6\n")
    ok = tmp_path / "ok.sh"
    ok.write_text(f"#!/bin/sh\necho second >> {log}\n")
    for f in (fail, ok):
        f.chmod(0o755)
    b = bundle(["sleep", "300"], hooks={"poststop": [{"path": str(fail)}, {"path": str(ok)}]})
    run_kago("create", "--bundle", b, cid)
    r = run_kago("delete", "--force", cid)
    assert "poststop" in r.stderr and "exit status 6" in r.stderr, r.stderr
    assert log.read_text().split() == ["first", "second"]
    assert not (state_root / cid).exists()
    assert_clean()


def test_hook_without_env_gets_kagos_environment(bundle, run_kago, cid, tmp_path):
    """No ``env``: the hook inherits kago's environment (runc: Go's exec with a nil
    Env), so PATH is there; ``env: []`` is an empty environment."""
    out = {k: tmp_path / f"{k}.env" for k in ("none", "empty")}
    hooks = {}
    for k, f in out.items():
        script = tmp_path / f"{k}.sh"
        script.write_text(f"#!/bin/sh\nenv > {f}\n")
        script.chmod(0o755)
        hooks.setdefault("prestart", []).append(
            {"path": str(script)} if k == "none" else {"path": str(script), "env": []})
    b = bundle(["true"], hooks=hooks)
    env = dict(os.environ, KAGO_HOOK_TEST="inherited")
    run_kago("create", "--bundle", b, cid, env=env)
    run_kago("delete", "--force", cid)
    inherited = out["none"].read_text().splitlines()
    assert "KAGO_HOOK_TEST=inherited" in inherited, inherited
    assert any(line.startswith("PATH=") for line in inherited), inherited
    assert "KAGO_HOOK_TEST=inherited" not in out["empty"].read_text()
