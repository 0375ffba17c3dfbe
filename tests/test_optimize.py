"""ga.optimize: newton (roots) and minimize (newton / bfgs / gd): convergence, its rate, shapes
and dtypes of x0, and the failures (singular Jacobian, maxiter, non-finite values) that must
come back as converged=False, never as a NaN success."""
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize

import graphad as ga
from graphad import optimize
from graphad.optimize import OptimizeResult


def system3(x):
    """A 3x3 nonlinear system with a simple root near (0.776, 1.223, 0.949)."""
    return ga.stack([x[0] ** 2 + x[1] ** 2 + x[2] ** 2 - 3.0,
                     x[0] * x[1] - x[2],
                     ga.exp(x[0]) - x[1] - x[2]])


def system3_np(x):
    return np.array([x[0] ** 2 + x[1] ** 2 + x[2] ** 2 - 3.0, x[0] * x[1] - x[2],
                     np.exp(x[0]) - x[1] - x[2]])


def trig_system(x):
    """Another 3x3 system: a rotation-like coupling with a root at the origin shifted by c."""
    c = np.array([0.3, -0.2, 0.5])
    return ga.sin(x) + 0.5 * ga.stack([x[1] * x[2], x[0] * x[2], x[0] * x[1]]) - c


def rosen(x):
    return ((1.0 - x[:-1]) ** 2).sum() + 100.0 * ((x[1:] - x[:-1] ** 2) ** 2).sum()


def assert_quadratic(residuals, floor=1e-13, bound=10.0):
    """r_{k+1} / r_k^2 stays bounded over the steps that start near the root (r_k < 0.1) and
    end above the rounding floor; at least two such steps are required."""
    r = np.asarray(residuals)
    ratios = [r[k + 1] / r[k] ** 2 for k in range(len(r) - 1) if r[k] < 0.5 and r[k + 1] > floor]
    assert len(ratios) >= 2, f"too few steps near the root to see the rate: {r}"
    assert max(ratios) < bound, f"not quadratic: r_k+1 / r_k^2 = {ratios}, residuals {r}"
    # and superlinear in the plain sense: each of those steps gains much more than a constant
    lin = [r[k + 1] / r[k] for k in range(len(r) - 1) if r[k] < 0.5 and r[k + 1] > floor]
    assert lin[-1] < 1e-2


# ----------------------------------------------------------------------------------------------
# newton

@pytest.mark.parametrize("F, x0", [(system3, [1.5, 0.5, 0.8]), (system3, [1.0, 1.0, 1.0]),
                                   (trig_system, [0.0, 0.0, 0.0])])
def test_newton_3x3_quadratic(F, x0):
    x0 = np.array(x0)
    res = ga.optimize.newton(F, x0)
    assert isinstance(res, OptimizeResult)
    assert res.converged, res.message
    assert np.linalg.norm(np.asarray(F(res.x))) <= 1e-10
    assert res.iterations == len(res.history) - 1 == len(res.residuals) - 1
    np.testing.assert_array_equal(res.history[0], x0)
    np.testing.assert_array_equal(res.history[-1], res.x)
    for xk, rk in zip(res.history, res.residuals):
        assert rk == pytest.approx(np.linalg.norm(np.asarray(F(xk))), rel=1e-12, abs=1e-300)
    assert_quadratic(res.residuals)


def test_newton_agrees_with_scipy_fsolve():
    x0 = np.array([1.5, 0.5, 0.8])
    res = ga.optimize.newton(system3, x0)
    ref = scipy.optimize.fsolve(system3_np, x0, xtol=1e-13)
    np.testing.assert_allclose(res.x, ref, rtol=1e-9)


def test_newton_uses_the_exact_jacobian_step():
    """The first step is exactly x0 - J(x0)^{-1} f(x0) (the full step is accepted here)."""
    x0 = np.array([1.0, 1.0, 1.0])
    J = np.asarray(ga.jacfwd(system3)(x0))
    step = np.linalg.solve(J, -system3_np(x0))
    res = ga.optimize.newton(system3, x0, maxiter=1)
    np.testing.assert_allclose(res.history[1], x0 + step, rtol=1e-13)


def test_newton_scalar():
    res = ga.optimize.newton(lambda x: x ** 3 - 2.0, 1.0)
    assert res.converged
    assert np.ndim(res.x) == 0 and all(np.ndim(h) == 0 for h in res.history)
    assert res.x == pytest.approx(2.0 ** (1 / 3), rel=1e-14)
    assert_quadratic(res.residuals)
    # integer x0 is promoted to float64
    res = ga.optimize.newton(lambda x: x ** 2 - 9.0, 1)
    assert res.converged and res.x == pytest.approx(3.0)
    assert np.asarray(res.x).dtype == np.float64


