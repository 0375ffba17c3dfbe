"""Gradients through ga.linalg: logdet, inv, solve and eigh for n in {10, 100, 500}, beside a
hand-written NumPy forward+backward (the floor) and PyTorch / JAX when they are importable.

The losses (each framework computes the same numbers; the check at the start of each point says so):
  logdet  slogdet(A)[1]                     gradient A^-T
  inv     sum(C * inv(A))                   gradient -Y^T C Y^T,  Y = A^-1
  solve   sum(c * solve(A, b))              gradients wrt A and b
  eigh    sum(c * w) + sum(C * V**2)        V**2: independent of the eigenvectors' signs
and the cost of one hvp through slogdet against one gradient (the course's second order).  One
BLAS thread, the process pinned to one CPU; the cases of one point are timed in interleaved rounds,
so every ratio comes from the same run on the same machine.  The ratio column divides graphad's
time, the better of eager and ga.compile (the counterpart of jax.jit), by the best peer's
(PyTorch eager, JAX eager or JAX jit); below 1 means graphad is ahead.

    python bench/linalg.py [--quick] [--out bench/out]
"""
import os
import sys
import time
import timeit

import numpy as np
import scipy.linalg as sl

import graphad as ga

SIZES = (10, 100, 500)
KINDS = ("logdet", "inv", "solve", "eigh")


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


