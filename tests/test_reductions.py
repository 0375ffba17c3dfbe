"""Reductions (graphad/_reductions.pyx): sum mean max min with axis None / int / tuple /
negative and keepdims; logsumexp softmax log_softmax (stable, against scipy.special); ties."""
import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

import graphad as ga
from conftest import check_vjp, check_vjp32, seeds, shapes, values


@st.composite
def shape_and_axis(draw, min_dims=0, allow_none=True):
    """A shape and an axis argument for it: None, an int (maybe negative), or a tuple."""
    shape = draw(shapes(min_dims=min_dims))
    nd = len(shape)
    choices = [st.none()] if allow_none else []
    if nd:
        choices.append(st.integers(-nd, nd - 1))
        choices.append(st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                                unique_by=lambda a: a % nd).map(tuple))
    axis = draw(st.one_of(*choices)) if choices else None
    return shape, axis



REDUCTIONS = {
    "sum": (ga.sum, np.sum),
    "mean": (ga.mean, np.mean),
    "max": (ga.max, np.max),
    "min": (ga.min, np.min),
    # (scipy's logsumexp gives shape (1,) for a 0-d input with keepdims; NumPy's rule is ())
    "logsumexp": (ga.logsumexp,
                  lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis, keepdims=keepdims))),
}


def _distinct(rng, shape, dtype=np.float64):
    """Values at least 0.05 apart from each other, so max/min have no ties and FD steps
    cannot swap the winner."""
    n = int(np.prod(shape))
    v = (rng.permutation(n) - n / 2) * 0.1 + rng.uniform(-0.02, 0.02, n)
    return v.reshape(shape).astype(dtype)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@pytest.mark.parametrize("keepdims", [False, True])
@given(sa=shape_and_axis(), seed=seeds)
def test_reduction_values_and_vjp(name, keepdims, sa, seed):
    shape, axis = sa
    f, ref = REDUCTIONS[name]
    x = _distinct(np.random.default_rng(seed), shape)
    y = f(ga.tensor(x), axis=axis, keepdims=keepdims)
    want = ref(x, axis=axis, keepdims=keepdims)
    assert y.shape == np.shape(want)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-13, atol=1e-13)
    check_vjp(lambda a: f(a, axis=axis, keepdims=keepdims), x, rng=seed)


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(sa=shape_and_axis(), keepdims=st.booleans(), seed=seeds)
def test_reduction_float32(name, sa, keepdims, seed):
    shape, axis = sa
    f = REDUCTIONS[name][0]
    x = _distinct(np.random.default_rng(seed), shape, np.float32)
    check_vjp32(lambda a: f(a, axis=axis, keepdims=keepdims), x, rng=seed)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_reduction_methods(name):
    x = _distinct(np.random.default_rng(0), (2, 3, 4))
    t = ga.tensor(x)
    for axis, keepdims in [(None, False), (1, True), (-1, False), ((0, 2), True)]:
        y = getattr(t, name)(axis=axis, keepdims=keepdims)
        np.testing.assert_allclose(y.numpy(), getattr(x, name)(axis=axis, keepdims=keepdims),
                                   rtol=1e-14)


def test_sum_gradient_is_ones_of_the_input_shape():
    x = ga.tensor(np.arange(24.0).reshape(2, 3, 4), requires_grad=True)
    ga.sum(ga.sum(x, axis=(0, -1)) * np.array([1.0, 2.0, 3.0])).backward()
    np.testing.assert_array_equal(x.grad, np.broadcast_to(np.array([1.0, 2.0, 3.0])[:, None],
                                                          (2, 3, 4)))


def test_mean_gradient():
    x = ga.tensor(np.ones((4, 5)), requires_grad=True)
    ga.mean(x, axis=0).sum().backward()
    np.testing.assert_allclose(x.grad, np.full((4, 5), 0.25))
    x.zero_grad()
    x.mean().backward()
    np.testing.assert_allclose(x.grad, np.full((4, 5), 1 / 20))


