"""ga.linalg's LU family (graphad/linalg/_factor.py): inv, det, slogdet, solve, lu against the
course's closed forms (Giles' collection), the cofactor matrix at singular matrices, finite
differences in both modes and at second order, HIPS autograd, batches, broadcasting, float32,
ga.compile, the reuse of the forward's factorization, and the errors."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given
from hypothesis import strategies as st

import graphad as ga
from graphad import linalg as gl
from graphad.linalg import _factor
from conftest import seeds
from prim_cases import fd_jacobian


def _mat(n, seed=0, batch=(), dtype=np.float64, shift=0.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(batch + (n, n)) + shift * np.eye(n)).astype(dtype)


def _orth(n, seed):
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0]


def _with_singular_values(s, seed=0):
    """Q diag(s) W^T for random orthogonal Q, W; returns (A, Q, W)."""
    n = len(s)
    q, w = _orth(n, seed), _orth(n, seed + 100)
    return q @ np.diag(s) @ w.T, q, w


def _fd_det_hessian(A, E, F, h=1e-4):
    """d^2 det [E, F] by central differences of the polynomial det (NumPy's)."""
    d = np.linalg.det
    return (d(A + h * E + h * F) - d(A + h * E - h * F) - d(A - h * E + h * F)
            + d(A - h * E - h * F)) / (4 * h * h)


# ---------------------------------------------------------------------------------------------
# closed forms

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_closed_forms_inv_det_slogdet(dtype):
    """d(A^-1) = -A^-1 dA A^-1;  grad det = det(A) A^-T;  grad log|det| = A^-T."""
    A, dA = _mat(4, seed=1, shift=2.0), _mat(4, seed=2)
    Y = np.linalg.inv(A)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    A_, dA_ = A.astype(dtype), dA.astype(dtype)
    _, t = ga.jvp(gl.inv, (A_,), (dA_,))
    assert t.dtype == dtype
    np.testing.assert_allclose(t, -Y @ dA @ Y, **tol)
    g = ga.grad(gl.det)(A_)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, np.linalg.det(A) * Y.T, **tol)
    g = ga.grad(lambda X: gl.slogdet(X)[1])(A_)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, Y.T, **tol)
    _, t = ga.jvp(gl.det, (A_,), (dA_,))
    np.testing.assert_allclose(t, np.linalg.det(A) * np.trace(Y @ dA), **tol)


def test_values_match_numpy_and_scipy():
    A = _mat(5, seed=3)
    np.testing.assert_allclose(gl.det(A).numpy(), np.linalg.det(A), rtol=1e-13)
    np.testing.assert_allclose(gl.inv(A).numpy(), np.linalg.inv(A), rtol=1e-11, atol=1e-13)
    s, l = gl.slogdet(A)
    ref = np.linalg.slogdet(A)
    assert s.numpy() == ref[0]
    np.testing.assert_allclose(l.numpy(), ref[1], rtol=1e-13)
    b = _mat(5, seed=4)[:, 0]
    np.testing.assert_allclose(gl.solve(A, b).numpy(), np.linalg.solve(A, b), rtol=1e-11)
    for x, y in zip(gl.lu(A), scipy.linalg.lu(A)):
        np.testing.assert_allclose(x.numpy(), y, rtol=1e-13, atol=1e-15)


def test_empty_matrix_and_singular_values_follow_numpy():
    Z = np.zeros((0, 0))
    assert gl.det(Z).numpy() == 1.0
    assert [x.numpy() for x in gl.slogdet(Z)] == [1.0, 0.0]
    assert ga.grad(gl.det)(Z).shape == (0, 0)
    assert gl.inv(Z).shape == (0, 0)
    S = np.array([[1.0, 2.0], [2.0, 4.0]])
    assert gl.det(S).numpy() == 0.0
    s, l = gl.slogdet(S)
    assert s.numpy() == 0.0 and l.numpy() == -np.inf


# ---------------------------------------------------------------------------------------------
# det at singular matrices: the cofactor matrix

