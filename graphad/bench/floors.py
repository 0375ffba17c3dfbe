"""Physical floors: the work no engine can skip, timed alone.

- a scalar chain: the same arithmetic (forward and backward) on Python floats;
- an MLP training step: its GEMMs alone (forward h @ W, backward h^T @ g and g @ W^T per layer),
  into preallocated outputs;
- a Jacobian block of tanh(W2 tanh(W1 x)): the two matrix-vector products of the evaluation and
  the one m x 256 x n product that forms the Jacobian;
- a Hessian A^T D A: its one GEMM.
An engine at 1.0x of these does nothing but the arithmetic; everything above is overhead
(allocation, elementwise passes, dispatch) or a worse kernel.
"""
import math

import numpy as np

from graphad.bench.peers import chain_by_hand

LABEL = "floor"


def chain_floats(x0, n_ops):
    """The chain on a Python float: forward keeping sin's input and tanh's output, backward."""
    return lambda: chain_by_hand(float(x0), n_ops, math.sin, math.cos, math.tanh, lambda y: 1.0)


def mlp_gemms(p):
    """The 3L - 1 GEMMs of one forward + backward of an L-layer MLP at batch B."""
    Ws, X = p["Ws"], p["X"]
    rng = np.random.default_rng(0)
    dt = X.dtype
    hs = [X] + [rng.standard_normal((len(X), W.shape[1])).astype(dt) for W in Ws]
    fwd = [(hs[i], W, np.empty((len(X), W.shape[1]), dt)) for i, W in enumerate(Ws)]
    gWs = [(hs[i].T, hs[i + 1], np.empty(W.shape, dt)) for i, W in enumerate(Ws)]
    gXs = [(hs[i + 1], W.T, np.empty((len(X), W.shape[0]), dt)) for i, W in enumerate(Ws) if i]
    work = fwd + gWs + gXs
    mm = np.matmul

    def run():
        for a, b, c in work:
            mm(a, b, out=c)
    return run


def jacobian_gemms(p):
    W1, W2, x = p["W1"], p["W2"], p["x"]
    h = np.empty(W1.shape[0], x.dtype)
    y = np.empty(W2.shape[0], x.dtype)
    J = np.empty((W2.shape[0], W1.shape[1]), x.dtype)
    mm = np.matmul

    def run():
        mm(W1, x, out=h)
        mm(W2, h, out=y)
        mm(W2, W1, out=J)
    return run


def hessian_gemm(p):
    A = p["A"]
    At, H = np.ascontiguousarray(A.T), np.empty((A.shape[1], A.shape[1]), A.dtype)

    def run():
        np.matmul(At, A, out=H)
    return run
