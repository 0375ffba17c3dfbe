"""ga.linalg.expm, matrix_power and norm (graphad/linalg/_functions.py): values against
SciPy/NumPy; expm's derivatives against the block identity expm([[A, E], [0, A]]) computed
independently (and scipy's expm_frechet), both forward paths of the Frechet primitive, finite
differences in both modes and at second order; matrix_power's vec Jacobians (Kronecker sums);
norm for every ord/axis of NumPy, gradients against HIPS autograd and finite differences, the
gradient 0 at 0; batches, float32, ga.compile."""
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
from graphad.linalg import _functions
from conftest import seeds
from prim_cases import fd_jacobian


def _mat(shape, seed=0, scale=1.0):
    a = np.random.default_rng(seed).standard_normal(shape)
    return a * (scale / np.linalg.norm(a, axis=(-2, -1), keepdims=True) if a.ndim > 1 else 1)


def _block_frechet(A, E):
    """L(A, E) from the block identity, by scipy's expm of the 2n x 2n matrix."""
    n = A.shape[-1]
    Z = np.zeros_like(A)
    return sl.expm(np.block([[A, E], [Z, A]]))[:n, n:]


@pytest.fixture(params=["block", "expm_frechet"])
def frechet_path(request, monkeypatch):
    """Run a test through each forward of the Frechet primitive."""
    monkeypatch.setattr(_functions, "_FRECHET_MIN_N", 10 ** 9 if request.param == "block" else 1)
    return request.param


# ---------------------------------------------------------------------------------------------
# expm

def test_expm_values():
    for A in (_mat((4, 4), 1), _mat((4, 4), 2, scale=20.0), np.zeros((3, 3))):
        np.testing.assert_allclose(gl.expm(A).numpy(), sl.expm(A), rtol=1e-13, atol=1e-15)
    Ab = _mat((2, 3, 4, 4), 3)
    ref = np.array([[sl.expm(Ab[i, j]) for j in range(3)] for i in range(2)])
    np.testing.assert_allclose(gl.expm(Ab).numpy(), ref, rtol=1e-13, atol=1e-15)
    D = np.diag([1.0, -2.0, 0.5])
    np.testing.assert_allclose(gl.expm(D).numpy(), np.diag(np.exp([1.0, -2.0, 0.5])), rtol=1e-14)
    assert gl.expm(np.eye(2, dtype=np.float32)).dtype == np.float32
    assert gl.expm(np.zeros((0, 0))).shape == (0, 0)
    with pytest.raises(ValueError, match=r"expm.*\(3,\)"):
        gl.expm(np.ones(3))
    with pytest.raises(TypeError, match="expm.*float16"):
        gl.expm(np.eye(2, dtype=np.float16))


@pytest.mark.parametrize("n,scale", [(3, 1.0), (5, 20.0), (30, 1.0), (30, 20.0)])
def test_expm_jvp_and_vjp_are_the_block_identity(n, scale, frechet_path):
    A = _mat((n, n), 4, scale=scale)
    E = _mat((n, n), 5)
    G = _mat((n, n), 6)
    ref_t = _block_frechet(A, E)
    ref_g = _block_frechet(A.T, G)
    np.testing.assert_allclose(ref_t, sl.expm_frechet(A, E)[1], rtol=1e-10,
                               atol=1e-12 * np.abs(ref_t).max())
    _, t = ga.jvp(gl.expm, (A,), (E,))
    np.testing.assert_allclose(t, ref_t, rtol=1e-10, atol=1e-12 * np.abs(ref_t).max())
    _, pull = ga.vjp(gl.expm, A)
    (g,) = pull(G)
    np.testing.assert_allclose(g, ref_g, rtol=1e-10, atol=1e-12 * np.abs(ref_g).max())
    # a tiny direction keeps its digits (E is scaled to A's size inside the block path)
    _, t = ga.jvp(gl.expm, (A,), (1e-12 * E,))
    np.testing.assert_allclose(t, 1e-12 * ref_t, rtol=1e-9, atol=1e-21 * np.abs(ref_t).max())


