# cython: language_level=3, binding=False
"""The primitive registry: every differentiable operation of graphad, declared once.

How to read (and write) an entry
--------------------------------
    P_EXP = defprim("exp", fwd, vjp, jvp)

  fwd(params, *inputs) -> out     inputs are raw ndarrays or Python scalars; out an ndarray.
  vjp(n, g) -> tuple              n is the node (the output Tensor), g the cotangent of the output.
                                  One cotangent per input; None means zero (or "not needed":
                                  `need(n, i)` says whether input i leads anywhere).  Rules may
                                  return cotangents of the output's shape: the engine sums
                                  broadcast axes away, in one place (_core._sum_to).
  jvp(n, t) -> tangent            t is the list of the inputs' tangents, None for zero.
  fused(params, inputs, t)        optional, eager forward mode only: (out, tangent) computed
                                  together (a matmul reads its matrix once), or None to decline.
  multiple=True                   fwd returns a tuple of outputs (one factorization, several
                                  results); vjp(n, gs) gets a tuple of cotangents, one per
                                  output, None for zero; jvp returns a tuple of tangents.

A rule reads the node's inputs with arg(n, i), its output with out(n), its static parameters
with n.params, and computes with the helpers ending in an underscore (mul_, exp_, ...).  Those
run C kernels on arrays and record nodes on Tensors, so one rule serves a plain sweep, a sweep
whose cotangents carry leading batch axes (a block of k cotangents: jacrev / jacfwd), and a
create_graph sweep whose result is differentiated again.  To stay batch-agnostic, rules index
axes from the end (negative axes) and let `lead(g, n)` count the batch axes when a shape is
spelled out.

Chain-rule products go through gmul_(g, d) = g * d except that it is exactly 0 where g == 0: a
zero cotangent never turns into 0 * inf = NaN (the `where` trap: grad of where(x > 0, log(x), 0)
at x = 0 is 0, not NaN).

Each rule's comment states the derivative in the course's notation, df = f'(x)[dx].
"""
import numpy as np
cimport numpy as cnp
from graphad cimport _kernels as K
from graphad._core cimport Prim, Tensor, apply, call, arg, out, need, wrap
from graphad import _core

cnp.import_array()

REGISTRY = {}


def defprim(name, fwd, vjp=None, jvp=None, saves=False, kernel=0, code=0, fused=None,
            multiple=False, broadcasts=False):
    """Register a primitive.  kernel=1/2 marks fwd as the unary/binary C kernel `code`, which
    the engine then calls directly.  fused(params, inputs, tangents) -> (out, tangent) or None
    may compute the value and its tangent together in eager forward mode.  multiple=True: fwd
    returns a tuple of outputs, vjp(n, gs) gets one cotangent per output (None for zero) and
    jvp returns one tangent per output (None for zero); outs(n) reads the outputs.
    broadcasts=True: elementwise with NumPy broadcasting; the engine lines up the batch axes
    of the input tangents with the output's before calling jvp."""
    p = Prim(name, fwd, vjp, jvp, saves, kernel, code, fused, multiple, broadcasts)
    REGISTRY[name] = p
    return p


cdef inline object raw(x):
    return (<Tensor>x).data if type(x) is Tensor else x


cdef inline Py_ssize_t lead(g, Tensor n):
    """Number of leading batch axes that a cotangent/tangent carries beyond the node's shape."""
    return _ndim(g) - n.data.ndim


# shape and ndim without NumPy's Python-level np.shape / np.ndim (they cost ~0.3 us a call)
cdef tuple _shape(x):
    if type(x) is Tensor:
        x = (<Tensor>x).data
    return x.shape if cnp.PyArray_Check(x) else np.shape(x)


cdef Py_ssize_t _ndim(x):
    if type(x) is Tensor:
        x = (<Tensor>x).data
    return cnp.PyArray_NDIM(<cnp.ndarray>x) if cnp.PyArray_Check(x) else np.ndim(x)


# ==============================================================================================
# Elementwise binary: out = a (op) b with NumPy broadcasting.

def _binary_fwd(int code, str name):
    def fwd(params, a, b):
        try:
            return K.binary(code, a, b)
        except ValueError:
            raise ValueError(f"{name}: operands could not be broadcast together with shapes "
                             f"{np.shape(a)} and {np.shape(b)}") from None
    return fwd


def _binary(str name, int code, vjp, jvp):
    return defprim(name, _binary_fwd(code, name), vjp, jvp, kernel=2, code=code,
                   broadcasts=True)


def _tsum(a, b):
    """Sum of two tangents where None is zero."""
    if a is None:
        return b
    if b is None:
        return a
    return add_(a, b)


