# cython: language_level=3, binding=True
"""Shape and indexing primitives: reshape, transpose, broadcast_to, getitem (and its transpose,
scatter), concatenate; their rules, the public functions (stack, expand_dims, ... are
compositions) and the rule helpers (conventions: graphad/_prims.pyx).  All are linear: each
VJP is the transpose of the map, each JVP the map itself."""
import numpy as np
cimport numpy as cnp
from graphad cimport _kernels as K
from graphad._core cimport Tensor, apply, call, need
from graphad._prims cimport raw, shape_of, ndim_of, lead, arg_shape, norm_axes, axis_index, stacked
from graphad._prims import defprim
from graphad._core import computed, unreplayable

cnp.import_array()

__all__ = ["reshape", "transpose", "swapaxes", "expand_dims", "squeeze", "broadcast_to",
           "getitem", "concatenate", "stack"]


# reshape: d = reshape(dx)
def _reshape_fwd(shape, x):
    # the method: np.reshape's Python layer costs about a microsecond a call
    return (<cnp.ndarray>x).reshape(shape) if cnp.PyArray_Check(x) else np.reshape(x, shape)

P_RESHAPE = defprim(
    "reshape", _reshape_fwd,
    lambda n, g: (reshape_(g, tuple(shape_of(g)[:lead(g, n)]) + arg_shape(n)),),
    lambda n, t: reshape_(t[0], tuple(shape_of(t[0])[:ndim_of(t[0]) - len(arg_shape(n))])
                          + n.data.shape))


# transpose by a permutation of the (negative) axes; the VJP applies the inverse permutation
def _perm_with_lead(perm, Py_ssize_t nlead):
    return tuple(range(nlead)) + tuple(nlead + p for p in perm)

def transpose_vjp(n, g):
    perm = n.params
    cdef Py_ssize_t i, k = len(perm)
    inv = [0] * k                       # the inverse permutation (np.argsort's, without it)
    for i in range(k):
        inv[perm[i] % k] = i
    inv = tuple(inv)
    return (transpose_(g, _perm_with_lead(inv, lead(g, n))),)

def transpose_jvp(n, t):
    return transpose_(t[0], _perm_with_lead(n.params, ndim_of(t[0]) - len(n.params)))

def _transpose_fwd(perm, x):
    return (<cnp.ndarray>x).transpose(perm) if cnp.PyArray_Check(x) else np.transpose(x, perm)

P_TRANSPOSE = defprim("transpose", _transpose_fwd,
                      transpose_vjp, transpose_jvp)


# broadcast_to: d = broadcast(dx); its VJP returns g whole and the engine sums it back down
def broadcast_jvp(n, t):
    # the batch axes: none for a single tangent of a lower-rank input (the engine aligns a
    # block's tangent to the output's rank, so that the count cannot go negative)
    cdef Py_ssize_t nl = ndim_of(t[0]) - n.data.ndim
    return broadcast_to_(t[0], shape_of(t[0])[:nl if nl > 0 else 0] + n.data.shape)

P_BROADCAST = defprim("broadcast_to", lambda shape, x: K.broadcast_to(np.asarray(x), shape),
                      lambda n, g: (g,), broadcast_jvp, broadcasts=True)


# getitem: d = dx[idx];  its transpose scatters (adds) the cotangent into zeros
def _batched_index(idx, Py_ssize_t nlead):
    return (slice(None),) * nlead + idx if nlead else idx

def _has_advanced(idx):
    return any(isinstance(i, np.ndarray) for i in idx)

def _advanced_first(idx):
    """NumPy puts the axes of advanced (array) indices first when a slice separates them, so a
    batched x[(:,) * nlead + idx] has them before the batch axes.  Returns how many such axes
    there are (0 when the array indices are adjacent and stay in place)."""
    if not _has_advanced(idx):
        return 0
    pos = [k for k, i in enumerate(idx)
           if isinstance(i, (np.ndarray, int, np.integer)) and not isinstance(i, bool)]
    if pos[-1] - pos[0] == len(pos) - 1:
        return 0
    return len(np.broadcast_shapes(*[(int(np.count_nonzero(i)),) if i.dtype == bool
                                     else i.shape for i in idx if isinstance(i, np.ndarray)]))

