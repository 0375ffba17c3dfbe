"""Per-op overhead of graphad's graph building and reverse sweep, beside a hand-written NumPy
forward+backward (the floor) and PyTorch eager when it is installed.

  (a) fwd+bwd cost per op of a 1,000-op chain, on scalars and on (1000,) arrays;
  (b) fwd+bwd of a 64-128-128-10 MLP with cross-entropy at batch 128;
  (c) a 200,000-node scalar chain: build plus backward.

All with one BLAS thread; every ratio comes from the same run.

    python bench/overhead.py [--quick] [--out bench/out]
"""
import sys
import time
import timeit

import numpy as np

try:
    import torch
except ImportError:
    torch = None

import graphad as ga

# The chain cycles through four ops: y * 1.0001, sin(y), y + 0.5, tanh(y).
def _chain(y, n, sin, tanh):
    for i in range(n):
        k = i & 3
        if k == 0:
            y = y * 1.0001
        elif k == 1:
            y = sin(y)
        elif k == 2:
            y = y + 0.5
        else:
            y = tanh(y)
    return y


def chain_graphad(x0, n):
    x = ga.tensor(x0, requires_grad=True)
    ga.sum(_chain(x, n, ga.sin, ga.tanh)).backward()
    return x.grad


def chain_torch(x0, n):
    x = torch.tensor(x0, requires_grad=True)
    _chain(x, n, torch.sin, torch.tanh).sum().backward()
    return x.grad


def chain_numpy(x0, n):
    """The floor: forward keeping what the backward needs, then the backward by hand."""
    y = np.asarray(x0, dtype=np.float64)
    saved = []
    for i in range(n):
        k = i & 3
        if k == 0:
            y = y * 1.0001
        elif k == 1:
            saved.append(y)
            y = np.sin(y)
        elif k == 2:
            y = y + 0.5
        else:
            y = np.tanh(y)
            saved.append(y)
    g = np.ones_like(y)
    for i in range(n - 1, -1, -1):
        k = i & 3
        if k == 0:
            g = g * 1.0001
        elif k == 1:
            g = g * np.cos(saved.pop())
        elif k == 3:
            t = saved.pop()
            g = g * (1 - t * t)
    return g


def _time(fn, number, repeat):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def bench_chain(shape, n_ops, repeat):
    x0 = np.full(shape, 0.3)
    rows = {}
    ref = chain_numpy(x0, n_ops)
    got = chain_graphad(x0, n_ops)
    assert np.allclose(got, ref), "graphad chain gradient disagrees with the NumPy floor"
    rows["numpy"] = _time(lambda: chain_numpy(x0, n_ops), 3, repeat) / n_ops
    rows["graphad"] = _time(lambda: chain_graphad(x0, n_ops), 3, repeat) / n_ops
    if torch is not None:
        rows["torch"] = _time(lambda: chain_torch(x0, n_ops), 3, repeat) / n_ops
    return rows


# ---- (b) the MLP ------------------------------------------------------------------------------
def make_mlp(sizes, batch, seed=0):
    rng = np.random.default_rng(seed)
    Ws = [rng.standard_normal((a, b)) * np.sqrt(2.0 / a) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(b) for b in sizes[1:]]
    X = rng.standard_normal((batch, sizes[0]))
    y = rng.integers(0, sizes[-1], batch)
    return Ws, bs, X, y


def mlp_numpy(Ws, bs, X, y):
    hs, zs = [X], []
    h = X
    for i, (W, b) in enumerate(zip(Ws, bs)):
        z = h @ W + b
        zs.append(z)
        h = np.maximum(z, 0) if i < len(Ws) - 1 else z
        hs.append(h)
    z = hs[-1]
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.mean(z[np.arange(n), y] - m[:, 0] - np.log(s[:, 0]))
    g = e / s
    g[np.arange(n), y] -= 1
    g /= n
    grads = []
    for i in range(len(Ws) - 1, -1, -1):
        grads.append((hs[i].T @ g, g.sum(axis=0)))
        if i:
            g = (g @ Ws[i].T) * (zs[i - 1] > 0)
    return loss, grads


