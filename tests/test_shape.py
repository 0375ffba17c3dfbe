"""Shape and indexing primitives and their compositions (graphad/_shape.pyx): reshape transpose swapaxes expand_dims squeeze T, getitem (basic, negative
steps, newaxis, Ellipsis, integer arrays with repeats, boolean masks), concatenate, stack."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphad as ga
from conftest import check_vjp, check_vjp32, seeds, shapes, values


def _x(shape, seed=0, dtype=np.float64):
    return values(np.random.default_rng(seed), shape, dtype)


# ---------------------------------------------------------------------------------------------
# reshape, transpose, swapaxes, expand_dims, squeeze

@st.composite
def shape_and_reshape(draw):
    shape = draw(shapes(max_dims=4))
    n = int(np.prod(shape))
    # a random factorization of n, with size-1 axes sprinkled in and maybe one -1
    factors, rest = [], n
    for p in (2, 3, 2, 2, 3, 5, 7):
        while rest % p == 0 and draw(st.booleans()):
            factors.append(p)
            rest //= p
    if rest != 1:
        factors.append(rest)
    factors += [1] * draw(st.integers(0, 2))
    factors = draw(st.permutations(factors))
    if factors and draw(st.booleans()):
        factors[draw(st.integers(0, len(factors) - 1))] = -1
    return shape, tuple(factors)


@given(sr=shape_and_reshape(), seed=seeds)
def test_reshape(sr, seed):
    shape, new = sr
    x = _x(shape, seed)
    y = ga.reshape(x, new)
    np.testing.assert_array_equal(y.numpy(), np.reshape(x, new))
    check_vjp(lambda a: ga.reshape(a, new), x, rng=seed)
    check_vjp32(lambda a: ga.reshape(a, new), x, rng=seed)
    if new:
        np.testing.assert_array_equal(ga.tensor(x).reshape(*new).numpy(), x.reshape(new))
        np.testing.assert_array_equal(ga.tensor(x).reshape(new).numpy(), x.reshape(new))


def test_reshape_of_a_transposed_view_is_in_c_order():
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(ga.reshape(x.T, (2, 6)).numpy(), x.T.reshape(2, 6))
    np.testing.assert_array_equal(ga.reshape(ga.tensor(x).T, (-1,)).numpy(), x.T.ravel())
    np.testing.assert_array_equal(ga.tensor(x).flatten().numpy(), x.ravel())


@given(shape=shapes(min_dims=1, max_dims=4), data=st.data(), seed=seeds)
def test_transpose(shape, data, seed):
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    # also negative axes
    neg = tuple(p - len(shape) if data.draw(st.booleans()) else p for p in perm)
    x = _x(shape, seed)
    np.testing.assert_array_equal(ga.transpose(x, neg).numpy(), np.transpose(x, perm))
    np.testing.assert_array_equal(ga.transpose(x).numpy(), np.transpose(x))
    np.testing.assert_array_equal(ga.tensor(x).T.numpy(), x.T)
    np.testing.assert_array_equal(ga.tensor(x).transpose(*perm).numpy(), x.transpose(perm))
    check_vjp(lambda a: ga.transpose(a, neg), x, rng=seed)
    check_vjp(lambda a: a.T, x, rng=seed)
    check_vjp32(lambda a: ga.transpose(a, perm), x, rng=seed)


@given(shape=shapes(min_dims=1, max_dims=4), data=st.data(), seed=seeds)
def test_swapaxes(shape, data, seed):
    nd = len(shape)
    a1 = data.draw(st.integers(-nd, nd - 1))
    a2 = data.draw(st.integers(-nd, nd - 1))
    x = _x(shape, seed)
    np.testing.assert_array_equal(ga.swapaxes(x, a1, a2).numpy(), np.swapaxes(x, a1, a2))
    np.testing.assert_array_equal(ga.tensor(x).swapaxes(a1, a2).numpy(), np.swapaxes(x, a1, a2))
    check_vjp(lambda a: ga.swapaxes(a, a1, a2), x, rng=seed)


@given(shape=shapes(max_dims=3), data=st.data(), seed=seeds)
def test_expand_dims_and_squeeze(shape, data, seed):
    nd = len(shape)
    axis = data.draw(st.integers(-nd - 1, nd))
    x = _x(shape, seed)
    y = ga.expand_dims(x, axis)
    np.testing.assert_array_equal(y.numpy(), np.expand_dims(x, axis))
    check_vjp(lambda a: ga.expand_dims(a, axis), x, rng=seed)
    np.testing.assert_array_equal(ga.squeeze(y, axis).numpy(), x)
    np.testing.assert_array_equal(ga.squeeze(x).numpy(), np.squeeze(x))
    np.testing.assert_array_equal(ga.tensor(x).squeeze().numpy(), np.squeeze(x))
    check_vjp(lambda a: ga.squeeze(ga.expand_dims(a, axis), axis), x, rng=seed)
    check_vjp(ga.squeeze, x, rng=seed)


def test_squeeze_a_non_unit_axis_raises():
    with pytest.raises(ValueError):
        ga.squeeze(np.ones((2, 1)), axis=0)


def test_chain_of_shape_ops_gradient():
    x = _x((2, 3, 4))
    f = lambda a: ga.reshape(ga.swapaxes(ga.expand_dims(a.T, 0), 1, -1), (4, -1)) * 2.0
    check_vjp(f, x)


# ---------------------------------------------------------------------------------------------
# getitem

@given(shape=shapes(min_dims=1, max_dims=3, max_side=5), data=st.data(), seed=seeds)
def test_basic_indexing(shape, data, seed):
    idx = data.draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True,
                                      allow_ellipsis=True))
    x = _x(shape, seed)
    y = ga.tensor(x)[idx]
    want = x[idx]
    assert y.shape == np.shape(want)
    np.testing.assert_array_equal(y.numpy(), want)
    check_vjp(lambda a: a[idx], x, rng=seed)
    check_vjp32(lambda a: ga.getitem(a, idx), x, rng=seed)


@pytest.mark.parametrize("idx", [
    np.s_[::-1], np.s_[::-2], np.s_[-1:0:-1], np.s_[..., ::-1], np.s_[None, 1:, None],
    np.s_[np.newaxis, ..., np.newaxis], np.s_[-2], np.s_[1, -1], np.s_[..., 2], np.s_[:, 1:3],
    np.s_[5:], np.s_[1:1], np.s_[()], np.s_[...]])
def test_indexing_cases(idx):
    x = np.arange(12.0).reshape(3, 4) + 0.5
    t = ga.tensor(x, requires_grad=True)
    y = t[idx]
    np.testing.assert_array_equal(y.numpy(), x[idx])
    u = np.random.default_rng(1).standard_normal(np.shape(x[idx]))
    y.backward(u)
    want = np.zeros_like(x)
    want[idx] += u
    np.testing.assert_array_equal(t.grad, want)


@given(shape=shapes(min_dims=1, max_dims=3, max_side=5), data=st.data(), seed=seeds)
def test_integer_array_indexing(shape, data, seed):
    idx = data.draw(hnp.integer_array_indices(shape, result_shape=shapes(max_dims=2)))
    x = _x(shape, seed)
    np.testing.assert_array_equal(ga.tensor(x)[idx].numpy(), x[idx])
    check_vjp(lambda a: a[idx], x, rng=seed)


def test_repeated_indices_accumulate():
    x = ga.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    idx = np.array([0, 2, 0, 0, 3, 2])
    u = np.array([1.0, 10.0, 100.0, 1000.0, 5.0, 0.5])
    x[idx].backward(u)
    np.testing.assert_array_equal(x.grad, [1101.0, 0.0, 10.5, 5.0])
    # a list index, and rows of a matrix
    m = ga.tensor(np.ones((3, 2)), requires_grad=True)
    ga.sum(m[[1, 1, 2, 1]] * np.array([[1.0, 2.0]])).backward()
    np.testing.assert_array_equal(m.grad, [[0, 0], [3, 6], [1, 2]])


def test_mixed_advanced_and_basic_indexing():
    x = np.arange(60.0).reshape(3, 4, 5)
    for idx in [np.s_[[2, 0, 2], :, 1:4], np.s_[1:, [3, 3], ::-2], np.s_[[0, 1], :, [4, 4]],
                np.s_[..., np.array([[0, 1], [1, 0]])], np.s_[None, [1, 2], 0]]:
        np.testing.assert_array_equal(ga.tensor(x)[idx].numpy(), x[idx])
        check_vjp(lambda a: a[idx], x)


@given(shape=shapes(min_dims=1, max_dims=3), seed=seeds)
def test_boolean_mask_indexing(shape, seed):
    rng = np.random.default_rng(seed)
    x = _x(shape, seed)
    mask = rng.random(shape) > 0.4
    np.testing.assert_array_equal(ga.tensor(x)[mask].numpy(), x[mask])
    check_vjp(lambda a: a[mask], x, rng=seed)
    row_mask = rng.random(shape[0]) > 0.5
    np.testing.assert_array_equal(ga.tensor(x)[row_mask].numpy(), x[row_mask])
    check_vjp(lambda a: a[row_mask], x, rng=seed)
    t = ga.tensor(x, requires_grad=True)
    ga.sum(t[mask]).backward()
    np.testing.assert_array_equal(t.grad, mask.astype(float))


def test_mask_from_a_tensor_comparison():
    t = ga.tensor([-1.0, 2.0, -3.0, 4.0], requires_grad=True)
    y = t[t > 0]
    np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])
    ga.sum(y * y).backward()
    np.testing.assert_array_equal(t.grad, [0.0, 4.0, 0.0, 8.0])


def test_index_with_a_tensor_of_integers():
    t = ga.tensor([1.0, 2.0, 3.0], requires_grad=True)
    i = ga.tensor(np.array([2, 2, 0]))
    ga.sum(t[i]).backward()
    np.testing.assert_array_equal(t.grad, [1.0, 0.0, 2.0])


def test_iterating_a_tensor_and_its_gradient():
    t = ga.tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    rows = list(t)
    assert len(rows) == 2 and all(isinstance(r, ga.Tensor) for r in rows)
    ga.sum(rows[0] * rows[1]).backward()
    np.testing.assert_array_equal(t.grad, [[3.0, 4.0], [1.0, 2.0]])


def test_bad_indices_raise():
    t = ga.tensor(np.ones((2, 3)))
    with pytest.raises(IndexError):
        t[5]
    with pytest.raises(IndexError):
        t[0, 0, 0]
    with pytest.raises(IndexError):
        t[np.array([0.5])]


# ---------------------------------------------------------------------------------------------
# concatenate and stack

@st.composite
def concat_case(draw):
    base = list(draw(shapes(min_dims=1, max_dims=3)))
    nd = len(base)
    axis = draw(st.integers(-nd, nd - 1))
    k = draw(st.integers(1, 4))
    out = []
    for _ in range(k):
        s = list(base)
        s[axis] = draw(st.integers(0, 3))
        out.append(tuple(s))
    return out, axis


@given(case=concat_case(), seed=seeds)
def test_concatenate(case, seed):
    shps, axis = case
    rng = np.random.default_rng(seed)
    xs = [values(rng, s) for s in shps]
    y = ga.concatenate(xs, axis=axis)
    np.testing.assert_array_equal(y.numpy(), np.concatenate(xs, axis=axis))
    check_vjp(lambda *a: ga.concatenate(a, axis=axis), *xs, rng=seed)
    check_vjp32(lambda *a: ga.concatenate(a, axis=axis), *xs, rng=seed)


def test_concatenate_mixes_tensors_constants_and_lists():
    a = ga.tensor([1.0, 2.0], requires_grad=True)
    b = np.array([3.0])
    c = ga.tensor([4.0, 5.0, 6.0], requires_grad=True)
    y = ga.concatenate([a, b, c])
    np.testing.assert_array_equal(y.numpy(), [1, 2, 3, 4, 5, 6])
    y.backward(np.arange(6.0))
    np.testing.assert_array_equal(a.grad, [0.0, 1.0])
    np.testing.assert_array_equal(c.grad, [3.0, 4.0, 5.0])
    y = ga.concatenate((c, a), axis=0)
    assert y.shape == (5,)


@given(shape=shapes(max_dims=3), k=st.integers(1, 3), data=st.data(), seed=seeds)
def test_stack(shape, k, data, seed):
    nd = len(shape) + 1
    axis = data.draw(st.integers(-nd, nd - 1))
    rng = np.random.default_rng(seed)
    xs = [values(rng, shape) for _ in range(k)]
    np.testing.assert_array_equal(ga.stack(xs, axis=axis).numpy(), np.stack(xs, axis=axis))
    check_vjp(lambda *a: ga.stack(a, axis=axis), *xs, rng=seed)


def test_stack_of_scalars_builds_a_vector():
    a = ga.tensor(2.0, requires_grad=True)
    b = ga.tensor(3.0, requires_grad=True)
    v = ga.stack([a, b, a * b])
    np.testing.assert_array_equal(v.numpy(), [2.0, 3.0, 6.0])
    ga.sum(v * np.array([1.0, 10.0, 100.0])).backward()
    assert a.grad == 1.0 + 100.0 * 3.0 and b.grad == 10.0 + 100.0 * 2.0


def test_shape_ops_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x, u = rng.standard_normal((3, 4, 5)), rng.standard_normal((2, 4, 3))
    idx = np.array([2, 0, 2])
    tx = torch.tensor(x, requires_grad=True)
    ty = tx[torch.tensor(idx)].permute(1, 0, 2)[:, :, 1:3].reshape(2, 4, 3)
    (ty * torch.tensor(u)).sum().backward()
    f = lambda a: ga.reshape(ga.transpose(a[idx], (1, 0, 2))[:, :, 1:3], (2, 4, 3))
    np.testing.assert_allclose(ga.vjp(f, x)[1](u)[0], tx.grad.numpy(), rtol=1e-14)
