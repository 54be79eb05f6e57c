"""Bad input through the command line: each gives ONE clear line naming the
problem (the JSON path where there is one), exit status 1, the same text as the
last error record of ``--log`` (json), and leaves no state dir, mount, cgroup
or process behind."""

import json
import os
import re

import pytest

LINE = re.compile(r'^time="[^"]+" level=error msg="(.*)"$')


def mounts_plus(extra):
    def edit(c):
        c["mounts"].append(extra)
        return c
    return edit


def failure(run_kago, tmp_path, *args):
    """Run a failing command with a json --log; return its one message."""
    log = tmp_path / f"fail-{len(list(tmp_path.glob('fail-*')))}.log"
    r = run_kago("--log", log, "--log-format", "json", *args, check=False)
    assert r.returncode == 1, r
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr:\n{r.stderr}"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records and records[-1]["level"] == "error"
    assert lines[0] == records[-1]["msg"]        # stderr and the log agree
    return lines[0]


def no_state(state_root):
    assert [e for e in os.listdir(state_root)] == []


# (name, bundle args, bundle kwargs, expected message after "kago <verb> failed: ";
#  {bundle} is the bundle, {m} / {n} the index of the last mount / namespace)
CONFIG_CASES = [
    ("args-not-a-list", None, dict(edit=lambda c: c["process"].update(args="sh")),
     "config.json: process.args: expected array, got string"),
    ("args-element-type", None, dict(edit=lambda c: c["process"].update(args=["sh", 1])),
     "config.json: process.args[1]: expected string, got integer"),
    ("hostname-type", ["true"], dict(hostname=5),
     "config.json: hostname: expected string, got integer"),
    ("empty-args", ["true"], dict(edit=lambda c: c["process"].update(args=[])),
     "config.json: process.args: args must not be empty"),
    ("unknown-namespace", ["true"],
     dict(edit=lambda c: c["linux"]["namespaces"].append({"type": "bogus"})),
     'config.json: linux.namespaces[{n}].type: unknown namespace type "bogus"'),
    ("relative-hook-path", ["true"], dict(hooks={"prestart": [{"path": "relative"}]}),
     'config.json: hooks.prestart[0].path: must be an absolute path, got "relative"'),
    ("missing-rootfs", ["true"], dict(rootfs=None),
     "config.json: root.path: rootfs ({bundle}/rootfs) does not exist"),
    ("unknown-fs-type", ["true"],
     dict(edit=mounts_plus({"destination": "/x", "type": "nofs", "source": "none"})),
     "mount none on /x (mounts[{m}], type nofs): No such device"),
    ("missing-bind-source", ["true"],
     dict(edit=mounts_plus({"destination": "/x", "type": "bind", "source": "/nonexistent-src",
                            "options": ["bind"]})),
     "config.json: mounts[{m}].source: bind source /nonexistent-src: No such file or directory"),
    ("missing-namespace-path", ["true"],
     dict(edit=lambda c: c["linux"]["namespaces"][1].update(path="/nonexistent-ns")),
     "config.json: linux.namespaces[1].path: open /nonexistent-ns: No such file or directory"),
    ("prestart-hook-fails", ["true"], dict(hooks={"prestart": [{"path": "/bin/false"}]}),
     "error running prestart hook #0: /bin/false: exit status 1"),
    ("createRuntime-hook-fails", ["true"],
     dict(hooks={"createRuntime": [{"path": "/bin/true"}, {"path": "/bin/false"}]}),
     "error running createRuntime hook #1: /bin/false: exit status 1"),
    ("createContainer-hook-fails", ["true"],
     dict(hooks={"createContainer": [{"path": "/bin/false"}]}),
     "error running createContainer hook #0: /bin/false: exit status 1"),
    ("hook-not-found", ["true"], dict(hooks={"prestart": [{"path": "/nonexistent-hook"}]}),
     "error running prestart hook #0: /nonexistent-hook: exec failed: No such file or directory"),
    ("missing-executable", ["nope"], {},
     'exec: "nope": executable file not found in $PATH'),
    ("terminal-without-console-socket", ["true"], dict(process={"terminal": True}),
     "config.json: process.terminal: cannot allocate tty if kago will detach "
     "without setting console socket"),
]


# `run` in the foreground may relay a terminal without a console socket
PARAMS = [pytest.param(verb, *case, id=f"{case[0]}-{verb}") for case in CONFIG_CASES
          for verb in ("create", "run")
          if not (verb == "run" and case[0] == "terminal-without-console-socket")]