@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_cofactor_at_rank_n_minus_1(dtype, tol):
    """At rank n-1, C = det(Q) det(W) prod(s_1..s_{n-1}) q_n w_n^T (adj is rank one)."""
    s = np.array([3.0, 2.0, 1.5, 0.0])
    A, q, w = _with_singular_values(s, seed=5)
    ref = np.linalg.det(q) * np.linalg.det(w) * 9.0 * np.outer(q[:, 3], w[:, 3])
    A_ = A.astype(dtype)
    g = ga.grad(gl.det)(A_)
    assert g.dtype == dtype and np.all(np.isfinite(g))
    np.testing.assert_allclose(g, ref, atol=tol * 9.0)
    dA = _mat(4, seed=6)
    _, t = ga.jvp(gl.det, (A_,), (dA.astype(dtype),))
    assert t.dtype == dtype
    np.testing.assert_allclose(t, np.sum(ref * dA), atol=tol * 30)
    if dtype == np.float64:       # the cofactor is a polynomial: finite differences of det
        np.testing.assert_allclose(g, fd_jacobian(np.linalg.det, [A], 0), atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cofactor_is_exactly_zero_at_rank_n_minus_2(dtype):
    for s in ([3.0, 2.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0]):
        A = _with_singular_values(np.array(s), seed=7)[0].astype(dtype)
        g = ga.grad(gl.det)(A)
        assert g.dtype == dtype and np.all(g == 0)
        _, t = ga.jvp(gl.det, (A,), (_mat(len(s), seed=8, dtype=dtype),))
        assert t == 0
    g = ga.grad(gl.det)(np.zeros((3, 3), dtype))
    assert np.all(g == 0)


def test_one_by_one_zero_matrix_has_gradient_one():
    for dtype in (np.float64, np.float32):
        g = ga.grad(gl.det)(np.zeros((1, 1), dtype))
        assert g.dtype == dtype
        np.testing.assert_array_equal(g, [[1.0]])


def test_cofactor_is_continuous_across_the_lu_svd_switch():
    """Near-singular matrices (LU branch) and rank-deficient ones (SVD branch) agree with the
    SVD formula computed independently; exactly singular LU (a zero pivot) too."""
    for smin in (1e-3, 1e-7, 1e-9, 1e-12, 0.0):
        s = np.array([2.0, 1.0, 0.5, smin])
        A, q, w = _with_singular_values(s, seed=9)
        pi = np.array([np.prod(np.delete(s, i)) for i in range(4)])
        ref = np.linalg.det(q) * np.linalg.det(w) * (q * pi) @ w.T
        np.testing.assert_allclose(ga.grad(gl.det)(A), ref, atol=1e-12)
    S = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])    # exact zero pivot
    np.testing.assert_allclose(ga.grad(gl.det)(S), fd_jacobian(np.linalg.det, [S], 0),
                               atol=1e-8)


