"""ga.linalg, the LU family: inv, det, slogdet, solve and lu.

det, slogdet, solve and inv share one LU factorization with partial pivoting, computed by
LAPACK's getrf through scipy.linalg.lapack (by dtype: float64 or float32) on the transpose of
each matrix (a C-ordered A is a Fortran-ordered A^T, so nothing is transposed in memory):

    A^T = P L U,  kept as (lu, piv, info) per matrix; solving with A is getrs with trans=1.

The forward of det, slogdet and solve keeps (A, factors) in its node (`saved`); their rules call
primitives that take the node as their parameter and read the factors from it (lu_solve:
X = op(A)^{-1} B with op = identity or transpose; inv: A^{-1} or A^{-T} by getri;
det_cofactor: the gradient of det; det_hvp: its derivative; solve_vjp: solve's whole VJP in
one node), so a backward sweep factors nothing again.  Those primitives
still take A as an input, so their own rules differentiate through A (hessian, hvp), again with
the same factors.  The factors are used only when they were made from the very array the
primitive receives; otherwise (a freed graph, a direct call) the primitive factors A itself:
the node is a cache, never a source of stale numbers, also when ga.compile replays the program.

Batches (leading axes) are factored matrix by matrix with the same LAPACK calls.  float32 in,
float32 out, derivatives included.  Complex: TypeError.  Singular input to inv or solve:
LinAlgError naming the op; det and slogdet follow NumPy (0, and sign 0 with log|det| = -inf).

Derivatives, df = f'(A)[dA] (Giles 2008, "An extended collection of matrix derivative results"):

    inv      dY = -Y dA Y                         gA = -Y^T g Y^T
    slogdet  d log|det A| = <A^{-T}, dA>          gA = g A^{-T}       (sign: zero derivative)
    solve    dX = A^{-1} (dB - dA X)              gB = A^{-T} g,  gA = -gB X^T
    det      d det = <C, dA>, C = cofactor matrix = adj(A)^T       gA = g C
    lu       with dA' = P^T dA, X = L^{-1} dA' U^{-1}:  dL = L strict_lower(X),  dU = upper(X) U

det at singular matrices.  C = det(A) A^{-T} where A is well conditioned; otherwise, from the SVD
A = U diag(s) V^T, C = det(U) det(V) U diag(pi) V^T with pi_i = prod_{j != i} s_j.  The switch:
the LU's reciprocal condition estimate (LAPACK gecon) below sqrt(eps), or an exact zero pivot.
Rank tolerance: a singular value s <= n * eps * s_max counts as exactly zero, so C is exact 0 at
rank n-2 and below, a rank-one matrix at rank n-1, and [[1]] for the 1x1 zero matrix.  The
second derivative (det_hvp) is the same case split: det(A) (<A^{-T}, T> A^{-T} - A^{-T} T^T
A^{-T}), or U M V^T det(U) det(V) from X = U^T T V with M_jj = sum_{i != j} Pi_ij X_ii and
M_ji = -Pi_ij X_ij (Pi_ij = prod_{k != i, j} s_k) at singular matrices.  Derivatives of order
three and up use A^{-1} and need a nonsingular matrix (LinAlgError otherwise).

lu (SciPy's convention A = P @ L @ U, L unit lower triangular, U upper): partial pivoting, so P
is a permutation matrix, piecewise constant in A: its derivative is zero, and L and U are
differentiable where the pivot order does not change (no ties in a pivot column).  Rectangular
matrices have a forward; the derivative needs square ones.
"""
import math

import numpy as np
import scipy.linalg
from scipy.linalg import lapack

from graphad._core import Tensor, apply, arg, call, need, out, outs
from graphad._elementwise import add_, gmul_, mul_, neg_, sub_
from graphad._prims import defprim
from graphad._products import _swap, matmul_
from graphad._reductions import sum_
from graphad._shape import reshape_
from graphad.linalg._common import _raw, _square

__all__ = ["inv", "det", "slogdet", "solve", "lu"]

_LAPACK = {np.dtype(np.float64): (lapack.dgetrf, lapack.dgetrs, lapack.dgetri, lapack.dgecon),
           np.dtype(np.float32): (lapack.sgetrf, lapack.sgetrs, lapack.sgetri, lapack.sgecon)}


# ==============================================================================================
# the shared factorization

def _getrf(a):
    """LAPACK getrf of one matrix's transpose: (lu, piv, info) with a^T = P L U.  The module's
    one factorization handle (the tests count its calls)."""
    return _LAPACK[a.dtype][0](a.T)


def _factor(a):
    """The factors of every matrix of a (..., n, n), in C order of the batch."""
    if a.shape[-1] == 0:
        return [None] * int(np.prod(a.shape[:-2], dtype=np.int64))
    if a.ndim == 2:
        return [_getrf(a)]
    return [_getrf(m) for m in a.reshape((-1,) + a.shape[-2:])]