def _mlp_logits(params, X, relu):
    h = X
    k = len(params) // 2
    for i in range(k):
        h = h @ params[2 * i] + params[2 * i + 1]
        if i < k - 1:
            h = relu(h)
    return h


def mlp_graphad(params, X, y):
    logp = ga.log_softmax(_mlp_logits(params, X, ga.relu), axis=1)
    loss = -ga.mean(logp[np.arange(len(y)), y])
    loss.backward()
    return loss


def mlp_torch(params, X, y):
    loss = torch.nn.functional.cross_entropy(_mlp_logits(params, X, torch.relu), y)
    loss.backward()
    return loss


def bench_mlp(repeat):
    Ws, bs, X, y = make_mlp((64, 128, 128, 10), 128)
    params = [ga.tensor(a, requires_grad=True) for pair in zip(Ws, bs) for a in pair]
    loss_np, grads_np = mlp_numpy(Ws, bs, X, y)
    loss_ga = mlp_graphad(params, X, y)
    assert abs(float(loss_ga.item()) - loss_np) < 1e-10
    assert np.allclose(params[0].grad, grads_np[-1][0])
    rows = {"numpy": _time(lambda: mlp_numpy(Ws, bs, X, y), 50, repeat),
            "graphad": _time(lambda: mlp_graphad(params, X, y), 50, repeat)}
    if torch is not None:
        tp = [torch.tensor(a, requires_grad=True) for pair in zip(Ws, bs) for a in pair]
        tX, ty = torch.tensor(X), torch.tensor(y)
        rows["torch"] = _time(lambda: mlp_torch(tp, tX, ty), 50, repeat)
    return rows


# ---- (c) the long chain ---------------------------------------------------------------------------
def bench_long_chain(n_nodes, repeat):
    def once(fn):
        t0 = time.perf_counter()
        fn(0.3, n_nodes)
        return time.perf_counter() - t0
    rows = {"numpy": min(once(chain_numpy) for _ in range(repeat)),
            "graphad": min(once(chain_graphad) for _ in range(repeat))}
    if torch is not None:
        rows["torch"] = min(once(chain_torch) for _ in range(max(1, repeat - 1)))
    return rows


def _fmt(t):
    return f"{t * 1e6:.2f} us" if t < 1e-3 else (f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.3f} s")


def run(quick=False, out="bench/out"):
    from threadpoolctl import threadpool_limits
    if torch is not None:
        torch.set_num_threads(1)
    repeat = 3 if quick else 7
    with threadpool_limits(1):
        results = {
            "chain_scalar_per_op": bench_chain((), 1000, repeat),
            "chain_1000_per_op": bench_chain((1000,), 1000, repeat),
            "mlp_64_128_128_10_b128": bench_mlp(repeat),
            "chain_200k_build_backward": bench_long_chain(20_000 if quick else 200_000,
                                                          2 if quick else 3),
        }
    lines = ["| case | NumPy floor | graphad | graphad / NumPy | PyTorch eager | "
             "graphad / PyTorch |", "|---|---|---|---|---|---|"]
    for case, r in results.items():
        tt = r.get("torch")
        lines.append(f"| {case} | {_fmt(r['numpy'])} | {_fmt(r['graphad'])} | "
                     f"{r['graphad'] / r['numpy']:.2f} | {_fmt(tt) if tt else 'n/a'} | "
                     f"{(r['graphad'] / tt) if tt else float('nan'):.3f} |")
    from graphad.__main__ import bench_write
    bench_write(out, "overhead", "\n".join(lines), {
        "results": results, "torch": torch.__version__ if torch else None,
        "numpy": np.__version__, "quick": quick})
    return results


if __name__ == "__main__":
    from graphad.__main__ import bench_script
    sys.exit(bench_script(run, __doc__))
