# cython: language_level=3, binding=False
"""The primitive registry: every differentiable operation of graphad, declared once.

The primitives live in one module per topic, each declaring its primitives' forward, VJP and
JVP rules together with the public functions built on them:

    graphad/_elementwise.pyx   arithmetic, exp log sin ..., rounding, where, clip, astype
    graphad/_shape.pyx         reshape transpose broadcast_to getitem concatenate stack ...
    graphad/_reductions.pyx    sum mean max min logsumexp softmax log_softmax
    graphad/_products.pyx      matmul einsum dot outer trace diagonal diag tril triu kron vec
    graphad/_nn.pyx            cross_entropy dropout (graphad.nn builds on them)
    graphad/linalg/            inv det slogdet solve lu eigh svd cholesky expm ... (Python)

This module holds what they share: defprim, the REGISTRY, and the shape utilities.

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

A rule reads the node's inputs with arg(n, i), its output with out(n) (outs(n) for several),
its static parameters with n.params, and computes with the helpers ending in an underscore
(mul_, exp_, ...: each topic module declares those of its primitives in its .pxd).  Those
run C kernels on arrays and record nodes on Tensors, so one rule serves a plain sweep, a sweep
whose cotangents carry leading batch axes (a block of k cotangents: jacrev / jacfwd), and a
create_graph sweep whose result is differentiated again.  To stay batch-agnostic, rules index
axes from the end (negative axes) and let `lead(g, n)` count the batch axes when a shape is
spelled out; the engine lines up the tangents of broadcasting primitives (broadcasts=True)
and undoes broadcasting of cotangents, so elementwise rules never see the batch axes.

Chain-rule products go through gmul_(g, d) = g * d except that it is exactly 0 where g == 0: a
zero cotangent never turns into 0 * inf = NaN (the `where` trap: grad of where(x > 0, log(x), 0)
at x = 0 is 0, not NaN).

Each rule's comment states the derivative in the course's notation, df = f'(x)[dx].
"""
import numpy as np
cimport numpy as cnp
from graphad._core cimport Prim, Tensor

cnp.import_array()

REGISTRY = {}


def defprim(name, fwd, vjp=None, jvp=None, saves=False, kernel=0, code=0, fused=None,
            multiple=False, broadcasts=False, pure=True):
    """Register a primitive.  kernel=1/2 marks fwd as the unary/binary C kernel `code`, which
    the engine then calls directly (kernel=3: matmul's).  fused(params, inputs, tangents) -> (out, tangent) or None
    may compute the value and its tangent together in eager forward mode.  multiple=True: fwd
    returns a tuple of outputs, vjp(n, gs) gets one cotangent per output (None for zero) and
    jvp returns one tangent per output (None for zero); outs(n) reads the outputs.
    broadcasts=True: elementwise with NumPy broadcasting; the engine lines up the batch axes
    of the input tangents with the output's before calling jvp.  pure=False: fwd changes or
    reads state besides its inputs (draws random numbers, calls the user's code), so a
    compiled program runs it even where nothing reads its value."""
    if name in REGISTRY:
        raise ValueError(f"defprim: a primitive named {name!r} is already registered")
    p = Prim(name, fwd, vjp, jvp, saves, kernel, code, fused, multiple, broadcasts, pure)
    REGISTRY[name] = p
    return p


cdef object raw(object x):
    return (<Tensor>x).data if type(x) is Tensor else x


# shape and ndim without NumPy's Python-level np.shape / np.ndim (they cost ~0.3 us a call)
cdef tuple shape_of(object x):
    if type(x) is Tensor:
        x = (<Tensor>x).data
    return x.shape if cnp.PyArray_Check(x) else np.shape(x)


cdef Py_ssize_t ndim_of(object x):
    if type(x) is Tensor:
        x = (<Tensor>x).data
    return cnp.PyArray_NDIM(<cnp.ndarray>x) if cnp.PyArray_Check(x) else np.ndim(x)


cdef Py_ssize_t lead(object g, Tensor n):
    """Number of leading batch axes that a cotangent/tangent carries beyond the node's shape."""
    return ndim_of(g) - n.data.ndim


cdef tuple arg_shape(Tensor n):
    """The shape of a node's (first) input."""
    return shape_of(n.parents[0])


cpdef tuple norm_axes(object axis, Py_ssize_t ndim, str name):
    """Axes as a sorted tuple of negative indices (counted from the end, so that a rule works
    under leading batch axes); out-of-range axes raise NumPy's AxisError."""
    if axis is None:
        return tuple(range(-ndim, 0))
    if not isinstance(axis, (tuple, list)):
        axis = (axis,)
    return tuple(sorted(set([axis_index(a, ndim, name) - ndim for a in axis])))


cpdef Py_ssize_t axis_index(object axis, Py_ssize_t ndim, str name) except -1:
    """One axis as an index in [0, ndim); out of range (or not an integer) raises NumPy's
    AxisError, which is a ValueError, rather than wrapping around."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name}: an axis must be an integer, got {axis!r}")
    a = int(axis)
    if not -ndim <= a < ndim:
        raise np.exceptions.AxisError(a, ndim, name)
    return a % ndim


cdef bint _has_tensor(x):
    if type(x) is Tensor:
        return True
    if type(x) is list or type(x) is tuple:
        for e in x:
            if _has_tensor(e):
                return True
    return False


cpdef object stacked(object x):
    """A list or tuple that holds Tensors, as one Tensor stacked with gradients (NumPy would
    turn it into a constant array); anything else as it is."""
    if (type(x) is list or type(x) is tuple) and _has_tensor(x):
        from graphad._shape import stack
        return stack([stacked(e) for e in x])
    return x
