#!/bin/bash
# run.sh — kago's benchmark against runc and crun.  As root (prefix sudo where you use it):
#
#   bash bench/run.sh [-n RUNS] [--scale N] [--only M[,M]] [--json FILE] [RUNTIME...]
#
# Default runtimes: kago (/usr/local/bin/kago) runc crun.  `--help` lists every
# option; bench/README.md says what is measured and how.
#
#   bash bench/run.sh profile [-n RUNS] [--only VERB,...] [KAGO]
#
# profiles kago alone: start-up vs imports vs work, syscalls, cProfile, per verb.
#
# Hybrid cgroup hosts: crun <= 1.8 refuses to run when the cgroup2 hierarchy at
# /sys/fs/cgroup/unified has controllers attached ("cgroups in hybrid mode not
# supported").  Then the whole benchmark (every runtime alike) runs in a private
# mount namespace in which an empty file is bind-mounted over
# /sys/fs/cgroup/unified/cgroup.controllers; the host's mounts are not touched.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${PYTHON:-/usr/bin/python3}
case " $* " in
    # the engines are started by tests/engines/conftest.py's classes: pytest, grpcio
    *" --engines"*) PY=${PYTHON:-${KAGO_PREFIX:-/opt/kago}/venv/bin/python} ;;
esac
[ -x "$PY" ] || PY=$(command -v python3)

SCRIPT=$HERE/bench.py
if [ "${1:-}" = profile ]; then     # bench/run.sh profile [-n N] [KAGO]: where kago's time goes
    SCRIPT=$HERE/profile.py
    shift
fi
case " $* " in *" -h "*|*" --help "*) exec "$PY" -I "$SCRIPT" --help ;; esac
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: needs root: bash bench/run.sh (prefix sudo where you use it)" >&2; exit 2; }
[ -x /usr/bin/time ] || echo "bench/run.sh: /usr/bin/time missing (apt-get install time): no peak RSS" >&2

# Hold kago's setup lock shared, as scripts/test.sh does, so that no setup.sh
# re-installs kago under a running benchmark (and none of ours runs mid-install).
if [ -z "${KAGO_BENCH_IN_NS:-}" ]; then
    PREFIX=${KAGO_PREFIX:-/opt/kago}
    LOCK=/run/lock/kago$(echo "$PREFIX" | tr / -).lock
    mkdir -p /run/lock
    exec 9>"$LOCK"
    if ! flock -s -n 9; then
        echo "# waiting for $LOCK (a kago install is running)" >&2
        flock -s -w 1800 9 || { echo "bench/run.sh: gave up waiting for $LOCK" >&2; exit 1; }
    fi
fi

ctl=/sys/fs/cgroup/unified/cgroup.controllers
if [ -r "$ctl" ] && [ -n "$(cat "$ctl")" ] && [ -z "${KAGO_BENCH_IN_NS:-}" ]; then
    echo "# hybrid cgroups, cgroup2 controllers '$(cat "$ctl")': running in a private mount namespace" \
         "with $ctl hidden (for crun)" >&2
    empty=$(mktemp /run/kago-bench-empty.XXXXXX)
    exec env KAGO_BENCH_IN_NS=1 unshare -m --propagation private \
        sh -c 'mount --bind "$0" '"$ctl"' && rm -f "$0" && exec "$@"' "$empty" \
        "$PY" -I "$SCRIPT" "$@"
fi
exec "$PY" -I "$SCRIPT" "$@"
