"""The rest of NumPy's array API, with NumPy's signatures, defaults and semantics: statistics
(prod, var, std, cumsum, cumprod), stacking and splitting, tiling and reordering (tile, repeat,
roll, moveaxis, flip, rot90, pad), products (tensordot, inner, cross), diff, sort, append,
sinc.  Nearly all are compositions of the primitives of the topic modules, so that their
derivatives (both modes, every order) come from those rules; the primitives declared here are
cumsum (linear: its transpose is the reversed cumsum) and take_along_axis with its transpose
(sort's gather by an index computed from the values, so that ga.compile recomputes the index on
each replay rather than freezing the traced permutation).  Conventions: graphad/_prims.pyx.

out= is accepted as None, as NumPy's functions take it; any other value raises TypeError
(graphad never writes into arrays it is given).  Complex input raises TypeError."""
import functools
import math
import warnings

import numpy as np

from graphad import _elementwise as E
from graphad import _kernels as K
from graphad import _products as Pr
from graphad import _reductions as R
from graphad import _shape as S
from graphad._core import Tensor, apply, arg, call
from graphad._prims import axis_index, defprim, norm_axes, stacked

__all__ = ["sinc", "prod", "var", "std", "cumsum", "cumprod", "vstack", "hstack",
           "column_stack", "dstack", "split", "array_split", "hsplit", "vsplit", "dsplit",
           "atleast_1d", "atleast_2d", "atleast_3d", "tile", "repeat", "roll", "moveaxis",
           "flip", "fliplr", "flipud", "rot90", "pad", "tensordot", "inner", "cross", "diff",
           "sort", "append", "take_along_axis"]

_NOVALUE = np._NoValue


def _val(x):
    return x.data if type(x) is Tensor else x


def _shape(x):
    v = _val(x)
    return v.shape if isinstance(v, np.ndarray) else np.shape(v)


def _ndim(x):
    return len(_shape(x))


def _dtype(x):
    """The float dtype a result computed from x has (float64 for integers, as NumPy's math)."""
    return np.result_type(_val(x), 1.0)


def _arr(x, name):
    """x as an operand: lists of Tensors stacked; complex rejected."""
    t = type(x)
    if t is Tensor or t is np.ndarray:          # the usual case, without np.iscomplexobj
        if (x.data if t is Tensor else x).dtype.kind == "c":
            raise TypeError(f"{name}: complex input is not supported")
        return x
    x = stacked(x)
    if np.iscomplexobj(_val(x)):
        raise TypeError(f"{name}: complex input is not supported")
    return x


def _no_out(name, out):
    if out is not None:
        raise TypeError(f"{name}: out= is not supported (graphad never writes into arrays it "
                        f"is given); use the returned value")


def _no_kw(name, **kw):
    for k, v in kw.items():
        if v is not _NOVALUE and v is not None:
            raise TypeError(f"{name}: the keyword {k}= is not supported")


def _cast(x, dtype):
    return x if dtype is None else E.astype(x, dtype)


def _slice_axis(x, ax, sl):
    """x[..., sl, ...] with sl on axis ax (negative or not)."""
    nd = _ndim(x)
    return S.getitem(x, (slice(None),) * (ax % nd) + (sl,))


# ==============================================================================================
# Elementwise

def sinc(x):
    """NumPy's sinc: sin(pi x) / (pi x), 1 at 0.  Near 0 (|x| < 0.01) it is its Taylor
    polynomial to degree 6 (error below 1e-17 relative), so that every derivative is right at
    and around 0 too (sinc'(0) = 0, sinc''(0) = -pi^2/3), not a 0/0."""
    x = _arr(x, "sinc")
    small = np.abs(_val(x)) < 0.01
    if not np.any(small):
        px = E.multiply(x, np.pi)
        return E.divide(E.sin(px), px)
    safe = E.where(small, 1.0, x)                  # the quotient branch never sees 0
    px = E.multiply(safe, np.pi)
    z = E.square(E.multiply(E.where(small, x, 0.0), np.pi))       # (pi x)^2
    # 1 - z/3! + z^2/5! - z^3/7!
    taylor = E.add(1.0, E.multiply(z, E.add(-1.0 / 6, E.multiply(
        z, E.add(1.0 / 120, E.multiply(z, -1.0 / 5040))))))
    return E.where(small, taylor, E.divide(E.sin(px), px))


# ==============================================================================================
# Scans and statistics

