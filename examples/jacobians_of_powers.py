"""Jacobian matrices of X -> X^2 and A -> A^3, by forward and reverse mode, against the
course's Kronecker-product formulas.

    python examples/jacobians_of_powers.py [--out DIR]

With vec stacking columns, vec(A dX B) = (B^T kron A) vec(dX), so the product rule gives

    d(X^2) = dX X + X dX              ->  J = X^T kron I + I kron X
    d(A^3) = dA A^2 + A dA A + A^2 dA ->  J = (A^2)^T kron I + A^T kron A + I kron A^2

ga.jacobian(f, vec=True, mode=...) returns exactly this n^2 x n^2 matrix (rows vec(df),
columns vec(dX)); jacfwd builds it from n^2 tangents, jacrev from n^2 cotangents, each in one
sweep.  The 2x2 case is printed in full; the plot shows the 3x3 case's 9x9 matrices.
"""
import numpy as np

import graphad as ga
from _plotting import parse_args, pyplot, save


def kron_square(X):
    I = np.eye(len(X))
    return np.kron(X.T, I) + np.kron(I, X)


def kron_cube(A):
    I, A2 = np.eye(len(A)), A @ A
    return np.kron(A2.T, I) + np.kron(A.T, A) + np.kron(I, A2)


def fd_vec_jacobian(f, X, h=1e-6):
    cols = []
    for k in range(X.size):
        E = np.zeros(X.size)
        E[k] = 1.0
        E = E.reshape(X.shape, order="F")          # the k-th column-major unit matrix
        cols.append(((f(X + h * E) - f(X - h * E)) / (2 * h)).reshape(-1, order="F"))
    return np.stack(cols, axis=1)


def main(argv=None):
    args = parse_args(__doc__, argv)
    X2 = np.array([[1.0, 2.0], [3.0, 4.0]])
    J = ga.jacobian(lambda X: X @ X, vec=True)(X2)
    print("X =\n", X2)
    print("Jacobian of X -> X^2 (vec form, 4x4):\n", J)
    print("X^T kron I + I kron X:\n", kron_square(X2))

    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 3))
    errors = {}
    for name, f, formula in (("X^2", lambda X: X @ X, kron_square),
                             ("A^3", lambda A: A @ A @ A, kron_cube)):
        want = formula(X)
        fd = fd_vec_jacobian(lambda Y: np.asarray(f(Y)), X)
        for mode in ("fwd", "rev"):
            M = ga.jacobian(f, mode=mode, vec=True)(X)
            errors[name, mode] = float(np.abs(M - want).max())
            print(f"{name} ({mode}): |J - Kronecker formula| = {errors[name, mode]:.1e}, "
                  f"|J - finite differences| = {np.abs(M - fd).max():.1e}")
    # the matrix_power primitive's own rule gives the same matrix
    M = ga.jacobian(lambda A: ga.linalg.matrix_power(A, 3), vec=True)(X)
    errors["matrix_power"] = float(np.abs(M - kron_cube(X)).max())
    print(f"ga.linalg.matrix_power(A, 3): |J - formula| = {errors['matrix_power']:.1e}")

    plt = pyplot()
    plot = None
    if plt is not None:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
        for ax, (name, formula) in zip(axes, (("X^2", kron_square), ("A^3", kron_cube))):
            M = formula(X)
            lim = np.abs(M).max()
            im = ax.imshow(M, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(f"vec Jacobian of {name} (3x3)")
            ax.set_xticks(range(0, 9, 3))
            ax.set_yticks(range(0, 9, 3))
            fig.colorbar(im, ax=ax, shrink=0.8)
        plot = save(fig, args.out, "jacobians_of_powers.png")
    return {"errors": errors, "J2": J, "plot": plot}


if __name__ == "__main__":
    main()
