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