def _factors(src, a):
    """The factors of a: those the node src saved when they are of this very array, else new."""
    if src is not None:
        s = src.saved
        if s is not None and s[0] is a:
            return s[1]
    return _factor(a)


def _name(src, default):
    return default if src is None else src.prim.name


def _singular(name, a):
    return np.linalg.LinAlgError(f"{name}: singular matrix (input shape {a.shape})")


def _check(name, a):
    """a (an array or Tensor) checked to be a (batch of) square matrices of float32 or float64."""
    x = a.data if type(a) is Tensor else a
    if type(x) is np.ndarray and x.dtype in _LAPACK and x.ndim >= 2 and \
            x.shape[-1] == x.shape[-2]:
        return a                                 # the common case, without NumPy's helpers
    a = _square(name, a)
    dt = np.asarray(_raw(a)).dtype.newbyteorder("=")
    if dt not in _LAPACK:
        raise TypeError(f"{name}: LAPACK computes in float32 or float64, got {dt}; convert with "
                        f".astype(np.float64)")
    return a


# the determinant from the factors: the product of U's diagonal, its sign flipped by each row
# swap.  Small matrices in Python floats (a few NumPy calls would cost more than the LU).
_SMALL = 64


def _swaps(piv):
    flips = 0
    for i, p in enumerate(piv.tolist()):
        if p != i:
            flips += 1
    return flips


def _det_one(f, n):
    lu, piv, _ = f
    if n <= _SMALL:
        d = 1.0
        for x in lu.diagonal().tolist():
            d *= x
    else:
        d = lu.diagonal().prod()
    return -d if _swaps(piv) % 2 else d


_GETRI_LWORK = {}


def _getri_lwork(dt, n):
    """getri's optimal workspace for n x n, cached.  SciPy's default (3n) makes getri run its
    unblocked loop: 10.1 ms against 5.5 ms at n = 500 in float64 (OpenBLAS, one thread)."""
    key = (dt.char, n)
    lwork = _GETRI_LWORK.get(key)
    if lwork is None:
        query = lapack.dgetri_lwork if dt == np.float64 else lapack.sgetri_lwork
        lwork = _GETRI_LWORK[key] = max(int(query(n)[0]), 3 * n, 1)
    return lwork


def _inv_t(f, name, a):
    """A^{-T} of one matrix from its factors (getri inverts a^T)."""
    lu, piv, info = f
    if info > 0:
        raise _singular(name, a)
    return _LAPACK[lu.dtype][2](lu, piv, lwork=_getri_lwork(lu.dtype, lu.shape[0]))[0]


def _per_matrix(a, fn, out_core, dtype):
    """Apply fn(k, matrix) to every matrix of a, into an array of shape batch + out_core."""
    batch = a.shape[:-2]
    res = np.empty(batch + out_core, dtype)
    flat = res.reshape((-1,) + out_core)
    for k, m in enumerate(a.reshape((-1,) + a.shape[-2:])):
        flat[k] = fn(k, m)
    return res


# ==============================================================================================
# lu_solve: X = op(A)^{-1} B with the factors of A (op: identity, or transpose when trans),
# batched with broadcasting of A's and B's batch axes.  params = (trans, src node or None).
#   dX = op(A)^{-1} (dB - op(dA) X)
#   VJP  gB = op(A)^{-T} g;  gA = -gB X^T  (trans: -X gB^T)

def _solve_raw(facs, a, b, trans, name):
    """op(A)^{-1} B for B of shape (..., n, k) broadcasting against a's batch."""
    n = a.shape[-1]
    dt = a.dtype
    if b.dtype != dt:
        b = b.astype(dt)
    for f in facs:
        if f is not None and f[2] > 0:
            raise _singular(name, a)
    if n == 0:
        return np.zeros(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + b.shape[-2:], dt)
    getrs = _LAPACK[dt][1]
    t = 1 - trans          # the factors are of A^T
    if a.ndim == 2 and b.ndim == 2:
        lu, piv, _ = facs[0]
        return np.ascontiguousarray(getrs(lu, piv, b, trans=t)[0])
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    which = np.broadcast_to(np.arange(len(facs)).reshape(a.shape[:-2]), batch).ravel()
    bb = np.broadcast_to(b, batch + b.shape[-2:]).reshape((-1,) + b.shape[-2:])
    res = np.empty(batch + b.shape[-2:], dt)
    flat = res.reshape((-1,) + b.shape[-2:])
    for k in range(len(which)):
        lu, piv, _ = facs[which[k]]
        flat[k] = getrs(lu, piv, bb[k], trans=t)[0]
    return res


