"""Gradients through ga.odeint: dy/dt = tanh(W y), y in R^64, classical RK4 with N steps over
t in [0, 1] (one interval, `substeps=N`); the loss <c, y(1)> and its gradient with respect to W
and y0, by the adjoint (adjoint=True) and by direct backprop (adjoint=False, eager and under
ga.compile), beside a hand-written NumPy RK4 with its backward (the floor: the stages kept in
memory), torchdiffeq (odeint_adjoint and odeint, fixed-grid RK4) and JAX (RK4 in lax.scan,
jax.grad, jit) when they are importable.  Every framework's gradient is checked against the
floor's first.  Time: best of interleaved rounds, one BLAS thread, the process pinned to one CPU.
Peak memory: tracemalloc's peak during one gradient (Python-side allocations: NumPy arrays and
graphad's graph; PyTorch's and XLA's own allocators are invisible to it, hence n/a), at N and
10 N steps: the adjoint's should not grow with N.

    python bench/odeint.py [--quick] [--out bench/out]
"""
import os
import sys
import time
import timeit
import tracemalloc

import numpy as np

import graphad as ga

D = 64


def _fmt(t):
    if t is None:
        return "n/a"
    return f"{t * 1e6:.0f} us" if t < 1e-3 else (f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s")


def _mb(b):
    return "n/a" if b is None else f"{b / 2 ** 20:.2f} MiB"


def problem(seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.standard_normal((D, D)) / np.sqrt(D), "y0": rng.standard_normal(D),
            "c": rng.standard_normal(D)}


# ----------------------------------------------------------------------------------------------
# graphad

def _f(y, t, W):
    return ga.tanh(W @ y)


def graphad_grad(p, n, adjoint, compiled=False):
    c = p["c"]

    def loss(W, y0):
        return ga.sum(c * ga.odeint(_f, y0, [0.0, 1.0], W, substeps=n, adjoint=adjoint)[-1])
    g = ga.grad(loss, argnums=(0, 1))
    if compiled:
        g = ga.compile(g)
    return lambda: g(p["W"], p["y0"])


# ----------------------------------------------------------------------------------------------
# the floor: RK4 and its reverse by hand, the stages kept

def numpy_grad(p, n):
    W, y0, c = p["W"], p["y0"], p["c"]
    h = 1.0 / n

    def run():
        y, tape = y0, []
        for _ in range(n):
            k1 = np.tanh(W @ y)
            u2 = y + h / 2 * k1
            k2 = np.tanh(W @ u2)
            u3 = y + h / 2 * k2
            k3 = np.tanh(W @ u3)
            u4 = y + h * k3
            k4 = np.tanh(W @ u4)
            tape.append((y, u2, u3, u4, k1, k2, k3, k4))
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        a, gW = c.copy(), np.zeros_like(W)
        for y, u2, u3, u4, k1, k2, k3, k4 in reversed(tape):
            z4 = h / 6 * a * (1 - k4 * k4)
            g4 = W.T @ z4
            z3 = (h / 3 * a + h * g4) * (1 - k3 * k3)
            g3 = W.T @ z3
            z2 = (h / 3 * a + h / 2 * g3) * (1 - k2 * k2)
            g2 = W.T @ z2
            z1 = (h / 6 * a + h / 2 * g2) * (1 - k1 * k1)
            g1 = W.T @ z1
            gW += np.outer(z4, u4) + np.outer(z3, u3) + np.outer(z2, u2) + np.outer(z1, y)
            a = a + g1 + g2 + g3 + g4
        return gW, a
    return run


# ----------------------------------------------------------------------------------------------
# peers

def torch_grad(p, n, adjoint):
    import torch
    from torchdiffeq import odeint, odeint_adjoint

    class F(torch.nn.Module):
        def __init__(self, W):
            super().__init__()
            self.W = torch.nn.Parameter(torch.tensor(W))

        def forward(self, t, y):
            return torch.tanh(self.W @ y)
    func = F(p["W"])
    c = torch.tensor(p["c"])
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    solve = odeint_adjoint if adjoint else odeint
    # torchdiffeq's "rk4" is the 3/8 rule; "rk4" here means the classical tableau of the others
    opts = dict(method="rk4", options=dict(step_size=1.0 / n, perturb=False))
    if adjoint:
        opts.update(adjoint_method="rk4", adjoint_options=dict(step_size=1.0 / n))

    def run():
        y0 = torch.tensor(p["y0"], requires_grad=True)
        loss = (c * solve(func, y0, t, **opts)[-1]).sum()
        return torch.autograd.grad(loss, (func.W, y0))
    return run


def jax_grad(p, n):
    import jax
    import jax.numpy as jnp
    h = 1.0 / n
    c = jnp.asarray(p["c"])

    def loss(W, y0):
        def step(y, _):
            k1 = jnp.tanh(W @ y)
            k2 = jnp.tanh(W @ (y + h / 2 * k1))
            k3 = jnp.tanh(W @ (y + h / 2 * k2))
            k4 = jnp.tanh(W @ (y + h * k3))
            return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None
        y, _ = jax.lax.scan(step, y0, None, length=n)
        return jnp.sum(c * y)
    g = jax.jit(jax.grad(loss, argnums=(0, 1)))
    W, y0 = jnp.asarray(p["W"]), jnp.asarray(p["y0"])
    return lambda: jax.block_until_ready(g(W, y0))


def _frameworks():
    have = []
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        have.append("jax")
    except Exception:
        pass
    try:
        import torch
        import torchdiffeq  # noqa: F401
        torch.set_num_threads(1)
        have.append("torchdiffeq")
    except Exception:
        pass
    return have


# ----------------------------------------------------------------------------------------------
# measuring

def _calibrate(fn, budget):
    fn()
    t = timeit.Timer(fn)
    number = 1
    while True:
        dt = t.timeit(number)
        if dt >= budget / 5 or number >= 1 << 16:
            return number
        number = max(2 * number, int(1.2 * number * (budget / 5) / max(dt, 1e-9)))


def _time_interleaved(cases, budget, rounds=3):
    timers = {k: (timeit.Timer(fn), _calibrate(fn, budget)) for k, fn in cases.items()}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for k, (timer, number) in timers.items():
            best[k] = min(best[k], timer.timeit(number) / number)
    return best


def _peak(fn):
    fn()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _to_np(x):
    return [np.asarray(v.detach() if hasattr(v, "detach") else v, dtype=np.float64) for v in x]


def _check(cases, ref, n):
    want = _to_np(ref())
    for k, fn in cases.items():
        for a, b in zip(want, _to_np(fn())):
            if not np.allclose(a, b, rtol=1e-6, atol=1e-9 * np.abs(a).max()):
                raise AssertionError(f"bench/odeint.py: {k} disagrees with NumPy at N={n}: "
                                     f"max |diff| {np.abs(a - b).max():.3g}")


def bench(n, budget, frameworks):
    p = problem()
    cases = {"graphad adjoint": graphad_grad(p, n, True),
             "graphad direct": graphad_grad(p, n, False),
             "graphad direct compiled": graphad_grad(p, n, False, compiled=True),
             "numpy": numpy_grad(p, n)}
    if "torchdiffeq" in frameworks:
        cases["torchdiffeq adjoint"] = torch_grad(p, n, True)
        cases["torchdiffeq direct"] = torch_grad(p, n, False)
    if "jax" in frameworks:
        cases["jax jit direct"] = jax_grad(p, n)
    _check({k: f for k, f in cases.items() if k != "numpy"}, cases["numpy"], n)
    times = _time_interleaved(cases, budget)
    for k, v in times.items():
        print(f"  N={n} {k:24s} {_fmt(v)}", flush=True)
    return times


def memory(ns):
    p = problem()
    rows = []
    for n in ns:
        row = {"n": n}
        for k, fn in (("graphad adjoint", graphad_grad(p, n, True)),
                      ("graphad direct", graphad_grad(p, n, False)),
                      ("numpy", numpy_grad(p, n))):
            row[k] = _peak(fn)
        rows.append(row)
        print(f"  N={n} peak: " + ", ".join(f"{k} {_mb(v)}" for k, v in row.items()
                                             if k != "n"), flush=True)
    return rows


def tables(n, times, mem):
    md = [f"### Gradient of <c, y(1)> wrt W and y0: dy/dt = tanh(W y), y in R^{D}, RK4, "
          f"N = {n} steps (one thread)", "",
          "| solver | time | / NumPy floor |", "|---|---|---|"]
    floor = times["numpy"]
    for k, v in times.items():
        md.append(f"| {k} | {_fmt(v)} | {v / floor:.2f} |")
    md += ["", "### Peak memory of one gradient (tracemalloc)", "",
           "| N | graphad adjoint | graphad direct | NumPy floor |", "|---|---|---|---|"]
    md += [f"| {r['n']} | {_mb(r['graphad adjoint'])} | {_mb(r['graphad direct'])} | "
           f"{_mb(r['numpy'])} |" for r in mem]
    return "\n".join(md)


def targets(times, mem):
    """Issue 11: adjoint memory flat in N, direct <= 1.5x and adjoint <= 3x the NumPy floor,
    both ahead of torchdiffeq's."""
    floor = times["numpy"]
    direct = min(times["graphad direct"], times["graphad direct compiled"])
    out = {"adjoint memory 10N / N": {"ratio": mem[-1]["graphad adjoint"] /
                                      mem[0]["graphad adjoint"], "target": 1.5},
           "direct / NumPy": {"ratio": direct / floor, "target": 1.5},
           "adjoint / NumPy": {"ratio": times["graphad adjoint"] / floor, "target": 3.0}}
    if "torchdiffeq adjoint" in times:
        out["adjoint / torchdiffeq adjoint"] = {
            "ratio": times["graphad adjoint"] / times["torchdiffeq adjoint"], "target": 1.0}
        out["direct / torchdiffeq direct"] = {
            "ratio": direct / times["torchdiffeq direct"], "target": 1.0}
    for v in out.values():
        v["met"] = v["ratio"] <= v["target"]
    return out


def run(quick=False, out="bench/out"):
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1")
    from threadpoolctl import threadpool_limits
    frameworks = _frameworks()
    n = 200 if quick else 1000
    budget = 0.3 if quick else 2.0
    t0 = time.perf_counter()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity:
        os.sched_setaffinity(0, {max(affinity)})
    try:
        with threadpool_limits(1):
            times = bench(n, budget, frameworks)
            mem = memory((n, 10 * n))
    finally:
        if affinity:
            os.sched_setaffinity(0, affinity)
    result = {"n": n, "times": times, "memory": mem, "targets": targets(times, mem),
              "quick": quick, "frameworks": frameworks, "numpy": np.__version__,
              "seconds": time.perf_counter() - t0}
    for name in frameworks:
        result[name] = __import__(name).__version__
    md = tables(n, times, mem)
    md += "\n\n### Targets\n\n" + "\n".join(
        f"- {k}: {v['ratio']:.2f} (target <= {v['target']}) {'met' if v['met'] else 'MISSED'}"
        for k, v in result["targets"].items())
    md += (f"\n\nFrameworks: {', '.join(f'{k} {result[k]}' for k in frameworks) or 'none'}.\n")
    from graphad.__main__ import bench_write
    bench_write(out, "odeint", md, result)
    return result


if __name__ == "__main__":
    from graphad.__main__ import bench_script
    sys.exit(bench_script(run, __doc__, "N = 200 steps, shorter timings"))
