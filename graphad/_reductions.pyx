# cython: language_level=3, binding=True
"""Reductions: sum, max, min, logsumexp, softmax, log_softmax (and mean, a composition); their
rules, public functions and the sum_ helper (conventions: graphad/_prims.pyx).  Axes are stored
negative (counted from the end), so that a rule works when cotangents carry leading batch
axes."""
import functools

import numpy as np
cimport numpy as cnp
from graphad cimport _kernels as K
from graphad._core cimport Tensor, apply, call, arg, out
from graphad._prims cimport raw, shape_of, ndim_of, lead, arg_shape, norm_axes, stacked
from graphad._prims import defprim
from graphad._elementwise cimport gmul_, sub_, mul_, exp_, nondiff_
from graphad._elementwise import multiply
from graphad._shape cimport reshape_, broadcast_to_

cnp.import_array()

__all__ = ["sum", "mean", "max", "min", "logsumexp", "softmax", "log_softmax"]


def _expand_reduced(g, Tensor n, axes, keepdims):
    """Reshape the cotangent of a reduction so that it broadcasts against the input."""
    if keepdims or (len(axes) == ndim_of(n.parents[0]) and lead(g, n) == 0):
        return g             # kept axes, or a scalar: either broadcasts against x as it is
    x_shape = arg_shape(n)
    kept = tuple(1 if (i - len(x_shape)) in axes else s for i, s in enumerate(x_shape))
    return reshape_(g, tuple(shape_of(g)[:lead(g, n)]) + kept)


# sum: d = sum(dx); the cotangent broadcasts back over the reduced axes
def sum_vjp(n, g):
    axes, keepdims = n.params
    return (broadcast_to_(_expand_reduced(g, n, axes, keepdims),
                          tuple(shape_of(g)[:lead(g, n)]) + arg_shape(n)),)

def sum_jvp(n, t):
    axes, keepdims = n.params
    return sum_(t[0], axes, keepdims)

_add_reduce = np.add.reduce


def _sum_fwd(params, x):
    axes, keepdims = params
    if cnp.PyArray_CheckExact(x):       # the ufunc's reduce: x.sum()'s Python layer costs ~1 us
        if not keepdims and len(axes) == cnp.PyArray_NDIM(<cnp.ndarray>x):
            r = K.sum_all(x)            # a contiguous float array: NumPy's sum, in C
            if r is not None:
                return r
        return np.asarray(_add_reduce(x, axes, None, None, keepdims))
    if not keepdims and len(axes) == np.ndim(x) and isinstance(x, np.ndarray) \
            and x.dtype == np.float64 and x.flags.c_contiguous:
        return np.asarray(x.sum())
    if isinstance(x, np.ndarray):        # the method: np.sum's dispatch costs ~1 us
        return np.asarray(x.sum(axis=axes, keepdims=keepdims))
    return np.asarray(np.sum(x, axis=axes, keepdims=keepdims))

P_SUM = defprim("sum", _sum_fwd, sum_vjp, sum_jvp)


# max/min over axes: d = dx at the extreme entries, shared equally between ties
def _tie_weights(axes, keepdims, x, y):
    x, y = np.asarray(x), np.asarray(y)
    if not keepdims:
        y = np.expand_dims(y, tuple(a + x.ndim for a in axes)) if axes else y
    hit = (x == y).astype(x.dtype if x.dtype.kind == "f" else np.float64)
    return hit / hit.sum(axis=axes, keepdims=True)

def _extreme_weights(n):
    axes, keepdims = n.params
    return nondiff_(functools.partial(_tie_weights, axes, keepdims), (arg(n, 0), out(n)))

def extreme_vjp(n, g):
    axes, keepdims = n.params
    gx = broadcast_to_(_expand_reduced(g, n, axes, keepdims),
                       tuple(shape_of(g)[:lead(g, n)]) + arg_shape(n))
    return (gmul_(gx, _extreme_weights(n)),)

def extreme_jvp(n, t):
    axes, keepdims = n.params
    return sum_(gmul_(t[0], _extreme_weights(n)), axes, keepdims)

def _reduce_fwd(fn, name):
    def fwd(params, x):
        shape = np.shape(x)
        if any(shape[a] == 0 for a in params[0]):       # NumPy's rule: only an empty axis
            raise ValueError(f"{name}: cannot reduce over a zero-size axis of shape {shape}")
        return np.asarray(fn(x, axis=params[0], keepdims=params[1]))
    return fwd

P_AMAX = defprim("max", _reduce_fwd(np.max, "max"), extreme_vjp, extreme_jvp)
P_AMIN = defprim("min", _reduce_fwd(np.min, "min"), extreme_vjp, extreme_jvp)