def _solve_vec(facs, a, b, trans, name):
    """op(A)^{-1} b for one matrix and one vector: getrs on the vector itself."""
    if a.shape[-1] == 0:
        return np.zeros(b.shape, a.dtype)
    lu, piv, info = facs[0]
    if info > 0:
        raise _singular(name, a)
    return _LAPACK[a.dtype][1](lu, piv, b if b.dtype == a.dtype else b.astype(a.dtype),
                               trans=1 - trans)[0]


def _lu_solve_fwd(params, a, b):
    trans, src = params
    return _solve_raw(_factors(src, a), a, np.asarray(b), trans, _name(src, "lu_solve"))


def _lu_solve_vjp(n, g):
    trans, src = n.params
    a, x = arg(n, 0), out(n)
    gb = call(P_LU_SOLVE, (a, g), (not trans, src))
    if not need(n, 0):
        return (None, gb)
    ga = neg_(matmul_(x, _swap(gb)) if trans else matmul_(gb, _swap(x)))
    return (ga, gb)


def _solve_tangent(p, n, da, db, trans):
    """The tangent of X = op(A)^{-1} B for a solve primitive p: dX = p(A, dB - op(dA) X)."""
    if da is not None:
        dax = matmul_(_swap(da) if trans else da, out(n))
        db = neg_(dax) if db is None else sub_(db, dax)
    if db is None:
        return None
    return call(p, (arg(n, 0), db), n.params)


def _lu_solve_jvp(n, t):
    return _solve_tangent(P_LU_SOLVE, n, t[0], t[1], n.params[0])


P_LU_SOLVE = defprim("lu_solve", _lu_solve_fwd, _lu_solve_vjp, _lu_solve_jvp, broadcasts=True)


# ==============================================================================================
# inv:  Y = A^{-1};  dY = -Y dA Y;  VJP  gA = -Y^T g Y^T  (Giles 2.2.3).
# params = (src, trans): src a node whose factors to reuse (the rules of slogdet and det), or
# None (the public inv); trans: the primitive gives Z = A^{-T} instead (C-ordered, as getri
# makes it from the factors of A^T), with dZ = -Z dA^T Z and gA = -Z g^T Z.

def _inv_fwd(params, a):
    src, trans = params
    name = _name(src, "inv")
    facs = _factors(src, a)
    if a.shape[-1] == 0:
        return np.zeros(a.shape, a.dtype)
    if a.ndim == 2:
        z = _inv_t(facs[0], name, a)
        return np.ascontiguousarray(z) if trans else z.T
    if trans:
        return _per_matrix(a, lambda k, m: _inv_t(facs[k], name, a), a.shape[-2:], a.dtype)
    return _per_matrix(a, lambda k, m: _inv_t(facs[k], name, a).T, a.shape[-2:], a.dtype)


def _inv_vjp(n, g):
    y = out(n)
    if n.params[1]:
        return (neg_(matmul_(matmul_(y, _swap(g)), y)),)
    yt = _swap(y)
    return (neg_(matmul_(matmul_(yt, g), yt)),)


def _inv_jvp(n, t):
    y = out(n)
    return neg_(matmul_(matmul_(y, _swap(t[0]) if n.params[1] else t[0]), y))


P_INV = defprim("inv", _inv_fwd, _inv_vjp, _inv_jvp)
_PUBLIC = (None, False)


def inv(a):
    """The inverse of a square matrix (batched over leading axes), from its LU factorization;
    a singular matrix raises LinAlgError."""
    return apply(P_INV, (_check("inv", a),), _PUBLIC)


def _inv_t_of(n):
    """A^{-T} for the rules of node n (its first input is A), from n's saved factors."""
    return call(P_INV, (arg(n, 0),), (n, True))


# ==============================================================================================
# slogdet: (sign, log|det A|), one primitive, one factorization.
#   d log|det A| = tr(A^{-1} dA) = <A^{-T}, dA>;   d sign = 0   (Giles 2.2.4)
#   VJP  gA = g_logdet A^{-T}  (a zero cotangent on sign contributes nothing)

def _slogdet_one(f, n):
    lu, piv, info = f
    if info > 0:                                 # an exact zero pivot: NumPy's (0, -inf)
        return 0.0, -np.inf
    flips = _swaps(piv)
    if n <= _SMALL:
        logabs = 0.0
        for x in lu.diagonal().tolist():
            if x < 0:
                flips += 1
            logabs += math.log(abs(x))
    else:
        d = lu.diagonal()
        flips += np.count_nonzero(d < 0)
        logabs = np.log(np.abs(d)).sum()
    return (logabs if logabs != logabs else -1.0 if flips % 2 else 1.0), logabs  # NaN: NaN


