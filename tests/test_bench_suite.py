"""The benchmark suite's plumbing (graphad.bench) at tiny sizes: it runs from the package, writes
valid results.json and RESULTS.md, reports missing peers as skipped, plots when matplotlib is
there, and its timing discipline computes medians and per-round ratios."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from graphad.__main__ import main
from graphad.bench import WORKLOADS, _timing
from graphad.bench.second_order import verdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _finite_json(path):
    """json.load that rejects NaN / Infinity (not JSON)."""
    def bad(c):
        raise ValueError(f"non-JSON constant {c} in {path}")
    with open(path) as fh:
        return json.load(fh, parse_constant=bad)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    assert main(["bench", "--quick", "--tiny", "--out", str(out), "--without", "torch"]) == 0
    return out, _finite_json(out / "results.json"), (out / "RESULTS.md").read_text()


def test_every_workload_runs_and_is_reported(tiny_run):
    out, res, md = tiny_run
    assert list(res["workloads"]) == list(WORKLOADS)
    for name, w in res["workloads"].items():
        assert f"## {name}:" in md
        for p in w["points"]:
            for t in p["timings"].values():
                assert 0 < t["p25"] <= t["median"] <= t["p75"] and t["rounds"] >= 3
    # every point with a graphad case has a summary; ratios are positive where a peer ran
    pts = [p for w in res["workloads"].values() for p in w["points"]]
    assert pts and all(p["summary"]["graphad"] for p in pts)


def test_results_json_describes_the_machine(tiny_run):
    _, res, _ = tiny_run
    m = res["machine"]
    assert m["cpu_model"] and isinstance(m["cpu_flags"], list)
    assert m["versions"]["numpy"] == np.__version__
    assert m["threads"] == 1
    assert all(b["num_threads"] == 1 for b in m["blas"])      # recorded inside the pinning
    assert {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"} <= set(m["env"])


def test_results_md_has_ratio_tables(tiny_run):
    _, res, md = tiny_run
    assert "| point | graphad | time | best peer |" in md
    over = res["workloads"]["overhead"]["points"][0]
    assert over["summary"]["floor"] == "Python floats"
    assert over["summary"]["vs_floor"]["median"] > 0
    # a table row per point, each with as many cells as the header
    lines = [ln for ln in md.splitlines() if ln.startswith("| scalar chain")]
    assert lines and all(ln.count("|") == 11 for ln in lines[:1])


def test_missing_peers_are_reported_as_skipped(tiny_run):
    _, res, md = tiny_run
    sk = res["peers"]["skipped"]
    for name in ("torch_eager", "torch_func", "torch_compile", "torchdiffeq_peer"):
        assert name in sk                             # --without torch
    assert "Skipped peers:" in md and "PyTorch eager" in md
    used = set(res["peers"]["used"])
    assert not used & set(sk)


def test_a_peer_that_does_not_import_is_skipped_not_fatal(tmp_path):
    code = ("import sys; sys.modules['autograd'] = None\n"
            "from graphad.__main__ import main\n"
            f"sys.exit(main(['bench', '--tiny', '--only', 'array_api', '--out', {str(tmp_path)!r},"
            " '--without', 'torch', 'jax']))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    res = _finite_json(tmp_path / "results.json")
    assert "not importable" in res["peers"]["skipped"]["hips_autograd"]
    assert res["workloads"]["array_api"]["points"]


def test_plots_are_written_when_matplotlib_is_there(tiny_run):
    pytest.importorskip("matplotlib")
    out, res, md = tiny_run
    assert set(res["plots"]) == {"train_step.png", "jacobian.png", "cost_model.png"}
    for png in res["plots"]:
        assert (out / png).stat().st_size > 10_000 and f"]({png})" in md


def test_train_step_compile_times_are_not_clamped(tiny_run):
    _, res, _ = tiny_run
    comp = res["workloads"]["train_step"]["extra"]["compile"]
    assert comp and all(math.isclose(c["compile"], c["first_call"] - c["step"]) for c in comp)


def test_measure_gives_medians_and_per_round_ratios():
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1

    def b():
        calls["b"] += 1
        sum(range(200))
    t = _timing.measure({"a": a, "b": b}, budget=0.01, rounds=4)
    assert set(t) == {"a", "b"} and len(t["a"].samples) == 4
    assert calls["a"] >= 4 * t["a"].number
    med, (lo, hi) = _timing.ratio(t["b"], t["a"])
    assert lo <= med <= hi and med > 1
    # the ratio is the median of per-round ratios, not a ratio of medians
    x = _timing.Timing([1.0, 2.0, 3.0], 1)
    y = _timing.Timing([1.0, 1.0, 6.0], 1)
    assert _timing.ratio(x, y)[0] == 1.0


def test_targets_near_the_noise_are_judged_on_the_median():
    assert verdict({"median": 4.9, "p25": 4.7, "p75": 5.1, "target": 5}).startswith("met")
    assert "noise" in verdict({"median": 5.01, "p25": 4.9, "p75": 5.1, "target": 5})
    assert verdict({"median": 6, "p25": 5.5, "p75": 6.5, "target": 5}) == "missed"
    assert verdict({"median": 3, "p25": 2.9, "p75": 3.1, "target": 5}) == "met"


def test_time_formatting():
    assert _timing.fmt_time(1.234e-6) == "1.23 us"
    assert _timing.fmt_time(-5.2e-4) == "-520 us"
    assert _timing.fmt_time(None) == "n/a"
    assert _timing.fmt_ratio((1.0, (0.9, 1.1))) == "1.00 (0.90-1.10)"


def test_progress_falls_back_to_plain_lines(capsys, monkeypatch):
    from graphad.bench import _suite
    monkeypatch.setitem(sys.modules, "tqdm", None)
    p = _suite.Progress(2)
    p.step("overhead: chain")
    p.step("gemm: 10x10x10")
    p.close()
    err = capsys.readouterr().err
    assert "[  1/2] overhead: chain" in err and "[  2/2] gemm" in err
