"""The fused backward primitives of ga.linalg (issue 10: per-call overhead at small n):
eigh_vjp (graphad/linalg/_spectral.py), against finite differences in both modes, against the
composite rule they replace (still used for blocks of cotangents), at second order, with
degenerate spectra (the same policy), batched == per matrix, float32 kept, under ga.compile."""
import numpy as np
import pytest

import graphad as ga
from graphad import linalg as gl
from graphad.linalg import _spectral
from prim_cases import P, fd_jacobian

NDE = _spectral.NonDifferentiableError


def _rng(seed):
    return np.random.default_rng(seed)


def _sym(A):
    return (A + np.swapaxes(A, -1, -2)) / 2


def _with_spectrum(w, seed=0):
    Q = np.linalg.qr(_rng(seed).standard_normal((len(w), len(w))))[0]
    return _sym((Q * np.asarray(w, float)) @ Q.T)


# ----------------------------------------------------------------------------------------------
# eigh_vjp

def _eigh_vjp_args(k, seed, batch=()):
    r = _rng(seed)
    w = np.sort(r.uniform(-2, 2, batch + (k,)), axis=-1) + np.arange(k) * 0.7  # gaps >= 0.7
    return [w, r.standard_normal(batch + (k, k)), r.standard_normal(batch + (k, k)),
            r.standard_normal(batch + (k,))]


def _eigh_vjp_ref(w, V, gV, gw=None):
    """The formula by hand: sym(V (F o V^T gV + diag(gw)) V^T), F_ij = 1/(w_j - w_i)."""
    d = w[..., None, :] - w[..., :, None]
    k = w.shape[-1]
    F = np.where(np.eye(k, dtype=bool), 0.0, 1.0 / np.where(np.eye(k, dtype=bool), 1.0, d))
    inner = F * (np.swapaxes(V, -1, -2) @ gV)
    if gw is not None:
        inner = inner + gw[..., :, None] * np.eye(k)
    return _sym(V @ inner @ np.swapaxes(V, -1, -2))


@pytest.mark.parametrize("batch", [(), (3,)])
@pytest.mark.parametrize("with_gw", [True, False])
def test_eigh_vjp_value_and_both_modes(batch, with_gw):
    args = _eigh_vjp_args(4, 1, batch)
    if not with_gw:
        args = args[:3]
    f = lambda *a: P("eigh_vjp", *a, params=with_gw)       # noqa: E731
    np.testing.assert_allclose(f(*args), _eigh_vjp_ref(*args), rtol=1e-12, atol=1e-12)
    for i in range(len(args)):
        fd = fd_jacobian(f, args, i)
        np.testing.assert_allclose(ga.jacrev(f, argnums=i)(*args), fd, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ga.jacfwd(f, argnums=i)(*args), fd, rtol=1e-6, atol=1e-7)
    ga.check_grad(f, *args)


def test_eigh_vjp_second_order():
    args = _eigh_vjp_args(3, 2)

    def f(w, V, gV, gw):
        G = P("eigh_vjp", w, V, gV, gw, params=True)
        return ga.sum(G * G * G)
    for i in range(4):
        H = ga.hessian(f, argnums=i)(*args)
        g = ga.grad(f, argnums=i)
        fd = fd_jacobian(lambda *a: g(*a), args, i)
        np.testing.assert_allclose(H, fd, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(H, ga.jacfwd(ga.jacrev(f, argnums=i), argnums=i)(*args),
                                   rtol=1e-9, atol=1e-10)


def test_eigh_vjp_batched_equals_per_matrix_and_float32():
    args = _eigh_vjp_args(5, 3, (2, 3))
    f = lambda *a: P("eigh_vjp", *a, params=True)          # noqa: E731
    got = f(*args)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(got[i, j], f(*[a[i, j] for a in args]), rtol=1e-13,
                                       atol=1e-13)
    a32 = [a.astype(np.float32) for a in args]
    g32 = f(*a32)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, got, rtol=1e-4, atol=1e-4)
    dw = ga.grad(lambda *a: ga.sum(f(*a) ** 2))(*a32)
    assert dw.dtype == np.float32