# d(a + b) = da + db
def add_vjp(n, g):
    return (g, g)

def add_jvp(n, t):
    return _tsum(t[0], t[1])

P_ADD = _binary("add", K.GA_ADD, add_vjp, add_jvp)


# d(a - b) = da - db
def sub_vjp(n, g):
    return (g, neg_(g) if need(n, 1) else None)

def sub_jvp(n, t):
    if t[1] is None:
        return t[0]
    return neg_(t[1]) if t[0] is None else sub_(t[0], t[1])

P_SUB = _binary("subtract", K.GA_SUB, sub_vjp, sub_jvp)


# d(a b) = da b + a db
def mul_vjp(n, g):
    return (gmul_(g, arg(n, 1)) if need(n, 0) else None,
            gmul_(g, arg(n, 0)) if need(n, 1) else None)

def mul_jvp(n, t):
    return _tsum(None if t[0] is None else gmul_(t[0], arg(n, 1)),
                 None if t[1] is None else gmul_(t[1], arg(n, 0)))

P_MUL = _binary("multiply", K.GA_MUL, mul_vjp, mul_jvp)


# d(a / b) = da / b - (a / b) db / b
def div_vjp(n, g):
    rb = reciprocal_(arg(n, 1))
    return (gmul_(g, rb) if need(n, 0) else None,
            neg_(gmul_(g, mul_(out(n), rb))) if need(n, 1) else None)

def div_jvp(n, t):
    rb = reciprocal_(arg(n, 1))
    return _tsum(None if t[0] is None else gmul_(t[0], rb),
                 None if t[1] is None else neg_(gmul_(t[1], mul_(out(n), rb))))

P_DIV = _binary("divide", K.GA_DIV, div_vjp, div_jvp)


# d(a^b) = b a^(b-1) da + log(a) a^b db     (log(a) taken as 0 at a = 0, where a^b is 0)
def _pow_da(n):
    # gmul: exactly 0 where b == 0, since a^0 is constant (0 * 0^-1 = 0 * inf would be NaN at
    # a = 0); recorded, it also keeps every higher derivative of a^0, a^1, ... finite there
    b = arg(n, 1)
    return gmul_(b, power_(arg(n, 0), sub_(b, 1.0)))

def _pow_db(n):
    a = arg(n, 0)
    zero = np.asarray(raw(a)) == 0
    if zero.any():
        a = where_(zero, 1.0, a)
    return mul_(out(n), log_(a))

def pow_vjp(n, g):
    return (gmul_(g, _pow_da(n)) if need(n, 0) else None,
            gmul_(g, _pow_db(n)) if need(n, 1) else None)

def pow_jvp(n, t):
    return _tsum(None if t[0] is None else gmul_(t[0], _pow_da(n)),
                 None if t[1] is None else gmul_(t[1], _pow_db(n)))

P_POW = _binary("power", K.GA_POW, pow_vjp, pow_jvp)


# d max(a, b) = da where a > b, db where b > a, (da + db)/2 at ties (as for a subgradient)
def _select_weights(n, bint first):
    a, b = np.asarray(raw(arg(n, 0))), np.asarray(raw(arg(n, 1)))
    dt = np.result_type(a, b, 1.0)
    win = (a > b) if first else (b > a)
    if n.prim is P_MIN:
        win = (a < b) if first else (b < a)
    return win.astype(dt) + 0.5 * (a == b).astype(dt)

def minmax_vjp(n, g):
    return (gmul_(g, _select_weights(n, True)) if need(n, 0) else None,
            gmul_(g, _select_weights(n, False)) if need(n, 1) else None)

def minmax_jvp(n, t):
    return _tsum(None if t[0] is None else gmul_(t[0], _select_weights(n, True)),
                 None if t[1] is None else gmul_(t[1], _select_weights(n, False)))

P_MAX = _binary("maximum", K.GA_MAXIMUM, minmax_vjp, minmax_jvp)
P_MIN = _binary("minimum", K.GA_MINIMUM, minmax_vjp, minmax_jvp)


# gmul(g, d) = g d, but 0 where g == 0: the chain-rule product used by the rules themselves.
# d gmul = gmul(dg, d) + gmul(g, dd)
P_GMUL = _binary("gmul", K.GA_MUL0, mul_vjp, mul_jvp)


# ==============================================================================================
# Elementwise unary: out = f(x); every rule is g * f'(x), so each entry gives only f'.