def test_newton_matrix_square_root():
    """X0 of matrix shape: X^2 = A for SPD A from X0 = I gives the principal square root."""
    rng = np.random.default_rng(0)
    B = rng.standard_normal((4, 4))
    A = B @ B.T + 4 * np.eye(4)
    res = ga.optimize.newton(lambda X: X @ X - A, np.eye(4), tol=1e-11)
    assert res.converged, res.message
    assert res.x.shape == (4, 4) and all(h.shape == (4, 4) for h in res.history)
    np.testing.assert_allclose(res.x, scipy.linalg.sqrtm(A).real, rtol=1e-10, atol=1e-12)
    assert_quadratic(res.residuals)


def test_newton_damping_far_from_root():
    """f(x) = x / sqrt(1 + x^2): undamped Newton maps x to -x^3, so from x0 = 2 it diverges;
    the line search on |f| brings it in."""
    x, undamped = 2.0, []
    for _ in range(3):
        x = x - (x / np.sqrt(1 + x * x)) * (1 + x * x) ** 1.5
        undamped.append(abs(x))
    assert undamped[-1] > 1e3
    res = ga.optimize.newton(lambda x: x / ga.sqrt(1.0 + x * x), 2.0)
    assert res.converged and abs(res.x) < 1e-10
    assert all(b < a for a, b in zip(res.residuals, res.residuals[1:]))


def test_newton_line_search_steps_back_from_nan():
    """sqrt(x) - 0.1 from x0 = 4: the full step lands at x < 0 where f is NaN; the search
    halves the step instead, and every iterate stays finite."""
    res = ga.optimize.newton(lambda x: ga.sqrt(x) - 0.1, 4.0)
    assert res.converged and res.x == pytest.approx(0.01, rel=1e-9)
    assert np.all(np.isfinite(res.history)) and np.all(np.isfinite(res.residuals))


@pytest.mark.parametrize("f, x0", [(lambda x: x ** 2 - 2.0, 0.0),
                                   (lambda x: x ** 2 + 1.0, 1.0),   # no real root: J(0) = 0
                                   (lambda x: ga.stack([x[0] + x[1], 2 * x[0] + 2 * x[1] - 1]),
                                    np.array([0.3, 0.2]))])
def test_newton_singular_jacobian(f, x0):
    res = ga.optimize.newton(f, x0)
    assert not res.converged
    assert "singular" in res.message
    assert np.all(np.isfinite(res.x))


def test_newton_maxiter():
    res = ga.optimize.newton(system3, np.array([1.5, 0.5, 0.8]), maxiter=2)
    assert not res.converged and "maxiter" in res.message
    assert res.iterations == 2 and len(res.history) == 3
    assert res.residuals[-1] > 1e-10


def test_newton_non_finite():
    res = ga.optimize.newton(lambda x: ga.log(x) - 1.0, -1.0)        # f(x0) is NaN
    assert not res.converged and "not finite" in res.message
    res = ga.optimize.newton(lambda x: ga.sqrt(x) - 1.0, 0.0)        # J(x0) = inf
    assert not res.converged and "not finite" in res.message
    assert np.isfinite(res.x)


def test_newton_float32():
    x0 = np.array([1.5, 0.5, 0.8], np.float32)
    res = ga.optimize.newton(system3, x0, tol=1e-5)
    assert res.converged, res.message
    assert res.x.dtype == np.float32 and all(h.dtype == np.float32 for h in res.history)
    np.testing.assert_allclose(res.x, ga.optimize.newton(system3, x0.astype(np.float64)).x,
                               rtol=1e-5)
    # float64's tolerance is below float32's rounding: an honest converged=False, finite x
    res = ga.optimize.newton(system3, x0, tol=1e-12)
    assert not res.converged and np.all(np.isfinite(res.x))


def test_newton_bad_inputs():
    with pytest.raises(ValueError, match="newton"):
        ga.optimize.newton(lambda x: ga.stack([x[0], x[1], x[0] * x[1]]), np.ones(2))
    with pytest.raises(TypeError, match="complex"):
        ga.optimize.newton(lambda x: x, np.ones(2, complex))
    with pytest.raises(ValueError, match="empty"):
        ga.optimize.newton(lambda x: x, np.ones(0))