# cumsum along a (negative) axis: d = cumsum(dx); its transpose is the cumsum run backwards
# (g_x[i] = sum_{j >= i} g[j]), which is this primitive with `reverse` flipped
def _cumsum_fwd(params, x):
    axis, reverse = params
    if reverse:
        return np.flip(np.cumsum(np.flip(x, axis), axis), axis)
    if type(x) is np.ndarray:       # the method: np.cumsum's dispatch costs ~0.5 us
        return x.cumsum(axis)
    return np.cumsum(x, axis)

P_CUMSUM = defprim("cumsum", _cumsum_fwd,
                   lambda n, g: (call(P_CUMSUM, (g,), (n.params[0], not n.params[1])),),
                   lambda n, t: call(P_CUMSUM, (t[0],), n.params))


def _flat_axis(x, axis, name):
    """(x, negative axis): raveled for axis=None, as NumPy's scans do."""
    if axis is None:
        return S.reshape(x, (-1,)), -1
    nd = _ndim(x)
    if nd == 0:
        raise np.exceptions.AxisError(axis, 0, name)
    return x, axis_index(axis, nd, name) - nd


def cumsum(a, axis=None, dtype=None, out=None):
    """NumPy's cumsum: running sums along axis (the raveled array for axis=None)."""
    if out is not None:
        _no_out("cumsum", out)
    x = _arr(a, "cumsum")
    if dtype is not None:
        x = E.astype(x, dtype)
    if type(axis) is int and type(x) is Tensor and -x.ndim <= axis < x.ndim:
        return apply(P_CUMSUM, (x,), (axis % x.ndim - x.ndim, False))
    x, ax = _flat_axis(x, axis, "cumsum")
    return apply(P_CUMSUM, (x,), (ax, False))


def cumprod(a, axis=None, dtype=None, out=None):
    """NumPy's cumprod: running products along axis (the raveled array for axis=None).  Built
    as a Hillis-Steele scan of multiplications (log2 n steps), so that its derivatives are exact
    where entries are 0 (no division by x)."""
    _no_out("cumprod", out)
    x, ax = _flat_axis(_cast(_arr(a, "cumprod"), dtype), axis, "cumprod")
    n = _shape(x)[ax]
    y, d = x, 1
    while d < n:
        ones_shape = list(_shape(y))
        ones_shape[ax] = d
        head = np.ones(ones_shape, _val(y).dtype)
        y = E.multiply(y, S.concatenate([head, _slice_axis(y, ax, slice(0, n - d))], axis=ax))
        d *= 2
    return y


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NOVALUE,
         where=_NOVALUE):
    """NumPy's prod, as a tree of multiplications (exact derivatives where entries are 0: the
    derivative in one entry is the product of the others); the empty product is 1."""
    _no_out("prod", out)
    _no_kw("prod", where=where)
    x = _cast(_arr(a, "prod"), dtype)
    nd = _ndim(x)
    axes = [k % nd for k in norm_axes(axis, nd, "prod")] if nd else []
    shape = _shape(x)
    kept = [k for k in range(nd) if k not in axes]
    if [*kept, *axes] != list(range(nd)):
        x = S.transpose(x, kept + axes)
    size = int(math.prod([shape[k] for k in axes]))
    y = S.reshape(x, tuple(shape[k] for k in kept) + (size,))
    if size == 0:
        y = E.add(E.multiply(R.sum(y, axis=-1, keepdims=True), 0.0), 1.0)
    while _shape(y)[-1] > 1:
        m = _shape(y)[-1]
        pairs = E.multiply(y[..., 0:m - 1:2], y[..., 1:m:2])
        y = S.concatenate([pairs, y[..., m - 1:]], axis=-1) if m % 2 else pairs
    out_shape = tuple(1 if k in axes else shape[k] for k in range(nd)) if keepdims \
        else tuple(shape[k] for k in kept)
    y = S.reshape(y, out_shape)
    if initial is not _NOVALUE:
        y = E.multiply(y, initial)
    return y


# var over (negative) axes with dof = N - ddof, as one primitive:  v = sum((x - m)^2) / dof,
# m = mean(x) over the axes.  dv = 2/dof sum((x - m) (dx - dm)) = 2/dof sum((x - m) dx), since
# sum(x - m) = 0 over the axes: the VJP is gx = 2/dof (x - m) g (g broadcast back over the
# reduced axes), the JVP 2/dof sum((x - m) dx).  The forward saves m; when the rules are
# recorded (second order) they recompute x - m from x, so that m's dependence on x is
# differentiated too (d(x - m) = dx - dm).
def _var_scale(count, ddof):
    """1/dof, inf or NaN where dof = count - ddof <= 0 (NumPy's result then)."""
    dof = count - ddof
    if dof > 0:
        return 1.0 / dof
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(1.0) / np.float64(max(dof, 0)))