@pytest.mark.parametrize("verb,name,args,kwargs,want", PARAMS)
def test_bad_config(run_kago, bundle, cid, state_root, tmp_path, assert_clean,
                    verb, name, args, kwargs, want):
    b = bundle(args, **kwargs)
    msg = failure(run_kago, tmp_path, verb, "-b", b, cid)
    c = json.loads((b / "config.json").read_text())
    assert msg == f"kago {verb} failed: " + want.format(
        bundle=b, m=len(c["mounts"]) - 1, n=len(c["linux"]["namespaces"]) - 1)
    no_state(state_root)
    assert_clean()


@pytest.fixture
def dead_pidns(tmp_path):
    """A pid namespace kept by a bind mount after its init exited (unshare(1))."""
    import subprocess
    f = tmp_path / "pidns"
    f.touch()
    subprocess.run(["unshare", f"--pid={f}", "--fork", "true"], check=True)
    try:
        yield str(f)
    finally:
        subprocess.run(["umount", str(f)], check=True)


@pytest.mark.parametrize("verb", ["create", "run"])
def test_join_pid_namespace_without_init(run_kago, bundle, cid, state_root, tmp_path,
                                         assert_clean, dead_pidns, verb):
    # the kernel refuses the fork with ENOMEM; alone that reads as "out of memory"
    def join(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]
        c["linux"]["namespaces"].append({"type": "pid", "path": dead_pidns})
        return c
    b = bundle(["true"], edit=join)
    assert failure(run_kago, tmp_path, verb, "-b", b, cid) == \
        f"kago {verb} failed: fork into the pid namespace of {dead_pidns} " \
        "(its init has exited): Cannot allocate memory"
    no_state(state_root)
    assert_clean()


def test_invalid_json(run_kago, bundle, cid, state_root, tmp_path, assert_clean):
    b = bundle(["true"])
    (b / "config.json").write_text('{"ociVersion": "1.2.0",\n "process": {,}}')
    msg = failure(run_kago, tmp_path, "create", "-b", b, cid)
    assert msg.startswith("kago create failed: config.json: invalid JSON at line 2 column")
    assert "SystemError" not in msg
    no_state(state_root)
    assert_clean()


def test_config_not_an_object(run_kago, bundle, cid, state_root, tmp_path):
    b = bundle(["true"])
    (b / "config.json").write_text("[]")
    assert failure(run_kago, tmp_path, "create", "-b", b, cid) == \
        "kago create failed: config.json: expected a JSON object, got array"
    no_state(state_root)


def test_missing_config(run_kago, bundle, cid, state_root, tmp_path, assert_clean):
    b = bundle(["true"])
    (b / "config.json").unlink()
    assert failure(run_kago, tmp_path, "create", "-b", b, cid) == \
        f"kago create failed: config.json: open {b}/config.json: no such file or directory"
    no_state(state_root)
    assert_clean()


def test_missing_bundle(run_kago, cid, state_root, tmp_path):
    msg = failure(run_kago, tmp_path, "run", "-b", tmp_path / "nope", cid)
    assert msg.startswith("kago run failed: ") and f"{tmp_path}/nope" in msg
    no_state(state_root)


def test_duplicate_id(run_kago, bundle, cid, state_root, tmp_path):
    run_kago("create", "-b", bundle(["sleep", "60"]), cid)
    first = json.loads(run_kago("state", cid).stdout)
    msg = failure(run_kago, tmp_path, "create", "-b", bundle(["true"]), cid)
    assert msg == "kago create failed: container with given ID already exists"
    msg = failure(run_kago, tmp_path, "run", "-b", bundle(["true"]), cid)
    assert msg == "kago run failed: container with given ID already exists"
    assert json.loads(run_kago("state", cid).stdout) == first    # untouched
    assert os.listdir(state_root) == [cid]
    run_kago("delete", cid)


@pytest.mark.parametrize("bad", ["a/b", "../kago-escape-id", "..", "a b"])
def test_bad_id(run_kago, bundle, state_root, tmp_path, bad):
    msg = failure(run_kago, tmp_path, "create", "-b", bundle(["true"], rootfs="shared"), bad)
    assert msg == f"kago create failed: invalid id format: {bad}"
    for verb in ("state", "start", "kill", "delete"):
        assert failure(run_kago, tmp_path, verb, bad) == f"invalid id format: {bad}"
    no_state(state_root)
    assert not os.path.exists(state_root.parent / "kago-escape-id")


@pytest.mark.parametrize("verb", [["state"], ["start"], ["kill"], ["kill", "--all"],
                                  ["delete"], ["pause"], ["resume"]])