def test_sum_over_an_empty_tuple_of_axes_is_the_identity():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(ga.sum(x, axis=()).numpy(), np.sum(x, axis=()))
    check_vjp(lambda a: ga.sum(a, axis=()), x)


def test_axis_out_of_range_raises():
    x = ga.tensor(np.ones((2, 3)))
    for f in (ga.sum, ga.mean, ga.max, ga.min, ga.logsumexp):
        with pytest.raises(ValueError):
            f(x, axis=2)
        with pytest.raises(ValueError):
            f(x, axis=-3)


# ---------------------------------------------------------------------------------------------
# ties

def test_max_ties_share_the_gradient_equally():
    x = ga.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0], [5.0, 5.0, 5.0]], requires_grad=True)
    ga.sum(ga.max(x, axis=1)).backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]])
    x.zero_grad()
    ga.max(x).backward()
    np.testing.assert_allclose(x.grad, [[0, 0, 0], [0, 0, 0], [1 / 3, 1 / 3, 1 / 3]])
    x.zero_grad()
    ga.min(x, axis=0, keepdims=True).sum().backward()
    np.testing.assert_allclose(x.grad, [[1, 0, 0], [0, 1, 1], [0, 0, 0]])


def test_max_tie_gradient_sums_to_the_cotangent():
    # whatever the subgradient convention, the weights of one reduction sum to one
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, (6, 5)).astype(float)
    u = rng.standard_normal(6)
    g = ga.vjp(lambda a: ga.max(a, axis=1), x)[1](u)[0]
    np.testing.assert_allclose(g.sum(axis=1), u, rtol=1e-14)
    assert np.all(g[x != x.max(axis=1, keepdims=True)] == 0)


def test_max_of_the_whole_array_with_negative_values():
    x = np.array([-3.0, -1.0, -2.0])
    np.testing.assert_array_equal(ga.grad(lambda a: ga.max(a))(x), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(ga.grad(lambda a: ga.min(a))(x), [1.0, 0.0, 0.0])


# ---------------------------------------------------------------------------------------------
# logsumexp, softmax, log_softmax

@given(sa=shape_and_axis(min_dims=1, allow_none=False), seed=seeds)
def test_softmax_and_log_softmax(sa, seed):
    shape, axis = sa
    x = values(np.random.default_rng(seed), shape, lo=-3, hi=3)
    for f, ref in ((ga.softmax, scipy.special.softmax),
                   (ga.log_softmax, scipy.special.log_softmax)):
        y = f(x, axis=axis)
        assert y.shape == x.shape
        np.testing.assert_allclose(y.numpy(), ref(x, axis=axis), rtol=1e-13, atol=1e-15)
        check_vjp(lambda a: f(a, axis=axis), x, rng=seed)
        check_vjp32(lambda a: f(a, axis=axis), x, rng=seed)


@given(sa=shape_and_axis(min_dims=1), seed=seeds)
def test_logsumexp_against_scipy(sa, seed):
    shape, axis = sa
    x = values(np.random.default_rng(seed), shape, lo=-5, hi=5)
    for keepdims in (False, True):
        y = ga.logsumexp(x, axis=axis, keepdims=keepdims)
        want = scipy.special.logsumexp(x, axis=axis, keepdims=keepdims)
        assert y.shape == np.shape(want)
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-13)


