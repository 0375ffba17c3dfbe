"""ga.linalg, spectral decompositions: eigh, eigvalsh, svd.

SPEC: degenerate spectra (repeated eigenvalues or singular values)
-----------------------------------------------------------------
Inside a cluster of equal eigenvalues the eigenvectors are not unique (any orthonormal basis of
the eigenspace will do), so V is not a differentiable function of A there, while many losses of
it are.  The rules below handle a cluster in four statements:

1. Clusters.  Two eigenvalues (singular values) are one cluster when |w_i - w_j| <= tol with
   tol = 64 * k * eps * max|w|   (k the matrix size, eps that of the dtype).
   LAPACK returns an exactly repeated eigenvalue split by a few eps * max|w| (measured up to
   ~8 for k <= 200); 64 k gives a wide margin, and stays far below any gap one can resolve
   (1.4e-13 relative for k = 10 in float64, 7e-12 for k = 500), so the derivatives at a genuine
   gap of 1e-6 are untouched.  A singular value s_i <= tol counts as zero.
2. Masking.  The coupling coefficients 1/(w_j - w_i) of a pair in one cluster are set to zero
   (for svd also 1/(s_i + s_j) of two zero singular values and 1/s_i of a zero one).  A None
   (zero) cotangent on V, U or Vh contributes exactly nothing.
3. Exactness.  For a loss that does not depend on the basis chosen inside a cluster, its
   cotangent's in-cluster coupling, the antisymmetric part of (V^T gV)_c (for svd of
   (U^T gU + V^T gV)_c), is zero, so the masked coefficients multiply zero and the gradient is
   exact: spectral functions sum(f(w)), the cluster projector V_c V_c^T, the polar factor U Vh,
   sum(S), sum(S**2).  Not recoverable from the cotangents: a loss that pairs the cluster's
   eigenvectors with its eigenvalues weighted unequally, such as V diag(f(w)) V^T (its
   derivative there needs the divided difference f'(w) between the pair); eigh detects it
   (gw varies inside the cluster while the symmetric in-cluster part of V^T gV does not
   vanish) and raises NonDifferentiableError rather than return a wrong number; use
   ga.linalg.expm or a spectral function sum(f(w)).
4. Policy for what is not differentiable.  In reverse mode, when the cotangent's in-cluster
   coupling is not negligible (more than sqrt(eps) times the cotangent's scale), the loss
   depends on the arbitrary basis (one eigenvector of a repeated pair, say): the rule raises
   NonDifferentiableError naming the pair, their values and gap, never returns NaN or an
   arbitrary number.  A cotangent on a single eigenvalue inside a cluster follows the stated
   convention of max at ties: the gradient is v_k v_k^T for the basis returned (a generalized
   gradient; exact for symmetric functions of the cluster's eigenvalues).  Forward mode cannot
   see the loss: its tangents are those of the returned basis with the in-cluster rotation set
   to zero, which is exact for every basis-invariant loss downstream.

svd(full_matrices=True) of a non-square matrix: the extra columns U_x of U (m > n; rows of Vh
for m < n) span the orthogonal complement of the range, and any basis of it will do, which is
the same situation as a cluster: the rules take the derivative that keeps the complement
orthogonal with no rotation inside it (dU_x = -U S^{-1} V^T dA^T U_x), exact for losses of
U_x U_x^T; a cotangent that depends on the basis inside (antisymmetric part of U_x^T gU_x)
raises NonDifferentiableError.
"""
import functools

import numpy as np
from scipy.linalg import get_lapack_funcs

from graphad import _lapack as _lapack_small
from graphad._core import Tensor, apply, arg, call, outs
from graphad._elementwise import add_, mul_, neg_, nondiff_, reciprocal_, sub_, where_
from graphad._prims import REGISTRY, defprim
from graphad._products import _swap, matmul_
from graphad._reductions import sum_
from graphad._shape import getitem_, reshape_
from graphad.linalg._common import _lapack, _matrix, _raw, _square, _sym

__all__ = ["eigh", "eigvalsh", "svd"]   # NonDifferentiableError too, as a name (graphad.linalg)

_TOL_FACTOR = 64
_SMALL = 64         # up to this size, the cluster pre-check in Python floats
_CONCAT = REGISTRY["concatenate"]


