"""Arrays as users have them, normalized where they enter graphad (_core.native: operands,
tensor(), the transforms' leaves, compiled inputs): byte-swapped and unaligned arrays give the
right numbers; float32 stays float32 in forward mode; axes are validated as NumPy does."""
import numpy as np
import pytest

import graphad as ga
from graphad import nn

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])


def _swapped(a):
    return a.astype(a.dtype.newbyteorder(">" if np.little_endian else "<"))


def _unaligned(a):
    buf = np.zeros(a.nbytes + 1, np.uint8)[1:]
    u = buf.view(a.dtype).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned
    return u


@pytest.mark.parametrize("odd", [_swapped, _unaligned], ids=["byte-swapped", "unaligned"])
def test_regression_byte_swapped_and_unaligned_arrays_give_the_right_numbers(odd):
    """ga.exp of a '>f8' array returned [1, 1] and A @ A zeros (from FITS, HDF5, the network)."""
    A = odd(X)
    v = odd(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(ga.exp(A).numpy(), np.exp(X), rtol=1e-15)
    np.testing.assert_allclose(ga.matmul(A, v).numpy(), X @ [1.0, 2.0, 3.0], rtol=1e-15)
    np.testing.assert_allclose((ga.multiply(A, v) + 1.0).numpy(), X * [1.0, 2.0, 3.0] + 1.0,
                               rtol=1e-15)
    np.testing.assert_allclose(ga.tensor(A).numpy(), X)
    g = ga.grad(lambda a: ga.sum(ga.sin(a) * a))(A)
    np.testing.assert_allclose(g, np.cos(X) * X + np.sin(X), rtol=1e-14)
    _, t = ga.jvp(ga.tanh, (A,), (A,))
    np.testing.assert_allclose(t, (1 - np.tanh(X) ** 2) * X, rtol=1e-14)
    labels = np.array([2, 0])
    loss = ga.grad(lambda z: nn.cross_entropy(z, labels))(A)
    np.testing.assert_allclose(loss, ga.grad(lambda z: nn.cross_entropy(z, labels))(X), rtol=1e-14)
    step = ga.compile(ga.grad(lambda a: ga.sum(ga.exp(a) * a)))
    for k in range(3):                      # traced, then replayed on odd inputs
        np.testing.assert_allclose(step(odd(X + k)), np.exp(X + k) * (X + k + 1), rtol=1e-14)
    assert step.replays == 2
    assert A.dtype.byteorder == odd(X).dtype.byteorder     # the input is left as it was


@pytest.mark.parametrize("f", [lambda v: v ** 2, lambda v: 2.0 ** v,
                               lambda v: ga.maximum(v, 1.0), lambda v: ga.minimum(1.5, v)],
                         ids=["v**2", "2**v", "maximum(v, 1)", "minimum(1.5, v)"])
def test_regression_float32_is_kept_in_forward_mode(f):
    """jvp / jacfwd / hvp of these on float32 gave float64 (a rule's constant became an
    np.float64, which NumPy 2 does not treat as a weak scalar)."""
    v = np.array([0.5, 1.25, 2.0], np.float32)
    assert ga.jvp(f, (v,), (v,))[1].dtype == np.float32
    assert ga.jacfwd(f)(v).dtype == np.float32
    assert ga.jacrev(f)(v).dtype == np.float32
    assert ga.hvp(lambda w: ga.sum(f(w)), v, v)[1].dtype == np.float32
    assert ga.hessian(lambda w: ga.sum(f(w)))(v).dtype == np.float32
    np.testing.assert_allclose(ga.jacfwd(f)(v), ga.jacfwd(f)(v.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("call", [
    lambda x: ga.swapaxes(x, 0, 5), lambda x: ga.transpose(x, (-3, 0)),
    lambda x: ga.transpose(x, (2, 1)), lambda x: ga.stack([x, x], axis=5),
    lambda x: ga.sum(x, axis=(0, 5)), lambda x: ga.softmax(x, axis=-3),
    lambda x: ga.swapaxes(ga.sum(x), 0, 0)],
    ids=["swapaxes", "transpose-neg", "transpose", "stack", "sum", "softmax", "swapaxes-0d"])
def test_regression_out_of_range_axes_raise_axis_error(call):
    """They wrapped around (swapaxes(x, 0, 5) returned x.T; a 0-d swapaxes divided by zero)."""
    with pytest.raises(np.exceptions.AxisError):
        call(np.ones((2, 3)))


def test_axes_in_range_and_clear_errors():
    x = np.arange(6.0).reshape(2, 3)
    assert ga.transpose(np.ones((2, 3, 4)), (-1, 0, 1)).shape == (4, 2, 3)
    assert ga.stack([x, x], axis=-1).shape == (2, 3, 2)
    np.testing.assert_array_equal(ga.swapaxes(x, -1, 0).numpy(), x.T)
    np.testing.assert_array_equal(ga.sum(x, axis=(0, -1)).numpy(), 15.0)
    with pytest.raises(TypeError, match="sum: an axis must be an integer"):
        ga.sum(x, axis=1.0)


def test_regression_zero_size_edges():
    """jacfwd at an empty input failed to reshape; max/min over a non-empty axis of a (0, 3)
    array raised (NumPy returns an empty array); jacfwd of the identity at a 0-d input returned
    the cached, read-only identity block."""
    assert ga.jacfwd(ga.exp)(np.empty(0)).shape == (0, 0)
    assert ga.jacrev(ga.exp)(np.empty(0)).shape == (0, 0)
    assert ga.max(np.ones((0, 3)), axis=1).shape == (0,)
    assert ga.min(np.ones((3, 0)), axis=0).shape == (0,)
    with pytest.raises(ValueError, match=r"max: cannot reduce over a zero-size axis"):
        ga.max(np.ones((0, 3)), axis=0)
    J = ga.jacfwd(lambda v: v)(np.array(2.0))
    assert J == 1.0 and J.flags.writeable
    J[...] = 5.0
    assert ga.jacfwd(lambda v: v)(np.array(2.0)) == 1.0      # the cache was not written to
    assert ga.jacrev(lambda v: v)(np.arange(2.0)).flags.writeable


def test_regression_clear_errors_and_empty_reductions():
    """Object arrays gave NumPy's ufunc-loop message; logsumexp and softmax over an empty axis
    said 'zero-size array to reduction operation maximum'; concatenate named axis -2."""
    with pytest.raises(TypeError, match=r"exp: an operand of dtype object \(shape \(1,\)\)"):
        ga.exp(np.array(["a"], dtype=object))
    np.testing.assert_array_equal(ga.logsumexp(np.ones((2, 0)), axis=1).numpy(), -np.inf)
    assert ga.softmax(np.ones((2, 0)), axis=1).shape == (2, 0)
    assert ga.log_softmax(np.ones((2, 0)), axis=1).shape == (2, 0)
    assert ga.grad(lambda x: ga.sum(ga.logsumexp(x, axis=1)))(np.ones((2, 0))).shape == (2, 0)
    with pytest.raises(ValueError, match=r"\(2, 3\), \(3, 2\) do not match off axis 0"):
        ga.concatenate([np.ones((2, 3)), np.ones((3, 2))], axis=0)


def test_regression_python_numbers_keep_numpy_dtypes():
    """The fix that keeps a rule's Python-number constants weak made ga.add(2, 3) a float."""
    assert ga.add(2, 3).dtype == np.add(2, 3).dtype
    assert ga.power(2, 3).numpy() == 8 and ga.power(2, 3).dtype == np.power(2, 3).dtype
    assert ga.multiply(1.5, 2).dtype == np.float64
    assert ga.exp(0).dtype == np.float64
