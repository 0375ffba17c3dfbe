"""Forward against reverse mode: the Jacobian of f(x) = tanh(W2 tanh(W1 x)), hidden width 256,
over the n x m grid."""
import numpy as np

import graphad as ga
from graphad.bench import floors
from graphad.bench._timing import fmt_time
from graphad.bench.peers import numpy_hand

NAME = "jacobian"
TITLE = "forward vs reverse Jacobians of tanh(W2 tanh(W1 x)), hidden width 256"
DESCRIPTION = """
f: R^n -> R^m. graphad's jacfwd is one forward sweep carrying n tangents, jacrev one reverse sweep
carrying m cotangents; the better of the two counts, as for every peer (JAX eager and jit,
torch.func, HIPS autograd's jacobian). The floor: the two matrix-vector products of one
evaluation and the one m x 256 x n product that forms the Jacobian.
"""
HIDDEN = 256


def problem(n, m, dtype="float64", seed=0):
    rng = np.random.default_rng(seed + 1000 * n + m)
    return {"W1": (rng.standard_normal((HIDDEN, n)) / np.sqrt(n)).astype(dtype),
            "W2": (rng.standard_normal((m, HIDDEN)) / np.sqrt(HIDDEN)).astype(dtype),
            "x": rng.standard_normal(n).astype(dtype)}


def graphad_cases(p):
    W1, W2, x = p["W1"], p["W2"], p["x"]

    def f(x):
        return ga.tanh(W2 @ ga.tanh(W1 @ x))
    jf, jr = ga.jacfwd(f), ga.jacrev(f)
    n, m = W1.shape[1], W2.shape[0]
    eye_n, eye_m = np.eye(n, dtype=x.dtype), np.eye(m, dtype=x.dtype)

    def jvp_loop():
        return np.stack([ga.jvp(f, (x,), (eye_n[i],))[1] for i in range(n)], axis=-1)

    def vjp_loop():
        _, pull = ga.vjp(f, x)
        return np.stack([pull(eye_m[j])[0] for j in range(m)])
    return {"eval": lambda: f(x), "jacfwd": lambda: jf(x), "jacrev": lambda: jr(x),
            "jvp_loop": jvp_loop, "vjp_loop": vjp_loop}


def sizes(ctx):
    return (1, 10) if ctx.tiny else ((1, 10, 100) if ctx.quick else (1, 10, 100, 1000))


def units(ctx):
    return len(sizes(ctx)) ** 2


def _np(a):
    return np.asarray(a.detach() if hasattr(a, "detach") else a)


def run(ctx):
    loops = []
    for n in sizes(ctx):
        for m in sizes(ctx):
            p = problem(n, m)
            g = graphad_cases(p)
            cases = {"graphad jacfwd": g["jacfwd"], "graphad jacrev": g["jacrev"],
                     "eval": g["eval"], "NumPy by hand": numpy_hand.jacobian(p)["jac"],
                     "GEMMs alone": floors.jacobian_gemms(p)}
            roles = {"graphad jacfwd": "graphad", "graphad jacrev": "graphad",
                     "eval": "unit", "NumPy by hand": "hand", "GEMMs alone": "floor"}
            jx = ctx.peer("jax_xla")
            if jx is not None:
                for jit in (False, True):
                    for k, fn in jx.jacobian(p, jit).items():
                        cases[f"JAX{' jit' if jit else ''} {k}"] = fn
            tf = ctx.peer("torch_func")
            if tf is not None:
                for k, fn in tf.jacobian(p).items():
                    cases[f"torch.func {k}"] = fn
            ag = ctx.peer("hips_autograd")
            if ag is not None and m <= 100:          # m reverse sweeps, one by one
                cases["HIPS autograd jacobian"] = ag.jacobian(p)["jacobian"]
            for k in cases:
                roles.setdefault(k, "peer")
            J = cases["NumPy by hand"]()
            for k, fn in cases.items():
                if roles[k] in ("graphad", "peer"):
                    got = _np(fn()).reshape(J.shape)
                    if not np.allclose(got, J, rtol=1e-9, atol=1e-11):
                        raise AssertionError(f"jacobian: {k} disagrees at n={n}, m={m}")
            pt = ctx.point(f"n={n} m={m}", ctx.measure(cases), roles, {"n": n, "m": m})
            # the unvectorized way, n jvps / m vjps, where it is affordable (timed on its own)
            row = {"n": n, "m": m}
            lim = 10 if ctx.tiny else 100
            more = {k: g[k] for k, c in (("jvp_loop", n), ("vjp_loop", m)) if c <= lim}
            if more:
                t = ctx.measure(more, rounds=3)
                row.update({k: v.median for k, v in t.items()})
            row.update({k: pt.median(k) for k in ("eval", "graphad jacfwd", "graphad jacrev")})
            loops.append(row)
            ctx.step(f"n={n} m={m}")
    return {"loops": loops}


