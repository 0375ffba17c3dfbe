"""ga.functional: the discretized functional, its gradient against the discrete Euler-Lagrange
expression, the continuous Euler-Lagrange expression, and the worked examples (shortest path,
brachistochrone, minimal surface) against their analytic solutions."""
import importlib.util
import os

import numpy as np
import pytest

import graphad as ga
from graphad import functional as fn

_EX = os.path.join(os.path.dirname(__file__), "..", "examples", "variations.py")
_spec = importlib.util.spec_from_file_location("variations_example", _EX)
variations = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(variations)


# integrands F(y, y', x), with an explicit x dependence and couplings of y and y'
INTEGRANDS = {
    "arc length": lambda y, p, x: ga.sqrt(1.0 + p * p),
    "oscillator": lambda y, p, x: 0.5 * p * p - 0.5 * y * y,
    "surface": lambda y, p, x: y * ga.sqrt(1.0 + p * p),
    "mixed": lambda y, p, x: ga.exp(0.3 * y) * p * p + ga.sin(x * y) + x * p * y,
}


def uneven_grid(n, a=0.2, b=1.7, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.uniform(0.5, 1.5, n)
    return a + (b - a) * np.concatenate([[0.0], np.cumsum(h) / h.sum()])


@pytest.mark.parametrize("rule", ["midpoint", "trapezoid"])
@pytest.mark.parametrize("name", list(INTEGRANDS))
def test_gradient_equals_weighted_discrete_euler_lagrange(name, rule):
    """dJ_h/dy_j = c_j EL_j exactly: reverse mode through the whole sum on one side, graphad's
    F_y, F_y' assembled by the discrete Euler-Lagrange formula on the other."""
    F = INTEGRANDS[name]
    for x in (np.linspace(0.2, 1.7, 12), uneven_grid(15)):
        J = fn.functional(F, x, 1.2, 2.0, rule=rule)
        y = J.initial_guess() + 0.2 * np.sin(np.arange(J.n) + 1.0)
        g = ga.grad(J)(y)
        el = J.euler_lagrange(y)
        np.testing.assert_allclose(g, J.weights * el, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(J.weights, (np.diff(x)[:-1] + np.diff(x)[1:]) / 2)
        # and forward mode, and finite differences, agree with it
        ga.check_grad(J, y, modes=("rev", "fwd"))


def test_functional_value_is_the_quadrature_rule():
    F = INTEGRANDS["mixed"]
    x = uneven_grid(9)
    y = np.cos(x)
    h, p = np.diff(x), np.diff(y) / np.diff(x)
    ym, xm = (y[1:] + y[:-1]) / 2, (x[1:] + x[:-1]) / 2

    def Fnp(y, p, x):
        return np.exp(0.3 * y) * p * p + np.sin(x * y) + x * p * y

    J = fn.functional(F, x, y[0], y[-1])
    np.testing.assert_allclose(float(J(y[1:-1])), np.sum(h * Fnp(ym, p, xm)), rtol=1e-14)
    J = fn.functional(F, x, y[0], y[-1], rule="trapezoid")
    np.testing.assert_allclose(float(J(y[1:-1])),
                               np.sum(h * (Fnp(y[:-1], p, x[:-1]) + Fnp(y[1:], p, x[1:])) / 2),
                               rtol=1e-14)
    np.testing.assert_allclose(J.full(y[1:-1]), y)


def test_continuous_euler_lagrange_closed_forms():
    x = np.linspace(-1.0, 2.0, 7)
    # F = y'^2/2 - y^2/2: EL = -y - y''
    F = INTEGRANDS["oscillator"]
    np.testing.assert_allclose(fn.euler_lagrange(F, lambda t: t ** 3, x), -x ** 3 - 6 * x,
                               rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(fn.euler_lagrange(F, ga.sin, x), 0.0, atol=1e-14)
    # F = sqrt(1 + y'^2): EL = -y'' / (1 + y'^2)^(3/2), minus the curvature
    el = fn.euler_lagrange(INTEGRANDS["arc length"], lambda t: t * t, x)
    np.testing.assert_allclose(el, -2.0 / (1 + 4 * x * x) ** 1.5, rtol=1e-13)
    # the catenary solves the minimal-surface equation
    c = 1.3
    el = fn.euler_lagrange(INTEGRANDS["surface"], lambda t: c * ga.cosh(t / c), x)
    np.testing.assert_allclose(el, 0.0, atol=1e-13)


@pytest.mark.parametrize("name", ["surface", "mixed"])
def test_discrete_euler_lagrange_is_second_order(name):
    F = INTEGRANDS[name]
    y = lambda t: 1.5 + 0.4 * ga.sin(2.0 * t)             # noqa: E731
    errors = []
    for n in (20, 40, 80):
        x = np.linspace(0.2, 1.7, n + 1)
        Y = 1.5 + 0.4 * np.sin(2.0 * x)
        J = fn.functional(F, x, Y[0], Y[-1])
        errors.append(np.abs(J.euler_lagrange(Y[1:-1]) - fn.euler_lagrange(F, y, x[1:-1])).max())
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(rates > 1.9), (errors, rates)


def test_hessian_is_tridiagonal_and_symmetric():
    x = uneven_grid(10)
    J = fn.functional(INTEGRANDS["mixed"], x, 1.0, 0.5)
    y = J.initial_guess() + 0.1
    H = ga.hessian(J)(y)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12)
    assert np.all(np.triu(H, 2) == 0) and np.all(np.tril(H, -2) == 0)
    from prim_cases import fd_jacobian
    np.testing.assert_allclose(H, fd_jacobian(ga.grad(J), [y], 0), rtol=1e-6, atol=1e-7)


def test_float32_grid():
    x = np.linspace(0.0, 1.0, 9, dtype=np.float32)
    J = fn.functional(INTEGRANDS["surface"], x, 1.0, 2.0)
    y = J.initial_guess()
    assert y.dtype == np.float32
    v, g = ga.value_and_grad(J)(y)
    assert v.dtype == np.float32 and g.dtype == np.float32
    J64 = fn.functional(INTEGRANDS["surface"], x.astype(np.float64), 1.0, 2.0)
    np.testing.assert_allclose(g, ga.grad(J64)(y.astype(np.float64)), rtol=2e-5)


def test_bad_arguments():
    F = INTEGRANDS["arc length"]
    with pytest.raises(ValueError, match="rule"):
        fn.functional(F, np.linspace(0, 1, 5), 0.0, 1.0, rule="simpson")
    with pytest.raises(ValueError, match="increasing"):
        fn.functional(F, np.array([0.0, 0.5, 0.4, 1.0]), 0.0, 1.0)
    with pytest.raises(ValueError, match="at least 3"):
        fn.functional(F, np.array([0.0, 1.0]), 0.0, 1.0)
    J = fn.functional(F, np.linspace(0, 1, 5), 0.0, 1.0)
    with pytest.raises(ValueError, match=r"interior values, shape \(3,\)"):
        J(np.zeros(5))


# ----------------------------------------------------------------------------------------------
# the worked examples (examples/variations.py), on small grids

def test_shortest_path_is_a_straight_line():
    x, y, exact, J, res = variations.shortest_path(n=16)
    assert res.converged
    np.testing.assert_allclose(y, exact, atol=1e-9)
    np.testing.assert_allclose(float(J(res.x)), np.hypot(2.0, 2.0), rtol=1e-12)
    assert np.abs(J.euler_lagrange(res.x)).max() < 1e-8


def test_brachistochrone_is_a_cycloid():
    errs, times = [], []
    for n in (12, 24):
        y, x, exact, J, res, (r, th) = variations.brachistochrone(n=n)
        assert res.converged
        errs.append(np.abs(x - exact).max())
        times.append(abs(float(J(res.x)) - np.sqrt(r / variations.G) * th))
    assert errs[1] < 1e-3 and times[1] < 1e-4
    assert errs[0] / errs[1] > 3.0 and times[0] / times[1] > 3.0      # second order
    # the cycloid through (1, 1): theta_end solves (th - sin th) / (1 - cos th) = 1
    assert abs((th - np.sin(th)) / (1 - np.cos(th)) - 1.0) < 1e-12
    # faster than the straight line, whose time is sqrt(2 L^2 / (g b))
    assert float(J(res.x)) < np.sqrt(2 * 2.0 / variations.G) - 0.05


def test_minimal_surface_is_a_catenary():
    errs = []
    for n in (12, 24):
        x, y, exact, J, res, c = variations.minimal_surface(n=n)
        assert res.converged
        errs.append(np.abs(y - exact).max())
    assert abs(c * np.cosh(1.0 / c) - 2.0) < 1e-12 and c > 1.0     # the stable (larger) root
    assert errs[1] < 1e-4 and errs[0] / errs[1] > 3.5
    # the minimizer is a local minimum: the Hessian of J_h is positive definite there
    assert np.linalg.eigvalsh(ga.hessian(J)(res.x)).min() > 0


def test_variations_example_runs(tmp_path, monkeypatch, capsys):
    out = tmp_path / "v.png"
    monkeypatch.setattr("sys.argv", ["variations.py", "--n", "12", "--plot", str(out)])
    variations.main()
    text = capsys.readouterr().out
    assert "catenary" in text and "cycloid" in text
    pytest.importorskip("matplotlib")
    assert out.stat().st_size > 0