class NonDifferentiableError(np.linalg.LinAlgError):
    """A derivative was asked of a loss that depends on the arbitrary choice of basis inside a
    degenerate cluster of eigenvalues / singular values (see ga.linalg._spectral's SPEC)."""


# ----------------------------------------------------------------------------------------------
# shared pieces: LAPACK, clusters, masked coupling coefficients, the degeneracy check

_FUNCS = {}


def _lapack_fn(name, dtype):
    """The LAPACK routine `name` ('syevd', 'gesdd') for a float32 or float64 dtype, cached."""
    key = (name, dtype.char)
    fn = _FUNCS.get(key)
    if fn is None:
        fn = _FUNCS[key] = get_lapack_funcs((name,), dtype=dtype)[0]
    return fn


def _shape(x):
    return np.shape(_raw(x))


def _no_half(name, a):
    """LAPACK has no half precision (NumPy refuses float16 too): a clear TypeError."""
    if np.asarray(_raw(a)).dtype == np.float16:
        raise TypeError(f"{name}: float16 is not supported (LAPACK has no half precision); "
                        f"convert to float32")
    return a


def _eye(k, like):
    return np.eye(k, dtype=np.asarray(_raw(like)).dtype)


def _tol(w):
    """The cluster tolerance, shape (..., 1, 1): 64 k eps max|w| (see the SPEC above)."""
    w = np.abs(w)
    eps = np.finfo(w.dtype).eps
    scale = w.max(axis=-1, keepdims=True) if w.shape[-1] else np.zeros(w.shape[:-1] + (1,))
    return (_TOL_FACTOR * w.shape[-1] * eps * scale)[..., None]


def _pair_diff(w, sign):
    """D_ij = w_j - w_i (sign -1) or w_j + w_i (sign +1), over the last axis (differentiable)."""
    shape = _shape(w)
    row, col = reshape_(w, shape[:-1] + (1, shape[-1])), reshape_(w, shape + (1,))
    return add_(row, col) if sign > 0 else sub_(row, col)


def _masked_inv(d, mask):
    """1/d, and exactly 0 where mask (differentiable; no inf ever formed)."""
    return where_(mask, 0.0, reciprocal_(where_(mask, 1.0, d)))


def _close_mask(w):
    """|w_i - w_j| <= tol: the pairs inside one cluster (the diagonal included)."""
    w = np.asarray(w)
    return np.abs(w[..., None, :] - w[..., :, None]) <= _tol(w)


def _anti(x):
    return (x - np.swapaxes(x, -1, -2)) * 0.5


_BASIS = "depends on the arbitrary basis inside a degenerate cluster"
_PAIRED = ("pairs eigenvectors with unequally weighted eigenvalues inside a degenerate cluster "
           "(a matrix function V f(w) V^T?), whose derivative needs f' between the pair")


def _raise_pair(name, what, vals, idx, tol, why=_BASIS):
    """NonDifferentiableError for the pair idx = (batch..., i, j) of one cluster."""
    *b, i, j = idx
    b = tuple(b)
    wi, wj = vals[b + (i,)], vals[b + (j,)]
    vectors = "eigenvectors" if name == "eigh" else "singular vectors"
    raise NonDifferentiableError(
        f"{name}: the derivative asked for {why}: {what}[{i}] = {wi:.17g} and {what}[{j}] = {wj:.17g}"
        f"{f' of matrix {b}' if b else ''} (gap {abs(wi - wj):.3g} <= tol "
        f"{float(tol[b].squeeze()):.3g}), where the {vectors} are not unique.  Losses of the "
        f"whole cluster (its projector, symmetric functions of its values) are "
        f"differentiable; see ga.linalg._spectral's SPEC")


def _scale(*xs):
    """Per-matrix scale of cotangent pieces, shape (..., 1, 1)."""
    return sum(np.abs(x).max(axis=(-2, -1), keepdims=True) if x.size else 0.0 for x in xs)


def _violations(coupling, mask, scale):
    """Index of the first entry where |coupling| is non-negligible inside `mask`, or None."""
    eps = np.finfo(coupling.dtype).eps
    bad = mask & (np.abs(coupling) > np.sqrt(eps) * scale)
    if not bad.any():
        return None
    idx = np.argwhere(bad)[0]
    return tuple(int(i) for i in idx)


