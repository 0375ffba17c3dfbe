"""The top-level forward-over-reverse path of ga.hvp and ga.hessian (one recorded gradient
sweep, one forward sweep from the sources to the gradients), checked against the general
transforms they replace (jvp(grad(f)), jacfwd(jacrev(f))), finite differences and HIPS
autograd; and the engine changes made for it: x @ x's rules, the stride-0 operand of the
binary kernels, reshape / transpose."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import graphad as ga
from graphad import _kernels as K
from graphad._elementwise import P_ADD, P_GMUL, P_MUL
from prim_cases import fd_jacobian


def _softplus_loss(A):
    def f(x):
        return ga.sum(ga.log(1 + ga.exp(A @ x))) + 0.5 * (x @ x)

    def f_ag(x):
        return anp.sum(anp.log(1 + anp.exp(anp.dot(A, x)))) + 0.5 * anp.dot(x, x)
    return f, f_ag


def _general_hvp(f, x, v):
    return ga.jvp(ga.grad(f), (x,), (v,))


def _general_hessian(f, x):
    return ga.jacfwd(ga.jacrev(f))(x)


def _fd_hessian(f, x):
    """Central differences of graphad's gradient (the gradient itself checked elsewhere)."""
    g = ga.grad(f)
    return fd_jacobian(lambda z: g(z), [x], 0)