_add_reduce = np.add.reduce
_MOMENTS_MAX = 1 << 14      # beyond this NumPy's pairwise sums are faster and more accurate


def _var_fwd(params, x):
    axes, keepdims, count, ddof = params
    if type(x) is np.ndarray and axes and axes[-1] - axes[0] == len(axes) - 1 \
            and x.size <= _MOMENTS_MAX:
        # one C call for a small array reduced over consecutive axes (x as (outer, n, inner))
        shape = x.shape
        first, last = len(shape) + axes[0], len(shape) + axes[-1] + 1
        if not x.flags.c_contiguous:     # the same numbers on every layout (a small copy)
            x = np.ascontiguousarray(x)
        res = K.moments(x, math.prod(shape[:first]), count, math.prod(shape[last:]),
                        _var_scale(count, ddof))
        if res is not None:
            v, m = res
            kept = shape[:first] + (1,) * len(axes) + shape[last:]
            return v.reshape(kept if keepdims else shape[:first] + shape[last:]), \
                m.reshape(kept)
    x = np.asarray(x)
    m = _add_reduce(x, axis=axes, keepdims=True)
    m = m * (1.0 / count)
    d = x - m
    d = np.multiply(d, d, out=d) if type(d) is np.ndarray else d * d
    s = _add_reduce(d, axis=axes, keepdims=keepdims)
    return np.asarray(s * _var_scale(count, ddof)), m


def _var_centered(n):
    """x - mean(x) for the rules: from the saved mean, or recomputed when recording."""
    x = arg(n, 0)
    axes, _, count, _ = n.params
    if type(x) is Tensor:
        return E.sub_(x, E.mul_(R.sum_(x, axes, True), 1.0 / count))
    return x - n.saved


def _var_vjp(n, g):
    axes, keepdims, count, ddof = n.params
    if not keepdims:    # g (lead + the output's shape) broadcast back over the reduced axes
        nl = _ndim(g) - n.data.ndim
        x_shape = _shape(arg(n, 0))
        nd = len(x_shape)
        g = S.reshape_(g, tuple(_shape(g)[:nl]) + tuple(
            1 if i - nd in axes else d for i, d in enumerate(x_shape)))
    return (E.gmul_(g, E.mul_(_var_centered(n), 2.0 * _var_scale(count, ddof))),)


def _var_jvp(n, t):
    axes, keepdims, count, ddof = n.params
    return E.mul_(R.sum_(E.gmul_(t[0], _var_centered(n)), axes, keepdims),
                  2.0 * _var_scale(count, ddof))


P_VAR = defprim("var", _var_fwd, _var_vjp, _var_jvp, saves=True)


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NOVALUE,
        mean=_NOVALUE, correction=_NOVALUE):
    """NumPy's var: mean(|x - mean(x)|^2) * N / (N - ddof) over axis (correction= is ddof's
    Array-API name; mean= a precomputed mean with keepdims=True).  N - ddof <= 0 gives inf or
    NaN with a RuntimeWarning, as NumPy."""
    if out is not None:
        _no_out("var", out)
    if where is not _NOVALUE and where is not None:
        _no_kw("var", where=where)
    if correction is not _NOVALUE:
        if ddof != 0:
            raise ValueError("var: ddof and correction can't be provided simultaneously.")
        ddof = correction
    x = _arr(a, "var")
    if dtype is not None:
        x = E.astype(x, dtype)
    shape = _shape(x)
    axes = norm_axes(axis, len(shape), "var")
    count = 1
    for k in axes:
        count *= shape[k]
    if count > 0 and mean is _NOVALUE:
        if count - ddof <= 0:
            warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
        if not isinstance(ddof, (int, float)):
            ddof = float(ddof)
        return apply(P_VAR, (x,), (axes, bool(keepdims), count, ddof))
    if count == 0:
        m = E.multiply(R.sum(x, axis=axes, keepdims=True), np.nan)
    elif mean is not _NOVALUE:
        m = mean
    else:
        m = E.multiply(R.sum(x, axis=axes, keepdims=True), 1.0 / count)
    s = R.sum(E.square(E.subtract(x, m)), axis=axes, keepdims=keepdims)
    dof = count - ddof
    if dof <= 0:
        warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.float64(1.0) / np.float64(max(dof, 0))
        return E.multiply(s, float(scale))
    return E.multiply(s, 1.0 / dof)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NOVALUE,
        mean=_NOVALUE, correction=_NOVALUE):
    """NumPy's std: sqrt(var); its derivative is infinite where the variance is 0 (a constant
    slice), as the square root's is."""
    return E.sqrt(var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean,
                      correction=correction))


