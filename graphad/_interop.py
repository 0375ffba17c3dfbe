"""NumPy's protocols on Tensors (__array_ufunc__, __array_function__).

A NumPy ufunc or function called on a Tensor runs graphad's differentiable version and returns a
Tensor in the graph (`np.exp(t)`, `np.dot(w, t)`, `np_array + t`), or raises TypeError naming the
function and the remedy.  Before, NumPy converted the Tensor to a constant array and the
derivative was silently 0.  Functions whose result carries no derivative (shapes, indices,
booleans, shape-only constructors such as zeros_like) run on the values.
"""
import importlib

import numpy as np

from graphad import _ops as O
from graphad._core import Tensor, as_tensor, derived


def _not_differentiable(name):
    return TypeError(f"{name} is not differentiable by graphad yet: use a ga.* function, or "
                     f".detach() the Tensor for a constant")


def _values(x):
    """x with every Tensor (also inside lists and tuples) replaced by its value."""
    if isinstance(x, Tensor):
        return x.data
    if type(x) is list or type(x) is tuple:
        return type(x)(_values(e) for e in x)
    return x


def _np_name(func):
    mod = getattr(func, "__module__", None) or "numpy"
    mod = "np" + mod[len("numpy"):] if mod.startswith("numpy") else mod
    return f"{mod}.{func.__name__}"


def _no_out(name, out):
    if out is not None:
        raise TypeError(f"{name}: out= is not supported on Tensors (graphad never writes into "
                        f"arrays, and an in-place `array += tensor` is such a write); use the "
                        f"returned Tensor: `a = a + t`")


def _no_kwargs(name, kwargs, allowed=()):
    for k, v in kwargs.items():
        if k not in allowed and v is not None:
            raise TypeError(f"{name}: the keyword {k}= is not supported on Tensors")


# ---------------------------------------------------------------------------------------------
# ufuncs

_UFUNCS = {
    np.add: O.add, np.subtract: O.subtract, np.multiply: O.multiply, np.divide: O.divide,
    np.power: O.power, np.maximum: O.maximum, np.minimum: O.minimum, np.matmul: O.matmul,
    np.negative: O.negative, np.positive: lambda x: x, np.exp: O.exp, np.log: O.log,
    np.log1p: O.log1p, np.sin: O.sin, np.cos: O.cos, np.tan: O.tan, np.tanh: O.tanh,
    np.sinh: O.sinh, np.cosh: O.cosh, np.sqrt: O.sqrt, np.square: O.square,
    np.absolute: O.abs, np.sign: O.sign, np.floor: O.floor, np.ceil: O.ceil,
    np.trunc: O.trunc, np.rint: O.rint,
}
# the ufuncs whose graphad function has NumPy's name
_UFUNCS.update({getattr(np, name): getattr(O, name) for name in (
    "reciprocal", "exp2", "log2", "log10", "expm1", "arcsin", "arccos", "arctan", "arcsinh",
    "arccosh", "arctanh", "arctan2", "hypot", "logaddexp", "logaddexp2", "fmax", "fmin",
    "remainder", "fmod")})
# comparisons and predicates: no derivative; a constant boolean Tensor, as the operators give
_PREDICATES = {np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
               np.logical_and, np.logical_or, np.logical_xor, np.logical_not, np.isfinite,
               np.isinf, np.isnan, np.signbit}
_REDUCE = {np.add: O.sum, np.maximum: O.max, np.minimum: O.min}


def array_ufunc(ufunc, method, inputs, kwargs):
    name = f"np.{ufunc.__name__}"
    out = kwargs.pop("out", None)
    if out is not None:
        _no_out(name if method == "__call__" else f"{name}.{method}", out)
    if method == "__call__":
        if ufunc in _PREDICATES:
            _no_kwargs(name, kwargs)
            return derived(ufunc(*[_values(x) for x in inputs]), tuple(inputs), ufunc)
        fn = _UFUNCS.get(ufunc)
        if fn is None:
            raise _not_differentiable(name)
        _no_kwargs(name, kwargs)
        return fn(*inputs)
    if method == "reduce" and ufunc in _REDUCE:
        # NumPy's reduce: axis=0 by default, None for all axes
        _no_kwargs(f"{name}.reduce", kwargs, ("axis", "keepdims", "dtype"))
        if kwargs.get("dtype") is not None:
            raise TypeError(f"{name}.reduce: dtype= is not supported on Tensors; use .astype")
        return _REDUCE[ufunc](inputs[0], kwargs.get("axis", 0), bool(kwargs.get("keepdims")))
    if method == "outer" and ufunc in _UFUNCS and ufunc.nin == 2 and ufunc is not np.matmul:
        _no_kwargs(f"{name}.outer", kwargs)
        a, b = O._stacked(inputs[0]), O._stacked(inputs[1])
        sa, nb = np.shape(_values(a)), np.ndim(_values(b))
        return _UFUNCS[ufunc](O.reshape(a, tuple(sa) + (1,) * nb), b)
    raise _not_differentiable(f"{name}.{method}")


# ---------------------------------------------------------------------------------------------
# functions

def _t(x):
    """x as a Tensor: stacked when a list or tuple holds Tensors, else a constant over x."""
    x = O._stacked(x)
    return x if isinstance(x, Tensor) else as_tensor(x)