def _gather(x, idx, Py_ssize_t nlead):
    """x[idx] applied under nlead leading batch axes: shape lead + x[idx].shape."""
    r = getitem_(x, _batched_index(idx, nlead))
    cdef Py_ssize_t na = _advanced_first(idx) if nlead else 0
    if na:
        r = transpose_(r, tuple(range(na, na + nlead)) + tuple(range(na)) +
                       tuple(range(na + nlead, ndim_of(r))))
    return r

def getitem_vjp(n, g):
    return (scatter_(g, n.params, arg_shape(n), lead(g, n)),)

def getitem_jvp(n, t):
    return _gather(t[0], n.params, ndim_of(t[0]) - len(arg_shape(n)))

P_GETITEM = defprim("getitem", lambda idx, x: np.asarray(x[idx]), getitem_vjp, getitem_jvp)


# scatter(g; idx, shape): zeros(shape) with g added at idx (repeated indices accumulate)
def _scatter_fwd(params, g):
    idx, shape, nlead = params
    g = np.asarray(g)
    z = np.zeros(tuple(g.shape[:nlead]) + tuple(shape), g.dtype)
    bidx = _batched_index(idx, nlead)
    na = _advanced_first(idx) if nlead else 0
    if na:              # z[bidx] has the advanced axes first, then the batch axes (see _gather)
        g = np.transpose(g, tuple(range(nlead, nlead + na)) + tuple(range(nlead)) +
                         tuple(range(nlead + na, g.ndim)))
    if _has_advanced(idx):
        np.add.at(z, bidx, g)
    else:
        z[bidx] = g
    return z

P_SCATTER = defprim(
    "scatter", _scatter_fwd,
    lambda n, g: (_gather(g, n.params[0], lead(g, n) + n.params[2]),),
    lambda n, t: scatter_(t[0], n.params[0], n.params[1],
                          ndim_of(t[0]) - ndim_of(n.parents[0]) + n.params[2]))


# concatenate along a (negative) axis: d = concatenate(dx_i); the VJP slices g back apart
def _concat_fwd(axis, *xs):
    try:
        return np.concatenate(xs, axis=axis)
    except ValueError:
        raise ValueError("concatenate: shapes " + ", ".join(str(np.shape(x)) for x in xs) +
                         f" do not match off axis {axis % np.ndim(xs[0])}") from None

def concat_vjp(n, g):
    axis = n.params
    cdef Py_ssize_t start = 0
    grads = []
    nl = lead(g, n)
    for i in range(len(n.parents)):
        size = shape_of(n.parents[i])[axis]
        if need(n, i):
            sl = [slice(None)] * ndim_of(g)
            sl[axis] = slice(start, start + size)
            grads.append(getitem_(g, tuple(sl)))
        else:
            grads.append(None)
        start += size
    return tuple(grads)

def concat_jvp(n, t):
    nl = None
    for ti in t:
        if ti is not None:
            nl = ndim_of(ti) - ndim_of(n.parents[0])
            batch = shape_of(ti)[:nl]
            break
    parts = []
    for i in range(len(t)):
        if t[i] is None:
            x = raw(n.parents[i])
            parts.append(np.zeros(tuple(batch) + np.shape(x), n.data.dtype))
        else:
            parts.append(t[i])
    return call(P_CONCAT, tuple(parts), n.params)

P_CONCAT = defprim("concatenate", _concat_fwd, concat_vjp, concat_jvp)


# ==============================================================================================
# Public functions

def reshape(x, shape):
    x = stacked(x)
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple([int(s) for s in shape])
    try:
        new = np.empty(shape_of(x), dtype=np.bool_).reshape(shape).shape \
            if -1 in shape else shape
    except ValueError:
        raise ValueError(f"reshape: cannot reshape shape {shape_of(x)} into {shape}") from None
    if _size(new) != _size(shape_of(x)):      # (np.prod would cost ~3 us a call)
        raise ValueError(f"reshape: cannot reshape shape {shape_of(x)} into {shape}")
    return apply(P_RESHAPE, (x,), new)


cdef Py_ssize_t _size(tuple shape):
    cdef Py_ssize_t n = 1
    for s in shape:
        if s < 0:
            return -1
        n *= <Py_ssize_t>s
    return n