def _slogdet_fwd(params, a):
    facs = _factor(a)
    n, dt = a.shape[-1], a.dtype
    if n == 0:
        shape = a.shape[:-2]
        return (np.ones(shape, dt), np.zeros(shape, dt)), (a, facs)
    if a.ndim == 2:
        sign, logabs = _slogdet_one(facs[0], n)
        return (np.asarray(sign, dt), np.asarray(logabs, dt)), (a, facs)
    pairs = np.array([_slogdet_one(f, n) for f in facs], dt).reshape(a.shape[:-2] + (2,))
    return (pairs[..., 0], pairs[..., 1]), (a, facs)


def _shape_of(x):
    return np.shape(_raw(x))


def _reshape(x, shape):
    """reshape_, without its cost on a plain array (a plain sweep's cotangent)."""
    return x.reshape(shape) if type(x) is np.ndarray else reshape_(x, shape)


def _per_matrix_scalar(g):
    """A cotangent of a scalar-per-matrix output, shaped to broadcast against matrices."""
    if g.ndim == 0:
        return g
    return _reshape(g, g.shape + (1, 1))


def _slogdet_vjp(n, gs):
    g = gs[1]
    if g is None:
        return (None,)
    return (gmul_(_per_matrix_scalar(g), _inv_t_of(n)),)


def _slogdet_jvp(n, t):
    return (None, sum_(mul_(t[0], _inv_t_of(n)), (-2, -1), False))


P_SLOGDET = defprim("slogdet", _slogdet_fwd, _slogdet_vjp, _slogdet_jvp, saves=True,
                    multiple=True)


def slogdet(a):
    """(sign, logabsdet) of the determinant, as NumPy's slogdet: det A = sign * exp(logabsdet).
    Both outputs come from one LU factorization, which the gradient (logabsdet's: A^{-T})
    reuses; sign has derivative zero."""
    return apply(P_SLOGDET, (_check("slogdet", a),))


# ==============================================================================================
# det, and its derivatives at any matrix (the cofactor matrix; see the module docstring).
#   d det = <C, dA>,  C = adj(A)^T = det(A) A^{-T};   VJP  gA = g C
#   dC = H(A)[dA] = det(A) (<A^{-T}, dA> A^{-T} - A^{-T} dA^T A^{-T})   (Hessian: symmetric)

def _det_fwd(params, a):
    facs = _factors(params, a)
    n, dt = a.shape[-1], a.dtype
    if n == 0:
        return np.ones(a.shape[:-2], dt), (a, facs)
    if a.ndim == 2:
        return np.asarray(_det_one(facs[0], n), dt), (a, facs)
    return np.array([_det_one(f, n) for f in facs], dt).reshape(a.shape[:-2]), (a, facs)


def _well_conditioned(f, m):
    """Whether the cofactor may be computed as det(A) A^{-T} from the LU factors."""
    lu, piv, info = f
    if info > 0:
        return False
    anorm = np.abs(m).sum(axis=1).max()      # the 1-norm of m^T, whose factors lu are
    rcond = _LAPACK[lu.dtype][3](lu, anorm)[0]
    return rcond >= np.sqrt(np.finfo(lu.dtype).eps)


def _svd(m):
    """U, s (singular values <= n eps s_max set to exactly 0), V^T, det(U) det(V)."""
    u, s, vt = np.linalg.svd(m)
    s = np.where(s <= m.shape[-1] * np.finfo(m.dtype).eps * s[0], 0, s).astype(m.dtype)
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt)).astype(m.dtype)
    return u, s, vt, sign


def _prod_but_one(s):
    """pi_i = prod_{j != i} s_j, with exact zeros."""
    zero = s == 0
    if not zero.any():
        return s.prod() / s
    pi = np.zeros_like(s)
    if np.count_nonzero(zero) == 1:
        pi[zero] = s[~zero].prod()
    return pi


def _prod_but_two(s):
    """Pi_ij = prod_{k != i, j} s_k off the diagonal, 0 on it, with exact zeros."""
    k = len(s)
    zero = np.flatnonzero(s == 0)
    pi = np.zeros((k, k), s.dtype)
    if len(zero) == 0:
        pi = s.prod() / np.outer(s, s)
    elif len(zero) == 1:
        rest = s.copy()
        rest[zero[0]] = 1
        pi[zero[0], :] = pi[:, zero[0]] = rest.prod() / rest
    elif len(zero) == 2:
        pi[zero[0], zero[1]] = pi[zero[1], zero[0]] = s[s != 0].prod()
    np.fill_diagonal(pi, 0)
    return pi


def _cofactor_one(f, m):
    n = m.shape[-1]
    if _well_conditioned(f, m):
        return np.ascontiguousarray(_det_one(f, n) * _inv_t(f, "det", m))
    u, s, vt, sign = _svd(m)
    return sign * (u * _prod_but_one(s)) @ vt


