"""`kago features`: the OCI features document, checked against the schema's
shape (runtime-spec features.md / schema/features-schema.json) and against
what the code really accepts."""

import re

import pytest

from kago.errors import SpecError
from kago.spec.features import features

NS_ENUM = {"mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"}


@pytest.fixture(scope="module")
def feat():
    return features()


def _strlist(v):
    assert isinstance(v, list) and all(isinstance(s, str) and s for s in v)
    assert len(set(v)) == len(v), "duplicates"


def test_schema_shape(feat):
    assert set(feat) <= {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux",
                         "annotations", "potentiallyUnsafeConfigAnnotations"}
    for k in ("ociVersionMin", "ociVersionMax"):
        assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", feat[k]), feat[k]
    _strlist(feat["hooks"])
    _strlist(feat["mountOptions"])
    lx = feat["linux"]
    assert set(lx) <= {"namespaces", "capabilities", "cgroup", "seccomp", "apparmor",
                       "selinux", "intelRdt", "mountExtensions", "netDevices"}
    _strlist(lx["namespaces"])
    assert set(lx["namespaces"]) <= NS_ENUM
    _strlist(lx["capabilities"])
    assert all(re.fullmatch(r"CAP_[A-Z_]+", c) for c in lx["capabilities"])
    assert set(lx["cgroup"]) <= {"v1", "v2", "systemd", "systemdUser", "rdma"}
    assert all(isinstance(v, bool) for v in lx["cgroup"].values())
    sc = lx["seccomp"]
    assert isinstance(sc["enabled"], bool)
    for k in ("actions", "operators", "archs", "knownFlags", "supportedFlags"):
        _strlist(sc[k])
    assert all(a.startswith("SCMP_ACT_") for a in sc["actions"])
    assert all(a.startswith("SCMP_CMP_") for a in sc["operators"])
    assert all(a.startswith("SCMP_ARCH_") for a in sc["archs"])
    assert set(sc["supportedFlags"]) <= set(sc["knownFlags"])
    for k in ("apparmor", "selinux", "intelRdt"):
        assert set(lx[k]) == {"enabled"} and isinstance(lx[k]["enabled"], bool)
    assert isinstance(lx["mountExtensions"]["idmap"]["enabled"], bool)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in feat["annotations"].items())


def test_hooks_are_what_the_code_runs(feat):
    from kago import hooks
    assert feat["hooks"] == list(hooks.KINDS)


def test_every_mount_option_is_accepted(feat):
    from kago.rootfs.mounts import parse_options
    for opt in feat["mountOptions"]:
        o = parse_options([opt], "mounts[0].options")
        assert not o.data, f"{opt} would be passed to the filesystem as data"


def test_idmapped_mounts_are_a_feature(feat):
    """runtime-spec features.md: the idmap/ridmap options and
    linux.mountExtensions.idmap.enabled (containerd and CRI-O read it before
    they ask for an idmapped mount) - from the table parse_options uses."""
    from kago.rootfs.mounts import IDMAP, parse_options
    assert {"idmap", "ridmap"} <= set(feat["mountOptions"])
    assert feat["linux"]["mountExtensions"] == {"idmap": {"enabled": True}}
    assert set(IDMAP) == {"idmap", "ridmap"}
    for opt in IDMAP:
        o = parse_options(["rbind", opt])
        assert o.idmap == opt and not o.data and not o.extra


def test_an_unknown_mount_option_is_data_not_a_feature(feat):
    from kago.rootfs.mounts import parse_options
    assert "size=1m" not in feat["mountOptions"]
    assert parse_options(["size=1m"]).data == ["size=1m"]


def test_namespaces_are_accepted_by_the_spec(feat):
    from kago.namespaces import FLAGS
    from kago.spec import NAMESPACE_TYPES
    assert set(feat["linux"]["namespaces"]) <= set(FLAGS) == set(NAMESPACE_TYPES)


def test_capabilities_match_the_table(feat):
    from kago.security.capabilities import CAPS, to_mask
    caps = feat["linux"]["capabilities"]
    assert caps[0] == "CAP_CHOWN" and set(caps) <= set(CAPS)
    assert to_mask(caps) == (1 << len(caps)) - 1


def test_seccomp_lists_are_the_code_tables(feat):
    from kago.security import seccomp as sc
    s = feat["linux"]["seccomp"]
    assert s["enabled"]
    assert set(s["actions"]) == set(sc.ACTIONS)
    assert set(s["operators"]) == set(sc.OPERATORS)
    assert set(s["archs"]) <= set(sc.ARCHES)
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"} <= set(s["archs"])
    assert set(s["knownFlags"]) == set(sc.FLAGS)


def test_every_listed_seccomp_feature_builds(feat):
    from kago.security import seccomp as sc
    s = feat["linux"]["seccomp"]
    rules = [{"names": ["getppid"], "action": a} for a in s["actions"]
             if a not in ("SCMP_ACT_ALLOW", "SCMP_ACT_NOTIFY")]
    rules += [{"names": ["getpgid"], "action": "SCMP_ACT_ERRNO",
               "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": op}]}
              for op in s["operators"]]
    import os
    family = (["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
              if os.uname().machine == "x86_64" else ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
    assert set(family) <= set(s["archs"])
    h = sc.lib()
    assert all(h.seccomp_arch_resolve_name(sc.ARCHES[a].encode()) for a in s["archs"])
    # (one filter can't mix byte orders: libseccomp, and runc, refuse it)
    f = sc.build({"defaultAction": "SCMP_ACT_ALLOW", "architectures": family,
                  "flags": s["supportedFlags"], "syscalls": rules})
    assert f.bpf


def test_unlisted_values_are_rejected(feat):
    from kago.security import seccomp as sc
    with pytest.raises(SpecError):
        sc.parse({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]})


def test_lsm_availability_is_reported(feat):
    from kago.security import apparmor, selinux
    # features.md: "enabled" = support compiled in; the host's state is annotated
    assert feat["linux"]["apparmor"]["enabled"] and feat["linux"]["selinux"]["enabled"]
    ann = feat["annotations"]
    assert ann["org.kago.apparmor.host-enabled"] == str(apparmor.enabled()).lower()
    assert ann["org.kago.selinux.host-enabled"] == str(selinux.enabled()).lower()
