"""linux.sysctl only in kernel namespaces the container owns (issue 12, item 1).

A refused key must leave the host's value as it was (read /proc/sys before and
after) and nothing behind (no state dir, cgroup or process: the refusal comes
from the spec check, before the fork). An allowed key applies inside the
container (read there) and not on the host.

Nothing here may change a host value for good: the keys that an unsafe kago
would write on the host are benign ones with a value other than the host's
(so the test sees it), restored in a ``finally`` if they ever changed; the
dangerous ones (kernel.core_pattern) are asked with the host's own value.
"""

import os
import re
import signal
import subprocess
import time
from contextlib import contextmanager

import pytest

from tests.integration.helpers import one

ALL_NS = ["pid", "network", "ipc", "uts", "mount"]


def proc_sys(name: str) -> str:
    """The host's value of a dotted sysctl name (no '/' inside its names)."""
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return f.read().strip()


@contextmanager
def host_values_kept(*names):
    """Fails if any of the host's sysctls ``names`` changed; restores them."""
    before = {n: proc_sys(n) for n in names}
    try:
        yield before
    finally:
        after = {n: proc_sys(n) for n in names}
        for n, v in before.items():
            if after[n] != v:
                with open("/proc/sys/" + n.replace(".", "/"), "w") as f:
                    f.write(v)
        assert after == before, "a host sysctl changed (restored now)"


def other_value(name: str, before: str) -> str:
    """A value the host does not have, harmless for these keys."""
    if name == "net.ipv4.ping_group_range":
        return "0 0" if before.split() != ["0", "0"] else "1 0"
    if name == "kernel.domainname":
        return "kago-b.invalid" if before != "kago-b.invalid" else "kago-c.invalid"
    return str(int(before) + 1)


def err_msg(r) -> str:
    """The msg of the one error record a failed command printed (logfmt)."""
    m = re.fullmatch(r'time="[^"]+" level=error msg="(.*)"', r.stderr.strip())
    assert m, r.stderr
    return m.group(1).replace('\\"', '"').replace("\\\\", "\\")


def namespaces(types, **paths):
    return [{"type": t} for t in types] + [{"type": t, "path": p} for t, p in paths.items()]


def expect_refused(bundle, run_kago, cid, state_root, sysctl, message, ns=ALL_NS,
                   paths=None, **overrides):
    b = bundle("echo started", linux={"sysctl": sysctl,
                                      "namespaces": namespaces(ns, **(paths or {}))},
               **overrides)
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode == 1, r
    assert "started" not in r.stdout
    msg = err_msg(r)
    assert msg.startswith("kago run failed: config.json: linux.sysctl["), msg
    assert message in msg, msg
    assert not os.path.exists(os.path.join(state_root, cid))
    return msg


# --------------------------------------------------------------- refused

# key, namespaces the container has, runc's words
REFUSED = [
    ("fs.lease-break-time", ALL_NS, "is not in a separate kernel namespace"),
    ("fs/lease-break-time", ALL_NS, "is not in a separate kernel namespace"),
    ("net.ipv4.ping_group_range", ["pid", "ipc", "uts", "mount"],
     "not allowed in host network namespace"),
    ("fs.mqueue.queues_max", ["pid", "network", "uts", "mount"],
     "is not allowed in the hosts ipc namespace"),
    ("kernel.shmmni", ["pid", "network", "uts", "mount"],
     "is not allowed in the hosts ipc namespace"),
    ("kernel.domainname", ["pid", "network", "ipc", "mount"],
     "is not in a separate kernel namespace"),
]


@pytest.mark.parametrize("key, ns, words", REFUSED, ids=[r[0] + "-" + r[2].split()[-2]
                                                         for r in REFUSED])
