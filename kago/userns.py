"""Who is calling: root, an ordinary user, or root in a user namespace
(rootless podman runs its runtime so).  runc's rules, in one place:

``running_in_userns()``   runc's ``userns.RunningInUserNS``: this process's
                          uid_map is not the whole identity map ``0 0 4294967295``
                          (the ids of the parent namespace are not all mapped)
``honor_xdg()``           runc's ``shouldHonorXDGRuntimeDir``: the default state
                          root is ``$XDG_RUNTIME_DIR/kago`` for a non-root caller,
                          and for root in a user namespace unless ``$USER`` is root
``rootless_cgroups(flag, systemd)``  runc's ``shouldUseRootlessCgroupManager``:
                          the global ``--rootless true|false|auto``; auto is
                          true for a non-root caller and for root in a user
                          namespace (cgroupfs; with ``--systemd-cgroup`` root
                          in a user namespace is taken as a real root)

Imports nothing but :mod:`kago._os`: the CLI asks before every command that
uses the default state root.
"""

from kago import _os as os

_in_userns = None


def running_in_userns(uid_map="/proc/self/uid_map") -> bool:
    global _in_userns
    if _in_userns is not None and uid_map == "/proc/self/uid_map":
        return _in_userns
    try:
        with open(uid_map) as f:
            text = f.read()
    except OSError:
        return False        # no user namespaces in this kernel
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    r = lines != [["0", "0", "4294967295"]]
    if uid_map == "/proc/self/uid_map":
        _in_userns = r
    return r


def honor_xdg() -> bool:
    if os.geteuid() != 0:
        return True
    if not running_in_userns():
        return False       # the real root: /run/kago, whatever XDG_RUNTIME_DIR says
    user = os.getenv("USER")
    return user is None or user != "root"


def parse_rootless(value):
    """``--rootless`` -> True, False or None (auto); Go's strconv.ParseBool words."""
    if value is None or value == "" or value.lower() == "auto":
        return None
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    from kago.errors import InvalidArgument
    raise InvalidArgument(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def rootless_cgroups(flag="auto", systemd=False) -> bool:
    b = parse_rootless(flag)
    if b is not None:
        return b
    if os.geteuid() != 0:
        return True
    if not running_in_userns():
        return False
    # root in a user namespace: with systemd runc asks the bus for its owner
    # uid and takes 0 on any failure; kago has no bus client for the user
    # bus, so: a real root's systemd (as runc's fallback)
    return not systemd
