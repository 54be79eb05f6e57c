"""A guard for "nothing is imported in a child after it pivoted or entered a
user namespace" (issue 12, item 8): every import written inside a function of
the modules the container's processes run is already in ``sys.modules`` once
main's ``preload()`` ran for a config that asks for every feature.  The
functions that only main runs are listed, with the reason.
(tests/integration/test_no_late_imports.py proves it with real containers.)"""

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).absolute().parent.parent.parent
CHILD_MODULES = [
    "kago/process/intermediate.py", "kago/process/init.py", "kago/process/attrs.py",
    "kago/process/extras.py", "kago/process/channel.py", "kago/rootfs/__init__.py",
    "kago/rootfs/mounts.py", "kago/hooks.py", "kago/tty.py", "kago/security/seccomp.py",
    "kago/security/capabilities.py", "kago/security/apparmor.py",
    "kago/security/selinux.py", "kago/namespaces.py", "kago/errors.py",
    "kago/sys/__init__.py", "kago/_ffi.py", "kago/_os.py", "kago/_json.py",
]
MAIN_ONLY = {
    ("kago/tty.py", "relay"): "run -t: main relays the pty",
    ("kago/security/seccomp.py", "_hasher"): "alternatives; preload() resolves one (checked below)",
    ("kago/security/seccomp.py", "preload"): "main's preload itself",
    ("kago/process/attrs.py", "warn_capabilities"): "main, before the fork",
    ("kago/hooks.py", "_poststop"): "poststop hooks run in main (delete)",
    # conditional: seccomp.preload(cfg) imports kago.log when build() will warn
    # (an architecture this libseccomp lacks; every ARCHES entry is known to 2.5)
    ("kago/process/init.py", "_warn"): "only for a warning seccomp.preload foresees",
}
FULL_SPEC = {
    "process": {"terminal": True, "args": ["sh"], "capabilities": {"bounding": ["CAP_KILL"]},
                "apparmorProfile": "p", "selinuxLabel": "l",
                "ioPriority": {"class": "IOPRIO_CLASS_IDLE"},
                "scheduler": {"policy": "SCHED_OTHER"}, "execCPUAffinity": {"initial": "0"}},
    "mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}],
    "hooks": {k: [{"path": "/bin/true"}] for k in (
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart",
        "poststop")},
    "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                          "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]},
              "personality": {"domain": "LINUX"}, "memoryPolicy": {"mode": "MPOL_DEFAULT"},
              "mountLabel": "m", "sysctl": {"kernel.shmmax": "1"},
              "namespaces": [{"type": t} for t in ("user", "mount", "pid", "network", "ipc",
                                                   "uts", "cgroup", "time")]},
}


def function_imports():
    """(file, function, module a child would need) for every import in a function."""
    out = []
    for f in CHILD_MODULES:
        tree = ast.parse((REPO / f).read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for n in ast.walk(fn):
                if isinstance(n, ast.Import):
                    out += [(f, fn.name, a.name) for a in n.names]
                elif isinstance(n, ast.ImportFrom):
                    for a in n.names:
                        sub = f"{n.module}.{a.name}"
                        try:
                            is_mod = importlib.util.find_spec(sub) is not None
                        except (ImportError, ValueError):
                            is_mod = False
                        out.append((f, fn.name, sub if is_mod else n.module))
    return out


def test_children_import_nothing_after_preload():
    code = ("import json, sys; from kago.process import main; "
            "main.preload(json.loads(sys.argv[1]), connect=False); "
            "from kago.security import seccomp; assert seccomp._sha256 is not None; "
            "print(json.dumps(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-I", "-c",
                        f"import sys; sys.path.insert(0, {str(REPO)!r}); {code}",
                        json.dumps(FULL_SPEC)], capture_output=True, text=True, timeout=60,
                       cwd="/")
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout.splitlines()[-1]))
    imports = function_imports()
    assert len(imports) > 50        # the scan sees the code
    late = [(f, fn, m) for f, fn, m in imports
            if m not in loaded and (f, fn) not in MAIN_ONLY]
    assert not late, "imported after preload (in a child: too late): " + repr(late)
