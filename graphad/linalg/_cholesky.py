"""ga.linalg, the Cholesky family: cholesky and the triangular solve its rules run on."""
import numpy as np
from scipy.linalg import get_lapack_funcs

from graphad._core import Tensor, apply, arg, call, need, out
from graphad._elementwise import mul_, neg_, sub_
from graphad._prims import defprim
from graphad._products import _swap, matmul_
from graphad._shape import reshape, reshape_
from graphad.linalg._common import _lapack, _raw, _square, _sym

__all__ = ["cholesky", "solve_triangular"]


def _lapack_float(name, a):
    """a checked to be a (batch of) square matrices that LAPACK computes on: float32 or
    float64 (integers become float64; float16 and long double are refused, as ga.linalg.inv
    does)."""
    a = _square(name, a)
    dt = _raw(a).dtype
    if dt.newbyteorder("=") not in (np.float32, np.float64):
        raise TypeError(f"{name}: LAPACK computes in float32 or float64, got {dt}; convert "
                        f"with .astype(np.float64)")
    return a


_FUNCS = {}


def _lapack_fn(name, dtype):
    """The LAPACK routine `name` for dtype (cached: scipy's lookup costs microseconds)."""
    key = (name, np.dtype(dtype).char)
    fn = _FUNCS.get(key)
    if fn is None:
        fn = _FUNCS[key] = get_lapack_funcs((name,), dtype=np.dtype(dtype))[0]
    return fn


_MASKS = {}


def _mask(n, dtype, kind):
    """A constant (n, n) mask: "lower" / "upper" triangles with the diagonal, "lower-strict" /
    "upper-strict" without it, or "phi": the lower triangle with a halved diagonal."""
    key = (n, np.dtype(dtype).char, kind)
    m = _MASKS.get(key)
    if m is None:
        ones = np.ones((n, n), dtype)
        m = {"lower": np.tril(ones), "upper": np.triu(ones),
             "lower-strict": np.tril(ones, -1), "upper-strict": np.triu(ones, 1),
             "phi": np.tril(ones) - 0.5 * np.eye(n, dtype=dtype)}[kind]
        m.flags.writeable = False
        _MASKS[key] = m
    return m


def _lift(t, x, out_nbatch):
    """A tangent of operand x (lead + x.shape) with size-1 batch axes inserted after its lead
    axes, so that its batch axes line up with the output's (out_nbatch of them)."""
    tshape, xshape = np.shape(_raw(t)), np.shape(_raw(x))
    nl = len(tshape) - len(xshape)
    pad = out_nbatch - (len(xshape) - 2)
    return reshape_(t, tshape[:nl] + (1,) * pad + xshape) if pad > 0 else t


# ==============================================================================================
# solve_triangular:  X = op(A)^{-1} B,  op(A) = A or A^T,  A triangular (only the triangle
# `lower` names is read; the diagonal too unless unit_diagonal).  With T(M) the read triangle:
#   dX = op(A)^{-1} (dB - op(T(dA)) X)
#   VJP  gB = op(A)^{-T} g,   gA = -T(gB X^T)  (op = identity),  gA = -T(X gB^T)  (op = A^T)
# (Giles 2.3.1, the solve rule restricted to the triangle.)  Both rules are triangular solves
# with the same A again, so the primitive is its own derivative machinery at every order.

def _trtrs(a, b, trans, lower, unit):
    """One LAPACK trtrs on a matrix a and a matrix b (n, k), a read without a copy: a C-ordered
    a is passed as the Fortran-ordered a^T with the triangle and the transposition flipped."""
    if a.flags.c_contiguous and not a.flags.f_contiguous:
        a, lower, trans = a.T, not lower, 1 - trans
    x, info = _lapack_fn("trtrs", a.dtype)(a, b, lower=int(lower), trans=trans,
                                            unitdiag=int(unit))
    if info > 0:
        raise np.linalg.LinAlgError(f"solve_triangular: the matrix is singular (its diagonal "
                                    f"entry {info - 1} is zero)")
    return x


def _solve_batched_small(a, b, trans, lower, unit):
    """A batch of small triangular systems through NumPy's batched solve (in C) on the read
    triangle: one call rather than a Python loop of LAPACK calls."""
    n = a.shape[-1]
    t = a * _mask(n, a.dtype, ("lower" if lower else "upper") + ("-strict" if unit else ""))
    if unit:
        t = t + np.eye(n, dtype=a.dtype)
    if trans:
        t = np.swapaxes(t, -1, -2)
    try:
        return np.linalg.solve(t, b)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError("solve_triangular: the matrix is singular (a diagonal "
                                    "entry is zero)") from None


