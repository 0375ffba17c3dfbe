"""NumPy by hand: each workload's forward and backward written out with NumPy calls (what a
careful person would write without an AD engine). Not a floor: it allocates, and graphad can beat
it; the physical floors are in graphad/bench/floors.py."""
import numpy as np
import scipy.linalg as sl

from graphad.bench.peers import chain_by_hand

LABEL = "NumPy by hand"
MODULES = ()


def available(ctx):
    return None


# ---- chains of y * 1.0001, sin, + 0.5, tanh --------------------------------------------------
def chain(x0, n_ops):
    """Forward keeping what the backward needs, then the backward; returns dL/dx0."""
    return lambda: chain_by_hand(np.asarray(x0), n_ops, np.sin, np.cos, np.tanh, np.ones_like)


# ---- MLP: loss and gradients, and the SGD training step ---------------------------------------
def mlp_grad(p):
    """Cross-entropy of a ReLU MLP and its gradients (no update)."""
    Ws, bs, X, y = p["Ws"], p["bs"], p["X"], p["y"]

    def run():
        hs, h = [X], X
        for i, (W, b) in enumerate(zip(Ws, bs)):
            h = h @ W + b
            if i < len(Ws) - 1:
                h = np.maximum(h, 0)
            hs.append(h)
        z = hs[-1]
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1)
        n = len(y)
        loss = np.mean(np.log(s) - z[np.arange(n), y])
        g = e / s[:, None]
        g[np.arange(n), y] -= 1
        g /= n
        grads = []
        for i in range(len(Ws) - 1, -1, -1):
            grads.append((hs[i].T @ g, g.sum(axis=0)))
            if i:
                g = (g @ Ws[i].T) * (hs[i] > 0)
        return loss, grads[::-1]
    return run


def train_step(p, lr):
    """One SGD step, in place where it is natural; returns the loss. Owns copies of the weights."""
    Ws = [W.copy() for W in p["Ws"]]
    bs = [b.copy() for b in p["bs"]]
    X, y = p["X"], p["y"]
    last = len(Ws) - 1
    rows = np.arange(len(y))

    def run():
        hs, h = [X], X
        for i in range(last):
            h = h @ Ws[i]
            h += bs[i]
            np.maximum(h, 0, out=h)
            hs.append(h)
        z = h @ Ws[last]
        z += bs[last]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1)
        loss = np.mean(np.log(s) - z[rows, y])
        g = e
        g /= s[:, None]
        g[rows, y] -= 1
        g /= len(y)
        for i in range(last, -1, -1):
            gW = hs[i].T @ g
            gb = g.sum(axis=0)
            if i:
                g = g @ Ws[i].T
                g *= hs[i] > 0
            gW *= lr
            Ws[i] -= gW
            gb *= lr
            bs[i] -= gb
        return loss
    run.weights = (Ws, bs)
    return run


# ---- Jacobian of tanh(W2 tanh(W1 x)) -----------------------------------------------------------
def jacobian(p):
    W1, W2, x = p["W1"], p["W2"], p["x"]

    def run():
        h = np.tanh(W1 @ x)
        y = np.tanh(W2 @ h)
        return ((1 - y * y)[:, None] * (W2 * (1 - h * h)[None, :])) @ W1
    return {"jac": run}


# ---- second order: f(x) = sum(log(1 + exp(A x))) + |x|^2 / 2 ----------------------------------
def second_order(p):
    A, x, v = p["A"], p["x"], p["v"]

    def grad():
        s = 1 / (1 + np.exp(-(A @ x)))
        return A.T @ s + x

    def hvp():
        s = 1 / (1 + np.exp(-(A @ x)))
        return A.T @ (s * (1 - s) * (A @ v)) + v

    def hessian():
        s = 1 / (1 + np.exp(-(A @ x)))
        H = A.T @ ((s * (1 - s))[:, None] * A)
        H[np.diag_indices_from(H)] += 1
        return H
    return {"grad": grad, "hvp": hvp, "hessian": hessian}


# ---- gradients through linalg ------------------------------------------------------------------
def linalg(p):
    C, c, b = p["C"], p["c"], p["b"]

    def logdet():
        lu, piv = sl.lu_factor(p["A"], check_finite=False)
        np.sum(np.log(np.abs(np.diag(lu))))
        return sl.lu_solve((lu, piv), np.eye(len(lu)), trans=1, check_finite=False)   # A^-T

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
        gV = 2 * C * V
        F = w[None, :] - w[:, None]
        np.fill_diagonal(F, np.inf)
        G = V @ (np.diag(c) + (V.T @ gV) / F) @ V.T
        return (G + G.T) / 2
    return {"logdet": logdet, "inv": inv, "solve": solve, "eigh": eigh}


# ---- RK4 for dy/dt = tanh(W y) and its reverse, the stages kept --------------------------------
def odeint(p, n):
    W, y0, c = p["W"], p["y0"], p["c"]
    h = 1.0 / n

    def run():
        y, tape = y0, []
        for _ in range(n):
            k1 = np.tanh(W @ y)
            u2 = y + h / 2 * k1
            k2 = np.tanh(W @ u2)
            u3 = y + h / 2 * k2
            k3 = np.tanh(W @ u3)
            u4 = y + h * k3
            k4 = np.tanh(W @ u4)
            tape.append((y, u2, u3, u4, k1, k2, k3, k4))
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        a, gW = c.copy(), np.zeros_like(W)
        for y, u2, u3, u4, k1, k2, k3, k4 in reversed(tape):
            z4 = h / 6 * a * (1 - k4 * k4)
            g4 = W.T @ z4
            z3 = (h / 3 * a + h * g4) * (1 - k3 * k3)
            g3 = W.T @ z3
            z2 = (h / 3 * a + h / 2 * g3) * (1 - k2 * k2)
            g2 = W.T @ z2
            z1 = (h / 6 * a + h / 2 * g2) * (1 - k1 * k1)
            g1 = W.T @ z1
            gW += np.outer(z4, u4) + np.outer(z3, u3) + np.outer(z2, u2) + np.outer(z1, y)
            a = a + g1 + g2 + g3 + g4
        return gW, a
    return run
