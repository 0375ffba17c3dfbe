"""ga.linalg, matrix functions and norms: expm, matrix_power, norm."""
import operator

import numpy as np
import scipy.linalg

from graphad import _ops as O
from graphad._core import Tensor, apply, arg, as_tensor, call, need
from graphad._elementwise import P_NONDIFF, add_, where_
from graphad._prims import axis_index, defprim, stacked
from graphad._products import _swap
from graphad._shape import P_CONCAT, broadcast_to_, getitem_
from graphad.linalg._cholesky import _lapack_float, _lift
from graphad.linalg._common import _raw, _square

__all__ = ["expm", "matrix_power", "norm"]


# ==============================================================================================
# expm and its Frechet derivative L(A, E) = d expm(A)[E]:
#   d expm(A) = L(A, dA);   VJP  gA = L(A^T, g)   (the adjoint of L(A, .) is L(A^T, .))
# L is its own primitive.  Its forward is scipy's expm_frechet (Al-Mohy & Higham 2009, about
# three expm's of work) from n = _FRECHET_MIN_N on, and below that the block identity
#   expm([[A, E], [0, A]]) = [[expm(A), L(A, E)], [0, expm(A)]]
# computed by one batched scipy expm (8x the flops, but no per-call Python: at n = 10 it takes
# 24 us against expm_frechet's 96 us; they cross near n = 28 with OpenBLAS on one thread).
# E is scaled to A's 1-norm first (L is linear in E, so L(A, E) = L(A, cE)/c exactly): the
# scaling-and-squaring error is relative to the block's norm, and a tiny E would otherwise lose
# its digits to expm(A)'s.
# The rules of L come from the same identity: with B = [[A, E], [0, A]],
#   dL = [L(B, [[dA, dE], [0, dA]])]_12,   and for <G, L(A, E)> = <[[0, G], [0, 0]], expm(B)>:
#   gB = L(B^T, [[0, G], [0, 0]]),  gA = gB_11 + gB_22,  gE = gB_12 = L(A^T, G)
# so every order is again a call of L (at twice the size per order).

_FRECHET_MIN_N = 28


def _expm_fwd(params, a):
    a = np.asarray(a)
    return scipy.linalg.expm(a) if a.size else np.zeros(a.shape, a.dtype)


def _norm1(m):
    return np.abs(m).sum(axis=-2).max(axis=-1, initial=0.0)


def _frechet_fwd(params, a, e):
    dt = np.result_type(a, e)
    a, e = np.asarray(a, dt), np.asarray(e, dt)
    shape = np.broadcast_shapes(a.shape, e.shape)
    n = shape[-1]
    if not n or not np.prod(shape):
        return np.zeros(shape, dt)
    if n >= _FRECHET_MIN_N:
        a, e = np.broadcast_to(a, shape), np.broadcast_to(e, shape)
        res = np.empty(shape, dt)
        for idx in np.ndindex(shape[:-2]):
            res[idx] = scipy.linalg.expm_frechet(a[idx], e[idx], compute_expm=False,
                                                 check_finite=False)
        return res
    na, ne = _norm1(a), _norm1(e)
    if len(shape) == 2:
        c = float(na or 1.0) / float(ne) if ne else 1.0
    else:
        c = np.where(ne > 0, np.where(na > 0, na, 1.0) / np.where(ne > 0, ne, 1.0), 1.0)
        c = np.broadcast_to(c, shape[:-2])[..., None, None].astype(dt)
    b = np.zeros(shape[:-2] + (2 * n, 2 * n), dt)
    b[..., :n, :n] = a
    b[..., n:, n:] = a
    b[..., :n, n:] = e * c
    return scipy.linalg.expm(b)[..., :n, n:] / c


def _block(a, e):
    """[[a, e], [0, a]] over the last two axes (a and e broadcast together)."""
    shape = np.broadcast_shapes(np.shape(_raw(a)), np.shape(_raw(e)))
    a, e = broadcast_to_(a, shape), broadcast_to_(e, shape)
    zero = np.zeros(shape, np.result_type(_raw(a), _raw(e)))
    top = call(P_CONCAT, (a, e), -1)
    return call(P_CONCAT, (top, call(P_CONCAT, (zero, a), -1)), -2)


