"""Gradients through ga.linalg: logdet, inv, solve and eigh, and an hvp through slogdet."""
import numpy as np

import graphad as ga
from graphad.bench._timing import fmt_ratio, fmt_time, ratio
from graphad.bench.peers import numpy_hand

NAME = "linalg"
TITLE = "gradients through ga.linalg (logdet, inv, solve, eigh)"
DESCRIPTION = """
Losses: slogdet(A)[1]; sum(C * inv(A)); sum(c * solve(A, b)) (gradients wrt A and b);
sum(c * w) + sum(C * V**2) for w, V = eigh(S). graphad's better of eager and ga.compile counts.
"""
KINDS = ("logdet", "inv", "solve", "eigh")


def problem(n, seed=0):
    rng = np.random.default_rng(seed)
    S = rng.standard_normal((n, n))
    return {"A": rng.standard_normal((n, n)) + n ** 0.5 * np.eye(n), "S": (S + S.T) / 2,
            "C": rng.standard_normal((n, n)), "b": rng.standard_normal(n),
            "c": rng.standard_normal(n), "V": rng.standard_normal((n, n))}


def graphad_cases(p, compiled=False):
    gl = ga.linalg
    C, c, b = p["C"], p["c"], p["b"]

    def eigh_loss(S):
        w, V = gl.eigh(S)
        return ga.sum(c * w) + ga.sum(C * V * V)
    gs = {"logdet": ga.grad(lambda A: gl.slogdet(A)[1]),
          "inv": ga.grad(lambda A: ga.sum(C * gl.inv(A))),
          "solve": ga.grad(lambda A, b: ga.sum(c * gl.solve(A, b)), argnums=(0, 1)),
          "eigh": ga.grad(eigh_loss)}
    if compiled:
        gs = {k: ga.compile(g) for k, g in gs.items()}
    return {"logdet": lambda: gs["logdet"](p["A"]), "inv": lambda: gs["inv"](p["A"]),
            "solve": lambda: gs["solve"](p["A"], b), "eigh": lambda: gs["eigh"](p["S"])}


def sizes(ctx):
    return (4,) if ctx.tiny else ((10, 100) if ctx.quick else (10, 100, 500))


def units(ctx):
    return len(sizes(ctx)) * (len(KINDS) + 1)


def _np(x):
    if isinstance(x, (tuple, list)):
        return [_np(v) for v in x]
    return [np.asarray(x.detach() if hasattr(x, "detach") else x, dtype=np.float64)]


def _flat(x):
    return [a for v in _np(x) for a in (v if isinstance(v, list) else [v])]


def run(ctx):
    hvp_rows = []
    for n in sizes(ctx):
        p = problem(n)
        sources = [("graphad eager", graphad_cases(p), "graphad"),
                   ("graphad compiled", graphad_cases(p, True), "graphad"),
                   ("NumPy by hand", numpy_hand.linalg(p), "hand")]
        te = ctx.peer("torch_eager")
        if te is not None:
            sources.append(("PyTorch eager", te.linalg(p), "peer"))
        jx = ctx.peer("jax_xla")
        if jx is not None:
            sources += [("JAX", jx.linalg(p, False), "peer"), ("JAX jit", jx.linalg(p, True),
                                                               "peer")]
        ag = ctx.peer("hips_autograd")
        if ag is not None:
            sources.append(("HIPS autograd", ag.linalg(p), "peer"))
        for kind in KINDS:
            cases = {who: cs[kind] for who, cs, _ in sources}
            roles = {who: role for who, _, role in sources}
            want = _flat(cases["NumPy by hand"]())
            for who, fn in cases.items():
                for a, b in zip(want, _flat(fn())):
                    if kind == "eigh":                # the symmetric part (autograd's is not)
                        b = (b + b.T) / 2
                    if not np.allclose(a, b, rtol=1e-6, atol=1e-8 * max(1.0, np.abs(a).max())):
                        raise AssertionError(f"linalg: {who} disagrees on {kind}, n={n}")
            ctx.point(f"{kind} n={n}", ctx.measure(cases), roles, {"n": n, "kind": kind})
            ctx.step(f"{kind} n={n}")
        f = lambda A: ga.linalg.slogdet(A)[1]      # noqa: E731
        g = ga.grad(f)
        t = ctx.measure({"grad": lambda: g(p["A"]),
                         "hvp": lambda: ga.hvp(f, (p["A"],), (p["V"],))})
        hvp_rows.append({"n": n, "grad": t["grad"].median, "hvp": t["hvp"].median,
                         "ratio": ratio(t["hvp"], t["grad"])})
        ctx.step(f"hvp n={n}")
    return {"hvp": hvp_rows}


def report(ctx, points, extra):
    lines = ["hvp through slogdet against one gradient:", "",
             "| n | grad | hvp | hvp / grad |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['n']} | {fmt_time(r['grad'])} | {fmt_time(r['hvp'])} | "
              f"{fmt_ratio(r['ratio'])} |" for r in extra["hvp"]]
    return "\n".join(lines)