def _unary(str name, int code, deriv):
    """deriv(n) -> f'(x) as an array (or Tensor), evaluated from the node's input and output."""
    def fwd(params, x):
        return K.unary(code, x)
    if deriv is None:   # piecewise constant: zero derivative (zeros, so that leaves get a .grad)
        return defprim(name, fwd, lambda n, g: (np.zeros_like(raw(g)),), lambda n, t: None,
                       kernel=1, code=code)
    def vjp(n, g):
        return (gmul_(g, deriv(n)),)
    def jvp(n, t):
        return gmul_(t[0], deriv(n))
    return defprim(name, fwd, vjp, jvp, kernel=1, code=code)


def _neg_vjp(n, g):
    return (neg_(g),)

P_NEG = defprim("negative", lambda params, x: K.unary(K.GA_NEG, x), _neg_vjp,
                lambda n, t: neg_(t[0]))

# f'(x) for each, in terms of x = arg(n, 0) and y = out(n):
P_EXP = _unary("exp", K.GA_EXP, lambda n: out(n))                                   # e^x
P_LOG = _unary("log", K.GA_LOG, lambda n: reciprocal_(arg(n, 0)))                   # 1/x
P_LOG1P = _unary("log1p", K.GA_LOG1P, lambda n: reciprocal_(add_(arg(n, 0), 1.0)))  # 1/(1+x)
P_SIN = _unary("sin", K.GA_SIN, lambda n: cos_(arg(n, 0)))                          # cos x
P_COS = _unary("cos", K.GA_COS, lambda n: neg_(sin_(arg(n, 0))))                    # -sin x
P_TAN = _unary("tan", K.GA_TAN, lambda n: add_(square_(out(n)), 1.0))               # 1 + y^2
P_TANH = _unary("tanh", K.GA_TANH, lambda n: sub_(1.0, square_(out(n))))            # 1 - y^2
P_SINH = _unary("sinh", K.GA_SINH, lambda n: cosh_(arg(n, 0)))                      # cosh x
P_COSH = _unary("cosh", K.GA_COSH, lambda n: sinh_(arg(n, 0)))                      # sinh x
P_SQRT = _unary("sqrt", K.GA_SQRT, lambda n: mul_(reciprocal_(out(n)), 0.5))        # 1/(2y)
P_SQUARE = _unary("square", K.GA_SQUARE, lambda n: mul_(arg(n, 0), 2.0))            # 2x
P_ABS = _unary("abs", K.GA_ABS, lambda n: sign_(arg(n, 0)))                         # sign x
P_SIGMOID = _unary("sigmoid", K.GA_SIGMOID,
                   lambda n: mul_(out(n), sub_(1.0, out(n))))                       # y(1-y)
P_SOFTPLUS = _unary("softplus", K.GA_SOFTPLUS, lambda n: sigmoid_(arg(n, 0)))       # sigmoid x
P_RECIPROCAL = _unary("reciprocal", K.GA_RECIPROCAL, lambda n: neg_(square_(out(n))))  # -y^2
P_RELU = _unary("relu", K.GA_RELU, lambda n: step_(arg(n, 0)))                      # [x > 0]
P_SIGN = _unary("sign", K.GA_SIGN, None)
P_STEP = _unary("step", K.GA_STEP, None)


# rounding: piecewise constant, so zero derivative (NumPy's ufuncs; primitives so that a compiled
# program recomputes them rather than freezing the traced values)
def _zero_deriv(str name, fn):
    return defprim(name, lambda params, x: np.asarray(fn(x)),
                   lambda n, g: (np.zeros_like(raw(g)),), lambda n, t: None)

P_FLOOR = _zero_deriv("floor", np.floor)
P_CEIL = _zero_deriv("ceil", np.ceil)
P_TRUNC = _zero_deriv("trunc", np.trunc)
P_RINT = _zero_deriv("rint", np.rint)


# where(c, a, b): the condition is a constant (params); d = where(c, da, db)
def _where_fwd(cond, a, b):
    return np.where(cond, a, b)

def where_vjp(n, g):
    c = n.params
    z = np.zeros((), raw(g).dtype if isinstance(raw(g), np.ndarray) else np.float64)
    return (where_(c, g, z) if need(n, 0) else None,
            where_(c, z, g) if need(n, 1) else None)

def where_jvp(n, t):
    ta = 0.0 if t[0] is None else t[0]
    tb = 0.0 if t[1] is None else t[1]
    return where_(n.params, ta, tb)

P_WHERE = defprim("where", _where_fwd, where_vjp, where_jvp, broadcasts=True)