_SMALL = 16     # up to this size a batch goes through np.linalg.solve (LU: ~3x the flops)


def _trsm_fwd(params, a, b):
    trans, lower, unit = params
    dt = np.result_type(a, b)
    a, b = np.asarray(a, dt), np.asarray(b, dt)
    n, k = b.shape[-2], b.shape[-1]
    if a.ndim == 2 and b.ndim == 2 and n and k:          # the common case, without overhead
        return _trtrs(a, b, trans, lower, unit)
    abatch = a.shape[:-2]
    full = np.broadcast_shapes(abatch, b.shape[:-2])
    if b.size == 0 or n == 0:
        return np.zeros(full + (n, k), dt)
    if abatch and n <= _SMALL:
        return _solve_batched_small(a, b, trans, lower, unit)
    # b's axes beyond a's batch fold into columns: one LAPACK call per matrix of a
    extra = full[:len(full) - len(abatch)]
    na = len(full) - len(extra)
    a = np.broadcast_to(a, full[len(extra):] + (n, n))
    b = np.broadcast_to(b, full + (n, k))
    m = int(np.prod(extra, dtype=np.int64))
    bb = np.moveaxis(b.reshape((m,) + full[len(extra):] + (n, k)), 0, -2)
    bb = bb.reshape(full[len(extra):] + (n, m * k))
    if na == 0:
        x = _trtrs(a, bb, trans, lower, unit)
    else:
        x = np.empty(bb.shape, dt)
        for idx in np.ndindex(full[len(extra):]):
            x[idx] = _trtrs(a[idx], bb[idx], trans, lower, unit)
    x = np.moveaxis(x.reshape(full[len(extra):] + (n, m, k)), -2, 0)
    return x.reshape(full + (n, k))


def _tri(m, params):
    """T(M): the part of M in the triangle that the solve reads."""
    _, lower, unit = params
    n = np.shape(_raw(m))[-1]
    kind = ("lower" if lower else "upper") + ("-strict" if unit else "")
    return mul_(m, _mask(n, _raw(m).dtype, kind))


def _trsm_vjp(n, g):
    trans, lower, unit = n.params
    gb = call(P_TRSM, (arg(n, 0), g), (1 - trans, lower, unit))
    ga = None
    if need(n, 0):
        x = out(n)
        ga = neg_(_tri(matmul_(x, _swap(gb)) if trans else matmul_(gb, _swap(x)), n.params))
    return (ga, gb if need(n, 1) else None)


def _trsm_jvp(n, t):
    a, b = arg(n, 0), arg(n, 1)
    nbatch = max(np.ndim(_raw(a)), np.ndim(_raw(b))) - 2
    rhs = None if t[1] is None else _lift(t[1], b, nbatch)
    if t[0] is not None:
        ta = _tri(_lift(t[0], a, nbatch), n.params)
        prod = matmul_(_swap(ta) if n.params[0] else ta, out(n))
        rhs = neg_(prod) if rhs is None else sub_(rhs, prod)
    return call(P_TRSM, (a, rhs), n.params)


P_TRSM = defprim("solve_triangular", _trsm_fwd, _trsm_vjp, _trsm_jvp)

