"""AppArmor/SELinux on this host (both off): a container that asks for a
profile or label fails to create with a clear error, and leaves nothing
behind; without them it runs."""

import pytest


@pytest.mark.parametrize("key,value,words", [
    ("apparmorProfile", "docker-default", ["apparmor", "docker-default", "not enabled"]),
    ("selinuxLabel", "system_u:system_r:container_t:s0:c1,c2",
     ["selinux", "container_t", "disabled or not supported"]),
])
def test_lsm_not_enabled(bundle, run_kago, cid, state_root, assert_clean, key, value, words):
    b = bundle("true", process={key: value})
    r = run_kago("run", "--bundle", b, cid, check=False)
    assert r.returncode != 0
    for w in words:
        assert w.lower() in r.stderr.lower(), r.stderr
    assert_clean()


def test_empty_values_are_no_request(bundle, run_kago, cid):
    b = bundle("echo ran", process={"apparmorProfile": "", "selinuxLabel": ""})
    assert "ran" in run_kago("run", "--bundle", b, cid).stdout


def test_mount_label_ignored_without_selinux(bundle, run_kago, cid, tmp_path, assert_clean):
    """A host without SELinux ignores linux.mountLabel, as crun does, with a
    debug line; the tmpfs is mounted without a context= option."""
    label = "system_u:object_r:container_file_t:s0"
    b = bundle("grep ' /dev/shm ' /proc/self/mounts", linux={"mountLabel": label})
    log = tmp_path / "kago.log"
    r = run_kago("--debug", "--log", log, "run", "--bundle", b, cid)
    shm = r.stdout.strip()
    assert shm.startswith("shm /dev/shm tmpfs") and "context=" not in shm, r.stdout
    assert f"linux.mountLabel '{label}' ignored: SELinux is not enabled" in log.read_text()
    assert_clean()