# clip(x, lo, hi): d = dx inside [lo, hi], 0 outside
def _clip_mask(n):
    x = raw(arg(n, 0))
    lo, hi = n.params
    m = np.ones(np.shape(x), bool)
    if lo is not None:
        m &= x >= lo
    if hi is not None:
        m &= x <= hi
    return m

P_CLIP = defprim("clip", lambda params, x: np.clip(x, params[0], params[1]),
                 lambda n, g: (where_(_clip_mask(n), g, 0.0),),
                 lambda n, t: where_(_clip_mask(n), t[0], 0.0))


# identity: a fresh node over x (a transform's own input, so nested sweeps stop there)
P_ID = defprim("identity", lambda params, x: x, lambda n, g: (g,), lambda n, t: t[0])


# astype: d = dx in the new dtype
P_ASTYPE = defprim("astype", lambda dtype, x: np.asarray(x).astype(dtype),
                   lambda n, g: (g,),
                   lambda n, t: astype_(t[0], n.params))


# ==============================================================================================
# Reductions.  Axes are stored negative (counted from the end), so that the same rule works when
# cotangents carry extra leading batch axes.

def _norm_axes(axis, Py_ssize_t ndim, str name):
    if axis is None:
        return tuple(range(-ndim, 0))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    out_axes = []
    for a in axis:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}: axis {a} is out of bounds for an array of dimension {ndim}")
        out_axes.append(a - ndim if a >= 0 else a)
    return tuple(sorted(set(out_axes)))


def _expand_reduced(g, Tensor n, axes, keepdims):
    """Reshape the cotangent of a reduction so that it broadcasts against the input."""
    if keepdims or (len(axes) == _ndim(n.parents[0]) and lead(g, n) == 0):
        return g             # kept axes, or a scalar: either broadcasts against x as it is
    x_shape = arg_shape(n)
    kept = tuple(1 if (i - len(x_shape)) in axes else s for i, s in enumerate(x_shape))
    return reshape_(g, tuple(_shape(g)[:lead(g, n)]) + kept)


cdef tuple arg_shape(Tensor n):
    return _shape(n.parents[0])


# sum: d = sum(dx); the cotangent broadcasts back over the reduced axes
def sum_vjp(n, g):
    axes, keepdims = n.params
    return (broadcast_to_(_expand_reduced(g, n, axes, keepdims),
                          tuple(_shape(g)[:lead(g, n)]) + arg_shape(n)),)

def sum_jvp(n, t):
    axes, keepdims = n.params
    return sum_(t[0], axes, keepdims)

def _sum_fwd(params, x):
    axes, keepdims = params
    if not keepdims and len(axes) == np.ndim(x) and isinstance(x, np.ndarray) \
            and x.dtype == np.float64 and x.flags.c_contiguous:
        return np.asarray(x.sum())
    return np.asarray(np.sum(x, axis=axes, keepdims=keepdims))

P_SUM = defprim("sum", _sum_fwd, sum_vjp, sum_jvp)


# max/min over axes: d = dx at the extreme entries, shared equally between ties
def _extreme_weights(n):
    axes, keepdims = n.params
    x = np.asarray(raw(arg(n, 0)))
    y = np.asarray(raw(out(n)))
    if not keepdims:
        y = np.expand_dims(y, tuple(a + x.ndim for a in axes)) if axes else y
    hit = (x == y).astype(x.dtype if x.dtype.kind == "f" else np.float64)
    return hit / hit.sum(axis=axes, keepdims=True)

def extreme_vjp(n, g):
    axes, keepdims = n.params
    gx = broadcast_to_(_expand_reduced(g, n, axes, keepdims),
                       tuple(_shape(g)[:lead(g, n)]) + arg_shape(n))
    return (gmul_(gx, _extreme_weights(n)),)

def extreme_jvp(n, t):
    axes, keepdims = n.params
    return sum_(gmul_(t[0], _extreme_weights(n)), axes, keepdims)

def _reduce_fwd(fn, name):
    def fwd(params, x):
        if np.size(x) == 0:
            raise ValueError(f"{name}: zero-size array has no {name}")
        return np.asarray(fn(x, axis=params[0], keepdims=params[1]))
    return fwd

P_AMAX = defprim("max", _reduce_fwd(np.max, "max"), extreme_vjp, extreme_jvp)
P_AMIN = defprim("min", _reduce_fwd(np.min, "min"), extreme_vjp, extreme_jvp)


# logsumexp: d = sum(softmax(x) dx), computed stably by shifting with the max
def _lse_keep(x, axes):
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
    return x - _lse_keep(x, axes)

def log_softmax_vjp(n, g):
    return (sub_(g, mul_(exp_(out(n)), sum_(g, n.params, True))),)

