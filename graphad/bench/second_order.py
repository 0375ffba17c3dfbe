"""Second order: gradient, Hessian-vector product and Hessian of
f(x) = sum(log(1 + exp(A x))) + |x|^2 / 2, A 200 x 500."""
import numpy as np

import graphad as ga
from graphad.bench import floors
from graphad.bench._timing import fmt_ratio, ratio
from graphad.bench.peers import numpy_hand

NAME = "second_order"
TITLE = "gradient, hvp and Hessian of sum(log(1 + exp(A x))) + |x|^2/2"
DESCRIPTION = """
All quantities are timed in the same interleaved rounds, so hvp / grad is a per-round ratio. The
Hessian's floor is its one GEMM A^T (D A).
"""


def problem(n=500, k=200, dtype="float64"):
    rng = np.random.default_rng(7)
    return {"A": (rng.standard_normal((k, n)) / np.sqrt(n)).astype(dtype),
            "x": rng.standard_normal(n).astype(dtype), "v": rng.standard_normal(n).astype(dtype)}


def graphad_cases(p, compiled=False):
    A, x, v = p["A"], p["x"], p["v"]

    def f(x):
        return ga.sum(ga.log(1 + ga.exp(A @ x))) + 0.5 * (x @ x)
    g, h = ga.grad(f), ga.hessian(f)
    if not compiled:
        return {"grad": lambda: g(x), "hvp": lambda: ga.hvp(f, (x,), (v,))[1],
                "hessian": lambda: h(x)}
    g, h = ga.compile(g), ga.compile(h)
    hv = ga.compile(lambda x, v: ga.hvp(f, (x,), (v,)))
    return {"grad": lambda: g(x), "hvp": lambda: hv(x, v)[1], "hessian": lambda: h(x)}


def units(ctx):
    return 1


def _np(a):
    return np.asarray(a.detach() if hasattr(a, "detach") else a)


def run(ctx):
    p = problem(50, 20) if ctx.tiny else problem()
    sources = [("graphad", graphad_cases(p), "graphad"),
               ("graphad compiled", graphad_cases(p, True), "graphad"),
               ("NumPy by hand", numpy_hand.second_order(p), "hand")]
    jx = ctx.peer("jax_xla")
    if jx is not None:
        sources += [("JAX jit", jx.second_order(p, True), "peer"),
                    ("JAX", jx.second_order(p, False), "peer")]
    tf = ctx.peer("torch_func")
    if tf is not None:
        sources.append(("torch.func", tf.second_order(p), "peer"))
    ag = ctx.peer("hips_autograd")
    if ag is not None:
        sources.append(("HIPS autograd", ag.second_order(p), "peer"))
    cases, roles, of = {}, {}, {}
    for who, cs, role in sources:
        for q, fn in cs.items():
            cases[f"{who} {q}"], roles[f"{who} {q}"], of[f"{who} {q}"] = fn, role, q
    cases["GEMM alone hessian"], roles["GEMM alone hessian"] = floors.hessian_gemm(p), "floor"
    of["GEMM alone hessian"] = "hessian"
    for k, fn in cases.items():
        if of[k] == "hvp with grad":                     # (grad, Hv): both checked
            got = fn()
            assert np.allclose(_np(got[0]), cases["NumPy by hand grad"](), rtol=1e-9,
                               atol=1e-11) and \
                np.allclose(_np(got[1]), cases["NumPy by hand hvp"](), rtol=1e-9, atol=1e-11), k
        elif roles[k] != "floor":
            want = cases[f"NumPy by hand {of[k]}"]()
            assert np.allclose(_np(fn()), want, rtol=1e-9, atol=1e-11), f"second_order: {k}"
    t = ctx.measure(cases)
    for q in ("grad", "hvp", "hessian"):
        # the hvp point holds both JAX cases: Hv alone, and (grad, Hv) as ga.hvp returns
        ks = [k for k in cases if of[k] == q or q == "hvp" and of[k] == "hvp with grad"]
        ctx.point(q, {k: t[k] for k in ks}, {k: roles[k] for k in ks}, {"n": len(p["x"])})
    ctx.step("grad, hvp, Hessian")
    hvp_grad = ratio(t["graphad hvp"], t["graphad grad"])
    out = {"hvp_over_grad": {"median": hvp_grad[0], "p25": hvp_grad[1][0],
                             "p75": hvp_grad[1][1], "target": 5.0,
                             "graphad": "graphad hvp / graphad grad"}}
    # issue 14's targets against JAX jit: Hessian <= 1.0, hvp <= 1.5 (judged against JAX's Hv
    # alone, as the issue measured it, and against the same outputs as ga.hvp's), for graphad's
    # better of eager and compiled (JAX's is compiled), and for eager hvp alone
    best = {q: min(("graphad " + q, "graphad compiled " + q), key=lambda k: t[k].median)
            for q in ("hvp", "hessian")}
    for name, ours, theirs, target in (
            ("hessian_over_jax_jit", best["hessian"], "JAX jit hessian", 1.0),
            ("hvp_over_jax_jit_hv_alone", best["hvp"], "JAX jit hvp", 1.5),
            ("hvp_over_jax_jit_same_outputs", best["hvp"], "JAX jit hvp with grad", 1.5),
            ("eager_hvp_over_jax_jit_hv_alone", "graphad hvp", "JAX jit hvp", 1.5)):
        if theirs in t:
            r = ratio(t[ours], t[theirs])
            out[name] = {"median": r[0], "p25": r[1][0], "p75": r[1][1], "target": target,
                         "graphad": ours}
    return out


def verdict(r):
    """A target judged on the median of rounds; 'within noise' when the spread straddles it."""
    if r["p75"] <= r["target"]:
        return "met"
    if r["p25"] > r["target"]:
        return "missed"
    return "met (median), within noise" if r["median"] <= r["target"] else \
        "missed (median), within noise"


def report(ctx, points, extra):
    lines = ["| target | graphad | median (p25-p75) | target | verdict |",
             "|---|---|---:|---:|---|"]
    for k, r in extra.items():
        lines.append(f"| {k.replace('_', ' ')} | {r['graphad']} | "
                     f"{fmt_ratio((r['median'], (r['p25'], r['p75'])))} | <= {r['target']} | "
                     f"{verdict(r)} |")
    return "\n".join(lines)