def test_expm_of_commuting_direction():
    """For dA = A (they commute), L(A, A) = A expm(A)."""
    A = _mat((4, 4), 7, scale=3.0)
    _, t = ga.jvp(gl.expm, (A,), (A,))
    np.testing.assert_allclose(t, A @ sl.expm(A), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("batch", [(), (2,)])
def test_expm_jacobians_against_finite_differences(batch, frechet_path):
    A = _mat(batch + (3, 3), 8, scale=2.0)
    fd = fd_jacobian(sl.expm, [A], 0)
    np.testing.assert_allclose(ga.jacrev(gl.expm)(A), fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.jacfwd(gl.expm)(A), fd, rtol=1e-6, atol=1e-8)


def test_expm_batched_equals_per_matrix():
    A = _mat((3, 4, 4), 9, scale=5.0)
    W = _mat((3, 4, 4), 10)
    g = ga.grad(lambda X: ga.sum(gl.expm(X) * W))(A)
    for k in range(3):
        gk = ga.grad(lambda X: ga.sum(gl.expm(X) * W[k]))(A[k])
        np.testing.assert_allclose(g[k], gk, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("scale", [1.0, 20.0])
def test_expm_second_order(scale, frechet_path):
    A = _mat((3, 3), 11, scale=scale)
    W = _mat((3, 3), 12)

    def f(X):
        return ga.sum(gl.expm(X) * W) + ga.sum(gl.expm(X) ** 2) * 1e-3

    H = ga.hessian(f)(A)
    np.testing.assert_allclose(H, ga.jacfwd(ga.jacrev(f))(A), rtol=1e-8,
                               atol=1e-10 * np.abs(H).max())
    np.testing.assert_allclose(H, ga.jacrev(ga.jacfwd(f))(A), rtol=1e-8,
                               atol=1e-10 * np.abs(H).max())
    g = ga.grad(f)
    dA = _mat((3, 3), 13)
    h = 1e-6 * max(1.0, scale / 4)
    fd = (g(A + h * dA) - g(A - h * dA)) / (2 * h)
    np.testing.assert_allclose(np.tensordot(H, dA, 2), fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())
    _, hv = ga.hvp(f, (A,), (dA,))
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())


def test_expm_second_order_is_the_nested_block_identity():
    """d^2 expm(A)[E, F] is the (1, 4) block of expm of the 4n x 4n matrix
    [[A, E, F, 0], [0, A, 0, F], [0, 0, A, E], [0, 0, 0, A]] (Higham, Functions of Matrices,
    3.2): for f = <W, expm(A)>, H[F] = grad of <W, L(A, F)> at A."""
    n = 3
    A, E, F, W = (_mat((n, n), s) for s in (14, 15, 16, 17))
    Z = np.zeros((n, n))
    big = np.block([[A, E, F, Z], [Z, A, Z, F], [Z, Z, A, E], [Z, Z, Z, A]])
    ref = sl.expm(big)[:n, 3 * n:]
    f = lambda X: ga.sum(gl.expm(X) * W)
    H = ga.hessian(f)(A)
    np.testing.assert_allclose(np.einsum("ij,ijkl,kl->", E, H, F), np.sum(W * ref), rtol=1e-10)


def test_expm_frechet_primitive_broadcasts_and_blocks():
    """The Frechet primitive itself: a block of directions against one A (jacfwd's case), and
    its derivative in both arguments."""
    P = _functions.P_FRECHET
    A, Es = _mat((3, 3), 18), _mat((4, 3, 3), 19)
    L = ga.tensor(P.fwd(None, A, Es))
    for k in range(4):
        np.testing.assert_allclose(L.numpy()[k], _block_frechet(A, Es[k]), rtol=1e-12,
                                   atol=1e-14)
    f = lambda a, e: ga._core.apply(P, (a, e))
    ref = lambda a, e: np.stack([_block_frechet(a, ek) for ek in e])
    for i in (0, 1):
        fd = fd_jacobian(ref, [A, Es], i)
        np.testing.assert_allclose(ga.jacrev(f, argnums=i)(A, Es), fd, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ga.jacfwd(f, argnums=i)(A, Es), fd, rtol=1e-6, atol=1e-8)


def test_expm_float32_and_compile(frechet_path):
    A = _mat((3, 3), 20, scale=2.0)
    for jac in (ga.jacrev, ga.jacfwd):
        J32, J64 = jac(gl.expm)(A.astype(np.float32)), jac(gl.expm)(A)
        assert J32.dtype == np.float32
        np.testing.assert_allclose(J32, J64, rtol=1e-4, atol=1e-5)
    assert ga.hessian(lambda X: ga.sum(gl.expm(X)))(A.astype(np.float32)).dtype == np.float32
    f = ga.value_and_grad(lambda X: ga.sum(gl.expm(X) ** 2))
    cf = ga.compile(f)
    for seed in range(3):
        X = _mat((4, 4), 21 + seed, scale=3.0)
        (v1, g1), (v2, g2) = cf(X), f(X)
        np.testing.assert_allclose(v1, v2, rtol=1e-13)
        np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)
    assert cf.traces == 1 and cf.replays == 2