# ==============================================================================================
# Stacking and splitting

def atleast_1d(*arys):
    res = [S.reshape(a, (1,)) if _ndim(a) == 0 else a
           for a in (_arr(a, "atleast_1d") for a in arys)]
    return res[0] if len(res) == 1 else tuple(res)


def atleast_2d(*arys):
    res = []
    for a in (_arr(a, "atleast_2d") for a in arys):
        nd = _ndim(a)
        res.append(S.reshape(a, (1,) * (2 - nd) + _shape(a)) if nd < 2 else a)
    return res[0] if len(res) == 1 else tuple(res)


def atleast_3d(*arys):
    """NumPy's atleast_3d: a scalar -> (1, 1, 1), (N,) -> (1, N, 1), (M, N) -> (M, N, 1)."""
    res = []
    for a in (_arr(a, "atleast_3d") for a in arys):
        s = _shape(a)
        if len(s) == 0:
            a = S.reshape(a, (1, 1, 1))
        elif len(s) == 1:
            a = S.reshape(a, (1, s[0], 1))
        elif len(s) == 2:
            a = S.reshape(a, s + (1,))
        res.append(a)
    return res[0] if len(res) == 1 else tuple(res)


def _seq(tup, name):
    if isinstance(tup, (Tensor, np.ndarray)) or not isinstance(tup, (list, tuple)):
        raise TypeError(f"{name}: arrays to stack must be passed as a sequence (list or tuple)")
    return [stacked(a) for a in tup]


def vstack(tup, *, dtype=None, casting="same_kind"):
    return _cast(S.concatenate([atleast_2d(a) for a in _seq(tup, "vstack")], axis=0), dtype)


def hstack(tup, *, dtype=None, casting="same_kind"):
    arrs = [atleast_1d(a) for a in _seq(tup, "hstack")]
    axis = 0 if arrs and _ndim(arrs[0]) == 1 else 1
    return _cast(S.concatenate(arrs, axis=axis), dtype)


def dstack(tup):
    return S.concatenate([atleast_3d(a) for a in _seq(tup, "dstack")], axis=2)


def column_stack(tup):
    arrs = []
    for a in _seq(tup, "column_stack"):
        if _ndim(a) < 2:
            a = S.reshape(a, (-1, 1))
        arrs.append(a)
    return S.concatenate(arrs, axis=1)


def array_split(ary, indices_or_sections, axis=0):
    """NumPy's array_split: pieces along axis at the given indices, or into N pieces whose sizes
    differ by at most one (the first ones larger)."""
    x = stacked(ary)
    nd = _ndim(x)
    ax = axis_index(axis, nd, "array_split")
    n = _shape(x)[ax]
    if np.ndim(indices_or_sections) == 0:
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError("array_split: number sections must be larger than 0.")
        q, r = divmod(n, k)
        bounds = np.cumsum([0] + r * [q + 1] + (k - r) * [q]).tolist()
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
    return [_slice_axis(x, ax, slice(bounds[i], bounds[i + 1]))
            for i in range(len(bounds) - 1)]


def split(ary, indices_or_sections, axis=0):
    """NumPy's split: array_split, except that N sections must divide the axis equally."""
    if np.ndim(indices_or_sections) == 0:
        n = _shape(ary)[axis_index(axis, _ndim(stacked(ary)), "split")]
        if n % int(indices_or_sections):
            raise ValueError("array split does not result in an equal division")
    return array_split(ary, indices_or_sections, axis)


def hsplit(ary, indices_or_sections):
    nd = _ndim(stacked(ary))
    if nd == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions")
    return split(ary, indices_or_sections, 1 if nd > 1 else 0)


def vsplit(ary, indices_or_sections):
    if _ndim(stacked(ary)) < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return split(ary, indices_or_sections, 0)


def dsplit(ary, indices_or_sections):
    if _ndim(stacked(ary)) < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return split(ary, indices_or_sections, 2)


