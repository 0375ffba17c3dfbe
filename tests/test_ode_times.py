"""ga.odeint differentiated with respect to the times t.

euler / rk4: the exact derivative of the discrete solution (closed forms of the discrete decay
solution, central finite differences of odeint itself), adjoint == direct == forward mode,
second order.  dopri5: the exact solution's t-derivative (f at the output times, the t[0] term
through the adjoint) against closed forms and loose finite differences; second order in t
raises.  float32, batched blocks, ga.compile, hypothesis over time grids."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import graphad as ga


def decay(y, t, k):
    return -k * y


def forced(y, t, a):
    """Explicitly time-dependent: dy/dt = a sin(t) y + t."""
    return a * ga.sin(t) * y + t


def forced_matrix(y, t, M):
    """A (2, 3) state: dY/dt = tanh(M Y) cos(t) + t Y / 4."""
    return ga.tanh(M @ y) * ga.cos(t) + 0.25 * t * y


Y0 = np.array([0.3, -0.2])
A = 0.7
TS = np.array([0.1, 0.5, 0.9, 1.4])
C = np.array([[1.0, 2.0], [0.5, -1.0], [0.3, 0.2], [-1.0, 0.4]])
FIXED = [("euler", 7), ("rk4", 3)]


def _fd_grad(fn, t, eps=1e-6):
    """Central differences of a scalar function of the times (arrays in, float out)."""
    t = np.asarray(t, np.float64)
    return np.array([(fn(t + eps * e) - fn(t - eps * e)) / (2 * eps) for e in np.eye(t.size)])


def _fd_jac(fn, t, eps=1e-6):
    t = np.asarray(t, np.float64)
    return np.stack([(fn(t + eps * e) - fn(t - eps * e)) / (2 * eps) for e in np.eye(t.size)],
                    axis=-1)


def _loss(method, substeps, adjoint=True, func=forced, y0=Y0, p=A, c=C, **kw):
    def loss(t):
        return ga.sum(c * ga.odeint(func, y0, t, p, method=method, substeps=substeps,
                                    adjoint=adjoint, **kw))
    return loss


def _value(loss):
    return lambda t: float(loss(t).numpy())


# ----------------------------------------------------------------------------------------------
# the decay dy/dt = -k y: closed forms of the exact and of the discrete solution

def _rk4_r(z):
    """RK4's stability polynomial (one step of y' = lam y multiplies by R(h lam)) and R'."""
    return 1 + z + z * z / 2 + z ** 3 / 6 + z ** 4 / 24, 1 + z + z * z / 2 + z ** 3 / 6


@pytest.mark.parametrize("mode", ["adjoint", "direct", "jvp"])
@pytest.mark.parametrize("method", ["euler", "rk4"])
def test_decay_exact_discrete_and_continuous_closed_forms(method, mode):
    y0, k, t0, T, m = 1.5, 0.7, 0.2, 1.3, 50
    t = np.array([t0, T])

    def last(t):
        return ga.odeint(decay, y0, t, k, method=method, substeps=m,
                         adjoint=(mode != "direct"))[-1]
    if mode == "jvp":
        g = np.array([float(ga.jvp(last, (t,), (e,))[1]) for e in np.eye(2)])
    else:
        g = ga.grad(last)(t)
    # the discrete solution y0 R(z)^m, z = -k h, h = (T - t0) / m: d/dT = -k y0 R^(m-1) R'(z)
    z = -k * (T - t0) / m
    r, dr = (1 + z, 1.0) if method == "euler" else _rk4_r(z)
    d_dT = -k * y0 * r ** (m - 1) * dr
    np.testing.assert_allclose(g, [-d_dT, d_dT], rtol=1e-13)
    np.testing.assert_allclose(g, _fd_grad(lambda t: float(last(t).numpy()), t), rtol=1e-8)
    if method == "rk4":          # and the exact solution's, y0 exp(-k (T - t0)), to rk4's error
        yT = y0 * np.exp(-k * (T - t0))
        np.testing.assert_allclose(g, [k * yT, -k * yT], rtol=1e-6)