def test_autograd_has_no_expm_gradient():
    """HIPS autograd cannot be a second opinion for expm: it defines no VJP for it."""
    with pytest.raises(NotImplementedError):
        autograd.grad(lambda X: anp.sum(asl.expm(X)))(np.eye(2))
    pytest.skip("HIPS autograd has no expm gradient (checked above)")


# ---------------------------------------------------------------------------------------------
# matrix_power

def test_matrix_power_values():
    A = _mat((3, 3), 22, scale=2.0) + np.eye(3)
    for k in range(-3, 8):
        np.testing.assert_allclose(gl.matrix_power(A, k).numpy(), np.linalg.matrix_power(A, k),
                                   rtol=1e-12, atol=1e-13)
    Ab = _mat((2, 3, 3), 23, scale=2.0) + np.eye(3)
    np.testing.assert_allclose(gl.matrix_power(Ab, 5).numpy(), np.linalg.matrix_power(Ab, 5),
                               rtol=1e-12)
    np.testing.assert_array_equal(gl.matrix_power(np.full((2, 2), np.inf), 0).numpy(), np.eye(2))
    assert gl.matrix_power(A.astype(np.float32), 3).dtype == np.float32
    assert gl.matrix_power(A, np.int64(2)).shape == (3, 3)
    for k in (-2, 0, 3):
        assert gl.matrix_power(np.zeros((0, 3, 3)), k).shape == (0, 3, 3)
    for bad in (2.0, 1.5, "2"):
        with pytest.raises(TypeError, match="exponent must be an integer"):
            np.linalg.matrix_power(A, bad)
        with pytest.raises(TypeError, match="matrix_power: exponent must be an integer"):
            gl.matrix_power(A, bad)
    with pytest.raises(ValueError, match=r"matrix_power.*\(2, 3\)"):
        gl.matrix_power(np.ones((2, 3)), 2)