def _strip_lead(idx, w):
    """An index into a (lead + batch + (k, k)) array, as an index into w's batch + pair."""
    nb = np.ndim(w) - 1
    return idx[len(idx) - 2 - nb:]


def _row(x):      # (..., k) -> (..., 1, k): scales columns
    sh = _shape(x)
    return reshape_(x, sh[:-1] + (1, sh[-1]))


def _col(x):      # (..., k) -> (..., k, 1): scales rows
    return reshape_(x, _shape(x) + (1,))


# ==============================================================================================
# eigh: A = V diag(w) V^T for symmetric A, w ascending.  The input is taken as symmetric: the
# forward factors (A + A^T)/2, so the gradient is symmetric and the derivatives are exact for
# the function computed.  With F_ij = 1/(w_j - w_i) (i != j, masked in a cluster) and
# X = V^T dA V:
#   dw = diag(X),   dV = V (F o X)
#   VJP  gA = sym(V (diag(gw) + F o (V^T gV)) V^T),   sym(M) = (M + M^T)/2
# (Giles 2008, 3.1; JAX's eigh_jvp_rule).  Only the antisymmetric part of V^T gV reaches gA
# (F is antisymmetric), which is what the degeneracy check tests inside a cluster.  A plain
# cotangent's VJP is one node, eigh_vjp (below); a block of them (jacrev) the composite form.

def _eigh_fwd(params, a):
    a = np.asarray(a)
    if a.ndim == 2 and 0 < a.shape[0] <= _lapack_small.MAX_N and a.dtype.char in "fd":
        wv = _lapack_small.eigh_small(a)
        if wv is not None:
            return wv
        raise np.linalg.LinAlgError(f"eigh: the eigenvalue algorithm did not converge "
                                    f"(input shape {a.shape})")
    s = a + np.swapaxes(a, -1, -2)
    s *= 0.5
    if s.ndim == 2 and s.shape[0] and s.dtype.char in "fd":
        # s is symmetric, so its transpose is a Fortran-ordered view LAPACK may overwrite
        w, v, info = _lapack_fn("syevd", s.dtype)(s.T, compute_v=1, lower=0, overwrite_a=1)
        if info == 0:
            # V in C order, as NumPy gives it: the rules' and the caller's kernels run faster
            return w, np.ascontiguousarray(v)
        raise np.linalg.LinAlgError(f"eigh: the eigenvalue algorithm did not converge "
                                    f"(input shape {a.shape})")
    return _lapack("eigh", np.linalg.eigh, s)


def _eigh_check(w, m, gw=None):
    """The cluster mask of w; raises if the eigenvector cotangent (m = V^T gV) couples two
    eigenvectors of one cluster, or if it pairs eigenvectors of a cluster with eigenvalues of it
    weighted unequally (gw varies inside the cluster while m's symmetric in-cluster part does
    not vanish): a loss such as V diag(f(w)) V^T, whose derivative there needs the divided
    difference f'(w) between the pair, which no rule can recover from the cotangents."""
    mask = _close_mask(w)
    k = mask.shape[-1]
    if k > 1 and np.count_nonzero(mask) > mask.size // k:       # more than the diagonal
        off = mask & ~np.eye(k, dtype=bool)
        scale = _scale(m)
        idx, why = _violations(_anti(m), off, scale), _BASIS
        if idx is None and gw is not None:
            gw = np.asarray(gw)
            eps = np.finfo(gw.dtype).eps
            gscale = np.abs(gw).max(axis=-1, keepdims=True)[..., None] if gw.size else 0.0
            spread = np.abs(gw[..., None, :] - gw[..., :, None]) > np.sqrt(eps) * gscale
            idx = _violations(np.where(spread, (m + np.swapaxes(m, -1, -2)) * 0.5, 0.0),
                              off, scale)
            why = _PAIRED
        if idx is not None:
            _raise_pair("eigh", "w", np.asarray(w), _strip_lead(idx, w), _tol(w), why)
    return mask


