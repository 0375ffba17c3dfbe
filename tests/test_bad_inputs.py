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


# =============================================================================================
# The sweep over every public function: ga.<name> for graphad._ops.__all__, ga.linalg.<name>
# for ga.linalg.__all__ and the functions of ga.nn.__all__, each through the calls of TABLE
# (a test fails when a public function has none), on every variant of VARIANTS.
#
# A case is one call on one variant.  Its outcome is
#   "correct"          NumPy's result on the same values (shape; values to the dtype's accuracy,
#                      NaN where NumPy has NaN; float64 and float32 kept), the input unmodified,
#                      and, for the float layouts, a gradient equal to the one on a clean copy
#                      (float32 gradients float32; integer and bool inputs refuse a gradient
#                      with a TypeError);
#   "NaN/Inf propagated"  (NaN/Inf inputs only) not NumPy's result to the last NaN, but every
#                      number NumPy computes finite is graphad's too (or NaN), and every output
#                      in which NumPy has a NaN/Inf has one in graphad's (a softmax row with +Inf
#                      is [nan, 0, 0] here and all NaN in SciPy; a NaN norm is never 0);
#   "error as NumPy"   NumPy raises on these values, and graphad raises a clear error: a
#                      ValueError / TypeError / IndexError / LinAlgError naming the op, or
#                      NumPy's AxisError;
#   "error as NumPy (inner op)"  the same, but the message names the primitive that a composite
#                      function (nn.mse, unvec, ...) called, with its shapes;
#   "clear refusal"    NumPy computes but graphad refuses clearly: allowed for the dtypes
#                      graphad does not promise (int, bool, float16, object: a TypeError that
#                      says "object"), zero-size inputs, an axis on a 0-d array (NumPy's legacy
#                      leniency; graphad's AxisError), and always for complex operands (a
#                      TypeError that says so);
#   "empty result (NumPy raises)"  a zero-size input: graphad returns zero-size arrays where
#                      NumPy/SciPy raise (softmax over an empty axis);
#   "FAIL: ..."        anything else: a wrong number, shape or dtype, a modified input, an
#                      unclear error, a crash, a refusal of a valid float array.
# Integer, bool and object inputs are compared with NumPy on the same values as float64
# (graphad computes them in float64, where NumPy would round a reciprocal to an integer or
# refuse a bool subtraction) or, where that differs, with NumPy on the originals; float16
# inputs with the float64 result to float16 accuracy; byte-swapped ones with NumPy on a native
# copy (scipy.linalg.lu returns zeros, after an ignored exception, on a big-endian matrix).
#
# The cases run in child processes (python tests/test_bad_inputs.py --child, cases on stdin,
# one JSON line per case on stdout), so that a crash is a failed case, not a dead test run: the
# parent marks the case that was running as a crash and starts a new child on the rest.
# `python tests/test_bad_inputs.py` prints the counts by outcome (and every failure).

import inspect  # noqa: E402  (the sweep's own imports)
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections import Counter, namedtuple  # noqa: E402

import scipy.linalg  # noqa: E402

from graphad import _ops  # noqa: E402


def public_functions():
    """The names the sweep must cover, read from the modules (new functions are picked up)."""
    names = list(_ops.__all__)
    names += ["linalg." + n for n in ga.linalg.__all__]
    names += ["nn." + n for n in ga.nn.__all__ if inspect.isfunction(getattr(ga.nn, n))]
    return names


def _fn(name):
    f = ga
    for part in name.split("."):
        f = getattr(f, part)
    return f


# the bases the variants are made from: a (3, 4) matrix, a batch of two SPD 3x3 matrices
# (their integer rounding SPD too), a vector of 12
A3 = np.array([[4.0, 1.25, 0.5], [1.25, 3.0, -1.0], [0.5, -1.0, 2.5]])
SPD = np.stack([A3, A3 + np.diag([1.0, 0.5, 2.0])])
VEC = BASE.ravel()
Y4 = np.linspace(0.5, 2.0, 4)           # a second operand that broadcasts with (3, 4)
Y3 = np.array([0.5, -1.0, 2.0])
W42 = np.array([[1.0, -0.5], [0.25, 2.0], [-1.5, 0.5], [0.75, 1.0]])
W23 = np.array([[1.0, 0.5, -2.0], [0.25, -1.0, 1.5]])
K21 = np.array([[1.5], [-0.5]])
LABELS = np.array([1, 3, 0])
LINEAR = ga.nn.Linear(4, 2, rng=0)     # functional_call's module
TARGETS = np.array([[1.0, 0.0, 0.5, 1.0], [0.0, 0.25, 1.0, 0.0], [1.0, 1.0, 0.0, 0.75]])


def _nan_inf(b):
    b = b.astype(np.float64).copy()
    flat = b.reshape(-1)
    flat[0], flat[-1] = np.nan, np.inf
    if flat.size > 4:
        flat[2] = -np.inf
    return b


