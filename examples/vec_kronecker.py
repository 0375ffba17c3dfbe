"""vec and the Kronecker product: linear matrix maps written as ordinary matrices.

    python examples/vec_kronecker.py [--out DIR]

vec(X) stacks the columns of X (ga.vec; ga.unvec undoes it), and for any A, X, B

    vec(A X B) = (B^T kron A) vec(X).

So every linear map of a matrix is a matrix acting on vec(X), and ga.jacobian(vec=True) of a
linear map returns that matrix.  Shown here: the identity on rectangular matrices; the Jacobian
of X -> A X B; the commutation matrix (the matrix of X -> X^T); the mixed-product rule
(P kron Q)(R kron S) = PR kron QS; and the Sylvester equation A X + X B = C solved as the
linear system (I kron A + B^T kron I) vec(X) = vec(C), against scipy.linalg.solve_sylvester.
The plot shows the sparsity of I kron A + B^T kron I.
"""
import numpy as np
import scipy.linalg

import graphad as ga
from _plotting import parse_args, pyplot, save


def arr(t):
    return t.numpy() if isinstance(t, ga.Tensor) else np.asarray(t)


def main(argv=None):
    args = parse_args(__doc__, argv)
    rng = np.random.default_rng(3)
    A, X, B = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    out = {}

    lhs = arr(ga.vec(A @ X @ B))
    rhs = arr(ga.kron(B.T, A)) @ arr(ga.vec(X))
    out["identity_error"] = float(np.abs(lhs - rhs).max())
    print(f"vec(A X B) = (B^T kron A) vec(X), A 2x3, X 3x4, B 4x5: "
          f"error {out['identity_error']:.1e}")
    print(f"unvec(vec(X), X.shape) == X: {np.array_equal(arr(ga.unvec(ga.vec(X), X.shape)), X)}")

    for mode in ("fwd", "rev"):
        M = ga.jacobian(lambda X: A @ X @ B, mode=mode, vec=True)(X)
        out[f"jacobian_error_{mode}"] = float(np.abs(M - np.kron(B.T, A)).max())
        print(f"jacobian(X -> A X B, mode={mode!r}, vec=True) is the {M.shape[0]}x{M.shape[1]}"
              f" matrix B^T kron A: error {out[f'jacobian_error_{mode}']:.1e}")

    K = ga.jacobian(lambda X: X.T, vec=True)(X)          # vec(X^T) = K vec(X)
    out["commutation_is_permutation"] = bool(np.array_equal(K @ K.T, np.eye(12))
                                             and set(np.unique(K)) == {0.0, 1.0})
    print(f"the commutation matrix K (vec(X^T) = K vec(X)) is a permutation: "
          f"{out['commutation_is_permutation']}")

    P, Q, R, S = (rng.standard_normal(s) for s in ((2, 3), (4, 2), (3, 2), (2, 3)))
    mixed = arr(ga.kron(P, Q)) @ arr(ga.kron(R, S))
    out["mixed_product_error"] = float(np.abs(mixed - arr(ga.kron(P @ R, Q @ S))).max())
    print(f"(P kron Q)(R kron S) = PR kron QS: error {out['mixed_product_error']:.1e}")

    # Sylvester: A X + X B = C  <=>  (I kron A + B^T kron I) vec(X) = vec(C)
    n, m = 4, 3
    Sa, Sb = rng.standard_normal((n, n)), rng.standard_normal((m, m))
    Sc = rng.standard_normal((n, m))
    L = np.kron(np.eye(m), Sa) + np.kron(Sb.T, np.eye(n))
    Lad = ga.jacobian(lambda X: Sa @ X + X @ Sb, vec=True)(np.zeros((n, m)))
    x = np.linalg.solve(L, arr(ga.vec(Sc)))
    Xs = arr(ga.unvec(x, (n, m)))
    ref = scipy.linalg.solve_sylvester(Sa, Sb, Sc)
    out["sylvester_operator_error"] = float(np.abs(Lad - L).max())
    out["sylvester_error"] = float(np.abs(Xs - ref).max())
    print(f"Sylvester A X + X B = C: the operator from ga.jacobian equals I kron A + B^T kron I "
          f"(error {out['sylvester_operator_error']:.1e}); the solution agrees with "
          f"scipy.linalg.solve_sylvester to {out['sylvester_error']:.1e}")

    plt = pyplot()
    out["plot"] = None
    if plt is not None:
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
        for ax, (title, M) in zip(axes, (("I kron A", np.kron(np.eye(m), Sa)),
                                         ("B^T kron I", np.kron(Sb.T, np.eye(n))),
                                         ("I kron A + B^T kron I", L))):
            ax.spy(M, markersize=4)
            ax.set_title(title)
        out["plot"] = save(fig, args.out, "vec_kronecker.png")
    return out


if __name__ == "__main__":
    main()
