"""ga.odeint: solutions and derivatives against closed forms (exp(-kT), expm(MT) and its Frechet
derivative), convergence orders, adjoint == direct backprop == finite differences, second
order through the adjoint, dopri5's error control, errors, memory, float32 and ga.compile."""
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.linalg as sl

import graphad as ga

T = 1.0


def decay(y, t, k):
    return -k * y


def linear(y, t, M):
    return M @ y


def pendulum(y, t, w2, damping):
    """theta'' = -w2 sin(theta) - damping theta' (with a forcing that depends on t)."""
    theta, omega = y[0], y[1]
    return ga.stack([omega, -w2 * ga.sin(theta) - damping * omega + 0.1 * np.cos(t)])


def _problem(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, n)) / np.sqrt(n), rng.standard_normal(n),
            rng.standard_normal(n))


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


SOLVERS = [("rk4", dict(method="rk4", substeps=40)),
           ("dopri5", dict(method="dopri5", rtol=1e-10, atol=1e-12))]


# ----------------------------------------------------------------------------------------------
# closed forms

@pytest.mark.parametrize("adjoint", [True, False], ids=["adjoint", "direct"])
@pytest.mark.parametrize("label,kw", SOLVERS, ids=[s[0] for s in SOLVERS])
def test_decay_solution_and_gradients(label, kw, adjoint):
    y0, k = 1.3, 0.7
    t = np.linspace(0, T, 5)
    ys = ga.odeint(decay, y0, t, k, adjoint=adjoint, **kw)
    assert ys.shape == (5,)
    assert _rel(ys.numpy(), y0 * np.exp(-k * t)) < 1e-6

    def last(y0, k):
        return ga.odeint(decay, y0, t, k, adjoint=adjoint, **kw)[-1]
    gy0, gk = ga.grad(last, argnums=(0, 1))(y0, k)
    assert _rel(gy0, np.exp(-k * T)) < 1e-6
    assert _rel(gk, -T * y0 * np.exp(-k * T)) < 1e-6
    _, (ty0) = ga.jvp(last, (y0, k), (1.0, 0.0))
    _, (tk) = ga.jvp(last, (y0, k), (0.0, 1.0))
    assert _rel(ty0, np.exp(-k * T)) < 1e-6
    assert _rel(tk, -T * y0 * np.exp(-k * T)) < 1e-6


@pytest.mark.parametrize("adjoint", [True, False], ids=["adjoint", "direct"])
@pytest.mark.parametrize("label,kw", SOLVERS, ids=[s[0] for s in SOLVERS])
def test_linear_system_against_expm_and_its_frechet_adjoint(label, kw, adjoint):
    M, y0, c = _problem()
    E = sl.expm(M * T)

    def loss(y0, M):
        return ga.sum(c * ga.odeint(linear, y0, [0.0, T], M, adjoint=adjoint, **kw)[-1])
    assert _rel(ga.odeint(linear, y0, [0.0, T], M, **kw).numpy()[-1], E @ y0) < 1e-6
    gy0, gM = ga.grad(loss, argnums=(0, 1))(y0, M)
    # <c, expm(MT) y0>:  d/dy0 = E^T c;  d/dM = T L(T M^T, c y0^T)  (the Frechet derivative's
    # adjoint: <C, L(A, dA)> = <L(A^T, C), dA>)
    assert _rel(gy0, E.T @ c) < 1e-6
    want_M = T * sl.expm_frechet(T * M.T, np.outer(c, y0), compute_expm=False)
    assert _rel(gM, want_M) < 1e-6
    # forward sensitivities: jacfwd of y(T) wrt M, contracted with c
    J = ga.jacfwd(lambda M: ga.odeint(linear, y0, [0.0, T], M, adjoint=adjoint, **kw)[-1])(M)
    assert _rel(np.tensordot(c, J, axes=1), want_M) < 1e-6
    _, ty = ga.jvp(lambda y0: ga.odeint(linear, y0, [0.0, T], M, adjoint=adjoint, **kw)[-1],
                   (y0,), (c,))
    assert _rel(ty, E @ c) < 1e-6