def _best(pt, prefix):
    ks = [k for k in pt.timings if k.startswith(prefix)]
    return min((pt.median(k) for k in ks), default=None)


def report(ctx, points, extra):
    lines = ["Cost in evaluations of f, and the best of each engine's two modes:", "",
             "| n | m | eval | jacfwd / eval | jacrev / eval | n jvps / eval | m vjps / eval | "
             "JAX eager | JAX jit | torch.func | HIPS autograd |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for pt, row in zip(points, extra["loops"]):
        e = row["eval"]
        r = lambda k: "n/a" if row.get(k) is None else f"{row[k] / e:.1f}"  # noqa: E731
        jax_eager = min((pt.median(k) for k in ("JAX jacfwd", "JAX jacrev") if k in pt.timings),
                        default=None)
        lines.append(f"| {row['n']} | {row['m']} | {fmt_time(e)} | {r('graphad jacfwd')} | "
                     f"{r('graphad jacrev')} | {r('jvp_loop')} | {r('vjp_loop')} | "
                     f"{fmt_time(jax_eager)} | {fmt_time(_best(pt, 'JAX jit'))} | "
                     f"{fmt_time(_best(pt, 'torch.func'))} | "
                     f"{fmt_time(_best(pt, 'HIPS autograd'))} |")
    return "\n".join(lines)


def plot(ctx, points, extra, out):
    import matplotlib.pyplot as plt
    rows = extra["loops"]
    ss = sorted({r["n"] for r in rows})
    by = {(r["n"], r["m"]): r for r in rows}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    fixed = ss[-1] if ss[-1] <= 100 else 100
    im = None
    for ax, vary in zip(axes[:1], ("grid",)):
        grid = np.array([[np.log2(by[(n, m)]["graphad jacfwd"] / by[(n, m)]["graphad jacrev"])
                          for n in ss] for m in ss])
        lim = max(1e-3, float(np.max(np.abs(grid))))
        im = ax.imshow(grid, origin="lower", cmap="coolwarm", vmin=-lim, vmax=lim)
        ax.set_xticks(range(len(ss)), ss)
        ax.set_yticks(range(len(ss)), ss)
        ax.set_xlabel("n (inputs)")
        ax.set_ylabel("m (outputs)")
        ax.set_title("log2(jacfwd / jacrev)\nblue: forward cheaper, red: reverse")
        for i in range(len(ss)):
            for j in range(len(ss)):
                ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=axes[0])
    ax = axes[1]
    pts = [pt for pt in points if pt.params["m"] == fixed]
    for key, style in (("graphad", "o-"), ("JAX jit", "^--"), ("JAX eager", "v:"),
                       ("torch.func", "s--")):
        xs, ys = [], []
        for pt in pts:
            ks = [k for k in pt.timings if k.startswith(key)
                  or (key == "JAX eager" and k in ("JAX jacfwd", "JAX jacrev"))]
            if ks:
                xs.append(pt.params["n"])
                ys.append(min(pt.median(k) for k in ks) / pt.median("GEMMs alone"))
        if xs:
            ax.plot(xs, ys, style, label=key + " (better mode)")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (inputs)")
    ax.set_ylabel("time / GEMMs alone")
    ax.set_title(f"Jacobian against the floor, m = {fixed}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = f"{out}/jacobian.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