def _cofactor_fwd(src, a):
    facs = _factors(src, a)
    if a.shape[-1] == 0:
        return np.zeros(a.shape, a.dtype)
    if a.ndim == 2:
        return _cofactor_one(facs[0], a)
    return _per_matrix(a, lambda k, m: _cofactor_one(facs[k], m), a.shape[-2:], a.dtype)


def _cofactor_vjp(n, g):
    return (call(P_DET_HVP, (arg(n, 0), g), n.params),)     # the Hessian is symmetric


def _cofactor_jvp(n, t):
    return call(P_DET_HVP, (arg(n, 0), t[0]), n.params)


P_COFACTOR = defprim("det_cofactor", _cofactor_fwd, _cofactor_vjp, _cofactor_jvp)


def _det_hvp_one(f, m, t):
    """H(A)[T] for one matrix m and T of shape (..., n, n)."""
    n = m.shape[-1]
    if _well_conditioned(f, m):
        yt = _inv_t(f, "det", m)
        inner = np.sum(yt * t, axis=(-2, -1), keepdims=True)
        return _det_one(f, n) * (inner * yt - yt @ np.swapaxes(t, -1, -2) @ yt)
    u, s, vt, sign = _svd(m)
    x = u.T @ t @ vt.T
    pi = _prod_but_two(s)
    mm = -np.swapaxes(x, -1, -2) * pi
    mm[..., np.arange(n), np.arange(n)] = np.diagonal(x, 0, -2, -1) @ pi
    return sign * (u @ mm @ vt)


def _det_hvp_fwd(src, a, t):
    facs = _factors(src, a)
    t = np.asarray(t, a.dtype)
    t = np.broadcast_to(t, np.broadcast_shapes(t.shape, a.shape))
    if a.shape[-1] == 0:
        return np.zeros(t.shape, a.dtype)
    if a.ndim == 2:
        return np.asarray(_det_hvp_one(facs[0], a, t), a.dtype)
    res = np.empty(t.shape, a.dtype)
    for k, idx in enumerate(np.ndindex(a.shape[:-2])):
        sl = (Ellipsis,) + idx + (slice(None), slice(None))
        res[sl] = _det_hvp_one(facs[k], a[idx], t[sl])
    return res


# Third order, at nonsingular A only: with d = det A, Y = A^{-T}, a = <Y, T>, Q = Y T^T Y and
# H = d (a Y - Q), the derivative along E (e = <Y, E>, P = Y E^T Y) is
#   dH = e H + d (-<Q, E> Y - a P + P T^T Y + Q E^T Y)
#   VJP  gA = <G, H> Y + d (-<G, Y> Q - a Y G^T Y + Q G^T Y + Y G^T Q)

def _inner(x, y):
    return sum_(mul_(x, y), (-2, -1), True)


def _det_hvp_parts(n):
    a = arg(n, 0)
    src = n.params
    d = _per_matrix_scalar(call(P_DET, (a,), src))
    y = call(P_INV, (a,), (src, True))
    t = arg(n, 1)
    q = matmul_(matmul_(y, _swap(t)), y)
    return d, y, t, _inner(y, t), q


def _det_hvp_vjp(n, g):
    gt = call(P_DET_HVP, (arg(n, 0), g), n.params) if need(n, 1) else None
    if not need(n, 0):
        return (None, gt)
    d, y, t, a, q = _det_hvp_parts(n)
    gty = matmul_(_swap(g), y)                                   # G^T Y
    inner = add_(sub_(matmul_(q, gty), mul_(a, matmul_(y, gty))),
                 sub_(matmul_(matmul_(y, _swap(g)), q), mul_(_inner(g, y), q)))
    return (add_(mul_(_inner(g, out(n)), y), mul_(d, inner)), gt)


def _det_hvp_jvp(n, tans):
    da, dt = tans
    res = None if dt is None else call(P_DET_HVP, (arg(n, 0), dt), n.params)
    if da is None:
        return res
    d, y, t, a, q = _det_hvp_parts(n)
    ety = matmul_(_swap(da), y)                                  # E^T Y
    p = matmul_(y, ety)
    inner = add_(sub_(matmul_(matmul_(p, _swap(t)), y), mul_(a, p)),
                 sub_(matmul_(q, ety), mul_(_inner(q, da), y)))
    dh = add_(mul_(_inner(y, da), out(n)), mul_(d, inner))
    return dh if res is None else add_(res, dh)


P_DET_HVP = defprim("det_hvp", _det_hvp_fwd, _det_hvp_vjp, _det_hvp_jvp, broadcasts=True)


def _det_vjp(n, g):
    c = call(P_COFACTOR, (arg(n, 0),), n)
    return (gmul_(_per_matrix_scalar(g), c),)