def _strided(b):
    return np.repeat(b, 2, axis=-1)[..., ::2]


def _negative(b):
    return b[(slice(None, None, -1),) * b.ndim]


VARIANTS = {
    "c": lambda b: b.copy(),
    "nan-inf": _nan_inf,
    "0-d": lambda b: np.array(b.flat[1]),
    "strided": _strided,
    "negative-stride": _negative,
    "fortran": np.asfortranarray,
    "unaligned": _unaligned,
    "read-only": _read_only,
    "byte-swapped": lambda b: b.astype(b.dtype.newbyteorder("S")),
    "float32": lambda b: b.astype(np.float32),
    "float32-negative-stride": lambda b: _negative(b.astype(np.float32)),
    "int": lambda b: np.rint(b).astype(np.int64),
    "bool": lambda b: b > 0,
    "float16": lambda b: b.astype(np.float16),
    "complex": lambda b: b + 0.5j,
    "object": lambda b: b.astype(object),
}
FLOAT_LAYOUTS = {"c", "nan-inf", "0-d", "strided", "negative-stride", "fortran", "unaligned",
                 "read-only", "byte-swapped", "float32", "float32-negative-stride"}
GRAD_LAYOUTS = FLOAT_LAYOUTS - {"nan-inf"}
REFUSABLE = {"int", "bool", "float16", "object"}      # + the zero-size variants

# Fn: calls {label: (graphad call, NumPy call)} on the odd array x; base; zero-size shapes;
# rtol for float64 (a LAPACK path may round differently from NumPy's); grad: differentiable;
# const: the labels whose x is a constant operand (where's condition: any dtype NumPy takes)
Fn = namedtuple("Fn", "calls base empty rtol grad const",
                defaults=(BASE, ((0, 4), (3, 0)), 1e-12, True, ()))


def _unary(np_f, name=None):
    return lambda n: Fn({"x": (lambda x: _fn(n)(x), np_f)})


def _binary(np_f):
    return lambda n: Fn({"a": (lambda x: _fn(n)(x, Y4), lambda x: np_f(x, Y4)),
                         "b": (lambda x: _fn(n)(Y4, x), lambda x: np_f(Y4, x))})


def _reduction(np_f):
    return lambda n: Fn({
        "all": (lambda x: _fn(n)(x), np_f),
        "axis-1": (lambda x: _fn(n)(x, axis=-1), lambda x: np_f(x, axis=-1)),
        "axis0-keepdims": (lambda x: _fn(n)(x, axis=0, keepdims=True),
                           lambda x: np_f(x, axis=0, keepdims=True))})


def _np_lse(x, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _each(f):
    """A NumPy/SciPy function of one matrix applied over the leading axes."""
    def g(x):
        x = np.asarray(x)
        if x.ndim < 2:                           # numpy.linalg's rule (SciPy's expm is lenient)
            raise np.linalg.LinAlgError(f"{x.ndim}-dimensional array given")
        lead = x.shape[:-2]
        if x.size == 0 and lead and 0 in lead:      # an empty batch: f's shapes, no entries
            one = f(np.eye(x.shape[-1]))
            return (tuple(np.zeros(lead + np.shape(o)) for o in one) if isinstance(one, tuple)
                    else np.zeros(lead + np.shape(one)))
        outs = [f(x[i]) for i in np.ndindex(*lead)] if lead else [f(x)]
        if not isinstance(outs[0], tuple):
            return np.array(outs).reshape(lead + np.shape(outs[0])) if lead else outs[0]
        return tuple(np.array([o[k] for o in outs]).reshape(lead + np.shape(outs[0][k]))
                     if lead else outs[0][k] for k in range(len(outs[0])))
    return g


def _matrix(np_f, ga_f=None, **kw):
    """A linalg function of a (batch of) square matrices: the batch, and one matrix of it."""
    def make(n):
        g = ga_f or (lambda x: _fn(n)(x))
        one = lambda x: x[1] if x.ndim == 3 and len(x) > 1 else x
        return Fn({"batch": (g, np_f), "single": (lambda x: g(one(x)), lambda x: np_f(one(x)))},
                  base=SPD, empty=((0, 3, 3), (2, 0, 0)), rtol=1e-10, **kw)
    return make


def _values(x):
    return x.numpy() if isinstance(x, ga.Tensor) else np.asarray(x)


def _abs_vectors(w_v):
    """eigh/svd outputs with the eigen/singular vectors' signs dropped (distinct values)."""
    if isinstance(w_v[0], ga.Tensor) or isinstance(w_v[-1], ga.Tensor):
        return tuple(ga.abs(o) if o.ndim >= 2 else o for o in w_v)
    return tuple(np.abs(o) if np.ndim(o) >= 2 else o for o in w_v)


UNARY_NP = {
    "negative": np.negative, "exp": np.exp, "log": np.log, "log1p": np.log1p, "sin": np.sin,
    "cos": np.cos, "tan": np.tan, "tanh": np.tanh, "sinh": np.sinh, "cosh": np.cosh,
    "sqrt": np.sqrt, "square": np.square, "abs": np.abs, "sigmoid": scipy.special.expit,
    "softplus": lambda x: np.logaddexp(0.0, x), "reciprocal": lambda x: np.reciprocal(x),
    "relu": lambda x: np.maximum(x, 0), "sign": np.sign, "floor": np.floor, "ceil": np.ceil,
    "trunc": np.trunc, "rint": np.rint}
BINARY_NP = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
             "divide": np.divide, "power": np.power, "maximum": np.maximum,
             "minimum": np.minimum}
