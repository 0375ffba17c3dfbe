"""lincomb: a linear combination sum_i c_i x_i of arrays with constant coefficients, as one
primitive (a Runge-Kutta stage y + h sum_j a_ij k_j, or a step's update, is one node instead
of two per term).  Conventions: graphad/_prims.pyx.

    d(sum_i c_i x_i) = sum_i c_i dx_i:  the VJP gives input i the cotangent c_i g, the JVP is
    the same combination of the tangents, and both are again linear in g / the tangents, so
    they are differentiable at every order.  Operands broadcast as in NumPy (the engine sums a
    broadcast input's cotangent back to its shape and lines up the tangents' batch axes).
"""
import numpy as np

from graphad import _kernels as K
from graphad._core import Tensor, call
from graphad._elementwise import mul_
from graphad._prims import defprim

__all__ = ["lincomb"]


def _lincomb_fwd(coeffs, *xs):
    out = K.lincomb(coeffs, xs)          # one C pass for contiguous float arrays of one shape
    if out is not None:
        return out
    out = xs[0] if coeffs[0] == 1.0 else np.multiply(xs[0], coeffs[0])
    for c, x in zip(coeffs[1:], xs[1:]):
        out = np.add(out, x if c == 1.0 else np.multiply(x, c))
    return np.asarray(out)


def _lincomb_vjp(n, g):
    return tuple([g if c == 1.0 else mul_(g, c) for c in n.params])


def _lincomb_jvp(n, t):
    coeffs, tans = [], []
    for c, ti in zip(n.params, t):
        if ti is not None:
            coeffs.append(c)
            tans.append(ti)
    if not tans:
        return None
    return call(P_LINCOMB, tuple(tans), tuple(coeffs))


P_LINCOMB = defprim("lincomb", _lincomb_fwd, _lincomb_vjp, _lincomb_jvp, broadcasts=True)


def lincomb(coeffs, xs):
    """sum_i coeffs[i] * xs[i] (arrays in, an array out; Tensors in, a Tensor out): coeffs
    are Python numbers (constants), xs arrays or Tensors of broadcastable shapes."""
    coeffs = tuple([float(c) for c in coeffs])
    xs = tuple(xs)
    if len(coeffs) != len(xs) or not xs:
        raise ValueError(f"lincomb: {len(coeffs)} coefficients for {len(xs)} operands")
    return call(P_LINCOMB, xs, coeffs)
