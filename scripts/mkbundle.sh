#!/bin/bash
# mkbundle.sh — build an OCI bundle from Debian's static busybox.
#
#   mkbundle.sh [OPTIONS] DIR [ARG...]
#
# Creates DIR/rootfs (busybox + one symlink per applet in bin/; sbin, usr/bin and
# usr/sbin point at bin; dev proc sys tmp root home/user; etc/passwd and etc/group
# with root and "user" uid/gid 1000) and DIR/config.json: the structure of
# `runc spec` (namespaces pid network ipc uts mount; mounts proc, /dev tmpfs,
# devpts, shm, mqueue, sysfs, cgroup; maskedPaths, readonlyPaths, capabilities,
# RLIMIT_NOFILE 1024, root.readonly true) with terminal false and process.args
# set to ARG... (default: sh).
#
# Options:
#   --rootfs PATH    use an existing rootfs: build none, write root.path = PATH
#                    (made absolute) in config.json; share one rootfs between bundles
#   --from PATH      copy the rootfs from PATH with `cp -a` instead of building it
#   --no-config      build DIR/rootfs only, no config.json
#   --hostname NAME  hostname in config.json (default: kago)
#   --rw             root.readonly false
#   --busybox PATH   the static busybox to use (default: /bin/busybox)
#   --force          replace an existing DIR/rootfs and DIR/config.json
#
# Needs python3 (Debian's /usr/bin/python3 is used when present); not runc.
set -euo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

rootfs_ref="" from="" config=1 hostname=kago readonly=true busybox=/bin/busybox force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rootfs) rootfs_ref=${2:?--rootfs needs a path}; shift 2 ;;
        --rootfs=*) rootfs_ref=${1#*=}; shift ;;
        --from) from=${2:?--from needs a path}; shift 2 ;;
        --from=*) from=${1#*=}; shift ;;
        --no-config|--rootfs-only) config=0; shift ;;
        --hostname) hostname=${2:?--hostname needs a name}; shift 2 ;;
        --hostname=*) hostname=${1#*=}; shift ;;
        --rw) readonly=false; shift ;;
        --busybox) busybox=${2:?--busybox needs a path}; shift 2 ;;
        --busybox=*) busybox=${1#*=}; shift ;;
        --force) force=1; shift ;;
        -h|--help) usage 0 ;;
        --) shift; break ;;
        -*) echo "mkbundle.sh: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
dir=$1; shift
[ $# -ge 1 ] || set -- sh

py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3) || { echo "mkbundle.sh: python3 not found" >&2; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [ -n "$rootfs_ref" ]; then
    [ -d "$rootfs_ref" ] || { echo "mkbundle.sh: --rootfs $rootfs_ref: not a directory" >&2; exit 1; }
    rootfs_ref=$(cd "$rootfs_ref" && pwd)
    build=0
else
    build=1
    if [ -e "$dir/rootfs" ] || [ -L "$dir/rootfs" ]; then
        [ "$force" = 1 ] || { echo "mkbundle.sh: $dir/rootfs exists (use --force to replace it)" >&2; exit 1; }
        # never recurse into something mounted under the old rootfs
        if grep -q " $dir/rootfs[/ ]" /proc/self/mountinfo; then
            echo "mkbundle.sh: $dir/rootfs has mounts under it; not removing it" >&2; exit 1
        fi
        rm -rf --one-file-system "$dir/rootfs"
    fi
    if [ -n "$from" ]; then
        [ -d "$from" ] || { echo "mkbundle.sh: --from $from: not a directory" >&2; exit 1; }
        cp -a "$from" "$dir/rootfs"
        build=0
    fi
fi
if [ "$config" = 1 ] && [ -e "$dir/config.json" ] && [ "$force" != 1 ]; then
    echo "mkbundle.sh: $dir/config.json exists (use --force to replace it)" >&2; exit 1
fi
if [ "$build" = 1 ]; then
    [ -x "$busybox" ] || { echo "mkbundle.sh: $busybox not found (apt-get install busybox-static)" >&2; exit 1; }
fi

# One python process does the rest: rootfs (symlinks are many; a fork per `ln`
# would be slow) and config.json.
exec "$py" -I -S - "$dir" "$build" "$busybox" "$config" "$rootfs_ref" "$hostname" "$readonly" "$@" <<'PYEOF'
import json, os, shutil, subprocess, sys

dir_, build, busybox, config, rootfs_ref, hostname, readonly = sys.argv[1:8]
args = sys.argv[8:]
rootfs = os.path.join(dir_, "rootfs")

if build == "1":
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    os.mkdir(rootfs, 0o755)
    for d in ("bin", "dev", "proc", "sys", "etc", "usr", "root", "home", "run", "var"):
        os.mkdir(os.path.join(rootfs, d), 0o755)
    os.chmod(os.path.join(rootfs, "root"), 0o700)
    for d in ("tmp", "var/tmp"):
        p = os.path.join(rootfs, d)
        os.mkdir(p)
        os.chmod(p, 0o1777)
    home = os.path.join(rootfs, "home", "user")
    os.mkdir(home, 0o755)
    try:
        os.chown(home, 1000, 1000)
    except PermissionError:
        pass
    bb = os.path.join(rootfs, "bin", "busybox")
    shutil.copy2(busybox, bb)
    for a in applets:
        if a != "busybox" and "/" not in a:
            os.symlink("busybox", os.path.join(rootfs, "bin", a))
    os.symlink("bin", os.path.join(rootfs, "sbin"))
    os.symlink("../bin", os.path.join(rootfs, "usr", "bin"))
    os.symlink("../bin", os.path.join(rootfs, "usr", "sbin"))
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n"
                      "user:x:1000:1000:user:/home/user:/bin/sh\n"
                      "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "etc/group": "root:x:0:\ntty:x:5:\nuser:x:1000:\nnogroup:x:65534:\n",
        "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        "etc/hostname": "kago\n",
    }
    for name, text in files.items():
        with open(os.path.join(rootfs, name), "w") as f:
            f.write(text)

if config == "1":
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    spec = {
        "ociVersion": "1.0.2-dev",   # what runc 1.1.5 writes; crun 1.8.1 refuses 1.2.0
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(caps) for k in
                             ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs_ref or "rootfs", "readonly": readonly == "true"},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666",
                         "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list",
                            "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }
    tmp = os.path.join(dir_, ".config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(spec, f, indent="\t")
        f.write("\n")
    os.rename(tmp, os.path.join(dir_, "config.json"))
PYEOF