MASK4 = np.array([True, False, True, True])

TABLE = {n: _unary(f)(n) for n, f in UNARY_NP.items()}
TABLE.update({n: _binary(f)(n) for n, f in BINARY_NP.items()})
TABLE.update({n: _reduction(f)(n) for n, f in
              {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min,
               "logsumexp": _np_lse}.items()})
TABLE.update({
    "power": Fn({**_binary(np.power)("power").calls,
                 "square": (lambda x: ga.power(x, 2), lambda x: np.power(x, 2)),
                 "negative-int": (lambda x: ga.power(x, -1), lambda x: np.power(x, -1))}),
    "where": Fn({"a": (lambda x: ga.where(MASK4, x, 0.0), lambda x: np.where(MASK4, x, 0.0)),
                 "b": (lambda x: ga.where(MASK4, -1.5, x), lambda x: np.where(MASK4, -1.5, x)),
                 "cond": (lambda x: ga.where(x, Y4, -Y4), lambda x: np.where(x, Y4, -Y4))},
               const=("cond",)),
    "clip": Fn({"x": (lambda x: ga.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5)),
                "lo": (lambda x: ga.clip(x, -0.5, None), lambda x: np.clip(x, -0.5, None))}),
    "astype": Fn({"f32": (lambda x: ga.astype(x, np.float32), lambda x: x.astype(np.float32)),
                  "f64": (lambda x: ga.astype(x, np.float64), lambda x: x.astype(np.float64))}),
    "softmax": Fn({"x": (lambda x: ga.softmax(x), lambda x: scipy.special.softmax(x, -1)),
                   "axis0": (lambda x: ga.softmax(x, axis=0),
                             lambda x: scipy.special.softmax(x, 0))}),
    "log_softmax": Fn({"x": (lambda x: ga.log_softmax(x),
                             lambda x: scipy.special.log_softmax(x, -1)),
                       "axis0": (lambda x: ga.log_softmax(x, axis=0),
                                 lambda x: scipy.special.log_softmax(x, 0))}),
    "reshape": Fn({"flat": (lambda x: ga.reshape(x, (-1,)), lambda x: np.reshape(x, (-1,))),
                   "2,-1": (lambda x: ga.reshape(x, (2, -1)), lambda x: np.reshape(x, (2, -1)))}),
    "transpose": Fn({"x": (lambda x: ga.transpose(x), np.transpose),
                     "axes": (lambda x: ga.transpose(x, (1, 0)),
                              lambda x: np.transpose(x, (1, 0)))}),
    "swapaxes": Fn({"x": (lambda x: ga.swapaxes(x, 0, -1), lambda x: np.swapaxes(x, 0, -1))}),
    "expand_dims": Fn({"0": (lambda x: ga.expand_dims(x, 0), lambda x: np.expand_dims(x, 0)),
                       "-1": (lambda x: ga.expand_dims(x, -1), lambda x: np.expand_dims(x, -1))}),
    "squeeze": Fn({"none": (lambda x: ga.squeeze(x), np.squeeze),
                   "axis": (lambda x: ga.squeeze(x[None], 0), lambda x: np.squeeze(x[None], 0))}),
    "broadcast_to": Fn({"x": (lambda x: ga.broadcast_to(x, (2,) + np.shape(x)),
                              lambda x: np.broadcast_to(x, (2,) + np.shape(x)))}),
    "getitem": Fn({"step": (lambda x: ga.getitem(x, (Ellipsis, slice(None, None, 2))),
                            lambda x: x[..., ::2]),
                   "negative-step": (lambda x: ga.getitem(x, (Ellipsis, slice(None, None, -2))),
                                     lambda x: x[..., ::-2]),
                   "int": (lambda x: ga.getitem(x, -1), lambda x: x[-1]),
                   "int-array": (lambda x: ga.getitem(x, (Ellipsis, np.array([1, -1, 1]))),
                                 lambda x: x[..., np.array([1, -1, 1])]),
                   "mask": (lambda x: ga.getitem(x, _values(x) > 0), lambda x: x[x > 0])}),
    "concatenate": Fn({"x": (lambda x: ga.concatenate([x, x], axis=-1),
                             lambda x: np.concatenate([x, x], axis=-1)),
                       "axis0": (lambda x: ga.concatenate([x, x]),
                                 lambda x: np.concatenate([x, x]))}),
    "stack": Fn({"x": (lambda x: ga.stack([x, x]), lambda x: np.stack([x, x])),
                 "axis-1": (lambda x: ga.stack([x, x], axis=-1), lambda x: np.stack([x, x], -1))}),
    "matmul": Fn({"a": (lambda x: ga.matmul(x, W42), lambda x: np.matmul(x, W42)),
                  "b": (lambda x: ga.matmul(W23, x), lambda x: np.matmul(W23, x)),
                  "batch": (lambda x: ga.matmul(x[None], W42), lambda x: np.matmul(x[None], W42)),
                  "batch-of-none": (lambda x: ga.matmul(x[None][:0], W42[None][:0]),
                                    lambda x: np.matmul(x[None][:0], W42[None][:0]))}),
    "einsum": Fn({"ij,j": (lambda x: ga.einsum("ij,j->i", x, Y4),
                           lambda x: np.einsum("ij,j->i", x, Y4)),
                  "ji": (lambda x: ga.einsum("ij->ji", x), lambda x: np.einsum("ij->ji", x)),
                  "ellipsis": (lambda x: ga.einsum("...j,j->...", x, Y4),
                               lambda x: np.einsum("...j,j->...", x, Y4)),
                  "second": (lambda x: ga.einsum("i,ij->j", Y3, x),
                             lambda x: np.einsum("i,ij->j", Y3, x))}),
    "dot": Fn({"a": (lambda x: ga.dot(x, Y4), lambda x: np.dot(x, Y4)),
               "b": (lambda x: ga.dot(Y3, x), lambda x: np.dot(Y3, x))}),
    "outer": Fn({"a": (lambda x: ga.outer(x, Y3), lambda x: np.outer(x, Y3)),
                 "b": (lambda x: ga.outer(Y3, x), lambda x: np.outer(Y3, x))}),
    "trace": Fn({"x": (lambda x: ga.trace(x), np.trace),
                 "offset": (lambda x: ga.trace(x, 1), lambda x: np.trace(x, 1))}),
    "diagonal": Fn({"x": (lambda x: ga.diagonal(x), np.diagonal),
                    "offset": (lambda x: ga.diagonal(x, -1), lambda x: np.diagonal(x, -1))}),
    "diag": Fn({"x": (lambda x: ga.diag(x), np.diag),
                "k": (lambda x: ga.diag(x, 1), lambda x: np.diag(x, 1))}),
    "tril": Fn({"x": (lambda x: ga.tril(x), np.tril),
                "k": (lambda x: ga.tril(x, -1), lambda x: np.tril(x, -1))}),
    "triu": Fn({"x": (lambda x: ga.triu(x), np.triu),
                "k": (lambda x: ga.triu(x, 1), lambda x: np.triu(x, 1))}),
    "kron": Fn({"a": (lambda x: ga.kron(x, K21), lambda x: np.kron(x, K21)),
                "b": (lambda x: ga.kron(K21, x), lambda x: np.kron(K21, x))}),
    "vec": Fn({"x": (lambda x: ga.vec(x), lambda x: np.reshape(np.transpose(x), (-1,)))}),
    "unvec": Fn({"x": (lambda x: ga.unvec(x, (3, 4)), lambda x: np.reshape(x, (3, 4), order="F"))},
                base=VEC, empty=((0,),)),
    # ga.nn's losses
    "nn.cross_entropy": Fn({
        "logits": (lambda x: ga.nn.cross_entropy(x, LABELS),
                   lambda x: np.mean(_np_lse(x, -1) - x[np.arange(3), LABELS])),
        "none": (lambda x: ga.nn.cross_entropy(x, LABELS, reduction="none"),
                 lambda x: _np_lse(x, -1) - x[np.arange(3), LABELS])}),
    "nn.mse": Fn({"pred": (lambda x: ga.nn.mse(x, TARGETS), lambda x: np.mean((x - TARGETS) ** 2)),
                  "target": (lambda x: ga.nn.mse(TARGETS, x),
                             lambda x: np.mean((TARGETS - x) ** 2))}),
    "nn.binary_cross_entropy_with_logits": Fn({
        "logits": (lambda x: ga.nn.binary_cross_entropy_with_logits(x, TARGETS),
                   lambda x: np.mean(np.logaddexp(0.0, x) - TARGETS * x))}),
    "nn.functional_call": Fn({
        "input": (lambda x: ga.nn.functional_call(LINEAR, {"W": W42, "b": Y3[:2]}, x),
                  lambda x: np.matmul(x, W42) + Y3[:2]),
        "input-W": (lambda x: ga.nn.functional_call(LINEAR, {"W": W42}, x),
                    lambda x: np.matmul(x, W42) + LINEAR.param_dict()["b"])}),
    # ga.linalg (the batch of SPD matrices)
    "linalg.inv": _matrix(np.linalg.inv)("linalg.inv"),
    "linalg.slogdet": _matrix(lambda x: tuple(np.linalg.slogdet(x)))("linalg.slogdet"),
    "linalg.eigh": _matrix(lambda x: _abs_vectors(np.linalg.eigh(x)),
                           lambda x: _abs_vectors(ga.linalg.eigh(x)))("linalg.eigh"),
    "linalg.eigvalsh": _matrix(np.linalg.eigvalsh)("linalg.eigvalsh"),
    "linalg.det": _matrix(np.linalg.det)("linalg.det"),
    "linalg.cholesky": _matrix(np.linalg.cholesky)("linalg.cholesky"),
    "linalg.expm": _matrix(_each(scipy.linalg.expm))("linalg.expm"),
    "linalg.svd": _matrix(lambda x: _abs_vectors(np.linalg.svd(x, full_matrices=False)),
                          lambda x: _abs_vectors(ga.linalg.svd(x, full_matrices=False)))(
                              "linalg.svd"),
    "linalg.lu": _matrix(_each(scipy.linalg.lu))("linalg.lu"),
    "linalg.matrix_power": Fn({
        **_matrix(lambda x: np.linalg.matrix_power(x, 3),
                  lambda x: ga.linalg.matrix_power(x, 3))("linalg.matrix_power").calls,
        "-2": (lambda x: ga.linalg.matrix_power(x, -2), lambda x: np.linalg.matrix_power(x, -2)),
        "0": (lambda x: ga.linalg.matrix_power(x, 0), lambda x: np.linalg.matrix_power(x, 0))},
        base=SPD, empty=((0, 3, 3), (2, 0, 0)), rtol=1e-10),
    "linalg.solve": Fn({"a": (lambda x: ga.linalg.solve(x, SPD[0][:, :2]),
                              lambda x: np.linalg.solve(x, SPD[0][:, :2])),
                        "b": (lambda x: ga.linalg.solve(SPD[0], x),
                              lambda x: np.linalg.solve(SPD[0], x))},
                       base=SPD, empty=((0, 3, 3), (2, 0, 0)), rtol=1e-10),
    "linalg.solve_triangular": Fn({
        "a": (lambda x: ga.linalg.solve_triangular(x, A3[:, :2], lower=True),
              _each(lambda m: scipy.linalg.solve_triangular(m, A3[:, :2], lower=True))),
        "b": (lambda x: ga.linalg.solve_triangular(A3, x),
              lambda x: _each(lambda m: scipy.linalg.solve_triangular(A3, m))(x)),
        "single-trans": (lambda x: ga.linalg.solve_triangular(x[0] if np.ndim(x) == 3 and len(x)
                                                              else x, Y3, trans=1),
                         lambda x: _each(lambda m: scipy.linalg.solve_triangular(m, Y3, trans=1))(
                             x[0] if np.ndim(x) == 3 and len(x) else x))},
        base=SPD, empty=((0, 3, 3), (2, 0, 0)), rtol=1e-10),
    "linalg.norm": Fn({"fro": (lambda x: ga.linalg.norm(x), np.linalg.norm),
                       "single": (lambda x: ga.linalg.norm(x[1] if len(np.shape(x)) == 3 and
                                                           len(x) > 1 else x),
                                  lambda x: np.linalg.norm(x[1] if len(np.shape(x)) == 3 and
                                                           len(x) > 1 else x))},
                      base=SPD, empty=((0, 3, 3), (2, 0, 0)), rtol=1e-10),
})