def test_decay_t_with_y0_and_k_gradients_together():
    y0, k, t = 1.5, 0.7, np.array([0.2, 0.8, 1.3])
    for adjoint in (True, False):
        gy, gk, gt = ga.grad(lambda y0, k, t: ga.odeint(decay, y0, t, k, substeps=40,
                                                        adjoint=adjoint)[-1],
                             argnums=(0, 1, 2))(y0, k, t)
        yT = y0 * np.exp(-k * (t[-1] - t[0]))
        np.testing.assert_allclose([gy, gk], [yT / y0, -(t[-1] - t[0]) * yT], rtol=1e-6)
        # the grid point in the middle only moves the steps: its derivative is O(h^4)
        np.testing.assert_allclose(gt, [k * yT, 0.0, -k * yT], rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------------------------
# an explicitly time-dependent func, several output times

@pytest.mark.parametrize("method,substeps", FIXED)
def test_time_dependent_every_mode_is_the_exact_discrete_derivative(method, substeps):
    adj, direct = _loss(method, substeps), _loss(method, substeps, adjoint=False)
    g = ga.grad(adj)(TS)
    np.testing.assert_allclose(g, ga.grad(direct)(TS), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g, _fd_grad(_value(adj), TS), rtol=1e-7, atol=1e-8)
    v = np.array([0.3, -1.0, 0.5, 2.0])
    for loss in (adj, direct):
        np.testing.assert_allclose(float(ga.jvp(loss, (TS,), (v,))[1]), g @ v, rtol=1e-12)

    def sol(t, adjoint=True):
        return ga.odeint(forced, Y0, t, A, method=method, substeps=substeps, adjoint=adjoint)
    Jr = ga.jacrev(sol)(TS)
    assert Jr.shape == (4, 2, 4)
    np.testing.assert_allclose(ga.jacfwd(sol)(TS), Jr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ga.jacrev(lambda t: sol(t, False))(TS), Jr, rtol=1e-10,
                               atol=1e-13)
    np.testing.assert_allclose(Jr, _fd_jac(lambda t: sol(t).numpy(), TS), rtol=1e-6,
                               atol=1e-8)
    assert np.all(Jr[0] == 0)               # y(t[0]) = y0 whatever t


@pytest.mark.parametrize("adjoint", [True, False], ids=["adjoint", "direct"])
def test_t_and_params_and_y0_together_in_both_modes(adjoint):
    def f(y0, a, t):
        return ga.odeint(forced, y0, t, a, substeps=4, adjoint=adjoint)
    Jr = ga.jacrev(f, argnums=(0, 1, 2))(Y0, A, TS)
    Jf = ga.jacfwd(f, argnums=(0, 1, 2))(Y0, A, TS)
    for a, b in zip(Jr, Jf):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Jr[2], _fd_jac(lambda t: f(Y0, A, t).numpy(), TS), rtol=1e-6,
                               atol=1e-8)
    np.testing.assert_allclose(Jr[1], _fd_jac(lambda a: f(Y0, a[0], TS).numpy(), [A])[..., 0],
                               rtol=1e-6, atol=1e-8)


def test_matrix_state_batched_blocks():
    rng = np.random.default_rng(3)
    M, Y = rng.standard_normal((2, 2)) / 2, rng.standard_normal((2, 3))
    t = np.array([0.0, 0.35, 1.1])

    def sol(t, adjoint=True):
        return ga.odeint(forced_matrix, Y, t, M, substeps=5, adjoint=adjoint)
    Jr = ga.jacrev(sol)(t)                  # a block of 3 * 2 * 3 cotangents at once
    assert Jr.shape == (3, 2, 3, 3)
    np.testing.assert_allclose(ga.jacfwd(sol)(t), Jr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ga.jacrev(lambda t: sol(t, False))(t), Jr, rtol=1e-10,
                               atol=1e-13)
    np.testing.assert_allclose(Jr, _fd_jac(lambda t: sol(t).numpy(), t), rtol=1e-6, atol=1e-8)