def _eigh_vjp(n, gs):
    gw, gv = gs
    w, v = outs(n)
    if gv is None:          # V diag(gw) V^T: symmetric (to rounding) without sym()
        return (None,) if gw is None else (matmul_(mul_(v, _row(gw)), _swap(v)),)
    nd = v.ndim
    if gv.ndim == nd and (gw is None or gw.ndim == nd - 1):
        # one fused node (eigh_vjp below) for a plain cotangent: the per-node overhead of the
        # composite decides at small sizes
        return (call(P_EIGH_VJP, (w, v, gv) if gw is None else (w, v, gv, gw), gw is not None),)
    # a block of cotangents (jacrev): leading axes that w and V do not have
    m = matmul_(_swap(v), gv)
    mask = nondiff_(_eigh_check, (w, m) if gw is None else (w, m, gw))
    inner = mul_(_masked_inv(_pair_diff(w, -1), mask), m)
    if gw is not None:
        inner = add_(inner, mul_(_col(gw), _eye(_shape(w)[-1], w)))
    return (_sym(matmul_(matmul_(v, inner), _swap(v))),)


# ----------------------------------------------------------------------------------------------
# eigh_vjp: eigh's VJP as one primitive, G = sym(V K V^T) with K = F o M + diag(gw),
# M = V^T gV, F_ij = 1/(w_j - w_i) masked to 0 inside a cluster (the degeneracy check of
# _eigh_check runs in the forward).  Inputs (w, V, gV[, gw]) of one batch shape (no leading
# cotangent axes: eigh's rule uses the composite form for those); params: whether gw is given.
# G is linear in (gV, gw); with dF_ij = -F_ij^2 (dw_j - dw_i):
#   dG = sym(dV K V^T + V K dV^T + V dK V^T),
#   dK = dF o M + F o (dV^T gV + V^T dgV) + diag(dgw)
# VJP, with Hs = sym(H), Q = V^T Hs V and R = F o F o Q o M:
#   g_gw = diag(Q),  g_gV = V (F o Q),  g_w = rowsum(R) - colsum(R),
#   g_V = Hs V (K + K^T) + gV (F o Q)^T

_EPS = {np.dtype(np.float64): np.finfo(np.float64).eps,
        np.dtype(np.float32): np.finfo(np.float32).eps}


def _same_c_arrays(w, *rest):
    """Whether w and the arrays of rest (None skipped) are C-contiguous, aligned, of w's dtype,
    float32 or float64: what the compiled kernels of graphad._lapack take."""
    dt = w.dtype
    if dt.char not in "fd" or not dt.isnative:
        return False
    for a in (w,) + rest:
        if a is not None and (type(a) is not np.ndarray or a.dtype != dt or
                              not a.flags.c_contiguous or not a.flags.aligned):
            return False
    return True


def _distinct(w):
    """Whether the 1-D w ascends with every gap above the cluster tolerance (then no two
    values are one cluster).  Python floats: a few NumPy reductions cost more.  False also for
    an unsorted or NaN w: the caller then decides by the full check."""
    k = len(w)
    if k > _SMALL:
        tol = _TOL_FACTOR * k * _EPS[w.dtype] * max(abs(w[0]), abs(w[-1]))
        return bool(np.all(w[1:] - w[:-1] > tol))
    s = w.tolist()
    tol = _TOL_FACTOR * k * _EPS[w.dtype] * max(abs(s[0]), abs(s[-1]))
    for a, b in zip(s, s[1:]):
        if not b - a > tol:          # (ascending: max|w| is at an end, as tol assumed)
            return False
    return True


def _eigh_vjp_fwd(has_gw, w, v, gv, gw=None):
    k = w.shape[-1]
    if v.ndim == 2 and 0 < k <= _lapack_small.MAX_N and _same_c_arrays(w, v, gv, gw):
        g = _lapack_small.eigh_vjp_small(w, v, gv, gw, _TOL_FACTOR * k * _EPS[w.dtype])
        if g is not None:
            return g
    vt = v.T if v.ndim == 2 else np.swapaxes(v, -1, -2)
    m = vt @ gv
    if k == 0:
        return m
    if w.ndim == 1 and gv.ndim == 2 and _distinct(w):
        # one matrix: sym(F o M) = (M^T - M) / (2 (w_i - w_j)), the diagonal set to gw below
        d = np.subtract.outer(w, w)
        d.ravel()[::k + 1] = 1.0
        d += d
        inner = m.T - m
        inner /= d
        inner.ravel()[::k + 1] = 0.0 if gw is None else gw
        return v @ inner @ vt
    d = w[..., None, :] - w[..., :, None]                       # D_ij = w_j - w_i
    tol = _TOL_FACTOR * k * _EPS[w.dtype] * np.abs(w).max()     # >= each matrix's tolerance
    if np.count_nonzero(np.abs(d) <= tol) > d.size // k:        # maybe a cluster: check, mask
        inner = np.divide(m, d, out=np.zeros_like(m), where=~_eigh_check(w, m, gw))
    else:                                                       # all distinct: F = 1/D
        d.reshape(d.shape[:-2] + (k * k,))[..., ::k + 1] = 1.0  # (the diagonal is set below)
        inner = m / d
    inner += np.swapaxes(inner, -1, -2)
    inner *= 0.5                                                # sym(V K V^T) = V sym(K) V^T
    diag = inner.reshape(inner.shape[:-2] + (k * k,))[..., ::k + 1]
    diag[...] = 0.0 if gw is None else gw
    return v @ inner @ vt


