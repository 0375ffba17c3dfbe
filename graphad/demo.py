"""The demo: multinomial logistic regression on scikit-learn's bundled digits data, trained with
ga.value_and_grad and plain gradient descent."""
import numpy as np

import graphad as ga


def load_digits_split(seed=0, test_fraction=0.25):
    from sklearn.datasets import load_digits
    digits = load_digits()
    X = digits.data / 16.0
    y = digits.target
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    n_test = int(len(y) * test_fraction)
    test, train = perm[:n_test], perm[n_test:]
    return X[train], y[train], X[test], y[test]


def cross_entropy(W, b, X, y):
    logp = ga.log_softmax(X @ W + b, axis=-1)
    return -ga.mean(logp[np.arange(len(y)), y])


def run(args):
    try:
        from tqdm import trange
    except ImportError:          # the progress bar is an extra
        trange = range
    Xtr, ytr, Xte, yte = load_digits_split(args.seed)
    W = np.zeros((Xtr.shape[1], 10))
    b = np.zeros(10)
    step = ga.value_and_grad(cross_entropy, argnums=(0, 1))
    bar = trange(args.epochs, desc="logistic regression")
    for _ in bar:
        loss, (gW, gb) = step(W, b, Xtr, ytr)
        W = W - args.lr * gW
        b = b - args.lr * gb
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
    acc = float(np.mean(np.argmax(Xte @ W + b, axis=1) == yte))
    print(f"test accuracy: {acc:.4f}")
    return 0 if acc >= 0.95 else 1
