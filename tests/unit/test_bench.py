"""bench/bench.py's arithmetic: paired ratios and the target lines (no runtime run)."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("kago_bench", REPO / "bench" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
S = bench.Sample


def test_paired_ratios_use_common_rounds_only():
    a = {0: S(0.030, 0.020), 1: S(0.040, 0.030), 2: S(0.050, 0.045), 9: S(1.0, 1.0)}
    b = {0: S(0.010, 0.010), 1: S(0.020, 0.020), 2: S(0.025, 0.030)}
    assert bench.paired_ratio(a, b) == 2.0                # 3, 2, 2
    assert bench.paired_cpu_ratio(a, b) == 1.5            # 2, 1.5, 1.5
    assert bench.paired_cpu_ratio({0: S(0.1, 0.0)}, {0: S(0.1, 0.0)}) is None


def _bench(samples, rss=None, init_rss=None):
    rts = {n: SimpleNamespace(name=n) for n in ("kago", "runc", "crun")}
    b = SimpleNamespace(data=samples, failed={}, rssdata=rss or {},
                        extras={"VmRSS KiB": {"kago": [init_rss]}} if init_rss else {})
    return b, rts


def test_targets_report_the_cpu_target_of_issue_2():
    rounds = range(5)
    data = {"run /bin/true": {
        "kago": {k: S(0.050, 0.0440) for k in rounds},
        "runc": {k: S(0.025, 0.0300) for k in rounds},
        "crun": {k: S(0.015, 0.0100) for k in rounds}}}
    b, rts = _bench(data, rss={"run /bin/true": {"kago": [9.8 * 1024], "runc": [9.9 * 1024]}},
                    init_rss=9.2 * 1024)
    lines = bench.targets(b, rts["kago"], rts["runc"], rts["crun"])
    assert "- [met] run /bin/true cpu <= 1.5 x runc cpu (issue 2): 1.47x (target <= 1.5x)" in lines
    assert "- [NOT met] run /bin/true <= runc: 2.00x (target <= 1x)" in lines
    assert "- [NOT met] run /bin/true <= 2 x crun: 3.33x (target <= 2x)" in lines
    assert any(x.startswith("- [met] peak RSS of any call <= 10 MiB: 9.8 MiB") for x in lines)
    assert "- [met] waiting init VmRSS <= 10 MiB: 9.20 MiB (target <= 10 MiB)" in lines
    data["run /bin/true"]["kago"] = {k: S(0.050, 0.0460) for k in rounds}
    lines = bench.targets(b, rts["kago"], rts["runc"], rts["crun"])
    assert "- [NOT met] run /bin/true cpu <= 1.5 x runc cpu (issue 2): 1.53x (target <= 1.5x)" in lines


def test_floor_is_the_launchers_interpreter_or_none():
    assert bench.floor_argv(["/opt/k/bin/kago"], "#!/opt/k/libexec/python3.11 -IS") == [
        "/opt/k/libexec/python3.11", "-IS", "-c", "pass"]
    assert bench.floor_argv(["/usr/bin/python3", "-IS", "/x/kago.py"], "") == [
        "/usr/bin/python3", "-IS", "-c", "pass"]
    assert bench.floor_argv(["/usr/sbin/runc"], "\x7fELF\x02\x01") is None
    assert bench.floor_argv(["/x/sh-runtime"], "#!/bin/sh") is None


def test_own_cost_subtracts_the_floor_of_the_same_round():
    calls = {0: S(0.012, 0.011), 1: S(0.020, 0.018), 2: S(0.013, 0.012)}
    floor = {0: S(0.010, 0.010), 1: S(0.017, 0.016), 3: S(0.001, 0.001)}
    own = bench.own_samples(calls, floor)
    assert sorted(own) == [0, 1]                          # round 2 had no floor, 3 no call
    assert abs(own[0].wall - 0.002) < 1e-9 and abs(own[1].cpu - 0.002) < 1e-9
    runc = {0: S(0.004, 0.004), 1: S(0.006, 0.006)}
    kago = SimpleNamespace(name="kago", floor=["py", "-IS", "-c", "pass"])
    rc = SimpleNamespace(name="runc", floor=None)
    b = SimpleNamespace(data={"state": {"kago": calls, "runc": runc}},
                        floor={"state": {"kago": floor}}, failed={}, rssdata={}, extras={},
                        scale={(1, "kago"): {"up": 6.0}, (1, "runc"): {"up": 5.0},
                               (4, "kago"): {"up": 3.0}, (4, "runc"): {"up": 2.0}},
                        a=SimpleNamespace(par=4))
    assert bench.own_of(b, "state", rc) is runc             # not in Python: the whole call
    assert abs(bench.paired_ratio(bench.own_of(b, "state", kago), runc) - 0.5) < 1e-9  # .5, .5
    lines = bench.targets16(b, kago, rc)
    assert lines[0].startswith("- [met] own cost of state <= runc's whole call: 0.50x")
    assert "- [met] scale: containers up one by one <= 1.2 x runc: 1.20x (target <= 1.2x)" in lines
    assert "- [NOT met] scale: containers up 4 at a time <= 1 x runc: 1.50x (target <= 1x)" in lines


def test_podman_config_keeps_what_podman_sends_but_the_cgroup_path_and_high_rlimits():
    import json
    tpl = json.loads((REPO / "bench" / "podman-config.json").read_text())
    c = bench.podman_config(tpl, "/w/rootfs", "/w/ud", ["/bin/true"],
                            {"RLIMIT_NOFILE": 20000, "RLIMIT_NPROC": 10 ** 9})
    text = json.dumps(c)
    assert "@USERDATA@" not in text and "@ROOTFS@" not in text
    assert c["root"]["path"] == "/w/rootfs" and c["process"]["args"] == ["/bin/true"]
    assert "/w/ud/hosts" in [m["source"] for m in c["mounts"]]
    assert "cgroupsPath" not in c["linux"] and "cgroupsPath" in tpl["linux"]
    lim = {r["type"]: (r["soft"], r["hard"]) for r in c["process"]["rlimits"]}
    want = {r["type"]: r["hard"] for r in tpl["process"]["rlimits"]}
    assert lim["RLIMIT_NOFILE"] == (20000, 20000) and want["RLIMIT_NOFILE"] > 20000
    assert lim["RLIMIT_NPROC"] == (want["RLIMIT_NPROC"],) * 2
    assert c["process"]["capabilities"] == tpl["process"]["capabilities"]
    assert c["linux"]["seccomp"] == tpl["linux"]["seccomp"]
    assert len(c["mounts"]) == len(tpl["mounts"]) == 10


def test_scale_ratio_is_paired_by_round():
    runs_k = {0: {"up": 4.0, "down": 1.0}, 1: {"up": 9.0, "down": 1.0}, 2: {"up": 5.0, "down": 2.0}}
    runs_r = {0: {"up": 2.0, "down": 1.0}, 1: {"up": 9.0, "down": 2.0}, 2: {"up": 5.0, "down": 1.0}}
    k, r = bench.scale_summary(runs_k), bench.scale_summary(runs_r)
    assert (k["up"], r["up"]) == (5.0, 5.0)                # medians
    assert bench.scale_ratio(k, r, "up") == 1.0            # 2, 1, 1 per round
    assert bench.scale_ratio(k, r, "down") == 1.0          # 1, .5, 2
    assert bench.scale_ratio({"up": 6.0}, {"up": 4.0}, "up") == 1.5   # no rounds: medians