def append(arr, values, axis=None):
    """NumPy's append: both raveled and joined for axis=None, else concatenated along axis."""
    arr, values = stacked(arr), stacked(values)
    if axis is None:
        return S.concatenate([S.reshape(arr, (-1,)), S.reshape(values, (-1,))], axis=0)
    return S.concatenate([arr, values], axis=axis)


# ==============================================================================================
# Tiling and reordering (all linear: gathers, broadcasts and reshapes)

def tile(A, reps):
    """NumPy's tile: A repeated reps[i] times along axis i (reps padded with 1s in front, or A's
    shape, whichever is shorter), by one broadcast between two reshapes."""
    x = stacked(A)
    reps = (int(reps),) if np.ndim(reps) == 0 else tuple(int(r) for r in reps)
    d = max(_ndim(x), len(reps))
    shape = (1,) * (d - _ndim(x)) + _shape(x)
    reps = (1,) * (d - len(reps)) + reps
    if all(r == 1 for r in reps):
        return S.reshape(x, shape)
    inter = sum(((1, s) for s in shape), ())
    wide = sum(((r, s) for r, s in zip(reps, shape)), ())
    y = S.broadcast_to(S.reshape(x, inter), wide)
    return S.reshape(y, tuple(r * s for r, s in zip(reps, shape)))


def repeat(a, repeats, axis=None):
    """NumPy's repeat: each entry repeated along axis (the raveled array for axis=None)."""
    x, ax = _flat_axis(stacked(a), axis, "repeat")
    s = _shape(x)
    n = s[ax]
    if np.ndim(repeats) == 0 or np.size(repeats) == 1:
        r = int(np.reshape(repeats, -1)[0]) if np.ndim(repeats) else int(repeats)
        if r < 0:
            raise ValueError("repeat: repeats may not contain negative values")
        k = ax % len(s)
        y = S.broadcast_to(S.expand_dims(x, k + 1), s[:k + 1] + (r,) + s[k + 1:])
        return S.reshape(y, s[:k] + (n * r,) + s[k + 1:])
    try:
        idx = np.repeat(np.arange(n), repeats)      # NumPy checks the lengths and signs
    except ValueError as e:
        raise ValueError(f"repeat: {e} (an axis of length {n}, {np.size(repeats)} "
                         f"repeats)") from None
    return _slice_axis(x, ax, idx)


def roll(a, shift, axis=None):
    """NumPy's roll: entries shifted along axis (or axes), wrapping around (the raveled array
    for axis=None), as two slices joined."""
    x = stacked(a)
    if axis is None:
        return S.reshape(roll(S.reshape(x, (-1,)), shift, 0), _shape(x))
    nd = _ndim(x)
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    shifts = (shift,) if np.ndim(shift) == 0 else tuple(shift)
    try:
        pairs = np.broadcast(np.asarray(shifts), np.asarray(axes))
    except ValueError:
        raise ValueError("roll: 'shift' and 'axis' should be scalars or 1D sequences") from None
    total = {}
    for sh, ax in pairs:
        k = axis_index(int(ax), nd, "roll")
        total[k] = total.get(k, 0) + int(sh)
    for k, sh in total.items():
        n = _shape(x)[k]
        if n == 0 or sh % n == 0:
            continue
        m = n - sh % n
        x = S.concatenate([_slice_axis(x, k, slice(m, None)), _slice_axis(x, k, slice(0, m))],
                          axis=k)
    return x