def transpose(x, axes=None):
    x = stacked(x)
    nd = ndim_of(x)
    if axes is None:
        perm = tuple(range(nd - 1, -1, -1))
    else:
        perm = tuple(axis_index(a, nd, "transpose") for a in axes)
        if sorted(perm) != list(range(nd)):
            raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the "
                             f"{nd} axes of shape {shape_of(x)}")
    return apply(P_TRANSPOSE, (x,), perm)


def swapaxes(x, axis1, axis2):
    x = stacked(x)
    nd = ndim_of(x)
    perm = list(range(nd))
    a, b = axis_index(axis1, nd, "swapaxes"), axis_index(axis2, nd, "swapaxes")
    perm[a], perm[b] = perm[b], perm[a]
    return apply(P_TRANSPOSE, (x,), tuple(perm))


def expand_dims(x, axis):
    x = stacked(x)
    return reshape(x, np.expand_dims(np.empty(shape_of(x), np.bool_), axis).shape)


def squeeze(x, axis=None):
    x = stacked(x)
    return reshape(x, np.squeeze(np.empty(shape_of(x), np.bool_), axis).shape)


def broadcast_to(x, shape):
    x = stacked(x)
    shape = tuple(shape)
    try:
        np.broadcast_shapes(shape_of(x), shape)
    except ValueError:
        raise ValueError(f"broadcast_to: shape {shape_of(x)} cannot broadcast to {shape}") from None
    return apply(P_BROADCAST, (x,), shape)


def _norm_index(idx):
    if not isinstance(idx, tuple):
        idx = (idx,)
    out = []
    for i in idx:
        i = raw(i)
        if isinstance(i, list):
            i = np.asarray(i)
        if isinstance(i, np.ndarray) and i.dtype.kind == "f":
            raise IndexError("getitem: arrays used as indices must be of integer or boolean type")
        out.append(i)
    return tuple(out)


def getitem(x, idx):
    x = stacked(x)
    for i in (idx if type(idx) is tuple else (idx,)):
        if type(i) is Tensor and ((<Tensor>i).prim is not None or computed(i)):
            # x[x > 0] while ga.compile traces: the result's shape follows the data
            unreplayable("getitem with an index computed from traced values")
            break
    idx = _norm_index(idx)
    try:
        np.empty(shape_of(x), np.bool_)[idx]
    except IndexError as e:
        raise IndexError(f"getitem: index {idx} does not fit shape {shape_of(x)}: {e}") from None
    return apply(P_GETITEM, (x,), idx)


def concatenate(xs, axis=0):
    xs = tuple([stacked(x) for x in xs])
    if not xs:
        raise ValueError("concatenate: needs at least one array")
    nd = ndim_of(xs[0])
    if nd == 0:
        raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
    ax = norm_axes(axis, nd, "concatenate")[0]
    for x in xs:
        if ndim_of(x) != nd:
            raise ValueError("concatenate: shapes " + ", ".join(str(shape_of(y)) for y in xs) +
                             " have different numbers of dimensions")
    return apply(P_CONCAT, xs, ax)


def stack(xs, axis=0):
    xs = tuple([stacked(x) for x in xs])
    if not xs:
        raise ValueError("stack: needs at least one array")
    shapes = set(shape_of(x) for x in xs)
    if len(shapes) > 1:
        raise ValueError("stack: all input arrays must have the same shape, got " +
                         ", ".join(str(shape_of(x)) for x in xs))
    nd = ndim_of(xs[0]) + 1
    ax = axis_index(axis, nd, "stack")
    return concatenate([expand_dims(x, ax) for x in xs], axis=ax)




# ==============================================================================================
# Helpers for the rules (arrays in -> arrays out; Tensors in -> Tensors out)

cpdef reshape_(x, shape):
    if shape_of(x) == tuple(shape):
        return x
    return call(P_RESHAPE, (x,), tuple(shape))

cpdef transpose_(x, perm):
    return call(P_TRANSPOSE, (x,), tuple(perm))

cpdef broadcast_to_(x, shape):
    if shape_of(x) == tuple(shape):
        return x
    return call(P_BROADCAST, (x,), tuple(shape))

cpdef getitem_(x, idx):
    return call(P_GETITEM, (x,), idx)

cpdef scatter_(g, idx, shape, nlead):
    return call(P_SCATTER, (g,), (idx, tuple(shape), nlead))