def _eigh_vjp_parts(n):
    w, v, gv = arg(n, 0), arg(n, 1), arg(n, 2)
    gw = arg(n, 3) if n.params else None
    f = _masked_inv(_pair_diff(w, -1), nondiff_(_close_mask, (w,)))
    m = matmul_(_swap(v), gv)
    k = mul_(f, m)
    if gw is not None:
        k = add_(k, mul_(_col(gw), _eye(_shape(w)[-1], w)))
    return w, v, gv, gw, f, m, k


def _eigh_vjp_vjp(n, h):
    w, v, gv, gw, f, m, k = _eigh_vjp_parts(n)
    hs = _sym(h)
    q = matmul_(matmul_(_swap(v), hs), v)
    fq = mul_(f, q)
    r = mul_(mul_(fq, f), m)
    g_w = sub_(sum_(r, -1, False), sum_(r, -2, False))
    g_v = add_(matmul_(matmul_(hs, v), add_(k, _swap(k))), matmul_(gv, _swap(fq)))
    g_gv = matmul_(v, fq)
    g_gw = sum_(mul_(q, _eye(_shape(w)[-1], w)), -1, False) if gw is not None else None
    return (g_w, g_v, g_gv) + ((g_gw,) if gw is not None else ())


def _eigh_vjp_jvp(n, t):
    w, v, gv, gw, f, m, k = _eigh_vjp_parts(n)
    dw, dv, dgv = t[0], t[1], t[2]
    dgw = t[3] if gw is not None else None
    dk = None
    if dw is not None:
        dk = neg_(mul_(mul_(mul_(f, f), _pair_diff(dw, -1)), m))
    dm = None
    if dv is not None:
        dm = matmul_(_swap(dv), gv)
    if dgv is not None:
        x = matmul_(_swap(v), dgv)
        dm = x if dm is None else add_(dm, x)
    if dm is not None:
        x = mul_(f, dm)
        dk = x if dk is None else add_(dk, x)
    if dgw is not None:
        x = mul_(_col(dgw), _eye(_shape(w)[-1], w))
        dk = x if dk is None else add_(dk, x)
    x = None if dk is None else matmul_(matmul_(v, dk), _swap(v))
    if dv is not None:
        p = add_(matmul_(dv, matmul_(k, _swap(v))), matmul_(matmul_(v, k), _swap(dv)))
        x = p if x is None else add_(x, p)
    return None if x is None else _sym(x)


P_EIGH_VJP = defprim("eigh_vjp", _eigh_vjp_fwd, _eigh_vjp_vjp, _eigh_vjp_jvp)


def _eigh_jvp(n, t):
    w, v = outs(n)
    x = matmul_(matmul_(_swap(v), _sym(t[0])), v)
    dw = sum_(mul_(x, _eye(_shape(w)[-1], w)), -1, False)
    f = _masked_inv(_pair_diff(w, -1), nondiff_(_close_mask, (w,)))
    return (dw, matmul_(v, mul_(f, x)))


P_EIGH = defprim("eigh", _eigh_fwd, _eigh_vjp, _eigh_jvp, multiple=True)


