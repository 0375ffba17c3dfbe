"""Derivatives of the determinant and the inverse, including at singular matrices.

    python examples/det_inverse_derivatives.py [--out DIR]

From the course (and Giles 2008):

    d(det A)    = det(A) tr(A^{-1} dA) = <cof(A), dA>,   grad det A = cof(A) = det(A) A^{-T}
    d log|det A| = tr(A^{-1} dA),                        grad = A^{-T}
    d(A^{-1})   = -A^{-1} dA A^{-1},    VJP  G -> -A^{-T} G A^{-T}
    d^2(A^{-1})[dA, dA] = 2 A^{-1} dA A^{-1} dA A^{-1}

det A is a polynomial in the entries, so it has a derivative everywhere: at a singular matrix
the formula det(A) A^{-T} is 0 * infinity, but the cofactor matrix is still there (nonzero at
rank n-1, exactly zero at rank n-2 and below).  ga.linalg.det gives it; finite differences
confirm it.  The plot shows the remainders |f(A + e dA) - f(A) - e f'(A)[dA]| of det and inv:
slope 2.
"""
import numpy as np

import graphad as ga
from _plotting import parse_args, pyplot, save, slope


def cofactor(A):
    """The cofactor matrix, entry by entry from minors (the definition, no inverse)."""
    n = len(A)
    C = np.empty_like(A)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(A, i, axis=0), j, axis=1)
            C[i, j] = (-1) ** (i + j) * np.linalg.det(minor)
    return C


def fd_grad(f, A, h=1e-5):
    G = np.zeros_like(A)
    for idx in np.ndindex(A.shape):
        E = np.zeros_like(A)
        E[idx] = h
        G[idx] = (f(A + E) - f(A - E)) / (2 * h)
    return G


def main(argv=None):
    args = parse_args(__doc__, argv)
    rng = np.random.default_rng(11)
    n = 4
    A = rng.standard_normal((n, n))
    dA = rng.standard_normal((n, n))
    Y = np.linalg.inv(A)
    out = {}

    g = ga.grad(ga.linalg.det)(A)
    out["det_grad_error"] = float(np.abs(g - np.linalg.det(A) * Y.T).max())
    print(f"grad det A = det(A) A^(-T): error {out['det_grad_error']:.1e}")
    _, ddet = ga.jvp(ga.linalg.det, (A,), (dA,))
    out["det_jvp_error"] = float(abs(ddet - np.linalg.det(A) * np.trace(Y @ dA)))
    print(f"d det = det(A) tr(A^(-1) dA): error {out['det_jvp_error']:.1e}")
    gl = ga.grad(lambda A: ga.linalg.slogdet(A)[1])(A)
    out["logdet_grad_error"] = float(np.abs(gl - Y.T).max())
    print(f"grad log|det A| = A^(-T): error {out['logdet_grad_error']:.1e}")

    _, dY = ga.jvp(ga.linalg.inv, (A,), (dA,))
    out["inv_jvp_error"] = float(np.abs(dY - (-Y @ dA @ Y)).max())
    print(f"d(A^(-1)) = -A^(-1) dA A^(-1): error {out['inv_jvp_error']:.1e}")
    G = rng.standard_normal((n, n))
    _, pull = ga.vjp(ga.linalg.inv, A)
    out["inv_vjp_error"] = float(np.abs(pull(G)[0] - (-Y.T @ G @ Y.T)).max())
    print(f"VJP of inv: G -> -A^(-T) G A^(-T): error {out['inv_vjp_error']:.1e}")
    _, d2Y = ga.jvp(lambda A: ga.jvp(ga.linalg.inv, (A,), (dA,))[1], (A,), (dA,))
    out["inv_second_error"] = float(np.abs(d2Y - 2 * Y @ dA @ Y @ dA @ Y).max())
    print(f"second derivative 2 A^(-1) dA A^(-1) dA A^(-1): error {out['inv_second_error']:.1e}")

    # singular matrices: rank n-1 and rank n-2
    U, _ = np.linalg.qr(rng.standard_normal((n, n)))
    V, _ = np.linalg.qr(rng.standard_normal((n, n)))
    for rank in (n - 1, n - 2):
        s = np.array([3.0, 2.0, 1.0, 0.5])[:n]
        s[rank:] = 0.0
        S = U @ np.diag(s) @ V.T
        g = ga.grad(ga.linalg.det)(S)
        cof = cofactor(S)
        fd = fd_grad(np.linalg.det, S)
        out[f"rank{rank}_cofactor_error"] = float(np.abs(g - cof).max())
        out[f"rank{rank}_grad_norm"] = float(np.abs(g).max())
        print(f"rank {rank} (det = {np.linalg.det(S):.1e}): grad det = cofactor matrix, error "
              f"{out[f'rank{rank}_cofactor_error']:.1e}; finite differences "
              f"{np.abs(g - fd).max():.1e}; largest entry {out[f'rank{rank}_grad_norm']:.2g}, "
              f"finite = {bool(np.all(np.isfinite(g)))}")

    # the remainders are second order
    eps = np.logspace(-5, -0.5, 19)
    rem_det = np.array([abs(np.linalg.det(A + e * dA) - np.linalg.det(A) - e * ddet)
                        for e in eps])
    rem_inv = np.array([np.linalg.norm(np.linalg.inv(A + e * dA) - Y - e * dY) for e in eps])
    fit = (eps >= 1e-4) & (eps <= 1e-1)
    out["det_remainder_slope"] = slope(eps[fit], rem_det[fit])
    out["inv_remainder_slope"] = slope(eps[fit], rem_inv[fit])
    print(f"remainder slopes: det {out['det_remainder_slope']:.2f}, "
          f"inv {out['inv_remainder_slope']:.2f} (second order: 2)")

    plt = pyplot()
    out["plot"] = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(eps, rem_det, "o-", ms=3, label="det: |det(A+e dA) - det A - e d det|")
        ax.loglog(eps, rem_inv, "s-", ms=3, label="inv: |(A+e dA)^-1 - A^-1 - e dY|")
        ax.loglog(eps, eps ** 2 * rem_inv[-1] / eps[-1] ** 2, "k--", lw=1, label="slope 2")
        ax.set_xlabel("e")
        ax.set_title("det and inverse: the derivative is the linear part")
        ax.legend(fontsize=8)
        out["plot"] = save(fig, args.out, "det_inverse_derivatives.png")
    return out


if __name__ == "__main__":
    main()
