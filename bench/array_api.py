"""Per-call overhead of the new array functions on small arrays: var, tensordot, tril and cumsum,
forward alone and forward + backward, in graphad against PyTorch eager and HIPS autograd.

Each case is a scalar loss on 8x8 (tensordot: 8x4x4 against 4x4x8) float64 inputs:
  var        sum(var(x, axis=0, ddof=1))
  tensordot  sum(tensordot(a, b, 2) * c)
  tril       sum(tril(x, -1) * c)
  cumsum     sum(cumsum(x, axis=1) * c)
"forward" builds the value with the input requiring grad (the graph is recorded);
"backward" adds the gradient (graphad: ga.grad; torch: .backward(); autograd: autograd.grad).
One BLAS thread, the process pinned to one CPU; the cases of one row are timed in interleaved
rounds, best of 5.  The ratio columns divide graphad's time by the peer's: below 1 means graphad
is ahead.

    python bench/array_api.py [--quick] [--out bench/out]
"""
import os
import sys
import time
import timeit

import numpy as np

import graphad as ga

KINDS = ("var", "tensordot", "tril", "cumsum")


def _calibrate(fn, budget):
    fn()
    t = timeit.Timer(fn)
    number = 1
    while True:
        dt = t.timeit(number)
        if dt >= budget / 5 or number >= 1 << 16:
            return number
        number = max(2 * number, int(1.2 * number * (budget / 5) / max(dt, 1e-9)))


def _time_interleaved(cases, budget, rounds=5):
    timers = {k: (timeit.Timer(fn), _calibrate(fn, budget)) for k, fn in cases.items()}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for k, (timer, number) in timers.items():
            best[k] = min(best[k], timer.timeit(number) / number)
    return best


def problem(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((8, 8)), "c": rng.standard_normal((8, 8)),
            "a": rng.standard_normal((8, 4, 4)), "b": rng.standard_normal((4, 4, 8))}


def losses(m, p):
    """The four losses written once for a NumPy-like module m (ga, autograd.numpy)."""
    c = p["c"]
    return {
        "var": (lambda x: m.sum(m.var(x, axis=0, ddof=1)), "x"),
        "tensordot": (lambda a: m.sum(m.tensordot(a, p["b"], 2) * c), "a"),
        "tril": (lambda x: m.sum(m.tril(x, -1) * c), "x"),
        "cumsum": (lambda x: m.sum(m.cumsum(x, axis=1) * c), "x"),
    }


def graphad_cases(p):
    out = {}
    for k, (f, arg) in losses(ga, p).items():
        x = p[arg]
        g = ga.grad(f)
        out[k] = {"forward": lambda f=f, x=x: f(ga.tensor(x, requires_grad=True)),
                  "backward": lambda g=g, x=x: g(x)}
    return out


def autograd_cases(p):
    import autograd
    import autograd.numpy as anp
    out = {}
    for k, (f, arg) in losses(anp, p).items():
        x = p[arg]
        g = autograd.grad(f)
        out[k] = {"forward": lambda f=f, x=x: f(x), "backward": lambda g=g, x=x: g(x)}
    return out


def torch_cases(p):
    import torch
    t = {k: torch.tensor(v) for k, v in p.items()}
    c = t["c"]
    fs = {
        "var": (lambda x: torch.var(x, dim=0, correction=1).sum(), "x"),
        "tensordot": (lambda a: (torch.tensordot(a, t["b"], 2) * c).sum(), "a"),
        "tril": (lambda x: (torch.tril(x, -1) * c).sum(), "x"),
        "cumsum": (lambda x: (torch.cumsum(x, 1) * c).sum(), "x"),
    }
    out = {}
    for k, (f, arg) in fs.items():
        x = t[arg]

        def fwd(f=f, x=x):
            return f(x.detach().requires_grad_(True))

        def bwd(f=f, x=x):
            xx = x.detach().requires_grad_(True)
            f(xx).backward()
            return xx.grad
        out[k] = {"forward": fwd, "backward": bwd}
    return out


def _check(p, frameworks):
    """Every framework computes the same value and gradient."""
    ref = {k: (float(v["forward"]().data), v["backward"]())
           for k, v in graphad_cases(p).items()}
    peers = {"autograd": autograd_cases, "torch": torch_cases}
    for name in frameworks:
        for k, v in peers[name](p).items():
            val = v["forward"]()
            val = float(val.detach()) if hasattr(val, "detach") else float(val)
            g = v["backward"]()
            g = g.numpy() if hasattr(g, "numpy") else np.asarray(g)
            assert np.isclose(val, ref[k][0], rtol=1e-10), (name, k, val, ref[k][0])
            assert np.allclose(g, ref[k][1], rtol=1e-10, atol=1e-12), (name, k)


def _frameworks():
    found = []
    for name in ("torch", "autograd"):
        try:
            __import__(name)
            found.append(name)
        except ImportError:
            pass
    return found


def bench(budget, frameworks):
    p = problem()
    _check(p, frameworks)
    cases = {"graphad": graphad_cases(p)}
    if "torch" in frameworks:
        cases["torch"] = torch_cases(p)
    if "autograd" in frameworks:
        cases["autograd"] = autograd_cases(p)
    rows = []
    for k in KINDS:
        for phase in ("forward", "backward"):
            t = _time_interleaved({fw: cases[fw][k][phase] for fw in cases}, budget)
            rows.append({"case": k, "phase": phase, **{fw: t[fw] for fw in cases}})
    return rows


def table(rows, frameworks):
    head = "| case | phase | graphad | " + " | ".join(frameworks) + " | " + \
        " | ".join(f"ratio vs {f}" for f in frameworks) + " |"
    lines = [head, "|" + "---|" * (3 + 2 * len(frameworks))]
    for r in rows:
        lines.append(f"| {r['case']} | {r['phase']} | {r['graphad'] * 1e6:.1f} us | " +
                     " | ".join(f"{r[f] * 1e6:.1f} us" for f in frameworks) + " | " +
                     " | ".join(f"{r['graphad'] / r[f]:.2f}" for f in frameworks) + " |")
    return "\n".join(lines)


def run(quick=False, out="bench/out"):
    from threadpoolctl import threadpool_limits
    frameworks = _frameworks()
    budget = 0.05 if quick else 0.25
    t0 = time.perf_counter()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity:
        os.sched_setaffinity(0, {max(affinity)})
    try:
        if "torch" in frameworks:
            import torch
            torch.set_num_threads(1)
        with threadpool_limits(1):
            rows = bench(budget, frameworks)
    finally:
        if affinity:
            os.sched_setaffinity(0, affinity)
    ahead = {f: all(r["graphad"] < r[f] for r in rows) for f in frameworks}
    result = {"rows": rows, "quick": quick, "frameworks": frameworks, "numpy": np.__version__,
              "ahead": ahead, "seconds": time.perf_counter() - t0}
    from importlib.metadata import version
    for name in frameworks:
        result[name] = version(name)
    md = "### Per-call overhead of var, tensordot, tril, cumsum (8x8 float64)\n\n"
    md += table(rows, frameworks)
    md += "\n\n" + "\n".join(f"- ahead of {f} in every row: {'yes' if v else 'NO'}"
                             for f, v in ahead.items())
    md += (f"\n\nframeworks: {', '.join(f'{k} {result[k]}' for k in frameworks) or 'none'}; "
           f"numpy {np.__version__}.\n")
    from graphad.__main__ import bench_write
    bench_write(out, "array_api", md, result)
    return result


if __name__ == "__main__":
    from graphad.__main__ import bench_script
    sys.exit(bench_script(run, __doc__, "shorter timings"))