def test_not_found(run_kago, cid, state_root, tmp_path, verb):
    assert failure(run_kago, tmp_path, *verb, cid) == "container does not exist"
    no_state(state_root)


def test_delete_force_not_found_is_ok(run_kago, cid, state_root):
    r = run_kago("delete", "--force", cid)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_delete_removes_state_dir_without_state_json(run_kago, cid, state_root, tmp_path):
    """a create killed half-way leaves a directory without state.json: runc's
    delete reports not found and removes it, so the id can be used again."""
    (state_root / cid).mkdir()
    assert failure(run_kago, tmp_path, "delete", cid) == "container does not exist"
    no_state(state_root)


def test_usage_errors(run_kago, state_root, tmp_path):
    assert failure_usage(run_kago, "state") == 'kago: "state" requires exactly 1 argument(s)'
    assert failure_usage(run_kago, "create") == 'kago: "create" requires exactly 1 argument(s)'
    no_state(state_root)


def failure_usage(run_kago, *args):
    r = run_kago(*args, check=False)
    assert r.returncode == 1 and "Incorrect Usage" in r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1
    return LINE.match(lines[0]).group(1).replace('\\"', '"')


def test_preserve_fds_not_open_are_skipped(run_kago, bundle, cid, state_root, wait_until,
                                           assert_clean):
    """--preserve-fds past the caller's open fds is no error (crun skips the
    closed ones); the process gets none of kago's fds in their place."""
    run_kago("create", "--preserve-fds", "40", "-b",
             bundle(["sleep", "60"], rootfs="shared"), cid)
    pid = json.loads(run_kago("state", cid).stdout)["pid"]
    run_kago("start", cid)
    wait_until(lambda: "sleep" in open(f"/proc/{pid}/cmdline").read(), what="the exec")
    assert sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd")) == [0, 1, 2]
    run_kago("delete", "--force", cid)
    no_state(state_root)
    assert_clean()


def test_failed_start_leaves_container_stopped_not_leaked(run_kago, bundle, cid, state_root,
                                                          tmp_path, assert_clean):
    """startContainer hook fails: start fails with one line; the container is
    stopped and delete cleans it up."""
    b = bundle(["true"], hooks={"startContainer": [{"path": "/bin/false"}]})
    run_kago("create", "-b", b, cid)
    msg = failure(run_kago, tmp_path, "start", cid)
    assert msg == "error running startContainer hook #0: /bin/false: exit status 1"
    assert json.loads(run_kago("state", cid).stdout)["status"] == "stopped"
    run_kago("delete", cid)
    no_state(state_root)
    assert_clean()


@pytest.mark.parametrize("detach", [False, True])
def test_run_failed_start_cleans_up(run_kago, bundle, cid, state_root, tmp_path, assert_clean,
                                    detach):
    """run: the startContainer hook fails after create succeeded: run fails
    with one line and deletes the container (runc 1.1.5 `run -d` exits 0 here
    and leaves it behind)."""
    b = bundle(["true"], hooks={"startContainer": [{"path": "/bin/false"}]})
    msg = failure(run_kago, tmp_path, "run", *(["-d"] if detach else []), "-b", b, cid)
    assert msg == "kago run failed: error running startContainer hook #0: /bin/false: exit status 1"
    no_state(state_root)
    assert_clean()


def test_killed_create_is_cleaned_by_delete(run_kago, kago_bin, bundle, cid, state_root,
                                            tmp_path, assert_clean, wait_until):
    """A `kago create` killed with SIGKILL half way (here: while a createRuntime
    hook runs, init already in the cgroup) leaves a state dir that says
    `stopped`; `kago delete ID` then removes all of it: state, cgroup, init."""
    import signal
    import subprocess
    started = tmp_path / "hook-started"
    hook = tmp_path / "slow.sh"
    hook.write_text(f"#!/bin/sh\ntouch {started}\nexec sleep 5\n")
    hook.chmod(0o755)
    b = bundle(["true"], edit=lambda c: c.update(
        hooks={"createRuntime": [{"path": str(hook), "timeout": 20}]}))
    p = subprocess.Popen([kago_bin, "--root", str(state_root), "create", "--bundle", str(b),
                          cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_until(started.exists, what="the createRuntime hook to start")
    p.send_signal(signal.SIGKILL)
    p.wait()
    st = json.loads(run_kago("state", cid).stdout)
    assert st["status"] == "stopped" and st["pid"] == 0, st
    run_kago("delete", cid)
    assert os.listdir(state_root) == []
    assert_clean()
