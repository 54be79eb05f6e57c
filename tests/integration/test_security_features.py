"""`kago features` through the CLI: valid JSON, runc's layout, the same
document the library builds, and at least what runc 1.1 reports where kago
implements the same thing."""

import json
import shutil

import pytest

from kago.spec.features import features


def test_cli_prints_the_library_document(run_kago):
    r = run_kago("features", root=None)
    assert r.stdout.startswith('{\n    "ociVersionMin": ')   # runc's 4-space indent
    assert r.stdout.endswith("}\n")
    doc = json.loads(r.stdout)
    assert doc == features()


@pytest.mark.skipif(not shutil.which("runc"), reason="runc not installed")
def test_covers_runcs_features(run_kago):
    import subprocess
    runc = json.loads(subprocess.run(["runc", "features"], capture_output=True,
                                     text=True, check=True).stdout)
    kago = json.loads(run_kago("features", root=None).stdout)
    assert set(runc["hooks"]) <= set(kago["hooks"])
    assert set(runc["mountOptions"]) <= set(kago["mountOptions"])
    rl, kl = runc["linux"], kago["linux"]
    assert set(rl["namespaces"]) <= set(kl["namespaces"])
    assert set(rl["capabilities"]) <= set(kl["capabilities"])
    for k in ("actions", "operators", "archs"):
        assert set(rl["seccomp"][k]) <= set(kl["seccomp"][k]), k
    assert kl["apparmor"] == rl["apparmor"] and kl["selinux"] == rl["selinux"]
    # this kernel has neither LSM on
    assert kago["annotations"]["org.kago.apparmor.host-enabled"] == "false"
    assert kago["annotations"]["org.kago.selinux.host-enabled"] == "false"