def _outs(y):
    """A result as a tuple of float64-comparable arrays (and their dtypes)."""
    ys = y if isinstance(y, tuple) else (y,)
    return tuple(o.numpy() if isinstance(o, ga.Tensor) else np.asarray(o) for o in ys)


def _weighted_sum(y):
    ys = y if isinstance(y, tuple) else (y,)
    total = 0.0
    for k, o in enumerate(ys):
        if np.asarray(o.numpy() if isinstance(o, ga.Tensor) else o).dtype.kind == "f":
            total = total + ga.sum(o * (1.5 - 0.25 * k))
    return total


def _same(got, want, rtol):
    """None when got matches want (shapes, values with NaN where NumPy has NaN), else why."""
    if len(got) != len(want):
        return f"{len(got)} outputs, NumPy {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        w = np.asarray(w)
        if g.shape != w.shape:
            return f"output {k}: shape {g.shape}, NumPy {w.shape}"
        try:
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol,
                                       atol=rtol * max(1.0, float(np.max(np.abs(
                                           np.nan_to_num(w.astype(np.float64), posinf=0,
                                                         neginf=0)), initial=0.0))),
                                       equal_nan=True)
        except AssertionError as e:
            return f"output {k}: values differ: {str(e).strip().splitlines()[-3:]}"
    return None