def test_refused_sysctl_leaves_the_host_value(bundle, run_kago, cid, state_root,
                                              assert_clean, key, ns, words):
    name = key.replace("/", ".")
    with host_values_kept(name) as before:
        value = other_value(name, before[name])
        msg = expect_refused(bundle, run_kago, cid, state_root, {key: value},
                             f'sysctl "{name}" {words}', ns=ns, hostname=None)
    assert msg == (f'kago run failed: config.json: linux.sysctl["{key}"]: '
                   f'sysctl "{name}" {words}')
    assert_clean()


def test_refused_with_the_hosts_netns_or_ipcns_joined_by_path(bundle, run_kago, cid,
                                                             state_root, assert_clean):
    me = os.getpid()
    with host_values_kept("net.ipv4.ping_group_range", "kernel.msgmnb") as before:
        net = other_value("net.ipv4.ping_group_range", before["net.ipv4.ping_group_range"])
        for path in ("/proc/self/ns/net", f"/proc/{me}/ns/net", f"/proc/{me}/task/{me}/ns/net"):
            expect_refused(bundle, run_kago, cid, state_root,
                           {"net.ipv4.ping_group_range": net},
                           'sysctl "net.ipv4.ping_group_range" not allowed in host '
                           "network namespace",
                           ns=["pid", "ipc", "uts", "mount"], paths={"network": path})
        expect_refused(bundle, run_kago, cid, state_root,
                       {"kernel.msgmnb": other_value("kernel.msgmnb", before["kernel.msgmnb"])},
                       'sysctl "kernel.msgmnb" is not allowed in the hosts ipc namespace',
                       ns=["pid", "network", "uts", "mount"], paths={"ipc": f"/proc/{me}/ns/ipc"})
    assert_clean()


@pytest.mark.parametrize("key", [
    "net/../../fs/lease-break-time", "net/ipv4/../../../fs/lease-break-time",
    "net.ipv4.//.//.fs.lease-break-time", "net.ipv4./..fs.lease-break-time",
    "net//../fs/lease-break-time",
])
def test_a_key_never_climbs_out_of_proc_sys(bundle, run_kago, cid, state_root,
                                            assert_clean, key):
    """In the container's own network namespace, a net.* key that would climb
    to a host-wide file is refused by name (runc would try and fail to open it)."""
    with host_values_kept("fs.lease-break-time") as before:
        value = other_value("fs.lease-break-time", before["fs.lease-break-time"])
        expect_refused(bundle, run_kago, cid, state_root, {key: value},
                       "invalid sysctl name")
    assert_clean()


def test_dangerous_keys_refused_without_risk(bundle, run_kago, cid, state_root,
                                             assert_clean):
    """kernel.core_pattern would be code execution as root on the host: it is
    asked with the host's own value, so even a failing kago changes nothing."""
    with host_values_kept("kernel.core_pattern", "kernel.randomize_va_space") as before:
        for key in ("kernel.core_pattern", "kernel.randomize_va_space"):
            expect_refused(bundle, run_kago, cid, state_root, {key: before[key]},
                           f'sysctl "{key}" is not in a separate kernel namespace')
        expect_refused(bundle, run_kago, cid, state_root,
                       {"net/../../kernel/core_pattern": before["kernel.core_pattern"]},
                       'invalid sysctl name "net/../../kernel/core_pattern"')
    assert_clean()


# --------------------------------------------------------------- allowed

def test_allowed_sysctls_apply_inside_only(bundle, run_kago, cid, assert_clean):
    names = ["kernel.msgmax", "kernel.shm_rmid_forced", "fs.mqueue.queues_max",
             "net.ipv4.ping_group_range", "net.ipv4.ip_forward", "kernel.domainname"]
    with host_values_kept(*names) as before:
        want = {n: other_value(n, before[n]) for n in names if n != "net.ipv4.ip_forward"}
        want["kernel.shm_rmid_forced"] = "1" if before["kernel.shm_rmid_forced"] == "0" else "0"
        want["net.ipv4.ip_forward"] = "1" if before["net.ipv4.ip_forward"] == "0" else "0"
        sysctl = dict(want)
        # the slash spelling (sysctl(8)) of two of them
        sysctl["net/ipv4/ip_forward"] = sysctl.pop("net.ipv4.ip_forward")
        sysctl["fs/mqueue/queues_max"] = sysctl.pop("fs.mqueue.queues_max")
        script = "; ".join(f"echo {n}=$(cat /proc/sys/{n.replace('.', '/')})" for n in names)
        b = bundle(script, hostname=None, linux={"sysctl": sysctl})
        out = run_kago("run", "--bundle", b, cid).stdout
        for n in names:
            assert one(out, n + "=") == want[n], out
    assert_clean()


