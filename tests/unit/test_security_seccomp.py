"""kago.security.seccomp without containers: validation, runc's rule
splitting, compilation with libseccomp, and filters loaded into a forked
child (with noNewPrivileges, so no root is needed)."""

import ctypes
import errno
import json
import os
from pathlib import Path

import pytest

from kago.errors import SpecError
from kago.security import seccomp as sc

DATA = Path(__file__).absolute().parent.parent / "data"


def prof(default="SCMP_ACT_ALLOW", *rules, **kw):
    return dict({"defaultAction": default, "syscalls": list(rules)}, **kw)


def in_child(f, fn):
    """Load ``f`` in a forked child (NNP set), run fn(); return what it
    returned (an int) or -signal if it died."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)
            f.load()
            val = fn()
            os.write(w, json.dumps(val).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = os.read(r, 4096)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return json.loads(data)


def errno_of(call):
    def fn():
        try:
            call()
            return 0
        except OSError as e:
            return e.errno
    return fn


# --------------------------------------------------------------- validation

@pytest.mark.parametrize("cfg,path,word", [
    (prof("SCMP_ACT_BOGUS"), "linux.seccomp.defaultAction", "SCMP_ACT_BOGUS"),
    (prof("SCMP_ACT_NOTIFY", listenerPath="/x"), "linux.seccomp.defaultAction", "default"),
    (prof(architectures=["SCMP_ARCH_VAX"]), "linux.seccomp.architectures[0]", "VAX"),
    (prof(flags=["SECCOMP_FILTER_FLAG_NOPE"]), "linux.seccomp.flags[0]", "NOPE"),
    (prof("SCMP_ACT_ALLOW", {"names": [], "action": "SCMP_ACT_ERRNO"}),
     "linux.seccomp.syscalls[0].names", "non-empty"),
    (prof("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}),
     "linux.seccomp.syscalls[0].args[0].index", "0-5"),
    (prof("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SORTA"}]}),
     "linux.seccomp.syscalls[0].args[0].op", "SORTA"),
    (prof("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}),
     "linux.seccomp.syscalls[0].args[0].value", "64-bit"),
    (prof("SCMP_ACT_ALLOW", {"names": ["read"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 70000}),
     "linux.seccomp.syscalls[0].action", "errnoRet"),
    (prof("SCMP_ACT_ALLOW", {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}),
     "linux.seccomp.listenerPath", "required"),
    (prof("SCMP_ACT_ALLOW", listenerPath=5), "linux.seccomp.listenerPath", "socket path"),
    (prof("SCMP_ACT_ALLOW", listenerPath="/a\0b"), "linux.seccomp.listenerPath", "socket"),
    (prof("SCMP_ACT_ALLOW", listenerPath="/a\ud800"), "linux.seccomp.listenerPath", "socket"),
    (prof("SCMP_ACT_ALLOW", listenerPath="/a", listenerMetadata=["x"]),
     "linux.seccomp.listenerMetadata", "string"),
    (prof("SCMP_ACT_ALLOW", {"names": ["write"], "action": "SCMP_ACT_NOTIFY"},
          listenerPath="/x"), "linux.seccomp.syscalls[0]", "write"),
])
def test_parse_rejects(cfg, path, word):
    with pytest.raises(SpecError) as ei:
        sc.parse(cfg)
    assert ei.value.path == path and word in str(ei.value)


def test_parse_actions_and_errno():
    d, arches, flags, rules, notify = sc.parse(prof(
        "SCMP_ACT_ERRNO",
        {"names": ["a", "b"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
        {"names": ["c"], "action": "SCMP_ACT_TRACE"},
        {"names": ["d"], "action": "SCMP_ACT_KILL_PROCESS"},
        defaultErrnoRet=38, architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))
    assert d == sc.SCMP_ACT_ERRNO | 38
    assert arches == ["x86_64", "x86"]
    assert flags == 2 | 32
    assert [(n, a) for n, a, _, _ in rules] == [
        ("a", sc.SCMP_ACT_ERRNO | 5), ("b", sc.SCMP_ACT_ERRNO | 5),
        ("c", sc.SCMP_ACT_TRACE | errno.EPERM), ("d", sc.SCMP_ACT_KILL_PROCESS)]
    assert not notify


def test_rule_sets_follow_runc():
    a0, a1, a0b = (0, 4, 1, 0), (1, 4, 2, 0), (0, 1, 3, 0)
    assert sc._rule_sets([]) == [[]]
    assert sc._rule_sets([a0, a1]) == [[a0, a1]]        # distinct args: AND
    assert sc._rule_sets([a0, a0b]) == [[a0], [a0b]]    # same arg twice: OR


def test_tables_cover_the_spec():
    assert set(sc.ACTIONS) == {
        "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY"}
    assert len(sc.OPERATORS) == 7
    assert set(sc.FLAGS) == {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                             "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                             "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}
    h = sc.lib()
    for name, lsname in sc.ARCHES.items():
        if name in ("SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64"):
            continue
        assert h.seccomp_arch_resolve_name(lsname.encode()), name


# --------------------------------------------------------------- compiling

def test_build_skips_unknown_and_default_rules():
    f = sc.build(prof("SCMP_ACT_ALLOW",
                      {"names": ["definitely_not_a_syscall"], "action": "SCMP_ACT_ERRNO"},
                      {"names": ["read"], "action": "SCMP_ACT_ALLOW"}))
    g = sc.build(prof("SCMP_ACT_ALLOW"))
    assert f.bpf == g.bpf and len(f.bpf) % 8 == 0 and f.flags == 0


def test_realistic_profile_builds():
    """(How long it takes is bench/'s to measure, never a test's.)"""
    p = json.loads((DATA / "seccomp_default.json").read_text())
    assert sum(len(s["names"]) for s in p["syscalls"]) > 400
    f = sc.build(p, cache=False)
    assert len(f.bpf) // 8 > 300 and len(f.bpf) % 8 == 0
    assert sc.build(p, cache=False).bpf == f.bpf       # the same program every time


ENGINES = ["seccomp_podman_4.3.1_debian12.json", "seccomp_docker_20.10.24_debian12.json"]


@pytest.mark.parametrize("name", ENGINES)
def test_engine_default_profiles_build(name):
    """The profiles as podman and dockerd hand them over (tests/data/README.md)."""
    f = sc.build(json.loads((DATA / name).read_text()), cache=False)
    assert len(f.bpf) // 8 > 300


def test_podman_profile_keeps_every_socket_rule_on_the_native_arch():
    """podman's profile: ERRNO(EINVAL) for socket(AF_NETLINK, *, NETLINK_AUDIT), then
    ALLOW a2 != 9, ALLOW a0 != 16, ALLOW a2 != 9 again.  On x86 (socketcall)
    libseccomp answers EEXIST for one of them; the native filter still has them
    all: socket(AF_INET, SOCK_DGRAM, 9) is allowed by "a0 != 16" alone (the
    kernel's answer, not the default ENOSYS)."""
    p = json.loads((DATA / ENGINES[0]).read_text())
    socks = [r for r in p["syscalls"] if "socket" in r["names"]]
    assert len(socks) == 4 and socks[1] == socks[3]  # the profile as captured
    f = sc.build(p, cache=False)
    import socket

    def probe():
        out = []
        for fam, typ, proto in ((16, socket.SOCK_RAW, 9), (2, socket.SOCK_DGRAM, 9),
                                (2, socket.SOCK_DGRAM, 0)):
            try:
                socket.socket(fam, typ, proto).close()
                out.append(0)
            except OSError as e:
                out.append(e.errno)
        return out
    got = in_child(f, probe)
    assert got[0] == errno.EINVAL                     # the ERRNO rule
    assert got[1] not in (errno.ENOSYS, errno.EINVAL)  # allowed: the kernel's own answer
    assert got[2] == 0


def test_duplicate_and_overlapping_rules_load_first_one_stands():
    def errno_rule(n):
        return {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": n}
    arches = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    for rules, want in (([77, 77, 78], 77), ([78, 77, 77], 78)):
        f = sc.build(prof("SCMP_ACT_ALLOW", *map(errno_rule, rules), architectures=arches),
                     cache=False)
        assert in_child(f, errno_of(_raw_getppid)) == want


def test_rules_compile_as_one_context_would():
    """Built per architecture and merged: the same program libseccomp makes
    from one multi-architecture context when no rule conflicts."""
    p = json.loads((DATA / "seccomp_default.json").read_text())
    default, arches, _, rules, _ = sc.parse(p)
    h = sc.lib()
    ctx = h.seccomp_init(default)
    try:
        for a in arches:
            h.seccomp_arch_add(ctx, h.seccomp_arch_resolve_name(a.encode()))
        for name, act, conds, _ in rules:
            nr = h.seccomp_syscall_resolve_name(name.encode())
            if act == default or nr < 0:
                continue
            for cs in sc._rule_sets(conds):
                assert h.seccomp_rule_add_array(ctx, act, nr, len(cs),
                                                sc._arg_array(cs) if cs else None) == 0
        one = sc._export(h, ctx)
    finally:
        h.seccomp_release(ctx)
    assert sc.build(p, cache=False).bpf == one


def test_a_real_libseccomp_error_is_still_an_error(monkeypatch):
    h = sc.lib()
    real = h.seccomp_rule_add_array

    class Lib:
        def __getattr__(self, name):
            return getattr(h, name)

        def seccomp_rule_add_array(self, *a):
            real(*a)
            return -errno.EINVAL
    monkeypatch.setattr(sc, "_lib", Lib())
    with pytest.raises(SpecError) as e:
        sc.build(prof("SCMP_ACT_ALLOW", {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}),
                 cache=False)
    assert "linux.seccomp.syscalls[0]" in str(e.value) and "Invalid argument" in str(e.value)


def test_version():
    assert sc.version().count(".") == 2


# ------------------------------------------------------------------ loading

GETPRIO = os.sched_get_priority_max  # arg 0 is the policy: easy to vary


@pytest.mark.parametrize("op,value,value2,hits", [
    ("SCMP_CMP_EQ", 3, 0, {3}),
    ("SCMP_CMP_NE", 3, 0, {0, 1, 2, 5}),
    ("SCMP_CMP_LT", 2, 0, {0, 1}),
    ("SCMP_CMP_LE", 2, 0, {0, 1, 2}),
    ("SCMP_CMP_GT", 2, 0, {3, 5}),
    ("SCMP_CMP_GE", 2, 0, {2, 3, 5}),
    ("SCMP_CMP_MASKED_EQ", 1, 1, {1, 3, 5}),
])
def test_operators(op, value, value2, hits):
    f = sc.build(prof("SCMP_ACT_ALLOW", {
        "names": ["sched_get_priority_max"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
        "args": [{"index": 0, "value": value, "valueTwo": value2, "op": op}]}))
    got = in_child(f, lambda: [p for p in (0, 1, 2, 3, 5)
                               if errno_of(lambda: GETPRIO(p))() == 99])
    assert set(got) == hits


def test_two_conditions_on_one_argument_are_or():
    f = sc.build(prof("SCMP_ACT_ALLOW", {
        "names": ["sched_get_priority_max"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99,
        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                 {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}))
    got = in_child(f, lambda: [p for p in (0, 1, 2, 3)
                               if errno_of(lambda: GETPRIO(p))() == 99])
    assert got == [1, 2]


@pytest.mark.parametrize("action,expect", [
    ("SCMP_ACT_KILL_PROCESS", -31), ("SCMP_ACT_KILL", -31), ("SCMP_ACT_TRAP", -31),
    ("SCMP_ACT_ERRNO", errno.EPERM), ("SCMP_ACT_LOG", 0), ("SCMP_ACT_TRACE", errno.ENOSYS),
])
def test_actions_in_a_child(action, expect):
    f = sc.build(prof("SCMP_ACT_ALLOW", {"names": ["getppid"], "action": action}))
    assert in_child(f, errno_of(lambda: _raw_getppid())) == expect


def _raw_getppid():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(110 if os.uname().machine == "x86_64" else 173) < 0:
        raise OSError(ctypes.get_errno(), "getppid")


def test_default_errno_ret():
    f = sc.build(prof("SCMP_ACT_ERRNO", {"names": sorted(_BASICS), "action": "SCMP_ACT_ALLOW"},
                      defaultErrnoRet=errno.ENOSYS))
    assert in_child(f, errno_of(lambda: os.mkdir("/nonexistent-dir/x"))) == errno.ENOSYS


_BASICS = {"read", "write", "exit", "exit_group", "close", "rt_sigreturn", "rt_sigaction",
           "rt_sigprocmask", "brk", "mmap", "munmap", "futex", "getpid", "fstat", "newfstatat",
           "lseek", "ioctl", "getrandom", "madvise", "mprotect"}


def test_flags_reach_the_kernel():
    f = sc.build(prof("SCMP_ACT_ALLOW", flags=["SECCOMP_FILTER_FLAG_LOG",
                                               "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                               "SECCOMP_FILTER_FLAG_TSYNC"]))
    assert f.flags == 1 | 2 | 4
    assert in_child(f, lambda: open("/proc/self/status").read().count("Seccomp:\t2")) == 1


def test_wait_killable_recv_with_notify(tmp_path):
    """WAIT_KILLABLE_RECV (not in libseccomp 2.5) works because kago calls
    seccomp(2) itself; it needs a listener, which kago always asks for then."""
    import socket
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tmp_path / "l.sock"))
    srv.listen(1)
    f = sc.build(prof("SCMP_ACT_ALLOW", {"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"},
                      listenerPath=str(tmp_path / "l.sock"), listenerMetadata="meta",
                      flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                             "SECCOMP_FILTER_FLAG_TSYNC"]))
    f.state = {"ociVersion": "1.2.0", "id": "x", "status": "creating", "pid": 7}
    assert in_child(f, lambda: 5) == 5
    f.close()
    conn, _ = srv.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 65536, 2)
    assert len(fds) == 1
    m = json.loads(msg)
    assert m["fds"] == ["seccompFd"] and m["pid"] == 7 and m["metadata"] == "meta"
    assert m["state"]["id"] == "x"
    for fd in fds:
        os.close(fd)
    conn.close()
    srv.close()


def test_action_available():
    for name in sc.ACTIONS:
        assert sc.action_available(name), name


# -------------------------------------------------------------------- cache

@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setattr(sc, "CACHE_DIR", str(d))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    return d


def test_cache_roundtrip(cache, monkeypatch):
    p = json.loads((DATA / "seccomp_default.json").read_text())
    first = sc.build(p)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].read_bytes() == first.bpf
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"

    def no_compile(*a, **k):
        raise AssertionError("compiled again: the cache was not used")
    with monkeypatch.context() as m:      # the second build comes from the cache
        m.setattr(sc, "_compile", no_compile)
        again = sc.build(p)
    assert again.bpf == first.bpf
    # another profile, another entry
    p["defaultErrnoRet"] = 1
    assert sc.build(p).bpf != first.bpf and len(list(cache.iterdir())) == 2


def test_cache_entry_not_trusted_if_writable_by_others(cache):
    if os.getuid() != 0:
        pytest.skip("ownership check needs root-owned files")
    p = prof("SCMP_ACT_ALLOW", {"names": ["getppid"], "action": "SCMP_ACT_ERRNO"})
    real = sc.build(p).bpf
    (entry,) = cache.iterdir()
    entry.write_bytes(sc.build(prof("SCMP_ACT_ALLOW"), cache=False).bpf)  # tampered
    entry.chmod(0o666)
    assert sc.build(p).bpf == real


def test_cache_is_bounded_and_ignores_the_listener(cache, monkeypatch):
    monkeypatch.setattr(sc, "CACHE_MAX", 4)
    for n in range(10):
        sc.build(prof("SCMP_ACT_ALLOW", {"names": ["getppid"], "action": "SCMP_ACT_ERRNO",
                                         "errnoRet": n + 1}))
    assert len(list(cache.iterdir())) <= 4
    k1 = sc._cache_key(prof("SCMP_ACT_ALLOW", listenerPath="/a", flags=["SECCOMP_FILTER_FLAG_LOG"]))
    k2 = sc._cache_key(prof("SCMP_ACT_ALLOW", listenerPath="/b"))
    assert k1 == k2


# ------------------------------------------------------------ -ENOSYS stub

AUDIT = {"x86_64": 0xC000003E, "x86": 0x40000003, "aarch64": 0xC00000B7,
         "s390x": 0x80000016}
RET_ENOSYS = 0x00050000 | errno.ENOSYS


def run_bpf(bpf: bytes, nr: int, arch: int) -> int:
    """A classic-BPF interpreter for what seccomp programs use here: the
    verdict ``bpf`` gives for seccomp_data {nr, arch, ip 0, args 0}."""
    import struct
    import sys
    data = struct.pack("=iIQ6Q", nr, arch, 0, *[0] * 6)
    insns = [struct.unpack_from("=HBBI", bpf, i) for i in range(0, len(bpf), 8)]
    a = x = pc = 0
    for _ in range(100000):
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:                                   # ld [k]
            a = int.from_bytes(data[k:k + 4], sys.byteorder)
        elif code == 0x05:                                 # ja k
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):             # jeq jgt jge jset #k
            hit = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jt if hit else jf
        elif code == 0x06:                                 # ret #k
            return k
        elif code == 0x54:                                 # and #k
            a &= k
        elif code == 0x16:                                 # ret a
            return a
        else:
            raise AssertionError(f"opcode {code:#x} at {pc - 1}")
    raise AssertionError("no verdict")


def _nr(name, arch):
    h = sc.lib()
    return h.seccomp_syscall_resolve_name_arch(h.seccomp_arch_resolve_name(arch.encode()),
                                               name.encode())


ALLOW_SOME = {"names": ["read", "write", "getpid", "openat"], "action": "SCMP_ACT_ALLOW"}
ARCHES4 = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"]


@pytest.mark.parametrize("default,expect_stub", [
    ("SCMP_ACT_ERRNO", True), ("SCMP_ACT_KILL_PROCESS", True), ("SCMP_ACT_TRAP", True),
    ("SCMP_ACT_ALLOW", False), ("SCMP_ACT_LOG", False), ("SCMP_ACT_TRACE", False),
])
def test_enosys_stub_above_the_highest_named_syscall(default, expect_stub):
    """runc's patchbpf: past the highest syscall the profile names on an
    architecture, -ENOSYS; below it (named or not) the profile decides."""
    f = sc.build(prof(default, ALLOW_SOME, architectures=ARCHES4), cache=False)
    dflt = sc._action(default, None, "")
    for arch in ("x86_64", "x86", "aarch64"):
        audit = AUDIT[arch]
        top = max(_nr(n, arch) for n in ALLOW_SOME["names"])
        below = next(n for n in range(top) if n not in
                     {_nr(m, arch) for m in ALLOW_SOME["names"]})
        assert run_bpf(f.bpf, _nr("getpid", arch), audit) == sc.SCMP_ACT_ALLOW
        assert run_bpf(f.bpf, below, audit) == dflt, arch
        for nr in (top + 1, 1000, 0x7FFFFFFF):
            assert run_bpf(f.bpf, nr, audit) == (RET_ENOSYS if expect_stub else dflt), \
                (arch, nr)
    # x32 calls are x86_64 with bit 30 in the number, judged against x32's own top
    x32top = max(_nr(n, "x32") for n in ALLOW_SOME["names"])
    assert run_bpf(f.bpf, _nr("getpid", "x32"), AUDIT["x86_64"]) == sc.SCMP_ACT_ALLOW
    assert run_bpf(f.bpf, x32top + 1, AUDIT["x86_64"]) == \
        (RET_ENOSYS if expect_stub else dflt)


def test_enosys_stub_without_x32_leaves_x32_calls_to_the_filter():
    f = sc.build(prof("SCMP_ACT_ERRNO", ALLOW_SOME, architectures=["SCMP_ARCH_X86_64"]),
                 cache=False)
    # not an allowed architecture/ABI: libseccomp's bad-arch action, not ENOSYS
    assert run_bpf(f.bpf, 0x40000000 + 1000, AUDIT["x86_64"]) != RET_ENOSYS
    assert run_bpf(f.bpf, 1000, AUDIT["x86_64"]) == RET_ENOSYS
    # an architecture the profile doesn't list: the filter's bad-arch kill
    assert run_bpf(f.bpf, 1000, AUDIT["s390x"]) == sc.SCMP_ACT_KILL_THREAD


def test_enosys_stub_s390_setup_multiplexer():
    """s390(x) folds syscalls the kernel doesn't know into number 0 (setup):
    -ENOSYS there too (libseccomp can't put s390x beside a little-endian
    native architecture in one filter: the stub alone, before a sentinel)."""
    h = sc.lib()
    default, _, _, rules, _ = sc.parse(prof("SCMP_ACT_ERRNO", ALLOW_SOME))
    stub = sc._enosys_stub(h, default, {AUDIT["s390x"]: "s390x"}, rules)
    prog = stub + sc._insn(0x06, 0x12345)  # ret #sentinel: "the filter decides"
    assert run_bpf(prog, 0, AUDIT["s390x"]) == RET_ENOSYS
    assert run_bpf(prog, _nr("getpid", "s390x"), AUDIT["s390x"]) == 0x12345
    assert run_bpf(prog, 1000, AUDIT["s390x"]) == RET_ENOSYS
    assert run_bpf(prog, 1000, AUDIT["x86_64"]) == 0x12345  # not its architecture


def test_no_stub_when_the_default_is_already_enosys():
    with_enosys = sc.build(prof("SCMP_ACT_ERRNO", ALLOW_SOME, defaultErrnoRet=errno.ENOSYS),
                           cache=False)
    h = sc.lib()
    default, _, _, rules, _ = sc.parse(prof("SCMP_ACT_ERRNO", ALLOW_SOME,
                                            defaultErrnoRet=errno.ENOSYS))
    assert sc._enosys_stub(h, default, {h.seccomp_arch_native(): "native"}, rules) == b""
    assert run_bpf(with_enosys.bpf, 1000, AUDIT["x86_64"]) == RET_ENOSYS


def test_enosys_stub_in_a_child():
    """Loaded for real: an unknown number is ENOSYS, a known unlisted one EPERM."""
    if os.uname().machine != "x86_64":
        pytest.skip("raw syscall numbers below are x86_64's")
    libc = ctypes.CDLL(None, use_errno=True)

    def probe():
        out = []
        for nr in (1000, 110):  # 110: getppid, not in the list
            libc.syscall(nr)
            out.append(ctypes.get_errno())
        return out
    f = sc.build(prof("SCMP_ACT_ERRNO", {"names": sorted(_BASICS), "action": "SCMP_ACT_ALLOW"}),
                 cache=False)
    assert in_child(f, probe) == [errno.ENOSYS, errno.EPERM]
