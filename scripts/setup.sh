#!/bin/bash
# setup.sh — install kago on Debian 12 and run a demo container.  Run as root
# (prefix sudo where you use it):
#
#   bash scripts/setup.sh [--quiet] [--no-demo]
#
# Idempotent.  Steps:
#   1. Debian packages (apt-get, only when something is missing)
#   2. a venv at /opt/kago/venv from Debian's /usr/bin/python3, with pytest + hypothesis
#   3. this source tree installed into it (non-editable), bytecode compiled
#   4. the launcher /usr/local/bin/kago: `#!/opt/kago/libexec/python3.11 -IS`, a
#      read-only copy of the real interpreter binary (never a pyenv shim)
#   5. venvs /opt/kago/venv-3.12 and venv-3.13 with pytest, for the unit tests,
#      where those interpreters exist
#   6. the unprivileged test user kagotest (no home, no login shell, no password)
#      with /etc/subuid and /etc/subgid ranges, for the rootless tests
#   7. the demo bundle /var/lib/kago/demo-bundle, and a real container run from it
#
# --quiet: print only warnings and errors.  --no-demo: skip step 7.
# Environment: KAGO_PREFIX (default /opt/kago), KAGO_LAUNCHER (/usr/local/bin/kago).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${KAGO_PREFIX:-/opt/kago}
VENV=$PREFIX/venv
LAUNCHER=${KAGO_LAUNCHER:-/usr/local/bin/kago}
DEMO=/var/lib/kago/demo-bundle
SYSPY=/usr/bin/python3
TEST_DEPS=("pytest>=7.4" "pytest-timeout>=2.1" "hypothesis>=6.80")   # hypothesis: tests/*/test_spec_fuzz.py
APT_PACKAGES=(busybox-static libseccomp2 runc crun tmux python3 python3-venv
              iproute2 util-linux procps psmisc time strace          # bench: peak RSS, profile
              qemu-system-x86 cpio dbus-daemon python3-dbusmock   # cgroup v2 VM; systemd mock
              criu                                                # checkpoint/restore (works in the v2 VM)
              podman conmon containerd docker.io                  # tests/engines
              uidmap)                                             # rootless: newuidmap/newgidmap

quiet=0 demo=1
for a in "$@"; do
    case "$a" in
        --quiet|-q) quiet=1 ;;
        --no-demo) demo=0 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup.sh: unknown argument $a" >&2; exit 2 ;;
    esac
done

t0=${EPOCHREALTIME/[.,]/}
say()  { [ "$quiet" = 1 ] || echo "==> $*"; }
info() { [ "$quiet" = 1 ] || echo "    $*"; }
warn() { echo "setup.sh: warning: $*" >&2; }
die()  { echo "setup.sh: error: $*" >&2; exit 1; }
# run a noisy command; show its output only if it fails (or when not quiet, on request)
quietly() {
    local out
    if ! out=$("$@" 2>&1); then
        echo "$out" >&2
        die "failed: $*"
    fi
}

[ "$(id -u)" = 0 ] || die "run as root: bash scripts/setup.sh (prefix sudo where you use it)"
[ -f "$REPO/pyproject.toml" ] && [ -f "$REPO/kago/__init__.py" ] || die "$REPO is not the kago source tree"

# One setup at a time per prefix; test.sh holds this lock shared while its
# tests run, so an install never swaps the code under a running suite.
LOCK=/run/lock/kago$(echo "$PREFIX" | tr / -).lock
mkdir -p /run/lock
exec 9>"$LOCK"
if ! flock -n 9; then
    echo "setup.sh: waiting for another kago setup or test run ($LOCK)" >&2
    flock -w 1800 9 || die "gave up waiting for $LOCK"
fi

# ---- 1. Debian packages -----------------------------------------------------
say "Debian packages: ${APT_PACKAGES[*]}"
missing=()
for p in "${APT_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    info "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    quietly apt-get update -q
    quietly apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    info "all installed"
fi
[ -x "$SYSPY" ] || die "$SYSPY missing after apt-get install python3"
[ -x /bin/busybox ] || die "/bin/busybox missing after apt-get install busybox-static"

# ---- 2. the venv --------------------------------------------------------------
# Real interpreter binary behind a venv's python (venvs symlink to it).
real_python() { readlink -f "$1/bin/python"; }

# make_venv DIR INTERPRETER: (re)create DIR unless it is already a venv of INTERPRETER
make_venv() {
    local dir=$1 interp=$2 want
    want=$(readlink -f "$interp")
    if [ -x "$dir/bin/python" ] && [ "$(real_python "$dir")" = "$want" ] &&
       "$dir/bin/python" -c 'import pip' >/dev/null 2>&1; then
        info "$dir exists ($want)"
        return
    fi
    info "creating $dir from $want"
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    quietly "$interp" -m venv "$dir"
}