def test_eigh_gradient_uses_one_fused_node(monkeypatch):
    calls = []
    fwd = _spectral.P_EIGH_VJP.fwd
    monkeypatch.setattr(_spectral.P_EIGH_VJP, "fwd", lambda *a: calls.append(1) or fwd(*a))
    S = _with_spectrum([-1.0, 0.5, 2.0, 3.0], seed=4)
    C = _rng(5).standard_normal((4, 4))
    # two eigh nodes: one with a cotangent on V (the fused node), one on w only (V diag(gw) V^T)
    ga.grad(lambda X: ga.sum(gl.eigh(X)[1] ** 2 * C) + ga.sum(gl.eigh(X)[0]))(S)
    assert len(calls) == 1


@pytest.mark.parametrize("k", [1, 2, 6, 70])
def test_eigh_gradient_fused_equals_composite(k):
    """A block of cotangents (jacrev) takes the composite rule; each row must equal the fused
    rule's gradient (grad of that one output), with the cluster pre-check in Python floats
    (k <= 64) and in NumPy."""
    S = _with_spectrum(np.linspace(-3, 3, k) + _rng(k).uniform(0, 0.01, k), seed=k)
    C = _rng(6).standard_normal((k, k))
    idx = [(0, 0), (k - 1, k // 2), (k // 2, 0)]

    def f(X):
        w, V = gl.eigh(X)
        M = (V ** 2 * C) * w
        return ga.stack([M[i, j] for i, j in idx])
    J = ga.jacrev(f)(S)
    for r, (i, j) in enumerate(idx):
        g = ga.grad(lambda X: f(X)[r])(S)
        np.testing.assert_allclose(g, J[r], rtol=1e-9, atol=1e-11 * np.abs(J[r]).max())


def test_eigh_vjp_batch_of_one_equals_one_matrix():
    args = _eigh_vjp_args(6, 7)
    f = lambda *a: P("eigh_vjp", *a, params=True)          # noqa: E731
    np.testing.assert_allclose(f(*[a[None] for a in args])[0], f(*args), rtol=1e-13,
                               atol=1e-13)


def test_eigh_vjp_degenerate_policy():
    """A repeated pair: a basis-invariant loss (the projector) gets the exact gradient, a
    basis-dependent one (one eigenvector) raises, through the fused node as before."""
    S = _with_spectrum([1.0, 1.0, 2.0, -1.0], seed=8)
    T = _sym(_rng(9).standard_normal((4, 4)))

    def projector(X):
        w, V = gl.eigh(X)
        Vc = V[:, 1:3]                     # the eigenvalues are sorted: -1, 1, 1, 2
        return ga.sum((Vc @ Vc.T) * T)
    w, V = np.linalg.eigh(S)
    # d<P_c, T> with P_c the cluster's projector: exact by the perturbation of the subspace
    g = ga.grad(projector)(S)
    h = 1e-6
    dA = _sym(_rng(10).standard_normal((4, 4)))
    fd = (projector(S + h * dA) - projector(S - h * dA)) / (2 * h)
    np.testing.assert_allclose(np.sum(g * dA), float(fd), rtol=1e-6)
    with pytest.raises(NDE, match="arbitrary basis"):
        ga.grad(lambda X: ga.sum(gl.eigh(X)[1][:, 1] ** 2 * T[0]))(S)
    with pytest.raises(NDE, match="pairs eigenvectors"):
        ga.grad(lambda X: ga.sum((lambda w, V: (V * w) @ V.T)(*gl.eigh(X)) * T))(S)


def test_eigh_vjp_degenerate_policy_large():
    """k > 64 (the NumPy pre-check): a repeated pair still reaches the full check."""
    w = np.linspace(-3.0, 3.0, 70)
    w[40] = w[41]
    S = _with_spectrum(w, seed=15)
    T = _rng(16).standard_normal(70)
    with pytest.raises(NDE, match="arbitrary basis"):
        ga.grad(lambda X: ga.sum(gl.eigh(X)[1][:, 40] ** 2 * T))(S)
    g = ga.grad(lambda X: ga.sum(gl.eigh(X)[0] ** 2))(S)    # spectral: exact, 2 S
    np.testing.assert_allclose(g, 2 * S, rtol=1e-9, atol=1e-9)


def test_eigh_vjp_nan_and_sizes():
    assert _spectral._distinct(np.array([1.0]))
    assert not _spectral._distinct(np.array([1.0, np.nan, 3.0]))
    assert not _spectral._distinct(np.array([1.0, 3.0, 3.0 + 1e-15]))
    assert _spectral._distinct(np.array([-3.0, 1.0, 2.0]))
    assert not _spectral._distinct(np.array([3.0, 1.0, 2.0]))       # unsorted: the full check
    w = np.array([3.0, -1.0, 0.5, 2.0])                               # unsorted, distinct
    V, gV = _rng(14).standard_normal((2, 4, 4))
    np.testing.assert_allclose(P("eigh_vjp", w, V, gV, w, params=True),
                               _eigh_vjp_ref(w, V, gV, w), rtol=1e-12, atol=1e-12)
    big = np.linspace(-1.0, 1.0, 70)
    assert _spectral._distinct(big)
    for bad in (big[::-1], np.where(np.arange(70) == 5, np.nan, big),
                np.concatenate([big[:10], big[9:10] + 1e-16, big[11:]])):
        assert not _spectral._distinct(bad)
    z = np.zeros((0,))
    assert P("eigh_vjp", z, np.zeros((0, 0)), np.zeros((0, 0)), z, params=True).shape == (0, 0)
    one = P("eigh_vjp", np.array([2.0]), np.ones((1, 1)), np.ones((1, 1)), np.array([3.0]),
            params=True)
    np.testing.assert_allclose(one, [[3.0]])


def test_eigh_gradient_compiled_replay():
    C = _rng(11).standard_normal((5, 5))

    def loss(X):
        w, V = gl.eigh(X)
        return ga.sum(V ** 2 * C) + ga.sum(w ** 3)
    g = ga.grad(loss)
    cg = ga.compile(g)
    S1 = _with_spectrum([-2.0, -1.0, 0.5, 1.0, 3.0], seed=12)
    S2 = _with_spectrum([-3.0, -0.5, 0.0, 2.0, 2.5], seed=13)
    cg(S1)
    np.testing.assert_allclose(cg(S2), g(S2), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(cg(S1), g(S1), rtol=1e-13, atol=1e-13)


# ----------------------------------------------------------------------------------------------
# solve_vjp

_SOLVE_SHAPES = [((4, 4), (4,)), ((4, 4), (4, 2)), ((2, 4, 4), (4,)), ((2, 4, 4), (4, 3)),
                 ((4, 4), (3, 4, 2))]


def _solve_args(sa, sb, seed):
    r = _rng(seed)
    A = r.standard_normal(sa) + 4.0 * np.eye(sa[-1])
    X = np.linalg.solve(A, r.standard_normal(sb))
    return [A, X, r.standard_normal(X.shape)], len(sb) == 1


@pytest.mark.parametrize("sa,sb", _SOLVE_SHAPES)
def test_solve_vjp_value_and_both_modes(sa, sb):
    args, vec = _solve_args(sa, sb, 20)
    A, X, G = args
    gA, gB = P("solve_vjp", *args, params=(vec, None))
    gb_ref = np.linalg.solve(np.swapaxes(A, -1, -2), G[..., None] if vec else G)
    ga_ref = -gb_ref @ np.swapaxes(X[..., None] if vec else X, -1, -2)
    np.testing.assert_allclose(gB, gb_ref[..., 0] if vec else gb_ref, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gA, ga_ref, rtol=1e-12, atol=1e-13)
    for k in range(2):
        f = (lambda k: lambda *a: P("solve_vjp", *a, params=(vec, None))[k])(k)
        for i in range(3):
            fd = fd_jacobian(f, args, i)
            np.testing.assert_allclose(ga.jacrev(f, argnums=i)(*args), fd, rtol=1e-6,
                                       atol=1e-8)
            np.testing.assert_allclose(ga.jacfwd(f, argnums=i)(*args), fd, rtol=1e-6,
                                       atol=1e-8)


@pytest.mark.parametrize("vec", [True, False])
def test_solve_gradient_fused_equals_composite_and_second_order(vec):
    """grad (the fused node) equals each row of jacrev (the composite rule, a block of
    cotangents); the hessian and hvp of a loss through solve match finite differences."""
    r = _rng(21)
    A = r.standard_normal((4, 4)) + 4.0 * np.eye(4)
    b = r.standard_normal((4,) if vec else (4, 2))
    C = r.standard_normal(b.shape)

    def f(A, b):
        return gl.solve(A, b) ** 2 * C
    J = ga.jacrev(lambda A, b: ga.reshape(f(A, b), (-1,)), argnums=(0, 1))(A, b)
    for r_ in range(b.size):
        g = ga.grad(lambda A, b: ga.reshape(f(A, b), (-1,))[r_], argnums=(0, 1))(A, b)
        np.testing.assert_allclose(g[0], J[0][r_], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(g[1], J[1][r_], rtol=1e-12, atol=1e-13)

    def loss(A, b):
        return ga.sum(f(A, b))
    H = ga.hessian(loss)(A, b)
    gr = ga.grad(loss)
    np.testing.assert_allclose(H, fd_jacobian(lambda A: gr(A, b), [A], 0), rtol=1e-5,
                               atol=1e-7)
    dA = r.standard_normal((4, 4))
    fd = (gr(A + 1e-6 * dA, b) - gr(A - 1e-6 * dA, b)) / 2e-6
    np.testing.assert_allclose(ga.hvp(lambda A: loss(A, b), A, dA)[1], fd, rtol=1e-5,
                               atol=1e-7)
    Hb = ga.hessian(loss, argnums=1)(A, b)
    grb = ga.grad(loss, argnums=1)
    np.testing.assert_allclose(Hb, fd_jacobian(lambda b: grb(A, b), [b], 0), rtol=1e-5,
                               atol=1e-7)


def test_solve_gradient_uses_one_fused_node_float32_and_compile(monkeypatch):
    from graphad.linalg import _factor
    calls = []
    fwd = _factor.P_SOLVE_VJP.fwd
    monkeypatch.setattr(_factor.P_SOLVE_VJP, "fwd", lambda *a: calls.append(1) or fwd(*a))
    r = _rng(22)
    A = r.standard_normal((5, 5)) + 4.0 * np.eye(5)
    b, c = r.standard_normal(5), r.standard_normal(5)
    g = ga.grad(lambda A, b: ga.sum(c * gl.solve(A, b)), argnums=(0, 1))
    gA, gb = g(A, b)
    assert len(calls) == 1
    want_b = np.linalg.solve(A.T, c)
    np.testing.assert_allclose(gb, want_b, rtol=1e-12)
    np.testing.assert_allclose(gA, -np.outer(want_b, np.linalg.solve(A, b)), rtol=1e-12)
    # only b wanted: the composite rule (no gA computed)
    ga.grad(lambda b: ga.sum(c * gl.solve(A, b)))(b)
    assert len(calls) == 1
    g32 = g(A.astype(np.float32), b.astype(np.float32))
    assert g32[0].dtype == g32[1].dtype == np.float32
    np.testing.assert_allclose(g32[0], gA, rtol=1e-4, atol=1e-5)
    cg = ga.compile(g)
    cg(A, b)
    A2 = A + 0.1 * r.standard_normal((5, 5))
    for got, want in zip(cg(A2, 2 * b), g(A2, 2 * b)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


def test_solve_fast_path_checks():
    """The one-matrix fast path of solve takes only what the full checks pass."""
    A = np.eye(3) * 2.0
    np.testing.assert_allclose(gl.solve(A, np.ones(3)), 0.5 * np.ones(3))
    with pytest.raises(ValueError, match="solve"):
        gl.solve(A, np.ones(4))
    with pytest.raises(ValueError, match="solve"):
        gl.solve(np.ones((3, 4)), np.ones(3))
    assert gl.solve(A.astype(np.float32), np.ones(3, np.float32)).dtype == np.float32
    assert gl.solve(A.astype(np.float32), np.ones(3)).dtype == np.float64
    with pytest.raises(np.linalg.LinAlgError, match="solve"):
        gl.solve(np.zeros((3, 3)), np.ones(3))

