"""Per-op overhead: chains of cheap ops on scalars and on (1000,) arrays, an MLP's forward +
backward, and a long scalar chain (graph building plus the reverse sweep)."""
import numpy as np

import graphad as ga
from graphad.bench import floors
from graphad.bench.peers import numpy_hand, op_chain

NAME = "overhead"
TITLE = "per-op overhead: chains and a small MLP, forward + backward"
DESCRIPTION = """
The chain cycles y * 1.0001, sin, + 0.5, tanh; each point is one gradient of sum(chain(x)).
The MLP point is loss and gradients of a 64-128-128-10 ReLU MLP with cross-entropy at batch 128
(no update). The scalar chains' floor is the same arithmetic on Python floats; the MLP's floor is
its GEMMs alone.
"""


def graphad_chain(x0, n):
    def run():
        x = ga.tensor(x0, requires_grad=True)
        ga.sum(op_chain(x, n, ga.sin, ga.tanh)).backward()
        return x.grad
    return run


def make_mlp(sizes, batch, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    Ws = [(rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(dtype)
          for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(b, dtype) for b in sizes[1:]]
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    return {"Ws": Ws, "bs": bs, "X": X, "y": rng.integers(0, sizes[-1], batch)}


def graphad_mlp_grad(p):
    params = [ga.tensor(a, requires_grad=True) for pair in zip(p["Ws"], p["bs"]) for a in pair]
    X, y, rows = p["X"], p["y"], np.arange(len(p["y"]))

    def run():
        h, k = X, len(params) // 2
        for i in range(k):
            h = h @ params[2 * i] + params[2 * i + 1]
            if i < k - 1:
                h = ga.relu(h)
        loss = -ga.mean(ga.log_softmax(h, axis=1)[rows, y])
        return _backward(loss, params)
    return run


def _backward(loss, params):
    for q in params:
        q.grad = None
    loss.backward()
    return [q.grad for q in params]


def _cases(ctx, x0, n):
    cases = {"graphad": graphad_chain(x0, n), "NumPy by hand": numpy_hand.chain(x0, n)}
    roles = {"graphad": "graphad", "NumPy by hand": "hand"}
    if np.ndim(x0) == 0:
        cases["Python floats"] = floors.chain_floats(x0, n)
        roles["Python floats"] = "floor"
    for name in ("torch_eager", "hips_autograd"):
        peer = ctx.peer(name)
        if peer is not None:
            cases[peer.LABEL] = peer.chain(x0, n)
            roles[peer.LABEL] = "peer"
    ref = np.asarray(cases["NumPy by hand"]())
    for k, fn in cases.items():
        got = fn()
        got = got.detach().numpy() if hasattr(got, "detach") else np.asarray(got)
        if not np.allclose(got, ref, rtol=1e-10):
            raise AssertionError(f"overhead: {k}'s chain gradient disagrees with NumPy by hand")
    return cases, roles


def units(ctx):
    return 4


def run(ctx):
    n_ops = 100 if ctx.tiny else 1000
    for label, x0 in (("scalar chain, %d ops" % n_ops, 0.3),
                      ("(1000,) chain, %d ops" % n_ops, np.full(1000, 0.3))):
        cases, roles = _cases(ctx, x0, n_ops)
        ctx.point(label, ctx.measure(cases), roles, {"ops": n_ops, "shape": np.shape(x0)})
        ctx.step(label)

    sizes, batch = ((16, 32, 10), 16) if ctx.tiny else ((64, 128, 128, 10), 128)
    p = make_mlp(sizes, batch)
    cases = {"graphad": graphad_mlp_grad(p), "NumPy by hand": numpy_hand.mlp_grad(p),
             "GEMMs alone": floors.mlp_gemms(p)}
    roles = {"graphad": "graphad", "NumPy by hand": "hand", "GEMMs alone": "floor"}
    for name in ("torch_eager", "hips_autograd"):
        peer = ctx.peer(name)
        if peer is not None:
            cases[peer.LABEL] = peer.mlp_grad(p)
            roles[peer.LABEL] = "peer"
    jx = ctx.peer("jax_xla")
    if jx is not None:
        cases["JAX jit"] = jx.mlp_grad(p, jit=True)
        roles["JAX jit"] = "peer"
    _, want = numpy_hand.mlp_grad(p)()
    got = cases["graphad"]()
    assert np.allclose(np.asarray(got[0]), want[0][0], rtol=1e-8, atol=1e-12), \
        "overhead: graphad's MLP gradient disagrees with NumPy by hand"
    label = "MLP %s batch %d, loss + grads" % ("-".join(map(str, sizes)), batch)
    ctx.point(label, ctx.measure(cases), roles, {"sizes": sizes, "batch": batch})
    ctx.step("MLP")

    # the long chain: graph building and a sweep over many nodes (one call per round)
    n_long = 2000 if ctx.tiny else (10_000 if ctx.quick else 200_000)
    cases, roles = _cases(ctx, 0.3, n_long)
    ctx.point("scalar chain, %d ops" % n_long, ctx.measure(cases, budget=1e-9, rounds=3), roles,
              {"ops": n_long})
    ctx.step("long chain")
    return {}


def report(ctx, points, extra):
    lines = ["Per op (the chains' times divided by their op count):", "",
             "| point | " + " | ".join(sorted({k for p in points[:2] for k in p.timings})) + " |",
             "|---|" + "---:|" * len({k for p in points[:2] for k in p.timings})]
    keys = sorted({k for p in points[:2] for k in p.timings})
    for p in points[:2] + points[3:]:
        n = p.params["ops"]
        lines.append(f"| {p.label} | " + " | ".join(
            "n/a" if k not in p.timings else f"{p.timings[k].median / n * 1e9:.0f} ns"
            for k in keys) + " |")
    return "\n".join(lines)
