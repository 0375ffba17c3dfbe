# cython: language_level=3
"""The public array functions: thin wrappers that validate arguments, normalize parameters and
apply a primitive from the registry (graphad/_prims.pyx).  Functions that are compositions of
primitives (mean, stack, kron, vec, ...) are written here with those primitives, so their
derivatives need no rules of their own."""
import numpy as np
from graphad._core cimport Tensor, apply, wrap
from graphad._prims import (P_ADD, P_SUB, P_MUL, P_DIV, P_POW, P_MAX, P_MIN, P_NEG, P_EXP,
                            P_LOG, P_LOG1P, P_SIN, P_COS, P_TAN, P_TANH, P_SINH, P_COSH,
                            P_SQRT, P_SQUARE, P_ABS, P_SIGN, P_RELU, P_SIGMOID, P_SOFTPLUS,
                            P_WHERE, P_CLIP, P_ASTYPE, P_SUM, P_AMAX, P_AMIN, P_LSE, P_SOFTMAX,
                            P_LOG_SOFTMAX, P_RESHAPE, P_TRANSPOSE, P_BROADCAST, P_GETITEM,
                            P_CONCAT, P_MATMUL, P_EINSUM, P_FLOOR, P_CEIL, P_TRUNC, P_RINT,
                            parse_einsum, _norm_axes, _LETTERS)
from graphad._prims import (reshape_, sum_, broadcast_to_)


__all__ = [
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "negative", "exp",
    "log", "log1p", "sin", "cos", "tan", "tanh", "sinh", "cosh", "sqrt", "square", "abs", "sign",
    "floor", "ceil", "trunc", "rint", "relu", "sigmoid", "softplus", "where", "clip", "astype",
    "sum", "mean", "max", "min", "logsumexp", "softmax", "log_softmax", "reshape", "transpose",
    "swapaxes", "expand_dims", "squeeze", "broadcast_to", "getitem", "concatenate", "stack",
    "matmul", "einsum", "dot", "outer", "trace", "diagonal", "diag", "tril", "triu", "kron", "vec",
    "unvec",
]


cdef inline object raw(x):
    return (<Tensor>x).data if type(x) is Tensor else x


cdef bint _has_tensor(x):
    if type(x) is Tensor:
        return True
    if type(x) is list or type(x) is tuple:
        for e in x:
            if _has_tensor(e):
                return True
    return False


def _stacked(x):
    """A list or tuple that holds Tensors, as one Tensor stacked with gradients (NumPy would turn
    it into a constant array); anything else as it is."""
    if (type(x) is list or type(x) is tuple) and _has_tensor(x):
        return stack([_stacked(e) for e in x])
    return x


cdef inline tuple shape_of(x):
    return (<Tensor>x).data.shape if type(x) is Tensor else np.shape(x)


cdef inline Py_ssize_t ndim_of(x):
    return (<Tensor>x).data.ndim if type(x) is Tensor else np.ndim(x)


# -- elementwise --------------------------------------------------------------------------------
def add(a, b): return apply(P_ADD, (a, b))
def subtract(a, b): return apply(P_SUB, (a, b))
def multiply(a, b): return apply(P_MUL, (a, b))
def divide(a, b): return apply(P_DIV, (a, b))
def power(a, b): return apply(P_POW, (a, b))
def maximum(a, b): return apply(P_MAX, (a, b))
def minimum(a, b): return apply(P_MIN, (a, b))
def negative(x): return apply(P_NEG, (x,))
def exp(x): return apply(P_EXP, (x,))
def log(x): return apply(P_LOG, (x,))
def log1p(x): return apply(P_LOG1P, (x,))
def sin(x): return apply(P_SIN, (x,))
def cos(x): return apply(P_COS, (x,))
def tan(x): return apply(P_TAN, (x,))
def tanh(x): return apply(P_TANH, (x,))
def sinh(x): return apply(P_SINH, (x,))
def cosh(x): return apply(P_COSH, (x,))
def sqrt(x): return apply(P_SQRT, (x,))
def square(x): return apply(P_SQUARE, (x,))
def abs(x): return apply(P_ABS, (x,))
def sign(x): return apply(P_SIGN, (x,))
def relu(x): return apply(P_RELU, (x,))
def sigmoid(x): return apply(P_SIGMOID, (x,))
def softplus(x): return apply(P_SOFTPLUS, (x,))
def floor(x): return apply(P_FLOOR, (x,))
def ceil(x): return apply(P_CEIL, (x,))
def trunc(x): return apply(P_TRUNC, (x,))
def rint(x): return apply(P_RINT, (x,))


