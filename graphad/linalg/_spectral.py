"""ga.linalg, symmetric eigenproblems: eigh, eigvalsh (and svd)."""
import numpy as np

from graphad._core import apply, outs
from graphad._elementwise import add_, mul_, nondiff_, reciprocal_, sub_, where_
from graphad._prims import defprim
from graphad._products import _swap, matmul_
from graphad._reductions import sum_
from graphad._shape import reshape_
from graphad.linalg._common import _lapack, _raw, _square, _sym

__all__ = ["eigh", "eigvalsh"]


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
