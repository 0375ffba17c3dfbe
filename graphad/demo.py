"""The demo: an MLP trained on scikit-learn's bundled digits (8x8 images, 10 classes), then a
short table of what forward and reverse mode cost for Jacobians of different shapes.

    python -m graphad demo [--epochs 30] [--hidden 128] [--compile] [--plot [PATH]]
"""
import time

import numpy as np

import graphad as ga


def load_digits_split(seed=0, test_fraction=0.25):
    """Train/test split of the digits (a fixed permutation), features standardized with the
    training set's statistics."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    X = digits.data / 16.0
    y = digits.target
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(len(y) * test_fraction)
    test, train = perm[:n_test], perm[n_test:]
    mu, sd = X[train].mean(axis=0), X[train].std(axis=0) + 0.1
    return (X[train] - mu) / sd, y[train], (X[test] - mu) / sd, y[test], digits.images[test]


def train(Xtr, ytr, hidden=(128,), epochs=30, lr=2e-3, batch_size=32, seed=0, compiled=False,
          progress=True):
    """Train an MLP with AdamW and a cosine schedule; returns (model, per-epoch mean losses)."""
    model = ga.nn.MLP([Xtr.shape[1], *hidden, 10], activation="relu", rng=seed)
    opt = ga.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = ga.optim.CosineAnnealing(opt, t_max=epochs)

    def step(X, y):
        opt.zero_grad()
        loss = ga.nn.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        return loss

    if compiled:
        step = ga.compile(step)
    bar = range(epochs)
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(bar, desc=f"MLP {'-'.join(map(str, model.sizes))}", unit="epoch")
        except ImportError:                     # the progress bar is an extra
            pass
    rng = np.random.default_rng(seed)
    n = len(ytr) - len(ytr) % batch_size        # whole batches only: one shape, one trace
    losses = []
    for _ in bar:
        perm = rng.permutation(len(ytr))[:n]
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            total += float(step(Xtr[idx], ytr[idx]))
        losses.append(total / (n // batch_size))
        sched.step()
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
    return model, losses


def predict(model, X):
    with ga.no_grad():
        model.eval()
        try:
            return np.argmax(model(X).numpy(), axis=1)
        finally:
            model.train()


def _best_time(fn, budget=0.05):
    fn()
    best, spent, calls = float("inf"), 0.0, 0
    while spent < budget or calls < 3:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, calls = min(best, dt), spent + dt, calls + 1
    return best


def cost_table(sizes=((1, 1000), (1000, 1), (30, 300), (300, 30)), hidden=64, seed=0):
    """Time ga.jacfwd and ga.jacrev of f(x) = tanh(W2 tanh(W1 x)), R^n -> R^m: forward mode
    carries n tangents, reverse mode m cotangents, so the cheaper one flips as n/m does."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, m in sizes:
        W1 = rng.standard_normal((hidden, n)) / np.sqrt(n)
        W2 = rng.standard_normal((m, hidden)) / np.sqrt(hidden)
        x = rng.standard_normal(n)

        def f(x):
            return ga.tanh(W2 @ ga.tanh(W1 @ x))

        Jf, Jr = ga.jacfwd(f)(x), ga.jacrev(f)(x)
        assert np.allclose(Jf, Jr), "jacfwd and jacrev disagree"
        tf = _best_time(lambda: ga.jacfwd(f)(x))
        tr = _best_time(lambda: ga.jacrev(f)(x))
        rows.append((n, m, tf, tr))
    lines = ["   n     m    jacfwd     jacrev   cheaper",
             "  ---  ----  ---------  ---------  -------"]
    for n, m, tf, tr in rows:
        lines.append(f"{n:5d} {m:5d} {tf * 1e6:8.0f}us {tr * 1e6:8.0f}us  "
                     f"{'forward' if tf < tr else 'reverse'}")
    return "\n".join(lines), rows


def plot(losses, images, y_true, y_pred, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    wrong = np.flatnonzero(y_true != y_pred)[:8]
    fig = plt.figure(figsize=(10, 4))
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(np.arange(1, len(losses) + 1), losses, marker="o", ms=3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss (cross-entropy)")
    ax.set_yscale("log")
    ax.set_title("training loss")
    for k, i in enumerate(wrong):
        a = fig.add_subplot(2, 8, 5 + (k // 4) * 8 + k % 4)
        a.imshow(images[i], cmap="gray_r")
        a.set_title(f"{y_true[i]} -> {y_pred[i]}", fontsize=9)
        a.axis("off")
    if len(wrong):
        fig.text(0.73, 0.95, "misclassified (true -> predicted)", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(args):
    try:
        from threadpoolctl import threadpool_limits
        limit = threadpool_limits(1)    # small matrices: one BLAS thread is fastest
    except ImportError:
        limit = None
    try:
        Xtr, ytr, Xte, yte, images = load_digits_split(args.seed)
        print(f"digits: {len(ytr)} training and {len(yte)} test images of 8x8 pixels")
        t0 = time.perf_counter()
        model, losses = train(Xtr, ytr, hidden=tuple(args.hidden), epochs=args.epochs,
                              lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                              compiled=args.compile)
        seconds = time.perf_counter() - t0
        pred = predict(model, Xte)
        acc = float(np.mean(pred == yte))
        print(f"test accuracy: {acc:.4f} ({int(np.sum(pred == yte))}/{len(yte)}) after "
              f"{args.epochs} epochs in {seconds:.2f} s"
              f"{' (compiled)' if args.compile else ''}")
        print("\nforward vs reverse mode: Jacobian of tanh(W2 tanh(W1 x)), R^n -> R^m")
        print(cost_table()[0])
        if args.plot:
            path = plot(losses, images, yte, pred, args.plot)
            print(f"\nplot written to {path}")
    finally:
        if limit is not None:
            limit.restore_original_limits()
    return 0
