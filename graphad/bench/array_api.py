"""Per-call overhead of array functions on small arrays: var, tensordot, tril and cumsum."""
import numpy as np

import graphad as ga

NAME = "array_api"
TITLE = "per-call overhead of var, tensordot, tril, cumsum (8x8 float64)"
DESCRIPTION = """
Each case is a scalar loss: sum(var(x, axis=0, ddof=1)), sum(tensordot(a, b, 2) * c),
sum(tril(x, -1) * c), sum(cumsum(x, axis=1) * c). "forward" records the graph (the input requires
grad); "backward" adds the gradient. The NumPy by hand column is the NumPy forward alone (no
derivative): a lower bound for "forward", a yardstick for "backward".
"""
KINDS = ("var", "tensordot", "tril", "cumsum")


def problem(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((8, 8)), "c": rng.standard_normal((8, 8)),
            "a": rng.standard_normal((8, 4, 4)), "b": rng.standard_normal((4, 4, 8))}


def losses(m, p):
    """The four losses written once for a NumPy-like module m (graphad, NumPy)."""
    c = p["c"]
    return {"var": (lambda x: m.sum(m.var(x, axis=0, ddof=1)), "x"),
            "tensordot": (lambda a: m.sum(m.tensordot(a, p["b"], 2) * c), "a"),
            "tril": (lambda x: m.sum(m.tril(x, -1) * c), "x"),
            "cumsum": (lambda x: m.sum(m.cumsum(x, axis=1) * c), "x")}


def graphad_cases(p):
    out = {}
    for k, (f, arg) in losses(ga, p).items():
        x, g = p[arg], ga.grad(f)
        out[k] = {"forward": lambda f=f, x=x: f(ga.tensor(x, requires_grad=True)),
                  "backward": lambda g=g, x=x: g(x)}
    return out


def units(ctx):
    return len(KINDS)


def run(ctx):
    p = problem()
    sources = [("graphad", graphad_cases(p))]
    for name in ("torch_eager", "hips_autograd"):
        peer = ctx.peer(name)
        if peer is not None:
            sources.append((peer.LABEL, peer.array_api(p)))
    fwd = {k: (lambda f=f, x=p[arg]: f(x)) for k, (f, arg) in losses(np, p).items()}
    for kind in KINDS:
        want_v = fwd[kind]()
        want_g = graphad_cases(p)[kind]["backward"]()
        for who, cs in sources[1:]:
            v = cs[kind]["forward"]()
            v = float(v.detach()) if hasattr(v, "detach") else float(v)
            g = cs[kind]["backward"]()
            g = g.numpy() if hasattr(g, "numpy") else np.asarray(g)
            assert np.isclose(v, want_v, rtol=1e-10) and np.allclose(g, want_g, rtol=1e-10,
                                                                       atol=1e-12), (who, kind)
        for phase in ("forward", "backward"):
            cases = {f"{who}": cs[kind][phase] for who, cs in sources}
            roles = {who: ("graphad" if who == "graphad" else "peer") for who, _ in sources}
            cases["NumPy forward"], roles["NumPy forward"] = fwd[kind], "hand"
            ctx.point(f"{kind} {phase}", ctx.measure(cases), roles,
                      {"kind": kind, "phase": phase})
        ctx.step(kind)
    return {}
