"""The container process: args, env, cwd, user/groups, umask, rlimits,
noNewPrivileges, oomScoreAdj, stdio, --preserve-fds, LISTEN_FDS and the
closing of every other fd (issue 2, "Process").  Checked from inside the
container and, where it makes sense, from the host.
"""

import json
import os
import resource
from pathlib import Path

import pytest

from tests.integration.helpers import lines_with, one, state_pid, wait_file


def status_field(pid, name) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    raise KeyError(name)


def limits(text: str) -> dict:
    """/proc/PID/limits -> {'Max open files': ('256', '512'), ...}"""
    out = {}
    for line in text.splitlines()[1:]:
        name = line[:26].strip()
        soft, hard = line[26:].split()[:2]
        out[name] = (soft, hard)
    return out


# ------------------------------------------------------------ args, env, cwd

def test_args_env_cwd_user_umask(bundle, run_kago, cid):
    script = r"""
for a in "$0" "$@"; do echo "arg:[$a]"; done
env | sed 's/^/env:/'
echo cwd=$(pwd)
echo id=$(id -u):$(id -g):$(id -G)
echo name=$(id -un):$(id -gn)
grep '^Groups:' /proc/self/status | sed 's/^Groups:[[:space:]]*/groups=/'
echo umask=$(umask)
touch /dev/shm/made && stat -c 'mode=%a owner=%u:%g' /dev/shm/made
mkdir /dev/shm/dir && stat -c 'dmode=%a' /dev/shm/dir
"""
    b = bundle(process={
        "args": ["sh", "-c", script, "zeroth", "a b", "", "c*d", "--flag=x"],
        "env": ["PATH=/usr/bin:/bin", "FOO=bar baz", "EMPTY=", "WITH_EQ=a=b=c"],
        "cwd": "/work/deep/dir",
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 2000], "umask": 0o027},
    })
    env = {**os.environ, "KAGO_HOST_ONLY": "leaked"}
    out = run_kago("run", "--bundle", b, cid, env=env).stdout

    assert lines_with(out, "arg:") == ["[zeroth]", "[a b]", "[]", "[c*d]", "[--flag=x]"]
    cenv = dict(line.split("=", 1) for line in lines_with(out, "env:"))
    assert cenv["FOO"] == "bar baz"
    assert cenv["EMPTY"] == ""
    assert cenv["WITH_EQ"] == "a=b=c"
    assert cenv["PATH"] == "/usr/bin:/bin"
    assert cenv["HOME"] == "/home/user"          # from the rootfs' /etc/passwd
    assert "KAGO_HOST_ONLY" not in cenv           # nothing from kago's environment
    # what the shell adds itself aside, nothing else
    assert set(cenv) - {"PWD", "SHLVL", "OLDPWD", "_"} == \
        {"PATH", "FOO", "EMPTY", "WITH_EQ", "HOME"}, cenv
    # cwd: made in the rootfs because it was missing
    assert one(out, "cwd=") == "/work/deep/dir"
    assert (b / "rootfs" / "work" / "deep" / "dir").is_dir()
    # user: uid, gid, additional groups (no others)
    assert one(out, "id=") == "1000:1000:1000 5 2000"
    assert one(out, "name=") == "user:user"
    assert one(out, "groups=").split() == ["5", "2000"]
    # umask
    assert one(out, "umask=") == "0027"
    assert one(out, "mode=") == "640 owner=1000:1000"
    assert one(out, "dmode=") == "750"


