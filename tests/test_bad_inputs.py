"""A bad-input sweep over the public functions: NaN/Inf values, empty and 0-d arrays,
non-contiguous, negative-stride, Fortran-order, unaligned, read-only and byte-swapped layouts,
and int, bool, float16, complex and object dtypes.  Each call gives NumPy's result or a clear
error naming the op; the input is never modified; and where a derivative exists, the gradient
on an odd layout equals the gradient on a clean copy."""
import warnings

import numpy as np
import pytest
import scipy.special

import graphad as ga

BASE = np.array([[0.5, -1.25, 2.0, 0.0], [1.5, 0.25, -0.75, 3.0], [-2.0, 0.1, 0.9, -0.3]])


def _unaligned(a):
    buf = np.zeros(a.nbytes + 1, np.uint8)[1:]
    u = buf.view(a.dtype).reshape(a.shape)
    u[...] = a
    return u


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


LAYOUTS = {
    "c": lambda: BASE.copy(),
    "nan-inf": lambda: np.where(BASE > 1, np.inf, np.where(BASE < -1, np.nan, BASE)),
    "empty": lambda: np.zeros((0, 4)),
    "0-d": lambda: np.array(0.7),
    "strided": lambda: np.repeat(BASE, 2, axis=1)[:, ::2],
    "negative-stride": lambda: BASE[::-1, ::-1],
    "fortran": lambda: np.asfortranarray(BASE),
    "unaligned": lambda: _unaligned(BASE),
    "read-only": lambda: _read_only(BASE),
    "byte-swapped": lambda: BASE.astype(BASE.dtype.newbyteorder("S")),
    "int": lambda: np.arange(12).reshape(3, 4) - 5,
    "bool": lambda: BASE > 0,
    "float16": lambda: BASE.astype(np.float16),
}
REFUSED = {
    "complex": (lambda: BASE + 1j, "complex"),
    "object": (lambda: BASE.astype(object), "dtype object"),
}

UNARY = {
    "exp": np.exp, "log1p": lambda x: np.log1p(np.abs(x)), "sin": np.sin, "cos": np.cos,
    "tanh": np.tanh, "sinh": np.sinh, "cosh": np.cosh, "square": np.square, "abs": np.abs,
    "sign": np.sign, "negative": np.negative, "floor": np.floor, "ceil": np.ceil,
    "sigmoid": scipy.special.expit, "softplus": lambda x: np.logaddexp(0.0, x),
    "relu": lambda x: np.maximum(x, 0), "sqrt": lambda x: np.sqrt(np.abs(x)),
    "sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min,
    "logsumexp": lambda x: np.log(np.sum(np.exp(x))),       # scipy's fails on empty input
    "ravel": np.ravel, "transpose": np.transpose,
}
# graphad spellings of the NumPy references above (log1p and sqrt of |x|: defined everywhere)
GA_UNARY = {"log1p": lambda x: ga.log1p(ga.abs(x)), "sqrt": lambda x: ga.sqrt(ga.abs(x)),
            "ravel": lambda x: ga.reshape(x, (-1,))}


def _ga(name):
    return GA_UNARY.get(name) or getattr(ga, name)


def _value(y):
    return y.numpy() if isinstance(y, ga.Tensor) else np.asarray(y)


def _check_value(name, x):
    """NumPy's result (on float64 values for bool input, which graphad computes in float64
    where NumPy picks float16 or refuses), or, where NumPy raises or the input is empty, an
    error naming the op; and x unmodified."""
    before = np.array(x, copy=True)
    flags = (x.flags.writeable, x.flags.c_contiguous, x.dtype)
    ref = x.astype(np.float64) if x.dtype == bool else x
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # NumPy's "mean of empty slice"
        try:
            want = UNARY[name](ref)
        except (ValueError, TypeError):                      # NumPy refuses: graphad too
            with pytest.raises((ValueError, TypeError), match=name):
                _ga(name)(x)
            return "error naming the op"
        try:
            got = _value(_ga(name)(x))
        except ValueError as e:
            assert x.size == 0 and name in str(e), f"{name}: {e}"   # mean of nothing
            return "error naming the op"
    np.testing.assert_allclose(got.astype(np.float64), np.asarray(want, np.float64),
                               rtol=2e-3 if x.dtype == np.float16 else 1e-12, atol=1e-12,
                               equal_nan=True, err_msg=f"{name}")
    assert got.shape == np.shape(want)
    np.testing.assert_array_equal(x, before)                 # never modified in place
    assert (x.flags.writeable, x.flags.c_contiguous, x.dtype) == flags
    return "numpy's result"


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(UNARY))
def test_public_functions_on_odd_inputs(name, layout):
    x = LAYOUTS[layout]()
    _check_value(name, x)
    if x.dtype.kind == "f" and x.size and x.dtype != np.float16 and layout != "nan-inf":
        f = lambda a: ga.sum(_ga(name)(a) * 1.5)
        try:
            g = ga.grad(f)(x)
        except ValueError as e:                              # e.g. max of nothing
            assert name in str(e)
            return
        np.testing.assert_array_equal(g, ga.grad(f)(np.array(x, copy=True)), err_msg=name)


