"""The remaining process attributes: I/O priority, scheduler, CPU affinity of
exec'd processes, personality and the NUMA memory policy.

Where each is applied (runc's places):

=======================  ==============================================  ==========
attribute                when                                            processes
=======================  ==============================================  ==========
process.ioPriority       before the capabilities are dropped             init, exec
process.scheduler        before the capabilities are dropped             init, exec
process.execCPUAffinity  ``initial`` before joining the cgroup,           exec
                         ``final`` after
linux.memoryPolicy       before seccomp and the capabilities             init
linux.personality        last, right before init reports ready           init
=======================  ==============================================  ==========

Each setter takes the spec object and raises :class:`SpecError` for values
the kernel can't be given, :class:`SyscallError` when the kernel says no.
"""

from kago import _os as os

from kago.errors import SpecError, SyscallError

IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_WHO_PROCESS = 1
IOPRIO_CLASS_SHIFT = 13

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}

PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}

MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2,
              "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5,
              "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_STATIC_NODES": 1 << 15}

_NR = {  # x86_64, aarch64
    "sched_setattr": (314, 274),
    "set_mempolicy": (238, 237),
}


def _syscall(name, *args):
    from kago import _ffi as ctypes
    from kago import sys as ksys
    nr = _NR[name][1 if os.uname().machine in ("aarch64", "arm64") else 0]
    if ksys.libc().syscall(nr, *args) < 0:
        return ctypes.get_errno()
    return 0


def parse_cpus(text: str, where: str) -> set:
    """"0-3,7" -> {0, 1, 2, 3, 7} (the cpuset list format)."""
    cpus = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            lo, _, hi = part.partition("-")
            lo, hi = int(lo), int(hi or lo)
            if lo < 0 or hi < lo:
                raise ValueError
            cpus.update(range(lo, hi + 1))
    except ValueError:
        raise SpecError(where, f"invalid CPU list {text!r}") from None
    if not cpus:
        raise SpecError(where, f"empty CPU list {text!r}")
    return cpus


# ------------------------------------------------------------------ process

def io_priority(prio: dict, where="process.ioPriority"):
    from kago import sys as ksys
    cls = IOPRIO_CLASSES.get(prio.get("class"))
    if cls is None:
        raise SpecError(where + ".class", f"unknown I/O priority class {prio.get('class')!r}")
    level = prio.get("priority", 0) or 0
    if not 0 <= level <= 7:
        raise SpecError(where + ".priority", f"{level} not in 0-7")
    if ksys._syscall("ioprio_set", IOPRIO_WHO_PROCESS, 0,
                     (cls << IOPRIO_CLASS_SHIFT) | level) != 0:
        raise ksys._err("ioprio_set", detail=f"{prio.get('class')} {level}")


def scheduler(s: dict, where="process.scheduler"):
    from kago import _ffi as ctypes
    policy = SCHED_POLICIES.get(s.get("policy"))
    if policy is None:
        raise SpecError(where + ".policy", f"unknown scheduler policy {s.get('policy')!r}")
    flags = 0
    for f in s.get("flags") or ():
        if f not in SCHED_FLAGS:
            raise SpecError(where + ".flags", f"unknown scheduler flag {f!r}")
        flags |= SCHED_FLAGS[f]
    nice = s.get("nice", 0) or 0
    if not -20 <= nice <= 19:
        raise SpecError(where + ".nice", f"{nice} not in -20..19")
    prio = s.get("priority", 0) or 0
    if policy in (1, 2) and not 1 <= prio <= 99:
        raise SpecError(where + ".priority", f"{s['policy']} needs a priority in 1-99")
    if policy not in (1, 2) and prio:
        raise SpecError(where + ".priority", f"{s['policy']} takes no priority")

    class Attr(ctypes.Structure):
        _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32),
                    ("flags", ctypes.c_uint64), ("nice", ctypes.c_int32),
                    ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                    ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64)]
    a = Attr(ctypes.sizeof(Attr), policy, flags, nice, prio, s.get("runtime", 0) or 0,
             s.get("deadline", 0) or 0, s.get("period", 0) or 0)
    e = _syscall("sched_setattr", 0, ctypes.byref(a), 0)
    if e:
        raise SyscallError(e, "sched_setattr", None, f"{s.get('policy')} ({where})")


def cpu_affinity(text: str, where: str):
    cpus = parse_cpus(text, where)
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as e:
        raise SyscallError(e.errno, "sched_setaffinity", None, f"{text!r} ({where})") from None


def apply_process(proc: dict):
    """ioPriority and scheduler of ``proc`` (before the capabilities go)."""
    if proc.get("ioPriority"):
        io_priority(proc["ioPriority"])
    if proc.get("scheduler"):
        scheduler(proc["scheduler"])


# -------------------------------------------------------------------- linux

def personality(p: dict, where="linux.personality"):
    from kago import sys as ksys
    dom = p.get("domain")
    if dom not in PERSONALITY_DOMAINS:
        raise SpecError(where + ".domain", f"unknown personality domain {dom!r}")
    if p.get("flags"):
        raise SpecError(where + ".flags", "no personality flags are supported")
    ksys.personality(PERSONALITY_DOMAINS[dom])


def memory_policy(mp: dict, where="linux.memoryPolicy"):
    from kago import _ffi as ctypes
    mode = MPOL_MODES.get(mp.get("mode"))
    if mode is None:
        raise SpecError(where + ".mode", f"unknown memory policy mode {mp.get('mode')!r}")
    for f in mp.get("flags") or ():
        if f not in MPOL_FLAGS:
            raise SpecError(where + ".flags", f"unknown memory policy flag {f!r}")
        mode |= MPOL_FLAGS[f]
    nodes_text = mp.get("nodes") or ""
    nodes = parse_cpus(nodes_text, where + ".nodes") if nodes_text else set()
    if nodes and mode & 0xFF in (0, 4):
        raise SpecError(where + ".nodes", f"{mp['mode']} takes no nodes")
    maxnode = (max(nodes) + 2) if nodes else 0
    words = (maxnode + 63) // 64 or 1
    mask = (ctypes.c_ulong * words)()
    for n in nodes:
        mask[n // 64] |= 1 << (n % 64)
    e = _syscall("set_mempolicy", mode, mask if nodes else None, ctypes.c_ulong(maxnode))
    if e:
        raise SyscallError(e, "set_mempolicy", None, f"{mp.get('mode')} {nodes_text!r}")