def _frechet_vjp(n, g):
    a, e = arg(n, 0), arg(n, 1)
    if not need(n, 0):
        return (None, call(P_FRECHET, (_swap(a), g)))
    size = np.shape(_raw(a))[-1]
    gshape, dt = np.shape(_raw(g)), _raw(g).dtype
    top = call(P_CONCAT, (np.zeros(gshape, dt), g), -1)
    gpad = call(P_CONCAT, (top, np.zeros(gshape[:-2] + (size, 2 * size), dt)), -2)
    gb = call(P_FRECHET, (_swap(_block(a, e)), gpad))
    ga = add_(getitem_(gb, (Ellipsis, slice(0, size), slice(0, size))),
              getitem_(gb, (Ellipsis, slice(size, None), slice(size, None))))
    ge = getitem_(gb, (Ellipsis, slice(0, size), slice(size, None))) if need(n, 1) else None
    return (ga, ge)


def _frechet_jvp(n, t):
    a, e = arg(n, 0), arg(n, 1)
    ta, te = t
    if ta is None:
        return call(P_FRECHET, (a, te))
    nbatch = len(np.broadcast_shapes(np.shape(_raw(a)), np.shape(_raw(e)))) - 2
    ta = _lift(ta, a, nbatch)
    if te is None:
        te = np.zeros(np.shape(_raw(ta))[:-2] + np.shape(_raw(e))[-2:], _raw(ta).dtype)
    else:
        te = _lift(te, e, nbatch)
    size = np.shape(_raw(a))[-1]
    lb = call(P_FRECHET, (_block(a, e), _block(ta, te)))
    return getitem_(lb, (Ellipsis, slice(0, size), slice(size, None)))


P_FRECHET = defprim("expm_frechet", _frechet_fwd, _frechet_vjp, _frechet_jvp)

P_EXPM = defprim("expm", _expm_fwd,
                 lambda n, g: (call(P_FRECHET, (_swap(arg(n, 0)), g)),),
                 lambda n, t: call(P_FRECHET, (arg(n, 0), t[0])))


def expm(a):
    """The matrix exponential (scaling and squaring with Pade approximants, scipy's expm),
    batched over leading axes.  Derivatives are Frechet derivatives L(A, E), exact at every
    order."""
    return apply(P_EXPM, (_lapack_float("expm", a),))


# ==============================================================================================
# matrix_power: A^n by repeated squaring, a composition of matmuls (and inv for n < 0), so its
# derivatives are the product rule's:  d(A^n) = sum_{k=0}^{n-1} A^k dA A^{n-1-k}.

def matrix_power(a, n):
    """A^n for an integer n (batched over leading axes): the identity for n = 0, powers of
    inv(A) for n < 0, by repeated squaring (about 2 log2|n| matmuls).  Integer matrices are
    computed in float64."""
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError("matrix_power: exponent must be an integer") from None
    a = _square("matrix_power", a)
    if n == 0:
        # the identity, as a node of a with a zero derivative (NumPy gives I even for inf a)
        shape, dt = np.shape(_raw(a)), _raw(a).dtype
        eye = np.broadcast_to(np.eye(shape[-1], dtype=dt), shape)
        return O.where(np.zeros(shape, bool), a, eye)
    if not np.size(_raw(a)):
        # nothing to multiply (and ga.matmul refuses a zero-size batch axis)
        shape = np.shape(_raw(a))
        return O.where(np.zeros(shape, bool), a, np.zeros(shape, _raw(a).dtype))
    if n < 0:
        from graphad.linalg._factor import inv
        a, n = inv(a), -n
    result, z = None, a
    while True:
        if n & 1:
            result = z if result is None else O.matmul(result, z)
        n >>= 1
        if not n:
            break
        z = O.matmul(z, z)
    return result if isinstance(result, Tensor) else as_tensor(result)


# ==============================================================================================
# norm: NumPy's linalg.norm, composed of differentiable graphad ops.
#   2-norm / Frobenius:  d|x| = <x, dx> / |x|,  and 0 at x = 0 (a subgradient, as PyTorch):
#     sqrt is taken of where(s != 0, s, 1) and the result is where(s != 0, ., 0), so no 0/0 is
#     ever formed; the mask is a node (nondiff), recomputed when a compiled function replays.
#   p-norms: (sum |x|^p)^(1/p), the same guard at 0;  1 / inf / -inf: sums and max / min of |x|
#   (ties share the derivative, as ga.max);  ord 0: the count of nonzeros (no derivative);
#   matrix 2 / -2 / 'nuc': the largest / smallest / sum of the singular values (ga.linalg.svd).

def _nonzero(s):
    return s != 0           # NaN counts as nonzero: a NaN norm stays NaN


def _root(s, p):
    """s^(1/p) (sqrt for p = 2) with an exact zero value and derivative where s == 0."""
    ok = apply(P_NONDIFF, (s,), _nonzero)
    safe = where_(ok, s, 1.0)
    return where_(ok, O.sqrt(safe) if p == 2 else O.power(safe, 1.0 / p), 0.0)