def log_softmax_jvp(n, t):
    return sub_(t[0], sum_(gmul_(t[0], exp_(out(n))), n.params, True))

P_LOG_SOFTMAX = defprim("log_softmax", _log_softmax_fwd, log_softmax_vjp, log_softmax_jvp)


# ==============================================================================================
# Shape and indexing.  All linear: each VJP is the transpose of the map, each JVP the map itself.

# reshape: d = reshape(dx)
P_RESHAPE = defprim(
    "reshape", lambda shape, x: np.reshape(x, shape),
    lambda n, g: (reshape_(g, tuple(_shape(g)[:lead(g, n)]) + arg_shape(n)),),
    lambda n, t: reshape_(t[0], tuple(_shape(t[0])[:_ndim(t[0]) - len(arg_shape(n))])
                          + n.data.shape))


# transpose by a permutation of the (negative) axes; the VJP applies the inverse permutation
def _perm_with_lead(perm, Py_ssize_t nlead):
    return tuple(range(nlead)) + tuple(nlead + p for p in perm)

def transpose_vjp(n, g):
    inv = tuple(np.argsort(n.params))
    return (transpose_(g, _perm_with_lead(inv, lead(g, n))),)

def transpose_jvp(n, t):
    return transpose_(t[0], _perm_with_lead(n.params, _ndim(t[0]) - len(n.params)))

P_TRANSPOSE = defprim("transpose", lambda perm, x: np.transpose(x, perm),
                      transpose_vjp, transpose_jvp)


# broadcast_to: d = broadcast(dx); its VJP returns g whole and the engine sums it back down
def broadcast_jvp(n, t):
    # the batch axes: none for a single tangent of a lower-rank input (the engine aligns a
    # block's tangent to the output's rank, so that the count cannot go negative)
    cdef Py_ssize_t nl = _ndim(t[0]) - n.data.ndim
    return broadcast_to_(t[0], _shape(t[0])[:nl if nl > 0 else 0] + n.data.shape)

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
                       tuple(range(na + nlead, _ndim(r))))
    return r

def getitem_vjp(n, g):
    return (scatter_(g, n.params, arg_shape(n), lead(g, n)),)

def getitem_jvp(n, t):
    return _gather(t[0], n.params, _ndim(t[0]) - len(arg_shape(n)))

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
                          _ndim(t[0]) - _ndim(n.parents[0]) + n.params[2]))


# concatenate along a (negative) axis: d = concatenate(dx_i); the VJP slices g back apart
def _concat_fwd(axis, *xs):
    try:
        return np.concatenate(xs, axis=axis)
    except ValueError:
        raise ValueError("concatenate: shapes " + ", ".join(str(np.shape(x)) for x in xs) +
                         f" do not match off axis {axis}") from None

def concat_vjp(n, g):
    axis = n.params
    cdef Py_ssize_t start = 0
    grads = []
    nl = lead(g, n)
    for i in range(len(n.parents)):
        size = _shape(n.parents[i])[axis]
        if need(n, i):
            sl = [slice(None)] * _ndim(g)
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
            nl = _ndim(ti) - _ndim(n.parents[0])
            batch = _shape(ti)[:nl]
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
# Linear algebra

# matmul: d(AB) = dA B + A dB.  1-D operands are promoted to matrices (as NumPy does) so that
# one formula covers every case, batch axes included:  gA = g B^T,  gB = A^T g.
def _swap(x):
    nd = _ndim(x)
    return transpose_(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))

def _promote(n):
    a, b = arg(n, 0), arg(n, 1)
    a_vec, b_vec = _ndim(a) == 1, _ndim(b) == 1
    if a_vec:
        a = reshape_(a, (1,) + _shape(a))
    if b_vec:
        b = reshape_(b, _shape(b) + (1,))
    return a, b, a_vec, b_vec

def _lift(t, Py_ssize_t nlead, tuple xshape, Py_ssize_t out_nbatch, bint vec_row, bint vec_col):
    """A tangent of a matmul operand, as a matrix whose batch axes line up with the output's."""
    tshape = _shape(t)
    core = tuple(xshape)
    if vec_row:
        core = (1,) + core
    if vec_col:
        core = core + (1,)
    pad = out_nbatch - (len(core) - 2)
    return reshape_(t, tuple(tshape[:nlead]) + (1,) * pad + core)