def eigh(a):
    """(w, V): eigenvalues (ascending) and orthonormal eigenvectors of a symmetric matrix
    (batched), A V = V diag(w).  The input is symmetrized, (A + A^T)/2, so its gradient is
    symmetric.

    At repeated eigenvalues (a cluster, |w_i - w_j| <= 64 k eps max|w|) the gradient is exact
    for losses that do not depend on the basis chosen inside the cluster (functions of w,
    cluster projectors); a loss that does (one eigenvector of a repeated pair) raises
    NonDifferentiableError in reverse mode.  See the module's SPEC for the full policy."""
    x = a.data if type(a) is Tensor else a
    if not (type(x) is np.ndarray and x.dtype.char in "fd" and x.ndim >= 2 and
            x.shape[-1] == x.shape[-2]):               # (else the checks, with their messages)
        a = _no_half("eigh", _square("eigh", a))
    return apply(P_EIGH, (a,))


def eigvalsh(a):
    """The eigenvalues of a symmetric matrix, ascending (exact gradients at repeated ones for
    symmetric functions of them; a single repeated eigenvalue gets v_k v_k^T for the basis
    LAPACK returned, as max does at ties)."""
    return eigh(a)[0]


# ==============================================================================================
# svd: A = U diag(S) Vh, S descending, k = min(m, n); thin: U (m, k), V = Vh^T (n, k).
# Townsend 2016, "Differentiating the singular value decomposition" (also Giles 2008; Seeger
# et al. 2017), in the split form that keeps the two kinds of singular coupling apart.  With
#   dP = U^T dA V,  sym/anti its symmetric/antisymmetric parts,
#   E_ij = 1/(s_j - s_i),  G_ij = 1/(s_j + s_i)   (i != j; masked per the SPEC),
#   dS = diag(dP)
#   dU = U (E o sym + G o anti) + (I - U U^T) dA V S^{-1}
#   dV = V (E o sym - G o anti) + (I - V V^T) dA^T U S^{-1}
# (E o sym pairs equal singular values, G o anti pairs two zero ones).  The VJP, with
# J = U^T gU and K = V^T gV:
#   gA = U (diag(gS) + E o (anti J + anti K) + G o (anti J - anti K)) V^T
#        + (I - U U^T) gU S^{-1} V^T + U S^{-1} gV^T (I - V V^T)
# The polar factor U Vh depends only on G o anti (the E parts of dU and dV cancel), which is
# why it is exact at repeated nonzero singular values.
# full_matrices=True, m > n: extra columns U_x, dU_x = -U S^{-1} V^T dA^T U_x (no rotation
# inside the complement), VJP  gA -= U_x gU_x^T U S^{-1} V^T;  m < n likewise with V_x.

def _svd_fwd(full, a):
    a = np.asarray(a)
    if a.ndim == 2 and a.size and a.dtype.char in "fd":
        u, s, vt, info = _lapack_fn("gesdd", a.dtype)(a, compute_uv=1, full_matrices=full)
        if info == 0:
            return u, s, vt
        raise np.linalg.LinAlgError(f"svd: SVD did not converge (input shape {a.shape})")
    return _lapack("svd", functools.partial(np.linalg.svd, full_matrices=full), a)


def _thin(n):
    """U, S, V (thin, V = Vh^T), the extra columns U_x / V_x (or None), and m, n, k."""
    u, s, vh = outs(n)
    m, nc = _shape(arg(n, 0))[-2:]
    k = min(m, nc)
    ux = vx = None
    if n.params and m > k:
        ux = getitem_(u, (Ellipsis, slice(k, None)))
        u = getitem_(u, (Ellipsis, slice(0, k)))
    if n.params and nc > k:
        vx = _swap(getitem_(vh, (Ellipsis, slice(k, None), slice(None))))
        vh = getitem_(vh, (Ellipsis, slice(0, k), slice(None)))
    return u, s, _swap(vh), ux, vx, m, nc, k


def _svd_masks(s):
    s = np.asarray(s)
    tol = _tol(s)
    close = np.abs(s[..., None, :] - s[..., :, None]) <= tol
    zero_pair = (s[..., None, :] + s[..., :, None]) <= tol
    return close, zero_pair, (s <= tol[..., 0])