def _svals(x, row, col, op):
    from graphad.linalg import _spectral
    svd = getattr(_spectral, "svd", None)
    if svd is None:
        raise NotImplementedError("norm: matrix ord 2, -2 and 'nuc' need ga.linalg.svd, "
                                  "which is not there yet")
    nd = np.ndim(_raw(x))
    perm = tuple(k for k in range(nd) if k not in (row, col)) + (row, col)
    s = svd(O.transpose(x, perm), compute_uv=False)
    return op(s, axis=-1)


def _vector_norm(x, ord, ax, keepdims):
    if ord is None or ord == 2:
        return _root(O.sum(x * x, axis=ax, keepdims=keepdims), 2)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    if ord == np.inf:
        return O.max(O.abs(x), axis=ax, keepdims=keepdims)
    if ord == -np.inf:
        return O.min(O.abs(x), axis=ax, keepdims=keepdims)
    if ord == 0:
        nz = apply(P_NONDIFF, (x,), _nonzero_as_float)
        return O.sum(nz, axis=ax, keepdims=keepdims)
    if ord == 1:
        return O.sum(O.abs(x), axis=ax, keepdims=keepdims)
    p = float(ord)
    return _root(O.sum(O.power(O.abs(x), p), axis=ax, keepdims=keepdims), p)


def _nonzero_as_float(x):
    return (x != 0).astype(x.dtype)


def _matrix_norm(x, ord, row, col, keepdims):
    if row == col:
        raise ValueError("Duplicate axes given.")
    if ord == 2:
        r = _svals(x, row, col, O.max)
    elif ord == -2:
        r = _svals(x, row, col, O.min)
    elif ord == 1 or ord == -1:
        r = (O.max if ord == 1 else O.min)(O.sum(O.abs(x), axis=row, keepdims=True),
                                            axis=col, keepdims=True)
        r = O.reshape(r, _drop(np.shape(_raw(r)), row, col))
    elif ord == np.inf or ord == -np.inf:
        r = (O.max if ord > 0 else O.min)(O.sum(O.abs(x), axis=col, keepdims=True),
                                           axis=row, keepdims=True)
        r = O.reshape(r, _drop(np.shape(_raw(r)), row, col))
    elif ord in (None, "fro", "f"):
        r = _root(O.sum(x * x, axis=(row, col)), 2)
    elif ord == "nuc":
        r = _svals(x, row, col, O.sum)
    else:
        raise ValueError("Invalid norm order for matrices.")
    if keepdims:
        shape = list(np.shape(_raw(x)))
        shape[row] = shape[col] = 1
        r = O.reshape(r, tuple(shape))
    return r


def _drop(shape, i, j):
    return tuple(s for k, s in enumerate(shape) if k not in (i, j))


def norm(x, ord=None, axis=None, keepdims=False):
    """NumPy's linalg.norm: a vector norm over one axis (ord None/2, 1, inf, -inf, 0, any p),
    a matrix norm over two (None/'fro', 'nuc', 1, -1, 2, -2, inf, -inf), with NumPy's defaults
    for axis=None (all entries' 2-norm when ord is None; else a 1-D or 2-D x's norm) and
    keepdims.  Differentiable; the gradient of a 2-norm (or 'fro', or a p-norm) at 0 is 0."""
    x = stacked(x)
    x = x if isinstance(x, Tensor) else np.asarray(x)
    dt = _raw(x).dtype
    if dt.kind == "c":
        raise TypeError(f"norm: complex dtypes are not supported yet (got {dt})")
    if dt.kind != "f":
        x = O.astype(x, np.float64) if isinstance(x, Tensor) else x.astype(np.float64)
    nd = np.ndim(_raw(x))
    if axis is None:
        if ord is None or (ord in ("f", "fro") and nd == 2) or (ord == 2 and nd == 1):
            r = _root(O.sum(x * x), 2)
            return O.reshape(r, (1,) * nd) if keepdims else r
        if nd not in (1, 2):
            raise ValueError("Improper number of dimensions to norm.")
        axis = tuple(range(nd))
    elif not isinstance(axis, tuple):
        try:
            axis = (operator.index(axis),)
        except TypeError:
            raise TypeError("'axis' must be None, an integer or a tuple of integers") from None
    axis = tuple(axis_index(a, nd, "norm") for a in axis)
    if len(axis) == 1:
        return _vector_norm(x, ord, axis[0], keepdims)
    if len(axis) == 2:
        return _matrix_norm(x, ord, axis[0], axis[1], keepdims)
    raise ValueError("Improper number of dimensions to norm.")