def test_default_user_and_home(bundle, run_kago, cid):
    """No user given: root, no supplementary groups, umask 0022, HOME /root."""
    script = ("echo id=$(id -u):$(id -g); grep '^Groups:' /proc/self/status; "
              "echo umask=$(umask); echo home=$HOME")
    b = bundle(script, process={"user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]})
    out = run_kago("run", "--bundle", b, cid).stdout
    assert one(out, "id=") == "0:0"
    assert one(out, "Groups:").strip() == ""
    assert one(out, "umask=") == "0022"
    assert one(out, "home=") == "/root"


# ------------------------------------------------ rlimits, nnp, oomScoreAdj

def test_rlimits_no_new_privs_oom_score_adj(bundle, run_kago, cid, wait_until, tmp_path):
    soft_core, hard_core = resource.getrlimit(resource.RLIMIT_CORE)
    # this host can't raise limits (no CAP_SYS_RESOURCE in the bounding set):
    # ask for lower ones than kago has, and different from the defaults
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    # (per user, host-wide: keep it far above what root runs here)
    nproc_hard = 1_000_000 if nproc == resource.RLIM_INFINITY else nproc - 1
    out_path = tmp_path / "out"
    script = ("echo n=$(ulimit -n); echo hn=$(ulimit -Hn); "
              "grep NoNewPrivs /proc/self/status | sed 's/^NoNewPrivs:[[:space:]]*/nnp=/'; "
              "echo oom=$(cat /proc/self/oom_score_adj); echo done; exec sleep 300")
    b = bundle(script, process={
        "rlimits": [
            {"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
            {"type": "RLIMIT_NPROC", "soft": nproc_hard - 1, "hard": nproc_hard},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        ],
        "noNewPrivileges": True,
        "oomScoreAdj": 317,
    })
    with open(out_path, "w") as out:
        run_kago("run", "-d", "--bundle", b, cid, stdout=out)
    text = wait_file(wait_until, out_path, "done")
    assert one(text, "n=") == "256"
    assert one(text, "hn=") == "512"
    assert one(text, "nnp=") == "1"
    assert one(text, "oom=") == "317"
    # the host's view of the running process
    pid = state_pid(run_kago, cid)
    with open(f"/proc/{pid}/limits") as f:
        lim = limits(f.read())
    assert lim["Max open files"] == ("256", "512")
    assert lim["Max processes"] == (str(nproc_hard - 1), str(nproc_hard))
    assert lim["Max core file size"] == ("0", "0")
    assert status_field(pid, "NoNewPrivs") == "1"
    with open(f"/proc/{pid}/oom_score_adj") as f:
        assert f.read().strip() == "317"
    # an exec'd process gets the container's oomScoreAdj too (runc), inside
    # and seen from the host; the caller's own value is not what it gets
    assert int(open("/proc/self/oom_score_adj").read()) != 317
    r = run_kago("exec", cid, "sh", "-c", "cat /proc/self/oom_score_adj")
    assert r.stdout.strip() == "317"
    r = run_kago("exec", "-d", "--pid-file", tmp_path / "exec.pid", cid, "sleep", "300")
    tenant = int((tmp_path / "exec.pid").read_text())
    with open(f"/proc/{tenant}/oom_score_adj") as f:
        assert f.read().strip() == "317"
    run_kago("delete", "--force", cid)


def test_rlimit_above_the_hard_limit_fails_cleanly(bundle, run_kago, cid, assert_clean):
    # raising a hard limit needs CAP_SYS_RESOURCE, which this host's bounding
    # set lacks (and kago has it only if its caller has): EPERM, named
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("RLIMIT_NOFILE has no hard limit here: nothing to exceed")
    b = bundle(["/bin/true"], process={
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": hard + 1}]})
    p = run_kago("run", "--bundle", b, cid, check=False)
    assert p.returncode == 1, p
    assert (f"setrlimit (RLIMIT_NOFILE soft 64 hard {hard + 1}): "
            "Operation not permitted") in p.stderr, p.stderr
    assert_clean()


def test_no_new_privileges_false(bundle, run_kago, cid):
    if status_field("self", "NoNewPrivs") != "0":
        pytest.skip("the test runner has NoNewPrivs set: nothing to compare with")
    b = bundle("grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj",
               process={"noNewPrivileges": False, "oomScoreAdj": None})
    out = run_kago("run", "--bundle", b, cid).stdout
    assert one(out, "NoNewPrivs:").strip() == "0"
    with open("/proc/self/oom_score_adj") as f:
        assert out.splitlines()[-1] == f.read().strip()  # inherited, not changed


# ---------------------------------------------------------------- stdio, fds

def test_stdio_passed_through(bundle, run_kago, cid):
    b = bundle("cat | sed 's/^/in:/'; echo to-stderr >&2; exit 7")
    r = run_kago("run", "--bundle", b, cid, input="line one\nline two\n", check=False)
    assert r.returncode == 7
    assert r.stdout.splitlines() == ["in:line one", "in:line two"]
    assert "to-stderr" in r.stderr.splitlines()


def _run_with_fds(kago_bin, state_root, args, fds: dict, env=None, stdout=None):
    """Run ``kago --root R ARGS`` with fds[n] (an open fd) as fd n."""
    import subprocess
    import tempfile
    keep = sorted(set(fds) | set(fds.values()))
    for fd in fds.values():
        os.lseek(fd, 0, os.SEEK_SET)  # shared offsets: a previous run read them

    def arrange():
        for target, fd in fds.items():
            if target != fd:
                os.dup2(fd, target)

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run([kago_bin, "--root", str(state_root)] + [str(a) for a in args],
                              stdin=subprocess.DEVNULL, stdout=stdout or out, stderr=err,
                              pass_fds=keep, preexec_fn=arrange, env=env, timeout=60)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read()


def _fd_file(tmp_path, name, text) -> int:
    p = tmp_path / name
    p.write_text(text)
    return os.open(p, os.O_RDONLY)


def _fds(pid) -> dict:
    """The open fds of ``pid`` seen from the host: {fd: target}."""
    return {int(n): os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}


# The container reads what it was given, then execs sleep: the host lists the
# fds of that pid 1 (a listing from inside would see the shell's own pipes).
READ_FDS = ("echo lfds=$LISTEN_FDS; echo lpid=$LISTEN_PID; "
            "for n in 3 4 5; do cat <&$n 2>/dev/null | sed \"s/^/fd$n:/\"; done; "
            "echo done; exec sleep 300")


def _run_detached(kago_bin, state_root, run_kago, wait_until, tmp_path, cid, b, fds,
                  *flags, env=None, globals_=()):
    """``kago [GLOBALS] run -d FLAGS`` with ``fds``; returns (output, {fd:
    target} of the container's pid 1)."""
    out_path = tmp_path / f"out-{cid}"
    with open(out_path, "w") as out:
        rc, _, err = _run_with_fds(kago_bin, state_root,
                                   [*globals_, "run", "-d", *flags, "--bundle", b, cid], fds,
                                   env=env, stdout=out)
    assert rc == 0, err
    text = wait_file(wait_until, out_path, "done")
    pid = state_pid(run_kago, cid)
    wait_until(lambda: "sleep" in Path(f"/proc/{pid}/cmdline").read_text(),
               what="the container to exec sleep")
    found = _fds(pid)
    run_kago("delete", "--force", cid)
    return text, found


def test_preserve_fds_and_every_other_fd_closed(bundle, kago_bin, state_root, run_kago,
                                                make_cid, tmp_path, wait_until):
    """--preserve-fds 2 passes fds 3 and 4; fd 5, also open in kago, is not
    passed; the container's process has exactly 0-4 open."""
    fds = {3: _fd_file(tmp_path, "three", "third\n"), 4: _fd_file(tmp_path, "four", "fourth\n"),
           5: _fd_file(tmp_path, "five", "fifth\n")}
    try:
        b = bundle(READ_FDS)
        out, found = _run_detached(kago_bin, state_root, run_kago, wait_until, tmp_path,
                                   make_cid(), b, fds, "--preserve-fds", "2")
        assert one(out, "fd3:") == "third"
        assert one(out, "fd4:") == "fourth"
        assert lines_with(out, "fd5:") == []
        assert sorted(found) == [0, 1, 2, 3, 4], found
        assert found[3] == str(tmp_path / "three") and found[4] == str(tmp_path / "four")
        # kago's own descriptors (here its --log file) don't get in either
        logfile = tmp_path / "kago.log"
        out, found = _run_detached(kago_bin, state_root, run_kago, wait_until, tmp_path,
                                   make_cid(), b, fds, "--preserve-fds", "1",
                                   globals_=["--log", logfile, "--log-format", "json"])
        assert sorted(found) == [0, 1, 2, 3], found
        assert str(logfile) not in found.values()
        # without --preserve-fds none of them gets in
        out, found = _run_detached(kago_bin, state_root, run_kago, wait_until, tmp_path,
                                   make_cid(), b, fds)
        assert sorted(found) == [0, 1, 2], found
        assert lines_with(out, "fd3:") == []
    finally:
        for fd in fds.values():
            os.close(fd)


def test_listen_fds(bundle, kago_bin, state_root, run_kago, make_cid, tmp_path, wait_until):
    """LISTEN_FDS=1 in kago's environment: the container gets LISTEN_FDS=1,
    LISTEN_PID=1 and fd 3; --preserve-fds counts after the listen fds."""
    fds = {3: _fd_file(tmp_path, "sock", "listen-fd\n"),
           4: _fd_file(tmp_path, "extra", "preserved\n")}
    env = {**os.environ, "LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())}
    try:
        b = bundle(READ_FDS)
        out, found = _run_detached(kago_bin, state_root, run_kago, wait_until, tmp_path,
                                   make_cid(), b, fds, env=env)
        assert one(out, "lfds=") == "1"
        assert one(out, "lpid=") == "1"
        assert one(out, "fd3:") == "listen-fd"
        assert lines_with(out, "fd4:") == []
        assert sorted(found) == [0, 1, 2, 3], found
        out, found = _run_detached(kago_bin, state_root, run_kago, wait_until, tmp_path,
                                   make_cid(), b, fds, "--preserve-fds", "1", env=env)
        assert one(out, "fd3:") == "listen-fd"
        assert one(out, "fd4:") == "preserved"
        assert sorted(found) == [0, 1, 2, 3, 4], found
        # without LISTEN_FDS: no socket activation variables, fd 3 closed
        out, found = _run_detached(kago_bin, state_root, run_kago, wait_until, tmp_path,
                                   make_cid(), b, fds)
        assert one(out, "lfds=") == "" and one(out, "lpid=") == ""
        assert sorted(found) == [0, 1, 2], found
    finally:
        for fd in fds.values():
            os.close(fd)


def test_preserve_fds_create_start(bundle, kago_bin, state_root, run_kago, cid, tmp_path,
                                   wait_until):
    """The fd preserved at create is the process's fd 3 after start."""
    fds = {3: _fd_file(tmp_path, "three", "from create\n")}
    out_path = tmp_path / "out"
    b = bundle(READ_FDS)
    try:
        with open(out_path, "w") as out:
            rc, _, err = _run_with_fds(kago_bin, state_root,
                                       ["create", "--preserve-fds", "1", "--bundle", b, cid],
                                       fds, stdout=out)
        assert rc == 0, err
    finally:
        os.close(fds[3])
    pid = state_pid(run_kago, cid)
    assert json.loads(run_kago("state", cid).stdout)["status"] == "created"
    run_kago("start", cid)
    text = wait_file(wait_until, out_path, "done")
    assert one(text, "fd3:") == "from create"
    wait_until(lambda: "sleep" in Path(f"/proc/{pid}/cmdline").read_text(),
               what="the container to exec sleep")
    assert sorted(_fds(pid)) == [0, 1, 2, 3]
    run_kago("delete", "--force", cid)


# ------------------------------------- preserved fds with holes (issue 13)

def _with_holes(tmp_path, texts: dict) -> dict:
    """{fd number: text} -> {fd number: an fd >= 20 open on a file with that
    text}: nothing of the test itself sits in 3..19, so a number left out of
    ``texts`` is really closed in kago's caller."""
    out = {}
    for n, text in texts.items():
        fd = _fd_file(tmp_path, f"hole-{n}", text)
        out[n] = os.dup2(fd, 20 + n) if fd != 20 + n else fd
        if fd != out[n]:
            os.close(fd)
    return out


HOLES_SCRIPT = ("echo lfds=$LISTEN_FDS; for n in 3 4 5; do cat <&$n 2>/dev/null "
                "| sed \"s/^/fd$n:/\"; done; ls /proc/self/fd/4 2>/dev/null && echo fd4-open; "
                "echo done; exec sleep 300")


@pytest.mark.parametrize("how", ["plain", "log", "listen_fds", "seccomp_agent"])
def test_preserve_fds_skip_closed_ones_and_no_kago_fd_takes_their_place(
        bundle, kago_bin, state_root, run_kago, make_cid, tmp_path, wait_until, how):
    """--preserve-fds 3 with 3 and 5 open and 4 closed in the caller: the
    container gets 3 and 5 (their content) and nothing at 4 - though 4 is the
    lowest free number, where kago's own lock, channel sockets, exec.fifo, log
    file or seccomp agent socket land (runc 1.1.5 passes its /sys/fs/cgroup fd
    there); crun skips the closed ones too.  ``listen_fds``: LISTEN_FDS=2
    counts 3 and 4, 5 is the preserved one."""
    fds = _with_holes(tmp_path, {3: "three\n", 5: "five\n"})
    env = globals_ = None
    flags = ["--preserve-fds", "3"]
    over = {}
    agent = None
    if how == "log":
        globals_ = ["--log", tmp_path / "kago.log", "--log-format", "json", "--debug"]
    if how == "listen_fds":
        env = {**os.environ, "LISTEN_FDS": "2", "LISTEN_PID": str(os.getpid())}
        flags = ["--preserve-fds", "1"]
    if how == "seccomp_agent":
        from tests.integration.test_security_seccomp import Listener
        agent = Listener(tmp_path / "agent.sock", lambda nr, args: (0, 0))
        over = {"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                                      "listenerPath": agent.path}}}
    try:
        b = bundle(HOLES_SCRIPT, **over)
        out, found = _run_detached(kago_bin, state_root, run_kago, wait_until, tmp_path,
                                   make_cid(), b, fds, *flags, env=env,
                                   globals_=globals_ or ())
    finally:
        for fd in fds.values():
            os.close(fd)
        if agent is not None:
            agent.close()
    if agent is not None:
        assert len(agent.received) == 1 and agent.received[0][1] == 1
    assert one(out, "fd3:") == "three" and one(out, "fd5:") == "five"
    assert lines_with(out, "fd4") == [], out
    # the host's view of the container's process: exactly 0-2, 3 and 5
    assert sorted(found) == [0, 1, 2, 3, 5], found
    assert found[3] == str(tmp_path / "hole-3") and found[5] == str(tmp_path / "hole-5")
    if how == "listen_fds":
        assert one(out, "lfds=") == "2"


def test_preserve_fds_with_holes_create_then_start(bundle, kago_bin, state_root, run_kago,
                                                   cid, tmp_path, wait_until):
    """The same through create + start: the created init holds 3 and 5 only
    (besides stdio and its exec.fifo handle, close-on-exec) and the process
    started later has exactly 0-3 and 5."""
    fds = _with_holes(tmp_path, {3: "three\n", 5: "five\n"})
    out_path = tmp_path / "out"
    b = bundle(HOLES_SCRIPT)
    try:
        with open(out_path, "w") as out:
            rc, _, err = _run_with_fds(kago_bin, state_root,
                                       ["create", "--preserve-fds", "3", "--bundle", b, cid],
                                       fds, stdout=out)
        assert rc == 0, err
    finally:
        for fd in fds.values():
            os.close(fd)
    pid = state_pid(run_kago, cid)
    run_kago("start", cid)
    text = wait_file(wait_until, out_path, "done")
    assert one(text, "fd3:") == "three" and one(text, "fd5:") == "five"
    assert lines_with(text, "fd4") == [], text
    wait_until(lambda: "sleep" in Path(f"/proc/{pid}/cmdline").read_text(),
               what="the container to exec sleep")
    found = _fds(pid)
    run_kago("delete", "--force", cid)
    assert sorted(found) == [0, 1, 2, 3, 5], found
    assert found[3] == str(tmp_path / "hole-3") and found[5] == str(tmp_path / "hole-5")