def moveaxis(a, source, destination):
    x = stacked(a)
    nd = _ndim(x)
    src = [axis_index(s, nd, "moveaxis") for s in np.atleast_1d(source).tolist()]
    dst = [axis_index(d, nd, "moveaxis") for d in np.atleast_1d(destination).tolist()]
    if len(src) != len(dst):
        raise ValueError("moveaxis: `source` and `destination` arguments must have the same "
                         "number of elements")
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError("moveaxis: repeated axis")
    order = [k for k in range(nd) if k not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return x if order == list(range(nd)) else S.transpose(x, order)


def flip(m, axis=None):
    x = stacked(m)
    nd = _ndim(x)
    axes = [k % nd for k in norm_axes(axis, nd, "flip")]      # AxisError for an axis of a 0-d
    return S.getitem(x, tuple(slice(None, None, -1) if k in axes else slice(None)
                              for k in range(nd)))


def fliplr(m):
    if _ndim(stacked(m)) < 2:
        raise ValueError("fliplr: input must be >= 2-d.")
    return flip(m, 1)


def flipud(m):
    if _ndim(stacked(m)) < 1:
        raise ValueError("flipud: input must be >= 1-d.")
    return flip(m, 0)


def rot90(m, k=1, axes=(0, 1)):
    """NumPy's rot90: rotated by 90 degrees k times in the plane of axes, from the first axis
    toward the second."""
    x = stacked(m)
    nd = _ndim(x)
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError("rot90: len(axes) must be 2.")
    a0, a1 = axis_index(axes[0], nd, "rot90"), axis_index(axes[1], nd, "rot90")
    if a0 == a1:
        raise ValueError("rot90: axes must be different.")
    k = int(k) % 4
    if k == 0:
        return x
    if k == 2:
        return flip(flip(x, a0), a1)
    perm = list(range(nd))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return S.transpose(flip(x, a1), perm)
    return flip(S.transpose(x, perm), a1)


_PAD_BY_INDEX = ("edge", "reflect", "symmetric", "wrap")


def pad(array, pad_width, mode="constant", **kwargs):
    """NumPy's pad for modes 'constant' (constant_values=), 'edge', 'reflect', 'symmetric' and
    'wrap' (reflect_type= as NumPy's).  'constant' scatters x into the padded shape (its
    transpose is a slice); the others are gathers along each axis by the source indices that
    np.pad itself gives for an arange, so they follow NumPy's rules exactly."""
    x = _arr(array, "pad")
    nd = _ndim(x)
    try:
        pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (nd, 2))
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit {nd} dimensions") from None
    if (pw < 0).any():
        raise ValueError("pad: index can't contain negative values")
    if mode == "constant":
        cv = kwargs.pop("constant_values", 0)
        if kwargs:
            raise ValueError(f"pad: unsupported keyword arguments for mode 'constant': "
                             f"{set(kwargs)}")
        s = _shape(x)
        new = tuple(int(s[k] + pw[k, 0] + pw[k, 1]) for k in range(nd))
        idx = tuple(slice(int(pw[k, 0]), int(pw[k, 0] + s[k])) for k in range(nd))
        y = apply(S.P_SCATTER, (x,), (idx, new, 0)) if pw.any() else x
        dt = _val(x).dtype
        if pw.any() and np.any(np.asarray(cv) != 0):
            y = E.add(y, np.pad(np.zeros(s, dt), pw, mode="constant", constant_values=cv))
        return y
    if mode not in _PAD_BY_INDEX:
        raise ValueError(f"pad: mode {mode!r} is not supported on Tensors (supported: "
                         f"'constant', {', '.join(repr(m) for m in _PAD_BY_INDEX)})")
    for k in range(nd):
        if pw[k].any():
            try:
                src = np.pad(np.arange(_shape(x)[k]), pw[k], mode=mode, **kwargs)
            except ValueError as e:
                raise ValueError(f"pad: {e}".replace("axis 0", f"axis {k}")) from None
            x = _slice_axis(x, k, src)
    return x


# ==============================================================================================
# Products

def _as_matrix(x, shape):
    """x reshaped to a matrix: a node for a Tensor, a view of a constant."""
    if _shape(x) == shape:
        return x
    return S.reshape(x, shape) if type(x) is Tensor else np.reshape(x, shape)


