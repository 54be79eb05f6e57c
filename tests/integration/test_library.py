"""The key flows through the kago library, in-process (no CLI).

Containers write what they see into their (writable) rootfs, which the test
reads from the host; statuses, pids and state files are checked from outside.
"""

import errno
import json
import os
import signal

import pytest

from kago import Container, ContainerBuilder
from kago import errors as E


@pytest.fixture
def lib(state_root):
    """build(id, bundle, **as_init options) with this test's root."""
    def build(cid, bundle, **opts):
        return ContainerBuilder(cid, root=str(state_root)).as_init(str(bundle), **opts).build()
    return build


@pytest.fixture
def reaper():
    """detach=False makes this process a child subreaper: undo that afterwards,
    so later tests' containers are not reparented to pytest."""
    yield
    from kago import sys as ksys
    ksys.prctl(ksys.PR_SET_CHILD_SUBREAPER, 0)
    while True:  # reap anything reparented to us meanwhile
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break


def _ns(pid, kind):
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def _entries(root):
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


RW = {"root": {"readonly": False}}


# ------------------------------------------------------------------- lifecycle

def test_build_start_kill_delete(lib, bundle, cid, state_root, wait_until, assert_clean):
    b = bundle("echo $$ > /ran; exec sleep 60", **RW)
    c = lib(cid, b)
    assert isinstance(c, Container)
    assert c.id == cid
    assert c.status == "created"
    pid = c.pid
    assert pid > 0 and os.path.exists(f"/proc/{pid}")
    # init is pid 1 of a new pid namespace, and has not run args yet
    assert _ns(pid, "pid") != _ns(os.getpid(), "pid")
    assert _ns(pid, "mnt") != _ns(os.getpid(), "mnt")
    assert not (b / "rootfs" / "ran").exists()
    sdir = state_root / cid
    assert (sdir / "state.json").is_file() and (sdir / "exec.fifo").exists()

    st = c.state()
    assert st["id"] == cid and st["pid"] == pid and st["status"] == "created"
    assert st["bundle"] == str(b) and st["rootfs"] == str(b / "rootfs")
    assert set(st) >= {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"}

    c.start()
    assert c.status == "running"
    assert not (sdir / "exec.fifo").exists()
    ran = wait_until(lambda: (b / "rootfs" / "ran").exists() and (b / "rootfs" / "ran").read_text(),
                     what="the container's process to run")
    assert ran.strip() == "1"          # args run as pid 1 in its namespace
    assert c.pid == pid                # the same process, exec'd

    c.kill("SIGKILL")
    wait_until(lambda: c.status == "stopped", what="status stopped")
    assert c.pid == 0 and c.state()["pid"] == 0
    assert Container.load(str(state_root), cid).status == "stopped"
    c.delete()
    assert not sdir.exists()
    assert_clean()


def test_foreground_wait_exit_code(lib, bundle, cid, reaper, assert_clean):
    c = lib(cid, bundle("exit 3"), detach=False)
    c.start()
    assert c.wait() == 3
    assert c.status == "stopped"
    c.delete()
    assert_clean()


def test_foreground_wait_killed_by_signal(lib, bundle, cid, reaper, assert_clean):
    c = lib(cid, bundle(["sleep", "60"]), detach=False)
    c.start()
    c.kill(signal.SIGKILL)
    assert c.wait() == 128 + signal.SIGKILL
    c.delete()
    assert_clean()


def test_wait_needs_foreground(lib, bundle, cid):
    c = lib(cid, bundle(["sleep", "60"]))
    with pytest.raises(E.KagoError, match="reaper"):
        c.wait()
    c.delete(force=True)


def test_pid_file(lib, bundle, cid, tmp_path):
    pf = tmp_path / "init.pid"
    c = lib(cid, bundle(["sleep", "60"]), pid_file=str(pf))
    assert pf.read_text().strip() == str(c.pid)
    c.delete(force=True)


def test_delete_created_container(lib, bundle, cid, state_root, assert_clean):
    c = lib(cid, bundle(["sleep", "60"]))
    pid = c.pid
    c.delete()                      # created is not running: no force needed
    assert not os.path.exists(f"/proc/{pid}") or c.status == "stopped"
    assert _entries(state_root) == []
    assert_clean()


def test_delete_force_running_kills_forked_children(lib, bundle, cid, state_root,
                                                    wait_until, assert_clean):
    b = bundle("sleep 100 & sleep 101 & echo ok > /forked; wait", **RW)
    c = lib(cid, b)
    c.start()
    wait_until(lambda: (b / "rootfs" / "forked").exists(), what="children forked")
    with pytest.raises(E.KagoError, match=f"cannot delete container {cid} that is not stopped: running"):
        c.delete()
    assert c.status == "running"
    c.delete(force=True)
    assert _entries(state_root) == []
    assert_clean()                  # checks no process is left in its cgroup


def test_load_and_list(lib, bundle, make_cid, state_root):
    a, b = sorted([make_cid(), make_cid()])
    assert Container.list(str(state_root)) == []
    ca = lib(a, bundle(["sleep", "60"]))
    lib(b, bundle(["sleep", "60"]))
    ca.start()
    listed = Container.list(str(state_root))
    assert [c.id for c in listed] == [a, b]
    assert [c.status for c in listed] == ["running", "created"]
    again = Container.load(str(state_root), a)
    assert again.pid == ca.pid and again.state() == ca.state()
    # a stray directory without state.json is skipped, not an error
    os.mkdir(state_root / "stray")
    try:
        assert [c.id for c in Container.list(str(state_root))] == [a, b]
    finally:
        os.rmdir(state_root / "stray")
    assert Container.list(str(state_root / "nonexistent")) == []
    for c in listed:
        c.delete(force=True)


def test_start_twice_is_invalid_state(lib, bundle, cid):
    c = lib(cid, bundle(["sleep", "60"]))
    c.start()
    with pytest.raises(E.InvalidState) as ei:
        c.start()
    assert (ei.value.id, ei.value.status, ei.value.wanted) == (cid, "running", "created")
    c.delete(force=True)


def test_kill_signal_forms_and_stopped(lib, bundle, cid, wait_until):
    b = bundle("trap 'echo usr1 >> /got' USR1; trap 'echo rt >> /got' 34; "
               "echo ready > /ready; while :; do sleep 0.05; done", **RW)
    c = lib(cid, b)
    c.start()
    wait_until(lambda: (b / "rootfs" / "ready").exists(), what="traps set")
    c.kill("USR1")
    wait_until(lambda: "usr1" in _read(b / "rootfs" / "got"), what="USR1 delivered")
    c.kill("SIGRTMIN")
    wait_until(lambda: "rt" in _read(b / "rootfs" / "got"), what="SIGRTMIN delivered")
    with pytest.raises(E.InvalidArgument):
        c.kill("SIGNOPE")
    c.kill(9)
    wait_until(lambda: c.status == "stopped", what="stopped")
    with pytest.raises(E.KagoError, match="container not running"):
        c.kill("SIGTERM")
    c.kill("SIGKILL", all=True)      # what CRI does to a stopped container: no error
    c.delete()


def _read(p):
    try:
        return p.read_text()
    except FileNotFoundError:
        return ""


def test_reused_pid_is_not_the_container(lib, bundle, cid, state_root):
    c = lib(cid, bundle(["sleep", "60"]))
    c.start()
    path = state_root / cid / "state.json"
    data = json.loads(path.read_text())
    data["start_time"] = int(data["start_time"]) + 12345
    path.write_text(json.dumps(data))
    again = Container.load(str(state_root), cid)
    assert os.path.exists(f"/proc/{data['pid']}")     # the pid is alive...
    assert again.status == "stopped"                  # ...but it is not this container
    assert again.state()["pid"] == 0
    with pytest.raises(E.KagoError, match="not running"):
        again.kill("SIGTERM")
    again.delete()                                    # still removes cgroup and processes


# ---------------------------------------------------------------------- errors

def _fails(lib, cid, b, exc, state_root, assert_clean):
    with pytest.raises(exc) as ei:
        lib(cid, b)
    assert isinstance(ei.value, E.KagoError)
    assert "\n" not in str(ei.value)
    assert _entries(state_root) == []
    assert_clean()
    return ei.value


def test_error_spec_path(lib, bundle, cid, state_root, assert_clean):
    err = _fails(lib, cid, bundle(edit=lambda c: c["process"].update(args="sh")),
                 E.SpecError, state_root, assert_clean)
    assert err.path == "process.args"
    assert str(err) == "config.json: process.args: expected array, got string"


def test_error_invalid_json(lib, bundle, cid, state_root, assert_clean):
    b = bundle(["true"])
    (b / "config.json").write_text('{"ociVersion": "1.2.0",')
    err = _fails(lib, cid, b, E.SpecError, state_root, assert_clean)
    assert "config.json" in str(err)


def test_error_missing_config(lib, bundle, cid, state_root, assert_clean):
    b = bundle(["true"])
    (b / "config.json").unlink()
    err = _fails(lib, cid, b, E.KagoError, state_root, assert_clean)
    assert "config.json" in str(err)


def test_error_missing_rootfs(lib, bundle, cid, state_root, assert_clean):
    err = _fails(lib, cid, bundle(["true"], rootfs=None), E.SpecError, state_root, assert_clean)
    assert err.path == "root.path" and "does not exist" in str(err)


def test_error_unknown_namespace(lib, bundle, cid, state_root, assert_clean):
    b = bundle(["true"], edit=lambda c: c["linux"]["namespaces"].append({"type": "bogus"}))
    err = _fails(lib, cid, b, E.SpecError, state_root, assert_clean)
    n = len(json.loads((b / "config.json").read_text())["linux"]["namespaces"]) - 1
    assert err.path == f"linux.namespaces[{n}].type"
    assert '"bogus"' in str(err)


def test_error_bad_fs_type_is_syscall_error(lib, bundle, cid, state_root, assert_clean):
    def edit(c):
        c["mounts"].append({"destination": "/x", "type": "nofs", "source": "none"})
    b = bundle(["true"], edit=edit)
    n = len(json.loads((b / "config.json").read_text())["mounts"]) - 1
    err = _fails(lib, cid, b, E.SyscallError, state_root, assert_clean)
    assert err.errno == errno.ENODEV and err.call == "mount"
    assert "/x" in err.path and f"mounts[{n}]" in str(err)


def test_error_missing_bind_source(lib, bundle, cid, state_root, assert_clean):
    def edit(c):
        c["mounts"].append({"destination": "/x", "type": "bind", "source": "/nonexistent-src",
                            "options": ["bind"]})
    err = _fails(lib, cid, bundle(["true"], edit=edit), E.KagoError, state_root, assert_clean)
    assert "/nonexistent-src" in str(err) and "No such file or directory" in str(err)


def test_error_missing_executable(lib, bundle, cid, state_root, assert_clean):
    err = _fails(lib, cid, bundle(["nope"]), E.ExecError, state_root, assert_clean)
    assert str(err) == 'exec: "nope": executable file not found in $PATH'
    assert err.errno == errno.ENOENT


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_error_failing_hook(lib, bundle, cid, state_root, assert_clean, kind):
    b = bundle(["true"], hooks={kind: [{"path": "/bin/false"}]})
    err = _fails(lib, cid, b, E.HookError, state_root, assert_clean)
    assert err.kind == kind and err.hook == "/bin/false" and "exit status 1" in str(err)


def test_error_terminal_without_console_socket(lib, bundle, cid, state_root, assert_clean):
    err = _fails(lib, cid, bundle(["true"], process={"terminal": True}), E.SpecError,
                 state_root, assert_clean)
    assert err.path == "process.terminal" and "console socket" in str(err)


def test_error_duplicate_id(lib, bundle, cid, state_root):
    c = lib(cid, bundle(["sleep", "60"]))
    with pytest.raises(E.ContainerExists) as ei:
        lib(cid, bundle(["true"]))
    assert ei.value.id == cid
    assert c.status == "created"               # the first one is untouched
    assert Container.load(str(state_root), cid).pid == c.pid
    c.delete()


@pytest.mark.parametrize("bad", ["a/b", "..", "", "x y"])
def test_error_bad_id(state_root, bad):
    with pytest.raises(E.InvalidArgument):
        ContainerBuilder(bad, root=str(state_root))
    with pytest.raises(E.InvalidArgument):
        Container.load(str(state_root), bad)
    assert _entries(state_root) == []


def test_stale_handle_after_delete(lib, bundle, cid, state_root):
    """A handle loaded before another caller deleted the container: its verbs
    say ContainerNotFound (not a bare FileNotFoundError)."""
    c = lib(cid, bundle(["sleep", "60"]))
    stale = Container.load(str(state_root), cid)
    c.delete()
    for verb in (stale.start, stale.delete, lambda: stale.delete(force=True)):
        with pytest.raises(E.ContainerNotFound) as ei:
            verb()
        assert ei.value.id == cid
    assert stale.status == "stopped"
    assert _entries(state_root) == []


def test_error_not_found(state_root):
    with pytest.raises(E.ContainerNotFound) as ei:
        Container.load(str(state_root), "nothere")
    assert ei.value.id == "nothere"
