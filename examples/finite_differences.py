"""Finite differences against the exact derivative: truncation error, rounding error, and the
step that balances them.

    python examples/finite_differences.py [--out DIR]

For f(A) = A^3 (a matrix function; the exact f'(A)[dA] = dA A^2 + A dA A + A^2 dA comes from
ga.jvp) the relative error of the forward difference (f(A + h dA) - f(A)) / h and of the central
difference (f(A + h dA) - f(A - h dA)) / 2h is measured for steps h from 1e-15 to 1e-1.  On a
log-log plot each error is a "V": on the right the truncation error, slope 1 (forward) and 2
(central); on the left the rounding error eps / h, slope -1.  The bottom of the V is near
h ~ eps^(1/2) (forward) and eps^(1/3) (central), where ga.finite_diff puts its default step.
"""
import numpy as np

import graphad as ga
from _plotting import parse_args, pyplot, save, slope

EPS = np.finfo(float).eps


def f(A):
    return A @ A @ A


def errors(A, dA, hs):
    """Relative errors of the forward and central differences at each step in hs."""
    _, exact = ga.jvp(f, (A,), (dA,))
    norm = np.linalg.norm(exact)
    out = {}
    for method in ("forward", "central"):
        out[method] = np.array([np.linalg.norm(ga.finite_diff(f, A, dA, method=method, h=h)
                                               - exact) / norm for h in hs])
    return out


def main(argv=None):
    args = parse_args(__doc__, argv)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4)) / 2
    dA = rng.standard_normal((4, 4))
    dA /= np.abs(dA).max()
    hs = np.logspace(-15, -1, 57)
    err = errors(A, dA, hs)

    # fit the two arms of each V away from its bottom
    trunc = {"forward": (1e-6, 1e-2), "central": (1e-3, 1e-1)}
    round_ = {"forward": (1e-14, 1e-10), "central": (1e-14, 1e-9)}
    result = {"h": hs, "errors": err}
    for method in ("forward", "central"):
        e = err[method]
        lo, hi = trunc[method]
        s_trunc = slope(hs[(hs >= lo) & (hs <= hi)], e[(hs >= lo) & (hs <= hi)])
        lo, hi = round_[method]
        s_round = slope(hs[(hs >= lo) & (hs <= hi)], e[(hs >= lo) & (hs <= hi)])
        best = hs[np.argmin(e)]
        result[method] = {"truncation_slope": s_trunc, "roundoff_slope": s_round,
                          "best_h": float(best), "best_error": float(e.min())}
        print(f"{method:>7}: truncation slope {s_trunc:5.2f}, rounding slope {s_round:5.2f}, "
              f"best step h = {best:.1e} (error {e.min():.1e})")
    print(f"theory:  forward slope 1, central slope 2, rounding slope -1; best h near "
          f"eps^(1/2) = {EPS ** 0.5:.1e} and eps^(1/3) = {EPS ** (1 / 3):.1e}")
    default = {m: float(np.linalg.norm(ga.finite_diff(f, A, dA, method=m)
                                       - ga.jvp(f, (A,), (dA,))[1])
                        / np.linalg.norm(ga.jvp(f, (A,), (dA,))[1]))
               for m in ("forward", "central")}
    print(f"ga.finite_diff's default step: error {default['forward']:.1e} (forward), "
          f"{default['central']:.1e} (central)")
    result["default_error"] = default

    plt = pyplot()
    result["plot"] = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for method, style in (("forward", "o-"), ("central", "s-")):
            ax.loglog(hs, err[method], style, ms=3, label=f"{method} difference "
                      f"(slope {result[method]['truncation_slope']:.2f})")
        ax.loglog(hs, 0.3 * hs, "k:", lw=1, label="slope 1")
        ax.loglog(hs, 0.3 * hs ** 2, "k--", lw=1, label="slope 2")
        ax.loglog(hs, EPS / hs, "k-.", lw=1, label="eps / h (rounding)")
        ax.set_ylim(1e-12, 10)
        ax.set_xlabel("step h")
        ax.set_ylabel("relative error of f'(A)[dA]")
        ax.set_title("finite differences of f(A) = A^3")
        ax.legend(fontsize=8)
        result["plot"] = save(fig, args.out, "finite_differences.png")
    return result


if __name__ == "__main__":
    main()