def _det_jvp(n, t):
    return sum_(mul_(t[0], call(P_COFACTOR, (arg(n, 0),), n)), (-2, -1), False)


P_DET = defprim("det", _det_fwd, _det_vjp, _det_jvp, saves=True)


def det(a):
    """The determinant (batched), from the LU factorization.  Its gradient is the cofactor
    matrix adj(A)^T, exact also at singular matrices (rank-one at rank n-1, exactly zero at
    rank n-2 and below; see the module docstring for the rank tolerance)."""
    return apply(P_DET, (_check("det", a),))


# ==============================================================================================
# solve: X = A^{-1} B with NumPy 2's semantics: b is a vector (M,) only when b.ndim == 1, else
# (..., M, K), the batch axes broadcasting.  The forward saves A's factors; the rules solve
# with them (lu_solve), so a gradient costs two triangular solves per right-hand side.
#   dX = A^{-1} (dB - dA X);   VJP  gB = A^{-T} g,  gA = -gB X^T   (Giles 2.3.1)

def _solve_fwd(vec, a, b):
    facs = _factor(a)
    b = np.asarray(b)
    if vec and a.ndim == 2:
        return _solve_vec(facs, a, b, False, "solve"), (a, facs)
    x = _solve_raw(facs, a, b[:, None] if vec else b, False, "solve")
    return (x[..., 0] if vec else x), (a, facs)


def _as_matrix(x, vec):
    return _reshape(x, np.shape(_raw(x)) + (1,)) if vec else x


def _as_vector(x, vec):
    return _reshape(x, np.shape(_raw(x))[:-1]) if vec else x


def _solve_vjp(n, g):
    vec = n.params
    if need(n, 0) and g.ndim == out(n).ndim:
        # one fused node (solve_vjp below) for a plain cotangent: the per-node overhead of the
        # composite decides at small sizes
        ga, gb = call(P_SOLVE_VJP, (arg(n, 0), out(n), g), (vec, n))
        return (ga, gb)
    gb = call(P_LU_SOLVE, (arg(n, 0), _as_matrix(g, vec)), (True, n))
    ga = neg_(matmul_(gb, _swap(_as_matrix(out(n), vec)))) if need(n, 0) else None
    return (ga, _as_vector(gb, vec))


def _solve_jvp(n, t):
    vec = n.params
    da, r = t
    r = None if r is None else _as_matrix(r, vec)
    if da is not None:
        dax = matmul_(da, _as_matrix(out(n), vec))
        r = neg_(dax) if r is None else sub_(r, dax)
    return _as_vector(call(P_LU_SOLVE, (arg(n, 0), r), (False, n)), vec)


# ----------------------------------------------------------------------------------------------
# solve_vjp: solve's VJP as one primitive with two outputs, from the factors of A that the
# solve node (params = (vec, node)) saved:  gB = A^{-T} G,  gA = -gB X^T  (vec: X, G, gB are
# vectors, gA = -outer(gB, X)).  Inputs (A, X, G) with G of X's shape (eager solve's rule uses
# the composite form for a block of cotangents).  In matrix form:
#   d gB = A^{-T} (dG - dA^T gB),   d gA = -(d gB X^T + gB dX^T)
#   VJP, cotangents HA, HB:  H = HB - HA X,  g_G = A^{-1} H,  g_A = -gB g_G^T,  g_X = -HA^T gB

def _solve_vjp_fwd(params, a, x, g):
    vec, src = params
    facs = _factors(src, a)
    if vec:
        gb = (_solve_vec(facs, a, g, True, "solve") if a.ndim == 2 else
              _solve_raw(facs, a, g[..., None], True, "solve")[..., 0])
        ngb = -gb
        ga = np.multiply.outer(ngb, x) if ngb.ndim == 1 else ngb[..., :, None] * x[..., None, :]
    else:
        gb = _solve_raw(facs, a, g, True, "solve")
        ga = gb @ np.swapaxes(x, -1, -2)
        np.negative(ga, out=ga)
    return ga, gb


def _solve_vjp_vjp(n, hs):
    vec, src = n.params
    ha, hb = hs
    a, x = arg(n, 0), _as_matrix(arg(n, 1), vec)
    gb = _as_matrix(outs(n)[1], vec)
    h = None if hb is None else _as_matrix(hb, vec)
    if ha is not None:
        hax = matmul_(ha, x)
        h = neg_(hax) if h is None else sub_(h, hax)
    gg = ga_ = None
    if h is not None:
        gg = call(P_LU_SOLVE, (a, h), (False, src))
        ga_ = neg_(matmul_(gb, _swap(gg))) if need(n, 0) else None
    gx = None if ha is None or not need(n, 1) else neg_(matmul_(_swap(ha), gb))
    return (ga_, None if gx is None else _as_vector(gx, vec),
            None if gg is None else _as_vector(gg, vec))