def _propagated(got, want):
    """NaN/Inf inputs: every output NumPy computes finite is graphad's too (or NaN), and an
    output with a NaN/Inf in NumPy's result has one in graphad's."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        g, w = g.astype(np.float64), np.asarray(w).astype(np.float64)
        if g.shape != w.shape:
            return False
        fin = np.isfinite(w)
        close = np.isclose(g, w, rtol=1e-10, atol=1e-12) | np.isnan(g)
        if not close[fin].all() or (not fin.all() and np.isfinite(g).all()):
            return False
    return True


def _clear(err, op):
    """'named' (names the op), 'inner' (names a primitive with its message), or None."""
    short = op.split(".")[-1]
    if isinstance(err, np.exceptions.AxisError):
        return "named"
    if not isinstance(err, (ValueError, TypeError, IndexError, np.linalg.LinAlgError)):
        return None
    if short in str(err):
        return "named"
    head = str(err).split(":")[0]
    from graphad._prims import REGISTRY
    return "inner" if head in REGISTRY else None


def _variants_of(entry):
    vs = {k: (lambda make=make: make(entry.base)) for k, make in VARIANTS.items()}
    for s in entry.empty:
        vs["zero-size" + str(s).replace(" ", "")] = lambda s=s: np.zeros(s)
    return vs


def cases():
    """Every (function, call, variant) of the sweep whose function exists now."""
    out = []
    for name in public_functions():
        entry = TABLE.get(name)
        if entry is None:
            continue
        for label in entry.calls:
            for variant in _variants_of(entry):
                out.append((name, label, variant))
    return out


def run_case(name, label, variant):
    """One case's outcome (see the banner above)."""
    entry = TABLE[name]
    x = _variants_of(entry)[variant]()
    ga_call, np_call = entry.calls[label]
    before, flags = np.array(x, copy=True), (x.flags.writeable, x.strides, x.dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            got, ga_err = _outs(ga_call(x)), None
        except Exception as e:       # noqa: BLE001  (judged below)
            got, ga_err = None, e
        wants = []
        for arg in ([x.astype(np.float64), x] if x.dtype.kind in "biuO" else
                    [x.astype(np.float64)] if x.dtype == np.float16 else
                    [x.astype(x.dtype.newbyteorder("="))] if not x.dtype.isnative else [x]):
            try:
                wants.append(_outs(np_call(arg)))
            except Exception:        # noqa: BLE001  (NumPy refuses these values)
                pass
    if not (np.array_equal(x, before, equal_nan=True) if x.dtype.kind in "fc" else
            bool(np.all(x == before))) or (x.flags.writeable, x.strides, x.dtype) != flags:
        return "FAIL: the input was modified"
    if variant == "object" and isinstance(ga_err, TypeError) and "object" in str(ga_err):
        return "clear refusal"
    if variant == "complex" and label not in entry.const:
        if ga_err is None:
            return "FAIL: a complex operand accepted"
        if isinstance(ga_err, TypeError) and "complex" in str(ga_err):
            return "clear refusal"
        return f"FAIL: unclear refusal of complex: {type(ga_err).__name__}: {ga_err}"
    if ga_err is not None:
        clear = _clear(ga_err, name)
        if clear is None:
            return f"FAIL: unclear error {type(ga_err).__name__}: {ga_err}"
        if not wants:
            return "error as NumPy" + (" (inner op)" if clear == "inner" else "")
        if variant in REFUSABLE or variant.startswith("zero-size") or \
                (variant == "0-d" and isinstance(ga_err, np.exceptions.AxisError)):
            return "clear refusal"
        return f"FAIL: refused a valid input NumPy computes: {type(ga_err).__name__}: {ga_err}"
    if not wants:
        if variant == "nan-inf" and any(not np.isfinite(g.astype(np.float64)).all()
                                        for g in got):
            return "NaN/Inf propagated"             # NumPy/SciPy's check_finite refuses
        if variant.startswith("zero-size") and all(g.size == 0 for g in got):
            return "empty result (NumPy raises)"
        return "FAIL: NumPy raises on these values but graphad returned a result"
    rtol = {np.float32: 2e-5, np.float16: 2e-3}.get(x.dtype.type, entry.rtol)
    whys = [_same(got, w, rtol) for w in wants]
    if all(whys):
        if variant == "nan-inf" and _propagated(got, wants[0]):
            return "NaN/Inf propagated"
        return f"FAIL: {whys[0]}"
    if x.dtype.kind == "f" and x.dtype != np.float16:
        for g, w in zip(got, wants[0]):
            if w.dtype.kind == "f" and g.dtype.type != w.dtype.type:
                return f"FAIL: {x.dtype} input gave {g.dtype} where NumPy gives {w.dtype}"
    return _check_grad(entry, ga_call, x, variant)


def _check_grad(entry, ga_call, x, variant):
    """The gradient on an odd layout is the gradient on a clean copy; int/bool refuse one."""
    if not entry.grad or x.size == 0:
        return "correct"
    f = lambda a: _weighted_sum(ga_call(a))
    if x.dtype.kind in "biu":
        try:
            ga.grad(f)(x)
        except TypeError:
            return "correct"
        return f"FAIL: a gradient with respect to a {x.dtype} input"
    if variant not in GRAD_LAYOUTS:
        return "correct"
    with np.errstate(all="ignore"):
        try:
            g = ga.grad(f)(x)
        except Exception as e:       # noqa: BLE001
            return f"FAIL: gradient raised {type(e).__name__}: {e}"
        g0 = ga.grad(f)(x.astype(x.dtype.newbyteorder("="), order="C", copy=True))
    if g.dtype.type != x.dtype.type:
        return f"FAIL: {x.dtype} input got a {g.dtype} gradient"
    if g.shape != x.shape or not np.allclose(g, g0, rtol=1e-13, atol=1e-13, equal_nan=True):
        return f"FAIL: the gradient on this layout differs from a clean copy's: {g} vs {g0}"
    return "correct"


def _child():
    """python tests/test_bad_inputs.py --child: cases (JSON on stdin) -> one line per case."""
    todo = json.loads(sys.stdin.read())
    for case in todo:
        print(json.dumps({"start": case}), flush=True)
        try:
            outcome = run_case(*case)
        except Exception as e:       # noqa: BLE001  (a bug in the harness or an odd raise)
            outcome = f"FAIL: the check raised {type(e).__name__}: {e}"
        print(json.dumps({"case": case, "outcome": outcome}), flush=True)


def _run_children(todo, procs=2):
    """Run the cases in `procs` children at a time; a crash marks its case and the rest go on
    in a new child.  Returns {(name, label, variant): outcome}."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(ga.__file__)), os.environ.get("PYTHONPATH", "")]))
    results = {}
    queue = [todo[i::procs] for i in range(procs)]
    while any(queue):
        running = [(part, subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
            for part in queue if part]
        queue = []
        for part, p in running:
            out, err = p.communicate(json.dumps(part), timeout=600)
            started = None
            for line in out.splitlines():
                rec = json.loads(line)
                if "start" in rec:
                    started = tuple(rec["start"])
                else:
                    results[tuple(rec["case"])] = rec["outcome"]
                    started = None
            if p.returncode != 0:
                if started is not None:
                    results[started] = (f"FAIL: crash (exit status {p.returncode}): "
                                        f"{err.strip()[-300:]}")
                rest = [c for c in part if tuple(c) not in results]
                if started is None and rest:        # died between cases: give up on the rest
                    for c in rest:
                        results[tuple(c)] = f"FAIL: the child died: {err.strip()[-300:]}"
                    rest = []
                queue.append(rest)
    return results


_SWEEP = {}


def sweep():
    """All the cases' outcomes (run once per process)."""
    if not _SWEEP:
        _SWEEP.update(_run_children([list(c) for c in cases()]))
    return _SWEEP


def counts(results):
    return Counter(o if not o.startswith("FAIL") else "FAIL" for o in results.values())


def test_every_public_function_has_a_table_entry():
    missing = [n for n in public_functions() if n not in TABLE]
    assert not missing, f"public functions without a TABLE entry (add how to call them): {missing}"


def test_the_harness_judges():
    """The judge itself: a wrong number, a modified input, an unnamed error, a crash fail."""
    TABLE["__wrong"] = Fn({"x": (lambda x: ga.exp(x) * (1 + 1e-9), np.exp)})
    TABLE["__inplace"] = Fn({"x": (lambda x: np.negative(x, out=x) if x.flags.writeable else
                                   ga.exp(x), np.exp)})
    TABLE["__unnamed"] = Fn({"x": (lambda x: ga.exp(x[99, 99]), np.exp)})
    try:
        assert run_case("__wrong", "x", "c").startswith("FAIL: output 0: values differ")
        assert run_case("__inplace", "x", "c") == "FAIL: the input was modified"
        assert run_case("__unnamed", "x", "c").startswith("FAIL: refused a valid") or \
            run_case("__unnamed", "x", "c").startswith("FAIL: unclear error")
        assert run_case("exp", "x", "float32") == "correct"
    finally:
        for k in ("__wrong", "__inplace", "__unnamed"):
            del TABLE[k]
    crash = _run_children([["__crash", "x", "c"], ["exp", "x", "c"]], procs=1)
    assert crash[("__crash", "x", "c")].startswith("FAIL"), crash
    assert crash[("exp", "x", "c")] == "correct"


# known bugs (function, call) -> where: their cases are left out of the per-function tests and
# have a named regression test below; a known bug whose cases all pass fails the test (drop it)
KNOWN = {("matmul", "batch-of-none"): "test_matmul_of_empty_batches"}


@pytest.mark.parametrize("name", public_functions())
def test_public_function_on_bad_inputs(name):
    if name not in TABLE:
        pytest.skip("no TABLE entry (test_every_public_function_has_a_table_entry fails)")
    mine = {c: o for c, o in sweep().items() if c[0] == name}
    assert mine, f"{name}: no cases ran"
    bad = [f"{label} on {variant}: {o}" for (_, label, variant), o in sorted(mine.items())
           if o.startswith("FAIL") and (name, label) not in KNOWN]
    assert not bad, f"{name}:\n  " + "\n  ".join(bad)
    for (fn, label), test in KNOWN.items():
        if fn == name:
            assert any(o.startswith("FAIL") for (_, lb, _), o in mine.items() if lb == label), \
                f"{name} {label}: fixed; remove it from KNOWN and the xfail of {test}"


def test_sweep_counts_by_outcome(capsys):
    c = counts(sweep())
    with capsys.disabled():
        print(f"\nbad-input sweep: {len(sweep())} cases over {len(public_functions())} public "
              f"functions: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())))
    assert c["correct"] > 1000


# ---------------------------------------------------------------------------------------------
# regression tests for what the sweep found (xfail strict: each flips to a failure, to drop its
# marker, once fixed)

def test_norm_of_a_matrix_with_nan_is_nan():
    """NaN > 0 is False: a norm's 'exact zero at 0' guard once made a NaN norm 0."""
    a = A3.copy()
    a[0, 0] = np.nan
    assert np.isnan(float(ga.linalg.norm(a)))
    assert np.isnan(float(ga.linalg.norm(a[0])))


def test_lu_of_a_byte_swapped_float64_matrix_is_float64():
    """A '>f8' is not in the LAPACK table; lu once cast it to float32."""
    P, L, U = ga.linalg.lu(A3.astype(A3.dtype.newbyteorder("S")))
    assert L.dtype == np.float64 and U.dtype == np.float64
    np.testing.assert_allclose((P @ L @ U).numpy(), A3, rtol=1e-14, atol=1e-14)


def test_lu_of_an_empty_batch_keeps_the_matrix_shape():
    """P of an empty batch was once (0, 0, 0)."""
    P, L, U = ga.linalg.lu(np.zeros((0, 3, 3)))
    assert P.shape == L.shape == U.shape == (0, 3, 3)


@pytest.mark.xfail(strict=True, reason="_kernels.pyx _gemm_batched indexes A[first] of an "
                   "empty batch (IndexError); matrix_power of an empty batch too")
def test_matmul_of_empty_batches():
    assert ga.matmul(np.zeros((0, 3, 3)), np.zeros((0, 3, 3))).shape == (0, 3, 3)
    assert ga.linalg.matrix_power(np.zeros((0, 3, 3)), 3).shape == (0, 3, 3)


@pytest.mark.parametrize("name", ["eigh", "eigvalsh", "svd", "cholesky"])
def test_linalg_float16_errors_name_the_op(name):
    """NumPy's 'array type float16 is unsupported in linalg' once came through unnamed."""
    try:
        getattr(ga.linalg, name)(SPD.astype(np.float16))
    except TypeError as e:
        assert name in str(e) or (name == "eigvalsh" and "eigh" in str(e)), str(e)


@pytest.mark.xfail(strict=True, reason="_core.forward relabels every ValueError of a binary "
                   "kernel as a broadcast failure, NumPy's reason lost")
def test_power_of_integers_to_a_negative_power_says_why():
    with pytest.raises(ValueError, match="negative") as e:
        ga.power(np.arange(1, 4), -1)
    assert "broadcast" not in str(e.value)


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        TABLE["__crash"] = Fn({"x": (lambda x: os.abort(), np.exp)})
        _child()
    else:
        res = sweep()
        per = Counter((c[0], o if not o.startswith("FAIL") else "FAIL") for c, o in res.items())
        for name in public_functions():
            row = {o: n for (f, o), n in per.items() if f == name}
            print(f"{name:40s} " + ", ".join(f"{o} {n}" for o, n in sorted(row.items())))
        print("total:", dict(counts(res)))
        for c, o in sorted(res.items()):
            if o.startswith("FAIL"):
                print(c, o)
        missing = [n for n in TABLE if n not in public_functions()]
        print("TABLE entries for functions not (yet) public:", missing)