def test_newton_args_and_result_repr():
    res = ga.optimize.newton(lambda x, c: x ** 2 - c, 1.0, args=(5.0,))
    assert res.x == pytest.approx(np.sqrt(5.0))
    text = repr(res)
    assert "converged: True" in text and "iterates" in text
    assert set(vars(res)) >= {"x", "fun", "converged", "iterations", "history", "residuals",
                              "message"}


# ----------------------------------------------------------------------------------------------
# minimize

METHODS = ["newton", "bfgs", "gd"]


@pytest.mark.parametrize("method", METHODS)
def test_minimize_rosenbrock(method):
    x0 = np.array([-1.2, 1.0])
    tol = 1e-8 if method != "gd" else 1e-4
    res = ga.optimize.minimize(rosen, x0, method=method, tol=tol)
    assert res.converged, res.message
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-3 if method == "gd" else 1e-8)
    assert res.fun == pytest.approx(float(rosen(res.x)), abs=1e-300)
    assert np.linalg.norm(res.grad) <= tol
    np.testing.assert_array_equal(res.history[0], x0)
    assert res.iterations == len(res.history) - 1
    # a line search: f decreases at every step
    assert all(b <= a for a, b in zip(res.values, res.values[1:]))
    ref = scipy.optimize.minimize(scipy.optimize.rosen, x0, jac=scipy.optimize.rosen_der,
                                  method={"newton": "Newton-CG", "bfgs": "BFGS",
                                          "gd": "BFGS"}[method])
    # gd: |x - x*| <~ |grad| / lambda_min(H) = tol / 0.4; SciPy's Newton-CG stops at xtol=1e-5
    np.testing.assert_allclose(res.x, ref.x, atol=1e-3 if method == "gd" else 1e-4)
    if method == "newton":
        assert res.iterations < 40


def test_minimize_rosenbrock_5d_bfgs_matches_scipy():
    x0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])
    res = ga.optimize.minimize(rosen, x0, method="bfgs")
    ref = scipy.optimize.minimize(scipy.optimize.rosen, x0, jac=scipy.optimize.rosen_der,
                                  method="BFGS", options={"gtol": 1e-10})
    assert res.converged and ref.success
    np.testing.assert_allclose(res.x, ref.x, atol=1e-7)
    assert res.fun == pytest.approx(ref.fun, abs=1e-12)


def _quadratic(n, seed=0):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((n, n))
    A = M @ M.T + n * np.eye(n)
    b = rng.standard_normal(n)
    return A, b, (lambda x: 0.5 * (x @ (A @ x)) - b @ x)


def test_minimize_quadratic_newton_one_step():
    A, b, f = _quadratic(6)
    res = ga.optimize.minimize(f, np.zeros(6), method="newton")
    assert res.converged and res.iterations <= 2
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-12)
    np.testing.assert_allclose(res.history[1], np.linalg.solve(A, b), rtol=1e-10)


@pytest.mark.parametrize("method", ["bfgs", "gd"])
def test_minimize_quadratic(method):
    A, b, f = _quadratic(6)
    res = ga.optimize.minimize(f, np.zeros(6), method=method)
    assert res.converged, res.message
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-7)
    if method == "bfgs":
        assert res.iterations <= 30


def test_minimize_newton_cg_large():
    """Above the dense-Hessian size: Newton-CG on Hessian-vector products (regularized
    logistic regression, 80 unknowns), against SciPy's L-BFGS-B on graphad's gradient."""
    rng = np.random.default_rng(1)
    n = 80
    assert n > optimize._DENSE_HESSIAN_MAX
    X = rng.standard_normal((200, n))
    y = np.sign(X @ rng.standard_normal(n) + 0.5 * rng.standard_normal(200))

    def loss(w):
        return ga.softplus(-y * (X @ w)).mean() + 0.05 * (w * w).sum()

    res = ga.optimize.minimize(loss, np.zeros(n), method="newton")
    assert res.converged, res.message
    assert res.iterations <= 10 and res.nhev > 0
    vg = ga.value_and_grad(loss)
    ref = scipy.optimize.minimize(lambda w: tuple(np.asarray(v) for v in vg(w)), np.zeros(n),
                                  jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-12, "ftol": 1e-15})
    np.testing.assert_allclose(res.x, ref.x, atol=1e-6)


