"""ga.linalg: matrix functions with exact derivatives in both modes (the course's det/inverse
and eigenproblem derivatives).

Each function is a primitive of the registry (graphad._prims.defprim), declared here with its
forward, VJP and JVP under one banner; the rules compute with the registry's helpers, so they
serve a plain sweep, a block of cotangents or tangents (jacrev / jacfwd) and a recorded sweep
that is differentiated again (hessian, hvp).  Matrices are the last two axes; leading axes are
a batch, as in NumPy.  Formulas in the course's notation, df = f'(A)[dA]; the source for most is
M. Giles, "An extended collection of matrix derivative results for forward and reverse mode
algorithmic differentiation" (2008).
"""
import numpy as np

from graphad import _core
from graphad._core import Tensor, apply, arg, call, outs
from graphad._elementwise import add_, gmul_, mul_, neg_, nondiff_, reciprocal_, sub_, where_
from graphad._prims import defprim
from graphad._products import _swap, matmul_
from graphad._reductions import sum_
from graphad._shape import reshape_, transpose_

__all__ = ["inv", "slogdet", "eigh", "eigvalsh"]


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _square(name, a):
    """a as an array or Tensor of float dtype, checked to be a (batch of) square matrices."""
    a = a if isinstance(a, Tensor) else np.asarray(a)
    shape = np.shape(_raw(a))
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name}: needs a square matrix (or a batch of them) in the last two "
                         f"axes, got shape {shape}")
    dt = np.asarray(_raw(a)).dtype
    if dt.kind == "c":
        raise TypeError(f"{name}: complex dtypes are not supported yet (got {dt})")
    if dt.kind != "f":
        a = a.astype(np.float64)
    return a


def _lapack(name, fn, a):
    try:
        return fn(a)
    except np.linalg.LinAlgError as e:
        raise np.linalg.LinAlgError(f"{name}: {e} (input shape {np.shape(a)})") from None


# ==============================================================================================
# inv:  Y = A^{-1};  dY = -Y dA Y;  VJP  gA = -Y^T g Y^T  (Giles 2.2.3)

def _inv_vjp(n, g):
    yt = _swap(_core.out(n))
    return (neg_(matmul_(matmul_(yt, g), yt)),)


def _inv_jvp(n, t):
    y = _core.out(n)
    return neg_(matmul_(matmul_(y, t[0]), y))


P_INV = defprim("inv", lambda params, a: _lapack("inv", np.linalg.inv, a), _inv_vjp, _inv_jvp)


def inv(a):
    """The inverse of a square matrix (batched over leading axes)."""
    return apply(P_INV, (_square("inv", a),))


# ==============================================================================================
# slogdet: (sign, log|det A|), one primitive, one factorization.
#   d log|det A| = tr(A^{-1} dA) = <A^{-T}, dA>;   d sign = 0   (Giles 2.2.4)
#   VJP  gA = g_logdet A^{-T}  (a zero cotangent on sign contributes nothing)

def _slogdet_vjp(n, gs):
    g = gs[1]
    if g is None:
        return (None,)
    yt = _swap(call(P_INV, (arg(n, 0),)))
    return (gmul_(reshape_(g, np.shape(_raw(g)) + (1, 1)), yt),)


def _slogdet_jvp(n, t):
    yt = _swap(call(P_INV, (arg(n, 0),)))
    return (None, sum_(mul_(t[0], yt), (-2, -1), False))


P_SLOGDET = defprim("slogdet", lambda params, a: _lapack("slogdet", np.linalg.slogdet, a),
                    _slogdet_vjp, _slogdet_jvp, multiple=True)


def slogdet(a):
    """(sign, logabsdet) of the determinant, as NumPy's slogdet: det A = sign * exp(logabsdet).
    Both outputs come from one LU factorization; only logabsdet has a derivative."""
    return apply(P_SLOGDET, (_square("slogdet", a),))


# ==============================================================================================
# eigh: A = V diag(w) V^T for symmetric A, w ascending.  The input is taken as symmetric: the
# forward factors (A + A^T)/2, so the gradient is symmetric and the derivatives are exact for
# the function computed.  With F_ij = 1/(w_j - w_i) (i != j) and X = V^T dA V:
#   dw = diag(X),   dV = V (F o X)
#   VJP  gA = sym(V (diag(gw) + F o (V^T gV)) V^T),   sym(M) = (M + M^T)/2
# (Giles 3.1; JAX's eigh_jvp_rule).  Degenerate eigenvalues: F_ij is set to 0 where w_i == w_j
# exactly, and a zero (None) cotangent on V contributes exactly zero, so spectral functions
# (losses of w alone, eigvalsh) have exact finite gradients at repeated eigenvalues.

def _eigh_fwd(params, a):
    a = np.asarray(a)
    return _lapack("eigh", np.linalg.eigh, (a + np.swapaxes(a, -1, -2)) * 0.5)


def _nonzero(x):
    return np.asarray(x) != 0


def _eigh_F(w):
    """F_ij = 1/(w_j - w_i) off the diagonal, 0 on it and wherever w_i == w_j."""
    shape = np.shape(_raw(w))
    diff = sub_(reshape_(w, shape[:-1] + (1, shape[-1])), reshape_(w, shape + (1,)))
    ok = nondiff_(_nonzero, (diff,))
    return where_(ok, reciprocal_(where_(ok, diff, 1.0)), 0.0)


def _sym(m):
    return mul_(add_(m, _swap(m)), 0.5)


def _eigh_vjp(n, gs):
    gw, gv = gs
    w, v = outs(n)
    inner = None
    if gw is not None:
        size = np.shape(_raw(w))[-1]
        inner = mul_(reshape_(gw, np.shape(_raw(gw)) + (1,)),
                     np.eye(size, dtype=np.asarray(_raw(w)).dtype))
    if gv is not None:
        term = mul_(_eigh_F(w), matmul_(_swap(v), gv))
        inner = term if inner is None else add_(inner, term)
    if inner is None:
        return (None,)
    return (_sym(matmul_(matmul_(v, inner), _swap(v))),)


def _eigh_jvp(n, t):
    w, v = outs(n)
    x = matmul_(matmul_(_swap(v), _sym(t[0])), v)
    size = np.shape(_raw(w))[-1]
    dw = sum_(mul_(x, np.eye(size, dtype=np.asarray(_raw(w)).dtype)), -1, False)
    dv = matmul_(v, mul_(_eigh_F(w), x))
    return (dw, dv)


P_EIGH = defprim("eigh", _eigh_fwd, _eigh_vjp, _eigh_jvp, multiple=True)


def eigh(a):
    """(w, V): eigenvalues (ascending) and orthonormal eigenvectors of a symmetric matrix
    (batched), A V = V diag(w).  The input is symmetrized, (A + A^T)/2, so its gradient is
    symmetric."""
    return apply(P_EIGH, (_square("eigh", a),))


def eigvalsh(a):
    """The eigenvalues of a symmetric matrix, ascending (exact gradients at repeated ones)."""
    return eigh(a)[0]