def matmul_vjp(n, g):
    a, b = arg(n, 0), arg(n, 1)
    cdef Py_ssize_t na = _ndim(a), nb = _ndim(b)
    if na <= 2 and nb <= 2:
        # vectors and matrices: the cotangent's batch axes ride on NumPy's broadcasting;
        # gA = g B^T (an outer product when B is a vector), gB = A^T g (g A when B is a vector)
        gshape = _shape(g)
        ga = gb = None
        if need(n, 0):
            if nb == 2:
                ga = matmul_(g, _swap(b))
            else:
                ga = gmul_(reshape_(g, gshape + (1,)), b)
        if need(n, 1):
            if na == 2 and nb == 2:
                gb = matmul_(_swap(a), g)
            elif na == 2:
                gb = matmul_(g, a)
            elif nb == 2:
                gb = gmul_(reshape_(g, gshape[:len(gshape) - 1] + (1,) + gshape[-1:]),
                           reshape_(a, _shape(a) + (1,)))
            else:
                gb = gmul_(reshape_(g, gshape + (1,)), a)
        return (ga, gb)
    a, b, a_vec, b_vec = _promote(n)
    g1 = g
    if a_vec and b_vec:
        g1 = reshape_(g, _shape(g) + (1, 1))
    elif a_vec:
        g1 = reshape_(g, _shape(g)[:-1] + (1,) + _shape(g)[-1:])
    elif b_vec:
        g1 = reshape_(g, _shape(g) + (1,))
    ga = gb = None
    if need(n, 0):
        ga = matmul_(g1, _swap(b))
        if a_vec:
            ga = reshape_(ga, _shape(ga)[:-2] + _shape(ga)[-1:])
    if need(n, 1):
        gb = matmul_(_swap(a), g1)
        if b_vec:
            gb = reshape_(gb, _shape(gb)[:-1])
    return (ga, gb)

cdef object _times_vector_tangent(x, tv, bint x_first):
    """The product of a matrix-or-vector operand x with the tangent block tv of a VECTOR operand
    (lead + (k,)): x @ tv as x @ v for each v (x_first), or tv @ x.  One GEMM: for x a matrix,
    x @ v over a block is the block times x^T."""
    if x_first and _ndim(x) == 2:
        return matmul_(tv, _swap(x))
    return matmul_(tv, x)

def matmul_jvp(n, t):
    a, b = arg(n, 0), arg(n, 1)
    cdef Py_ssize_t na = _ndim(a), nb = _ndim(b)
    if na <= 2 and nb <= 2:
        # vectors and matrices: NumPy's matmul broadcasting carries the tangents' batch axes,
        # d(ab) = da b + a db, each term one GEMM on the block
        r = None
        if t[0] is not None:
            r = _times_vector_tangent(b, t[0], False) if na == 1 else matmul_(t[0], b)
        if t[1] is not None:
            r = _tsum(r, _times_vector_tangent(a, t[1], True) if nb == 1 else matmul_(a, t[1]))
        return r
    a, b, a_vec, b_vec = _promote(n)
    out_nbatch = max(_ndim(a), _ndim(b)) - 2
    r = None
    if t[0] is not None:
        nl = _ndim(t[0]) - _ndim(arg(n, 0))
        r = matmul_(_lift(t[0], nl, _shape(arg(n, 0)), out_nbatch, a_vec, False), b)
    if t[1] is not None:
        nl = _ndim(t[1]) - _ndim(arg(n, 1))
        r = _tsum(r, matmul_(a, _lift(t[1], nl, _shape(arg(n, 1)), out_nbatch,
                                      False, b_vec)))
    shape = _shape(r)
    if a_vec and b_vec:
        return reshape_(r, shape[:-2])
    if a_vec:
        return reshape_(r, shape[:-2] + shape[-1:])
    if b_vec:
        return reshape_(r, shape[:-1])
    return r

def _matmul_fwd(params, a, b):
    if _ndim(a) == 0 or _ndim(b) == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes "
                         f"{np.shape(a)} and {np.shape(b)}")
    try:
        return K.matmul(a, b)
    except ValueError as e:
        raise ValueError(f"matmul: shapes {np.shape(a)} and {np.shape(b)} are not aligned "
                         f"for matrix multiplication") from None

# fused: in eager forward mode, value and tangent of x @ A in one product (K.matmul_fused)
P_MATMUL = defprim("matmul", _matmul_fwd, matmul_vjp, matmul_jvp,
                   fused=lambda params, raw, t: K.matmul_fused(raw[0], raw[1], t[0], t[1]))


# einsum: linear in each operand, so  d einsum(..., X_i, ...) = einsum(..., dX_i, ...)  and the
# VJP for X_i is an einsum of g with the other operands, written to X_i's subscripts.  Letters
# repeated within X_i (a diagonal) are renamed and tied with an identity matrix; letters that
# only X_i carries are summed, so its cotangent is broadcast along them by a ones vector.
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

