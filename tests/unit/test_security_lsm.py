"""AppArmor and SELinux against a fake /sys and /proc (this kernel has both
off): what is written where, and the errors when they are not enabled."""

import os

import pytest

from kago.security import apparmor, selinux


@pytest.fixture
def fake(tmp_path, monkeypatch):
    sys_root, proc_root = tmp_path / "sys", tmp_path / "proc"
    (proc_root / "thread-self" / "attr" / "apparmor").mkdir(parents=True)
    (proc_root / "self" / "attr").mkdir(parents=True)
    for mod in (apparmor, selinux):
        monkeypatch.setattr(mod, "SYS", str(sys_root))
        monkeypatch.setattr(mod, "PROC", str(proc_root))
        monkeypatch.setattr(mod, "_enabled", None)
    return sys_root, proc_root


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# ------------------------------------------------------------------ AppArmor

def test_apparmor_enabled(fake):
    sys_root, _ = fake
    assert not apparmor.enabled()
    _write(sys_root / "module/apparmor/parameters/enabled", "Y\n")
    assert apparmor.enabled(refresh=True)
    _write(sys_root / "module/apparmor/parameters/enabled", "N\n")
    assert not apparmor.enabled(refresh=True)


def test_apparmor_profile_written_to_the_stacked_interface(fake):
    sys_root, proc_root = fake
    _write(sys_root / "module/apparmor/parameters/enabled", "Y")
    target = proc_root / "thread-self/attr/apparmor/exec"
    target.write_text("")
    apparmor.apply_profile("docker-default")
    assert target.read_text() == "exec docker-default"


def test_apparmor_falls_back_to_attr_exec(fake):
    sys_root, proc_root = fake
    _write(sys_root / "module/apparmor/parameters/enabled", "Y")
    os.rmdir(proc_root / "thread-self/attr/apparmor")
    target = proc_root / "thread-self/attr/exec"
    target.write_text("")
    apparmor.apply_profile("kago-test")
    assert target.read_text() == "exec kago-test"


def test_apparmor_not_enabled_is_a_clear_error(fake):
    with pytest.raises(apparmor.AppArmorError) as ei:
        apparmor.apply_profile("docker-default")
    msg = str(ei.value)
    assert "docker-default" in msg and "not enabled" in msg
    assert "process.apparmorProfile" in msg


def test_apparmor_empty_profile_is_nothing(fake):
    sys_root, proc_root = fake
    apparmor.apply_profile("")          # AppArmor off: no profile asked for, so no error
    apparmor.apply_profile(None)
    _write(sys_root / "module/apparmor/parameters/enabled", "Y")
    apparmor.enabled(refresh=True)
    target = proc_root / "thread-self/attr/apparmor/exec"
    target.write_text("")
    apparmor.apply_profile("")          # AppArmor on: still nothing written
    apparmor.apply_profile(None)
    assert target.read_text() == ""


def test_apparmor_real_host_is_off():
    apparmor._enabled = None
    assert apparmor.enabled() is False


# ------------------------------------------------------------------- SELinux

def _selinux_on(fake, current="system_u:system_r:unconfined_t:s0"):
    sys_root, proc_root = fake
    _write(sys_root / "fs/selinux/enforce", "1")
    _write(proc_root / "self/attr/current", current + "\0")


def test_selinux_enabled(fake):
    assert not selinux.enabled()
    _selinux_on(fake)
    assert selinux.enabled(refresh=True)
    _selinux_on(fake, "kernel")
    assert not selinux.enabled(refresh=True)


def test_selinux_exec_label(fake):
    _selinux_on(fake)
    target = fake[1] / "thread-self/attr/exec"
    target.write_text("")
    selinux.set_exec_label("system_u:system_r:container_t:s0:c1,c2")
    assert target.read_text() == "system_u:system_r:container_t:s0:c1,c2"


def test_selinux_not_enabled_is_a_clear_error(fake):
    with pytest.raises(selinux.SELinuxError) as ei:
        selinux.set_exec_label("system_u:system_r:container_t:s0")
    msg = str(ei.value)
    assert "container_t" in msg and "disabled or not supported" in msg
    assert "process.selinuxLabel" in msg


def test_selinux_mount_label(fake):
    assert selinux.mount_data("mode=755", "") == "mode=755"
    # no SELinux: ignored (crun, go-selinux), the data unchanged
    assert selinux.mount_data("mode=755", "system_u:object_r:container_file_t:s0") == \
        "mode=755"
    _selinux_on(fake)
    selinux.enabled(refresh=True)
    assert selinux.mount_data("mode=755", "system_u:object_r:container_file_t:s0") == \
        'mode=755,context="system_u:object_r:container_file_t:s0"'
    assert selinux.mount_data("", "l") == 'context="l"'


def test_selinux_real_host_is_off():
    selinux._enabled = None
    assert selinux.enabled() is False
