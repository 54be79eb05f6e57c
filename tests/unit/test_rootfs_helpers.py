"""Small pure helpers of kago.rootfs (the behaviour is in
tests/integration/test_conformance_rootfs.py)."""

from kago.process.init import check_spec
from kago.errors import SpecError
from kago.rootfs import _unescape, bind_sources
from kago.rootfs.mounts import idmapping

import pytest


def test_bind_sources_are_the_bind_mounts_with_bundle_relative_paths():
    spec = {"mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/a", "type": "bind", "source": "/host/a"},
        {"destination": "/b", "type": "none", "source": "data/b", "options": ["rbind", "ro"]},
        {"destination": "/c", "source": "/host/c", "options": ["bind"]},
        {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]},
    ]}
    assert bind_sources(spec, "/bundles/x") == [
        (1, "/host/a"), (2, "/bundles/x/data/b"), (3, "/host/c")]
    assert bind_sources({}, "/b") == []


def test_mountinfo_paths_are_unescaped():
    assert _unescape("/plain/path") == "/plain/path"
    assert _unescape("/a\\040b/c\\011d\\012e\\134f") == "/a b/c\td\ne\\f"


def test_no_mount_namespace_is_allowed_but_not_with_a_user_namespace():
    check_spec({}, {"pid", "network"})
    with pytest.raises(SpecError) as e:
        check_spec({}, {"pid", "user"})
    assert str(e.value) == ("config.json: linux.namespaces: a user namespace needs a mount "
                            "namespace of its own")
    check_spec({}, {"user", "mount"})


def test_idmapping_of_a_mount():
    """(recursive, uidMappings, gidMappings); None mappings: the container's
    user namespace; empty mappings without an option: not idmapped."""
    u = [{"containerID": 0, "hostID": 1000, "size": 1}]
    g = [{"containerID": 0, "hostID": 2000, "size": 1}]
    bind = {"destination": "/a", "type": "bind", "source": "/a"}
    assert idmapping(bind) is None
    assert idmapping(dict(bind, uidMappings=[], gidMappings=[])) is None
    assert idmapping(dict(bind, uidMappings=u, gidMappings=g)) == (False, u, g)
    assert idmapping(dict(bind, options=["rbind", "ridmap"], uidMappings=u,
                          gidMappings=g)) == (True, u, g)
    assert idmapping(dict(bind, options=["idmap"])) == (False, None, None)
    assert idmapping(dict(bind, options=["ridmap"], uidMappings=[])) == (True, None, None)