def test_matrix_power_vec_jacobians_are_kronecker_sums():
    """vec(d X^2) = (I (x) X + X^T (x) I) vec(dX);
    vec(d X^3) = (I (x) X^2 + X^T (x) X + (X^2)^T (x) I) vec(dX)."""
    X = _mat((3, 3), 24, scale=2.0)
    I = np.eye(3)
    X2 = X @ X
    for mode in ("fwd", "rev"):
        J2 = ga.jacobian(lambda A: gl.matrix_power(A, 2), mode=mode, vec=True)(X)
        np.testing.assert_allclose(J2, np.kron(I, X) + np.kron(X.T, I), rtol=1e-13, atol=1e-14)
        J3 = ga.jacobian(lambda A: gl.matrix_power(A, 3), mode=mode, vec=True)(X)
        np.testing.assert_allclose(J3, np.kron(I, X2) + np.kron(X.T, X) + np.kron(X2.T, I),
                                   rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("k", [-2, -1, 0, 1, 4, 5])
def test_matrix_power_derivatives(k):
    A = _mat((3, 3), 25, scale=1.5) + 2 * np.eye(3)
    fd = fd_jacobian(lambda X: np.linalg.matrix_power(X, k), [A], 0)
    f = lambda X: gl.matrix_power(X, k)
    np.testing.assert_allclose(ga.jacrev(f)(A), fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.jacfwd(f)(A), fd, rtol=1e-6, atol=1e-8)
    s = lambda X: ga.sum(gl.matrix_power(X, k) ** 2)
    H = ga.hessian(s)(A)
    if k == 0:
        np.testing.assert_array_equal(H, 0.0)
        return

    def power(X):               # autograd has no matrix_power VJP: the product spelled out
        B = anp.linalg.inv(X) if k < 0 else X
        P = anp.eye(3)
        for _ in range(abs(k)):
            P = anp.dot(P, B)
        return anp.sum(P ** 2)

    np.testing.assert_allclose(H, autograd.hessian(power)(A), rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# norm

VEC_ORDS = [None, 2, 1, np.inf, -np.inf, 0, 3, 0.5, -1, 2.5]
MAT_ORDS = [None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf]


def _away(shape, seed):
    """Values with |x| in [0.5, 2] and distinct magnitudes: away from kinks and ties."""
    rng = np.random.default_rng(seed)
    mags = np.linspace(0.5, 2.0, int(np.prod(shape)))
    rng.shuffle(mags)
    return (mags * rng.choice([-1.0, 1.0], mags.size)).reshape(shape)


def _cases():
    for ord in VEC_ORDS:
        for shape, axis in (((5,), None), ((5,), 0), ((5,), -1), ((3, 4), 0), ((3, 4), 1),
                            ((2, 3, 4), 1), ((2, 3, 4), -1)):
            yield ord, shape, axis
    for ord in MAT_ORDS:
        for shape, axis in (((3, 4), None), ((4, 3), None), ((3, 4), (1, 0)),
                            ((2, 3, 4), (1, 2)), ((2, 3, 4), (2, 0)), ((3, 2, 4), (0, -1))):
            yield ord, shape, axis
    for shape in ((2, 3, 4), (5,), ()):
        yield None, shape, None


CASES = list(_cases())


def _id(case):
    return f"{case[0]}-{case[1]}-{case[2]}"


@pytest.mark.parametrize("case", CASES, ids=_id)
@pytest.mark.parametrize("keepdims", [False, True])
def test_norm_values_match_numpy(case, keepdims):
    ord, shape, axis = case
    x = _away(shape, 26)
    ours = gl.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    ref = np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    assert ours.shape == np.shape(ref)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-13)
    o32 = gl.norm(x.astype(np.float32), ord=ord, axis=axis, keepdims=keepdims)
    assert o32.dtype == np.float32


@pytest.mark.parametrize("case", [c for c in CASES if c[0] != 0], ids=_id)
def test_norm_gradients_against_finite_differences(case):
    ord, shape, axis = case
    x = _away(shape, 27)
    f = lambda v: gl.norm(v, ord=ord, axis=axis)
    fd = fd_jacobian(lambda v: np.linalg.norm(v, ord=ord, axis=axis), [x], 0)
    np.testing.assert_allclose(ga.jacrev(f)(x), fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.jacfwd(f)(x), fd, rtol=1e-6, atol=1e-8)


def _autograd_supports(ord, shape, axis):
    """What autograd differentiates correctly: its inf-norm gradient is NaN (the p-norm
    formula at p = inf) and it mishandles negative axes in a tuple."""
    if ord == np.inf or (isinstance(axis, tuple) and min(axis) < 0):
        return False
    matrix = (len(shape) == 2 and axis is None and ord is not None) or isinstance(axis, tuple)
    if matrix:
        return ord in (None, "fro", "nuc")
    return ord is None or ord > 1


@pytest.mark.parametrize("case", [c for c in CASES if _autograd_supports(*c)], ids=_id)
def test_norm_gradients_against_autograd(case):
    ord, shape, axis = case
    x = _away(shape, 28)
    w = _away(np.shape(np.linalg.norm(x, ord=ord, axis=axis)), 29)
    ours = ga.grad(lambda v: ga.sum(gl.norm(v, ord=ord, axis=axis) * w))(x)
    theirs = autograd.grad(lambda v: anp.sum(anp.linalg.norm(v, ord=ord, axis=axis) * w))(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_norm_gradient_at_zero_is_zero_not_nan():
    for shape, ord, axis in (((3,), None, None), ((3,), 2, None), ((2, 3), None, None),
                             ((2, 3), "fro", None), ((2, 3), None, 1), ((3,), 3, None),
                             ((2, 2, 3), None, None), ((2, 3), 2, 0)):
        z = np.zeros(shape)
        f = lambda v: ga.sum(gl.norm(v, ord=ord, axis=axis))
        np.testing.assert_array_equal(ga.grad(f)(z), 0.0)
        np.testing.assert_array_equal(ga.jacfwd(f)(z), 0.0)
        assert np.all(np.isfinite(ga.hessian(f)(z)))
    # one column zero, the other not: the zero column's gradient is 0, the other's x/|x|
    x = np.array([[0.0, 3.0], [0.0, 4.0]])
    np.testing.assert_allclose(ga.grad(lambda v: ga.sum(gl.norm(v, axis=0)))(x),
                               [[0, 0.6], [0, 0.8]])
    # the count of nonzeros has no derivative
    np.testing.assert_array_equal(ga.grad(lambda v: gl.norm(v, 0))(np.array([1.0, 0, -2])), 0)
    # matrix norms through singular values: finite at 0 (a subgradient)
    for ord in (2, "nuc"):
        g = ga.grad(lambda v: gl.norm(v, ord))(np.zeros((3, 3)))
        assert np.all(np.isfinite(g))


def test_norm_second_order():
    x = _away((4,), 30)
    H = ga.hessian(lambda v: gl.norm(v))(x)
    r = np.linalg.norm(x)
    np.testing.assert_allclose(H, (np.eye(4) - np.outer(x, x) / r ** 2) / r, rtol=1e-12)
    X = _away((3, 3), 31)
    for ord in ("fro", 2, "nuc", 3.0):
        if ord == 3.0:
            f, af = (lambda v: gl.norm(v.ravel(), 3.0)), (lambda v: anp.linalg.norm(v.ravel(), 3.0))
        else:
            f, af = (lambda v: gl.norm(v, ord)), (lambda v: anp.linalg.norm(v, ord))
        g = ga.grad(f)
        dX = _away((3, 3), 32)
        fd = (g(X + 1e-6 * dX) - g(X - 1e-6 * dX)) / 2e-6
        np.testing.assert_allclose(np.tensordot(ga.hessian(f)(X), dX, 2), fd, rtol=1e-6,
                                   atol=1e-8)
        if ord != 2:
            np.testing.assert_allclose(ga.hessian(f)(X), autograd.hessian(af)(X), rtol=1e-9,
                                       atol=1e-11)


def test_norm_under_compile_replays_through_zero():
    f = ga.value_and_grad(lambda v: gl.norm(v, axis=1)[0] + gl.norm(v, 1))
    cf = ga.compile(f)
    for x in (_away((2, 3), 33), np.array([[0.0, 0, 0], [1, -2, 3]]), _away((2, 3), 34)):
        (v1, g1), (v2, g2) = cf(x), f(x)
        np.testing.assert_allclose(v1, v2, rtol=1e-13)
        np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-14)
        assert np.all(np.isfinite(g1))
    assert cf.traces == 1


def test_norm_errors_match_numpy():
    x = np.ones((2, 3))
    bad = [dict(ord="fro", axis=0), dict(ord="nuc", axis=1), dict(ord=3, axis=(0, 1)),
           dict(ord="bad"), dict(axis=(0, 0)), dict(axis=(0, 1, 1)),
           dict(ord=1, x=np.ones((2, 2, 2)))]
    for kw in bad:
        arr = kw.pop("x", x)
        with pytest.raises(ValueError) as ref:
            np.linalg.norm(arr, **kw)
        with pytest.raises(ValueError, match=str(ref.value).split("(")[0][:20]):
            gl.norm(arr, **kw)
    with pytest.raises(np.exceptions.AxisError):
        gl.norm(x, axis=2)
    with pytest.raises(TypeError, match="axis"):
        gl.norm(x, axis=1.0)
    with pytest.raises(TypeError, match="norm.*complex"):
        gl.norm(np.ones(2, complex))
    np.testing.assert_allclose(gl.norm([3, 4]).numpy(), 5.0)     # integers and lists
    for ord in (None, 3, "fro"):                                   # a NaN norm is never 0
        assert np.isnan(gl.norm(np.array([[np.nan, 0], [0, 0]]), ord=ord, axis=(
            None if ord != 3 else 0)).numpy()).any()
    t = ga.tensor([3.0, 4.0], requires_grad=True)
    gl.norm([t, t]).backward()
    np.testing.assert_allclose(t.grad, 2 * np.array([3.0, 4.0]) / np.sqrt(50))


@given(seed=seeds, n=st.integers(1, 5), p=st.sampled_from([1, -1, 2, -2, np.inf, "fro", "nuc"]))
def test_norm_random_check_grad(seed, n, p):
    x = _away((n, n), seed % 10000)
    ga.check_grad(lambda v: gl.norm(v, p), x)
    ga.check_grad(lambda v: gl.norm(v, 3 if isinstance(p, str) else p, axis=0), x)


def test_norm_at_zero_never_forms_inf_even_in_anomaly_mode(debug_mode):
    """The guard at 0 is not only gmul_'s 0 * inf = 0: sqrt's derivative at 0 is never
    formed, so anomaly mode (which flags an Inf cotangent of plain sqrt(sum(x^2))) is quiet."""
    for f in (lambda v: gl.norm(v), lambda v: gl.norm(v, 3), lambda v: gl.norm(v, axis=0)):
        np.testing.assert_array_equal(ga.grad(lambda v: ga.sum(f(v)))(np.zeros(3)), 0.0)
        np.testing.assert_array_equal(ga.hessian(lambda v: ga.sum(f(v)))(np.zeros(3)), 0.0)
    with pytest.raises(FloatingPointError):
        ga.grad(lambda v: ga.sqrt(ga.sum(v * v)))(np.zeros(3))
