"""Linear-algebra primitives and compositions (graphad/_products.pyx):
matmul in every shape case, einsum, dot outer trace diag kron vec unvec, and the course's identity
vec(A X B) = (B^T kron A) vec(X)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphad as ga
from conftest import check_vjp, check_vjp32, seeds, values


def _r(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# matmul

MATMUL_CASES = [
    ((4,), (4,)),                 # 1-D x 1-D: inner product
    ((4,), (4, 3)),               # 1-D x 2-D
    ((3, 4), (4,)),               # 2-D x 1-D
    ((3, 4), (4, 2)),
    ((1, 4), (4, 1)),
    ((2, 3, 4), (4, 5)),          # batch x matrix
    ((3, 4), (2, 4, 5)),          # matrix x batch
    ((2, 1, 3, 4), (5, 4, 2)),    # broadcast batch dims
    ((2, 3, 4), (4,)),            # batch x vector
    ((4,), (2, 4, 3)),            # vector x batch
    ((1, 3, 4), (2, 1, 4, 2)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_shape_cases(sa, sb, dtype):
    a, b = _r(*sa, seed=1, dtype=dtype), _r(*sb, seed=2, dtype=dtype)
    y = ga.matmul(a, b)
    want = np.matmul(a, b)
    assert y.shape == want.shape and y.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(y.numpy(), want, rtol=tol, atol=tol)
    if dtype == np.float64:
        check_vjp(ga.matmul, a, b)
    else:
        check_vjp32(ga.matmul, a, b)


@st.composite
def matmul_shapes(draw):
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    ba, bb = batch.input_shapes
    a_vec, b_vec = draw(st.booleans()), draw(st.booleans())
    sa = (k,) if a_vec else ba + (m, k)
    sb = (k,) if b_vec else bb + (k, n)
    return sa, sb


@given(sh=matmul_shapes(), seed=seeds)
def test_matmul_hypothesis(sh, seed):
    sa, sb = sh
    rng = np.random.default_rng(seed)
    a, b = values(rng, sa), values(rng, sb)
    np.testing.assert_allclose(ga.matmul(a, b).numpy(), np.matmul(a, b), rtol=1e-12,
                               atol=1e-14)
    check_vjp(ga.matmul, a, b, rng=seed)


def test_matmul_on_transposed_and_strided_views():
    base = _r(6, 8, seed=3)
    other = _r(8, 6, seed=4)
    views = [base.T, base[::2, ::3], base[:, ::-1], np.asfortranarray(base), base[1:5, 2:7].T]
    for v in views:
        for w in (other[: v.shape[1]], other.T[:, : v.shape[1]].T, np.asfortranarray(other)[
                : v.shape[1]]):
            np.testing.assert_allclose(ga.matmul(v, w).numpy(), v @ w, rtol=1e-12)
    # gradients through the views themselves
    check_vjp(lambda a, b: ga.matmul(a.T, b[::2]), base, _r(12, 3, seed=5))
    check_vjp(lambda a, b: ga.matmul(a[:, ::-1], b.T), base, _r(5, 8, seed=6))


def test_matmul_gradient_closed_form():
    # d(AB) = dA B + A dB, so gA = G B^T, gB = A^T G
    A, B, G = _r(3, 4, seed=7), _r(4, 2, seed=8), _r(3, 2, seed=9)
    gA, gB = ga.vjp(ga.matmul, A, B)[1](G)
    np.testing.assert_allclose(gA, G @ B.T, rtol=1e-14)
    np.testing.assert_allclose(gB, A.T @ G, rtol=1e-14)


def test_matmul_of_a_constant_and_a_tensor():
    A, x = _r(3, 3, seed=10), ga.tensor(_r(3, seed=11), requires_grad=True)
    y = ga.sum(A @ x)
    y.backward()
    np.testing.assert_allclose(x.grad, A.sum(axis=0), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# einsum

EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 2)]),
    ("ij,jk", [(3, 4), (4, 2)]),                    # implicit output
    ("ij,ij->", [(3, 4), (3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 2)]),
    ("...ij,jk->...ik", [(2, 1, 3, 4), (4, 2)]),
    ("ij,kj->ik", [(3, 4), (2, 4)]),
    ("ij,j->i", [(3, 4), (4,)]),
    ("ijk,ik->j", [(2, 3, 4), (2, 4)]),              # k summed in both, i in both
    ("ij,k->i", [(3, 4), (5,)]),                    # j summed in operand 0 only, k in 1 only
    ("ii->i", [(4, 4)]),
    ("ii->", [(4, 4)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),      # three operands
    ("i,ij,j->", [(3,), (3, 4), (4,)]),
    ("ab,bc,ca->", [(2, 3), (3, 4), (4, 2)]),
    ("ij->ji", [(3, 4)]),
    ("i,i", [(5,), (5,)]),
]


@pytest.mark.parametrize("spec,shps", EINSUM_CASES)
def test_einsum(spec, shps):
    xs = [_r(*s, seed=i + 20) for i, s in enumerate(shps)]
    y = ga.einsum(spec, *xs)
    want = np.einsum(spec, *xs)
    assert y.shape == np.shape(want)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12, atol=1e-14)
    check_vjp(lambda *a: ga.einsum(spec, *a), *xs)
    check_vjp32(lambda *a: ga.einsum(spec, *a), *xs)


def test_einsum_repeated_index_gradients_closed_form():
    A = _r(4, 4, seed=30)
    np.testing.assert_array_equal(ga.grad(lambda a: ga.einsum("ii->", a))(A), np.eye(4))
    u = _r(4, seed=31)
    np.testing.assert_array_equal(ga.vjp(lambda a: ga.einsum("ii->i", a), A)[1](u)[0],
                                  np.diag(u))


def test_einsum_with_spaces_and_mixed_tensors():
    A = ga.tensor(_r(3, 4, seed=32), requires_grad=True)
    B = _r(4, 2, seed=33)
    y = ga.einsum("ij, jk -> ik", A, B)
    np.testing.assert_allclose(y.numpy(), A.numpy() @ B, rtol=1e-14)
    ga.sum(y).backward()
    np.testing.assert_allclose(A.grad, np.broadcast_to(B.sum(axis=1), (3, 4)), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# dot, outer, trace, diag

@pytest.mark.parametrize("sa,sb", [((), (3,)), ((3,), ()), ((4,), (4,)), ((3, 4), (4,)),
                                   ((4,), (4, 2)), ((3, 4), (4, 2)), ((2, 3, 4), (4, 5)),
                                   ((2, 3, 4), (5, 4, 2)), ((3,), (2, 3, 4))])
def test_dot(sa, sb):
    a, b = _r(*sa, seed=40), _r(*sb, seed=41)
    y = ga.dot(a, b)
    want = np.dot(a, b)
    assert y.shape == np.shape(want)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12)
    check_vjp(ga.dot, a, b)
    if len(sa) >= 1:
        np.testing.assert_allclose(ga.tensor(a).dot(b).numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("sa,sb", [((3,), (4,)), ((2, 2), (3,)), ((1,), (5,)), ((), (2,))])
def test_outer(sa, sb):
    a, b = _r(*sa, seed=42), _r(*sb, seed=43)
    np.testing.assert_allclose(ga.outer(a, b).numpy(), np.outer(a, b), rtol=1e-15)
    check_vjp(ga.outer, a, b)


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (3, 5), (5, 3), (2, 3, 3)])
def test_trace(shape):
    x = _r(*shape, seed=44)
    want = np.trace(x, axis1=-2, axis2=-1)
    np.testing.assert_allclose(ga.trace(x, axis1=-2, axis2=-1).numpy(), want, rtol=1e-14)
    if len(shape) == 2:
        np.testing.assert_allclose(ga.tensor(x).trace().numpy(), np.trace(x), rtol=1e-14)
    check_vjp(lambda a: ga.trace(a, axis1=-2, axis2=-1), x)


def test_trace_gradient_is_the_identity():
    # d tr(X) = tr(dX), so grad tr = I;  d tr(A X) = tr(A dX), so grad = A^T
    X, A = _r(4, 4, seed=45), _r(4, 4, seed=46)
    np.testing.assert_array_equal(ga.grad(ga.trace)(X), np.eye(4))
    np.testing.assert_allclose(ga.grad(lambda x: ga.trace(A @ x))(X), A.T, rtol=1e-14)


@pytest.mark.parametrize("shape,offset,axes", [
    ((3, 4, 5), 0, (0, 1)), ((3, 4, 5), 1, (0, 1)), ((3, 4, 5), -2, (0, 1)),
    ((3, 4, 5), 0, (1, 2)), ((3, 4, 5), 2, (2, 0)), ((4, 4), 0, (0, 1)), ((4, 4), -1, (1, 0)),
    ((2, 5, 3, 3), 0, (-2, -1)), ((2, 5, 3, 3), -1, (1, 3)), ((3, 3, 3), 0, (0, 2)),
    ((3, 4), 7, (0, 1)), ((3, 4), -3, (0, 1))])
def test_regression_trace_follows_numpy_axes_and_offset(shape, offset, axes):
    # NumPy traces axes 0 and 1 by default (a (3, 4, 5) array traced its last two before)
    x = _r(*shape, seed=48)
    want = np.trace(x, offset, *axes)
    got = ga.trace(x, offset=offset, axis1=axes[0], axis2=axes[1])
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ga.tensor(x).trace(offset, *axes).numpy(), want, rtol=1e-14,
                               atol=1e-15)
    np.testing.assert_allclose(ga.diagonal(x, offset, *axes).numpy(),
                               np.diagonal(x, offset, *axes), rtol=1e-15)
    f = lambda a: ga.trace(a, offset, *axes)
    check_vjp(f, x)
    if want.size:
        ga.check_grad(lambda a: ga.sum(f(a) * np.arange(1.0, want.size + 1).reshape(want.shape)),
                      x)


def test_trace_defaults_are_numpys():
    x = _r(3, 4, 5, seed=49)
    np.testing.assert_allclose(ga.trace(x).numpy(), np.trace(x), rtol=1e-14)
    # the gradient of sum(trace(x)) is 1 exactly where i == j on axes 0, 1
    want = np.zeros((3, 4, 5))
    for i in range(3):
        want[i, i, :] = 1.0
    np.testing.assert_array_equal(ga.grad(lambda a: ga.sum(ga.trace(a)))(x), want)
    _, t = ga.jvp(ga.trace, (x,), (np.ones_like(x),))
    np.testing.assert_array_equal(t, np.full(5, 3.0))
    with pytest.raises(np.exceptions.AxisError):
        ga.trace(x, axis1=3)
    with pytest.raises(ValueError, match="differ"):
        ga.trace(x, axis1=1, axis2=-2)


@pytest.mark.parametrize("shape,k", [((4,), 1), ((4,), -2), ((3, 5), 1), ((3, 5), -1),
                                     ((5, 2), -3), ((4, 4), 2)])
def test_diag_with_k(shape, k):
    x = _r(*shape, seed=50)
    np.testing.assert_allclose(ga.diag(x, k).numpy(), np.diag(x, k), rtol=1e-15)
    check_vjp(lambda a: ga.diag(a, k), x)


@pytest.mark.parametrize("shape", [(4,), (1,), (4, 4), (3, 5), (5, 2)])
def test_diag(shape):
    x = _r(*shape, seed=47)
    np.testing.assert_allclose(ga.diag(x).numpy(), np.diag(x), rtol=1e-15)
    check_vjp(ga.diag, x)
    np.testing.assert_allclose(ga.diag(ga.diag(x)).numpy(), np.diag(np.diag(x)), rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# kron, vec, unvec

@pytest.mark.parametrize("sa,sb", [((2, 3), (4, 2)), ((1, 1), (3, 3)), ((3,), (2,)),
                                   ((2, 2), (2,)), ((3,), (2, 2)), ((2, 1, 2), (1, 3, 2))])
def test_kron(sa, sb):
    a, b = _r(*sa, seed=50), _r(*sb, seed=51)
    y = ga.kron(a, b)
    want = np.kron(a, b)
    assert y.shape == want.shape
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-15)
    check_vjp(ga.kron, a, b)
    check_vjp32(ga.kron, a, b)


def test_vec_is_column_major():
    X = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(ga.vec(X).numpy(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
    np.testing.assert_array_equal(ga.vec(X).numpy(), X.flatten(order="F"))
    np.testing.assert_array_equal(ga.unvec(ga.vec(X), (2, 3)).numpy(), X)
    check_vjp(ga.vec, X)
    check_vjp(lambda v: ga.unvec(v, (3, 2)), np.arange(6.0))


@given(m=st.integers(1, 4), n=st.integers(1, 4), seed=seeds)
def test_unvec_inverts_vec(m, n, seed):
    rng = np.random.default_rng(seed)
    X = values(rng, (m, n))
    np.testing.assert_array_equal(ga.unvec(ga.vec(X), (m, n)).numpy(), X)
    v = values(rng, (m * n,))
    np.testing.assert_array_equal(ga.vec(ga.unvec(v, (m, n))).numpy(), v)
    np.testing.assert_array_equal(ga.unvec(v, (m, n)).numpy(), v.reshape((m, n), order="F"))
    check_vjp(lambda x: ga.unvec(ga.vec(x) * 2.0, (m, n)), X, rng=seed)


@given(dims=st.tuples(*[st.integers(1, 4)] * 4), seed=seeds)
def test_vec_of_AXB_is_kron_of_BT_and_A_times_vec_X(dims, seed):
    m, n, p, q = dims
    rng = np.random.default_rng(seed)
    A, X, B = values(rng, (m, n)), values(rng, (n, p)), values(rng, (p, q))
    lhs = ga.vec(A @ X @ B).numpy()
    rhs = (ga.kron(B.T, A) @ ga.vec(X)).numpy()
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-13)
    # and so the Jacobian of X -> A X B in the vec convention is kron(B^T, A)
    _, pull = ga.vjp(lambda x: ga.vec(A @ ga.unvec(x, (n, p)) @ B), ga.vec(X).numpy())
    J = np.stack([pull(e)[0] for e in np.eye(m * q)])
    np.testing.assert_allclose(J, np.kron(B.T, A), rtol=1e-12, atol=1e-14)


def test_matmul_and_einsum_against_torch():
    torch = pytest.importorskip("torch")
    a, b, u = _r(2, 3, 4, seed=60), _r(4, 5, seed=61), _r(2, 3, 5, seed=62)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    (torch.matmul(ta, tb) * torch.tensor(u)).sum().backward()
    ga_, gb = ga.vjp(ga.matmul, a, b)[1](u)
    np.testing.assert_allclose(ga_, ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-12)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    torch.einsum("bij,jk->ik", ta, tb).sum().backward()
    ga_, gb = ga.grad(lambda x, y: ga.sum(ga.einsum("bij,jk->ik", x, y)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga_, ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-12)