def test_decreasing_times_and_t_as_a_list_with_a_tensor():
    t = np.array([1.2, 0.7, -0.1])
    loss = _loss("rk4", 3, c=C[:3])
    np.testing.assert_allclose(ga.grad(loss)(t), _fd_grad(_value(loss), t), rtol=1e-7,
                               atol=1e-8)
    np.testing.assert_allclose(ga.grad(loss)(t), ga.grad(_loss("rk4", 3, False, c=C[:3]))(t),
                               rtol=1e-10)

    def last(T):                            # t = [0, T]: a list holding a Tensor
        return ga.odeint(decay, 1.0, [0.0, T], 1.0, substeps=20)[-1]
    np.testing.assert_allclose(ga.grad(last)(1.0), -np.exp(-1.0), rtol=1e-6)
    assert ga.grad(lambda T: ga.odeint(decay, 1.0, [T], 1.0)[-1])(1.0) == 0.0


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
@pytest.mark.parametrize("adjoint", [True, False], ids=["adjoint", "direct"])
def test_func_without_y_or_t_dependence(method, adjoint):
    """f = 3: y(T) = y0 + 3 (T - t0); the stages are constants (no graph to sweep), yet the
    step size still carries the t-derivative."""
    kw = dict(substeps=3) if method == "rk4" else {}

    def s(t):
        return ga.sum(ga.odeint(lambda y, t: np.full(2, 3.0), np.ones(2), t, method=method,
                                adjoint=adjoint, **kw)[-1])
    t = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(ga.grad(s)(t), [-6.0, 0.0, 6.0], atol=1e-13)
    np.testing.assert_allclose(float(ga.jvp(s, (t,), (np.array([1.0, 5.0, 0.0]),))[1]), -6.0,
                               atol=1e-13)


@given(st.integers(2, 4), st.lists(st.floats(0.05, 0.8), min_size=3, max_size=3),
       st.floats(-1.0, 1.0), st.booleans(), st.sampled_from(["euler", "rk4"]))
def test_hypothesis_time_grids(n, gaps, t0, decreasing, method):
    t = t0 + np.concatenate([[0.0], np.cumsum(gaps[:n - 1])])
    if decreasing:
        t = t[::-1].copy()
    c = C[:n]
    adj, direct = _loss(method, 2, c=c), _loss(method, 2, adjoint=False, c=c)
    g = ga.grad(adj)(t)
    np.testing.assert_allclose(g, ga.grad(direct)(t), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g, _fd_grad(_value(adj), t), rtol=1e-6, atol=1e-7)
    v = np.linspace(-1.0, 1.0, n)
    np.testing.assert_allclose(float(ga.jvp(adj, (t,), (v,))[1]), g @ v, rtol=1e-11,
                               atol=1e-13)


# ----------------------------------------------------------------------------------------------
# second order (fixed steps): the exact second derivative of the discrete solution