def test_softmax_default_axis_is_last():
    x = np.random.default_rng(2).standard_normal((3, 4))
    np.testing.assert_allclose(ga.softmax(x).numpy(), scipy.special.softmax(x, axis=-1),
                               rtol=1e-14)
    np.testing.assert_allclose(ga.log_softmax(x).numpy(),
                               scipy.special.log_softmax(x, axis=-1), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stability_with_large_values(dtype):
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4 + 2.0, 0.0]], dtype=dtype)
    x64 = x.astype(np.float64)
    lse = ga.logsumexp(x, axis=1)
    np.testing.assert_allclose(lse.numpy(), scipy.special.logsumexp(x64, axis=1), rtol=1e-6)
    sm = ga.softmax(x, axis=1)
    np.testing.assert_allclose(sm.numpy(), scipy.special.softmax(x64, axis=1), atol=1e-6)
    lsm = ga.log_softmax(x, axis=1)
    # x - logsumexp(x) near 1e4 carries the rounding of x itself: ulp(1e4) ~ 1e-3 in float32
    np.testing.assert_allclose(lsm.numpy(), scipy.special.log_softmax(x64, axis=1), rtol=1e-5,
                               atol=1e-12 if dtype == np.float64 else 2e-3)
    for y in (lse, sm, lsm):
        assert np.all(np.isfinite(y.numpy())) and y.dtype == dtype
    for f in (lambda a: ga.logsumexp(a, axis=1),
              lambda a: ga.softmax(a, axis=1)[:, 0],
              lambda a: ga.log_softmax(a, axis=1)[:, 1]):
        g = ga.grad(lambda a: ga.sum(f(a)))(x)
        assert g.dtype == dtype
        assert np.all(np.isfinite(g))
    g = ga.grad(lambda a: ga.sum(ga.logsumexp(a, axis=1)))(x)
    # exp(x - logsumexp(x)) near 1e4 carries the rounding of x: ulp(1e4) ~ 1e-3 in float32
    np.testing.assert_allclose(g, scipy.special.softmax(x64, axis=1),
                               atol=1e-12 if dtype == np.float64 else 1e-3)


def test_logsumexp_of_minus_infinity():
    x = np.array([-np.inf, 0.0, np.log(3.0)])
    np.testing.assert_allclose(ga.logsumexp(x).item(), np.log(4.0), rtol=1e-15)
    g = ga.grad(lambda a: ga.logsumexp(a))(x)
    np.testing.assert_allclose(g, [0.0, 0.25, 0.75], rtol=1e-15)
    assert ga.logsumexp(np.full(3, -np.inf)).item() == -np.inf


def test_softmax_jacobian_closed_form():
    # J = diag(s) - s s^T
    x = np.array([0.3, -1.2, 2.0, 0.1])
    s = scipy.special.softmax(x)
    _, pull = ga.vjp(ga.softmax, x)
    J = np.stack([pull(e)[0] for e in np.eye(4)])
    np.testing.assert_allclose(J, np.diag(s) - np.outer(s, s), atol=1e-15)


def test_softmax_gradients_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, u = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    for f, tf in ((ga.softmax, torch.softmax), (ga.log_softmax, torch.log_softmax)):
        tx = torch.tensor(x, requires_grad=True)
        (tf(tx, 1) * torch.tensor(u)).sum().backward()
        g = ga.vjp(lambda a: f(a, axis=1), x)[1](u)[0]
        np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-10, atol=1e-14)
    tx = torch.tensor(x, requires_grad=True)
    torch.logsumexp(tx, 0).sum().backward()
    g = ga.grad(lambda a: ga.sum(ga.logsumexp(a, axis=0)))(x)
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-12)


def test_numpy_reductions_dispatch_to_tensor_methods():
    # np.sum(t) and friends call the Tensor's method (with dtype=/out= keywords): the result
    # is a Tensor in the graph, so the gradient flows through NumPy's spelling too
    x0 = np.array([[1.0, -2.0, 0.5], [3.0, 4.0, -1.0]])
    x = ga.tensor(x0, requires_grad=True)
    total = np.sum(x) + np.mean(x, axis=0).sum() + np.max(x) + np.min(x, axis=1).sum()
    assert isinstance(total, ga.Tensor)
    total.backward()
    want = np.ones_like(x0) + 0.5
    want[1, 1] += 1.0                           # the max
    want[0, 1] += 1.0                           # row minima
    want[1, 2] += 1.0
    np.testing.assert_allclose(x.grad, want)
    assert isinstance(np.reshape(x, (3, 2)), ga.Tensor)
    assert x.sum(dtype=np.float32).dtype == np.float32
    with pytest.raises(TypeError, match="out="):
        np.sum(x, out=np.zeros(()))
