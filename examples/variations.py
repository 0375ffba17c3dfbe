"""Three classical problems of the calculus of variations, solved by minimizing the discretized
functional with graphad gradients and compared with their analytic solutions.

    python examples/variations.py [--n 60] [--plot variations.png]

Each problem is J[y] = int F(y, y', x) dx with fixed ends, discretized by ga.functional (the
midpoint rule on a grid, finite-difference slopes) into a function of the interior values, and
minimized by ga.optimize.minimize (Newton's method: graphad's gradient and Hessian of the sum).
The minimizer makes the discrete Euler-Lagrange expression vanish, the grid version of
dF/dy - d/dx dF/dy' = 0:

  shortest path      F = sqrt(1 + y'^2)               arc length       -> a straight line
  brachistochrone    F = sqrt((1 + x'^2) / (2 g y))   time of descent  -> a cycloid
                     x = r (theta - sin theta), y = r (1 - cos theta) from (0, 0) to (a, b),
                     with x a function of the depth y (a graph while theta_end < pi).  The
                     integrand's 1 / sqrt(y) at the start would cost the midpoint rule its
                     order (the time converges like sqrt(h)); with y = s^2 the functional is
                     int sqrt(4 s^2 + x_s^2) / (s sqrt(2 g)) ds, smooth up to s = 0 (x ~ s^3
                     there), and the time converges like h^2
  minimal surface    F = y sqrt(1 + y'^2)             area / (2 pi) of the surface of revolution
                     -> a catenary y = c cosh(x / c), c from c cosh(1 / c) = Y (the larger
                     root: the stable one), found with ga.optimize.newton
"""
import argparse

import numpy as np

import graphad as ga

G = 9.81


def shortest_path(n=40, a=(0.0, 1.0), b=(2.0, 3.0)):
    """The geodesic of the plane between the points a and b on an n-cell grid, started from a
    wiggly path.  Returns (x, y_numeric, y_analytic, J, result)."""
    x = np.linspace(a[0], b[0], n + 1)
    J = ga.functional.functional(lambda y, yp, x: ga.sqrt(1.0 + yp * yp), x, a[1], b[1])
    y0 = J.initial_guess() + 0.3 * np.sin(3 * np.pi * (x[1:-1] - a[0]) / (b[0] - a[0]))
    res = J.minimize(y0)
    exact = a[1] + (x - a[0]) * (b[1] - a[1]) / (b[0] - a[0])
    return x, J.full(res.x), exact, J, res


def cycloid_through(a, b):
    """The cycloid x = r (th - sin th), y = r (1 - cos th) from the origin through (a, b)
    (y measured downwards): (r, theta_end), theta_end from Newton's method on
    (th - sin th) / (1 - cos th) = a / b."""
    ratio = a / b
    res = ga.optimize.newton(lambda th: (th - ga.sin(th)) - ratio * (1.0 - ga.cos(th)), 2.0,
                             tol=1e-13)
    th = float(res.x)
    return b / (1.0 - np.cos(th)), th


def brachistochrone(n=40, a=1.0, b=1.0):
    """The curve of fastest descent from (0, 0) to (a, b), depth b below, on a grid of n cells
    uniform in s = sqrt(depth).  Returns (depth, x_numeric, x_analytic, J, result,
    (r, theta_end)); J(res.x) is the time of descent in seconds."""
    r, th_end = cycloid_through(a, b)
    if th_end >= np.pi:
        raise ValueError("brachistochrone: the end is past the cycloid's lowest point; the "
                         "path is then not a graph over the depth (take a / b < pi / 2)")
    s = np.linspace(0.0, np.sqrt(b), n + 1)
    # T = int sqrt(1 + x_y^2) / sqrt(2 g y) dy,  y = s^2,  x_y = x_s / (2 s)
    J = ga.functional.functional(
        lambda x, xs, s: ga.sqrt(4.0 * s * s + xs * xs) / (s * np.sqrt(2 * G)), s, 0.0, a)
    y = s * s
    res = J.minimize(a * y[1:-1] / b)                  # from the straight line
    th = np.arccos(1.0 - y / r)
    exact = r * (th - np.sin(th))
    return y, J.full(res.x), exact, J, res, (r, th_end)


