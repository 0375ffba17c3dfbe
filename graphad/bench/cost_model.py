"""The cost model of automatic differentiation, measured: for f: R^n -> R^m,
cost(jacrev) / cost(f) grows with m (one reverse sweep per output) and cost(jacfwd) / cost(f)
with n (one tangent per input); and the cheap gradient principle: a scalar loss's gradient
costs a small constant times the loss (about 2 to 4), whatever the number of parameters."""
import numpy as np

import graphad as ga
from graphad.bench._timing import ratio
from graphad.bench.jacobian import graphad_cases, problem
from graphad.bench.overhead import graphad_mlp_grad, make_mlp
from graphad.bench.peers import numpy_hand

NAME = "cost_model"
TITLE = "the cost model: Jacobian cost against n and m, gradient cost against the loss's"
DESCRIPTION = """
Ratios per round of graphad's time to its own evaluation of f (no graph recorded), medians over
rounds (p25-p75). f is the jacobian workload's tanh(W2 tanh(W1 x)) with the other dimension at
100; the MLP is D-D-D-10 at batch 64, its parameter count growing as D^2. NumPy by hand's
ratio (its gradient against its forward) is what the arithmetic alone gives.
"""
RATIO_TABLE = False


def dims(ctx):
    if ctx.tiny:
        return (1, 8), (8, 16)
    if ctx.quick:
        return (1, 4, 16, 64, 256), (16, 64, 256)
    return (1, 4, 16, 64, 256, 1024), (16, 64, 256, 1024)


def units(ctx):
    a, b = dims(ctx)
    return 2 * len(a) + len(b)


def _r(a, b):
    med, (lo, hi) = ratio(a, b)
    return {"median": med, "p25": lo, "p75": hi}


def _forward(p):
    params = [a for pair in zip(p["Ws"], p["bs"]) for a in pair]
    X, y, rows = p["X"], p["y"], np.arange(len(p["y"]))

    def run():
        with ga.no_grad():
            h, k = X, len(params) // 2
            for i in range(k):
                h = h @ params[2 * i] + params[2 * i + 1]
                if i < k - 1:
                    h = ga.relu(h)
            return -ga.mean(ga.log_softmax(h, axis=1)[rows, y])
    return run


def _np_forward(p):
    Ws, bs, X, y = p["Ws"], p["bs"], p["X"], p["y"]

    def run():
        h = X
        for i, (W, b) in enumerate(zip(Ws, bs)):
            h = h @ W + b
            if i < len(Ws) - 1:
                h = np.maximum(h, 0)
        z = h - h.max(axis=1, keepdims=True)
        return np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y])
    return run


def run(ctx):
    sweep, widths = dims(ctx)
    other = 8 if ctx.tiny else 100
    jac = []
    for mode, vary in (("jacrev", "m"), ("jacfwd", "n")):
        for s in sweep:
            n, m = (other, s) if vary == "m" else (s, other)
            g = graphad_cases(problem(n, m))
            t = ctx.measure({"eval": g["eval"], mode: g[mode]})
            jac.append({"mode": mode, "n": n, "m": m, "eval": t["eval"].median,
                        "time": t[mode].median, "ratio": _r(t[mode], t["eval"])})
            ctx.step(f"{mode} {vary}={s}")
    mlp = []
    for d in widths:
        p = make_mlp((d, d, d, 10), 64)
        cases = {"f": _forward(p), "grad": graphad_mlp_grad(p),
                 "NumPy f": _np_forward(p), "NumPy grad": numpy_hand.mlp_grad(p)}
        assert np.isclose(float(cases["f"]().item()), cases["NumPy f"](), rtol=1e-10)
        t = ctx.measure(cases)
        mlp.append({"width": d, "params": sum(W.size + b.size for W, b in zip(p["Ws"], p["bs"])),
                    "f": t["f"].median, "grad": t["grad"].median,
                    "ratio": _r(t["grad"], t["f"]), "numpy_ratio": _r(t["NumPy grad"],
                                                                      t["NumPy f"])})
        ctx.step(f"MLP width {d}")
    return {"jacobian": jac, "mlp": mlp}


def _f(r):
    return f"{r['median']:.2f} ({r['p25']:.2f}-{r['p75']:.2f})"


def report(ctx, points, extra):
    lines = ["| mode | n | m | cost / cost(f) |", "|---|---:|---:|---:|"]
    lines += [f"| {r['mode']} | {r['n']} | {r['m']} | {_f(r['ratio'])} |"
              for r in extra["jacobian"]]
    lines += ["", "Cheap gradient principle, MLP D-D-D-10 at batch 64:", "",
              "| D | parameters | graphad grad / f | NumPy by hand grad / f |",
              "|---:|---:|---:|---:|"]
    lines += [f"| {r['width']} | {r['params']} | {_f(r['ratio'])} | {_f(r['numpy_ratio'])} |"
              for r in extra["mlp"]]
    return "\n".join(lines)


def plot(ctx, points, extra, out):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    for mode, vary, style in (("jacrev", "m", "s-"), ("jacfwd", "n", "o-")):
        rs = [r for r in extra["jacobian"] if r["mode"] == mode]
        xs = [r[vary] for r in rs]
        med = [r["ratio"]["median"] for r in rs]
        err = [[m - r["ratio"]["p25"] for m, r in zip(med, rs)],
               [r["ratio"]["p75"] - m for m, r in zip(med, rs)]]
        ax.errorbar(xs, med, yerr=err, fmt=style, capsize=3,
                    label=f"cost({mode}) / cost(f) against {vary}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("m (for jacrev) or n (for jacfwd); the other is fixed")
    ax.set_ylabel("cost / one evaluation of f")
    ax.set_title("Jacobian cost in evaluations of f")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1]
    for key, label, style in (("ratio", "graphad", "o-"), ("numpy_ratio", "NumPy by hand", "s--")):
        xs = [r["params"] for r in extra["mlp"]]
        med = [r[key]["median"] for r in extra["mlp"]]
        err = [[m - r[key]["p25"] for m, r in zip(med, extra["mlp"])],
               [r[key]["p75"] - m for m, r in zip(med, extra["mlp"])]]
        ax.errorbar(xs, med, yerr=err, fmt=style, capsize=3, label=label)
    ax.axhspan(2, 4, color="green", alpha=0.1, label="2-4 (cheap gradient principle)")
    ax.set_xscale("log")
    ax.set_ylim(0, max(6, 1.2 * max(r["ratio"]["p75"] for r in extra["mlp"])))
    ax.set_xlabel("parameters")
    ax.set_ylabel("cost(gradient) / cost(loss)")
    ax.set_title("MLP: gradient against loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = f"{out}/cost_model.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