def _svd_check(flags, s, *pieces):
    """The mask of close pairs of s (what masks E); raises NonDifferentiableError if a
    cotangent piece couples inside a cluster.  flags: which pieces were passed: J, K, RU (projector residual of gU), RV, XU (U_x^T gU_x),
    XV."""
    close, zero_pair, zero = _svd_masks(s)
    k = close.shape[-1]
    got = dict(zip([f for f, on in zip(("J", "K", "RU", "RV", "XU", "XV"), flags) if on],
                   pieces))
    off = ~np.eye(k, dtype=bool)
    sv = np.asarray(s)
    aj = _anti(got["J"]) if "J" in got else 0.0
    ak = _anti(got["K"]) if "K" in got else 0.0
    jk = [got[x] for x in ("J", "K") if x in got]
    checks = []
    if jk and k > 1 and (close & off).any():
        checks.append((aj + ak, close & off, _scale(*jk)))
    if jk and k > 1 and (zero_pair & off).any():
        checks.append((aj - ak, zero_pair & off, _scale(*jk)))
    for r, g in (("RU", "gU"), ("RV", "gV")):
        if r in got and zero.any():
            # a zero singular value's vector may turn into the complement: a projector
            # residual on it is a basis-dependent derivative
            res = got[r]
            bad = _violations(res, np.broadcast_to(zero[..., None, :], res.shape),
                              _scale(res) + _scale(*jk) if jk else _scale(res))
            if bad is not None:
                *b, _, i = bad
                b = b[len(b) - (sv.ndim - 1):] if sv.ndim > 1 else []
                raise NonDifferentiableError(
                    f"svd: the derivative asked for depends on the arbitrary basis of the "
                    f"null space: S[{i}] = {sv[tuple(b) + (i,)]:.3g} is zero (<= tol), and "
                    f"the cotangent on its singular vector has a component outside the range "
                    f"of the others; see ga.linalg._spectral's SPEC")
    for x in ("XU", "XV"):
        if x in got:
            xa = got[x]
            bad = _violations(_anti(xa), np.ones(xa.shape[-2:], bool), _scale(xa) + 1e-300)
            if bad is not None:
                raise NonDifferentiableError(
                    f"svd: the derivative asked for depends on the arbitrary basis of the "
                    f"extra {'columns of U' if x == 'XU' else 'rows of Vh'} that "
                    f"full_matrices=True adds (any orthonormal basis of the complement will "
                    f"do); use full_matrices=False, or a loss of their projector; see "
                    f"ga.linalg._spectral's SPEC")
    for coupling, mask, scale in checks:
        idx = _violations(coupling, mask, scale)
        if idx is not None:
            _raise_pair("svd", "S", sv, _strip_lead(idx, sv), _tol(sv))
    return close


def _zero_pairs(s):
    return _svd_masks(s)[1]


def _zeros(s):
    return _svd_masks(s)[2]


def _svd_coeffs(s, close):
    """E, G (masked coupling matrices) and S^{-1} (masked), differentiable in s."""
    if close is None:
        close = nondiff_(_close_mask, (s,))
    e = _masked_inv(_pair_diff(s, -1), close)
    g = _masked_inv(_pair_diff(s, +1), nondiff_(_zero_pairs, (s,)))
    sinv = _masked_inv(s, nondiff_(_zeros, (s,)))
    return e, g, sinv


def _antisym(x):
    return mul_(sub_(x, _swap(x)), 0.5)


