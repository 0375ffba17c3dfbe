"""Derivative checking (graphad/checking.py): finite_diff's accuracy with its default steps and
with an explicit h, and check_grad passing on correct functions and reporting wrong rules."""
import re

import numpy as np
import pytest

import graphad as ga
from graphad import _core
from conftest import check_vjp

# smooth functions with known directional derivatives f'(x)[dx]
SMOOTH = [
    (lambda x: np.sin(x) * np.exp(x), lambda x, d: (np.cos(x) + np.sin(x)) * np.exp(x) * d),
    (lambda x: np.sum(x ** 3), lambda x, d: np.sum(3 * x ** 2 * d)),
    (lambda x: np.log1p(x * x), lambda x, d: 2 * x / (1 + x * x) * d),
    (lambda x: np.tanh(x) @ np.ones_like(x), lambda x, d: (1 - np.tanh(x) ** 2) @ d),
]


@pytest.mark.parametrize("k", range(len(SMOOTH)))
@pytest.mark.parametrize("method,tol", [("forward", 3e-7), ("central", 1e-10)])
def test_finite_diff_default_steps_are_accurate(k, method, tol):
    # near-optimal steps: errors near sqrt(eps) (forward) and eps^(2/3) (central), relative
    f, df = SMOOTH[k]
    rng = np.random.default_rng(k)
    worst = 0.0
    for _ in range(5):
        x, dx = rng.uniform(-1.5, 1.5, 6), rng.standard_normal(6)
        est = ga.finite_diff(f, x, dx, method=method)
        want = df(x, dx)
        worst = max(worst, float(np.linalg.norm(est - want) / np.linalg.norm(want)))
    assert worst < tol, f"{method}: relative error {worst:.2e}"


def test_central_beats_forward():
    f, df = SMOOTH[0]
    x, dx = np.linspace(-1, 1, 7), np.ones(7)
    err_fwd = np.max(np.abs(ga.finite_diff(f, x, dx, method="forward") - df(x, dx)))
    err_cen = np.max(np.abs(ga.finite_diff(f, x, dx) - df(x, dx)))
    assert err_cen < err_fwd / 100


def test_finite_diff_default_is_central():
    f = lambda x: np.exp(x)
    x, dx = np.array([0.3, 1.2]), np.array([1.0, -0.5])
    np.testing.assert_array_equal(ga.finite_diff(f, x, dx), ga.finite_diff(f, x, dx,
                                                                            method="central"))


def test_finite_diff_step_scales_with_x():
    # relative to the scale of x: log at x ~ 1e4 stays accurate
    x, dx = np.array([1.0e4, 3.0e4]), np.array([1.0, 1.0])
    est = ga.finite_diff(np.log, x, dx)
    np.testing.assert_allclose(est, 1 / x, rtol=1e-8)
    est = ga.finite_diff(lambda a: a ** 3, x, dx, method="forward")
    np.testing.assert_allclose(est, 3 * x ** 2, rtol=1e-6)


def test_finite_diff_with_an_explicit_step():
    f = lambda x: np.exp(x)
    x, dx, h = np.array([0.5, -0.2]), np.array([2.0, 1.0]), 1e-2
    np.testing.assert_allclose(ga.finite_diff(f, x, dx, method="forward", h=h),
                               (f(x + h * dx) - f(x)) / h, rtol=1e-15)
    np.testing.assert_allclose(ga.finite_diff(f, x, dx, method="central", h=h),
                               (f(x + h * dx) - f(x - h * dx)) / (2 * h), rtol=1e-15)
    # a large step is visibly inaccurate: h really is used
    assert not np.allclose(ga.finite_diff(f, x, dx, method="forward", h=0.5), np.exp(x) * dx,
                           rtol=1e-2)
    # central differences are exact for quadratics at any step
    q = lambda a: a * a
    np.testing.assert_allclose(ga.finite_diff(q, x, dx, h=0.3), 2 * x * dx, rtol=1e-13)


def test_finite_diff_on_graphad_functions_and_scalars():
    f = lambda x: ga.sum(ga.sin(x))
    x = np.array([0.1, 0.7])
    est = ga.finite_diff(f, x, np.array([1.0, 0.0]))
    np.testing.assert_allclose(est, np.cos(0.1), rtol=1e-9)
    np.testing.assert_allclose(ga.finite_diff(lambda t: t ** 2, 3.0, 1.0), 6.0, rtol=1e-9)
    np.testing.assert_allclose(ga.finite_diff(f, ga.tensor(x), np.ones(2)),
                               np.sum(np.cos(x)), rtol=1e-9)


def test_finite_diff_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        ga.finite_diff(np.sin, np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="method"):
        ga.finite_diff(np.sin, np.ones(3), np.ones(3), method="backward")


# ---------------------------------------------------------------------------------------------
# check_grad

@pytest.mark.parametrize("f,args", [
    (lambda a: ga.sum(ga.exp(a) * ga.sin(a)), (np.array([0.1, -0.4, 1.2]),)),
    (lambda a, b: ga.tanh(a @ b), (np.ones((2, 3)) * 0.3, np.arange(6.0).reshape(3, 2) / 6)),
    (lambda a, b: ga.logsumexp(a * b, axis=0), (np.linspace(-1, 1, 6).reshape(3, 2),
                                                np.array([0.5, 2.0]))),
    (lambda a, i: a[i] * 2.0, (np.array([1.0, 2.0, 3.0]), np.array([2, 0, 0]))),
])
def test_check_grad_passes_on_correct_functions(f, args):
    assert ga.check_grad(f, *args) is None
    assert ga.check_grad(f, *args, modes=("rev",)) is None