def tensordot(a, b, axes=2):
    """NumPy's tensordot: sum over the last `axes` axes of a and the first of b (or over the
    listed pairs), as one matrix product between reshapes (and transposes where the summed axes
    are not already at a's end and b's front)."""
    a, b = _arr(a, "tensordot"), _arr(b, "tensordot")
    sa, sb = _shape(a), _shape(b)
    na, nb = len(sa), len(sb)
    if type(axes) is int and 0 <= axes <= na and axes <= nb and sa[na - axes:] == sb[:axes]:
        # the usual call: a's last `axes` axes against b's first, no transposes
        free_a, free_b = sa[:na - axes], sb[axes:]
        k = math.prod(sb[:axes])
        c = Pr.matmul(_as_matrix(a, (math.prod(free_a), k)),
                      _as_matrix(b, (k, math.prod(free_b))))
        out_shape = free_a + free_b
        return c if _shape(c) == out_shape else S.reshape(c, out_shape)
    if np.ndim(axes) == 0:
        k = int(axes)
        if k < 0 or k > na or k > nb:
            raise ValueError(f"tensordot: axes={k} does not fit shapes {sa} and {sb}")
        ax_a, ax_b = list(range(na - k, na)), list(range(k))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if np.ndim(ax_a) == 0 else list(ax_a)
        ax_b = [ax_b] if np.ndim(ax_b) == 0 else list(ax_b)
        if len(ax_a) != len(ax_b):
            raise ValueError("tensordot: shape-mismatch for sum")
        ax_a = [axis_index(i, na, "tensordot") for i in ax_a]
        ax_b = [axis_index(i, nb, "tensordot") for i in ax_b]
    for i, j in zip(ax_a, ax_b):
        if sa[i] != sb[j]:
            raise ValueError(f"tensordot: shape-mismatch for sum: shapes {sa} and {sb} differ "
                             f"on axes {ax_a} and {ax_b}")
    free_a = [i for i in range(na) if i not in ax_a]
    free_b = [j for j in range(nb) if j not in ax_b]
    pa, pb = free_a + ax_a, ax_b + free_b
    if pa != list(range(na)):
        a = S.transpose(a, pa)
    if pb != list(range(nb)):
        b = S.transpose(b, pb)
    K = int(math.prod([sa[i] for i in ax_a]))
    out_shape = tuple(sa[i] for i in free_a) + tuple(sb[j] for j in free_b)
    M, N = int(math.prod([sa[i] for i in free_a])), int(math.prod([sb[j] for j in free_b]))
    a2 = a if _shape(a) == (M, K) else S.reshape(a, (M, K))
    b2 = b if _shape(b) == (K, N) else S.reshape(b, (K, N))
    c = Pr.matmul(a2, b2)
    return c if _shape(c) == out_shape else S.reshape(c, out_shape)