@pytest.mark.parametrize("method,substeps", FIXED)
def test_hessian_in_t_through_the_adjoint(method, substeps):
    adj, direct = _loss(method, substeps), _loss(method, substeps, adjoint=False)
    H = ga.hessian(adj)(TS)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(H, ga.hessian(direct)(TS), rtol=1e-10, atol=1e-12)
    grad = ga.grad(adj)
    fd = _fd_jac(lambda t: np.asarray(grad(t)), TS, eps=1e-5)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ga.jacfwd(grad)(TS), H, rtol=1e-12, atol=1e-13)
    v = np.array([1.0, -2.0, 0.5, 3.0])
    np.testing.assert_allclose(ga.hvp(adj, (TS,), (v,))[1], H @ v, rtol=1e-12, atol=1e-13)
    # mixed: d/dt of d/dy0, by forward over reverse and reverse over reverse
    gy = ga.jacrev(lambda t: ga.grad(lambda y0: _loss(method, substeps, y0=y0)(t))(Y0))(TS)
    fdy = _fd_jac(lambda t: np.asarray(ga.grad(lambda y0: _loss(method, substeps, y0=y0)(t))(
        Y0)), TS, eps=1e-5)
    np.testing.assert_allclose(gy, fdy, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# dopri5: the exact solution's t-derivative

TOL = dict(rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("adjoint", [True, False], ids=["adjoint", "direct"])
def test_dopri5_decay_closed_form(adjoint):
    y0, k = 1.5, 0.7
    t = np.array([0.2, 0.7, 1.3])

    def last(t):
        return ga.odeint(decay, y0, t, k, method="dopri5", adjoint=adjoint, **TOL)[-1]
    yT = y0 * np.exp(-k * (t[-1] - t[0]))
    # d y(T)/dT = f(y(T), T) = -k y(T); d y(T)/dt0 = -exp(-k (T - t0)) f(y0, t0) = k y(T);
    # the middle time only splits the steps: 0
    g = ga.grad(last)(t)
    np.testing.assert_allclose(g, [k * yT, 0.0, -k * yT], rtol=1e-9)
    assert g[1] == 0.0
    jv = np.array([float(ga.jvp(last, (t,), (e,))[1]) for e in np.eye(3)])
    np.testing.assert_allclose(jv, g, rtol=1e-12)


def test_dopri5_time_dependent_against_closed_form_and_finite_differences():
    t = np.array([0.1, 0.5, 0.9, 1.4])

    def sol(t, adjoint=True):
        return ga.odeint(forced, Y0, t, A, method="dopri5", adjoint=adjoint, **TOL)
    ys = sol(t).numpy()
    J = ga.jacrev(sol)(t)
    # output times: dy(t_i)/dt_i = f(y(t_i), t_i), and no dependence on the other t_j, j > 0
    for i in range(1, 4):
        f_i = np.asarray(forced(ys[i], t[i], A))
        np.testing.assert_allclose(J[i, :, i], f_i, rtol=1e-12)
        for j in range(1, 4):
            if j != i:
                assert np.all(J[i, :, j] == 0)
    # t[0]: dy(t_i)/dt_0 = -(dy(t_i)/dy0) f(y0, t_0)
    Jy0 = ga.jacrev(lambda y0: ga.odeint(forced, y0, t, A, method="dopri5", **TOL))(Y0)
    np.testing.assert_allclose(J[1:, :, 0], -Jy0[1:] @ np.asarray(forced(Y0, t[0], A)),
                               rtol=1e-12, atol=1e-15)
    assert np.all(J[0] == 0)                # y(t_0) = y0 whatever t_0
    # every mode agrees; finite differences of odeint to about tolerance / eps
    np.testing.assert_allclose(ga.jacfwd(sol)(t), J, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ga.jacrev(lambda t: sol(t, False))(t), J, rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(J, _fd_jac(lambda t: sol(t).numpy(), t, eps=1e-4), rtol=1e-5,
                               atol=1e-6)


def test_dopri5_second_order_in_t_raises_but_not_in_y0():
    loss = _loss("dopri5", 1, **TOL)
    with pytest.raises(NotImplementedError, match=r"odeint\(method='dopri5'\).*t"):
        ga.hessian(loss)(TS)
    with pytest.raises(NotImplementedError, match="dopri5"):
        ga.jacfwd(ga.grad(loss))(TS)
    with pytest.raises(NotImplementedError, match="dopri5"):     # d/dt of d/dy0: not 0
        ga.jacrev(lambda t: ga.grad(lambda y0: _loss("dopri5", 1, y0=y0, **TOL)(t))(Y0))(TS)
    # second order in y0 while t requires grad elsewhere still works
    H = ga.hessian(lambda y0: _loss("dopri5", 1, y0=y0, func=lambda y, t, a: a * ga.sin(t) * y
                                    * y, **TOL)(TS))(Y0)
    Hd = ga.hessian(lambda y0: _loss("dopri5", 1, y0=y0, adjoint=False,
                                     func=lambda y, t, a: a * ga.sin(t) * y * y, **TOL)(TS))(Y0)
    np.testing.assert_allclose(H, Hd, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# float32, ga.compile

@pytest.mark.parametrize("method,kw", [("rk4", dict(substeps=3)), ("dopri5", dict(rtol=1e-5))])
@pytest.mark.parametrize("adjoint", [True, False], ids=["adjoint", "direct"])
def test_float32_kept(method, kw, adjoint):
    t32 = TS.astype(np.float32)

    def loss(y0, t):
        return ga.sum(C.astype(np.float32) * ga.odeint(forced, y0, t, np.float32(A),
                                                       method=method, adjoint=adjoint, **kw))
    v, (gy, gt) = ga.value_and_grad(loss, argnums=(0, 1))(Y0.astype(np.float32), t32)
    assert v.dtype == np.float32 and gy.dtype == np.float32 and gt.dtype == np.float32
    _, (gy64, gt64) = ga.value_and_grad(loss, argnums=(0, 1))(Y0, TS)
    np.testing.assert_allclose(gt, gt64, rtol=2e-4, atol=1e-5)
    _, jv = ga.jvp(lambda t: loss(Y0.astype(np.float32), t), (t32,), (np.ones(4, np.float32),))
    assert np.asarray(jv).dtype == np.float32
    np.testing.assert_allclose(jv, gt64.sum(), rtol=2e-4)


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
@pytest.mark.parametrize("adjoint", [True, False], ids=["adjoint", "direct"])
def test_compile_replays_gradients_in_t(method, adjoint):
    kw = dict(substeps=3) if method == "rk4" else TOL

    def loss(y0, t):
        return ga.sum(ga.odeint(forced, y0, t, A, method=method, adjoint=adjoint, **kw) ** 2)
    g = ga.grad(loss, argnums=(0, 1))
    cg = ga.compile(g)
    t2 = np.array([0.0, 0.3, 1.0, 1.2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # it replays: no eager fallback
        cg(Y0, TS)
        got = cg(Y0 + 0.1, t2)
    assert cg.replays == 1
    for a, b in zip(got, g(Y0 + 0.1, t2)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_compile_hessian_in_t_replays():
    loss = _loss("rk4", 2)
    ch = ga.compile(ga.hessian(loss))
    t2 = np.array([0.0, 0.3, 1.0, 1.2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ch(TS)
        got = ch(t2)
    np.testing.assert_allclose(got, ga.hessian(loss)(t2), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
@pytest.mark.parametrize("adjoint", [True, False], ids=["adjoint", "direct"])
def test_regression_compile_follows_new_times_without_grad(method, adjoint):
    """A compiled function taking t as an argument froze the traced t: a call with new times
    replayed the old ones and returned the old solution (off by 0.46 here)."""
    kw = dict(substeps=3) if method == "rk4" else TOL

    def f(y0, t):
        return ga.odeint(forced, y0, t, A, method=method, adjoint=adjoint, **kw)
    cf = ga.compile(f)
    t2 = np.array([0.0, 0.3, 1.0, 1.2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # dopri5 direct runs eagerly (frozen steps)
        cf(Y0, TS)
        got = cf(Y0, t2)
    np.testing.assert_allclose(np.asarray(got), f(Y0, t2).numpy(), rtol=1e-12, atol=1e-15)


def test_regression_float32_state_with_a_func_that_promotes():
    """a sin(t) y + t on a float32 y is float64 in func's own arithmetic (np.sin / ga.sin of the
    Python float t): the adjoint node returned float64 solutions and gradients."""
    y32 = Y0.astype(np.float32)
    for adjoint in (True, False):
        ys = ga.odeint(forced, y32, TS, np.float32(A), substeps=3, adjoint=adjoint)
        assert ys.dtype == np.float32
        g = ga.grad(lambda y0: ga.sum(ga.odeint(forced, y0, TS, np.float32(A), substeps=3,
                                                adjoint=adjoint)))(y32)
        assert g.dtype == np.float32
        np.testing.assert_allclose(ys.numpy(), ga.odeint(forced, Y0, TS, A, substeps=3).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_many_substeps_through_the_checkpointed_segments():
    """More steps per interval than one backward segment keeps (_LEAF): the step indices of
    the segments' slices carry the t-derivative of t_n = t_i + n h."""
    from graphad import ode
    m = 3 * ode._LEAF + 5
    loss = _loss("euler", m, c=C[:3])
    t = np.array([0.0, 0.6, 1.5])
    g = ga.grad(loss)(t)
    np.testing.assert_allclose(g, ga.grad(_loss("euler", m, adjoint=False, c=C[:3]))(t),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g, _fd_grad(_value(loss), t), rtol=1e-6, atol=1e-7)