# logsumexp: d = sum(softmax(x) dx), computed stably by shifting with the max
def _lse_keep(x, axes):
    if x.size == 0:         # log of an empty sum is -inf (scipy's logsumexp); nothing to shift
        with np.errstate(divide="ignore"):
            return np.log(np.sum(np.exp(x), axis=axes, keepdims=True))
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m

def _lse_fwd(params, x):
    axes, keepdims = params
    x = np.asarray(x, dtype=np.result_type(x, 1.0))
    r = _lse_keep(x, axes)
    return r if keepdims else np.squeeze(r, axis=axes)

def _lse_softmax(n):
    axes, keepdims = n.params
    y = out(n)
    if not keepdims:
        y = reshape_(y, tuple(1 if (i - len(arg_shape(n))) in axes else s
                              for i, s in enumerate(arg_shape(n))))
    return exp_(sub_(arg(n, 0), y))

def lse_vjp(n, g):
    axes, keepdims = n.params
    return (gmul_(_expand_reduced(g, n, axes, keepdims), _lse_softmax(n)),)

def lse_jvp(n, t):
    axes, keepdims = n.params
    return sum_(gmul_(t[0], _lse_softmax(n)), axes, keepdims)

P_LSE = defprim("logsumexp", _lse_fwd, lse_vjp, lse_jvp)


# softmax: y = e^x / sum e^x;  dy = y (dx - sum(y dx))
def _softmax_fwd(axes, x):
    x = np.asarray(x, dtype=np.result_type(x, 1.0))
    if x.size == 0:
        return x.copy()
    m = np.max(x, axis=axes, keepdims=True)
    e = np.exp(x - np.where(np.isfinite(m), m, 0.0))
    return e / np.sum(e, axis=axes, keepdims=True)

def softmax_vjp(n, g):
    y = out(n)
    gy = gmul_(g, y)
    return (sub_(gy, mul_(y, sum_(gy, n.params, True))),)

def softmax_jvp(n, t):
    y = out(n)
    ty = gmul_(t[0], y)
    return sub_(ty, mul_(y, sum_(ty, n.params, True)))

P_SOFTMAX = defprim("softmax", _softmax_fwd, softmax_vjp, softmax_jvp)


# log_softmax: y = x - logsumexp(x);  dy = dx - sum(softmax(x) dx)
def _log_softmax_fwd(axes, x):
    x = np.asarray(x, dtype=np.result_type(x, 1.0))
    if x.size == 0:
        return x.copy()
    return x - _lse_keep(x, axes)

def log_softmax_vjp(n, g):
    return (sub_(g, mul_(exp_(out(n)), sum_(g, n.params, True))),)

def log_softmax_jvp(n, t):
    return sub_(t[0], sum_(gmul_(t[0], exp_(out(n))), n.params, True))

P_LOG_SOFTMAX = defprim("log_softmax", _log_softmax_fwd, log_softmax_vjp, log_softmax_jvp)


# ==============================================================================================
# Public functions

def sum(x, axis=None, keepdims=False):
    x = stacked(x)
    return apply(P_SUM, (x,), (norm_axes(axis, ndim_of(x), "sum"), bool(keepdims)))


def mean(x, axis=None, keepdims=False):
    x = stacked(x)
    axes = norm_axes(axis, ndim_of(x), "mean")
    shape = shape_of(x)
    count = 1
    for a in axes:
        count *= shape[a]
    if count == 0:
        raise ValueError(f"mean: empty reduction over axes {axes} of shape {shape}")
    s = apply(P_SUM, (x,), (axes, bool(keepdims)))
    return multiply(s, 1.0 / count)


def max(x, axis=None, keepdims=False):
    x = stacked(x)
    return apply(P_AMAX, (x,), (norm_axes(axis, ndim_of(x), "max"), bool(keepdims)))


def min(x, axis=None, keepdims=False):
    x = stacked(x)
    return apply(P_AMIN, (x,), (norm_axes(axis, ndim_of(x), "min"), bool(keepdims)))


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over axis, computed stably."""
    x = stacked(x)
    return apply(P_LSE, (x,), (norm_axes(axis, ndim_of(x), "logsumexp"), bool(keepdims)))


def softmax(x, axis=-1):
    x = stacked(x)
    return apply(P_SOFTMAX, (x,), norm_axes(axis, ndim_of(x), "softmax"))


def log_softmax(x, axis=-1):
    x = stacked(x)
    return apply(P_LOG_SOFTMAX, (x,), norm_axes(axis, ndim_of(x), "log_softmax"))




# ==============================================================================================
# Helpers for the rules

cpdef sum_(x, axes, keepdims):
    return call(P_SUM, (x,), (norm_axes(axes, ndim_of(x), "sum"), bool(keepdims)))
