"""containerd's CRI plugin (the Kubernetes path), driven over its gRPC API as
kubelet does, with a runtime handler whose BinaryName is the runtime's path
(a RuntimeClass `handler:` names it). CRI has no pause or top: those go
through ctr in the k8s.io namespace, on the same containers."""

from __future__ import annotations

import grpc
import pytest
from conftest import LOOP, MIB64, cgroup_dir, cgroup_file, stream_exec, wait_until


@pytest.fixture(scope="module")
def pod(cri):
    return cri.pod("kago-pod")


def state(cri, cid):
    return cri.pb.ContainerState.Name(cri.status(cid).status.state)


@pytest.fixture
def running(cri, pod, cname):
    cid = cri.container(pod, cname, LOOP)
    wait_until(lambda: state(cri, cid) == "CONTAINER_RUNNING", what="running")
    yield cid
    cri.call("StopContainer", container_id=cid, timeout=0)
    cri.call("RemoveContainer", container_id=cid)


def exec_sync(cri, cid, *cmd):
    return cri.call("ExecSync", container_id=cid, cmd=list(cmd), timeout=30)


def test_run_output(cri, pod, cname):
    cid = cri.container(pod, cname, ["sh", "-c", "echo hello from cri; exit 3"])
    try:
        wait_until(lambda: state(cri, cid) == "CONTAINER_EXITED", what="exited")
        assert cri.status(cid).status.exit_code == 3
        wait_until(lambda: "hello from cri" in cri.log("kago-pod", cname), what="log line")
    finally:
        cri.call("RemoveContainer", container_id=cid)


def test_exec(cri, running):
    r = exec_sync(cri, running, "sh", "-c", "echo pid1=$(cat /proc/1/comm)")
    assert r.stdout.decode().strip() == "pid1=sh" and r.exit_code == 0
    assert exec_sync(cri, running, "sh", "-c", "exit 7").exit_code == 7


def test_exec_tty(cri, running):
    url = cri.call("Exec", container_id=running, cmd=["sh", "-c", "test -t 1 && echo tty-yes; tty"],
                   tty=True, stdin=True, stdout=True).url
    out, status = stream_exec(url)
    assert b"tty-yes" in out and b"/dev/pts/" in out, (out, status)
    assert b"Success" in status, status


def test_list(cri, pod, running):
    r = cri.call("ListContainers", filter=cri.pb.ContainerFilter(pod_sandbox_id=pod[0]))
    states = {c.id: cri.pb.ContainerState.Name(c.state) for c in r.containers}
    assert states.get(running) == "CONTAINER_RUNNING", states


def test_memory_limit(cri, pod, cname):
    cid = cri.container(pod, cname, LOOP, memory=MIB64)
    try:
        inside = exec_sync(cri, cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert int(inside.stdout) == MIB64, inside
        host = cgroup_file(cri.pid(cid), "memory", "memory.limit_in_bytes")
        assert int(host.read_text()) == MIB64
    finally:
        cri.call("StopContainer", container_id=cid, timeout=0)
        cri.call("RemoveContainer", container_id=cid)


def test_pause_unpause(cri, containerd, running):
    pid = cri.pid(running)
    containerd.ctr("task", "pause", running, ns=cri.NS)
    assert cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "FROZEN"
    containerd.ctr("task", "resume", running, ns=cri.NS)
    assert cgroup_file(pid, "freezer", "freezer.state").read_text().strip() == "THAWED"
    assert exec_sync(cri, running, "true").exit_code == 0


def test_top(cri, containerd, running):
    pid = cri.pid(running)
    out = containerd.ctr("task", "ps", running, ns=cri.NS).stdout
    assert str(pid) in [line.split()[0] for line in out.splitlines()[1:]], out
    ps = exec_sync(cri, running, "ps", "-o", "pid,args").stdout.decode()
    assert "while :" in ps, ps


def test_memory_update(cri, running):
    pid = cri.pid(running)
    res = cri.pb.LinuxContainerResources
    cri.call("UpdateContainerResources", container_id=running, linux=res(memory_limit_in_bytes=MIB64))
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == MIB64
    cri.call("UpdateContainerResources", container_id=running,
             linux=res(memory_limit_in_bytes=96 << 20))
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == 96 << 20


def test_stop_remove(cri, pod, cname):
    cid = cri.container(pod, cname, LOOP)
    cg = cgroup_dir(cri.pid(cid))
    cri.call("StopContainer", container_id=cid, timeout=10)
    st = cri.status(cid).status
    assert cri.pb.ContainerState.Name(st.state) == "CONTAINER_EXITED" and st.exit_code == 0, st
    cri.call("RemoveContainer", container_id=cid)
    ids = [c.id for c in cri.call("ListContainers").containers]
    assert cid not in ids
    wait_until(lambda: not cg.exists(), timeout=10, what=f"{cg} removed")


def test_tty(cri, pod, cname):
    cid = cri.container(pod, cname, ["sh", "-c", "test -t 1 && echo tty-yes; tty"], tty=True)
    try:
        wait_until(lambda: state(cri, cid) == "CONTAINER_EXITED", what="exited")
        assert cri.status(cid).status.exit_code == 0
        wait_until(lambda: "tty-yes" in cri.log("kago-pod", cname), what="log line")
        assert "/dev/pts/0" in cri.log("kago-pod", cname)
    finally:
        cri.call("RemoveContainer", container_id=cid)


def test_error_message(cri, pod, cname):
    with pytest.raises(grpc.RpcError) as e:
        cid = cri.container(pod, cname, ["/no/such/exe"], start=False)
        try:
            cri.call("StartContainer", container_id=cid)
        finally:
            cri.call("RemoveContainer", container_id=cid)
    msg = e.value.details()
    assert 'exec: "/no/such/exe": stat /no/such/exe: no such file or directory' in msg, msg
