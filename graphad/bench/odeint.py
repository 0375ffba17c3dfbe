"""Gradients through ga.odeint: dy/dt = tanh(W y), y in R^64, classical RK4 with N steps on
[0, 1]; the loss <c, y(1)> and its gradient wrt W and y0."""
import tracemalloc

import numpy as np

import graphad as ga
from graphad.bench.peers import numpy_hand

NAME = "odeint"
TITLE = "ODE gradients: adjoint and direct backprop through RK4"
DESCRIPTION = """
graphad's adjoint (adjoint=True) and direct backprop (eager and ga.compile) against torchdiffeq
(odeint_adjoint and odeint, fixed-grid RK4) and JAX (RK4 in lax.scan, jit). Peak memory:
tracemalloc's peak during one gradient (Python-side allocations only, so graphad and NumPy) at N
and 10 N steps: the adjoint's should not grow with N.
"""
D = 64


def problem(seed=0):
    rng = np.random.default_rng(seed)
    return {"W": rng.standard_normal((D, D)) / np.sqrt(D), "y0": rng.standard_normal(D),
            "c": rng.standard_normal(D)}


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


def steps(ctx):
    return 10 if ctx.tiny else (100 if ctx.quick else 1000)


def units(ctx):
    return 2


def _peak(fn):
    fn()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(ctx):
    n, p = steps(ctx), problem()
    cases = {"graphad adjoint": graphad_grad(p, n, True),
             "graphad direct": graphad_grad(p, n, False),
             "graphad direct compiled": graphad_grad(p, n, False, compiled=True),
             "NumPy by hand": numpy_hand.odeint(p, n)}
    roles = {k: "graphad" for k in cases}
    roles["NumPy by hand"] = "hand"
    td = ctx.peer("torchdiffeq_peer")
    if td is not None:
        cases["torchdiffeq adjoint"] = td.odeint(p, n, True)
        cases["torchdiffeq direct"] = td.odeint(p, n, False)
    jx = ctx.peer("jax_xla")
    if jx is not None:
        cases["JAX jit direct"] = jx.odeint(p, n)
    for k in cases:
        roles.setdefault(k, "peer")
    want = cases["NumPy by hand"]()
    for k, fn in cases.items():
        for a, b in zip(want, fn()):
            b = np.asarray(b.detach() if hasattr(b, "detach") else b)
            if not np.allclose(a, b, rtol=1e-6, atol=1e-9 * np.abs(a).max()):
                raise AssertionError(f"odeint: {k} disagrees with NumPy by hand at N={n}")
    ctx.point(f"N={n} steps", ctx.measure(cases, rounds=max(3, ctx.rounds - 2)), roles,
              {"steps": n})
    ctx.step(f"N={n}")
    mem = []
    for nn in (n, 10 * n):
        row = {"steps": nn}
        for k, fn in (("graphad adjoint", graphad_grad(p, nn, True)),
                      ("graphad direct", graphad_grad(p, nn, False)),
                      ("NumPy by hand", numpy_hand.odeint(p, nn))):
            row[k] = _peak(fn)
        mem.append(row)
    ctx.step("memory")
    return {"memory": mem}


def report(ctx, points, extra):
    mb = lambda b: f"{b / 2 ** 20:.2f} MiB"   # noqa: E731
    lines = ["Peak memory of one gradient (tracemalloc):", "",
             "| N | graphad adjoint | graphad direct | NumPy by hand |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['steps']} | {mb(r['graphad adjoint'])} | {mb(r['graphad direct'])} | "
              f"{mb(r['NumPy by hand'])} |" for r in extra["memory"]]
    return "\n".join(lines)