def test_check_grad_with_float32_arguments():
    x = np.array([0.3, -0.8, 1.1], dtype=np.float32)
    ga.check_grad(lambda a: ga.sigmoid(a) * a, x, modes=("rev",))


def _wrong_square():
    """A custom primitive y = x^2 whose VJP claims 3x (the JVP is right: 2x dx)."""
    arg = _core.arg
    return _core.Prim("bad_square", lambda params, x: np.square(x),
                      lambda n, g: (g * 3.0 * arg(n, 0),),
                      lambda n, t: t[0] * 2.0 * arg(n, 0))


def test_check_grad_reports_a_wrong_vjp():
    bad = _wrong_square()
    f = lambda a, b: _core.apply(bad, (b,)) + a
    x = np.array([0.5, 1.5, -2.0])
    with pytest.raises(ga.GradientCheckError) as e:
        ga.check_grad(f, x, x.copy(), modes=("rev",))
    report = str(e.value)
    assert "argument 1" in report and "argument 0" not in report
    m = re.search(r"relative error ([0-9.eE+-]+)", report)
    assert m and float(m.group(1)) > 0.1, report
    assert "direction" in report
    assert isinstance(e.value, AssertionError)


def test_check_grad_reports_a_vjp_that_is_not_the_transpose_of_the_jvp():
    bad = _wrong_square()
    with pytest.raises(ga.GradientCheckError) as e:
        ga.check_grad(lambda a: _core.apply(bad, (a,)), np.array([0.5, 1.5]))
    report = str(e.value)
    assert "argument 0" in report and "transpose" in report
    assert "fwd" not in report.split("transpose")[0].split("\n")[-1]


def test_check_grad_reports_a_wrong_jvp():
    arg = _core.arg
    bad = _core.Prim("bad_exp", lambda params, x: np.exp(x),
                     lambda n, g: (g * np.exp(arg(n, 0)),),
                     lambda n, t: t[0] * np.exp(arg(n, 0)) * 1.01)
    with pytest.raises(ga.GradientCheckError, match="fwd"):
        ga.check_grad(lambda a: _core.apply(bad, (a,)), np.array([0.2, -0.3]), modes=("fwd",))
    ga.check_grad(lambda a: _core.apply(bad, (a,)), np.array([0.2, -0.3]), modes=("rev",))


def test_check_grad_tolerances_are_honoured():
    bad = _wrong_square()        # VJP off by a factor 1.5
    f = lambda a: _core.apply(bad, (a,))
    x = np.array([0.5, 1.5])
    with pytest.raises(ga.GradientCheckError):
        ga.check_grad(f, x, modes=("rev",), rtol=0.3)
    ga.check_grad(f, x, modes=("rev",), rtol=0.6)


def test_the_test_helper_catches_a_wrong_vjp_too():
    bad = _wrong_square()
    with pytest.raises(AssertionError):
        check_vjp(lambda a: _core.apply(bad, (a,)), np.array([0.5, 1.5]))


def test_regression_check_grad_accepts_an_exactly_zero_gradient():
    # softmax rows sum to 1: f is constant, its gradient exactly 0, and finite differences give
    # rounding noise around 0 (relative error against noise is meaningless)
    X = np.random.default_rng(0).standard_normal((4, 5))
    assert ga.check_grad(lambda X: ga.softmax(X, axis=1).sum(), X) is None
    assert ga.check_grad(lambda X: ga.sum(ga.log_softmax(X, axis=0) * 0.0) + 3.0, X) is None
    # a large constant offset (noise ~ eps^(2/3) * 1e6) does not fail a correct gradient
    assert ga.check_grad(lambda x: ga.sum(x * x) + 1.0e6, np.array([0.3, -1.2, 2.0])) is None


def _custom_square(factor):
    """y = x^2 as a custom_vjp whose rule says factor * x * g (2 is right)."""
    @ga.custom_vjp
    def sq(x):
        return x * x

    sq.defvjp(lambda x: (x * x, x), lambda x, g: (factor * x * g,))
    return sq


def test_check_grad_still_fails_on_a_wrong_custom_vjp():
    x = np.array([0.5, 1.5, -2.0])
    ga.check_grad(lambda a: ga.sum(_custom_square(2.0)(a)), x, modes=("rev",))
    for factor in (2.02, 1.9, -2.0, 0.0):
        with pytest.raises(ga.GradientCheckError, match="rev"):
            ga.check_grad(lambda a: ga.sum(_custom_square(factor)(a)), x, modes=("rev",))
    # with a large constant in f too: the absolute tolerance grows with f, not past the error
    with pytest.raises(ga.GradientCheckError):
        ga.check_grad(lambda a: ga.sum(_custom_square(2.2)(a)) + 1.0e3, x, modes=("rev",))


def test_check_grad_fails_a_nonzero_gradient_claimed_for_a_constant_function():
    @ga.custom_vjp
    def const(x):
        return ga.sum(x) * 0.0 + 1.0

    const.defvjp(lambda x: (const(x), None), lambda res, g: (np.full(3, 1e-4) * g,))
    with pytest.raises(ga.GradientCheckError):
        ga.check_grad(const, np.array([0.1, 0.2, 0.3]), modes=("rev",))