def catenary_constant(Y, half_width=1.0):
    """c of the stable catenary y = c cosh(x / c) through (+-half_width, Y), by Newton's
    method from c = Y (the larger root of c cosh(half_width / c) = Y)."""
    res = ga.optimize.newton(lambda c: c * ga.cosh(half_width / c) - Y, float(Y), tol=1e-13)
    return float(res.x)


def minimal_surface(n=40, Y=2.0, half_width=1.0):
    """The profile of the minimal surface of revolution between two coaxial rings of radius
    Y at x = +-half_width.  Returns (x, y_numeric, y_analytic, J, result, c)."""
    x = np.linspace(-half_width, half_width, n + 1)
    J = ga.functional.functional(lambda y, yp, x: y * ga.sqrt(1.0 + yp * yp), x, Y, Y)
    res = J.minimize()
    c = catenary_constant(Y, half_width)
    return x, J.full(res.x), c * np.cosh(x / c), J, res, c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="grid cells")
    ap.add_argument("--plot", default="variations.png", help="PNG path ('' for none)")
    args = ap.parse_args()

    x1, y1, e1, J1, r1 = shortest_path(args.n)
    print(f"shortest path     {r1.iterations:2d} Newton steps  max |y - line|     "
          f"{np.abs(y1 - e1).max():.2e}  length {float(J1(r1.x)):.6f} "
          f"(exact {np.hypot(2.0, 2.0):.6f})")
    y2, x2, e2, J2, r2, (r, th) = brachistochrone(args.n)
    print(f"brachistochrone   {r2.iterations:2d} Newton steps  max |x - cycloid|  "
          f"{np.abs(x2 - e2).max():.2e}  time {float(J2(r2.x)):.6f} s "
          f"(cycloid {np.sqrt(r / G) * th:.6f} s; straight line {float(J2(r2.history[0])):.6f} s, "
          f"exactly {np.sqrt(2 * (x2[-1] ** 2 + y2[-1] ** 2) / (G * y2[-1])):.6f} s)")
    x3, y3, e3, J3, r3, c = minimal_surface(args.n)
    print(f"minimal surface   {r3.iterations:2d} Newton steps  max |y - catenary| "
          f"{np.abs(y3 - e3).max():.2e}  area {2 * np.pi * float(J3(r3.x)):.6f} "
          f"(catenary c = {c:.6f})")
    print(f"discrete Euler-Lagrange residual at the solutions: "
          f"{np.abs(J1.euler_lagrange(r1.x)).max():.1e}, "
          f"{np.abs(J2.euler_lagrange(r2.x)).max():.1e}, "
          f"{np.abs(J3.euler_lagrange(r3.x)).max():.1e}")

    if args.plot:
        try:
            import matplotlib
        except ImportError:
            print("matplotlib is not installed: no plot")
            return
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
        ax = axes[0]
        ax.plot(x1, e1, "k-", label="straight line")
        ax.plot(x1, J1.full(r1.history[0]), ":", color="gray", label="start")
        ax.plot(x1, y1, "o", ms=3, label="minimizer of J_h")
        ax.set_title("shortest path")
        ax = axes[1]
        ax.plot(e2, y2, "k-", label="cycloid")
        ax.plot(x2, y2, "o", ms=3, label="minimizer of J_h")
        ax.plot([0, x2[-1]], [0, y2[-1]], ":", color="gray", label="start")
        ax.invert_yaxis()
        ax.set_aspect("equal")
        ax.set_title("brachistochrone (depth downwards)")
        ax = axes[2]
        ax.plot(x3, e3, "k-", label=f"catenary c = {c:.3f}")
        ax.plot(x3, y3, "o", ms=3, label="minimizer of J_h")
        ax.plot(x3, -e3, "k-", alpha=0.3)
        ax.set_title("minimal surface of revolution (profile)")
        for ax in axes:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        plt.close(fig)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
