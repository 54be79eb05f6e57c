"""--debug (issue 13, "The command line"): each step of create, start, exec
and delete is a level=debug record, to --log in the chosen format (text or
json) or to stderr, as runc writes its own; the children's records (the
intermediate, init, exec's process) land in the same file, in order.
Without --debug there are none, and the container's stdout is never touched."""

import json
import os
import re

import pytest

from kago import cgroups

from tests.integration.helpers import state_pid

HOOKS = {k: [{"path": "/bin/true"}] for k in ("prestart", "createContainer",
                                              "startContainer", "poststart", "poststop")}

CREATE = ["config loaded", "state directory created", "cgroup created",
          "cgroup resources written", "intermediate forked", "intermediate joined the cgroup",
          "namespaces unshared", "forking init", "init started", "rootfs ready",
          ("running hook", "prestart"), ("running hook", "createContainer"),
          "pivot_root done", "process set up, waiting on exec.fifo", "init ready",
          "state written"]
START = ["releasing init through exec.fifo", ("running hook", "startContainer"),
         "exec.fifo released, executing", "exec.fifo read", "container started",
         ("running hook", "poststart")]
EXEC = ["namespaces of init opened", "intermediate forked", "intermediate joined the cgroup",
        ("namespace joined", "pid"), ("namespace joined", "mount"), "forking the process",
        "executing", "process started", "process exited"]
DELETE = ["init killed", "cgroup emptied", "cgroup removed", ("running hook", "poststop"),
          "state removed"]

_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def records(text, fmt):
    """The log's records as dicts (logrus text: key=value, Go-quoted values)."""
    out = []
    for line in text.splitlines():
        if fmt == "json":
            out.append(json.loads(line))
        else:
            out.append({k: json.loads(v) if v.startswith('"') else v
                        for k, v in _PAIR.findall(line)})
    return out


def debug_steps(text, fmt):
    recs = records(text, fmt)
    assert recs, "no records"
    assert all(r["level"] == "debug" for r in recs), recs
    return recs


def in_order(recs, expected):
    """Every expected step (a msg, or (msg, kind/type)) in this order; returns
    the matching records."""
    found, i = [], 0
    for step in expected:
        msg, extra = (step, None) if isinstance(step, str) else step
        while i < len(recs) and not (recs[i]["msg"] == msg and
                                     extra in (None, recs[i].get("kind"), recs[i].get("type"))):
            i += 1
        assert i < len(recs), f"step {step!r} missing or out of order in:\n" + \
            "\n".join(f"{r['msg']} {r.get('kind') or r.get('type') or ''}" for r in recs)
        found.append(recs[i])
        i += 1
    return found


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_steps_of_each_verb(bundle, run_kago, cid, state_root, tmp_path, fmt):
    """One --log file for every verb, as engines pass it (init's records during
    `start` - it was forked by `create` - go to create's file)."""
    b = bundle("sleep 100", hooks=HOOKS)
    log = tmp_path / "k.log"
    seen = [0]

    def since_last():       # what the file got from the last verb (and its children)
        data = log.read_text()
        part, seen[0] = data[seen[0]:], len(data)
        return part
    dbg = ("--debug", "--log", str(log), "--log-format", fmt)

    r = run_kago(*dbg, "create", "-b", b, cid)
    assert r.stdout == "" and r.stderr == ""
    pid = state_pid(run_kago, cid)
    recs = debug_steps(since_last(), fmt)
    got = dict(zip([s if isinstance(s, str) else " ".join(s) for s in CREATE],
                   in_order(recs, CREATE)))
    # the children wrote their own lines: the pids say who
    assert got["intermediate forked"]["pid"] == got["intermediate joined the cgroup"]["pid"]
    assert int(got["init started"]["pid"]) == pid
    assert int(got["state written"]["pid"]) == pid
    assert got["state directory created"]["path"] == str(state_root / cid)
    cg_path = got["cgroup created"]["path"]
    m = cgroups.load(json.loads((state_root / cid / "kago.json").read_text())["cgroup"])
    assert m.path == cg_path and all(os.path.isdir(d) for d in m.dirs.values())
    with open(f"/proc/{pid}/cgroup") as f:                  # the host's view
        assert cg_path in f.read()

    r = run_kago(*dbg, "start", cid)
    assert r.stdout == "" and r.stderr == ""
    in_order(debug_steps(since_last(), fmt), START)

    r = run_kago(*dbg, "exec", cid, "echo", "hello from exec")
    assert r.stdout == "hello from exec\n" and r.stderr == ""     # untouched
    recs = debug_steps(since_last(), fmt)
    got = in_order(recs, EXEC)
    assert int(got[0]["pid"]) == pid
    assert got[-3]["path"].endswith("/echo")
    assert got[-1]["status"] in (0, "0") and got[-2]["pid"] == got[-1]["pid"]
    assert got[1]["pid"] == got[2]["pid"]       # the intermediate's own lines

    dirs = list(m.dirs.values())
    r = run_kago(*dbg, "delete", "--force", cid)
    assert r.stdout == "" and r.stderr == ""
    got = in_order(debug_steps(since_last(), fmt), DELETE)
    assert int(got[0]["pid"]) == pid
    assert got[2]["path"] == cg_path and got[-1]["path"] == str(state_root / cid)
    assert not any(os.path.exists(d) for d in dirs)          # the host: all gone
    assert not (state_root / cid).exists()


def test_no_debug_no_lines(bundle, run_kago, cid, tmp_path):
    b = bundle("sleep 100", hooks=HOOKS)
    log = tmp_path / "k.log"
    base = ("--log", str(log))
    for argv in (("create", "-b", b, cid), ("start", cid), ("exec", cid, "true"),
                 ("delete", "--force", cid)):
        r = run_kago(*base, *argv)
        assert r.stdout == "" and r.stderr == "", argv
    assert log.read_text() == ""


def test_debug_to_stderr_keeps_stdout(bundle, run_kago, cid):
    """No --log: the records go to stderr, the container's stdout is its own."""
    b = bundle("echo out; echo err >&2")
    r = run_kago("--debug", "run", "-b", b, cid)
    assert r.stdout == "out\n"
    recs = [x for x in records(r.stderr, "text") if "level" in x]
    assert all(x["level"] == "debug" for x in recs)
    in_order(recs, ["config loaded", "init started", "pivot_root done", "init ready",
                    "exec.fifo released, executing", "container started", "container exited",
                    "cgroup removed", "state removed"])
    assert "err" in r.stderr.splitlines()


def test_debug_with_terminal_never_in_the_pty(bundle, run_kago, cid, tmp_path):
    """run -t: init's records after the console is made (and exec -t's) go to
    kago's stderr, not into the container's terminal."""
    b = bundle("echo tty-out", process={"terminal": True})
    r = run_kago("--debug", "run", "-b", b, cid)
    assert r.stdout.replace("\r", "") == "tty-out\n", r.stdout
    in_order([x for x in records(r.stderr, "text") if "level" in x],
             ["process set up, waiting on exec.fifo", "exec.fifo released, executing"])


def test_debug_exec_terminal_never_in_the_pty(bundle, run_kago, cid):
    b = bundle("sleep 100")
    run_kago("run", "-d", "-b", b, cid)
    r = run_kago("--debug", "exec", "-t", cid, "echo", "tty-exec")
    assert r.stdout.replace("\r", "") == "tty-exec\n", r.stdout
    in_order([x for x in records(r.stderr, "text") if "level" in x],
             ["forking the process", "executing", "process started", "process exited"])
    run_kago("delete", "--force", cid)
