"""Forward vs reverse mode: what a Jacobian costs, as the input and output sizes grow.

For f: R^n -> R^m, f(x) = tanh(W2 tanh(W1 x)) with a hidden width of 256, over n, m in
{1, 10, 100, 1000}, the time of
  - one evaluation of f (the unit every cost is measured in),
  - ga.jacfwd (ONE forward sweep carrying n tangents) and ga.jacrev (ONE reverse sweep
    carrying m cotangents),
  - n separate jvp calls and m separate vjp sweeps (the unvectorized way),
  - JAX (jax.jacfwd / jax.jacrev, eager and jit, compile time excluded) and torch.func
    (jacfwd / jacrev) when they are importable;
then the Hessian-vector product against one gradient, and the Hessian of
sum(log(1 + exp(A x))) + |x|^2/2 with A 200x500, beside jax.jit(jax.hessian) and
torch.func.hessian.  Everything runs with one BLAS thread (threadpoolctl; JAX/XLA and PyTorch
are asked for one thread too), and every ratio comes from the same run.

Writes fwd_vs_rev.md (tables), fwd_vs_rev.json (all timings) and fwd_vs_rev.png (cost
relative to one evaluation as n and m grow: forward grows with n, reverse with m, and they
cross at n = m) into --out.

    python bench/fwd_vs_rev.py [--quick] [--out bench/out]
    python -m graphad bench            (calls run())

GEMM-bound points measure the BLAS as much as graphad: graphad multiplies with the OpenBLAS that
SciPy ships, XLA with its own kernels.  The BLAS in use (and its kernel family) is recorded in the
output; where OpenBLAS picks a narrower kernel than the CPU has (an AVX-512 machine run with
Haswell kernels), OPENBLAS_CORETYPE=SkylakeX set before Python starts selects the wider one.
"""
import os
import sys
import time
import timeit

import numpy as np

HIDDEN = 256
SIZES = (1, 10, 100, 1000)


# ----------------------------------------------------------------------------------------------
# timing

def _calibrate(fn, budget):
    """Calls per batch, so that one batch takes about budget/5 seconds."""
    fn()                                             # warm up (and compile, for jit)
    t = timeit.Timer(fn)
    number = 1
    while True:
        dt = t.timeit(number)
        if dt >= budget / 5 or number >= 1 << 16:
            return number
        number = max(2 * number, int(1.2 * number * (budget / 5) / max(dt, 1e-9)))


def _time(fn, budget):
    """Best time per call over five batches (the usual timeit discipline)."""
    number = _calibrate(fn, budget)
    return min(timeit.Timer(fn).repeat(5, number)) / number


def _time_interleaved(cases, budget, rounds=5):
    """Best time per call of each case, the cases timed in turn, round after round: the
    frameworks compared at one grid point see the same machine (this one is shared)."""
    timers = {k: (timeit.Timer(fn), _calibrate(fn, budget)) for k, fn in cases.items()}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for k, (timer, number) in timers.items():
            best[k] = min(best[k], timer.timeit(number) / number)
    return best


