"""events: runc-shaped ``stats`` events every interval and ``oom`` events
as they happen, from the container's cgroup.

    {"type": "stats", "id": ID, "data": {"cpu": ..., "memory": ..., ...}}
    {"type": "oom", "id": ID}

OOM kills are noticed without polling where the kernel can tell: v1 an
eventfd registered on memory.oom_control, v2 memory.events (POLLPRI on each
change); the oom_kill counter then says how many happened."""

from kago import _os as os
import select
import time

from kago.errors import InvalidState


def stats(c) -> dict:
    if c.status == "stopped":
        raise InvalidState(c.id, "stopped", "running")
    return c._cgroup().stats()


def events(c, interval=5.0, stats_only=False):
    if interval <= 0:
        from kago.errors import InvalidArgument
        raise InvalidArgument("duration interval must be greater than 0")
    if c.status == "stopped":
        raise InvalidState(c.id, "stopped", "running")
    cg = c._cgroup()
    if stats_only:
        yield {"type": "stats", "id": c.id, "data": cg.stats()}
        return
    yield from _loop(c, cg, interval)


def _loop(c, cg, interval):
    fd, is_eventfd = cg.oom_notifier() or (None, False)
    p = select.poll()
    if fd is not None:
        p.register(fd, select.POLLIN if is_eventfd else select.POLLPRI | select.POLLERR)
    seen = cg.oom_kills()
    try:
        next_stats = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_stats:
                # (a rootless container without a cgroup has no directory to lose)
                if c.status == "stopped" or (cg.dirs and not cg.exists()):
                    return
                try:
                    data = cg.stats()
                except OSError:
                    return
                yield {"type": "stats", "id": c.id, "data": data}
                next_stats = now + interval
            # wake for OOMs, and at least every second to notice a stop
            wait = min(next_stats - time.monotonic(), 1.0)
            ready = p.poll(max(wait, 0) * 1000) if fd is not None else \
                time.sleep(max(wait, 0))
            if ready and is_eventfd:
                try:
                    os.read(fd, 8)  # eventfd counter
                except BlockingIOError:
                    pass
            n = cg.oom_kills()
            if ready and is_eventfd and n == seen:
                n = seen + 1  # an OOM with the killer disabled: no oom_kill count
            for _ in range(max(n - seen, 0)):
                yield {"type": "oom", "id": c.id}
            seen = max(n, seen)
            if c.status == "stopped":
                return
    finally:
        if fd is not None:
            os.close(fd)
