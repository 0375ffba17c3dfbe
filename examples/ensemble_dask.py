"""Train an ensemble of small MLPs on scikit-learn's digits, one member per dask task.

    python examples/ensemble_dask.py [--members 4] [--workers 2] [--epochs 15]

What it shows: graphad models trained in parallel by dask.distributed on a LocalCluster of
worker processes (pip install "dask[distributed]"): each task builds its own ga.nn.MLP from its
seed, trains it with ga.optim.Adam on its own bootstrap sample of the training set and returns
its test accuracy and its predicted class probabilities; the driver averages the
probabilities into the ensemble's prediction.  Nothing but seeds and NumPy arrays crosses
between processes (graphad objects pickle too, but a task need not send any).
"""
import argparse
import time

import numpy as np
from sklearn.datasets import load_digits

import graphad as ga


def load(split_seed=0):
    """digits scaled to [0, 1] and standardized on the training part; 450 test images."""
    d = load_digits()
    X, y = d.data / 16.0, d.target
    perm = np.random.default_rng(split_seed).permutation(len(y))
    test, train = perm[:450], perm[450:]
    mu, sd = X[train].mean(0), X[train].std(0) + 0.1
    return (X[train] - mu) / sd, y[train], (X[test] - mu) / sd, y[test]


def train_member(seed, epochs=15, hidden=32, lr=3e-3, batch_size=32):
    """One ensemble member: (seed, test accuracy, test class probabilities)."""
    Xtr, ytr, Xte, yte = load()
    rng = np.random.default_rng(seed)
    boot = rng.integers(len(ytr), size=len(ytr))        # its own bootstrap sample
    Xb, yb = Xtr[boot], ytr[boot]
    model = ga.nn.MLP([64, hidden, 10], rng=seed)
    opt = ga.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        perm = rng.permutation(len(yb))
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            ga.nn.cross_entropy(model(Xb[idx]), yb[idx]).backward()
            opt.step()
    with ga.no_grad():
        probs = ga.softmax(model(Xte), axis=-1).numpy()
    return seed, float(np.mean(probs.argmax(1) == yte)), probs


def run(members=4, workers=2, epochs=15, client=None, timeout=600):
    """Train `members` models on a LocalCluster of `workers` processes (or on `client`'s
    cluster); returns (member accuracies in seed order, ensemble accuracy).  Raises
    TimeoutError when the members take longer than `timeout` seconds."""
    from dask.distributed import Client, LocalCluster, wait

    def on(c):
        futures = c.map(train_member, range(members), epochs=epochs, pure=False)
        wait(futures, timeout=timeout)
        return sorted(c.gather(futures))

    if client is not None:
        results = on(client)
    else:
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as c:
            results = on(c)
    yte = load()[3]
    mean_probs = np.mean([p for _, _, p in results], axis=0)
    return [a for _, a, _ in results], float(np.mean(mean_probs.argmax(1) == yte))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args()
    t0 = time.perf_counter()
    accs, ens = run(args.members, args.workers, args.epochs)
    for seed, a in enumerate(accs):
        print(f"member {seed}: test accuracy {a:.4f}")
    print(f"ensemble of {len(accs)}: test accuracy {ens:.4f}  "
          f"({time.perf_counter() - t0:.1f} s on {args.workers} worker processes)")


if __name__ == "__main__":
    main()