# pip_ensure DIR REQ...: install REQs into DIR's venv unless they import already
# (so a machine that has them needs no registry)
pip_ensure() {
    local dir=$1; shift
    if "$dir/bin/python" -c 'import pytest, pytest_timeout, hypothesis' >/dev/null 2>&1; then
        info "test dependencies present in $dir"
    else
        info "installing $* into $dir"
        quietly "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
    fi
}

say "venv $VENV (Debian's $SYSPY)"
make_venv "$VENV" "$SYSPY"
pip_ensure "$VENV" "${TEST_DEPS[@]}"
# tests/engines drives containerd's CRI over gRPC (stubs compiled at test time)
if ! "$VENV/bin/python" -c 'import grpc, grpc_tools, google.protobuf' >/dev/null 2>&1; then
    info "installing grpcio grpcio-tools protobuf into $VENV (tests/engines)"
    quietly "$VENV/bin/python" -m pip install -q --disable-pip-version-check grpcio grpcio-tools protobuf
fi
if ! "$VENV/bin/python" -c 'import setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 61)' 2>/dev/null; then
    info "installing setuptools>=61 into $VENV"
    quietly "$VENV/bin/python" -m pip install -q --disable-pip-version-check "setuptools>=61"
fi
if ! "$VENV/bin/python" -c 'import wheel' >/dev/null 2>&1; then
    # setuptools < 70.1 builds wheels with the `wheel` package
    info "installing wheel into $VENV"
    quietly "$VENV/bin/python" -m pip install -q --disable-pip-version-check wheel
fi

# ---- 3. install this source tree ----------------------------------------------
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
# The install is skipped only when exactly this source (every file's name and
# content) is what was installed last; KAGO_REINSTALL=1 forces it.
STAMP=$VENV/.kago-source
hash=$(cd "$REPO" && find kago pyproject.toml README.md -name __pycache__ -prune -o \
           -type f ! -name '*.pyc' -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum)
hash="${hash%% *} $(readlink -f "$VENV/bin/python")"
if [ -z "${KAGO_REINSTALL:-}" ] && [ -f "$SITE/kago/__init__.py" ] &&
   [ "$(cat "$STAMP" 2>/dev/null)" = "$hash" ]; then
    say "kago from $REPO: already installed in $VENV (source unchanged)"
else
    say "installing kago from $REPO into $VENV"
    # Build from a fresh copy: no build/ or *.egg-info in the source tree, and no
    # module deleted from the source can survive in a stale build/lib.
    rm -f "$STAMP"
    stage=$(mktemp -d /tmp/kago-build.XXXXXX)
    trap 'rm -rf "$stage"' EXIT
    cp "$REPO/pyproject.toml" "$stage/"
    [ -f "$REPO/README.md" ] && cp "$REPO/README.md" "$stage/" || : > "$stage/README.md"
    tar -C "$REPO" --exclude=__pycache__ --exclude='*.pyc' -cf - kago | tar -xf - -C "$stage"
    quietly "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
        --no-build-isolation --force-reinstall "$stage"
    [ -f "$SITE/kago/__init__.py" ] || die "kago not found in $SITE after pip install"
    # PYTHONDONTWRITEBYTECODE is set here, so nothing is written at run time:
    # compile now (the launcher imports without -O, so plain .pyc).
    quietly "$VENV/bin/python" -m compileall -q "$SITE/kago"
    echo "$hash" > "$STAMP"
fi
version=$("$VENV/bin/python" -IS -c "import sys; sys.path.append('$SITE'); import kago; print(kago.__version__)")
info "kago $version in $SITE"