def _solve_vjp_jvp(n, t):
    vec, src = n.params
    da, dx, dg = t
    a, x = arg(n, 0), _as_matrix(arg(n, 1), vec)
    gb = _as_matrix(outs(n)[1], vec)
    r = None if dg is None else _as_matrix(dg, vec)
    if da is not None:
        k = len(_shape_of(gb)) - len(_shape_of(a))     # A broadcast against X's batch axes
        if k > 0:
            ash = _shape_of(a)
            nlead = len(_shape_of(da)) - len(ash)
            da = _reshape(da, _shape_of(da)[:nlead] + (1,) * k + ash)
        dag = matmul_(_swap(da), gb)
        r = neg_(dag) if r is None else sub_(r, dag)
    dgb = None if r is None else call(P_LU_SOLVE, (a, r), (True, src))
    dga = None if dgb is None else matmul_(dgb, _swap(x))
    if dx is not None:
        p = matmul_(gb, _swap(_as_matrix(dx, vec)))
        dga = p if dga is None else add_(dga, p)
    return (None if dga is None else neg_(dga), None if dgb is None else _as_vector(dgb, vec))


P_SOLVE_VJP = defprim("solve_vjp", _solve_vjp_fwd, _solve_vjp_vjp, _solve_vjp_jvp,
                      multiple=True)


P_SOLVE = defprim("solve", _solve_fwd, _solve_vjp, _solve_jvp, saves=True, broadcasts=True)


def solve(a, b):
    """The solution x of a @ x = b (NumPy 2's semantics): b of shape (M,) when b.ndim == 1,
    else (..., M, K) with the batch axes broadcasting against a's.  One LU factorization of a,
    reused by the derivatives; a singular matrix raises LinAlgError."""
    x, y = (a.data if type(a) is Tensor else a), (b.data if type(b) is Tensor else b)
    if type(x) is np.ndarray and type(y) is np.ndarray and x.ndim == 2 and 1 <= y.ndim <= 2 \
            and x.dtype in _LAPACK and y.dtype == x.dtype and x.shape[0] == x.shape[1] == y.shape[0]:
        return apply(P_SOLVE, (a, b), y.ndim == 1)     # one matrix: the checks below all pass
    a = _check("solve", a)
    b = b if isinstance(b, Tensor) else np.asarray(b)
    ash, bsh = np.shape(_raw(a)), np.shape(_raw(b))
    vec = len(bsh) == 1
    ok = len(bsh) >= 1 and bsh[0 if vec else -2] == ash[-1]
    if ok and not vec:
        try:
            np.broadcast_shapes(ash[:-2], bsh[:-2])
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(f"solve: a of shape {ash} and b of shape {bsh} do not match (b must be "
                         f"(M,) or (..., M, K) with M = {ash[-1]} and broadcastable batch axes)")
    bdt = np.asarray(_raw(b)).dtype
    if bdt.kind == "c":
        raise TypeError(f"solve: complex dtypes are not supported yet (got {bdt})")
    dt = np.result_type(np.asarray(_raw(a)).dtype, bdt if bdt.kind == "f" else np.float64)
    if dt not in _LAPACK:
        raise TypeError(f"solve: LAPACK computes in float32 or float64, got {dt}")
    if np.asarray(_raw(a)).dtype != dt:
        a = a.astype(dt)
    if bdt != dt:
        b = b.astype(dt)
    return apply(P_SOLVE, (a, b), vec)


# ==============================================================================================
# lu_trisolve: X = op(T)^{-1} B for triangular T (only its triangle is read), batched with
# broadcasting.  params = (lower, trans).  Used by lu's rules.
#   dX = op(T)^{-1} (dB - op(tri(dT)) X);   VJP  gB = op(T)^{-T} g,  gT = -tri(gB X^T)
#   (trans: -tri(X gB^T))

def _tri_fwd(params, t, b):
    lower, trans = params
    t, b = np.asarray(t), np.asarray(b, dtype=np.asarray(t).dtype)

    def one(tm, bm):
        return scipy.linalg.solve_triangular(tm, bm, trans=int(trans), lower=lower,
                                             check_finite=False)
    if t.ndim == 2 and b.ndim == 2:
        return one(t, b)
    batch = np.broadcast_shapes(t.shape[:-2], b.shape[:-2])
    tt = np.broadcast_to(t, batch + t.shape[-2:]).reshape((-1,) + t.shape[-2:])
    bb = np.broadcast_to(b, batch + b.shape[-2:]).reshape((-1,) + b.shape[-2:])
    res = np.empty(batch + b.shape[-2:], t.dtype)
    flat = res.reshape((-1,) + b.shape[-2:])
    for k in range(len(flat)):
        flat[k] = one(tt[k], bb[k])
    return res