def test_jacrev_block_equals_jacfwd_and_direct():
    M, y0, _ = _problem(4, seed=1)
    t = [0.0, 0.3, 1.0]

    def f(y0, M, adjoint):
        return ga.odeint(linear, y0, t, M, substeps=7, adjoint=adjoint)
    for argnum in (0, 1):
        Jr = ga.jacrev(f, argnums=argnum)(y0, M, True)
        Jf = ga.jacfwd(f, argnums=argnum)(y0, M, True)
        Jd = ga.jacrev(f, argnums=argnum)(y0, M, False)
        assert Jr.shape == (3, 4) + np.shape([y0, M][argnum])
        np.testing.assert_allclose(Jr, Jd, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(Jf, Jd, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# convergence orders

@pytest.mark.parametrize("method,order", [("euler", 1), ("rk4", 4)])
def test_convergence_order(method, order):
    M, y0, _ = _problem(3, seed=2)
    exact = sl.expm(M * T) @ y0
    ns = np.array([8, 16, 32, 64])
    errs = [np.abs(ga.odeint(linear, y0, [0.0, T], M, method=method, substeps=int(n))
                   .numpy()[-1] - exact).max() for n in ns]
    slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.15, (slope, errs)
    # the gradients converge at the same order (they are the derivatives of the same steps)
    gexact = sl.expm(M * T).T @ np.ones(3)
    gerrs = [np.abs(ga.grad(lambda y0: ga.sum(ga.odeint(linear, y0, [0.0, T], M, method=method,
                                                        substeps=int(n))[-1]))(y0)
                    - gexact).max() for n in ns]
    gslope = -np.polyfit(np.log(ns), np.log(gerrs), 1)[0]
    assert abs(gslope - order) < 0.15, (gslope, gerrs)


def test_dopri5_meets_its_tolerance_and_tightens():
    # the harmonic oscillator y = (cos t, -sin t), over a few periods
    def osc(y, t):
        return ga.stack([y[1], -y[0]])
    t = np.linspace(0, 10, 6)
    exact = np.stack([np.cos(t), -np.sin(t)], axis=1)
    errs = []
    for rtol in (1e-6, 1e-9, 1e-12):
        ys = ga.odeint(osc, [1.0, 0.0], t, method="dopri5", rtol=rtol, atol=rtol * 1e-2)
        errs.append(np.abs(ys.numpy() - exact).max())
    assert errs[2] < 1e-10
    assert errs[0] > errs[1] > errs[2]
    assert errs[0] < 1e-4


def test_decreasing_times():
    ys = ga.odeint(decay, 2.0, [1.0, 0.5, 0.0], 0.7, substeps=20)
    np.testing.assert_allclose(ys.numpy(), 2.0 * np.exp(0.7 * np.array([0.0, 0.5, 1.0])),
                               rtol=1e-8)
    ys5 = ga.odeint(decay, 2.0, [1.0, 0.5, 0.0], 0.7, method="dopri5", rtol=1e-10)
    np.testing.assert_allclose(ys5.numpy(), ys.numpy(), rtol=1e-7)
    g = ga.grad(lambda k: ga.odeint(decay, 2.0, [1.0, 0.0], k, method="dopri5")[-1])(0.7)
    np.testing.assert_allclose(g, 2.0 * np.exp(0.7), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# adjoint == direct == finite differences

@pytest.mark.parametrize("method,kw", [("euler", dict(substeps=30)), ("rk4", dict(substeps=15)),
                                       ("dopri5", dict(rtol=1e-8))])
def test_pendulum_adjoint_equals_direct_and_finite_differences(method, kw):
    y0 = np.array([1.2, -0.3])
    w2, damping = np.array(2.5), np.array(0.15)
    t = np.linspace(0, 3, 4)
    W = np.array([[0.3, -1.0], [0.5, 0.2], [-0.4, 0.7], [1.0, 0.1]])

    def loss(y0, w2, damping, adjoint=True):
        ys = ga.odeint(pendulum, y0, t, w2, damping, method=method, adjoint=adjoint, **kw)
        return ga.sum(W * ys ** 2)
    adj = ga.grad(loss, argnums=(0, 1, 2))(y0, w2, damping)
    direct = ga.grad(lambda *a: loss(*a, adjoint=False), argnums=(0, 1, 2))(y0, w2, damping)
    for a, d in zip(adj, direct):
        np.testing.assert_allclose(a, d, rtol=1e-11, atol=1e-13)
    if method != "dopri5":       # dopri5's steps move with the inputs: FD sees a new solution
        ga.check_grad(loss, y0, w2, damping, rtol=1e-6)
    else:
        ga.check_grad(lambda y0: loss(y0, w2, damping), y0, rtol=1e-4)


# ----------------------------------------------------------------------------------------------
# second order through the adjoint

def test_hessian_through_adjoint_is_expm_gram():
    M, y0, v = _problem(3, seed=3)
    E = sl.expm(M * T)

    def half_sq(y0, adjoint=True):
        return 0.5 * ga.sum(ga.odeint(linear, y0, [0.0, T], M, substeps=60,
                                      adjoint=adjoint)[-1] ** 2)
    H = ga.hessian(half_sq)(y0)
    assert _rel(H, E.T @ E) < 1e-6
    Hd = ga.hessian(lambda y: half_sq(y, False))(y0)
    np.testing.assert_allclose(H, Hd, rtol=1e-12, atol=1e-14)
    g, Hv = ga.hvp(half_sq, (y0,), (v,))
    assert _rel(g, E.T @ E @ y0) < 1e-6
    assert _rel(Hv, E.T @ E @ v) < 1e-6


def test_second_order_in_parameters_matches_direct_and_fd():
    y0 = np.array([1.2, -0.3])
    p = np.array([2.5, 0.15])
    t = [0.0, 1.5]

    def loss(p, adjoint=True):
        return ga.sum(ga.odeint(pendulum, y0, t, p[0], p[1], substeps=20,
                                adjoint=adjoint)[-1] ** 2)
    H = ga.hessian(loss)(p)
    np.testing.assert_allclose(H, ga.hessian(lambda p: loss(p, False))(p), rtol=1e-10)
    g = ga.grad(loss)
    h = 1e-5
    fd = np.stack([(g(p + h * e) - g(p - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-8)
    gg = ga.grad(lambda p: ga.sum(ga.grad(loss)(p) ** 2))(p)
    assert np.allclose(gg, 2 * H @ g(p), rtol=1e-8)


# ----------------------------------------------------------------------------------------------
# dtypes, shapes, compile

def test_float32_kept():
    M, y0, _ = (x.astype(np.float32) for x in _problem())
    ys = ga.odeint(linear, y0, [0.0, 0.5, 1.0], M, substeps=5)
    assert ys.dtype == np.float32
    for adjoint in (True, False):
        gy, gM = ga.grad(lambda y0, M: ga.sum(ga.odeint(linear, y0, [0.0, 1.0], M, substeps=5,
                                                        adjoint=adjoint)[-1]),
                         argnums=(0, 1))(y0, M)
        assert gy.dtype == np.float32 and gM.dtype == np.float32
    _, tan = ga.jvp(lambda y0: ga.odeint(linear, y0, [0.0, 1.0], M, substeps=5), (y0,), (y0,))
    assert tan.dtype == np.float32


def test_matrix_state_and_scalar_output_shapes():
    A = np.array([[0.0, 1.0], [-1.0, 0.0]])
    Y0 = np.eye(2)[:, :1] * np.ones((2, 3))
    ys = ga.odeint(lambda Y, t: A @ Y, Y0, np.linspace(0, 1, 4), substeps=30)
    assert ys.shape == (4, 2, 3)
    np.testing.assert_allclose(ys.numpy()[-1], sl.expm(A) @ Y0, rtol=1e-8)
    assert ga.odeint(decay, 1.0, [0.0], 1.0).shape == (1,)


def test_compile_replays_a_training_step_with_odeint():
    M, y0, c = _problem(3, seed=4)
    Mt = ga.tensor(M, requires_grad=True)
    opt = ga.optim.SGD([Mt], lr=0.1)

    def step(y0, c):
        opt.zero_grad()
        loss = ga.sum(c * ga.odeint(linear, y0, [0.0, 0.5, 1.0], Mt, substeps=4)[-1])
        loss.backward()
        opt.step()
        return loss

    compiled = ga.compile(step)
    rng = np.random.default_rng(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the whole step replays: no eager fallback
        losses = [compiled(y0 + 0.1 * k, c * (1 + k)) for k in range(3)]
        compiled(rng.standard_normal(3), c)
    Mt.data = M.copy()
    Mt.zero_grad()
    eager = [step(y0 + 0.1 * k, c * (1 + k)) for k in range(3)]
    for a, b in zip(losses, eager):
        np.testing.assert_allclose(a.numpy() if hasattr(a, "numpy") else a, b.numpy(),
                                   rtol=1e-12)
    vg = ga.compile(ga.value_and_grad(
        lambda y0, M: ga.sum(ga.odeint(linear, y0, [0.0, 1.0], M, substeps=6)[-1]),
        argnums=(0, 1)))
    vg(y0, M)
    y1, M1 = rng.standard_normal(3), rng.standard_normal((3, 3))
    v, (gy, gM) = vg(y1, M1)
    v0, (gy0, gM0) = ga.value_and_grad(
        lambda y0, M: ga.sum(ga.odeint(linear, y0, [0.0, 1.0], M, substeps=6)[-1]),
        argnums=(0, 1))(y1, M1)
    np.testing.assert_allclose(gy, gy0, rtol=1e-12)
    np.testing.assert_allclose(gM, gM0, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# errors

def test_errors():
    f = decay
    with pytest.raises(ValueError, match="unknown method 'rk45'"):
        ga.odeint(f, 1.0, [0.0, 1.0], 1.0, method="rk45")
    with pytest.raises(ValueError, match="substeps"):
        ga.odeint(f, 1.0, [0.0, 1.0], 1.0, substeps=0)
    with pytest.raises(ValueError, match="substeps"):
        ga.odeint(f, 1.0, [0.0, 1.0], 1.0, method="dopri5", substeps=4)
    with pytest.raises(ValueError, match="rtol"):
        ga.odeint(f, 1.0, [0.0, 1.0], 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="1-D"):
        ga.odeint(f, 1.0, [[0.0, 1.0]], 1.0)
    with pytest.raises(ValueError, match="strictly"):
        ga.odeint(f, 1.0, [0.0, 1.0, 0.5], 1.0)
    with pytest.raises(ValueError, match=r"func returned shape \(2,\) for a state of shape "
                                         r"\(3,\)"):
        ga.odeint(lambda y, t: y[:2], np.ones(3), [0.0, 1.0])
    with pytest.raises(TypeError, match="complex"):
        ga.odeint(f, np.ones(2, complex), [0.0, 1.0], 1.0)
    with pytest.raises(TypeError, match="callable"):
        ga.odeint("f", 1.0, [0.0, 1.0])


# ----------------------------------------------------------------------------------------------
# memory: the adjoint's graph does not grow with the number of steps

def _peak(fn):
    fn()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_adjoint_memory_flat_in_the_number_of_steps():
    M, y0, c = _problem(4, seed=6)

    def grad_at(n, adjoint):
        return lambda: ga.grad(lambda y0, M: ga.sum(c * ga.odeint(
            linear, y0, [0.0, 1.0], M, method="euler", substeps=n, adjoint=adjoint)[-1]),
            argnums=(0, 1))(y0, M)
    small, large = _peak(grad_at(500, True)), _peak(grad_at(5000, True))
    direct = _peak(grad_at(500, False))
    assert large < 1.5 * small + 20_000, (small, large)
    assert direct > 5 * small, (small, direct)


def test_dopri5_every_mode_agrees_and_compile_policy():
    M, y0, c = _problem(3, seed=7)
    t = [0.0, 0.4, 1.0]

    def f(y0, M, adjoint=True):
        return ga.odeint(lambda y, t, M: ga.tanh(M @ y), y0, t, M, method="dopri5",
                         rtol=1e-8, adjoint=adjoint)
    Jd = ga.jacrev(lambda M: f(y0, M, False))(M)
    np.testing.assert_allclose(ga.jacrev(lambda M: f(y0, M))(M), Jd, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ga.jacfwd(lambda M: f(y0, M))(M), Jd, rtol=1e-12, atol=1e-14)

    def loss(y0, adjoint=True):
        return ga.sum(c * f(y0, M, adjoint)[-1] ** 2)
    H = ga.hessian(loss)(y0)
    np.testing.assert_allclose(H, ga.hessian(lambda y: loss(y, False))(y0), rtol=1e-11,
                               atol=1e-13)
    # first order replays (the forward re-chooses the steps, the plain sweep follows them) ...
    vg = ga.compile(ga.grad(loss))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vg(y0)
        y1 = y0 + 0.3
        np.testing.assert_allclose(vg(y1), ga.grad(loss)(y1), rtol=1e-12)
    assert vg.replays == 1
    # ... a recorded sweep would freeze the steps: it runs eagerly, with a warning
    ch = ga.compile(ga.hessian(loss))
    with pytest.warns(RuntimeWarning, match="dopri5"):
        ch(y0)
    np.testing.assert_allclose(ch(y0 + 0.3), ga.hessian(loss)(y0 + 0.3), rtol=1e-12)
