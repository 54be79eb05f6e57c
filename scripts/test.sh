#!/bin/bash
# test.sh — kago's whole test suite.  Run as root (prefix sudo where you use it):
#
#   bash scripts/test.sh [PYTEST_ARGS...]
#
#   1. scripts/setup.sh --quiet --no-demo: installs what is missing and
#      re-installs this source tree into /opt/kago/venv (when it differs from
#      what was installed) and the launcher /usr/local/bin/kago, so the tests
#      always run the current code
#   2. all of tests/ (unit + integration) on /opt/kago/venv's Python 3.11,
#      with the installed launcher on PATH (PYTEST_ARGS go to this run)
#   3. tests/unit on Python 3.12 and 3.13 (/opt/kago/venv-3.12, -3.13),
#      against the source tree; skipped with a note where absent
#   4. the second target, tests/engines: podman, containerd (ctr and CRI) and
#      dockerd, started by the tests under a temporary folder, with kago as
#      the runtime, then the same suite with runc (KAGO_ENGINE_RUNTIME=runc)
#      so a failure seen with kago alone is kago's (~30 s each, 120 s a test
#      at most).  Only this target: bash scripts/test.sh --engines-only
#
# Exits non-zero if any part fails.  The last line totals all runs.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${KAGO_PREFIX:-/opt/kago}
VENV=$PREFIX/venv
LAUNCHER=${KAGO_LAUNCHER:-/usr/local/bin/kago}

[ "$(id -u)" = 0 ] || { echo "test.sh: run as root: bash scripts/test.sh (prefix sudo where you use it)" >&2; exit 2; }
cd "$REPO" || exit 2

echo "==> setup (scripts/setup.sh --quiet --no-demo)"
if ! bash "$REPO/scripts/setup.sh" --quiet --no-demo; then
    echo "test.sh: setup failed" >&2
    exit 1
fi

# Hold the setup lock shared while the tests run: another session's setup.sh
# (exclusive) waits instead of swapping the installed code under this run.
# pytest gets no copy of the descriptor (9>&- below), so nothing it leaks can
# keep the lock.
LOCK=/run/lock/kago$(echo "$PREFIX" | tr / -).lock
exec 9>"$LOCK"
flock -s -w 1800 9 || { echo "test.sh: gave up waiting for $LOCK" >&2; exit 1; }

reports=$(mktemp -d /tmp/kago-test-reports.XXXXXX)
trap 'rm -rf "$reports"' EXIT
export PATH="$(dirname "$LAUNCHER"):$PATH" KAGO_BIN=$LAUNCHER KAGO_REQUIRE_BIN=1
status=0
summary=()

# run_pytest LABEL PYTHON ALLOW_EMPTY ARGS...
run_pytest() {
    local label=$1 py=$2 allow_empty=$3 rc; shift 3
    echo "==> $label: $py -m pytest $*"
    "$py" -m pytest --junitxml="$reports/$label.xml" "$@" 9>&-
    rc=$?
    if [ $rc = 5 ] && [ "$allow_empty" = 1 ]; then
        echo "test.sh: $label: no tests collected"
        summary+=("$label: no tests")
        return 0
    fi
    if [ $rc != 0 ]; then
        status=1
        summary+=("$label: FAILED (pytest exit $rc)")
    else
        summary+=("$label: ok")
    fi
}

run_engines() {
    KAGO_ENGINE_RUNTIME=kago run_pytest engines "$VENV/bin/python" 0 tests/engines -q --timeout 120
    KAGO_ENGINE_RUNTIME=runc run_pytest engines-runc "$VENV/bin/python" 0 tests/engines -q --timeout 120
}
if [ "${1:-}" = --engines-only ]; then
    run_engines
    echo "==> summary: ${summary[*]}"
    exit $status
fi

run_pytest py3.11 "$VENV/bin/python" 0 tests -q "$@"
run_engines

# cgroup v2: the tests marked cgroupv2 again, inside ../shared/cgv2's VM (a
# kernel with only cgroup v2; ~10-25x slower, so one invocation for them all),
# and the criu ones (checkpoint/restore: criu 3.17 works on the VM's 6.1
# kernel, not on this host's), in the same boot
CGV2=${KAGO_CGV2_VM:-$REPO/../shared/cgv2/run-in-v2-vm.sh}
[ -x "$CGV2" ] || [ -n "${KAGO_CGV2_VM:-}" ] || CGV2=/work/shared/cgv2/run-in-v2-vm.sh
if [ ! -x "$CGV2" ]; then
    echo "==> cgroupv2-vm: skipped: $CGV2 not found"
    summary+=("cgroupv2-vm: skipped (no VM script)")
elif [[ "$REPO" == /tmp/* ]]; then
    echo "==> cgroupv2-vm: skipped: the VM has its own /tmp, so a tree under /tmp ($REPO) is not visible in it"
    summary+=("cgroupv2-vm: skipped (tree under /tmp)")
elif ! command -v qemu-system-x86_64 >/dev/null; then
    echo "==> cgroupv2-vm: skipped: qemu-system-x86_64 missing (scripts/setup.sh installs it)"
    summary+=("cgroupv2-vm: skipped (no qemu)")
else
    echo "==> cgroupv2-vm: $CGV2 pytest tests/integration -m 'cgroupv2 or criu'"
    xml=$(mktemp /var/tmp/kago-cgv2.XXXXXX.xml)   # /tmp is the guest's own tmpfs
    KAGO_SLOW_HOST=1 "$CGV2" "$VENV/bin/python -m pytest --junitxml=$xml tests/integration -m 'cgroupv2 or criu' -q" 9>&-
    rc=$?
    [ -s "$xml" ] && mv "$xml" "$reports/cgroupv2-vm.xml" || rm -f "$xml"
    if [ $rc != 0 ]; then
        status=1
        summary+=("cgroupv2-vm: FAILED (exit $rc)")
    else
        summary+=("cgroupv2-vm: ok")
    fi
fi

for v in 3.12 3.13; do
    py=$PREFIX/venv-$v/bin/python
    if [ -x "$py" ]; then
        PYTHONPATH=$REPO run_pytest "py$v-unit" "$py" 1 tests/unit -q
    else
        echo "==> py$v-unit: skipped: $py missing (setup.sh found no python$v interpreter)"
        summary+=("py$v-unit: skipped (no python$v)")
    fi
done

echo "==> summary: ${summary[*]}"
# One closing line over all runs, from their JUnit reports.
"$VENV/bin/python" -I - "$reports" <<'EOF' || status=1
import glob, sys, xml.etree.ElementTree as ET
tests = failed = skipped = 0
for path in glob.glob(sys.argv[1] + "/*.xml"):
    root = ET.parse(path).getroot()
    for s in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        tests += int(s.get("tests", 0))
        failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
print(f"total: {tests - failed - skipped} passed, {failed} failed, {skipped} skipped")
EOF
exit $status
