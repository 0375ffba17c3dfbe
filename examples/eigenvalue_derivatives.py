"""Derivatives of eigenvalues of symmetric matrices, simple and repeated.

    python examples/eigenvalue_derivatives.py [--out DIR]

For symmetric A with eigenpairs A v_k = lambda_k v_k (|v_k| = 1), a simple eigenvalue moves as

    d lambda_k = v_k^T dA v_k,     so   grad lambda_k = v_k v_k^T,

which ga.linalg.eigh / eigvalsh give in both modes.  At a repeated eigenvalue a single
lambda_k has no derivative (which branch is "the k-th" switches as the perturbation changes
direction), but every function of the whole spectrum still has one, and graphad's is exact:

  * sum(w**2) = |A|_F^2,  so its gradient is 2A, even where eigenvalues coincide;
  * the sum over a cluster of equal eigenvalues has gradient P, the projector onto their
    eigenspace (independent of the basis LAPACK picked inside it);
  * along a direction dA the cluster splits with one-sided slopes the eigenvalues of
    V_c^T dA V_c (V_c: an orthonormal basis of the eigenspace; degenerate perturbation theory).

The plot shows the eigenvalues of A + t dA through a repeated eigenvalue at t = 0, with the
predicted slopes.
"""
import numpy as np

import graphad as ga
from _plotting import parse_args, pyplot, save


def sym(M):
    return (M + M.T) / 2


def main(argv=None):
    args = parse_args(__doc__, argv)
    rng = np.random.default_rng(5)
    out = {}

    # simple eigenvalues: d lambda_k = v_k^T dA v_k
    A = sym(rng.standard_normal((4, 4)))
    dA = sym(rng.standard_normal((4, 4)))
    w, V = np.linalg.eigh(A)
    predicted = np.einsum("ik,ij,jk->k", V, dA, V)
    _, dw = ga.jvp(ga.linalg.eigvalsh, (A,), (dA,))
    h = 1e-6
    fd = (np.linalg.eigvalsh(A + h * dA) - np.linalg.eigvalsh(A - h * dA)) / (2 * h)
    out["simple_jvp_error"] = float(np.abs(dw - predicted).max())
    out["simple_fd_error"] = float(np.abs(fd - predicted).max())
    print(f"simple eigenvalues {np.round(w, 3)}:")
    print(f"  d lambda = v^T dA v: jvp error {out['simple_jvp_error']:.1e}, finite differences "
          f"error {out['simple_fd_error']:.1e}")
    g1 = ga.grad(lambda A: ga.linalg.eigvalsh(A)[1])(A)
    out["simple_grad_error"] = float(np.abs(g1 - np.outer(V[:, 1], V[:, 1])).max())
    print(f"  grad lambda_1 = v_1 v_1^T: error {out['simple_grad_error']:.1e}")

    # a repeated eigenvalue: A = Q diag(1, 1, 3, 5) Q^T
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    lam = np.array([1.0, 1.0, 3.0, 5.0])
    A = sym(Q @ np.diag(lam) @ Q.T)
    print(f"repeated eigenvalue: A = Q diag({', '.join(f'{x:g}' for x in lam)}) Q^T")
    g_sq = ga.grad(lambda A: (ga.linalg.eigvalsh(A) ** 2).sum())(A)
    out["repeated_sum_sq_error"] = float(np.abs(g_sq - 2 * A).max())
    print(f"  grad of sum(w**2) = 2A: error {out['repeated_sum_sq_error']:.1e}")
    g_cl = ga.grad(lambda A: ga.linalg.eigvalsh(A)[:2].sum())(A)
    P = Q[:, :2] @ Q[:, :2].T
    out["repeated_cluster_error"] = float(np.abs(g_cl - P).max())
    print(f"  grad of lambda_0 + lambda_1 = the projector onto their eigenspace: error "
          f"{out['repeated_cluster_error']:.1e}")
    g_det = ga.grad(lambda A: ga.log(ga.linalg.eigvalsh(A)).sum())(A)     # log det A
    out["repeated_logdet_error"] = float(np.abs(g_det - np.linalg.inv(A)).max())
    print(f"  grad of sum(log w) = log det A is A^(-1): error {out['repeated_logdet_error']:.1e}")

    # the cluster splits along dA with slopes eig(V_c^T dA V_c)
    dA = sym(rng.standard_normal((4, 4)))
    mu = np.linalg.eigvalsh(Q[:, :2].T @ dA @ Q[:, :2])
    t = 1e-6
    one_sided = (np.linalg.eigvalsh(A + t * dA)[:2] - 1.0) / t
    out["split_error"] = float(np.abs(one_sided - mu).max())
    print(f"  along dA the pair splits with slopes {np.round(mu, 4)} = eig(V_c^T dA V_c); "
          f"one-sided differences {np.round(one_sided, 4)}")
    back = (np.linalg.eigvalsh(A - t * dA)[:2] - 1.0) / (-t)
    out["lambda0_slopes"] = (float(back[0]), float(one_sided[0]))
    print(f"  lambda_0 alone has no derivative here: its slope is {back[0]:.4f} for t < 0 and "
          f"{one_sided[0]:.4f} for t > 0 (the branches cross)")

    plt = pyplot()
    out["plot"] = None
    if plt is not None:
        ts = np.linspace(-0.4, 0.4, 161)
        curves = np.array([np.linalg.eigvalsh(A + s * dA) for s in ts])
        slopes = np.concatenate([mu, np.einsum("i,ij,j->", Q[:, 2], dA, Q[:, 2])[None],
                                 np.einsum("i,ij,j->", Q[:, 3], dA, Q[:, 3])[None]])
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for k in range(4):
            ax.plot(ts, curves[:, k], lw=2, label=f"lambda_{k}(A + t dA)")
        for lam_k, s in zip(lam, slopes):
            ax.plot(ts, lam_k + s * ts, "k--", lw=0.8)
        ax.axvline(0, color="gray", lw=0.5)
        ax.set_xlabel("t")
        ax.set_title("eigenvalues through a repeated one; dashed: predicted slopes at t = 0")
        ax.legend(fontsize=8)
        out["plot"] = save(fig, args.out, "eigenvalue_derivatives.png")
    return out


if __name__ == "__main__":
    main()