@pytest.fixture
def other_ns():
    """A network + ipc namespace that is not the host's (held by a sleep)."""
    p = subprocess.Popen(["unshare", "--net", "--ipc", "sleep", "300"])
    try:
        for _ in range(200):
            if os.readlink(f"/proc/{p.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        else:
            pytest.fail("unshare did not make a network namespace")
        yield p.pid
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()


def test_allowed_in_namespaces_joined_by_path(bundle, run_kago, cid, assert_clean,
                                              other_ns):
    names = ["net.ipv4.ping_group_range", "kernel.msgmni"]
    with host_values_kept(*names) as before:
        want = {n: other_value(n, before[n]) for n in names}
        b = bundle("; ".join(f"echo {n}=$(cat /proc/sys/{n.replace('.', '/')})"
                             for n in names),
                   linux={"sysctl": want, "namespaces": namespaces(
                       ["pid", "uts", "mount"], network=f"/proc/{other_ns}/ns/net",
                       ipc=f"/proc/{other_ns}/ns/ipc")})
        out = run_kago("run", "--bundle", b, cid).stdout
        for n in names:
            assert one(out, n + "=") == want[n], out
            # and in the joined namespace, seen from the host's side
            seen = subprocess.run(["nsenter", f"--net=/proc/{other_ns}/ns/net",
                                   f"--ipc=/proc/{other_ns}/ns/ipc", "cat",
                                   "/proc/sys/" + n.replace(".", "/")],
                                  capture_output=True, text=True, check=True).stdout
            assert seen.split() == want[n].split()
    assert_clean()


def test_hostname_sysctl_conflicting_with_hostname_refused(bundle, run_kago, cid,
                                                          state_root, assert_clean):
    with host_values_kept("kernel.hostname"):
        expect_refused(bundle, run_kago, cid, state_root, {"kernel.hostname": "other"},
                       'sysctl "kernel.hostname" is not allowed as it conflicts with '
                       'the OCI "hostname" field', hostname="kago")
        b = bundle("hostname", hostname=None, linux={"sysctl": {"kernel.hostname": "via-sysctl"}})
        assert run_kago("run", "--bundle", b, cid).stdout.strip() == "via-sysctl"
    assert_clean()


def test_a_bind_over_a_sysctl_file_takes_no_write(bundle, run_kago, cid, tmp_path,
                                                 assert_clean):
    """A bind over /proc/sys/net/ipv4/ip_forward (here a host file; it could be
    the host's /proc/sys/kernel/core_pattern) must not receive the write meant
    for the container's own network namespace."""
    host_file = tmp_path / "not-a-sysctl"
    host_file.write_text("host content\n")
    with host_values_kept("net.ipv4.ip_forward") as before:
        value = "1" if before["net.ipv4.ip_forward"] == "0" else "0"
        b = bundle("echo started", linux={"sysctl": {"net.ipv4.ip_forward": value}},
                   edit=lambda cfg: cfg["mounts"].insert(1, {
                       "destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind",
                       "source": str(host_file), "options": ["bind", "rw"]}))
        r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode == 1 and "started" not in r.stdout, r
    assert err_msg(r) == ("kago run failed: write sysctl net.ipv4.ip_forward "
                          "(a mount on /proc/sys/net/ipv4/ip_forward): "
                          "Invalid cross-device link")
    assert host_file.read_text() == "host content\n"
    assert_clean()