# ---- 4. the launcher ------------------------------------------------------------
INTERP=$(real_python "$VENV")
case "$INTERP" in
    */shims/*|*/.pyenv/shims/*) die "$VENV/bin/python resolves to a shim ($INTERP)" ;;
esac
# CVE-2019-5736: the launcher runs kago's own copy of the interpreter, a
# read-only bind mount of itself (kago/security/exe.py), never the host's python
if RO=$("$INTERP" -IS -c "import sys; sys.path.append('$SITE'); from kago.security.exe import install; print(install('$INTERP', '$PREFIX/libexec/$(basename "$INTERP")'))" 2>&1); then
    INTERP=$RO
else
    warn "read-only interpreter copy not set up: $RO"
fi
say "launcher $LAUNCHER -> $INTERP -IS"
mkdir -p "$(dirname "$LAUNCHER")"
tmp=$(mktemp "$LAUNCHER.XXXXXX")
cat > "$tmp" <<EOF
#!$INTERP -IS
import sys
sys.path.append("$SITE")
from kago.cli import main
sys.exit(main())
EOF
chmod 755 "$tmp"
mv -f "$tmp" "$LAUNCHER"

have_cli=0
if "$INTERP" -IS -c "import sys; sys.path.append('$SITE'); import importlib.util as u; sys.exit(u.find_spec('kago.cli') is None)" 2>/dev/null; then
    have_cli=1
    if v=$("$LAUNCHER" --version 2>&1); then
        info "$LAUNCHER --version: $(echo "$v" | head -n1)"
    else
        warn "$LAUNCHER --version failed: $v"
    fi
else
    warn "kago.cli is not in this source tree yet: the launcher is installed but cannot run"
fi

# ---- 5. more interpreters for the unit tests ---------------------------------------
# find_python 3.12: a real python3.12 binary (not a pyenv shim), or nothing
find_python() {
    local v=$1 p root=${PYENV_ROOT:-/root/.pyenv}
    p=$(command -v "python$v" 2>/dev/null || true)
    if [ -n "$p" ]; then
        p=$(readlink -f "$p")
        case "$p" in */shims/*) p="" ;; esac
    fi
    if [ -z "$p" ]; then
        p=$(ls -d "$root"/versions/"$v".*/bin/"python$v" 2>/dev/null | sort -V | tail -n1 || true)
    fi
    [ -n "$p" ] && [ -x "$p" ] && "$p" -c 'import venv' 2>/dev/null && echo "$p"
    return 0
}
for v in 3.12 3.13; do
    p=$(find_python "$v")
    if [ -n "$p" ]; then
        say "venv $PREFIX/venv-$v (unit tests on $p)"
        make_venv "$PREFIX/venv-$v" "$p"
        pip_ensure "$PREFIX/venv-$v" "${TEST_DEPS[@]}"
    else
        say "python$v: not found (no python$v on PATH, none under ${PYENV_ROOT:-/root/.pyenv}/versions): its unit-test run will be skipped"
    fi
done

# ---- 6. the rootless test user ---------------------------------------------------------
# tests/integration/test_rootless.py and tests/engines run kago (and rootless
# podman) as this user.  Made here, once, not by the tests: several test runs
# (one per prefix, and the cgroup-v2 VM, which sees this host's /etc) share it,
# and a fixture's useradd/userdel would race between them.  Idempotent.
TESTUSER=kagotest SUBID_START=1200000 SUBID_COUNT=65536
exec 8>/run/lock/kago-testuser.lock     # one setup.sh of any prefix at a time here
flock -w 60 8 || die "gave up waiting for /run/lock/kago-testuser.lock"
if ! getent passwd "$TESTUSER" >/dev/null; then
    say "test user $TESTUSER"
    quietly useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin --user-group "$TESTUSER"
fi
for f in /etc/subuid /etc/subgid; do
    if ! grep -q "^$TESTUSER:" "$f" 2>/dev/null; then
        info "$f: $TESTUSER:$SUBID_START:$SUBID_COUNT"
        echo "$TESTUSER:$SUBID_START:$SUBID_COUNT" >> "$f"
    fi
done
exec 8>&-

# ---- 7. the demo -----------------------------------------------------------------------
if [ "$demo" = 1 ]; then
    say "demo bundle $DEMO (busybox rootfs, hostname kago-demo)"
    mkdir -p "$(dirname "$DEMO")"
    bash "$REPO/scripts/mkbundle.sh" --force --hostname kago-demo "$DEMO" \
        sh -c 'echo "hello from $(hostname), I am pid $$; my / holds: $(echo /*)"'
    if [ "$have_cli" != 1 ]; then
        die "cannot run the demo container: kago.cli is missing (the runtime has not landed yet)"
    fi
    say "kago run --bundle $DEMO kago-demo"
    "$LAUNCHER" delete --force kago-demo >/dev/null 2>&1 || true
    if ! out=$(timeout 60 "$LAUNCHER" run --bundle "$DEMO" kago-demo </dev/null 2>&1); then
        echo "$out" >&2
        "$LAUNCHER" delete --force kago-demo >/dev/null 2>&1 || true
        die "the demo container failed"
    fi
    echo "$out" | sed 's/^/    container says: /'
    case "$out" in
        *"hello from kago-demo, I am pid 1;"*) ;;
        *) die "the demo container did not print what was expected" ;;
    esac
fi

us=$(( ${EPOCHREALTIME/[.,]/} - t0 ))
say "setup done in $((us / 1000000)).$(printf '%02d' $((us % 1000000 / 10000)))s"
