"""The derivative as a linear map: f(x + dx) = f(x) + f'(x)[dx] + o(|dx|).

    python examples/derivatives_as_linear_maps.py [--out DIR]

The course's starting point: the derivative f'(x) is the linear operator that best
approximates the change of f near x, whatever x is (a number, a vector, a matrix).  graphad
applies it without forming a matrix: ga.jvp gives f'(x)[dx] (forward mode), ga.vjp the adjoint
map u -> f'(x)^T[u] (reverse mode).  Shown here:

  * f(x) = x^T x:   f'(x)[dx] = 2 x^T dx, so the gradient is 2x;
  * f(A) = A^2:     f'(A)[dA] = A dA + dA A (not 2 A dA: matrices do not commute);
  * f(A) = A^2 again: the map is linear (jvp of a u + b v = a jvp u + b jvp v), the VJP is its
    adjoint (<u, J v> = <J^T u, v>), and the remainder f(A + e dA) - f(A) - e f'(A)[dA] is
    e^2 dA^2: second order in e (slope 2 on a log-log plot; the plot shows it).
"""
import numpy as np

import graphad as ga
from _plotting import parse_args, pyplot, save, slope


def square(A):
    return A @ A


def main(argv=None):
    args = parse_args(__doc__, argv)
    rng = np.random.default_rng(1)
    out = {}

    # f(x) = x^T x: the gradient is the vector that represents the linear map dx -> 2 x^T dx
    x, dx = rng.standard_normal(5), rng.standard_normal(5)
    _, df = ga.jvp(lambda x: x @ x, (x,), (dx,))
    g = ga.grad(lambda x: x @ x)(x)
    out["dot_gradient_error"] = float(np.abs(g - 2 * x).max())
    print(f"f(x) = x^T x:  f'(x)[dx] = {float(df):.6f}, 2 x^T dx = {2 * x @ dx:.6f}; "
          f"|grad - 2x| = {out['dot_gradient_error']:.1e}")

    # f(A) = A^2: f'(A)[dA] = A dA + dA A
    A, dA = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    _, dF = ga.jvp(square, (A,), (dA,))
    out["square_error"] = float(np.abs(dF - (A @ dA + dA @ A)).max())
    out["square_vs_2AdA"] = float(np.abs(dF - 2 * A @ dA).max())
    print(f"f(A) = A^2:    |f'(A)[dA] - (A dA + dA A)| = {out['square_error']:.1e},  "
          f"|f'(A)[dA] - 2 A dA| = {out['square_vs_2AdA']:.2f}  (2 A dA is wrong)")

    # linearity of the map, and the VJP as its adjoint
    u, v = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    a, b = 0.7, -1.3
    lin = ga.jvp(square, (A,), (a * u + b * v,))[1] - (a * ga.jvp(square, (A,), (u,))[1]
                                                      + b * ga.jvp(square, (A,), (v,))[1])
    out["linearity_error"] = float(np.abs(lin).max())
    _, pullback = ga.vjp(square, A)
    (JTu,) = pullback(u)
    Jv = ga.jvp(square, (A,), (v,))[1]
    out["adjoint_error"] = float(abs(np.sum(u * Jv) - np.sum(JTu * v)))
    print(f"linear:        |J(a u + b v) - a J u - b J v| = {out['linearity_error']:.1e}")
    print(f"adjoint:       |<u, J v> - <J^T u, v>| = {out['adjoint_error']:.1e}  "
          f"(J^T u = A^T u + u A^T: {np.abs(JTu - (A.T @ u + u @ A.T)).max():.1e})")

    # the remainder is second order: f(A + e dA) - f(A) - e f'(A)[dA] = e^2 dA^2
    eps = np.logspace(-6, 0, 25)
    rem = np.array([np.linalg.norm(square(A + e * dA) - square(A) - e * dF) for e in eps])
    first = np.array([np.linalg.norm(square(A + e * dA) - square(A)) for e in eps])
    fit = eps > 1e-4                           # below, the remainder is rounding
    out["remainder_slope"] = slope(eps[fit], rem[fit])
    out["change_slope"] = slope(eps, first)
    print(f"remainder:     |f(A + e dA) - f(A) - e f'(A)[dA]| ~ e^{out['remainder_slope']:.2f}"
          f"  (the change itself ~ e^{out['change_slope']:.2f})")

    plt = pyplot()
    out["plot"] = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(eps, first, "o-", ms=3, label="|f(A + e dA) - f(A)|  (first order)")
        ax.loglog(eps, rem, "s-", ms=3, label="|f(A + e dA) - f(A) - e f'(A)[dA]|")
        ax.loglog(eps, eps ** 2 * np.linalg.norm(dA @ dA), "k--", lw=1,
                  label="e^2 |dA^2|  (slope 2)")
        ax.set_xlabel("e")
        ax.set_title("f(A) = A^2: the derivative is the linear part of the change")
        ax.legend(fontsize=8)
        out["plot"] = save(fig, args.out, "derivatives_as_linear_maps.png")
    return out


if __name__ == "__main__":
    main()