def test_minimize_indefinite_hessian_falls_back():
    """Starting at a saddle-ish point where H is indefinite, Newton still descends to the
    minimum (truncated CG stops at the negative-curvature direction)."""
    def f(x):
        return (x[0] ** 2 - 1.0) ** 2 + x[1] ** 2 + 0.1 * x[0]
    x0 = np.array([0.05, 1.0])
    H = np.asarray(ga.hessian(f)(x0))
    assert np.linalg.eigvalsh(H)[0] < 0
    res = ga.optimize.minimize(f, x0, method="newton")
    assert res.converged and res.fun < f(x0)
    ref = scipy.optimize.minimize(lambda z: float(f(z)), x0, method="BFGS")
    np.testing.assert_allclose(res.x, ref.x, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_minimize_matrix_x0(method):
    """min ||X A - B||_F^2 over X of shape (3, 2): the least-squares solution, in X's shape."""
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((2, 5)), rng.standard_normal((3, 5))
    res = ga.optimize.minimize(lambda X: ((X @ A - B) ** 2).sum(), np.zeros((3, 2)),
                               method=method, tol=1e-9)
    assert res.converged, res.message
    assert res.x.shape == (3, 2) and res.grad.shape == (3, 2)
    assert all(h.shape == (3, 2) for h in res.history)
    ref = np.linalg.lstsq(A.T, B.T, rcond=None)[0].T
    np.testing.assert_allclose(res.x, ref, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_minimize_scalar_x0(method):
    f = lambda x: (x - 2.0) ** 2 + ga.cos(3.0 * x)     # noqa: E731
    res = ga.optimize.minimize(f, 2.0, method=method)
    assert res.converged and np.ndim(res.x) == 0 and np.ndim(res.grad) == 0
    ref = scipy.optimize.minimize(lambda z: (z[0] - 2.0) ** 2 + np.cos(3.0 * z[0]), [2.0])
    assert res.x == pytest.approx(ref.x[0], abs=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_minimize_steps_back_from_nan(method):
    """sum(x log x) is NaN for x < 0; the line search treats that as too long a step."""
    res = ga.optimize.minimize(lambda x: (x * ga.log(x)).sum(), np.array([2.0, 0.5]),
                               method=method)
    assert res.converged, res.message
    np.testing.assert_allclose(res.x, np.exp(-1.0), rtol=1e-6)
    assert np.all(np.isfinite(res.history)) and np.all(np.isfinite(res.values))


@pytest.mark.parametrize("method", METHODS)
def test_minimize_non_finite_start(method):
    res = ga.optimize.minimize(lambda x: (x * ga.log(x)).sum(), np.array([-1.0, 1.0]),
                               method=method)
    assert not res.converged and "not finite" in res.message


@pytest.mark.parametrize("method", METHODS)
def test_minimize_maxiter(method):
    res = ga.optimize.minimize(rosen, np.array([-1.2, 1.0]), method=method, maxiter=3)
    assert not res.converged and "maxiter" in res.message
    assert res.iterations == 3 and len(res.history) == 4


@pytest.mark.parametrize("method", METHODS)
def test_minimize_unbounded_below(method):
    """No minimum: never a success, never a non-finite iterate."""
    res = ga.optimize.minimize(lambda x: -(x * x).sum() + x[0], np.array([0.3, -0.2]),
                               method=method, maxiter=15)
    assert not res.converged
    assert np.all(np.isfinite(res.x)) and np.isfinite(res.fun)


def test_minimize_float32():
    x0 = np.array([-1.2, 1.0], np.float32)
    res = ga.optimize.minimize(rosen, x0, method="bfgs", tol=1e-2)
    assert res.converged, res.message
    assert res.x.dtype == np.float32 and res.grad.dtype == np.float32
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=2e-2)


def test_minimize_bad_method():
    with pytest.raises(ValueError, match="method"):
        ga.optimize.minimize(rosen, np.zeros(2), method="lbfgs")
    with pytest.raises(TypeError):
        ga.optimize.minimize(lambda x: x * 1.0, np.zeros(2))      # not a scalar


def test_minimize_args():
    res = ga.optimize.minimize(lambda x, c: ((x - c) ** 2).sum(), np.zeros(3),
                               args=(np.array([1.0, 2.0, 3.0]),))
    np.testing.assert_allclose(res.x, [1.0, 2.0, 3.0], rtol=1e-8)


def test_result_pickles():
    import pickle
    res = ga.optimize.newton(system3, np.array([1.5, 0.5, 0.8]))
    back = pickle.loads(pickle.dumps(res))
    np.testing.assert_array_equal(back.x, res.x)
    assert back.residuals == res.residuals and back.converged