@pytest.mark.parametrize("kind", list(REFUSED))
@pytest.mark.parametrize("name", list(UNARY))
def test_unsupported_dtypes_are_refused_clearly(name, kind):
    make, words = REFUSED[kind]
    x = make()
    with pytest.raises(TypeError, match=words):
        _ga(name)(x)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("op", ["add", "subtract", "multiply", "divide", "maximum", "minimum",
                                "matmul"])
def test_binary_functions_on_odd_inputs(op, layout):
    x = LAYOUTS[layout]()
    if op == "matmul" and x.ndim != 2:
        pytest.skip("matmul takes the 2-D layouts")
    y = np.ones(x.shape[-1:] if op != "matmul" else (x.shape[-1], 2)) * 0.5 if x.ndim else 2.0
    before = np.array(x, copy=True)
    with np.errstate(all="ignore"):
        want = getattr(np, op)(x, y)
        got = _value(getattr(ga, op)(x, y))
    np.testing.assert_allclose(got.astype(np.float64), np.asarray(want, np.float64),
                               rtol=2e-3 if x.dtype == np.float16 else 1e-12, atol=1e-12,
                               equal_nan=True)
    np.testing.assert_array_equal(x, before)


# functions with more arguments: value, input unmodified, gradient equal to a clean copy's
MORE = {
    "where": (lambda x: ga.where(np.ones(np.shape(x), bool), x, 0.0),
              lambda x: np.where(np.ones(np.shape(x), bool), x, 0.0)),
    "clip": (lambda x: ga.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5)),
    "concatenate": (lambda x: ga.concatenate([x, x], axis=-1), lambda x: np.concatenate([x, x], -1)),
    "stack": (lambda x: ga.stack([x, x]), lambda x: np.stack([x, x])),
    "getitem": (lambda x: ga.getitem(x, (Ellipsis, slice(None, None, 2))), lambda x: x[..., ::2]),
    "einsum": (lambda x: ga.einsum("ij,j->i", x, np.arange(1.0, 5.0)),
               lambda x: np.einsum("ij,j->i", x, np.arange(1.0, 5.0))),
    "trace": (lambda x: ga.trace(ga.getitem(x, (slice(0, 3), slice(0, 3)))),
              lambda x: np.trace(x[:3, :3])),
    "slogdet": (lambda x: ga.linalg.slogdet(ga.getitem(x, (slice(0, 3), slice(0, 3))) + 3.0 * np.eye(3))[1],
                lambda x: np.linalg.slogdet(x[:3, :3] + 3.0 * np.eye(3))[1]),
}
TWO_D = {"trace", "slogdet", "einsum"}


@pytest.mark.parametrize("layout", [k for k in LAYOUTS if k not in ("int", "bool", "float16")])
@pytest.mark.parametrize("name", list(MORE))
def test_more_functions_on_odd_layouts(name, layout):
    x = LAYOUTS[layout]()
    if (name in TWO_D and (x.ndim != 2 or x.shape[0] < 3)) or \
            (name in ("concatenate", "getitem") and x.ndim == 0):
        pytest.skip(f"{name} needs another shape")
    before = np.array(x, copy=True)
    g_fn, np_fn = MORE[name]
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(_value(g_fn(x)), np_fn(np.array(x)), rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=name)
    np.testing.assert_array_equal(x, before)
    if x.size and layout != "nan-inf":
        f = lambda a: ga.sum(g_fn(a) * 1.5)
        np.testing.assert_array_equal(ga.grad(f)(x), ga.grad(f)(np.array(x, copy=True)),
                                      err_msg=name)
