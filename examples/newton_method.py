"""Newton's method with graphad's Jacobian: quadratic convergence, seen in the residuals.

    python examples/newton_method.py [--out DIR]

Newton's method linearizes f at x_k, f(x_k + dx) ~ f(x_k) + f'(x_k)[dx], and solves the linear
equation f'(x_k)[dx] = -f(x_k).  Near a simple root the error is squared at every step: the
number of correct digits doubles, and r_{k+1} / r_k^2 (r_k = |f(x_k)|) settles to a constant.
Three problems, each solved by ga.optimize.newton (the Jacobian from graphad, a line search
on |f| far from the root):

  sqrt(2)              x^2 - 2 = 0 from x0 = 1
  a 3x3 system         a sphere, a saddle and an exponential surface intersecting at one point
  a matrix square root X^2 = A for a symmetric positive definite A, from X0 = I (the unknown
                       is a matrix: the Jacobian is the 16x16 matrix I kron X + X^T kron I)
"""
import numpy as np
import scipy.linalg

import graphad as ga
from _plotting import parse_args, pyplot, save


def system(x):
    return ga.stack([x[0] ** 2 + x[1] ** 2 + x[2] ** 2 - 3.0,
                     x[0] * x[1] - x[2],
                     ga.exp(x[0]) - x[1] - x[2]])


def report(name, res):
    print(f"\n{name}: converged={res.converged} in {res.iterations} steps ({res.message})")
    print("   k   |f(x_k)|      r_k+1 / r_k^2")
    r = res.residuals
    for k, rk in enumerate(r):
        ratio = f"{r[k] / r[k - 1] ** 2:10.3g}" if k and r[k] > 0 else ""
        if ratio and rk < 1e-13:
            ratio += "   (|f| at rounding level: the ratio means nothing here)"
        print(f"  {k:2d}   {rk:10.3e}   {ratio}")


def main(argv=None):
    args = parse_args(__doc__, argv)
    rng = np.random.default_rng(0)
    B = rng.standard_normal((4, 4))
    A = B @ B.T + 4 * np.eye(4)
    problems = {
        "sqrt(2)": ga.optimize.newton(lambda x: x * x - 2.0, 1.0, tol=1e-14),
        "3x3 system": ga.optimize.newton(system, np.array([1.5, 0.5, 0.8])),
        "matrix square root": ga.optimize.newton(lambda X: X @ X - A, np.eye(4), tol=1e-11),
    }
    for name, res in problems.items():
        report(name, res)
    root = float(problems["sqrt(2)"].x)
    print(f"\nsqrt(2) = {root:.16f} (error {abs(root - np.sqrt(2)):.1e})")
    X = problems["matrix square root"].x
    print(f"matrix square root: |X - sqrtm(A)| = "
          f"{np.abs(X - scipy.linalg.sqrtm(A).real).max():.1e}")
    # the Jacobian Newton used at the last step, in the course's vec form
    J = ga.jacobian(lambda X: X @ X - A, vec=True)(X)
    I = np.eye(4)
    print(f"its Jacobian equals I kron X + X^T kron I: "
          f"{np.abs(J - (np.kron(I, X) + np.kron(X.T, I))).max():.1e}")

    plt = pyplot()
    plot = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, res in problems.items():
            r = np.maximum(res.residuals, 1e-17)
            ax.semilogy(range(len(r)), r, "o-", label=name)
        ax.set_xlabel("Newton step k")
        ax.set_ylabel("|f(x_k)|")
        ax.set_title("Newton's method: the residual is squared at every step")
        ax.legend()
        plot = save(fig, args.out, "newton_method.png")
    return {"results": problems, "plot": plot}


if __name__ == "__main__":
    main()
