"""Train an MLP classifier on scikit-learn's digits with graphad.nn and graphad.optim.

    python examples/train_mlp.py [--epochs 40] [--hidden 128 64]

What it shows: a model built from ga.nn layers, a training loop with AdamW and a cosine
learning-rate schedule, evaluation under ga.no_grad() in eval mode, and a checkpoint of the
model and the optimizer written to .npz files and read back into fresh objects.
"""
import argparse
import os
import tempfile

import numpy as np
from sklearn.datasets import load_digits

import graphad as ga
from graphad import nn, optim


def load(seed=0):
    d = load_digits()
    X, y = d.data / 16.0, d.target
    perm = np.random.default_rng(seed).permutation(len(y))
    test, train = perm[:450], perm[450:]
    mu, sd = X[train].mean(0), X[train].std(0) + 0.1
    return (X[train] - mu) / sd, y[train], (X[test] - mu) / sd, y[test]


class Classifier(nn.Module):
    """An MLP with dropout between the hidden layers."""

    def __init__(self, sizes, dropout=0.1, rng=0):
        rng = np.random.default_rng(rng)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b, rng=rng, init=nn.init.he_uniform))
            if i < len(sizes) - 2:
                layers += [nn.ReLU(), nn.Dropout(dropout, rng=rng)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


def accuracy(model, X, y):
    model.eval()
    with ga.no_grad():
        pred = np.argmax(model(X).numpy(), axis=1)
    model.train()
    return float(np.mean(pred == y))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 64])
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    Xtr, ytr, Xte, yte = load()
    model = Classifier([64, *args.hidden, 10])
    opt = optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = optim.CosineAnnealing(opt, t_max=args.epochs)
    rng = np.random.default_rng(1)
    for epoch in range(1, args.epochs + 1):
        perm = rng.permutation(len(ytr))
        total = 0.0
        for i in range(0, len(perm), args.batch_size):
            idx = perm[i:i + args.batch_size]
            opt.zero_grad()
            loss = nn.cross_entropy(model(Xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        sched.step()
        if epoch % 10 == 0 or epoch == args.epochs:
            print(f"epoch {epoch:3d}  loss {total / len(ytr):.4f}  lr {sched.get_last_lr()[0]:.2e}"
                  f"  test accuracy {accuracy(model, Xte, yte):.4f}")

    # checkpoint: model and optimizer to .npz, then into fresh objects
    with tempfile.TemporaryDirectory() as d:
        model.save(os.path.join(d, "model.npz"))
        opt.save(os.path.join(d, "optimizer.npz"))
        restored = Classifier([64, *args.hidden, 10], rng=123)
        restored.load(os.path.join(d, "model.npz"))
        opt2 = optim.AdamW(restored.parameters())
        opt2.load(os.path.join(d, "optimizer.npz"))
    print(f"restored model: test accuracy {accuracy(restored, Xte, yte):.4f} "
          f"(lr {opt2.param_groups[0]['lr']:.2e}, {len(opt2.state)} parameter states)")


if __name__ == "__main__":
    main()
