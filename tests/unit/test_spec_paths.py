"""kago.spec at the host boundary (issue 12, items 1 and 4): which
``linux.sysctl`` keys a container may set, and the one spelling of every path
kago compares (mount destinations, devices, masked and readonly paths).

The integration tests (tests/integration/test_sysctl_boundary.py, test_rootfs_paths.py) run real
containers and check the host; these pin the rules and the messages.
"""

import os

import pytest

from kago import spec as kspec
from kago.errors import SpecError


def base(namespaces=("pid", "network", "ipc", "uts", "mount"), **extra):
    s = kspec.default_spec()
    s["linux"]["namespaces"] = [{"type": t} for t in namespaces]
    s.update(extra)
    return s


def with_sysctl(sysctl, namespaces=("pid", "network", "ipc", "uts", "mount"),
                paths=None, **extra):
    s = base(namespaces, **extra)
    for t, p in (paths or {}).items():
        s["linux"]["namespaces"].append({"type": t, "path": p})
    s["linux"]["sysctl"] = sysctl
    return s


def refused(s):
    with pytest.raises(SpecError) as ei:
        kspec.validate(s)
    return ei.value


# ---------------------------------------------------------------- clean

@pytest.mark.parametrize("p", ["/dev", "/dev/", "/./dev", "//dev", "dev", "///dev//",
                               "/x/../dev", "../dev", "/dev/.", "./dev/"])
def test_clean_gives_one_spelling(p):
    assert kspec.clean(p) == "/dev"


@pytest.mark.parametrize("p, want", [
    ("/", "/"), ("", "/"), ("..", "/"), ("/../..", "/"), ("a/b/../../..", "/"),
    ("/proc/sys/", "/proc/sys"), ("/a//b/./c/..", "/a/b"), ("...", "/..."),
    ("/a/.b", "/a/.b"),
])
def test_clean_is_go_filepath_clean_from_root(p, want):
    assert kspec.clean(p) == want


@pytest.mark.parametrize("dest", ["/dev", "/dev/", "/./dev", "//dev", "dev"])
def test_mount_destinations_get_one_spelling(dest):
    s = base()
    s["mounts"].append({"destination": dest, "type": "bind", "source": "/srv",
                        "options": ["rbind"]})
    assert kspec.validate(s)["mounts"][-1]["destination"] == "/dev"


def test_device_masked_and_readonly_paths_get_one_spelling():
    s = base()
    s["linux"]["devices"] = [{"path": "//dev//fuse/", "type": "c", "major": 10,
                              "minor": 229}]
    s["linux"]["maskedPaths"] = ["//proc/kcore", "/proc/./keys/"]
    s["linux"]["readonlyPaths"] = ["/proc//sys/", "/proc/x/../bus"]
    lx = kspec.validate(s)["linux"]
    assert lx["devices"][0]["path"] == "/dev/fuse"
    assert lx["maskedPaths"] == ["/proc/kcore", "/proc/keys"]
    assert lx["readonlyPaths"] == ["/proc/sys", "/proc/bus"]


# ---------------------------------------------------------------- sysctl names

@pytest.mark.parametrize("key, name, rel", [
    ("kernel.msgmax", "kernel.msgmax", "kernel/msgmax"),
    ("kernel/msgmax", "kernel.msgmax", "kernel/msgmax"),
    ("net.ipv4.conf.eth0/100.rp_filter", "net.ipv4.conf.eth0/100.rp_filter",
     "net/ipv4/conf/eth0.100/rp_filter"),
    ("net/ipv4/conf/eth0.100/rp_filter", "net.ipv4.conf.eth0/100.rp_filter",
     "net/ipv4/conf/eth0.100/rp_filter"),
    ("fs.mqueue.queues_max", "fs.mqueue.queues_max", "fs/mqueue/queues_max"),
    # a '/' after a '.' is a literal '.' in a name: "a..b" is a name, not a climb
    ("net.ipv4.a//b", "net.ipv4.a//b", "net/ipv4/a..b"),
])
def test_sysctl_name_as_sysctl8(key, name, rel):
    assert kspec.sysctl_name(key) == (name, rel)


@pytest.mark.parametrize("key", [
    "", "net/../../kernel/core_pattern", "net/ipv4/../../../kernel/core_pattern",
    "net..ipv4", ".net.ipv4", "net.ipv4.", "net//ipv4", "/net/ipv4", "net/./ipv4",
    "net.ipv4./.x", "net.ipv4.//.x", "net.ipv4\0x", "net", "..", ".", "/",
    "net.ipv4.ip_forward/../x", "net.//.//.kernel.core_pattern",
])
def test_sysctl_name_never_leaves_proc_sys(key):
    n = kspec.sysctl_name(key)
    if n is not None:    # one component, a file right under /proc/sys at worst
        assert n[1] not in ("", ".", "..") and "/" not in n[1] and "\0" not in n[1]
        return
    e = refused(with_sysctl({key: "1"}))
    if "\0" in key:     # the walk over the whole document refuses it first
        assert e.path.startswith("linux.sysctl") and "nul byte" in e.reason.lower(), e
        return
    assert e.path == f'linux.sysctl["{key}"]'.replace("\0", "\\u0000")
    assert e.reason.startswith("invalid sysctl name ")


