"""``kago features``: the runtime-spec features document (features.md).

Every list comes from the table the code itself uses, so the document can't
drift from what kago does:

=====================  ===============================================
hooks                  kago.hooks.KINDS
mountOptions           kago.rootfs.mounts FLAGS, PROPAGATION, RECURSIVE, EXTRA, IDMAP
linux.mountExtensions  idmap: enabled when kago.rootfs.mounts.IDMAP has its options
linux.namespaces       kago.namespaces.FLAGS (``time`` only if the kernel has it)
linux.capabilities     kago.security.capabilities.CAPS (up to cap_last_cap)
linux.cgroup           the drivers present in kago.cgroups
linux.seccomp          kago.security.seccomp ACTIONS, OPERATORS, ARCHES, FLAGS;
                       supportedFlags probed from the kernel
linux.apparmor/selinux true (support is built in, as features.md defines
                       it); the host's state: org.kago.*.host-enabled annotations
=====================  ===============================================
"""

from kago import _os as os

OCI_VERSION_MIN = "1.0.0"


def _have(module: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def mount_options() -> list:
    from kago.rootfs import mounts
    return sorted(set(mounts.FLAGS) | set(mounts.PROPAGATION) | set(mounts.RECURSIVE)
                  | set(mounts.EXTRA) | set(mounts.IDMAP))


def mount_extensions() -> dict:
    """features.md: idmap "enabled" is whether kago supports idmapped mounts,
    not whether this host's filesystems or kernel do (runc's meaning too)."""
    from kago.rootfs import mounts
    return {"idmap": {"enabled": {"idmap", "ridmap"} <= set(mounts.IDMAP)}}


def namespaces() -> list:
    from kago.namespaces import FLAGS
    out = []
    for name in FLAGS:
        if name == "time" and not os.path.exists("/proc/self/ns/time"):
            continue
        out.append(name)
    return sorted(out)


def capabilities() -> list:
    from kago.security.capabilities import CAPS, last_cap
    last = last_cap()
    return [n for n, v in sorted(CAPS.items(), key=lambda kv: kv[1]) if v <= last]


def cgroup() -> dict:
    d = {"v1": _have("kago.cgroups.v1"), "v2": _have("kago.cgroups.v2"),
         "systemd": _have("kago.cgroups.systemd")}
    d["systemdUser"] = d["systemd"]
    d["rdma"] = d["v1"] or d["v2"]   # both drivers apply linux.resources.rdma
    return d


def seccomp_supported_flags() -> list:
    """The flags this kernel accepts: seccomp(SET_MODE_FILTER, flag, NULL)
    fails with EFAULT (flags checked, then the NULL program) for a known
    flag and EINVAL for an unknown one - nothing is installed either way."""
    from kago import _ffi as ctypes
    from kago import sys as ksys
    from kago.security import seccomp as sc
    try:
        nr = sc._nr_seccomp()
    except sc.SeccompError:
        return []
    libc = ksys.libc()
    out = []
    for name, flag in sorted(sc.FLAGS.items()):
        if flag == sc.FLAGS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]:
            flag |= sc.FLAG_NEW_LISTENER
        r = libc.syscall(nr, sc.SECCOMP_SET_MODE_FILTER, ctypes.c_uint(flag), None)
        if r < 0 and ctypes.get_errno() == 14:  # EFAULT
            out.append(name)
    return out


def seccomp() -> dict:
    from kago.security import seccomp as sc
    try:
        sc.lib()
        enabled = "Seccomp:" in open("/proc/self/status").read()
    except (sc.SeccompError, OSError):
        enabled = False
    d = {"enabled": enabled}
    if enabled:
        d["actions"] = sorted(sc.ACTIONS)
        d["operators"] = sorted(sc.OPERATORS)
        h = sc.lib()
        d["archs"] = sorted(a for a, n in sc.ARCHES.items()
                            if h.seccomp_arch_resolve_name(n.encode()))
        d["knownFlags"] = sorted(sc.FLAGS)
        d["supportedFlags"] = seccomp_supported_flags()
    return d


def features() -> dict:
    import kago
    from kago.hooks import KINDS
    from kago.security import apparmor, selinux
    from kago.security import seccomp as sc
    linux = {
        "namespaces": namespaces(),
        "capabilities": capabilities(),
        "cgroup": cgroup(),
        "seccomp": seccomp(),
        # features.md: "whether support is compiled in" - not the host's state,
        # which goes in the annotations below
        "apparmor": {"enabled": True},
        "selinux": {"enabled": True},
        "intelRdt": {"enabled": False},
        "mountExtensions": mount_extensions(),
    }
    ann = {"org.kago.version": kago.__version__,
           "org.kago.apparmor.host-enabled": str(apparmor.enabled()).lower(),
           "org.kago.selinux.host-enabled": str(selinux.enabled()).lower(),
           # checkpoint/restore through criu (runc 1.2: ...runc.checkpoint.enabled)
           "org.kago.checkpoint.enabled": "true"}
    v = sc.version()
    if v:
        ann["io.github.seccomp.libseccomp.version"] = v
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": kago.OCI_VERSION,
        "hooks": list(KINDS),
        "mountOptions": mount_options(),
        "linux": linux,
        "annotations": ann,
    }