def where(cond, a, b):
    """Elementwise a where cond else b; cond is a constant (no derivative flows through it)."""
    c = np.asarray(raw(cond), dtype=bool)
    a, b = _stacked(a), _stacked(b)
    try:
        np.broadcast_shapes(c.shape, shape_of(a), shape_of(b))
    except ValueError:
        raise ValueError(f"where: shapes {c.shape}, {shape_of(a)} and {shape_of(b)} do not "
                         f"broadcast together") from None
    return apply(P_WHERE, (a, b), c)


def clip(x, lo=None, hi=None):
    """Values of x limited to [lo, hi]; the derivative is 1 inside and 0 outside."""
    if (type(lo) is Tensor and lo.requires_grad) or (type(hi) is Tensor and hi.requires_grad):
        # bounds that carry derivatives: min/max pass theirs on (a constant bound would not)
        y = x if hi is None else minimum(x, hi)
        return y if lo is None else maximum(y, lo)
    return apply(P_CLIP, (x,), (raw(lo), raw(hi)))


def astype(x, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError(f"astype: complex dtypes are not supported yet (got {dtype})")
    return apply(P_ASTYPE, (x,), dtype)


# -- reductions -----------------------------------------------------------------------------
def sum(x, axis=None, keepdims=False):
    x = _stacked(x)
    return apply(P_SUM, (x,), (_norm_axes(axis, ndim_of(x), "sum"), bool(keepdims)))


def mean(x, axis=None, keepdims=False):
    x = _stacked(x)
    axes = _norm_axes(axis, ndim_of(x), "mean")
    shape = shape_of(x)
    count = 1
    for a in axes:
        count *= shape[a]
    if count == 0:
        raise ValueError(f"mean: empty reduction over axes {axes} of shape {shape}")
    s = apply(P_SUM, (x,), (axes, bool(keepdims)))
    return multiply(s, 1.0 / count)


def max(x, axis=None, keepdims=False):
    x = _stacked(x)
    return apply(P_AMAX, (x,), (_norm_axes(axis, ndim_of(x), "max"), bool(keepdims)))


def min(x, axis=None, keepdims=False):
    x = _stacked(x)
    return apply(P_AMIN, (x,), (_norm_axes(axis, ndim_of(x), "min"), bool(keepdims)))


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over axis, computed stably."""
    x = _stacked(x)
    return apply(P_LSE, (x,), (_norm_axes(axis, ndim_of(x), "logsumexp"), bool(keepdims)))


def softmax(x, axis=-1):
    x = _stacked(x)
    return apply(P_SOFTMAX, (x,), _norm_axes(axis, ndim_of(x), "softmax"))


def log_softmax(x, axis=-1):
    x = _stacked(x)
    return apply(P_LOG_SOFTMAX, (x,), _norm_axes(axis, ndim_of(x), "log_softmax"))


# -- shape ----------------------------------------------------------------------------------
def reshape(x, shape):
    x = _stacked(x)
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    try:
        new = np.empty(shape_of(x), dtype=np.bool_).reshape(shape).shape \
            if -1 in shape else shape
    except ValueError:
        raise ValueError(f"reshape: cannot reshape shape {shape_of(x)} into {shape}") from None
    if int(np.prod(new)) != int(np.prod(shape_of(x))):
        raise ValueError(f"reshape: cannot reshape shape {shape_of(x)} into {shape}")
    return apply(P_RESHAPE, (x,), new)


def transpose(x, axes=None):
    x = _stacked(x)
    nd = ndim_of(x)
    if axes is None:
        perm = tuple(range(nd - 1, -1, -1))
    else:
        perm = tuple(int(a) % nd if nd else 0 for a in axes)
        if sorted(perm) != list(range(nd)):
            raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the "
                             f"{nd} axes of shape {shape_of(x)}")
    return apply(P_TRANSPOSE, (x,), perm)


def swapaxes(x, axis1, axis2):
    x = _stacked(x)
    nd = ndim_of(x)
    perm = list(range(nd))
    a, b = int(axis1) % nd, int(axis2) % nd
    perm[a], perm[b] = perm[b], perm[a]
    return apply(P_TRANSPOSE, (x,), tuple(perm))


def expand_dims(x, axis):
    x = _stacked(x)
    return reshape(x, np.expand_dims(np.empty(shape_of(x), np.bool_), axis).shape)


def squeeze(x, axis=None):
    x = _stacked(x)
    return reshape(x, np.squeeze(np.empty(shape_of(x), np.bool_), axis).shape)


def broadcast_to(x, shape):
    x = _stacked(x)
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
    x = _stacked(x)
    idx = _norm_index(idx)
    try:
        np.empty(shape_of(x), np.bool_)[idx]
    except IndexError as e:
        raise IndexError(f"getitem: index {idx} does not fit shape {shape_of(x)}: {e}") from None
    return apply(P_GETITEM, (x,), idx)


def concatenate(xs, axis=0):
    xs = tuple([_stacked(x) for x in xs])
    if not xs:
        raise ValueError("concatenate: needs at least one array")
    nd = ndim_of(xs[0])
    if nd == 0:
        raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
    ax = _norm_axes(axis, nd, "concatenate")[0]
    for x in xs:
        if ndim_of(x) != nd:
            raise ValueError("concatenate: shapes " + ", ".join(str(shape_of(y)) for y in xs) +
                             " have different numbers of dimensions")
    return apply(P_CONCAT, xs, ax)


def stack(xs, axis=0):
    xs = tuple([_stacked(x) for x in xs])
    if not xs:
        raise ValueError("stack: needs at least one array")
    shapes = set(shape_of(x) for x in xs)
    if len(shapes) > 1:
        raise ValueError("stack: all input arrays must have the same shape, got " +
                         ", ".join(str(shape_of(x)) for x in xs))
    nd = ndim_of(xs[0]) + 1
    ax = int(axis) % nd
    return concatenate([expand_dims(x, ax) for x in xs], axis=ax)


# -- linear algebra -------------------------------------------------------------------------
def matmul(a, b):
    a, b = _stacked(a), _stacked(b)
    return apply(P_MATMUL, (a, b))


def einsum(spec, *operands):
    """Einstein summation (NumPy's notation, '...' included), differentiable in every operand."""
    operands = tuple([_stacked(x) for x in operands])
    params = parse_einsum(spec, [shape_of(x) for x in operands])
    return apply(P_EINSUM, tuple(operands), params)


def dot(a, b):
    a, b = _stacked(a), _stacked(b)
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        return multiply(a, b)
    if ndim_of(b) <= 2:
        return matmul(a, b)
    # N-D: sum over the last axis of a and the second-to-last of b (NumPy's dot)
    na, nb = ndim_of(a), ndim_of(b)
    letters = "abcdefghijklmnopqrstuvwxyz"
    sa = letters[:na - 1] + "Z"
    sb = letters[na - 1:na - 1 + nb - 2] + "Z" + letters[na - 1 + nb - 2]
    return einsum(f"{sa},{sb}->{sa[:-1]}{sb[:-2]}{sb[-1]}", a, b)


def outer(a, b):
    a, b = _stacked(a), _stacked(b)
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def _axis_index(axis, Py_ssize_t nd, str name):
    a = int(axis)
    if not -nd <= a < nd:
        raise np.exceptions.AxisError(a, nd, name)
    return a % nd


def diagonal(x, offset=0, axis1=0, axis2=1):
    """NumPy's diagonal: the entries x[i, i + offset] over axes axis1 and axis2, which are
    removed; the diagonal becomes the last axis."""
    x = _stacked(x)
    nd = ndim_of(x)
    if nd < 2:
        raise ValueError(f"diagonal: needs at least 2 dimensions, got shape {shape_of(x)}")
    a1, a2 = _axis_index(axis1, nd, "diagonal"), _axis_index(axis2, nd, "diagonal")
    if a1 == a2:
        raise ValueError(f"diagonal: axis1 and axis2 must differ, got {axis1} and {axis2}")
    s, offset = shape_of(x), int(offset)
    perm = [k for k in range(nd) if k != a1 and k != a2] + [a1, a2]
    if perm != list(range(nd)):
        x = transpose(x, perm)
    stop = s[a1] if s[a1] < s[a2] - offset else s[a2] - offset   # (min is graphad's here)
    i = np.arange(0 if offset >= 0 else -offset, stop)
    return getitem(x, (slice(None),) * (nd - 2) + (i, i + offset))


def trace(x, offset=0, axis1=0, axis2=1):
    """NumPy's trace: the sum of diagonal(x, offset, axis1, axis2) (axes 0 and 1 by default,
    as NumPy; a stack of matrices in the last two axes needs axis1=-2, axis2=-1)."""
    x = _stacked(x)
    nd = ndim_of(x)
    if nd < 2:
        raise ValueError(f"trace: needs a matrix, got shape {shape_of(x)}")
    a1, a2 = _axis_index(axis1, nd, "trace"), _axis_index(axis2, nd, "trace")
    s = shape_of(x)
    if int(offset) == 0 and a1 != a2 and s[a1] == s[a2]:
        # the main diagonal of square axes: one einsum with the two axes' letters tied
        letters = list(_LETTERS[:nd])
        letters[a2] = letters[a1]
        kept = "".join(c for k, c in enumerate(letters) if k != a1 and k != a2)
        return einsum("".join(letters) + "->" + kept, x)
    return sum(diagonal(x, offset, a1, a2), axis=-1)


def diag(x, k=0):
    """NumPy's diag: the k-th diagonal of a matrix, or the matrix with a vector on its k-th
    diagonal."""
    x = _stacked(x)
    nd = ndim_of(x)
    k = int(k)
    if nd == 1:
        n = shape_of(x)[0]
        d = einsum("i,ij->ij", x, np.eye(n, dtype=np.result_type(raw(x), 1.0)))
        if k == 0:
            return d
        # pad with |k| zero columns before (k > 0) or after, and |k| zero rows after or before
        m = k if k > 0 else -k
        dt = d.dtype
        zc, zr = np.zeros((n, m), dt), np.zeros((m, n + m), dt)
        d = concatenate([zc, d] if k > 0 else [d, zc], axis=1)
        return concatenate([d, zr] if k > 0 else [zr, d], axis=0)
    if nd == 2:
        s = shape_of(x)
        if k == 0 and s[0] == s[1]:
            return einsum("ii->i", x)
        return diagonal(x, k)
    raise ValueError(f"diag: needs a vector or a matrix, got shape {shape_of(x)}")


def tril(x, k=0):
    """x with the entries above its k-th diagonal (of the last two axes) set to 0."""
    x = _stacked(x)
    s = shape_of(x)
    if len(s) < 2:
        raise ValueError(f"tril: needs at least 2 dimensions, got shape {s}")
    return where(np.tri(s[-2], s[-1], int(k), dtype=bool), x, np.zeros((), _dtype_of(x)))


def triu(x, k=0):
    """x with the entries below its k-th diagonal (of the last two axes) set to 0."""
    x = _stacked(x)
    s = shape_of(x)
    if len(s) < 2:
        raise ValueError(f"triu: needs at least 2 dimensions, got shape {s}")
    return where(~np.tri(s[-2], s[-1], int(k) - 1, dtype=bool), x, np.zeros((), _dtype_of(x)))


cdef object _dtype_of(x):
    return (<Tensor>x).data.dtype if type(x) is Tensor else np.result_type(x)


def kron(a, b):
    """Kronecker product: block (i, j) of kron(A, B) is A[i, j] * B."""
    a, b = _stacked(a), _stacked(b)
    nd = ndim_of(a) if ndim_of(a) > ndim_of(b) else ndim_of(b)
    sa = (1,) * (nd - ndim_of(a)) + shape_of(a)
    sb = (1,) * (nd - ndim_of(b)) + shape_of(b)
    ea, eb, final = [], [], []
    for i in range(nd):
        ea += [sa[i], 1]
        eb += [1, sb[i]]
        final.append(sa[i] * sb[i])
    return reshape(multiply(reshape(a, ea), reshape(b, eb)), final)


def vec(x):
    """Stack the columns of x into one vector (column-major), as in the course: vec(AXB) =
    (B^T kron A) vec(X)."""
    x = _stacked(x)
    return reshape(transpose(x), (-1,))


def unvec(v, shape):
    """Inverse of vec: fill a matrix of the given shape column by column."""
    shape = tuple(shape)
    return transpose(reshape(v, shape[::-1]))