def test_sysctl_climbing_key_refused():
    e = refused(with_sysctl({"net/../../kernel/core_pattern": "|/bin/sh"}))
    assert str(e) == ('config.json: linux.sysctl["net/../../kernel/core_pattern"]: '
                      'invalid sysctl name "net/../../kernel/core_pattern"')


# ---------------------------------------------------------------- sysctl rules

@pytest.mark.parametrize("key", [
    "fs.lease-break-time", "kernel.core_pattern", "vm.overcommit_memory",
    "kernel.pid_max", "fs/lease-break-time", "net", "dev.tty.ldisc_autoload",
    "kernel.random.boot_id", "user.max_user_namespaces",
])
def test_sysctl_outside_a_namespace_refused_with_runcs_words(key):
    e = refused(with_sysctl({key: "1"}))
    name = kspec.sysctl_name(key)[0]
    assert e.reason == f'sysctl "{name}" is not in a separate kernel namespace'
    assert str(e).startswith(f'config.json: linux.sysctl["{key}"]: ')


@pytest.mark.parametrize("key", [
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced", "fs.mqueue.queues_max",
    "fs/mqueue/msg_max", "fs.mqueue.anything",
])
def test_ipc_sysctls_need_an_ipc_namespace(key):
    assert kspec.validate(with_sysctl({key: "1"}))
    e = refused(with_sysctl({key: "1"}, ("pid", "network", "uts", "mount")))
    name = kspec.sysctl_name(key)[0]
    assert e.reason == f'sysctl "{name}" is not allowed in the hosts ipc namespace'


@pytest.mark.parametrize("key", ["kernel.msgmaxx", "kernel.shm", "fs.mqueue",
                                 "fs.mqueuex.y", "kernel.sem_next_id_x"])
def test_near_ipc_names_are_not_ipc_sysctls(key):
    e = refused(with_sysctl({key: "1"}))
    assert e.reason.endswith("is not in a separate kernel namespace")


def test_net_sysctls_need_a_network_namespace_of_their_own():
    key = "net.ipv4.ping_group_range"
    assert kspec.validate(with_sysctl({key: "0 0"}))
    e = refused(with_sysctl({key: "0 0"}, ("pid", "ipc", "uts", "mount")))
    assert e.reason == f'sysctl "{key}" not allowed in host network namespace'
    # the host's network namespace joined by path, however it is spelled
    for path in ("/proc/self/ns/net", f"/proc/{os.getpid()}/ns/net",
                 f"/proc/{os.getpid()}/task/{os.getpid()}/ns/net"):
        e = refused(with_sysctl({key: "0 0"}, ("pid", "ipc", "uts", "mount"),
                                {"network": path}))
        assert e.reason == f'sysctl "{key}" not allowed in host network namespace'


def test_net_sysctl_with_a_joined_namespace_path(tmp_path):
    key = "net.ipv4.ping_group_range"
    e = refused(with_sysctl({key: "0 0"}, ("pid", "ipc", "uts", "mount"),
                            {"network": str(tmp_path / "missing")}))
    assert e.reason == (f"invalid netns path: stat {tmp_path / 'missing'}: "
                        "no such file or directory")
    # another namespace than the host's (here: any other inode) is the container's
    other = tmp_path / "netns"
    other.write_text("")
    assert kspec.validate(with_sysctl({key: "0 0"}, ("pid", "ipc", "uts", "mount"),
                                      {"network": str(other)}))


def test_ipc_sysctl_in_the_hosts_ipc_namespace_joined_by_path():
    e = refused(with_sysctl({"kernel.shmmax": "1"}, ("pid", "network", "uts", "mount"),
                            {"ipc": "/proc/self/ns/ipc"}))
    assert e.reason == 'sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace'


def test_uts_sysctls():
    # need a uts namespace of the container's own
    for key in ("kernel.hostname", "kernel.domainname"):
        e = refused(with_sysctl({key: "x"}, ("pid", "network", "ipc", "mount"),
                                hostname=None))
        assert e.reason == f'sysctl "{key}" is not in a separate kernel namespace'
        e = refused(with_sysctl({key: "x"}, ("pid", "network", "ipc", "mount"),
                                {"uts": "/proc/self/ns/uts"}, hostname=None))
        assert e.reason == f'sysctl "{key}" is not in a separate kernel namespace'
    # allowed when hostname/domainname don't say otherwise
    assert kspec.validate(with_sysctl({"kernel.hostname": "a", "kernel.domainname": "b"},
                                      hostname=None))
    assert kspec.validate(with_sysctl({"kernel.hostname": "a"}, hostname="a"))
    for field in ("hostname", "domainname"):
        e = refused(with_sysctl({f"kernel.{field}": "a"}, **{field: "b"}))
        assert e.reason == (f'sysctl "kernel.{field}" is not allowed as it conflicts '
                            f'with the OCI "{field}" field')


def test_every_key_is_checked_not_only_the_first():
    e = refused(with_sysctl({"kernel.shmmax": "1", "net.ipv4.ip_forward": "1",
                             "fs.lease-break-time": "46"}))
    assert e.path == 'linux.sysctl["fs.lease-break-time"]'