def test_det_hessian_nonsingular_and_singular():
    """d^2 det[E, F] = <H(A)[E], F> against second differences of det, at a nonsingular matrix
    (the inverse formula) and at ranks n-1 and n-2 (the SVD formula)."""
    E, F = _mat(4, seed=10), _mat(4, seed=11)
    mats = [_mat(4, seed=12, shift=1.0),
            _with_singular_values(np.array([3.0, 2.0, 1.5, 0.0]), seed=13)[0],
            _with_singular_values(np.array([3.0, 2.0, 0.0, 0.0]), seed=14)[0],
            _with_singular_values(np.array([3.0, 0.0, 0.0, 0.0]), seed=15)[0]]
    for A in mats:
        H = ga.hessian(gl.det)(A)
        np.testing.assert_allclose(np.tensordot(np.tensordot(H, F, 2), E, 2),
                                   _fd_det_hessian(A, E, F), rtol=1e-6, atol=1e-7)
        _, hv = ga.hvp(gl.det, A, E)
        np.testing.assert_allclose(hv, np.tensordot(H, E, 2), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(H, ga.jacrev(ga.jacfwd(gl.det))(A), rtol=1e-9, atol=1e-11)
    H = ga.hessian(gl.det)(mats[3])          # rank 1 = n - 3: the Hessian is exactly zero
    assert np.all(H == 0)


def test_det_third_derivative_at_a_nonsingular_matrix():
    A, E = _mat(3, seed=16, shift=2.0), _mat(3, seed=17)
    H = ga.hessian(gl.det)
    fd = (H(A + 1e-5 * E) - H(A - 1e-5 * E)) / 2e-5
    third = ga.jvp(H, (A,), (E,))[1]
    np.testing.assert_allclose(third, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.jacrev(H)(A), ga.jacfwd(H)(A), rtol=1e-9, atol=1e-11)


# ---------------------------------------------------------------------------------------------
# Newton's method on the characteristic polynomial (the course's example)

def test_newton_on_characteristic_polynomial():
    """p(z) = det(zI - A), p'(z) = p(z) tr((zI - A)^-1): z <- z - 1/tr((zI - A)^-1), with p' from
    ga.grad of det; converges to the largest eigenvalue 16.1168... in four steps."""
    A = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    p = lambda z: gl.det(z * np.eye(3) - A)
    z = 15.0
    for _ in range(4):
        z = z - p(z).numpy() / ga.grad(p)(z)
    assert abs(z - 16.11684396980704) < 1e-12
    z = 15.0
    for _ in range(4):            # the same step from inv
        z = z - 1.0 / np.trace(gl.inv(z * np.eye(3) - A).numpy())
    assert abs(z - 16.11684396980704) < 1e-12


# ---------------------------------------------------------------------------------------------
# HIPS autograd as an independent engine (where it is defined: nonsingular matrices)

def test_against_autograd():
    A = _mat(4, seed=18, shift=1.0)
    b, B = _mat(4, seed=19)[:, 0], _mat(4, seed=20)[:, :2]
    W = np.arange(16.0).reshape(4, 4) / 10
    cases = [
        (gl.det, anp.linalg.det),
        (lambda X: gl.slogdet(X)[1], lambda X: anp.linalg.slogdet(X)[1]),
        (lambda X: ga.sum(gl.inv(X) * W), lambda X: anp.sum(anp.linalg.inv(X) * W)),
        (lambda X: ga.sum(gl.solve(X, b) ** 2), lambda X: anp.sum(anp.linalg.solve(X, b) ** 2)),
        (lambda X: ga.sum(gl.solve(X, B) * B), lambda X: anp.sum(anp.linalg.solve(X, B) * B)),
    ]
    for f, af in cases:
        np.testing.assert_allclose(ga.grad(f)(A), autograd.grad(af)(A), rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(ga.hessian(f)(A), autograd.hessian(af)(A),
                                   rtol=1e-8, atol=1e-10)
    gb = ga.grad(lambda v: ga.sum(gl.solve(A, v) ** 3))(b)
    np.testing.assert_allclose(gb, autograd.grad(lambda v: anp.sum(anp.linalg.solve(A, v) ** 3))(b),
                               rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# batches, broadcasting, float32

def test_batched_equals_per_matrix():
    A = _mat(3, seed=21, batch=(2, 3), shift=1.0)
    dA = _mat(3, seed=22, batch=(2, 3))
    funcs = {
        "det": gl.det,
        "logabsdet": lambda X: gl.slogdet(X)[1],
        "inv": gl.inv,
        "L+U": lambda X: gl.lu(X)[1] + gl.lu(X)[2],
        "solve": lambda X: gl.solve(X, np.arange(3.0)),
    }
    for name, f in funcs.items():
        whole = f(A).numpy()
        _, t = ga.jvp(f, (A,), (dA,))
        g = ga.grad(lambda X: ga.sum(f(X) ** 2))(A)
        for idx in np.ndindex(2, 3):
            np.testing.assert_allclose(whole[idx], f(A[idx]).numpy(), rtol=1e-13, err_msg=name)
            np.testing.assert_allclose(t[idx], ga.jvp(f, (A[idx],), (dA[idx],))[1],
                                       rtol=1e-12, atol=1e-13, err_msg=name)
            np.testing.assert_allclose(g[idx], ga.grad(lambda X: ga.sum(f(X) ** 2))(A[idx]),
                                       rtol=1e-12, atol=1e-13, err_msg=name)
    P, L, U = (x.numpy() for x in gl.lu(A))
    np.testing.assert_allclose(P @ L @ U, A, atol=1e-13)


@pytest.mark.parametrize("ashape,bshape", [((3, 3), (3,)), ((2, 3, 3), (3,)), ((3, 3), (3, 2)),
                                           ((2, 3, 3), (3, 2)), ((3, 3), (4, 3, 2)),
                                           ((2, 1, 3, 3), (4, 3, 1)), ((3, 3), (3, 0))])
def test_solve_broadcasting_like_numpy(ashape, bshape):
    rng = np.random.default_rng(23)
    A = rng.standard_normal(ashape) + 3 * np.eye(3)
    b = rng.standard_normal(bshape)
    x = gl.solve(A, b).numpy()
    ref = np.linalg.solve(A, b)
    assert x.shape == ref.shape
    np.testing.assert_allclose(x, ref, rtol=1e-12, atol=1e-13)
    if b.size:
        f = lambda X, Y: ga.sum(gl.solve(X, Y) ** 2)
        ref_f = lambda X, Y: np.sum(np.linalg.solve(X, Y) ** 2)
        gA, gB = ga.grad(f, argnums=(0, 1))(A, b)
        np.testing.assert_allclose(gA, fd_jacobian(ref_f, [A, b], 0), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(gB, fd_jacobian(ref_f, [A, b], 1), rtol=1e-6, atol=1e-8)
        dA, db = rng.standard_normal(ashape), rng.standard_normal(bshape)
        _, t = ga.jvp(f, (A, b), (dA, db))
        fd = (ref_f(A + 1e-6 * dA, b + 1e-6 * db) - ref_f(A - 1e-6 * dA, b - 1e-6 * db)) / 2e-6
        np.testing.assert_allclose(t, fd, rtol=1e-6)


@pytest.mark.parametrize("name", ["det", "logabsdet", "inv", "solve", "lu"])
def test_float32_is_kept(name):
    f = {"det": gl.det, "logabsdet": lambda X: gl.slogdet(X)[1], "inv": gl.inv,
         "solve": lambda X: gl.solve(X, np.ones((3, 2), np.float32)),
         "lu": lambda X: gl.lu(X)[2]}[name]
    A64 = _mat(3, seed=24, shift=2.0)
    A32 = A64.astype(np.float32)
    assert f(A32).dtype == np.float32
    for jac in (ga.jacrev, ga.jacfwd):
        J32, J64 = jac(f)(A32), jac(f)(A64)
        assert J32.dtype == np.float32
        np.testing.assert_allclose(J32, J64, rtol=2e-3, atol=2e-4)
    assert ga.hessian(lambda X: ga.sum(f(X)))(A32).dtype == np.float32


@given(seed=seeds, n=st.integers(1, 5), batch=st.sampled_from([(), (2,)]))
def test_random_matrices_check_grad(seed, n, batch):
    A = _mat(n, seed=seed % 1000, batch=batch, shift=float(n))
    B = _mat(n, seed=seed % 1000 + 1, batch=batch)
    ga.check_grad(gl.det, A)
    ga.check_grad(lambda X, Y: gl.solve(X, Y) * np.arange(n), A, B)
    ga.check_grad(lambda X: gl.lu(X)[1] + 2 * gl.lu(X)[2], A)


# ---------------------------------------------------------------------------------------------
# second order

@pytest.mark.parametrize("name", ["logabsdet", "inv", "solve A", "solve b", "det"])
def test_hessian_and_hvp_against_finite_differences(name):
    A = _mat(3, seed=25, shift=2.0)
    b = _mat(3, seed=26)[:, 0]
    W = _mat(3, seed=27)
    f, x = {
        "logabsdet": (lambda X: gl.slogdet(X)[1], A),
        "inv": (lambda X: ga.sum(gl.inv(X) * W), A),
        "solve A": (lambda X: ga.sum(gl.solve(X, b) ** 2), A),
        "solve b": (lambda v: ga.sum(gl.solve(A + v[:, None] * v, v) ** 2), b),
        "det": (gl.det, A),
    }[name]
    g = ga.grad(f)
    v = np.ones_like(x) + 0.1 * np.arange(x.size).reshape(x.shape)
    fd = (g(x + 1e-6 * v) - g(x - 1e-6 * v)) / 2e-6
    gx, hv = ga.hvp(f, x, v)
    np.testing.assert_allclose(gx, g(x), rtol=1e-12)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)
    H = ga.hessian(f)(x)
    np.testing.assert_allclose(np.tensordot(H, v, x.ndim), hv, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(H, ga.jacrev(ga.grad(f))(x), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# lu

def test_lu_2x2_jacobian_is_the_hand_derived_one():
    """[[p, r], [q, s]] with |p| > |q| needs no pivoting: L21 = q/p, U11 = p, U12 = r,
    U22 = s - q r / p."""
    p, q, r, s = 2.0, 0.5, -1.0, 3.0
    A = np.array([[p, r], [q, s]])

    def parts(X):
        _, L, U = gl.lu(X)
        return ga.stack([L[1, 0], U[0, 0], U[0, 1], U[1, 1]])

    P = gl.lu(A)[0].numpy()
    np.testing.assert_array_equal(P, np.eye(2))
    # rows L21, U11, U12, U22; columns p, q, r, s = A[0,0], A[1,0], A[0,1], A[1,1]
    hand = np.array([[-q / p ** 2, 1 / p, 0, 0],
                     [1, 0, 0, 0],
                     [0, 0, 1, 0],
                     [q * r / p ** 2, -r / p, -q / p, 1]])
    cols = [(0, 0), (1, 0), (0, 1), (1, 1)]
    for jac in (ga.jacrev, ga.jacfwd):
        J = jac(parts)(A)
        np.testing.assert_allclose(np.stack([J[:, i, j] for i, j in cols], axis=1), hand,
                                   rtol=1e-14, atol=1e-15)


def test_lu_derivatives_with_pivoting():
    """A matrix that pivots: the derivative of L and U (P constant) against finite differences,
    both modes, and a loss of all three outputs."""
    A = np.array([[0.1, 2.0, 1.0], [3.0, -1.0, 0.5], [1.0, 1.0, 4.0]])
    P = gl.lu(A)[0].numpy()
    assert not np.array_equal(P, np.eye(3))
    for k in (1, 2):
        fd = fd_jacobian(lambda X: scipy.linalg.lu(X)[k], [A], 0)
        np.testing.assert_allclose(ga.jacrev(lambda X: gl.lu(X)[k])(A), fd, rtol=1e-7, atol=1e-8)
        np.testing.assert_allclose(ga.jacfwd(lambda X: gl.lu(X)[k])(A), fd, rtol=1e-7, atol=1e-8)
    assert np.all(ga.jacrev(lambda X: gl.lu(X)[0])(A) == 0)

    def loss(X):
        P_, L, U = gl.lu(X)
        return ga.sum(P_ @ L * 2.0) + ga.sum(U ** 2)

    ga.check_grad(loss, A)
    H = ga.hessian(loss)(A)
    np.testing.assert_allclose(H, ga.jacrev(ga.jacfwd(loss))(A), rtol=1e-9, atol=1e-11)


def test_lu_rectangular_forward_and_square_derivative():
    A = _mat(4, seed=28)[:, :3]
    for M in (A, A.T):
        P, L, U = (x.numpy() for x in gl.lu(M))
        np.testing.assert_allclose(P @ L @ U, M, atol=1e-13)
    with pytest.raises(NotImplementedError, match="lu.*square"):
        ga.grad(lambda X: ga.sum(gl.lu(X)[2]))(A)


# ---------------------------------------------------------------------------------------------
# ga.compile, and the reuse of the forward's factorization

def test_compile_replays_on_new_inputs():
    def loss(A, b):
        sign, logabs = gl.slogdet(A)
        P, L, U = gl.lu(A)
        return (sign * logabs + gl.det(A) + ga.sum(gl.solve(A, b) ** 2) + ga.sum(gl.inv(A))
                + ga.sum(L * U))

    vg = ga.value_and_grad(loss, argnums=(0, 1))
    cvg = ga.compile(vg)
    hs = ga.hessian(loss)
    chs = ga.compile(hs)
    rng = np.random.default_rng(29)
    for _ in range(3):
        A, b = rng.standard_normal((3, 3)) + 2 * np.eye(3), rng.standard_normal(3)
        (v1, (g1, h1)), (v2, (g2, h2)) = cvg(A, b), vg(A, b)
        np.testing.assert_allclose(v1, v2, rtol=1e-13)
        np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(h1, h2, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(chs(A, b), hs(A, b), rtol=1e-11, atol=1e-12)
    assert cvg.traces == 1 and cvg.replays == 2


def test_compiled_det_gradient_switches_to_svd_at_a_singular_input():
    cg = ga.compile(ga.grad(gl.det))
    A = _mat(3, seed=30, shift=1.0)
    np.testing.assert_allclose(cg(A), ga.grad(gl.det)(A), rtol=1e-12)
    S = _with_singular_values(np.array([2.0, 1.0, 0.0]), seed=31)[0]
    np.testing.assert_allclose(cg(S), ga.grad(gl.det)(S), atol=1e-14)
    R2 = _with_singular_values(np.array([2.0, 0.0, 0.0]), seed=32)[0]
    assert np.all(cg(R2) == 0)


@pytest.fixture
def getrf_calls(monkeypatch):
    calls = []
    getrf = _factor._getrf

    def counted(a):
        calls.append(a.shape)
        return getrf(a)

    monkeypatch.setattr(_factor, "_getrf", counted)
    return calls


@pytest.mark.parametrize("name", ["logabsdet", "det", "solve", "solve b", "inv"])
def test_one_factorization_per_forward_none_in_backward(name, getrf_calls):
    A = ga.tensor(_mat(4, seed=33, shift=2.0), requires_grad=True)
    b = ga.tensor(_mat(4, seed=34)[:, :2], requires_grad=True)
    f = {"logabsdet": lambda: gl.slogdet(A)[1], "det": lambda: gl.det(A),
         "solve": lambda: ga.sum(gl.solve(A, b) ** 2),
         "solve b": lambda: ga.sum(gl.solve(A.detach(), b)),
         "inv": lambda: ga.sum(gl.inv(A) ** 2)}[name]
    y = f()
    assert len(getrf_calls) == 1
    y.backward()
    assert len(getrf_calls) == 1
    assert A.grad is not None or name == "solve b"
    # a batch: one factorization per matrix, still none in the backward
    getrf_calls.clear()
    X = _mat(4, seed=35, batch=(3,), shift=2.0)
    ga.grad(lambda Z: ga.sum(gl.slogdet(Z)[1]) + ga.sum(gl.solve(Z, np.ones(4))))(X)
    assert len(getrf_calls) == 6


def test_hessian_reuses_the_forward_factorization(getrf_calls):
    A = _mat(4, seed=36, shift=2.0)
    ga.hessian(lambda X: gl.slogdet(X)[1] + ga.sum(gl.solve(X, np.ones(4))))(A)
    assert len(getrf_calls) == 2      # the two forwards; the rules solve with their factors


# ---------------------------------------------------------------------------------------------
# errors

def test_errors_name_the_op_and_shapes():
    for fn, name in ((gl.det, "det"), (gl.inv, "inv"), (gl.slogdet, "slogdet")):
        with pytest.raises(ValueError, match=rf"{name}.*\(2, 3\)"):
            fn(np.ones((2, 3)))
        with pytest.raises(ValueError, match=rf"{name}.*\(3,\)"):
            fn(np.ones(3))
        with pytest.raises(TypeError, match=name):
            fn(np.eye(2, dtype=np.complex128))
        with pytest.raises(TypeError, match=name):
            fn(np.eye(2, dtype=np.float16))
    with pytest.raises(ValueError, match=r"lu.*\(3,\)"):
        gl.lu(np.ones(3))
    with pytest.raises(ValueError, match=r"solve.*\(3, 3\).*\(2,\)"):
        gl.solve(np.eye(3), np.ones(2))
    with pytest.raises(ValueError, match=r"solve.*\(3, 3\).*\(2, 2\)"):
        gl.solve(np.eye(3), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"solve.*\(2, 3, 3\).*\(4, 3, 1\)"):
        gl.solve(np.ones((2, 3, 3)), np.ones((4, 3, 1)))
    with pytest.raises(ValueError, match=r"solve.*\(2, 3\)"):
        gl.solve(np.ones((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match=r"solve.*\(\)"):
        gl.solve(np.eye(3), 1.0)


def test_singular_solve_and_inv_raise_linalg_error():
    S = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(np.linalg.LinAlgError, match=r"inv.*singular"):
        gl.inv(S)
    with pytest.raises(np.linalg.LinAlgError, match=r"solve.*singular"):
        gl.solve(S, np.ones(2))
    with pytest.raises(np.linalg.LinAlgError, match=r"inv.*singular"):
        gl.inv(np.stack([np.eye(2), S]))
    with pytest.raises(np.linalg.LinAlgError, match=r"solve.*singular"):
        ga.grad(lambda X: ga.sum(gl.solve(X, np.ones((2, 1)))))(np.stack([np.eye(2), S]))


def test_inputs_are_not_modified():
    A = _mat(3, seed=37, shift=1.0)
    b = np.ones((3, 2))
    A0, b0 = A.copy(), b.copy()
    ga.grad(lambda X, Y: gl.det(X) + ga.sum(gl.solve(X, Y)) + ga.sum(gl.inv(X))
            + gl.slogdet(X)[1] + ga.sum(gl.lu(X)[2]), argnums=(0, 1))(A, b)
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_array_equal(b, b0)
    F = np.asfortranarray(A)
    np.testing.assert_allclose(ga.grad(gl.det)(F), ga.grad(gl.det)(A), rtol=1e-13)
    np.testing.assert_allclose(gl.solve(A[::-1], b).numpy(), np.linalg.solve(A[::-1], b),
                               rtol=1e-12)