@pytest.mark.parametrize("k,n", [(3, 5), (20, 50), (200, 500)])
def test_softplus_loss_against_autograd_and_general_path(k, n):
    rng = np.random.default_rng(k)
    A = rng.standard_normal((k, n)) / np.sqrt(n)
    x, v = rng.standard_normal(n), rng.standard_normal(n)
    f, f_ag = _softplus_loss(A)
    g, hv = ga.hvp(f, x, v)
    g0, hv0 = _general_hvp(f, x, v)
    np.testing.assert_allclose(g, g0, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(hv, hv0, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g, autograd.grad(f_ag)(x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hv, autograd.hessian_vector_product(f_ag)(x, v), rtol=1e-12,
                               atol=1e-14)
    H = ga.hessian(f)(x)
    assert H.shape == (n, n) and H.dtype == np.float64 and H.flags.writeable
    np.testing.assert_allclose(H, _general_hessian(f, x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(H, autograd.hessian(f_ag)(x), rtol=1e-12, atol=1e-14)
    # the analytic Hessian: A^T diag(s (1 - s)) A + I
    s = 1 / (1 + np.exp(-(A @ x)))
    np.testing.assert_allclose(H, A.T @ ((s * (1 - s))[:, None] * A) + np.eye(n), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(H @ v, hv, rtol=1e-10, atol=1e-12)


def test_hessian_against_finite_differences():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 6))
    f, _ = _softplus_loss(A)

    def h(x):
        return ga.sum(ga.sin(x) * ga.exp(x[::-1])) + (x @ x) ** 2 + f(x)
    x = rng.standard_normal(6)
    np.testing.assert_allclose(ga.hessian(h)(x), _fd_hessian(h, x), rtol=1e-6, atol=1e-8)
    v = rng.standard_normal(6)
    np.testing.assert_allclose(ga.hvp(h, x, v)[1], _fd_hessian(h, x) @ v, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 1, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_shapes_and_dtypes(shape, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    v = rng.standard_normal(shape).astype(dtype)

    def f(z):
        return ga.sum(ga.tanh(z) * z ** 3) + ga.sum(ga.exp(0.1 * z))
    g, hv = ga.hvp(f, x, v)
    g0, hv0 = _general_hvp(f, x, v)
    H, H0 = ga.hessian(f)(x), _general_hessian(f, x)
    assert g.dtype == hv.dtype == H.dtype == dtype
    assert g.shape == hv.shape == shape and H.shape == shape + shape
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(g, g0, rtol=tol)
    np.testing.assert_allclose(hv, hv0, rtol=tol, atol=tol)
    np.testing.assert_allclose(H, H0, rtol=tol, atol=tol)
    if dtype == np.float64:
        fd = _fd_hessian(f, x)
        np.testing.assert_allclose(H, fd.reshape(shape + shape), rtol=1e-6, atol=1e-8)


def test_several_primals_and_other_arguments():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(4), rng.standard_normal((2, 3))
    va, vb = rng.standard_normal(4), rng.standard_normal((2, 3))

    def f(p, q):
        return ga.sum(p ** 2) * ga.sum(ga.sin(q)) + ga.sum(p[:2] * q[:, 0])
    gs, hvs = ga.hvp(f, (a, b), (va, vb))
    gs0, hvs0 = ga.jvp(ga.grad(f, (0, 1)), (a, b), (va, vb))
    assert isinstance(gs, tuple) and isinstance(hvs, tuple) and len(gs) == len(hvs) == 2
    for x, y in zip(gs + hvs, gs0 + hvs0):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-15)
    # a 1-tuple of primals: arrays, as with a bare array
    g1, hv1 = ga.hvp(lambda p: f(p, b), (a,), (va,))
    assert isinstance(g1, np.ndarray) and isinstance(hv1, np.ndarray)
    # hessian with argnums naming a later argument; the other arguments held fixed
    H = ga.hessian(f, argnums=1)(a, b)
    H0 = ga.jacfwd(ga.jacrev(f, 1), 1)(a, b)
    np.testing.assert_allclose(H, H0, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ga.hessian(f, argnums=-2)(a, b), ga.hessian(f)(a, b),
                               rtol=1e-14)


def test_linear_and_constant_functions_give_zeros():
    x, v = np.arange(3.0), np.ones(3)
    for f in (lambda z: ga.sum(2.0 * z), lambda z: ga.sum(z) * 0.0 + 1.0, lambda z: 3.0):
        g, hv = ga.hvp(f, x, v)
        np.testing.assert_array_equal(hv, np.zeros(3))
        H = ga.hessian(f)(x)
        assert H.shape == (3, 3) and H.flags.writeable
        np.testing.assert_array_equal(H, np.zeros((3, 3)))
    g, hv = ga.hvp(lambda z: 0.5 * ga.sum(z * z), x, v)   # gradient z: hv is v (a fresh array)
    np.testing.assert_array_equal(hv, v)
    hv[0] = 7.0
    assert v[0] == 1.0


def test_tangent_coercion_and_errors():
    x = np.arange(3.0)

    def f(z):
        return ga.sum(z ** 3)
    _, hv = ga.hvp(f, x, np.array([1, 0, 0]))       # ints are converted to x's dtype
    assert hv.dtype == np.float64
    np.testing.assert_allclose(hv, [0.0, 0, 0])
    _, hv = ga.hvp(f, x, ga.tensor(np.ones(3)))       # a Tensor without a graph
    np.testing.assert_allclose(hv, 6 * x)
    _, hv = ga.hvp(f, x.astype(np.float32), np.ones(3))
    assert hv.dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        ga.hvp(f, x, np.ones(4))
    with pytest.raises(TypeError, match="complex"):
        ga.hvp(f, x, np.ones(3) * 1j)
    with pytest.raises(ValueError, match="primals"):
        ga.hvp(f, (x, x), (x,))
    with pytest.raises(TypeError, match="scalar"):
        ga.hvp(lambda z: z * 2, x, x)
    with pytest.raises(TypeError, match="scalar"):
        ga.hessian(lambda z: z * 2)(x)


def test_nested_and_compiled_use_the_general_path():
    rng = np.random.default_rng(4)
    x, v = rng.standard_normal(3), rng.standard_normal(3)

    def f(z):
        return ga.sum(ga.exp(z) * z)
    # the hvp inside grad is differentiated again: d/dx <u, H(x) v>
    u = rng.standard_normal(3)
    outer = ga.grad(lambda z: ga.sum(u * ga.hvp(f, z, v)[1]))(x)
    fd = fd_jacobian(lambda z: u @ ga.hvp(f, z, v)[1], [x], 0)
    np.testing.assert_allclose(outer, fd, rtol=1e-6, atol=1e-8)
    Hc = ga.compile(ga.hessian(f))
    hvc = ga.compile(lambda z, w: ga.hvp(f, z, w)[1])
    for _ in range(2):
        x2, v2 = rng.standard_normal(3), rng.standard_normal(3)
        np.testing.assert_allclose(np.asarray(Hc(x2)), ga.hessian(f)(x2), rtol=1e-13)
        np.testing.assert_allclose(np.asarray(hvc(x2, v2)), ga.hvp(f, x2, v2)[1], rtol=1e-13)


# ---- x @ x: one product for both operands --------------------------------------------------

def test_dot_with_itself_rules():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(5)
    for f, f_ag in [(lambda z: z @ z, lambda z: anp.dot(z, z)),
                    (lambda z: ga.sin(z @ z), lambda z: anp.sin(anp.dot(z, z))),
                    (lambda z: (z @ z) * (z @ z[::-1]),
                     lambda z: anp.dot(z, z) * anp.dot(z, z[::-1]))]:
        ga.check_grad(f, x)
        np.testing.assert_allclose(ga.grad(f)(x), autograd.grad(f_ag)(x), rtol=1e-13)
        np.testing.assert_allclose(ga.hessian(f)(x), autograd.hessian(f_ag)(x), rtol=1e-12,
                                   atol=1e-14)
        np.testing.assert_allclose(ga.jacfwd(ga.grad(f))(x), autograd.hessian(f_ag)(x),
                                   rtol=1e-12, atol=1e-14)
    # the gradient of x @ x is exactly 2 x (both forms of the product agree bit for bit)
    np.testing.assert_array_equal(ga.grad(lambda z: z @ z)(x), 2 * x)
    _, t = ga.jvp(lambda z: z @ z, (x,), (x[::-1].copy(),))
    np.testing.assert_allclose(t, 2 * x @ x[::-1], rtol=1e-15)
    # blocks of cotangents and tangents (jacrev / jacfwd of a vector output), float32 kept
    g = lambda z: ga.stack([z @ z, ga.sum(z)])
    np.testing.assert_allclose(ga.jacrev(g)(x), ga.jacfwd(g)(x), rtol=1e-14)
    x32 = x.astype(np.float32)
    assert ga.grad(lambda z: z @ z)(x32).dtype == np.float32
    assert ga.hessian(lambda z: z @ z)(x32).dtype == np.float32
    # x @ y with a different y keeps both products
    y = rng.standard_normal(5)
    ga.check_grad(lambda a, b: a @ b, x, y)


# ---- binary kernels: a stride-0 operand that broadcasts into the other ---------------------

@pytest.mark.parametrize("op,ref", [(P_MUL.code, np.multiply), (P_ADD.code, np.add),
                                    (P_GMUL.code, np.multiply)])
@pytest.mark.parametrize("big,small", [((5, 4), (4,)), ((3, 1, 4), (1, 4)), ((2, 3), (2, 3)),
                                       ((6,), (1,)), ((3, 4), (3, 1))])
def test_binary_with_a_repeated_value(op, ref, big, small):
    rng = np.random.default_rng(6)
    x = rng.standard_normal(big)
    x.flat[0] = 0.0
    c = np.broadcast_to(np.float64(1.5), small)        # every stride 0
    for a, b in ((x, c), (c, x)):
        r = K.binary(op, a, b)
        assert r.shape == big
        np.testing.assert_array_equal(r, ref(a, b))


@given(st.integers(0, 3), st.integers(1, 4))
def test_binary_repeated_value_that_widens_the_result(k, n):
    # the stride-0 operand extends the other's shape: NumPy's broadcast result, not the kernel's
    x = np.arange(float(n)).reshape(n, 1)
    c = np.broadcast_to(np.float64(2.0), (k + 1, 1, 3))
    np.testing.assert_array_equal(K.binary(P_MUL.code, x, c), x * c)
    np.testing.assert_array_equal(K.binary(P_MUL.code, c, x), c * x)


def test_gmul_keeps_zero_where_the_cotangent_is_zero():
    g = np.broadcast_to(np.float64(0.0), (4,))
    d = np.array([np.inf, 1.0, np.nan, -np.inf] * 3).reshape(3, 4)
    np.testing.assert_array_equal(K.binary(P_GMUL.code, g, d), np.zeros((3, 4)))


# ---- reshape / transpose -------------------------------------------------------------------

@pytest.mark.parametrize("perm", [(1, 0, 2), (-1, -3, -2), (2, 0, 1)])
def test_transpose_rules(perm):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal(np.transpose(x, perm).shape)
    f = lambda z: ga.transpose(z, perm)
    np.testing.assert_array_equal(np.asarray(f(x).detach()), np.transpose(x, perm))
    ga.check_grad(f, x)
    np.testing.assert_allclose(ga.grad(lambda z: ga.sum(w * ga.transpose(z, perm)))(x),
                               np.transpose(w, np.argsort(np.array(perm) % 3)), rtol=1e-15)
    # second order through the reshape and the transpose
    h = lambda z: ga.sum(ga.reshape(ga.transpose(z, perm), (-1,)) ** 3)
    np.testing.assert_allclose(ga.hessian(h)(x).reshape(24, 24),
                               _fd_hessian(h, x).reshape(24, 24), rtol=1e-6, atol=1e-8)


def test_which_path_runs(monkeypatch):
    from graphad import transforms
    calls = []
    real = transforms._second_order

    def spy(*a):
        calls.append(a[3])
        return real(*a)
    monkeypatch.setattr(transforms, "_second_order", spy)
    x = np.arange(3.0)
    f = lambda z: ga.sum(ga.exp(z))
    ga.hvp(f, x, x)
    ga.hessian(f)(x)
    assert calls == [0, 1]                           # top level: the one-pass path
    ga.grad(lambda z: ga.sum(ga.hvp(f, z, x)[1]))(x)
    ga.hessian(f)(ga.tensor(x))                       # a Tensor primal
    ga.hvp(f, (np.float64(2.0),), (np.float64(1.0),))  # not an ndarray
    ga.hessian(lambda a, b: f(a) * b)(x, 2.0)
    ga.hessian(lambda a, b: f(a) * b, argnums=(0,))(x, 2.0)
    assert calls == [0, 1, 1]                         # only hessian(f)(x, 2.0) took it


# ---- matmul: a matrix times a vector as one GEMV from the headers --------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m,k", [(200, 500), (1, 5), (5, 1), (3, 3), (1, 1)])
def test_matvec_layouts_and_strides(dtype, m, k):
    rng = np.random.default_rng(8)
    A = rng.standard_normal((m, k)).astype(dtype)
    x, y = rng.standard_normal(k).astype(dtype), rng.standard_normal(m).astype(dtype)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-3)
    wide = np.repeat(A, 2, axis=1)[:, ::2]          # a row stride BLAS takes as ld
    for M in (A, np.asfortranarray(A), wide):
        for r, want in ((K.matmul(M, x), A @ x), (K.matmul(y, M), y @ A),
                        (K.matmul(M.T, y), A.T @ y), (K.matmul(x, M.T), x @ A.T)):
            assert r.dtype == dtype and r.shape == want.shape and r.flags.c_contiguous
            np.testing.assert_allclose(r, want, **tol)
    # the same BLAS call as the general path: bit for bit the product with a column
    np.testing.assert_array_equal(K.matmul(A, x), K.matmul(A, x[:, None])[:, 0])
    np.testing.assert_array_equal(K.matmul(A.T, y), K.matmul(A.T, y[:, None])[:, 0])
    # vectors with a stride, negative or zero: BLAS's incx, or the general path's copy
    for v in (np.repeat(x, 2)[::2], x[::-1], np.broadcast_to(x[:1], (k,))):
        np.testing.assert_allclose(K.matmul(A, v), A @ np.array(v), **tol)


def test_matvec_refusals_go_to_the_general_path():
    A = np.arange(6.0).reshape(2, 3)
    with pytest.raises(ValueError, match="not aligned"):
        K.matmul(A, np.ones(2))
    np.testing.assert_array_equal(K.matmul(A, np.ones(3, np.float32)), A @ np.ones(3))
    np.testing.assert_array_equal(K.matmul(A[:, :0], np.ones(0)), np.zeros(2))
    np.testing.assert_array_equal(K.matmul(A, np.arange(3)), A @ np.arange(3))
    swapped = np.ones(3, ">f8")
    np.testing.assert_array_equal(K.matmul(A, swapped), A @ np.ones(3))


# ---- the forward evaluation on demand: what f may contain ----------------------------------

def _both_paths(f, x, v):
    """(fast hvp, general hvp, fast hessian, general hessian) at x along v."""
    return (ga.hvp(f, x, v), _general_hvp(f, x, v), ga.hessian(f)(x), _general_hessian(f, x))


def _assert_paths_agree(f, x, v, rtol=1e-12, atol=1e-13):
    (g, hv), (g0, hv0), H, H0 = _both_paths(f, x, v)
    np.testing.assert_allclose(g, g0, rtol=rtol, atol=atol)
    np.testing.assert_allclose(hv, hv0, rtol=rtol, atol=atol)
    np.testing.assert_allclose(H, H0, rtol=rtol, atol=atol)
    return hv, H


def test_multi_output_primitive_in_f():
    rng = np.random.default_rng(9)
    x, v = rng.standard_normal(6), rng.standard_normal(6)
    C = rng.standard_normal((3, 3))

    def f(z):
        S = ga.reshape(z[:3], (3, 1)) * ga.reshape(z[3:], (1, 3))
        S = S + ga.transpose(S) + 4.0 * np.eye(3)
        w, V = ga.linalg.eigh(S)
        return ga.sum(w ** 3) + ga.sum(C * V * V)
    hv, H = _assert_paths_agree(f, x, v, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(H, _fd_hessian(f, x), rtol=1e-5, atol=1e-6)


def test_tensors_that_do_not_depend_on_the_argument():
    rng = np.random.default_rng(10)
    W = ga.tensor(rng.standard_normal((4, 5)), requires_grad=True)   # a parameter, not x
    b = ga.tanh(ga.tensor(rng.standard_normal(4), requires_grad=True))
    x, v = rng.standard_normal(5), rng.standard_normal(5)

    def f(z):
        h = ga.tanh(W @ z + b)
        return ga.sum(h * h * b) + ga.sum(W * W) * ga.sum(z)
    _assert_paths_agree(f, x, v)
    assert W.grad is None                           # nothing accumulates into other leaves


def test_a_transform_inside_f():
    rng = np.random.default_rng(11)
    x, v = rng.standard_normal(3), rng.standard_normal(3)
    inner = ga.grad(lambda z: ga.sum(ga.sin(z) * z[::-1]))

    def f(z):
        return ga.sum(inner(z) ** 2)               # a third derivative in the hvp
    hv, H = _assert_paths_agree(f, x, v)
    np.testing.assert_allclose(H, _fd_hessian(f, x), rtol=1e-6, atol=1e-8)


def test_custom_rules_in_f():
    @ga.custom_vjp
    def cube(z):
        return z ** 3

    def cube_fwd(z):
        return cube(z), z

    def cube_bwd(z, g):
        return (3.0 * z * z * g,)
    cube.defvjp(cube_fwd, cube_bwd)

    @ga.custom_jvp
    def softplus(z):
        return ga.log(1.0 + ga.exp(z))

    @softplus.defjvp
    def softplus_jvp(primals, tangents):
        (z,), (dz,) = primals, tangents
        return softplus(z), dz / (1.0 + ga.exp(-z))
    rng = np.random.default_rng(12)
    x, v = rng.standard_normal(4), rng.standard_normal(4)

    def f(z):
        return ga.sum(cube(z) * softplus(z))
    hv, H = _assert_paths_agree(f, x, v)
    np.testing.assert_allclose(H, _fd_hessian(f, x), rtol=1e-6, atol=1e-8)


def test_a_long_chain_has_no_recursion():
    rng = np.random.default_rng(13)
    x, v = rng.standard_normal(3) * 0.1, rng.standard_normal(3)

    def f(z):
        y = z
        for i in range(3000):
            y = ga.sin(y) * 1.0001 if i % 2 else y + 0.001
        return ga.sum(y * y)
    _assert_paths_agree(f, x, v, rtol=1e-10, atol=1e-12)


def test_repeated_calls_and_an_interrupted_function():
    # the engine's forward state is restored when f raises, and calls do not see each other's
    # tangents
    x, v = np.arange(1.0, 4.0), np.ones(3)

    def bad(z):
        ga.sum(ga.exp(z))
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        ga.hvp(bad, x, v)
    f = lambda z: ga.sum(ga.exp(z) * z)
    first = ga.hvp(f, x, v)[1]
    for w in (v, 2 * v, v):
        np.testing.assert_allclose(ga.hvp(f, x, w)[1], _general_hvp(f, x, w)[1], rtol=1e-14)
    np.testing.assert_allclose(ga.hvp(f, x, v)[1], first, rtol=0)
    _, t = ga.jvp(f, (x,), (v,))                     # plain forward mode afterwards
    np.testing.assert_allclose(t, np.sum(np.exp(x) * (x + 1) * v), rtol=1e-14)


# ----------------------------------------------------------------------------------------------
# linearized_hvp: f and its gradient recorded once, each product one forward sweep

def _logistic_loss(A):
    return lambda x: ga.sum(ga.log(1 + ga.exp(A @ x))) + 0.5 * (x @ x) + ga.sum(ga.tanh(x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linearized_hvp_equals_hvp_for_every_tangent(dtype):
    from graphad.transforms import linearized_hvp
    rng = np.random.default_rng(0)
    A = (rng.standard_normal((30, 20)) / 5).astype(dtype)
    x = rng.standard_normal(20).astype(dtype)
    f = _logistic_loss(A)
    g, product = linearized_hvp(f, x)
    np.testing.assert_allclose(g, ga.grad(f)(x), rtol=1e-6 if dtype == np.float32 else 1e-13)
    for k in range(4):                           # the recording serves every product
        v = rng.standard_normal(20).astype(dtype)
        got = product(v)
        assert got.dtype == dtype and got.shape == x.shape
        np.testing.assert_allclose(got, ga.hvp(f, x, v)[1],
                                   rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    H = ga.hessian(f)(x.astype(np.float64))
    np.testing.assert_allclose(product(np.eye(20, dtype=dtype)[3]), H[3], rtol=1e-4, atol=1e-5)


def test_linearized_hvp_of_a_linear_function_is_zero_and_checks_shapes():
    from graphad.transforms import linearized_hvp
    c = np.arange(5.0)
    g, product = linearized_hvp(lambda x: ga.sum(c * x), np.ones(5))
    np.testing.assert_array_equal(g, c)
    np.testing.assert_array_equal(product(np.ones(5)), np.zeros(5))
    with pytest.raises(ValueError, match="shape"):
        product(np.ones(4))


def test_linearized_hvp_inside_a_compiled_function_replays_fresh():
    from graphad.transforms import linearized_hvp
    rng = np.random.default_rng(1)
    f = _logistic_loss(rng.standard_normal((8, 6)) / 3)
    step = ga.compile(lambda x, v: linearized_hvp(f, x)[1](v))
    for _ in range(3):
        x, v = rng.standard_normal(6), rng.standard_normal(6)
        np.testing.assert_allclose(step(x, v), ga.hvp(f, x, v)[1], rtol=1e-12)
