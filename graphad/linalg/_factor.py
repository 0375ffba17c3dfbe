"""ga.linalg, the LU family: inv, slogdet (and det, solve, lu), which share one factorization."""
import numpy as np

from graphad import _core
from graphad._core import apply, arg, call
from graphad._elementwise import gmul_, mul_, neg_
from graphad._prims import defprim
from graphad._products import _swap, matmul_
from graphad._reductions import sum_
from graphad._shape import reshape_
from graphad.linalg._common import _lapack, _raw, _square

__all__ = ["inv", "slogdet"]


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