def _fmt(t):
    if t is None:
        return "n/a"
    return f"{t * 1e6:.0f} us" if t < 1e-3 else (f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s")


# ----------------------------------------------------------------------------------------------
# the test function in each framework

def make_weights(n, m, seed=0):
    rng = np.random.default_rng(seed + 1000 * n + m)
    W1 = rng.standard_normal((HIDDEN, n)) / np.sqrt(n)
    W2 = rng.standard_normal((m, HIDDEN)) / np.sqrt(HIDDEN)
    x = rng.standard_normal(n)
    return W1, W2, x


def graphad_cases(W1, W2, x):
    import graphad as ga

    def f(x):
        return ga.tanh(W2 @ ga.tanh(W1 @ x))

    n, m = W1.shape[1], W2.shape[0]
    eye_n, eye_m = np.eye(n), np.eye(m)

    def jvp_loop():
        return np.stack([ga.jvp(f, (x,), (eye_n[i],))[1] for i in range(n)], axis=-1)

    def vjp_loop():
        _, pull = ga.vjp(f, x)
        return np.stack([pull(eye_m[j])[0] for j in range(m)])

    # the transforms are built once, as jax.jit(jax.jacfwd(f)) is (building one is cheap too)
    jf, jr = ga.jacfwd(f), ga.jacrev(f)
    return {"eval": lambda: f(x),
            "jacfwd": lambda: jf(x),
            "jacrev": lambda: jr(x),
            "jvp_loop": jvp_loop,
            "vjp_loop": vjp_loop}


def jax_cases(W1, W2, x):
    import jax
    import jax.numpy as jnp
    W1j, W2j, xj = jnp.asarray(W1), jnp.asarray(W2), jnp.asarray(x)

    def f(x):
        return jnp.tanh(W2j @ jnp.tanh(W1j @ x))

    block = lambda g: (lambda: g(xj).block_until_ready())
    jf, jr = jax.jacfwd(f), jax.jacrev(f)
    return {"jax_jacfwd": block(jf), "jax_jacrev": block(jr),
            "jax_jit_jacfwd": block(jax.jit(jf)), "jax_jit_jacrev": block(jax.jit(jr))}


def torch_cases(W1, W2, x):
    import torch
    import torch.func
    W1t, W2t, xt = torch.from_numpy(W1), torch.from_numpy(W2), torch.from_numpy(x)

    def f(x):
        return torch.tanh(W2t @ torch.tanh(W1t @ x))

    jf, jr = torch.func.jacfwd(f), torch.func.jacrev(f)
    return {"torch_jacfwd": lambda: jf(xt), "torch_jacrev": lambda: jr(xt)}


def _check(cases, J_true, keys, to_np):
    for k in keys:
        if k in cases:
            got = to_np(cases[k]())
            if not np.allclose(got, J_true, rtol=1e-9, atol=1e-11):
                raise AssertionError(f"{k} disagrees with the analytic Jacobian")


def analytic_jacobian(W1, W2, x):
    h = np.tanh(W1 @ x)
    y = np.tanh(W2 @ h)
    return (1 - y ** 2)[:, None] * (W2 * (1 - h ** 2)[None, :]) @ W1


# ----------------------------------------------------------------------------------------------
# the grid

def bench_grid(sizes, budget, frameworks, loops_upto):
    rows = []
    for n in sizes:
        for m in sizes:
            W1, W2, x = make_weights(n, m)
            J = analytic_jacobian(W1, W2, x)
            row = {"n": n, "m": m}
            cases = graphad_cases(W1, W2, x)
            _check(cases, J, ["jacfwd", "jacrev"], np.asarray)
            timed = {k: cases[k] for k in ("eval", "jacfwd", "jacrev")}
            if "jax" in frameworks:
                jc = jax_cases(W1, W2, x)
                _check(jc, J, list(jc), np.asarray)
                timed.update(jc)
            if "torch" in frameworks:
                tc = torch_cases(W1, W2, x)
                _check(tc, J, list(tc), lambda t: t.numpy())
                timed.update(tc)
            row.update(_time_interleaved(timed, budget))
            # the loops are n (m) sweeps: time them where that is affordable
            row["jvp_loop"] = _time(cases["jvp_loop"], budget) if n <= loops_upto else None
            row["vjp_loop"] = _time(cases["vjp_loop"], budget) if m <= loops_upto else None
            rows.append(row)
            print(f"  n={n:5d} m={m:5d}  eval {_fmt(row['eval'])}  jacfwd {_fmt(row['jacfwd'])}"
                  f"  jacrev {_fmt(row['jacrev'])}", file=sys.stderr, flush=True)
    return rows


# ----------------------------------------------------------------------------------------------
# second order: hvp vs gradient, and the Hessian of a logistic-type loss

def bench_second_order(budget, frameworks):
    import graphad as ga
    rng = np.random.default_rng(7)
    A = rng.standard_normal((200, 500)) / np.sqrt(500)
    x, v = rng.standard_normal(500), rng.standard_normal(500)

    def f(x):
        return ga.sum(ga.log(1 + ga.exp(A @ x))) + 0.5 * (x @ x)

    s = 1 / (1 + np.exp(-(A @ x)))
    H_true = A.T @ (s * (1 - s) * A.T).T + np.eye(500)
    g_true = A.T @ s + x
    H = ga.hessian(f)(x)
    assert np.allclose(H, H_true, rtol=1e-10, atol=1e-12), "graphad Hessian is wrong"
    g, Hv = ga.hvp(f, (x,), (v,))
    assert np.allclose(Hv, H_true @ v, rtol=1e-10, atol=1e-12), "graphad hvp is wrong"
    assert np.allclose(g, g_true, rtol=1e-10, atol=1e-12)
    grad_f, hess_f = ga.grad(f), ga.hessian(f)
    cases = {"grad": lambda: grad_f(x), "hvp": lambda: ga.hvp(f, (x,), (v,)),
             "hessian": lambda: hess_f(x)}
    if "jax" in frameworks:
        import jax
        import jax.numpy as jnp
        Aj, xj, vj = jnp.asarray(A), jnp.asarray(x), jnp.asarray(v)

        def fj(x):
            return jnp.sum(jnp.log(1 + jnp.exp(Aj @ x))) + 0.5 * (x @ x)
        hess = jax.jit(jax.hessian(fj))
        gradj = jax.jit(jax.grad(fj))
        hvpj = jax.jit(lambda x, v: jax.jvp(jax.grad(fj), (x,), (v,)))
        assert np.allclose(np.asarray(hess(xj)), H_true, rtol=1e-10, atol=1e-12)
        cases["jax_jit_hessian"] = lambda: hess(xj).block_until_ready()
        cases["jax_jit_grad"] = lambda: gradj(xj).block_until_ready()
        cases["jax_jit_hvp"] = lambda: hvpj(xj, vj)[1].block_until_ready()
        cases["jax_hessian"] = lambda: jax.hessian(fj)(xj).block_until_ready()
    if "torch" in frameworks:
        import torch
        import torch.func
        At, xt = torch.from_numpy(A), torch.from_numpy(x)

        def ft(x):
            return torch.sum(torch.log(1 + torch.exp(At @ x))) + 0.5 * (x @ x)
        ht = torch.func.hessian(ft)
        assert np.allclose(ht(xt).numpy(), H_true, rtol=1e-10, atol=1e-12)
        cases["torch_hessian"] = lambda: ht(xt)
    return _time_interleaved(cases, budget)


# ----------------------------------------------------------------------------------------------
# report

def _ratio(a, b):
    return None if a is None or b is None else a / b


def _r(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def tables(rows, second, frameworks):
    lines = ["### Cost of the Jacobian of tanh(W2 tanh(W1 x)), hidden width 256, one BLAS thread",
             "", "Times per call; `/eval` is the cost in evaluations of f.", "",
             "| n | m | eval | jacfwd | /eval | jacrev | /eval | n jvps | /eval | m vjps | /eval |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        e = r["eval"]
        lines.append(
            f"| {r['n']} | {r['m']} | {_fmt(e)} | {_fmt(r['jacfwd'])} | {r['jacfwd'] / e:.1f} | "
            f"{_fmt(r['jacrev'])} | {r['jacrev'] / e:.1f} | {_fmt(r['jvp_loop'])} | "
            f"{_r(_ratio(r['jvp_loop'], e), 1)} | {_fmt(r['vjp_loop'])} | "
            f"{_r(_ratio(r['vjp_loop'], e), 1)} |")
    lines += ["", "### graphad in the cheaper mode against JAX and torch.func", "",
              "`best` is the cheaper of jacfwd and jacrev in each framework; targets: "
              "graphad/JAX-jit <= 1.5 and graphad/torch.func < 1.", "",
              "| n | m | graphad mode | graphad | JAX eager | JAX jit | torch.func | "
              "graphad / JAX jit | graphad / torch.func | jacrev / m vjps |",
              "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ga_best = min(r["jacfwd"], r["jacrev"])
        mode = "fwd" if r["jacfwd"] <= r["jacrev"] else "rev"
        jx = min(r["jax_jacfwd"], r["jax_jacrev"]) if "jax_jacfwd" in r else None
        jj = min(r["jax_jit_jacfwd"], r["jax_jit_jacrev"]) if "jax_jit_jacfwd" in r else None
        tt = min(r["torch_jacfwd"], r["torch_jacrev"]) if "torch_jacfwd" in r else None
        lines.append(f"| {r['n']} | {r['m']} | {mode} | {_fmt(ga_best)} | {_fmt(jx)} | "
                     f"{_fmt(jj)} | {_fmt(tt)} | {_r(_ratio(ga_best, jj))} | "
                     f"{_r(_ratio(ga_best, tt))} | {_r(_ratio(r['jacrev'], r['vjp_loop']), 3)} |")
    s = second
    lines += ["", "### Second order: f(x) = sum(log(1 + exp(A x))) + |x|^2/2, A 200x500", "",
              "| quantity | graphad | JAX jit | JAX eager | torch.func | ratio |",
              "|---|---:|---:|---:|---:|---|",
              f"| gradient | {_fmt(s['grad'])} | {_fmt(s.get('jax_jit_grad'))} | | | |",
              f"| hvp (forward-over-reverse) | {_fmt(s['hvp'])} | {_fmt(s.get('jax_jit_hvp'))} | | "
              f"| hvp / grad = {s['hvp'] / s['grad']:.2f} (target <= 5) |",
              f"| Hessian (500x500) | {_fmt(s['hessian'])} | {_fmt(s.get('jax_jit_hessian'))} | "
              f"{_fmt(s.get('jax_hessian'))} | {_fmt(s.get('torch_hessian'))} | graphad / JAX jit "
              f"= {_r(_ratio(s['hessian'], s.get('jax_jit_hessian')))} (target <= 2) |"]
    return "\n".join(lines)


def targets(rows, second):
    """The issue's targets as booleans with the measured ratios (None where not measurable)."""
    out = {}
    r100 = [r for r in rows if r["m"] == 100 and r.get("vjp_loop")]
    if r100:
        worst = max(r["jacrev"] / r["vjp_loop"] for r in r100)
        out["jacrev_m100_vs_100_vjps"] = {"worst_ratio": worst, "target": 0.2,
                                          "met": worst <= 0.2}
    jj = [min(r["jacfwd"], r["jacrev"]) / min(r["jax_jit_jacfwd"], r["jax_jit_jacrev"])
          for r in rows if "jax_jit_jacfwd" in r]
    if jj:
        out["graphad_vs_jax_jit"] = {"worst_ratio": max(jj), "target": 1.5,
                                     "met": max(jj) <= 1.5,
                                     "points_met": sum(x <= 1.5 for x in jj), "points": len(jj)}
    tt = [min(r["jacfwd"], r["jacrev"]) / min(r["torch_jacfwd"], r["torch_jacrev"])
          for r in rows if "torch_jacfwd" in r]
    if tt:
        out["graphad_vs_torch_func"] = {"worst_ratio": max(tt), "target": 1.0,
                                        "met": max(tt) < 1.0,
                                        "points_met": sum(x < 1 for x in tt), "points": len(tt)}
    out["hvp_vs_grad"] = {"ratio": second["hvp"] / second["grad"], "target": 5.0,
                          "met": second["hvp"] / second["grad"] <= 5.0}
    if "jax_jit_hessian" in second:
        h = second["hessian"] / second["jax_jit_hessian"]
        out["hessian_vs_jax_jit"] = {"ratio": h, "target": 2.0, "met": h <= 2.0}
    return out


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = sorted({r["n"] for r in rows})
    by = {(r["n"], r["m"]): r for r in rows}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    fixed = 100 if 100 in sizes else sizes[len(sizes) // 2]
    for ax, vary in ((axes[0], "n"), (axes[1], "m")):
        pts = [by[(s, fixed)] if vary == "n" else by[(fixed, s)] for s in sizes]
        for key, label, style in (("jacfwd", "jacfwd (one forward sweep)", "o-"),
                                  ("jacrev", "jacrev (one reverse sweep)", "s-"),
                                  ("jvp_loop", "n separate jvps", "o:"),
                                  ("vjp_loop", "m separate vjps", "s:"),
                                  ("jax_jit_jacfwd", "JAX jit jacfwd", "^--"),
                                  ("jax_jit_jacrev", "JAX jit jacrev", "v--")):
            xs = [s for s, p in zip(sizes, pts) if p.get(key)]
            ys = [p[key] / p["eval"] for p in pts if p.get(key)]
            if xs:
                ax.plot(xs, ys, style, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{vary} ({'inputs' if vary == 'n' else 'outputs'})")
        ax.set_ylabel("cost / one evaluation of f")
        other = "m" if vary == "n" else "n"
        ax.set_title(f"Jacobian cost as {vary} grows ({other} = {fixed})")
        ax.axvline(fixed, color="gray", lw=0.8)
        ax.text(fixed, ax.get_ylim()[1] * 0.7, " n = m", color="gray")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    grid = np.array([[np.log2(by[(n, m)]["jacfwd"] / by[(n, m)]["jacrev"]) for n in sizes]
                     for m in sizes])
    lim = np.max(np.abs(grid))
    im = axes[2].imshow(grid, origin="lower", cmap="coolwarm", vmin=-lim, vmax=lim)
    axes[2].set_xticks(range(len(sizes)), sizes)
    axes[2].set_yticks(range(len(sizes)), sizes)
    axes[2].set_xlabel("n (inputs)")
    axes[2].set_ylabel("m (outputs)")
    axes[2].set_title("log2(jacfwd / jacrev time)\nblue: forward cheaper, red: reverse")
    for i in range(len(sizes)):
        for j in range(len(sizes)):
            axes[2].text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=axes[2])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _frameworks():
    have = []
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        have.append("jax")
    except Exception:               # not installed, or no usable backend
        pass
    try:
        import torch
        import torch.func  # noqa: F401
        torch.set_num_threads(1)
        have.append("torch")
    except Exception:
        pass
    return have


def run(quick=False, out="bench/out"):
    """Run the benchmark; write fwd_vs_rev.{md,json,png} into `out`; return the results."""
    # one thread for XLA too; must be set before jax is first imported
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1")
    from threadpoolctl import threadpool_limits
    frameworks = _frameworks()
    sizes = SIZES[:3] if quick else SIZES
    budget = 0.05 if quick else 0.25
    t0 = time.perf_counter()
    # One core for everything: BLAS is limited to one thread, and the process is pinned to one
    # CPU so that no framework's own thread pool (XLA's, PyTorch's) runs on a second one.
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity:
        os.sched_setaffinity(0, {max(affinity)})
    try:
        with threadpool_limits(1):
            rows = bench_grid(sizes, budget, frameworks, loops_upto=100 if quick else 1000)
            second = bench_second_order(budget, frameworks)
    finally:
        if affinity:
            os.sched_setaffinity(0, affinity)
    from threadpoolctl import threadpool_info
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')} kernels)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    result = {"grid": rows, "second_order": second, "targets": targets(rows, second),
              "frameworks": frameworks, "quick": quick, "hidden": HIDDEN,
              "numpy": np.__version__, "blas": blas,
              "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
              "seconds": time.perf_counter() - t0}
    for name in frameworks:
        result[name] = __import__(name).__version__
    md = tables(rows, second, frameworks)
    md += "\n\n### Targets\n\n" + "\n".join(
        f"- {k}: " + ", ".join(f"{a}={_r(b, 3) if isinstance(b, float) else b}"
                               for a, b in v.items()) for k, v in result["targets"].items())
    md += (f"\n\nBLAS: {'; '.join(blas)}"
           f"{', OPENBLAS_CORETYPE=' + result['OPENBLAS_CORETYPE'] if result['OPENBLAS_CORETYPE'] else ''}"
           f"; frameworks: {', '.join(f'{k} {result[k]}' for k in frameworks) or 'none'}."
           f"\n\nPlot: {os.path.join(out, 'fwd_vs_rev.png')}\n")
    from graphad.__main__ import bench_write
    bench_write(out, "fwd_vs_rev", md, result)
    plot(rows, os.path.join(out, "fwd_vs_rev.png"))
    return result


if __name__ == "__main__":
    from graphad.__main__ import bench_script
    sys.exit(bench_script(run, __doc__, "n, m up to 100, shorter timings"))