def _fmt(t):
    if t is None:
        return "n/a"
    return f"{t * 1e6:.0f} us" if t < 1e-3 else (f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s")


def problem(n, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) + n ** 0.5 * np.eye(n)     # well conditioned
    S = rng.standard_normal((n, n))
    return {"A": A, "S": (S + S.T) / 2, "C": rng.standard_normal((n, n)),
            "b": rng.standard_normal(n), "c": rng.standard_normal(n),
            "V": rng.standard_normal((n, n))}


# ----------------------------------------------------------------------------------------------
# graphad

def graphad_cases(p, compiled=False):
    gl = ga.linalg
    C, c, b = p["C"], p["c"], p["b"]
    g_logdet = ga.grad(lambda A: gl.slogdet(A)[1])
    g_inv = ga.grad(lambda A: ga.sum(C * gl.inv(A)))
    g_solve = ga.grad(lambda A, b: ga.sum(c * gl.solve(A, b)), argnums=(0, 1))

    def eigh_loss(S):
        w, V = gl.eigh(S)
        return ga.sum(c * w) + ga.sum(C * V * V)
    g_eigh = ga.grad(eigh_loss)
    if compiled:
        g_logdet, g_inv, g_solve, g_eigh = map(ga.compile, (g_logdet, g_inv, g_solve, g_eigh))
    return {"logdet": lambda: g_logdet(p["A"]), "inv": lambda: g_inv(p["A"]),
            "solve": lambda: g_solve(p["A"], b), "eigh": lambda: g_eigh(p["S"])}


# ----------------------------------------------------------------------------------------------
# the floor: forward and backward by hand, with the same factorizations

def numpy_cases(p):
    C, c, b = p["C"], p["c"], p["b"]

    def logdet():
        A = p["A"]
        lu, piv = sl.lu_factor(A, check_finite=False)
        np.sum(np.log(np.abs(np.diag(lu))))
        return sl.lu_solve((lu, piv), np.eye(len(A)), trans=1, check_finite=False)   # A^-T

    def inv():
        Y = np.linalg.inv(p["A"])
        np.sum(C * Y)
        return -Y.T @ C @ Y.T

    def solve():
        lu, piv = sl.lu_factor(p["A"], check_finite=False)
        x = sl.lu_solve((lu, piv), b, check_finite=False)
        gb = sl.lu_solve((lu, piv), c, trans=1, check_finite=False)
        return -np.outer(gb, x), gb

    def eigh():
        w, V = np.linalg.eigh(p["S"])
        gw, gV = c, 2 * C * V
        F = w[None, :] - w[:, None]
        np.fill_diagonal(F, np.inf)
        inner = np.diag(gw) + (V.T @ gV) / F
        G = V @ inner @ V.T
        return (G + G.T) / 2
    return {"logdet": logdet, "inv": inv, "solve": solve, "eigh": eigh}


# ----------------------------------------------------------------------------------------------
# peers

def torch_cases(p):
    import torch
    T = {k: torch.tensor(v) for k, v in p.items()}

    def run(loss, *names):
        def f():
            xs = [T[k].clone().requires_grad_(True) for k in names]
            return torch.autograd.grad(loss(*xs), xs)
        return f

    def eigh_loss(S):
        w, V = torch.linalg.eigh(S)
        return (T["c"] * w).sum() + (T["C"] * V * V).sum()
    return {"logdet": run(lambda A: torch.linalg.slogdet(A)[1], "A"),
            "inv": run(lambda A: (T["C"] * torch.linalg.inv(A)).sum(), "A"),
            "solve": run(lambda A, b: (T["c"] * torch.linalg.solve(A, b)).sum(), "A", "b"),
            "eigh": run(eigh_loss, "S")}


def jax_cases(p, jit):
    import jax
    import jax.numpy as jnp
    J = {k: jnp.asarray(v) for k, v in p.items()}

    def eigh_loss(S):
        w, V = jnp.linalg.eigh(S)
        return jnp.sum(J["c"] * w) + jnp.sum(J["C"] * V * V)
    grads = {"logdet": (jax.grad(lambda A: jnp.linalg.slogdet(A)[1]), ("A",)),
             "inv": (jax.grad(lambda A: jnp.sum(J["C"] * jnp.linalg.inv(A))), ("A",)),
             "solve": (jax.grad(lambda A, b: jnp.sum(J["c"] * jnp.linalg.solve(A, b)),
                                argnums=(0, 1)), ("A", "b")),
             "eigh": (jax.grad(eigh_loss), ("S",))}
    out = {}
    for k, (g, names) in grads.items():
        g = jax.jit(g) if jit else g
        args = [J[n] for n in names]
        out[k] = (lambda g, args: lambda: jax.block_until_ready(g(*args)))(g, args)
    return out


def _to_np(x):
    if isinstance(x, (tuple, list)):
        return [_to_np(v) for v in x]
    return np.asarray(x.detach() if hasattr(x, "detach") else x, dtype=np.float64)


def _check(cases, ref, name):
    """Every framework's gradient equals the floor's (else the timing compares different work)."""
    want = _to_np(ref())
    for k, fn in cases.items():
        got = _to_np(fn())
        for a, b in zip(want if isinstance(want, list) else [want],
                        got if isinstance(got, list) else [got]):
            if not np.allclose(a, b, rtol=1e-6, atol=1e-8 * max(1.0, np.abs(a).max())):
                raise AssertionError(f"bench/linalg.py: {k} disagrees with NumPy on {name}: "
                                     f"max |diff| {np.abs(a - b).max():.3g}")


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
        torch.set_num_threads(1)
        have.append("torch")
    except Exception:
        pass
    return have


def bench_grid(sizes, budget, frameworks):
    rows = []
    for n in sizes:
        p = problem(n)
        per_kind = {k: {} for k in KINDS}
        sources = [("graphad", graphad_cases(p)), ("graphad_compiled", graphad_cases(p, True)),
                   ("numpy", numpy_cases(p))]
        if "torch" in frameworks:
            sources.append(("torch", torch_cases(p)))
        if "jax" in frameworks:
            sources += [("jax", jax_cases(p, False)), ("jax_jit", jax_cases(p, True))]
        for who, cases in sources:
            for k, fn in cases.items():
                if k in per_kind:
                    per_kind[k][who] = fn
        for k in KINDS:
            cases = per_kind[k]
            _check({w: f for w, f in cases.items() if w != "numpy"}, cases["numpy"], f"{k} n={n}")
            t = _time_interleaved(cases, budget)
            peers = [t[w] for w in ("torch", "jax", "jax_jit") if w in t]
            best = min(t["graphad"], t["graphad_compiled"])
            rows.append({"n": n, "kind": k, **t,
                         "vs_numpy": best / t["numpy"],
                         "vs_best_peer": best / min(peers) if peers else None})
            print(f"  n={n:4d} {k:7s} graphad {_fmt(t['graphad'])}  compiled "
                  f"{_fmt(t['graphad_compiled'])}  numpy {_fmt(t['numpy'])}"
                  + "".join(f"  {w} {_fmt(t[w])}" for w in ("torch", "jax", "jax_jit") if w in t),
                  flush=True)
    return rows


def bench_hvp(sizes, budget):
    """One hvp through slogdet (a forward-over-reverse sweep) against one gradient."""
    rows = []
    for n in sizes:
        p = problem(n)
        f = lambda A: ga.linalg.slogdet(A)[1]      # noqa: E731
        g = ga.grad(f)
        t = _time_interleaved({"grad": lambda: g(p["A"]),
                               "hvp": lambda: ga.hvp(f, (p["A"],), (p["V"],))}, budget)
        rows.append({"n": n, **t, "ratio": t["hvp"] / t["grad"]})
    return rows


def tables(rows, hvp_rows, frameworks):
    peers = [w for w in ("torch", "jax", "jax_jit") if any(w in r for r in rows)]
    head = "| n | gradient of | graphad | graphad compiled | NumPy floor | " + " | ".join(peers) + \
           " | graphad / NumPy | graphad / best peer |"
    md = ["### Gradients through ga.linalg (one thread)", "", head,
          "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        vp = r["vs_best_peer"]
        md.append(f"| {r['n']} | {r['kind']} | {_fmt(r['graphad'])} | "
                  f"{_fmt(r['graphad_compiled'])} | {_fmt(r['numpy'])} | "
                  + " | ".join(_fmt(r.get(w)) for w in peers)
                  + f" | {r['vs_numpy']:.2f} | {'n/a' if vp is None else f'{vp:.2f}'} |")
    md += ["", "### hvp through slogdet against one gradient", "",
           "| n | grad | hvp | hvp / grad |", "|---|---|---|---|"]
    md += [f"| {r['n']} | {_fmt(r['grad'])} | {_fmt(r['hvp'])} | {r['ratio']:.2f} |"
           for r in hvp_rows]
    return "\n".join(md)


def targets(rows):
    """Issue 10's targets: at most 1.2x the best peer at n = 500, ahead of every peer at n = 10."""
    out = {}
    for r in rows:
        if r["vs_best_peer"] is None or r["n"] not in (10, 500):
            continue
        goal = 1.0 if r["n"] == 10 else 1.2
        out[f"{r['kind']} n={r['n']}"] = {"ratio": r["vs_best_peer"], "target": goal,
                                          "met": r["vs_best_peer"] <= goal}
    return out


def run(quick=False, out="bench/out"):
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                       "intra_op_parallelism_threads=1")
    from threadpoolctl import threadpool_info, threadpool_limits
    frameworks = _frameworks()
    sizes = SIZES[:2] if quick else SIZES
    budget = 0.05 if quick else 0.25
    t0 = time.perf_counter()
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity:
        os.sched_setaffinity(0, {max(affinity)})
    try:
        with threadpool_limits(1):
            rows = bench_grid(sizes, budget, frameworks)
            hvp_rows = bench_hvp(sizes, budget)
    finally:
        if affinity:
            os.sched_setaffinity(0, affinity)
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')} kernels)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    result = {"grid": rows, "hvp": hvp_rows, "targets": targets(rows), "quick": quick,
              "frameworks": frameworks, "numpy": np.__version__, "blas": blas,
              "seconds": time.perf_counter() - t0}
    for name in frameworks:
        result[name] = __import__(name).__version__
    md = tables(rows, hvp_rows, frameworks)
    md += "\n\n### Targets\n\n" + "\n".join(
        f"- {k}: ratio {v['ratio']:.2f} (target <= {v['target']}) {'met' if v['met'] else 'MISSED'}"
        for k, v in result["targets"].items())
    md += (f"\n\nBLAS: {'; '.join(blas)}; frameworks: "
           f"{', '.join(f'{k} {result[k]}' for k in frameworks) or 'none'}.\n")
    from graphad.__main__ import bench_write
    bench_write(out, "linalg", md, result)
    return result


if __name__ == "__main__":
    from graphad.__main__ import bench_script
    sys.exit(bench_script(run, __doc__, "n up to 100, shorter timings"))
