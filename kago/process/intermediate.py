"""The intermediate process: cgroup, namespaces, then fork init.

It joins the container's cgroup, enters every ``linux.namespaces[].path``,
creates the user namespace (main writes the id maps), unshares the rest, and
forks init - which is how an existing pid (or time) namespace is entered:
setns(CLONE_NEWPID) only applies to children, so init is that second fork.
"""

from kago import _debug, _os as os

from kago import sys as ksys
from kago.namespaces import FLAGS as NS_FLAGS


def run(ctx, ch, init_sock):
    """Never returns."""
    try:
        ksys.prctl(ksys.PR_SET_PDEATHSIG, 9)
        for fd in ctx.close_fds:  # main's lock: init must not hold it
            os.close(fd)
        ctx.cgroup.add(os.getpid())
        _debug("intermediate joined the cgroup", pid=os.getpid(), path=ctx.cgroup.path)
        namespaces = ctx.namespaces
        # 1. join what exists (the user namespace first)
        joins = sorted((n for n in enumerate(namespaces) if n[1].get("path")),
                       key=lambda n: n[1]["type"] != "user")
        for i, n in joins:
            try:
                fd = os.open(n["path"], os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                from kago.errors import SpecError
                raise SpecError(f"linux.namespaces[{i}].path",
                                f"open {n['path']}: {e.strerror}") from None
            try:
                ksys.setns(fd, NS_FLAGS[n["type"]], n["path"])
            finally:
                os.close(fd)
            _debug("namespace joined", type=n["type"], path=n["path"])
        new = [n["type"] for n in namespaces if not n.get("path")]
        # 2. a new user namespace: main writes our maps
        if "user" in new:
            ksys.unshare(ksys.CLONE_NEWUSER)
            _debug("user namespace unshared")
            ch.request_idmap()
        if ctx.userns:
            # root in it, new or joined (runc's nsexec: setuid(0) either way;
            # else a joined one's container runs as the host's unmapped root)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            # the uid change made us non-dumpable, which hands our /proc files
            # to the host's root: take them back (init turns this off again)
            ksys.prctl(ksys.PR_SET_DUMPABLE, 1)
        # 3. the rest
        flags = 0
        for t in new:
            if t != "user":
                flags |= NS_FLAGS[t]
        if flags:
            ksys.unshare(flags)
            _debug("namespaces unshared", types=",".join(t for t in new if t != "user"))
        if ctx.userns and ctx.has_binds or ctx.has_idmaps:
            # bind sources init (the container's root) may not reach, and the
            # idmapped mounts (kago.rootfs.send_bind_sources)
            ctx.bind_fds = ch.request_sources()
        if "time" in new:
            _time_offsets(ctx.spec)
        _debug("forking init")
        try:
            pid = os.fork()
        except OSError as e:
            from kago.errors import fork_error
            raise fork_error(e, next((n["path"] for n in namespaces
                                      if n["type"] == "pid" and n.get("path")), None)) from None
        if pid == 0:
            ch.close()
            from kago.process import init
            init.run(ctx, init_sock)
        ch.init_pid(pid)
        os._exit(0)
    except BaseException as e:  # noqa: B902 - reported to main
        ch.send_error(e)
        os._exit(1)


def _time_offsets(spec):
    offs = (spec.get("linux") or {}).get("timeOffsets") or {}
    lines = []
    for clock in ("monotonic", "boottime"):
        o = offs.get(clock)
        if o:
            lines.append(f"{clock} {o.get('secs', 0)} {o.get('nanosecs', 0)}\n")
    for line in lines:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(line)
