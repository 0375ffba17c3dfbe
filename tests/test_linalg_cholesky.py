"""ga.linalg.cholesky and ga.linalg.solve_triangular (graphad/linalg/_cholesky.py): values
against NumPy/SciPy, the closed forms (Murray 2016) computed independently with explicit
inverses, finite differences in both modes and at second order, HIPS autograd, batches,
float32, ga.compile, and the errors."""
import autograd
import autograd.numpy as anp
import autograd.scipy.linalg as asl
import numpy as np
import pytest
import scipy.linalg as sl
from hypothesis import given
from hypothesis import strategies as st

import graphad as ga
from graphad import linalg as gl
from conftest import seeds
from prim_cases import fd_jacobian


def _spd(n, seed=0, batch=(), dtype=np.float64):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(batch + (n, n))
    return (a @ np.swapaxes(a, -1, -2) + n * np.eye(n)).astype(dtype)


def _mat(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _sym(a):
    return (a + np.swapaxes(a, -1, -2)) / 2


def _phi(x):
    return np.tril(x) - 0.5 * np.diag(np.diag(x))


def _np_chol(a):
    return np.linalg.cholesky(_sym(a))


# ---------------------------------------------------------------------------------------------
# cholesky: values

def test_cholesky_values_match_numpy():
    S = _spd(5, seed=1)
    L = gl.cholesky(S).numpy()
    np.testing.assert_array_equal(L, np.linalg.cholesky(S))
    assert np.all(np.triu(L, 1) == 0) and np.all(np.diag(L) > 0)
    Sb = _spd(3, seed=2, batch=(2, 4))
    np.testing.assert_allclose(gl.cholesky(Sb).numpy(), np.linalg.cholesky(Sb), rtol=1e-14,
                               atol=1e-15)
    assert gl.cholesky(np.eye(3, dtype=np.float32)).dtype == np.float32
    assert gl.cholesky(np.zeros((2, 0, 0))).shape == (2, 0, 0)
    assert gl.cholesky(np.array([[4]])).numpy().tolist() == [[2.0]]    # integers: float64


def test_cholesky_of_a_nonsymmetric_input_is_that_of_its_symmetric_part():
    S = _spd(4, seed=3)
    A = S + 0.3 * (_mat((4, 4), seed=5) - _mat((4, 4), seed=5).T)   # S plus an antisymmetric
    np.testing.assert_allclose(gl.cholesky(A).numpy(), np.linalg.cholesky(S), rtol=1e-13)
    g = ga.grad(lambda X: ga.sum(gl.cholesky(X) * np.arange(16.0).reshape(4, 4)))(A)
    np.testing.assert_allclose(g, g.T, atol=1e-14)


def test_cholesky_not_positive_definite_raises_naming_the_op():
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(np.linalg.LinAlgError, match=r"cholesky.*positive definite.*\(2, 2\)"):
        gl.cholesky(bad)
    with pytest.raises(np.linalg.LinAlgError, match=r"cholesky.*positive definite.*\(2, 2, 2\)"):
        gl.cholesky(np.stack([np.eye(2), bad]))
    with pytest.raises(ValueError, match=r"cholesky.*\(2, 3\)"):
        gl.cholesky(np.ones((2, 3)))
    with pytest.raises(TypeError, match="cholesky.*complex"):
        gl.cholesky(np.eye(2, dtype=complex))
    for batch in ((), (2,)):
        with pytest.raises(TypeError, match="cholesky.*float16"):
            gl.cholesky(np.ones(batch + (2, 2), np.float16))


# ---------------------------------------------------------------------------------------------
# cholesky: derivatives against the closed forms (explicit inverses, independent of graphad)

def test_cholesky_jvp_is_L_phi_of_Linv_dA_LinvT():
    S, dA = _spd(5, seed=6), _mat((5, 5), seed=7)
    L = np.linalg.cholesky(S)
    Li = np.linalg.inv(L)
    _, t = ga.jvp(gl.cholesky, (S,), (dA,))
    np.testing.assert_allclose(t, L @ _phi(Li @ _sym(dA) @ Li.T), rtol=1e-11, atol=1e-13)
    # the tangent keeps A = L L^T to first order: dA_sym = dL L^T + L dL^T
    np.testing.assert_allclose(t @ L.T + L @ t.T, _sym(dA), atol=1e-12)


def test_cholesky_vjp_is_murrays_formula():
    S, G = _spd(5, seed=8), _mat((5, 5), seed=9)
    L = np.linalg.cholesky(S)
    Li = np.linalg.inv(L)
    _, pull = ga.vjp(gl.cholesky, S)
    (g,) = pull(G)
    np.testing.assert_allclose(g, _sym(Li.T @ _phi(L.T @ G) @ Li), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("batch", [(), (2,), (2, 1)])
def test_cholesky_jacobians_both_modes_against_finite_differences(batch):
    S = _spd(3, seed=10, batch=batch)
    fd = fd_jacobian(_np_chol, [S], 0)
    np.testing.assert_allclose(ga.jacrev(gl.cholesky)(S), fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.jacfwd(gl.cholesky)(S), fd, rtol=1e-6, atol=1e-8)


def test_cholesky_batched_equals_per_matrix():
    S = _spd(4, seed=11, batch=(3,))
    W = _mat((3, 4, 4), seed=12)
    g = ga.grad(lambda X: ga.sum(gl.cholesky(X) * W))(S)
    for k in range(3):
        gk = ga.grad(lambda X: ga.sum(gl.cholesky(X) * W[k]))(S[k])
        np.testing.assert_allclose(g[k], gk, rtol=1e-13, atol=1e-14)


def test_cholesky_second_order():
    S = _spd(4, seed=13)
    W = _mat((4, 4), seed=14)

    def f(X):
        L = gl.cholesky(X)
        return ga.sum(L ** 3 * W) + ga.sum(ga.log(ga.diagonal(L)))

    H = ga.hessian(f)(S)
    np.testing.assert_allclose(H, ga.jacfwd(ga.jacrev(f))(S), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(H, ga.jacrev(ga.jacfwd(f))(S), rtol=1e-9, atol=1e-11)
    g = ga.grad(f)
    dS = _mat((4, 4), seed=15)
    fd = (g(S + 1e-6 * dS) - g(S - 1e-6 * dS)) / 2e-6
    np.testing.assert_allclose(np.tensordot(H, dS, 2), fd, rtol=1e-6, atol=1e-8)
    _, hv = ga.hvp(f, (S,), (dS,))
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)


def test_cholesky_logdet_hessian_closed_form():
    """2 sum log diag(L) = log det S: gradient S^{-1}, and the Hessian is that of
    log det on the symmetric part, d^2 f [dA, dB] = -tr(Y sym(dA) Y sym(dB)), Y = S^{-1}."""
    S = _spd(3, seed=16)
    Y = np.linalg.inv(S)
    f = lambda X: 2 * ga.sum(ga.log(ga.diagonal(gl.cholesky(X))))
    np.testing.assert_allclose(ga.grad(f)(S), Y, rtol=1e-12)
    H = ga.hessian(f)(S)
    ref = -np.einsum("jk,li->ijkl", Y, Y)
    ref = (ref + ref.transpose(1, 0, 2, 3)) / 2
    ref = (ref + ref.transpose(0, 1, 3, 2)) / 2
    np.testing.assert_allclose(H, ref, rtol=1e-10, atol=1e-12)


def test_cholesky_against_autograd():
    S = _spd(4, seed=17)
    W = _mat((4, 4), seed=18)
    ours = ga.grad(lambda X: ga.sum(gl.cholesky(X) ** 2 * W))(S)
    theirs = autograd.grad(lambda X: anp.sum(anp.linalg.cholesky(X) ** 2 * W))(S)
    np.testing.assert_allclose(ours, _sym(theirs), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch", [(), (2,)])
def test_cholesky_float32_is_kept(batch):
    S = _spd(3, seed=19, batch=batch)
    for jac in (ga.jacrev, ga.jacfwd):
        J32, J64 = jac(gl.cholesky)(S.astype(np.float32)), jac(gl.cholesky)(S)
        assert J32.dtype == np.float32
        np.testing.assert_allclose(J32, J64, rtol=1e-4, atol=1e-5)
    H32 = ga.hessian(lambda X: ga.sum(gl.cholesky(X) ** 3))(S.astype(np.float32))
    assert H32.dtype == np.float32


def test_cholesky_under_compile():
    f = ga.value_and_grad(lambda X: ga.sum(gl.cholesky(X) ** 3))
    cf = ga.compile(f)
    for seed in range(3):
        S = _spd(4, seed=20 + seed)
        (v1, g1), (v2, g2) = cf(S), f(S)
        np.testing.assert_allclose(v1, v2, rtol=1e-13)
        np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)
    assert cf.traces == 1 and cf.replays == 2


@given(seed=seeds, n=st.integers(1, 5), b=st.integers(0, 2))
def test_cholesky_random_check_grad(seed, n, b):
    S = _spd(n, seed=seed % 10000, batch=(b,) if b else ())
    ga.check_grad(gl.cholesky, S)


# ---------------------------------------------------------------------------------------------
# solve_triangular

OPTIONS = [(trans, lower, unit) for trans in (0, 1, "T") for lower in (False, True)
           for unit in (False, True)]


def _tri_mat(n, seed, batch=()):
    return _mat(batch + (n, n), seed) + 2 * n * np.eye(n)


@pytest.mark.parametrize("trans,lower,unit", OPTIONS)
def test_solve_triangular_values_match_scipy(trans, lower, unit):
    kw = dict(trans=trans, lower=lower, unit_diagonal=unit)
    A, B, b = _tri_mat(4, 21), _mat((4, 3), 22), _mat((4,), 23)
    np.testing.assert_allclose(gl.solve_triangular(A, B, **kw).numpy(),
                               sl.solve_triangular(A, B, **kw), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gl.solve_triangular(A, b, **kw).numpy(),
                               sl.solve_triangular(A, b, **kw), rtol=1e-13, atol=1e-14)
    # the three batched paths: a 2-D a with stacked b (folded into one call), small batched
    # a (NumPy's batched solve), large batched a (a loop of LAPACK calls); broadcasting
    for n, abatch, bbatch in ((4, (), (2, 3)), (4, (2, 1), (3,)), (20, (2,), (3, 1))):
        A, B = _tri_mat(n, 24, abatch), _mat(bbatch + (n, 2), 25)
        X = gl.solve_triangular(A, B, **kw).numpy()
        full = np.broadcast_shapes(abatch, bbatch)
        Ab, Bb = np.broadcast_to(A, full + (n, n)), np.broadcast_to(B, full + (n, 2))
        for idx in np.ndindex(full):
            np.testing.assert_allclose(X[idx], sl.solve_triangular(Ab[idx], Bb[idx], **kw),
                                       rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("trans,lower,unit", OPTIONS)
def test_solve_triangular_derivatives(trans, lower, unit):
    kw = dict(trans=trans, lower=lower, unit_diagonal=unit)
    f = lambda a, b: gl.solve_triangular(a, b, **kw)
    ref = lambda a, b: sl.solve_triangular(a, b, **kw)
    for abatch, bshape in (((), (3, 2)), ((), (3,)), ((2,), (2, 3, 1)), ((), (2, 3, 2))):
        A, B = _tri_mat(3, 26, abatch), _mat(bshape, 27)
        if abatch:
            ref = (lambda r: lambda a, b: np.stack([r(a[i], b[i]) for i in range(len(a))]))(
                lambda a, b: sl.solve_triangular(a, b, **kw))
        elif len(bshape) == 3:
            ref = (lambda r: lambda a, b: np.stack([r(a, b[i]) for i in range(len(b))]))(
                lambda a, b: sl.solve_triangular(a, b, **kw))
        for i in (0, 1):
            fd = fd_jacobian(ref, [A, B], i)
            np.testing.assert_allclose(ga.jacrev(f, argnums=i)(A, B), fd, rtol=1e-6, atol=1e-8)
            np.testing.assert_allclose(ga.jacfwd(f, argnums=i)(A, B), fd, rtol=1e-6, atol=1e-8)
    # the derivative in a lives on the triangle that is read
    g = ga.grad(lambda a: ga.sum(f(a, B)))(A)
    read = np.tril(np.ones((3, 3)), -1 if unit else 0) if lower else \
        np.triu(np.ones((3, 3)), 1 if unit else 0)
    assert np.all(g[..., read == 0] == 0)


def test_solve_triangular_second_order_and_autograd():
    A, B = _tri_mat(3, 28), _mat((3, 2), 29)
    f = lambda a, b: ga.sum(gl.solve_triangular(a, b, lower=True) ** 3)
    af = lambda a, b: anp.sum(asl.solve_triangular(a, b, lower=True) ** 3)
    for i in (0, 1):
        np.testing.assert_allclose(ga.grad(f, argnums=i)(A, B),
                                   autograd.grad(af, argnum=i)(A, B), rtol=1e-10, atol=1e-12)
    H = ga.hessian(f)(A, B)
    g = ga.grad(f)
    dA = np.tril(_mat((3, 3), 30))
    fd = (g(A + 1e-6 * dA, B) - g(A - 1e-6 * dA, B)) / 2e-6
    np.testing.assert_allclose(np.tensordot(H, dA, 2), fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(H, ga.jacfwd(ga.jacrev(f))(A, B), rtol=1e-10, atol=1e-12)
    hb = ga.hessian(f, argnums=1)(A, B)
    np.testing.assert_allclose(hb, ga.jacfwd(ga.grad(f, argnums=1), argnums=1)(A, B),
                               rtol=1e-10, atol=1e-12)


def test_solve_triangular_float32_and_compile():
    A, B = _tri_mat(3, 31).astype(np.float32), _mat((3, 2), 32).astype(np.float32)
    x = gl.solve_triangular(A, B, lower=True)
    assert x.dtype == np.float32
    gA, gB = ga.grad(lambda a, b: ga.sum(gl.solve_triangular(a, b) ** 2), argnums=(0, 1))(A, B)
    assert gA.dtype == gB.dtype == np.float32
    f = ga.value_and_grad(lambda a, b: ga.sum(gl.solve_triangular(a, b, trans=1) ** 2),
                          argnums=(0, 1))
    cf = ga.compile(f)
    for seed in range(3):
        A, B = _tri_mat(4, 33 + seed), _mat((4, 2), 40 + seed)
        (v1, g1), (v2, g2) = cf(A, B), f(A, B)
        np.testing.assert_allclose(v1, v2, rtol=1e-13)
        for a, b in zip(g1, g2):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_solve_triangular_errors():
    with pytest.raises(np.linalg.LinAlgError, match="solve_triangular.*singular"):
        gl.solve_triangular(np.diag([1.0, 0.0]), np.ones(2))
    with pytest.raises(np.linalg.LinAlgError, match="solve_triangular.*singular"):
        gl.solve_triangular(np.zeros((2, 2, 2)), np.ones((2, 2, 1)), lower=True)
    with pytest.raises(ValueError, match=r"solve_triangular.*\(3, 3\).*\(2,\)"):
        gl.solve_triangular(np.eye(3), np.ones(2))
    with pytest.raises(ValueError, match=r"solve_triangular.*\(2, 3, 3\).*\(4, 3, 1\)"):
        gl.solve_triangular(np.ones((2, 3, 3)), np.ones((4, 3, 1)))
    with pytest.raises(TypeError, match="solve_triangular.*float16"):
        gl.solve_triangular(np.eye(2), np.ones(2, np.float16))
    with pytest.raises(ValueError, match="solve_triangular.*trans"):
        gl.solve_triangular(np.eye(2), np.ones(2), trans="X")
    # unit_diagonal ignores the diagonal; a zero there is fine
    np.testing.assert_array_equal(
        gl.solve_triangular(np.zeros((2, 2)), np.ones(2), unit_diagonal=True).numpy(), [1, 1])