def parse_einsum(spec, shapes):
    spec = spec.replace(" ", "")
    if "->" in spec:
        ins, outs = spec.split("->")
    else:
        ins, outs = spec, None
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: '{spec}' names {len(ins)} operands but {len(shapes)} were given")
    used = set(c for c in spec if c.isalpha())
    free = [c for c in _LETTERS if c not in used]
    ell_nd = max([len(s) - (len(sub) - 3) for sub, s in zip(ins, shapes) if "..." in sub] or [0])
    ell = "".join(free[:ell_nd])
    subs = []
    for sub, s in zip(ins, shapes):
        if "..." in sub:
            k = len(s) - (len(sub) - 3)
            sub = sub.replace("...", ell[ell_nd - k:])
        if len(sub) != len(s):
            raise ValueError(f"einsum: subscripts '{sub}' do not match an operand of shape {s}")
        subs.append(sub)
    if outs is None:
        counts = {}
        for sub in subs:
            for c in sub:
                counts[c] = counts.get(c, 0) + 1
        outs = ell + "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell))
    else:
        outs = outs.replace("...", ell)
    return tuple(subs), outs

def _einsum_fwd(params, *xs):
    subs, outs = params
    spec = ",".join(subs) + "->" + outs
    try:
        return np.asarray(np.einsum(spec, *xs, optimize=len(xs) > 2))
    except ValueError:
        raise ValueError(f"einsum: '{spec}' does not fit operands of shapes " +
                         ", ".join(str(np.shape(x)) for x in xs)) from None

def _einsum_operand_cotangent(n, g, Py_ssize_t i):
    subs, outs = n.params
    nl = lead(g, n)
    used = set("".join(subs) + outs)
    free = [c for c in _LETTERS if c not in used]
    bl = "".join(free[:nl])
    free = free[nl:]
    terms = [bl + outs]
    ops = [g]
    for j, sub in enumerate(subs):
        if j != i:
            terms.append(sub)
            ops.append(arg(n, j))
    target = ""
    xshape = _shape(arg(n, i))
    dt = n.data.dtype
    for k, c in enumerate(subs[i]):
        if c in target:                      # repeated: a fresh letter tied by an identity
            c2 = free.pop(0)
            terms.append(c + c2)
            ops.append(np.eye(xshape[k], dtype=dt))
            target += c2
        else:
            target += c
    have = set("".join(terms))
    for k, c in enumerate(target):
        if c not in have:                    # summed only inside X_i: broadcast by ones
            terms.append(c)
            ops.append(np.ones(xshape[k], dtype=dt))
    return call(P_EINSUM, tuple(ops), (tuple(terms), bl + target))

def einsum_vjp(n, g):
    return tuple(_einsum_operand_cotangent(n, g, i) if need(n, i) else None
                 for i in range(len(n.parents)))

def einsum_jvp(n, t):
    subs, outs = n.params
    r = None
    for i in range(len(t)):
        if t[i] is None:
            continue
        nl = _ndim(t[i]) - _ndim(arg(n, i))
        used = set("".join(subs) + outs)
        bl = "".join([c for c in _LETTERS if c not in used][:nl])
        terms = tuple((bl + s) if j == i else s for j, s in enumerate(subs))
        ops = tuple(t[i] if j == i else arg(n, j) for j in range(len(subs)))
        r = _tsum(r, call(P_EINSUM, ops, (terms, bl + outs)))
    return r

P_EINSUM = defprim("einsum", _einsum_fwd, einsum_vjp, einsum_jvp)


# ==============================================================================================
# Neural-net primitives (graphad.nn builds its losses and layers on these)

# cross_entropy(x, y): logits x of shape (N, C), integer labels y of shape (N,) (an input, so that
# a compiled program reads new labels on every call; it has no derivative):
#   l_i = logsumexp(x_i) - x_{i y_i},   dl_i = sum_j (softmax(x_i)_j - [j = y_i]) dx_ij,
# reduced by params = "mean" (the sum over i, / N), "sum", or "none" (the vector l).  The forward
# keeps each row's log-sum-exp, so the VJP is one fused C pass: (softmax(x) - onehot(y)) g / N.
def _xent_fwd(reduction, x, y):
    loss, lse = K.xent_fwd(x, y)
    if reduction == "none":
        return loss, lse
    total = np.asarray(loss.sum())
    if reduction == "mean":
        total = np.asarray(total / loss.shape[0])
    return total, lse