def _tri_mask(x, lower):
    k = np.shape(_raw(x))[-1]
    m = np.ones((k, k), np.asarray(_raw(x)).dtype)
    return np.tril(m) if lower else np.triu(m)


def _tri_vjp(n, g):
    lower, trans = n.params
    t, x = arg(n, 0), out(n)
    gb = call(P_TRISOLVE, (t, g), (lower, not trans))
    if not need(n, 0):
        return (None, gb)
    gt = neg_(matmul_(x, _swap(gb)) if trans else matmul_(gb, _swap(x)))
    return (mul_(gt, _tri_mask(t, lower)), gb)


def _tri_jvp(n, tans):
    lower, trans = n.params
    dt, r = tans
    if dt is not None:
        dt = mul_(dt, _tri_mask(arg(n, 0), lower))
    return _solve_tangent(P_TRISOLVE, n, dt, r, trans)


P_TRISOLVE = defprim("lu_trisolve", _tri_fwd, _tri_vjp, _tri_jvp, broadcasts=True)


# ==============================================================================================
# lu: A = P L U (SciPy's convention), one primitive with three outputs.  Partial pivoting: P is
# a constant permutation (derivative zero); L, U are differentiable where the pivot order does
# not change.  With dA' = P^T dA and X = L^{-1} dA' U^{-1} (square A):
#   dL = L strict_lower(X),   dU = upper(X) U
#   VJP  Z = strict_lower(L^T gL) + upper(gU U^T),   gA = P L^{-T} Z U^{-T}

def _lu_fwd(params, a):
    if a.size == 0:                  # (SciPy gives P the wrong shape for an empty batch)
        m, k = a.shape[-2], min(a.shape[-2:])
        z = np.zeros(a.shape[:-2] + (1, 1), a.dtype)
        return (z + np.eye(m, dtype=a.dtype), z + np.eye(m, k, dtype=a.dtype),
                np.zeros(a.shape[:-2] + (k, a.shape[-1]), a.dtype))
    try:
        return tuple(scipy.linalg.lu(a))
    except ValueError as e:          # SciPy refuses NaN and Inf
        raise ValueError(f"lu: {e} (input shape {a.shape})") from None


def _lu_parts(n):
    shape = np.shape(_raw(arg(n, 0)))
    if shape[-1] != shape[-2]:
        raise NotImplementedError(f"lu: derivatives need square matrices, got shape {shape}")
    p, l, u = outs(n)
    m = np.ones(shape[-2:], np.asarray(_raw(l)).dtype)
    return p, l, u, np.tril(m, -1), np.triu(m)


def _lu_vjp(n, gs):
    _, gl, gu = gs
    if gl is None and gu is None:
        return (None,)
    p, l, u, strict_lower, upper = _lu_parts(n)
    z = None
    if gl is not None:
        z = mul_(matmul_(_swap(l), gl), strict_lower)
    if gu is not None:
        zu = mul_(matmul_(gu, _swap(u)), upper)
        z = zu if z is None else add_(z, zu)
    y = call(P_TRISOLVE, (l, z), (True, True))                        # L^{-T} Z
    y = _swap(call(P_TRISOLVE, (u, _swap(y)), (False, False)))        # (L^{-T} Z) U^{-T}
    return (matmul_(p, y),)


def _lu_jvp(n, t):
    if t[0] is None:
        return None
    p, l, u, strict_lower, upper = _lu_parts(n)
    w = call(P_TRISOLVE, (l, matmul_(_swap(p), t[0])), (True, False))  # L^{-1} P^T dA
    x = _swap(call(P_TRISOLVE, (u, _swap(w)), (False, True)))          # ... U^{-1}
    return (None, matmul_(l, mul_(x, strict_lower)), matmul_(mul_(x, upper), u))


P_LU = defprim("lu", _lu_fwd, _lu_vjp, _lu_jvp, multiple=True)


def lu(a):
    """(P, L, U) with A = P @ L @ U (scipy.linalg.lu's convention; batched): LU with partial
    pivoting, P a permutation matrix, L unit lower triangular, U upper triangular.  P has
    derivative zero; L and U are differentiable (square matrices) where the pivot order does
    not change."""
    a = a if isinstance(a, Tensor) else np.asarray(a)
    shape = np.shape(_raw(a))
    if len(shape) < 2:
        raise ValueError(f"lu: needs a matrix (or a batch of them) in the last two axes, got "
                         f"shape {shape}")
    dt = np.asarray(_raw(a)).dtype.newbyteorder("=")
    if dt.kind == "c":
        raise TypeError(f"lu: complex dtypes are not supported yet (got {dt})")
    if dt not in _LAPACK:
        a = a.astype(np.float64 if dt.kind != "f" or dt.itemsize > 8 else np.float32)
    return apply(P_LU, (a,))