_TRANS = {0: 0, 1: 1, 2: 1, "N": 0, "T": 1, "C": 1, "n": 0, "t": 1, "c": 1}


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False):
    """x with op(a) x = b for a triangular a (SciPy's signature and defaults: the upper
    triangle is read unless lower=True; trans 0/'N': a x = b, 1/'T' (2/'C', real): a^T x = b;
    unit_diagonal: the diagonal is taken as 1 and not read).  Batched over leading axes with
    NumPy's broadcasting; b is a vector only when it is 1-D (NumPy 2's solve convention), else
    a stack of (n, k) matrices.  Differentiable in a and b (a's derivative lives on the triangle
    that is read)."""
    a = _lapack_float("solve_triangular", a)
    b = b if isinstance(b, Tensor) else np.asarray(b)
    dt = _raw(b).dtype
    if dt.kind == "c":
        raise TypeError(f"solve_triangular: complex dtypes are not supported yet (got {dt})")
    if dt.kind != "f":
        b = b.astype(np.float64)
    elif dt.newbyteorder("=") not in (np.float32, np.float64):
        raise TypeError(f"solve_triangular: LAPACK computes in float32 or float64, got {dt}; "
                        f"convert with .astype(np.float64)")
    try:
        trans = _TRANS[trans]
    except (KeyError, TypeError):
        raise ValueError(f"solve_triangular: trans must be 0, 1, 2, 'N', 'T' or 'C', got "
                         f"{trans!r}") from None
    ashape, bshape = np.shape(_raw(a)), np.shape(_raw(b))
    vector = len(bshape) == 1
    if vector:
        b = reshape(b, bshape + (1,))
        bshape = bshape + (1,)
    if len(bshape) < 2 or bshape[-2] != ashape[-1]:
        raise ValueError(f"solve_triangular: shapes of a {ashape} and b "
                         f"{bshape[:-1] if vector else bshape} are incompatible")
    try:
        np.broadcast_shapes(ashape[:-2], bshape[:-2])
    except ValueError:
        raise ValueError(f"solve_triangular: the batch axes of a {ashape} and b {bshape} do "
                         f"not broadcast together") from None
    x = apply(P_TRSM, (a, b), (trans, bool(lower), bool(unit_diagonal)))
    return reshape(x, x.shape[:-1]) if vector else x


# ==============================================================================================
# cholesky: A = L L^T, L lower triangular with a positive diagonal.  The input is taken as
# symmetric: the forward factors S = (A + A^T)/2, so the gradient is symmetric and exact for
# the function computed (for a symmetric A, S == A exactly and L is NumPy's).  With
# Phi(X) = the lower triangle of X with its diagonal halved:
#   dL = L Phi(L^{-1} dS L^{-T})
#   VJP  gA = sym(L^{-T} Phi(L^T gL) L^{-1})
# (I. Murray, "Differentiation of the Cholesky decomposition", 2016, eq. 9-10, with the
# symmetrization of our forward folded in).  Every L^{-1} is a triangular solve (P_TRSM), so
# the rules are differentiable again.

def _cholesky_fwd(params, a):
    a = np.asarray(a)
    s = a + np.swapaxes(a, -1, -2)
    s *= 0.5
    if a.ndim == 2 and a.shape[0]:
        # s is symmetric, so the Fortran-ordered view s^T is s itself: potrf factors it in
        # place as U^T U, and U^T (C-ordered) is L
        c, info = _lapack_fn("potrf", s.dtype)(s.T, lower=0, clean=1, overwrite_a=1)
        if info > 0:
            raise np.linalg.LinAlgError(
                f"cholesky: Matrix is not positive definite (the leading minor of order "
                f"{info} is not positive) (input shape {a.shape})")
        return c.T
    return _lapack("cholesky", np.linalg.cholesky, s)


def _cholesky_vjp(n, g):
    L = out(n)
    size = np.shape(_raw(L))[-1]
    p = mul_(matmul_(_swap(L), g), _mask(size, _raw(L).dtype, "phi"))
    y = call(P_TRSM, (L, p), (1, True, False))                 # L^{-T} P
    z = call(P_TRSM, (L, _swap(y)), (1, True, False))          # (L^{-T} P L^{-1})^T
    return (_sym(z),)


def _cholesky_jvp(n, t):
    L = out(n)
    size = np.shape(_raw(L))[-1]
    w = call(P_TRSM, (L, _sym(t[0])), (0, True, False))        # L^{-1} dS
    x = call(P_TRSM, (L, _swap(w)), (0, True, False))          # L^{-1} dS L^{-T}
    return matmul_(L, mul_(x, _mask(size, _raw(L).dtype, "phi")))


P_CHOLESKY = defprim("cholesky", _cholesky_fwd, _cholesky_vjp, _cholesky_jvp)


def cholesky(a):
    """The lower-triangular Cholesky factor L of a symmetric positive-definite matrix,
    A = L @ L.T (NumPy's convention; batched over leading axes).  The input is taken as
    symmetric: the factor is that of (A + A^T)/2, so its gradient is symmetric.  A matrix that
    is not positive definite raises LinAlgError."""
    return apply(P_CHOLESKY, (_lapack_float("cholesky", a),))
