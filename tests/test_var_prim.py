"""var as one primitive (graphad._array_api.P_VAR, with the small-array kernel K.moments), the
tensordot fast path and the transforms' per-call fast paths: values against NumPy, derivatives
against finite differences in both modes and at second order, against HIPS autograd, batched
(jacobian blocks), float32, and under ga.compile."""
import threading

import numpy as np
import pytest

import graphad as ga
from graphad import _kernels as K
from graphad._array_api import P_VAR
from prim_cases import fd_jacobian

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")

CASES = [((8, 8), 0, 1, False), ((3, 4, 5), (0, 2), 0, True), ((3, 4, 5), (1, 2), 1, False),
         ((5,), None, 2, False), ((4, 3), -1, 0, False), ((2, 3, 4), 1, 0, True),
         ((2, 3), None, 0, True)]


def _x(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape,axis,ddof,keepdims", CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_value_matches_numpy(shape, axis, ddof, keepdims, dtype):
    x = _x(shape, dtype=dtype)
    v = ga.var(x, axis=axis, ddof=ddof, keepdims=keepdims)
    ref = np.var(x, axis=axis, ddof=ddof, keepdims=keepdims)
    assert v.dtype == dtype and v.shape == ref.shape
    np.testing.assert_allclose(v.data, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)
    s = ga.std(x, axis=axis, ddof=ddof, keepdims=keepdims)
    np.testing.assert_allclose(s.data, np.std(x, axis=axis, ddof=ddof, keepdims=keepdims),
                               rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_one_node():
    x = ga.tensor(_x((4, 5)), requires_grad=True)
    v = ga.var(x, axis=0, ddof=1)
    assert v.prim is P_VAR and v.parents[0] is x


def test_large_and_strided_inputs_take_numpys_path():
    x = _x((200, 100))                                   # beyond the kernel's size limit
    np.testing.assert_allclose(ga.var(x, axis=0).data, np.var(x, axis=0), rtol=1e-12)
    xt = _x((6, 7)).T                                    # not C-contiguous
    np.testing.assert_allclose(ga.var(xt, axis=1, ddof=1).data, np.var(xt, axis=1, ddof=1),
                               rtol=1e-12)
    assert K.moments(xt, 1, 6, 7, 1.0) is None
    assert K.moments(np.arange(6), 1, 6, 1, 1.0) is None  # integers: not the kernel's


@pytest.mark.parametrize("shape,axis,ddof,keepdims", CASES)
def test_derivatives_fd_and_autograd(shape, axis, ddof, keepdims):
    x = _x(shape, 1)
    f = lambda x: ga.var(x, axis=axis, ddof=ddof, keepdims=keepdims)
    fa = lambda x: anp.var(x, axis=axis, ddof=ddof, keepdims=keepdims)
    ga.check_grad(f, x)
    J_fd = fd_jacobian(f, [x], 0)
    np.testing.assert_allclose(ga.jacrev(f)(x), J_fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.jacfwd(f)(x), J_fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.jacrev(f)(x), autograd.jacobian(fa)(x), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("shape,axis,ddof,keepdims", CASES)
def test_second_order(shape, axis, ddof, keepdims):
    x = _x(shape, 2)
    f = lambda x: ga.sum(ga.sin(ga.var(x, axis=axis, ddof=ddof, keepdims=keepdims)))
    fa = lambda x: anp.sum(anp.sin(anp.var(x, axis=axis, ddof=ddof, keepdims=keepdims)))
    H = ga.hessian(f)(x)
    np.testing.assert_allclose(H, autograd.hessian(fa)(x), rtol=1e-10, atol=1e-12)
    H_fd = fd_jacobian(lambda x: ga.grad(f)(x), [x], 0)
    np.testing.assert_allclose(H, H_fd, rtol=1e-5, atol=1e-7)
    # reverse-over-reverse and forward-over-forward too
    np.testing.assert_allclose(ga.jacrev(ga.grad(f))(x), H, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga.jacfwd(ga.jacfwd(f))(x), H, rtol=1e-10, atol=1e-12)


def test_float32_derivatives():
    x = _x((4, 3), 3, np.float32)
    g = ga.grad(lambda x: ga.sum(ga.var(x, axis=0, ddof=1)))(x)
    assert g.dtype == np.float32
    J = ga.jacfwd(lambda x: ga.var(x, axis=1))(x)
    assert J.dtype == np.float32
    np.testing.assert_allclose(g, autograd.grad(lambda x: anp.sum(anp.var(x, axis=0, ddof=1)))(
        x.astype(np.float64)), rtol=1e-5)


def test_dof_zero_warns_and_matches_numpy():
    x = _x((1, 3))
    with pytest.warns(RuntimeWarning):
        v = ga.var(x, axis=0, ddof=1)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        ref = np.var(x, axis=0, ddof=1)
    np.testing.assert_array_equal(np.isnan(v.data), np.isnan(ref))


def test_compiled_replay_matches_eager():
    f = lambda x: ga.sum(ga.var(x, axis=1, ddof=1) * ga.std(x, axis=1))
    cg = ga.compile(ga.grad(f))
    for seed in range(3):
        x = _x((3, 5), seed + 10)
        np.testing.assert_allclose(cg(x), ga.grad(f)(x), rtol=1e-12)


@pytest.mark.parametrize("sa,sb,axes", [((8, 4, 4), (4, 4, 8), 2), ((3,), (3,), 1),
                                        ((2, 3), (4,), 0), ((2, 3), (3, 4), 1),
                                        ((3, 4), (4, 3), ((0, 1), (1, 0)))])
def test_tensordot(sa, sb, axes):
    a, b = _x(sa, 4), _x(sb, 5)
    np.testing.assert_allclose(ga.tensordot(a, b, axes).data, np.tensordot(a, b, axes),
                               rtol=1e-12)
    f = lambda a, b: ga.tensordot(a, b, axes)
    ga.check_grad(f, a, b)
    J = ga.jacrev(f, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(J[0], fd_jacobian(f, [a, b], 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(J[1], fd_jacobian(f, [a, b], 1), rtol=1e-6, atol=1e-8)


def test_tensordot_constant_operand_is_not_a_node():
    a = ga.tensor(_x((8, 4, 4)), requires_grad=True)
    c = ga.tensordot(a, _x((4, 4, 8)), 2)
    assert c.prim.name == "matmul" and type(c.parents[1]) is np.ndarray


# the transforms' fast paths (plain arrays, one output) against their general paths (trees)

def _f(x):
    return ga.tanh(_W @ ga.tanh(x))


_W = _x((3, 4), 6)


def test_fast_paths_agree_with_tree_paths():
    x = _x((4,), 7)
    J = ga.jacrev(_f)(x)
    np.testing.assert_allclose(ga.jacrev(lambda t: _f(t[0]))((x,))[0], J, rtol=1e-14)
    np.testing.assert_allclose(ga.jacfwd(_f)(x), J, rtol=1e-14)
    np.testing.assert_allclose(ga.jacrev(lambda x: [_f(x)])(x)[0], J, rtol=1e-14)
    J_aux, aux = ga.jacrev(lambda x: (_f(x), 1.0), has_aux=True)(x)
    np.testing.assert_allclose(J_aux, J, rtol=1e-14)
    _, pull = ga.vjp(_f, x)
    np.testing.assert_allclose(pull(np.ones(3))[0], np.ones(3) @ J, rtol=1e-14)
    g = ga.grad(lambda x: ga.sum(_f(x)))(x)
    np.testing.assert_allclose(g, np.ones(3) @ J, rtol=1e-14)
    # the identity: the Jacobian is a fresh writable array, not the unit block
    for jac in (ga.jacfwd, ga.jacrev):
        I = jac(lambda x: x)(np.ones(1))
        I[0, 0] = 2.0
        np.testing.assert_array_equal(jac(lambda x: x)(np.ones(1)), [[1.0]])


def test_nesting_depth_is_per_thread_and_restored():
    from graphad import _core
    assert _core.transform_depth() == 0
    seen = []

    def f(x):
        seen.append(_core.transform_depth())
        return ga.sum(x * x)
    ga.grad(f)(np.ones(2))
    assert seen == [1] and _core.transform_depth() == 0
    with pytest.raises(ZeroDivisionError):
        ga.grad(lambda x: 1 / 0)(np.ones(2))
    assert _core.transform_depth() == 0 and _core.is_grad_enabled()
    depths = []

    def other():
        depths.append(_core.transform_depth())

    def g(x):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        return ga.sum(x)
    ga.grad(g)(np.ones(2))
    assert depths == [0]
    # nested through a closure: the inner transform records, so the outer one differentiates it
    hv = ga.grad(lambda x: ga.sum(ga.grad(lambda y: ga.sum(y * y * x))(np.ones(2)) * x))(
        np.full(2, 3.0))
    np.testing.assert_allclose(hv, 4 * np.full(2, 3.0))
