"""ga.compile on a whole training step: trace once, replay every step.

    python examples/compile_training_loop.py

The step (zero_grad, forward, cross-entropy, backward, optimizer update) is traced on its first
call; later calls with the same shapes replay the recorded program: each primitive's kernel,
the reverse sweep over the kept graph, and the optimizer's in-place C update.  The last,
smaller batch of an epoch has a new shape, so it gets its own trace (once).  Both runs start
from the same weights and see the same batches, so their losses agree to rounding.
"""
import time

import numpy as np
from sklearn.datasets import load_digits

import graphad as ga
from graphad import nn, optim


def make(seed=0):
    model = nn.MLP([64, 256, 128, 10], rng=seed)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)

    def step(X, y):
        opt.zero_grad()
        loss = nn.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        return loss             # a Tensor: compiled functions return values, not floats
    return model, step


def train(step, X, y, epochs, batch=50):
    rng = np.random.default_rng(0)
    losses = []
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = rng.permutation(len(y))
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            losses.append(float(step(X[idx], y[idx])))
    return np.array(losses), time.perf_counter() - t0


def main():
    try:                                 # small matrices: one BLAS thread is fastest
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass
    d = load_digits()
    X, y = d.data / 16.0, d.target

    _, eager_step = make()
    _, step = make()
    compiled_step = ga.compile(step)

    eager, t_eager = train(eager_step, X, y, epochs=5)
    comp, t_comp = train(compiled_step, X, y, epochs=5)
    print(f"{len(eager)} steps: eager {t_eager:.2f} s, compiled {t_comp:.2f} s "
          f"({t_eager / t_comp:.2f}x)")
    print(f"final loss {comp[-1]:.5f}; largest difference from eager "
          f"{np.max(np.abs(comp - eager)):.1e}")
    for s in compiled_step.stats():
        shape = s["signature"][0][1]
        print(f"  trace for batch {shape}: {s['primitives']} primitives, {s['sweeps']} sweep, "
              f"{s['effects']} effects, traced in {s['compile_ms']:.1f} ms")


if __name__ == "__main__":
    main()