def _svd_vjp(n, gs):
    gu, gsv, gvh = gs
    u, s, v, ux, vx, m, nc, k = _thin(n)
    gux = gvx = None
    if gu is not None and ux is not None:
        gux = getitem_(gu, (Ellipsis, slice(k, None)))
        gu = getitem_(gu, (Ellipsis, slice(0, k)))
    gv = None
    if gvh is not None:
        gv = _swap(gvh)
        if vx is not None:
            gvx = getitem_(gv, (Ellipsis, slice(k, None)))
            gv = getitem_(gv, (Ellipsis, slice(0, k)))
    if gu is None and gv is None:       # U diag(gS) V^T
        return (None,) if gsv is None else (matmul_(mul_(u, _row(gsv)), _swap(v)),)
    inner = None if gsv is None else mul_(_col(gsv), _eye(k, s))
    # the pieces the degeneracy check looks at
    j = matmul_(_swap(u), gu) if gu is not None else None
    kk = matmul_(_swap(v), gv) if gv is not None else None
    ru = rv = xu = xv = None
    if gu is not None and m > k:
        ru = sub_(gu, matmul_(u, j))                       # (I - U U^T) gU
        if gux is not None:
            ru = sub_(ru, matmul_(ux, matmul_(_swap(gux), u)))
            xu = matmul_(_swap(ux), gux)
    if gv is not None and nc > k:
        rv = sub_(gv, matmul_(v, kk))
        if gvx is not None:
            rv = sub_(rv, matmul_(vx, matmul_(_swap(gvx), v)))
            xv = matmul_(_swap(vx), gvx)
    pieces = (j, kk, ru, rv, xu, xv)
    flags = tuple(p is not None for p in pieces)
    close = nondiff_(functools.partial(_svd_check, flags),
                     (s,) + tuple(p for p in pieces if p is not None))
    e, g, sinv = _svd_coeffs(s, close)
    aj = _antisym(j) if j is not None else None
    ak = _antisym(kk) if kk is not None else None
    if aj is None:
        te, tg = ak, neg_(ak)
    elif ak is None:
        te = tg = aj
    else:
        te, tg = add_(aj, ak), sub_(aj, ak)
    term = add_(mul_(e, te), mul_(g, tg))
    inner = term if inner is None else add_(inner, term)
    ga = matmul_(matmul_(u, inner), _swap(v))
    if ru is not None:
        ga = add_(ga, matmul_(mul_(ru, _row(sinv)), _swap(v)))
    if rv is not None:
        ga = add_(ga, matmul_(mul_(u, _row(sinv)), _swap(rv)))
    return (ga,)


def _svd_jvp(n, t):
    u, s, v, ux, vx, m, nc, k = _thin(n)
    da = t[0]
    dav = matmul_(da, v)                                   # dA V
    dp = matmul_(_swap(u), dav)                           # U^T dA V
    ds = sum_(mul_(dp, _eye(k, s)), -1, False)
    e, g, sinv = _svd_coeffs(s, None)
    sym, anti = _sym(dp), _antisym(dp)
    es, ga = mul_(e, sym), mul_(g, anti)
    du = matmul_(u, add_(es, ga))
    dv = matmul_(v, sub_(es, ga))
    if m > k:
        du = add_(du, mul_(sub_(dav, matmul_(u, dp)), _row(sinv)))
    if nc > k:
        dtu = matmul_(_swap(da), u)                        # dA^T U
        dv = add_(dv, mul_(sub_(dtu, matmul_(v, _swap(dp))), _row(sinv)))
    if ux is not None:      # dU_x = -U S^{-1} V^T dA^T U_x
        dux = neg_(matmul_(u, matmul_(mul_(_swap(dav), _col(sinv)), ux)))
        du = call(_CONCAT, (du, dux), -1)
    dvh = _swap(dv)
    if vx is not None:      # dV_x = -V S^{-1} U^T dA V_x
        dvx = neg_(matmul_(v, matmul_(mul_(matmul_(_swap(u), da), _col(sinv)), vx)))
        dvh = call(_CONCAT, (dvh, _swap(dvx)), -2)
    return (du, ds, dvh)


P_SVD = defprim("svd", _svd_fwd, _svd_vjp, _svd_jvp, multiple=True)


def svd(a, full_matrices=True, compute_uv=True):
    """Singular value decomposition A = U diag(S) Vh, NumPy's conventions: (U, S, Vh) with S
    descending, U (..., m, m) and Vh (..., n, n) for full_matrices=True, (..., m, k) and
    (..., k, n), k = min(m, n), otherwise; compute_uv=False returns S alone.  Batched over
    leading axes; one factorization serves all outputs and both derivative modes.

    Derivatives (Townsend 2016): exact for distinct nonzero singular values; at repeated or
    zero ones, exact for losses that do not depend on the basis inside a cluster (sum(S),
    sum(S**2), the polar factor U @ Vh), and NonDifferentiableError for losses that do.  With
    full_matrices=True and m != n, the extra columns of U (rows of Vh) are any basis of the
    complement: derivatives through them are those of no rotation inside it (exact for their
    projector) and a basis-dependent loss of them raises.  See the module's SPEC."""
    a = _no_half("svd", _matrix("svd", a))
    if not compute_uv:
        return apply(P_SVD, (a,), False)[1]
    return apply(P_SVD, (a,), bool(full_matrices))