def inner(a, b):
    """NumPy's inner: the sum over the last axes of a and b (a product with a scalar)."""
    a, b = _arr(a, "inner"), _arr(b, "inner")
    if _ndim(a) == 0 or _ndim(b) == 0:
        return E.multiply(a, b)
    if _shape(a)[-1] != _shape(b)[-1]:
        raise ValueError(f"inner: shapes {_shape(a)} and {_shape(b)} are not aligned on their "
                         f"last axes")
    return tensordot(a, b, ([-1], [-1]))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """NumPy's cross product of 3-vectors (2-vectors are taken as having z = 0; both 2-D gives
    the z component alone), broadcast over the other axes."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = moveaxis(_arr(a, "cross"), axisa, -1), moveaxis(_arr(b, "cross"), axisb, -1)
    da, db = _shape(a)[-1], _shape(b)[-1]
    if da not in (2, 3) or db not in (2, 3):
        raise ValueError("incompatible dimensions for cross product\n"
                         "(dimension must be 2 or 3)")

    def parts(x, d):
        c = [x[..., 0], x[..., 1]]
        return c + ([x[..., 2]] if d == 3 else [None])

    a0, a1, a2 = parts(a, da)
    b0, b1, b2 = parts(b, db)

    def term(p, q):          # p * q, None for zero
        return None if p is None or q is None else E.multiply(p, q)

    def diff(p, q):
        if p is None:
            return None if q is None else E.negative(q)
        return p if q is None else E.subtract(p, q)

    c2 = E.subtract(E.multiply(a0, b1), E.multiply(a1, b0))
    if da == 2 and db == 2:
        return c2
    c0 = diff(term(a1, b2), term(a2, b1))
    c1 = diff(term(a2, b0), term(a0, b2))
    shape = _shape(c2)
    comps = [S.broadcast_to(c, shape) if _shape(c) != shape else c for c in (c0, c1, c2)]
    c = S.stack(comps, axis=-1)
    return moveaxis(c, -1, axisc)


def diff(a, n=1, axis=-1, prepend=_NOVALUE, append=_NOVALUE):
    """NumPy's diff: the n-th forward difference x[i + 1] - x[i] along axis, with prepend/
    append joined first (scalars broadcast to one slice)."""
    x = _arr(a, "diff")
    if n == 0:
        return x
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n!r}")
    nd = _ndim(x)
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    k = axis_index(axis, nd, "diff")
    if _val(x).dtype == np.bool_ and not any(isinstance(stacked(v), Tensor)
                                             for v in (prepend, append) if v is not _NOVALUE):
        # NumPy's diff of booleans is not_equal (True where an entry changes): no derivative
        return apply(E.P_NONDIFF, (x,), functools.partial(_bool_diff, int(n), k, prepend,
                                                           append))
    parts = []
    for v, first in ((prepend, True), (append, False)):
        if v is _NOVALUE:
            continue
        v = stacked(v)
        if _ndim(v) == 0:
            s = list(_shape(x))
            s[k] = 1
            v = S.broadcast_to(v, tuple(s))
        parts.append((first, v))
    if parts:
        x = S.concatenate([v for f, v in parts if f] + [x] + [v for f, v in parts if not f],
                          axis=k)
    for _ in range(int(n)):
        m = _shape(x)[k]
        x = E.subtract(_slice_axis(x, k, slice(1, None)), _slice_axis(x, k, slice(0, max(m - 1, 0))))
    return x


def _bool_diff(n, axis, prepend, append, x):
    kw = {k: v for k, v in (("prepend", prepend), ("append", append)) if v is not _NOVALUE}
    return np.diff(x, n, axis, **kw)


# take_along_axis(x, idx): y = x gathered along a (negative) axis by the integer array idx (an
# input without a derivative, so that a compiled replay recomputes it); d = take(dx, idx).
# Its transpose put_along adds g into zeros of x's shape at idx (repeats accumulate).
def _batched(idx, nd):
    idx = np.asarray(idx)
    return idx.reshape((1,) * (nd - idx.ndim) + idx.shape)

def _take_fwd(axis, x, idx):
    x = np.asarray(x)
    return np.take_along_axis(x, _batched(idx, x.ndim), axis)

def _put_fwd(params, g, idx):
    axis, shape = params
    g = np.asarray(g)
    full = tuple(g.shape[:g.ndim - len(shape)]) + tuple(shape)
    z = np.zeros(full, g.dtype)
    bi = _batched(idx, g.ndim)
    grids = list(np.ogrid[tuple(slice(0, s) for s in g.shape)])
    grids[axis] = bi
    np.add.at(z, tuple(grids), g)
    return z

P_TAKE_ALONG = defprim(
    "take_along_axis", _take_fwd,
    lambda n, g: (call(P_PUT_ALONG, (g, arg(n, 1)), (n.params, _shape(arg(n, 0)))), None),
    lambda n, t: call(P_TAKE_ALONG, (t[0], arg(n, 1)), n.params))
P_PUT_ALONG = defprim(
    "put_along_axis_add", _put_fwd,
    lambda n, g: (call(P_TAKE_ALONG, (g, arg(n, 1)), n.params[0]), None),
    lambda n, t: call(P_PUT_ALONG, (t[0], arg(n, 1)), n.params))


def take_along_axis(arr, indices, axis=-1):
    """NumPy's take_along_axis (axis=None: of the raveled array); differentiable in arr."""
    x = _arr(arr, "take_along_axis")
    idx = np.asarray(_val(indices))
    if idx.dtype.kind not in "iu":
        raise IndexError("take_along_axis: `indices` must be an integer array")
    x, ax = _flat_axis(x, axis, "take_along_axis")
    if idx.ndim != _ndim(x):
        raise ValueError("take_along_axis: `indices` and `arr` must have the same number of "
                         "dimensions")
    shape = _shape(x)
    n = shape[ax]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx.max() if idx.max() >= n else idx.min()
        raise IndexError(f"take_along_axis: index {bad} is out of bounds for axis "
                         f"{ax % len(shape)} with size {n}")
    try:
        np.broadcast_shapes(tuple(1 if k == ax % len(shape) else s for k, s in enumerate(shape)),
                            tuple(1 if k == ax % len(shape) else s
                                  for k, s in enumerate(idx.shape)))
    except ValueError:
        raise IndexError(f"take_along_axis: indices of shape {idx.shape} do not broadcast "
                         f"with an array of shape {shape} off axis {ax % len(shape)}") from None
    return apply(P_TAKE_ALONG, (x, idx), ax)


def _argsort(axis, stable, x):
    return np.argsort(x, axis=axis, kind="stable" if stable else None)


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """NumPy's sort (a copy; axis=None sorts the raveled array); the derivative of each sorted
    entry is that of the entry it came from (ties: the order NumPy's argsort gives, stable with
    kind='stable' or stable=True).  The permutation is computed from the values by a node, so a
    compiled replay sorts the new values."""
    if order is not None:
        raise TypeError("sort: order= (structured arrays) is not supported")
    x, ax = _flat_axis(_arr(a, "sort"), axis, "sort")
    st = bool(stable) or kind == "stable" or kind == "mergesort"
    idx = apply(E.P_NONDIFF, (x,), functools.partial(_argsort, ax, st))
    return apply(P_TAKE_ALONG, (x, idx), ax)