def _reshape(a, shape=None, order="C", *, newshape=None, copy=None):
    if order != "C":
        raise ValueError(f"np.reshape: only order='C' is supported on Tensors, got {order!r}")
    return O.reshape(a, shape if shape is not None else newshape)


def _ravel(a, order="C"):
    return _reshape(a, (-1,), order)


def _concatenate(arrays, axis=0, out=None, **kw):
    _no_out("np.concatenate", out)
    _no_kwargs("np.concatenate", kw, ("casting",))
    if axis is None:
        return O.concatenate([O.reshape(a, (-1,)) for a in arrays], 0)
    return O.concatenate(arrays, axis)


def _stack(arrays, axis=0, out=None, **kw):
    _no_out("np.stack", out)
    _no_kwargs("np.stack", kw, ("casting",))
    return O.stack(arrays, axis)


def _where(condition, x=None, y=None):
    if x is None and y is None:           # the indices of the nonzero entries: no derivative
        return np.where(_values(condition))
    return O.where(condition, x, y)


def _clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None, **kw):  # noqa: A002
    _no_out("np.clip", out)
    _no_kwargs("np.clip", kw)
    return O.clip(a, a_min if a_min is not None else min, a_max if a_max is not None else max)


def _dot(a, b, out=None):
    _no_out("np.dot", out)
    return O.dot(a, b)


def _outer(a, b, out=None):
    _no_out("np.outer", out)
    return O.outer(a, b)


def _einsum(*operands, out=None, optimize=False, **kw):
    _no_out("np.einsum", out)
    _no_kwargs("np.einsum", kw)
    if not isinstance(operands[0], str):
        raise TypeError("np.einsum: only the subscripts-string form is supported on Tensors")
    return O.einsum(*operands)


def _trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return _t(a).trace(offset, axis1, axis2, dtype, out)


def _broadcast_to(array, shape, subok=False):
    return O.broadcast_to(array, shape)


_FUNCS = {
    np.sum: lambda a, *args, **kw: _t(a).sum(*args, **kw),
    np.mean: lambda a, *args, **kw: _t(a).mean(*args, **kw),
    np.max: lambda a, *args, **kw: _t(a).max(*args, **kw),
    np.amax: lambda a, *args, **kw: _t(a).max(*args, **kw),
    np.min: lambda a, *args, **kw: _t(a).min(*args, **kw),
    np.amin: lambda a, *args, **kw: _t(a).min(*args, **kw),
    np.reshape: _reshape, np.ravel: _ravel, np.transpose: O.transpose,
    np.swapaxes: O.swapaxes, np.expand_dims: O.expand_dims, np.squeeze: O.squeeze,
    np.broadcast_to: _broadcast_to, np.concatenate: _concatenate, np.stack: _stack,
    np.where: _where, np.clip: _clip, np.dot: _dot, np.outer: _outer, np.einsum: _einsum,
    np.trace: _trace, np.diagonal: O.diagonal, np.diag: O.diag, np.tril: O.tril,
    np.triu: O.triu, np.kron: O.kron,
}
# the functions whose graphad version has NumPy's name and signature (graphad/_array_api.py,
# round and fix); np.around is np.round's alias
_FUNCS.update({getattr(np, name): getattr(O, name) for name in (
    "sinc", "prod", "var", "std", "cumsum", "cumprod", "vstack", "hstack", "column_stack",
    "dstack", "split", "array_split", "hsplit", "vsplit", "dsplit", "atleast_1d", "atleast_2d",
    "atleast_3d", "tile", "repeat", "roll", "moveaxis", "flip", "fliplr", "flipud", "rot90",
    "pad", "tensordot", "inner", "cross", "diff", "sort", "append", "take_along_axis",
    "round", "around", "fix")})
# results without a derivative: metadata, indices, booleans, arrays made from a shape alone
_ON_VALUES = {
    np.shape, np.ndim, np.size, np.result_type, np.iscomplexobj, np.isrealobj, np.can_cast,
    np.min_scalar_type, np.argmax, np.argmin, np.argsort, np.nonzero, np.flatnonzero,
    np.argwhere, np.count_nonzero, np.allclose, np.isclose, np.array_equal, np.array_equiv,
    np.any, np.all, np.zeros_like, np.ones_like, np.empty_like, np.searchsorted,
}


def _linalg(name):
    """graphad.linalg's function `name`, or None; looked up at call time (the module may be
    added later, and may not have every name)."""
    try:
        mod = importlib.import_module("graphad.linalg")
    except ModuleNotFoundError as e:
        if e.name != "graphad.linalg":
            raise
        return None
    return getattr(mod, name, None)


def array_function(func, types, args, kwargs):
    fn = _FUNCS.get(func)
    if fn is not None:
        return fn(*args, **kwargs)
    if func in _ON_VALUES:
        return func(*_values(args), **{k: _values(v) for k, v in kwargs.items()})
    if getattr(func, "__module__", None) == "numpy.linalg":
        fn = _linalg(func.__name__)
        if fn is not None:
            return fn(*args, **kwargs)
    raise _not_differentiable(_np_name(func))
