"""checkpoint/restore flag checks and the external mounts (issue 15); the
real dumps and restores are tests/integration/test_checkpoint.py (in the VM)."""

import pytest

from kago.container import checkpoint as ck
from kago.errors import InvalidArgument


def test_parent_path_rules(tmp_path):
    img = tmp_path / "img"
    (tmp_path / "pre").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidArgument, match="--parent-path must be relative"):
        ck.prepare_image_path(str(img), "/abs", make=False)
    with pytest.raises(InvalidArgument, match="invalid --parent-path: stat .*no such file"):
        ck.prepare_image_path(str(img), "../missing", make=False)
    with pytest.raises(InvalidArgument, match="not a directory"):
        ck.prepare_image_path(str(img), "../file", make=False)
    assert not img.exists()             # nothing made while checking
    # the image dir need not exist yet: ../pre resolves as it will
    assert ck.prepare_image_path(str(img), "../pre", make=False) == str(img)
    assert ck.prepare_image_path(str(img), "../pre") == str(img) and img.is_dir()
    with pytest.raises(InvalidArgument):
        ck.prepare_image_path(str(img) + "\0x")


@pytest.mark.parametrize("value, message", [
    ("nohost", "Use --page-server ADDRESS:PORT"),
    (":9000", "Use --page-server ADDRESS:PORT"),
    ("host:", "Use --page-server ADDRESS:PORT"),
    ("host:x", "Invalid port number"),
    ("host:70000", "Invalid port number"),
])
def test_page_server_refused(value, message):
    with pytest.raises(InvalidArgument, match=message):
        ck._page_server(value)


def test_page_server_ok():
    assert ck._page_server("10.0.0.1:9000") == ("10.0.0.1", "9000")
    assert ck._page_server("[::1]:9000") == ("::1", "9000")


def test_modes_and_empty_ns():
    assert ck.check_cgroups_mode("strict") == "strict"
    with pytest.raises(InvalidArgument, match="Invalid manage cgroups mode"):
        ck.check_cgroups_mode("loose")
    assert ck.check_empty_ns(["network"]) == ["net"]
    with pytest.raises(InvalidArgument, match="namespace 'pid' is not supported"):
        ck.check_empty_ns(["pid"])


def test_external_mounts_refuse_what_criu_cannot_carry():
    spec = {"mounts": [{"destination": "/data", "type": "bind", "source": "/srv"},
                       {"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"namespaces": [{"type": "cgroup"}],
                      "devices": [{"path": "/dev/fuse"}]}}
    assert ck.external_mounts(spec) == [("/data", "/data"), ("/dev/fuse", "/dev/fuse")]
    spec["mounts"][0]["destination"] = "/a]b"
    from kago.criu import CriuError
    with pytest.raises(CriuError, match="cannot carry"):
        ck.external_mounts(spec)


def test_image_meta_checked(tmp_path):
    from kago.errors import KagoError
    assert ck.read_image_meta(str(tmp_path)) == ([], {})
    (tmp_path / "descriptors.json").write_text('["/dev/null", "pipe:[12]", "x", "y"]')
    (tmp_path / "kago-checkpoint.json").write_text('{"tty": "tty[8800:17]"}')
    assert ck.read_image_meta(str(tmp_path)) == (["/dev/null", "pipe:[12]", "x"],
                                                {"tty": "tty[8800:17]"})
    for bad in ('{"tty": "tty[1:2] --root /"}', '{"tty": 5}', '[]'):
        (tmp_path / "kago-checkpoint.json").write_text(bad)
        with pytest.raises(KagoError):
            ck.read_image_meta(str(tmp_path))
    (tmp_path / "kago-checkpoint.json").write_text('{}')
    (tmp_path / "descriptors.json").write_text('[1]')
    with pytest.raises(KagoError):
        ck.read_image_meta(str(tmp_path))