def _xent_d(n):
    """softmax(x) - onehot(y), the derivative of each row's loss, from primitives."""
    x = arg(n, 0)
    cdef Py_ssize_t c = _shape(x)[1]
    onehot = np.eye(c, dtype=n.data.dtype)[np.asarray(raw(arg(n, 1)))]
    return sub_(call(P_SOFTMAX, (x,), (-1,)), onehot)

def xent_vjp(n, g):
    x = arg(n, 0)
    rows = _shape(x)[0]
    scale = 1.0 / rows if n.params == "mean" else 1.0
    if type(g) is not Tensor and type(x) is not Tensor and lead(g, n) == 0:
        return (K.xent_vjp(x, raw(arg(n, 1)), n.saved, g, scale), None)
    # a block of cotangents, or a recorded sweep: the same formula, composed
    gs = _shape(g)
    nl = lead(g, n)
    g = reshape_(g, tuple(gs[:nl]) + ((rows, 1) if n.params == "none" else (1, 1)))
    if scale != 1.0:
        g = mul_(g, scale)
    return (gmul_(g, _xent_d(n)), None)

def xent_jvp(n, t):
    if t[0] is None:
        return None
    r = sum_(gmul_(t[0], _xent_d(n)), -1, False)
    if n.params == "none":
        return r
    r = sum_(r, -1, False)
    return mul_(r, 1.0 / _shape(arg(n, 0))[0]) if n.params == "mean" else r

P_CROSS_ENTROPY = defprim("cross_entropy", _xent_fwd, xent_vjp, xent_jvp, saves=True)


# dropout(x; rate, rng): y = x m / (1 - rate) with m_i ~ Bernoulli(1 - rate) drawn from the
# NumPy Generator rng by the forward itself (a compiled program draws a fresh mask every call);
# dy = dx m / (1 - rate), the saved scaled mask times the tangent.
def _dropout_fwd(params, x):
    rate, rng = params
    x = np.asarray(x)
    mask = (rng.random(x.shape) >= rate).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - rate))
    return K.binary(K.GA_MUL, x, mask), mask

P_DROPOUT = defprim("dropout", _dropout_fwd,
                    lambda n, g: (gmul_(g, n.saved),),
                    lambda n, t: gmul_(t[0], n.saved), saves=True)


# ==============================================================================================
# Helpers used by the rules (arrays in -> arrays out; Tensors in -> Tensors out)

cpdef add_(a, b): return call(P_ADD, (a, b))
cpdef sub_(a, b): return call(P_SUB, (a, b))
cpdef mul_(a, b): return call(P_MUL, (a, b))
cpdef div_(a, b): return call(P_DIV, (a, b))
cpdef gmul_(g, d): return call(P_GMUL, (g, d))
cpdef neg_(x): return call(P_NEG, (x,))
cpdef power_(a, b): return call(P_POW, (a, b))
cpdef exp_(x): return call(P_EXP, (x,))
cpdef log_(x): return call(P_LOG, (x,))
cpdef sin_(x): return call(P_SIN, (x,))
cpdef cos_(x): return call(P_COS, (x,))
cpdef sinh_(x): return call(P_SINH, (x,))
cpdef cosh_(x): return call(P_COSH, (x,))
cpdef square_(x): return call(P_SQUARE, (x,))
cpdef sign_(x): return call(P_SIGN, (x,))
cpdef step_(x): return call(P_STEP, (x,))
cpdef sigmoid_(x): return call(P_SIGMOID, (x,))
cpdef reciprocal_(x): return call(P_RECIPROCAL, (x,))
cpdef matmul_(a, b): return call(P_MATMUL, (a, b))
cpdef where_(c, a, b): return call(P_WHERE, (a, b), np.asarray(raw(c)))
cpdef astype_(x, dtype): return call(P_ASTYPE, (x,), np.dtype(dtype))

cpdef sum_(x, axes, keepdims):
    return call(P_SUM, (x,), (_norm_axes(axes, _ndim(x), "sum"), bool(keepdims)))

cpdef reshape_(x, shape):
    if _shape(x) == tuple(shape):
        return x
    return call(P_RESHAPE, (x,), tuple(shape))

cpdef transpose_(x, perm):
    return call(P_TRANSPOSE, (x,), tuple(perm))

cpdef broadcast_to_(x, shape):
    if _shape(x) == tuple(shape):
        return x
    return call(P_BROADCAST, (x,), tuple(shape))

cpdef getitem_(x, idx):
    return call(P_GETITEM, (x,), idx)

cpdef scatter_(g, idx, shape, nlead):
    return call(P_SCATTER, (g,), (idx, tuple(shape), nlead))
