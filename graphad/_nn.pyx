# cython: language_level=3, binding=True
"""Neural-net primitives, for graphad.nn's losses and layers: cross_entropy from logits and
dropout (conventions: graphad/_prims.pyx)."""
import functools

import numpy as np
cimport numpy as cnp
from graphad cimport _kernels as K
from graphad._core cimport Prim, Tensor, call, arg, outs, flat
from graphad._prims cimport raw, shape_of, lead
from graphad._prims import defprim
from graphad._elementwise cimport gmul_, sub_, mul_, nondiff_
from graphad._shape cimport reshape_
from graphad._reductions cimport sum_
from graphad._reductions import P_SOFTMAX

cnp.import_array()


# cross_entropy(x, y): logits x of shape (N, C), integer labels y of shape (N,) (an input, so that
# a compiled program reads new labels on every call; it has no derivative):
#   l_i = logsumexp(x_i) - x_{i y_i},   dl_i = sum_j (softmax(x_i)_j - [j = y_i]) dx_ij,
# reduced by params = "mean" (the sum over i, / N), "sum", or "none" (the vector l).  The forward
# keeps each row's log-sum-exp, so the VJP is one fused C pass: (softmax(x) - onehot(y)) g / N.
def _xent_fwd(reduction, x, y):
    loss, lse = K.xent_fwd(x, y)
    if reduction == "none":
        return loss, lse
    total = K.sum_all(loss)                 # NumPy's pairwise sum, without the ufunc's reduce
    if reduction == "mean":
        total = K.binary(K.GA_DIV, total, loss.shape[0])
    return total, lse

def _onehot(c, dtype, labels):
    return np.eye(c, dtype=dtype)[np.asarray(labels)]

def _xent_d(n):
    """softmax(x) - onehot(y), the derivative of each row's loss, from primitives."""
    x = arg(n, 0)
    onehot = nondiff_(functools.partial(_onehot, shape_of(x)[1], n.data.dtype), (arg(n, 1),))
    return sub_(call(P_SOFTMAX, (x,), (-1,)), onehot)

def _xent_grad_fwd(params, g, x, labels):
    node, scale = params
    return K.xent_vjp(x, labels, node.saved, g, scale)

# the fused VJP as a primitive of its own (no derivative), for sweeps that graphad.compile traces
# flat: params hold the forward node, whose residual (log-sum-exp) a replay recomputes first
P_XENT_GRAD = Prim("cross_entropy_grad", _xent_grad_fwd, pure=True)

def xent_vjp(n, g):
    x = arg(n, 0)
    rows = shape_of(x)[0]
    scale = 1.0 / rows if n.params == "mean" else 1.0
    if lead(g, n) == 0:
        if type(g) is not Tensor and type(x) is not Tensor:
            return (K.xent_vjp(x, raw(arg(n, 1)), n.saved, g, scale), None)
        if flat():
            return (call(P_XENT_GRAD, (g, x, arg(n, 1)), (n, scale)), None)
    # a block of cotangents, or a recorded sweep: the same formula, composed
    gs = shape_of(g)
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
    return mul_(r, 1.0 / shape_of(arg(n, 0))[0]) if n.params == "mean" else r

P_CROSS_ENTROPY = defprim("cross_entropy", _xent_fwd, xent_vjp, xent_jvp, saves=True)


# dropout(x; rate, rng) = (y, m): y = x m with m_i = [u_i >= rate] / (1 - rate), u drawn from
# the NumPy Generator rng by the forward itself (a compiled program draws a fresh mask every
# call); dy = dx m.  The scaled mask m is the second output (no derivative), so that a rule
# reads the mask of the current call, also when a compiled program replays a recorded sweep.
def _dropout_fwd(params, x):
    rate, rng = params
    x = np.asarray(x)
    mask = (rng.random(x.shape) >= rate).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - rate))
    return K.binary(K.GA_MUL, x, mask), mask

P_DROPOUT = defprim("dropout", _dropout_fwd,
                    lambda n, gs: (None if gs[0] is None else gmul_(gs[0], outs(n)[1]),),
                    lambda n, t: (gmul_(t[0], outs(n)[1]), None), multiple=True,
                    pure=False)     # draws its mask


