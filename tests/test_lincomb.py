"""The lincomb primitive (graphad._lincomb: sum_i c_i x_i as one node, RK steps in graphad.ode)
and K.binary's outer-table path (a matmul's cotangent g b^T): values, derivatives against
finite differences in both modes and at second order, float32, broadcasting, blocks, compile."""
import numpy as np
import pytest

import graphad as ga
from graphad import _kernels as K
from graphad._lincomb import P_LINCOMB, lincomb
from prim_cases import fd_jacobian


def _x(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


C = (1.0, 0.25, -1.5)


def test_value_kernel_and_numpy_paths():
    xs = [_x((3, 4), i) for i in range(3)]
    ref = xs[0] + 0.25 * xs[1] + -1.5 * xs[2]
    np.testing.assert_allclose(lincomb(C, xs), ref, rtol=1e-15)
    # strided / broadcast operands: NumPy's path
    np.testing.assert_allclose(lincomb(C, [xs[0].T, xs[1].T, xs[2].T]), ref.T, rtol=1e-15)
    np.testing.assert_allclose(lincomb((2.0, 0.5), [xs[0], xs[1][0]]),
                               2.0 * xs[0] + 0.5 * xs[1][0], rtol=1e-15)
    f32 = [x.astype(np.float32) for x in xs]
    r = lincomb(C, f32)
    assert r.dtype == np.float32
    np.testing.assert_allclose(r, ref, rtol=1e-5)
    assert K.lincomb(C, (xs[0], xs[1], f32[2])) is None          # mixed dtypes: NumPy's
    with pytest.raises(ValueError, match="lincomb"):
        lincomb((1.0,), xs)


def test_one_node_on_tensors():
    xs = [ga.tensor(_x((4,), i), requires_grad=True) for i in range(3)]
    y = lincomb(C, xs)
    assert y.prim is P_LINCOMB and y.parents == tuple(xs)


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3), (2, 3)), ((2, 3), (3,), ()),
                                    ((), (), ())])
def test_derivatives(shapes):
    xs = [_x(s, i + 1) for i, s in enumerate(shapes)]
    f = lambda *a: ga.sin(lincomb(C, a))
    ga.check_grad(f, *xs)
    for i in range(3):
        J_fd = fd_jacobian(f, xs, i)
        np.testing.assert_allclose(ga.jacrev(f, argnums=i)(*xs), J_fd, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ga.jacfwd(f, argnums=i)(*xs), J_fd, rtol=1e-6, atol=1e-8)


def test_second_order():
    xs = [_x((3,), i + 5) for i in range(3)]

    def f(x):
        return ga.sum(ga.sin(lincomb(C, [x, x * x, xs[2]])) * lincomb((0.5, 2.0), [x, xs[1]]))
    H = ga.hessian(f)(xs[0])
    H_fd = fd_jacobian(lambda x: ga.grad(f)(x), [xs[0]], 0)
    np.testing.assert_allclose(H, H_fd, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ga.jacrev(ga.grad(f))(xs[0]), H, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga.jacfwd(ga.jacfwd(f))(xs[0]), H, rtol=1e-10, atol=1e-12)


def test_float32_derivatives_and_compile():
    xs = [_x((4,), i, np.float32) for i in range(3)]
    g = ga.grad(lambda a, b: ga.sum(lincomb(C[:2], [a, b]) ** 2), argnums=(0, 1))(xs[0], xs[1])
    assert all(gi.dtype == np.float32 for gi in g)
    f = lambda a, b: ga.sum(ga.tanh(lincomb((1.0, -0.5), [a, b])))
    cg = ga.compile(ga.grad(f))
    for seed in range(3):
        a, b = _x((5,), seed), _x((5,), seed + 7)
        np.testing.assert_allclose(cg(a, b), ga.grad(f)(a, b), rtol=1e-12)


def test_odeint_direct_matches_adjoint_and_fd():
    W = _x((4, 4), 3) / 2
    y0 = _x((4,), 4)
    f = lambda y, t, W: ga.tanh(W @ y)
    loss = lambda adj: (lambda W, y0: ga.sum(ga.odeint(f, y0, [0.0, 1.0], W, substeps=8,
                                                        adjoint=adj)[-1] ** 2))
    g_direct = ga.grad(loss(False), argnums=(0, 1))(W, y0)
    g_adj = ga.grad(loss(True), argnums=(0, 1))(W, y0)
    for a, b in zip(g_direct, g_adj):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    ga.check_grad(loss(False), W, y0)
    H = ga.hessian(loss(False), argnums=1)(W, y0)
    H_fd = fd_jacobian(lambda y: ga.grad(loss(False), argnums=1)(W, y), [y0], 0)
    np.testing.assert_allclose(H, H_fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_outer_table(dtype):
    col, row = _x((5, 1), 1, dtype), _x((7,), 2, dtype)
    col[1, 0], row[2] = 0.0, np.inf
    # the op codes of ga_binary_op (graphad/_kernels.pxd): add, sub, mul, div; 7 is mul0
    for op, ref in ((0, np.add), (1, np.subtract), (2, np.multiply), (3, np.true_divide)):
        for a, b in ((col, row), (row, col), (col, row[None]), (row[None], col)):
            with np.errstate(all="ignore"):
                out, want = K.binary(op, a, b), ref(a, b)
            assert out.dtype == dtype
            np.testing.assert_array_equal(out, want)
    out = K.binary(7, col, row)       # the chain-rule product: 0 * inf is 0
    assert out[1, 2] == 0.0 and np.isinf(out[0, 2])
