# cython: language_level=3
"""The graph engine: Tensor (value + the node that made it), primitive application, and the
reverse and forward sweeps.

A Tensor that requires grad remembers its primitive, its inputs and the primitive's parameters;
that record is the node.  Nodes are created in evaluation order, so the graph is a DAG whose
topological order the sweeps recover with an iterative depth-first search (no recursion).

Rules (in the topic modules graphad/_elementwise.pyx, _shape.pyx, ...; conventions in
_prims.pyx) read a node's inputs through `arg(node, i)` and its output through `out(node)`
(`outs(node)` for several).  In a plain sweep those are the raw ndarrays and rules run on arrays; in a sweep with
create_graph=True they are the Tensors themselves, so the rules' own operations are recorded and
can be differentiated again.  One rule serves both.
"""
cimport cython
import gc
import threading

import numpy as np
cimport numpy as cnp
from cpython.ref cimport Py_INCREF
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM, PyTuple_GetSlice, PyTuple_GET_ITEM
from cpython.dict cimport PyDict_GetItem, PyDict_Size

cdef extern from "Python.h":
    int PyObject_GC_IsTracked(object o)
    void PyObject_GC_UnTrack(object o)
from graphad cimport _kernels as K

cnp.import_array()

# ----------------------------------------------------------------------------------------------
# engine state, one set per thread (as PyTorch keeps grad mode): graphs built in different
# threads are swept concurrently without one thread's no_grad, sweep or trace reaching another.
# The modes read on every primitive application are C thread-locals (one load each); the
# Python objects (the tracer, the stack of forward evaluations) live in a threading.local and
# are read only while a trace or a forward evaluation runs.

cdef extern from *:
    """
    typedef struct {
        int grad_enabled, recording, debug, tracing, take_pass, flat, depth;
        long sweep, fwd;
        Py_ssize_t fwd_nlead;
        int fwd_demand;
    } ga_thread_state;
    /* initial-exec: a load relative to the thread pointer, no __tls_get_addr call (the block
       is small enough for the static TLS space glibc keeps for modules loaded later) */
    static __thread ga_thread_state ga_ts __attribute__((tls_model("initial-exec"))) =
        {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    """
    bint _grad_enabled "ga_ts.grad_enabled"
    bint _recording "ga_ts.recording"   # rules see Tensors (create_graph) rather than arrays
    bint _debug "ga_ts.debug"
    bint _tracing "ga_ts.tracing"       # graphad.compile's recorder is installed (_thread)
    bint _pass "ga_ts.take_pass"        # the next sweep runs under the recorder (run_traced)
    bint _flat "ga_ts.flat"             # the sweep now running is traced flat (graphad.compile):
                                        # its rules are recorded but need not be differentiable
    long _sweep "ga_ts.sweep"           # the stamp of the sweep now running
    long _fwd "ga_ts.fwd"               # the stamp of the eager forward evaluation, or 0
    Py_ssize_t _fwd_nlead "ga_ts.fwd_nlead"   # its tangents' leading batch axes
    bint _fwd_demand "ga_ts.fwd_demand" # its tangents are computed on demand (_demand)
    int _depth "ga_ts.depth"            # transforms running their function (run_transform)

_thread = threading.local()      # .tracer, .fwd_stack (forward_begin / forward_end)
cdef long _stamp = 0             # incremented by every sweep in any thread (with the GIL held),
                                 # so that marks from different threads never collide
cdef object _O = None            # the ops module (graphad._ops), installed at import
cdef object _I = None            # the NumPy protocols (graphad._interop), installed at import


cdef inline object _get_tracer():
    """This thread's recorder, or None."""
    return getattr(_thread, "tracer", None) if _tracing else None


cdef list _fwd_stack():
    """This thread's interrupted forward evaluations."""
    stack = getattr(_thread, "fwd_stack", None)
    if stack is None:
        stack = _thread.fwd_stack = []
    return stack


cdef Prim _P_ADD = None, _P_SUB = None, _P_MUL = None, _P_DIV = None   # the arithmetic
                                                                       # operators' primitives
cdef Prim _P_NONDIFF = None      # a value computed without a derivative (traced comparisons)


cdef dict _UFUNC_PRIMS = {}      # NumPy's arithmetic ufuncs -> their primitives (a fast path)


def install_ops(module, interop=None):
    global _O, _I, _P_ADD, _P_SUB, _P_MUL, _P_DIV, _P_NONDIFF
    from graphad._elementwise import P_NONDIFF
    _P_NONDIFF = P_NONDIFF
    _O = module
    _I = interop
    _P_ADD, _P_SUB, _P_MUL, _P_DIV = module.P_ADD, module.P_SUB, module.P_MUL, module.P_DIV
    _UFUNC_PRIMS.update({np.add: _P_ADD, np.subtract: _P_SUB, np.multiply: _P_MUL,
                         np.true_divide: _P_DIV, np.power: module.P_POW,
                         np.maximum: module.P_MAX, np.minimum: module.P_MIN,
                         np.matmul: module.P_MATMUL})


def set_tracer(tracer):
    """Install the recorder that graphad.compile uses while tracing (None removes it); returns
    the previous one.  The recorder sees every primitive applied to Tensors (record), every
    sweep (sweep: it runs the sweep itself, keeping the graph), node made from a value computed
    elsewhere (opaque) and state change such as zero_grad (effect)."""
    global _tracing
    prev = _get_tracer()
    _thread.tracer = tracer
    _tracing = tracer is not None
    return prev


def is_grad_enabled():
    return _grad_enabled


def set_grad_enabled(bint mode):
    """Turn graph recording on or off; returns the previous mode."""
    global _grad_enabled
    prev = _grad_enabled
    _grad_enabled = mode
    return prev


def transform_depth():
    """How many transforms are running their function in this thread (> 0: a transform is
    nested in another, and its sweeps must record)."""
    return _depth


def run_transform(f, args, kwargs):
    """f(*args, **kwargs) for a transform (graphad.transforms): with recording on, counted in
    transform_depth while it runs."""
    global _grad_enabled, _depth
    cdef bint prev = _grad_enabled
    cdef int depth = _depth
    _grad_enabled = True
    _depth = depth + 1
    try:
        return f(*args, **kwargs)
    finally:
        _depth = depth
        _grad_enabled = prev


def set_debug(bint mode=True):
    """Anomaly mode: every primitive checks its output (and every rule its cotangents) for
    NaN/Inf and raises FloatingPointError naming the primitive and its input shapes."""
    global _debug
    _debug = mode


def is_debug():
    return _debug


class no_grad:
    """Context manager (and decorator) that disables graph recording."""

    def __enter__(self):
        self._prev = set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = getattr(fn, "__doc__", None)
        return wrapper


# ----------------------------------------------------------------------------------------------
# primitives

cdef class Prim:
    """A primitive operation: forward on arrays, VJP and JVP rules on nodes."""

    def __init__(self, str name, fwd, vjp=None, jvp=None, bint saves=False, int kernel=0,
                 int code=0, fused=None, bint multiple=False, bint broadcasts=False,
                 bint pure=False):
        self.name = name
        self.fwd = fwd
        self.vjp = vjp
        self.jvp = jvp
        self.fused = fused
        self.saves = saves
        self.kernel = kernel
        self.code = code
        self.multiple = multiple
        self.broadcasts = broadcasts
        self.pure = pure

    def __repr__(self):
        return f"Prim({self.name})"


# A primitive with several outputs makes one node whose value is the tuple of its outputs; the
# user sees one Tensor per output, each an `output` node (index i) over it.  The reverse sweep
# gathers the outputs' cotangents into the node's slots (None where none arrived) and calls its
# VJP once with the tuple; forward rules return a tuple of tangents, which `output` picks from.
# So the shared computation (a factorization) runs once, in every sweep and in a replay.
def _output_fwd(i, values):
    return values[i]

def _output_jvp(Tensor n, t):
    return None if t[0] is None else t[0][n.params]

P_OUTPUT = Prim("output", _output_fwd, lambda n, g: (g,), _output_jvp, pure=True)


cdef inline object _shape_of(object x):
    return x.shape if isinstance(x, (np.ndarray, Tensor)) else np.shape(x)


cdef void _check_finite(Prim p, object out, tuple raw, str where) except *:
    if isinstance(out, np.ndarray) and out.dtype.kind in "fc" and not np.isfinite(out).all():
        shapes = ", ".join(str(_shape_of(r)) for r in raw)
        raise FloatingPointError(
            f"{p.name}{where} produced NaN/Inf (input shapes: {shapes})")


cdef tuple unwrap_args(tuple args):
    """The inputs with each Tensor replaced by its value."""
    cdef Py_ssize_t i, n = len(args)
    cdef tuple raw = PyTuple_New(n)
    for i in range(n):
        a = args[i]
        if type(a) is Tensor:
            a = (<Tensor>a).data
        Py_INCREF(a)
        PyTuple_SET_ITEM(raw, i, a)
    return raw


cdef object _binary_forward(Prim p, tuple args):
    """forward() of a binary C-kernel primitive on two operands, one at least a Tensor, read
    in place (no tuple of their values is made)."""
    a, b = args[0], args[1]
    if type(a) is Tensor:
        a = (<Tensor>a).data
    if type(b) is Tensor:
        b = (<Tensor>b).data
    try:
        return K.binary(p.code, a, b)
    except ValueError as e:
        _broadcast_error(p, (a, b), e)


cdef object forward(Prim p, object params, tuple raw):
    """Run a primitive's forward on raw inputs; elementwise kernels are called directly."""
    if p.kernel == 2:
        try:
            return K.binary(p.code, raw[0], raw[1])
        except ValueError as e:
            _broadcast_error(p, raw, e)
    if p.kernel == 1:
        return K.unary(p.code, raw[0])
    if p.kernel == 3:               # matmul, the BLAS kernel (p.fwd names the shapes on error)
        try:
            return K.matmul(raw[0], raw[1])
        except ValueError:
            pass
    if not p.broadcasts:
        return p.fwd(params, *raw)
    try:
        return p.fwd(params, *raw)
    except ValueError as e:
        if type(e) is not ValueError or str(e).startswith(p.name + ":"):
            raise                   # LinAlgError, AxisError, or already named by the forward
        _broadcast_error(p, raw, e)


cdef void _broadcast_error(Prim p, tuple raw, object e) except *:
    """A broadcasting primitive's (unnamed) ValueError, named: a broadcast failure where the
    operands' shapes do not broadcast, else NumPy's own reason (integers to a negative integer
    power)."""
    shapes = [_shape_of(r) for r in raw]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{p.name}: operands could not be broadcast together with shapes "
                         f"{' and '.join(map(str, shapes))}") from None
    raise ValueError(f"{p.name}: {e}") from None


cdef list _input_tangents(tuple args):
    """The tangents the inputs carry in the eager forward evaluation (None for an input without
    one), or None when none does.  In a forward evaluation on demand, none outside a recorded
    sweep, and inside one an input's missing tangent is computed first (_demand)."""
    cdef Py_ssize_t i, n = len(args)
    if _fwd_demand:
        if not _recording:
            return None
        for i in range(n):
            a = args[i]
            if type(a) is Tensor and (<Tensor>a)._requires_grad and \
                    (<Tensor>a)._tan_at != _fwd:
                _demand(<Tensor>a)
    return _known_tangents(args)


cdef list _known_tangents(tuple args):
    """The tangents the inputs carry now (None where an input has none yet), or None."""
    cdef list tans = None
    cdef Py_ssize_t i, n = len(args)
    for i in range(n):
        a = args[i]
        if type(a) is Tensor and (<Tensor>a)._tan_at == _fwd and (<Tensor>a)._tan is not None:
            if tans is None:
                tans = [None] * n
            tans[i] = (<Tensor>a)._tan
    return tans


cdef void _demand(Tensor root) except *:
    """The tangent of a node that has none yet in a forward evaluation on demand (f's own
    operations, made without tangents, when the recorded gradient sweep first reads them):
    its ancestors' missing tangents first, in topological order (an iterative depth-first
    search), each from its JVP rule; a node that no tangent reaches gets None."""
    global _stamp
    cdef Tensor t, a
    cdef list stack = [root], expanded = [False], order = []
    cdef list tans
    cdef Py_ssize_t i, n
    cdef bint any_tan
    _stamp += 1
    cdef long mark = _stamp
    while stack:
        t = <Tensor>stack.pop()
        if expanded.pop():
            order.append(t)
            continue
        if t._tan_at == _fwd or t._seen == mark:
            continue
        t._seen = mark
        stack.append(t)
        expanded.append(True)
        if t.prim is not None:
            if t.parents is None:
                raise _freed_error()
            for a_ in t.parents:
                if type(a_) is Tensor:
                    a = <Tensor>a_
                    if a._requires_grad and a._tan_at != _fwd and a._seen != mark:
                        stack.append(a)
                        expanded.append(False)
    for t in order:                     # parents before children
        if t._tan_at == _fwd:
            continue
        t._tan = None
        if t.prim is not None:
            n = len(t.parents)
            tans = [None] * n
            any_tan = False
            for i in range(n):
                a_ = t.parents[i]
                if type(a_) is Tensor and (<Tensor>a_)._tan_at == _fwd and \
                        (<Tensor>a_)._tan is not None:
                    tans[i] = (<Tensor>a_)._tan
                    any_tan = True
            if any_tan:
                if t.prim.multiple:
                    if t.prim.jvp is None:
                        raise NotImplementedError(f"forward mode: no JVP rule for {t.prim.name}")
                    t._tan = _fit_tangents(_eager_rule(t.prim.jvp, t, None, tans), t,
                                           _fwd_nlead)
                else:
                    _eager_tangent(t.prim, t, tans)
        t._tan_at = _fwd


cdef object _eager_rule(object rule, object node_or_params, object x, object tans):
    """Run a JVP (or fused) rule in the eager forward evaluation: on arrays, recording nothing."""
    global _recording, _grad_enabled
    prev_rec, prev_grad = _recording, _grad_enabled
    _recording = _grad_enabled = False
    try:
        if x is None:
            return rule(node_or_params, tans)
        return rule(node_or_params, x, tans)
    finally:
        _recording, _grad_enabled = prev_rec, prev_grad


cdef list _aligned(Tensor t, list tans, Py_ssize_t nlead):
    """The input tangents of a broadcasting node t, each with its batch axes in front of the
    OUTPUT's axes: a block lead + x.shape of a lower-rank input x becomes lead + (1, ..., 1) +
    x.shape, so that it broadcasts against the other operands as x does (NumPy aligns shapes
    from the right, which would put the batch axes among x's).  Done here, once, so that the
    rules of elementwise primitives are written for one tangent and serve a block."""
    cdef Py_ssize_t i, k, nd = t.data.ndim
    if nlead == 0:
        return tans
    for i in range(len(tans)):
        ti = tans[i]
        if ti is None:
            continue
        xs = _shape_of(t.parents[i])
        k = nd - len(xs)
        if k > 0:
            tans[i] = _O.reshape_(ti, tuple(_shape_of(ti)[:nlead]) + (1,) * k + tuple(xs))
    return tans


cdef bint _tangent_fits(object v, Tensor t, Py_ssize_t nlead) except -1:
    """Whether a JVP's result v has the shape lead + t's shape (else it is broadcast to it);
    for a single tangent of an array decided from the headers."""
    if nlead == 0 and cnp.PyArray_Check(t.data):
        d = (<Tensor>v).data if type(v) is Tensor else v
        if cnp.PyArray_Check(d):
            return cnp.PyArray_SAMESHAPE(<cnp.ndarray>d, <cnp.ndarray>t.data)
    return tuple(_shape_of(v)[nlead:]) == t.data.shape


cdef void _eager_tangent(Prim p, Tensor t, list tans) except *:
    """Give the new node t its tangent in the eager forward evaluation (the JVP rule)."""
    if p.jvp is None:
        raise NotImplementedError(f"forward mode: no JVP rule for {p.name}")
    if p.broadcasts:
        tans = _aligned(t, tans, _fwd_nlead)
    v = _eager_rule(p.jvp, t, None, tans)
    if v is not None:
        if not _tangent_fits(v, t, _fwd_nlead):
            v = _O.broadcast_to_(v, tuple(_shape_of(v)[:_fwd_nlead]) + t.data.shape)
        t._tan = v
        t._tan_at = _fwd


cdef tuple as_outputs(object res):
    """A multi-output forward's result as a tuple of ndarrays (NumPy returns scalars for 0-d)."""
    return tuple([r if cnp.PyArray_CheckExact(r) else np.asarray(r) for r in res])


cdef object _fit_tangents(object v, Tensor m, Py_ssize_t nlead):
    """A multi-output JVP's result: a tuple of tangents, each of shape lead + output shape."""
    if v is None:
        return None
    v = tuple(v)
    if len(v) != len(m.data):
        raise ValueError(f"{m.prim.name}: the JVP rule returned {len(v)} tangents for "
                         f"{len(m.data)} outputs")
    fitted = []
    for vi, d in zip(v, m.data):
        if vi is not None and tuple(_shape_of(vi)[nlead:]) != d.shape:
            vi = _O.broadcast_to_(vi, tuple(_shape_of(vi)[:nlead]) + d.shape)
        fitted.append(vi)
    return tuple(fitted)


cdef object _apply_multi(Prim p, tuple args, object params, bint always_wrap):
    """_apply for a primitive with several outputs: a tuple of Tensors (of arrays for a rule
    in a plain sweep), over one node that holds them all."""
    cdef bint any_tensor = False, needs = False
    cdef Tensor m
    args = _operands(p, args, &any_tensor, &needs, always_wrap)
    raw = unwrap_args(args) if any_tensor else args
    res = forward(p, params, raw)
    saved = None
    if p.saves:
        res, saved = res
    res = as_outputs(res)
    if _debug and always_wrap:
        for r in res:
            _check_finite(p, r, raw, "")
    if not (any_tensor or always_wrap):
        return res
    if not (needs and _grad_enabled):
        return tuple([wrap(r) for r in res])
    m = wrap(res)
    _record_node(m, p, args, params, saved)
    if _fwd != 0:
        tans = _input_tangents(args)
        if tans is not None:
            if p.jvp is None:
                raise NotImplementedError(f"forward mode: no JVP rule for {p.name}")
            m._tan = _fit_tangents(_eager_rule(p.jvp, m, None, tans), m, _fwd_nlead)
            m._tan_at = _fwd
    if _tracing:
        _get_tracer().record(p, args, params, m)
    return tuple([_apply(P_OUTPUT, (m,), i, True) for i in range(len(res))])


cpdef tuple outs(Tensor node):
    """The outputs of a multi-output node as a rule should see them: the arrays, or, when
    recording, Tensors over the node (so that a rule's use of them is differentiated too)."""
    if not _recording:
        return node.data
    return tuple([_apply(P_OUTPUT, (node,), i, False) for i in range(len(node.data))])


_COMPLEX_MSG = ("complex dtypes are not supported yet: graphad differentiates real "
                "floating-point values only (pass real and imaginary parts as separate real "
                "arrays)")


cpdef object native(object a):
    """a itself, or for an array the kernels cannot read as it is (byte-swapped, as loaded from
    FITS, HDF5 or the network; unaligned) a native, aligned copy: the one place where arrays
    enter graphad (operands, tensor(), leaves of the transforms, compiled inputs)."""
    if cnp.PyArray_Check(a) and not (cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a) and
                                     cnp.PyArray_ISALIGNED(<cnp.ndarray>a)):
        return (<cnp.ndarray>a).astype((<cnp.ndarray>a).dtype.newbyteorder("="))
    return a


cdef object _plain_operand(object a, Prim p):
    """An operand that is not a Tensor, as a primitive takes it: a list or tuple that holds
    Tensors stacked with gradients (NumPy would make it a constant), any other an array (the
    rules compute with their operands); complex values refused."""
    if type(a) is list or type(a) is tuple:
        a = _O._stacked(a)
        if type(a) is not Tensor:
            a = np.asarray(a)
            if a.dtype.kind == "c":
                raise TypeError(_COMPLEX_MSG)
    elif cnp.PyArray_Check(a):
        if cnp.PyArray_ISCOMPLEX(<cnp.ndarray>a):
            raise TypeError(_COMPLEX_MSG)
        if not (cnp.PyArray_ISNUMBER(<cnp.ndarray>a) or cnp.PyArray_ISBOOL(<cnp.ndarray>a)):
            raise TypeError(f"{p.name}: an operand of dtype {(<cnp.ndarray>a).dtype} (shape "
                            f"{a.shape}) is not a number array; convert it with "
                            f".astype(np.float64)")
        return native(a)
    elif isinstance(a, (complex, np.complexfloating)):
        raise TypeError(_COMPLEX_MSG)
    return a


cdef inline void _record_node(Tensor t, Prim p, tuple parents, object params, object saved):
    """Make t the node that p made from parents."""
    t._requires_grad = True
    t.prim = p
    t.parents = parents
    t.params = params
    t.saved = saved


cdef inline bint _clean_array(object a):
    """An exact ndarray of float64 or float32, native byte order and aligned: what the checks
    of _plain_operand would pass unchanged (the common case, decided from the header alone)."""
    cdef int t
    if not cnp.PyArray_CheckExact(a):
        return False
    t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    return (t == cnp.NPY_DOUBLE or t == cnp.NPY_FLOAT) and \
        cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a) and cnp.PyArray_ISALIGNED(<cnp.ndarray>a)


cdef inline tuple _operands(Prim p, tuple args, bint *any_tensor, bint *needs, bint outside):
    """The operands as a primitive takes them, noting whether any is a Tensor and whether one
    requires grad.  From outside (apply: the user's values) lists of Tensors are stacked and
    plain operands checked and normalized; a rule's own operands (call) already were."""
    cdef Py_ssize_t i, n = len(args)
    cdef object a, b
    for i in range(n):
        a = <object>PyTuple_GET_ITEM(args, i)
        if type(a) is Tensor:
            any_tensor[0] = True
            if (<Tensor>a)._requires_grad:
                needs[0] = True
        elif outside and type(a) is not float and type(a) is not int and not _clean_array(a):
            b = _plain_operand(a, p)
            if b is not a:
                args = args[:i] + (b,) + args[i + 1:]
                if type(b) is Tensor:           # a list of Tensors, stacked
                    any_tensor[0] = True
                    if (<Tensor>b)._requires_grad:
                        needs[0] = True
    return args


cdef object _apply(Prim p, tuple args, object params, bint always_wrap):
    cdef bint any_tensor = False, needs = False
    cdef Tensor t
    cdef tuple raw
    cdef list tans = None
    if p.multiple:
        return _apply_multi(p, args, params, always_wrap)
    args = _operands(p, args, &any_tensor, &needs, always_wrap)
    # the values as a tuple, for all but a binary kernel's plain evaluation (_binary_forward)
    raw = unwrap_args(args) if any_tensor and (p.kernel != 2 or _fwd != 0 or _debug) else args
    both = None
    if _fwd != 0 and needs and _grad_enabled:
        if _fwd_demand and not _recording:
            # on demand, outside the recorded sweep: no tangent now, unless a fused rule takes
            # the inputs' tangents as they are (a source's) with the value in one pass
            if p.fused is not None:
                tans = _known_tangents(args)
                if tans is not None:
                    both = _eager_rule(p.fused, params, raw, tans)
                    if both is None:
                        tans = None
        else:
            tans = _input_tangents(args)
            if tans is not None and p.fused is not None:
                both = _eager_rule(p.fused, params, raw, tans)    # (value, tangent), or None
    if both is not None:
        res, saved = both[0], None
    elif p.kernel == 2 and any_tensor and len(args) == 2:
        res, saved = _binary_forward(p, args), None
    else:
        res = forward(p, params, raw)
        if p.saves:
            res, saved = res
        else:
            saved = None
    # anomaly mode checks what the user's program computes (apply); a rule's own intermediates
    # (call) may be infinite where the chain rule then multiplies by an exact zero (the where
    # trap), so the sweeps check the cotangents the rules return instead
    if _debug and always_wrap:
        _check_finite(p, res, raw, "")
    if not (any_tensor or always_wrap):     # arrays in, array out (rules in a plain sweep)
        return res
    t = Tensor.__new__(Tensor)
    if needs and _grad_enabled and PyObject_GC_IsTracked(args):
        # the inputs tuple becomes the node's `parents`: when it holds only objects the cycle
        # collector ignores (Tensors, arrays, numbers), it can never be part of a cycle
        for a in args:
            if PyObject_GC_IsTracked(a):
                break
        else:
            PyObject_GC_UnTrack(args)
    # NumPy returns scalars, not 0-d arrays, from ufuncs on 0-d input; a Tensor holds an ndarray
    t.data = res if cnp.PyArray_CheckExact(res) else np.asarray(res)
    if needs and _grad_enabled:
        _record_node(t, p, args, params, saved)
    if tans is not None:
        if both is not None:
            t._tan = both[1]
            t._tan_at = _fwd
        else:
            _eager_tangent(p, t, tans)
    elif _fwd_demand and _recording and needs and _grad_enabled:
        t._tan_at = _fwd                # its inputs' tangents are all known, and none is there
    if _tracing:
        _get_tracer().record(p, args, params, t)
    return t


cpdef object apply(Prim p, tuple args, object params=None):
    """Apply a primitive and return a Tensor (recording a node when an input requires grad)."""
    return _apply(p, args, params, True)


cpdef object call(Prim p, tuple args, object params=None):
    """Apply a primitive inside a rule: arrays in, array out; Tensors in, Tensor out."""
    return _apply(p, args, params, False)


cpdef object arg(Tensor node, Py_ssize_t i):
    """Input i of a node as a rule should see it: raw, or a Tensor when recording.  While
    graphad.compile traces a recorded sweep, an array input comes as a constant Tensor over it,
    so that what a rule computes from it is recorded too (and recomputed from a new input)."""
    a = node.parents[i]
    if not _recording:
        return (<Tensor>a).data if type(a) is Tensor else a
    if _tracing and cnp.PyArray_Check(a):
        return wrap(a)
    return a


cpdef object out(Tensor node):
    """The output of a node as a rule should see it."""
    return node if _recording else node.data


cpdef bint need(Tensor node, Py_ssize_t i):
    """Whether the running reverse sweep needs the cotangent of input i (it leads to a target)."""
    a = node.parents[i]
    return type(a) is Tensor and (<Tensor>a)._need == _sweep


cdef Tensor wrap(object data):
    cdef Tensor t = Tensor.__new__(Tensor)
    t.data = data
    return t


# ----------------------------------------------------------------------------------------------
# Tensor

cdef inline object _unwrap(object x):
    return (<Tensor>x).data if type(x) is Tensor else x


cdef object _F64 = np.dtype(np.float64), _F32 = np.dtype(np.float32)


cpdef _float_dtype_required(dtype, what):
    if dtype is _F64 or dtype is _F32:      # the usual case, without np.dtype()
        return
    if np.dtype(dtype).kind == "c":
        raise TypeError(f"{what}: {_COMPLEX_MSG}")
    if np.dtype(dtype).kind != "f":
        raise TypeError(f"{what}: only floating-point tensors have derivatives, got dtype "
                        f"{np.dtype(dtype)}; convert with .astype(np.float64) first")


# Tensor.__array_ufunc__.  `ndarray (op) Tensor` lands here: NumPy's operator calls the ufunc,
# which calls type(t).__array_ufunc__(t, ufunc, method, *inputs, **kwargs).  (NumPy's operators
# defer to the reflected one only when __array_ufunc__ is None, which would refuse np.exp(t).)
# It is a plain C function (METH_VARARGS | METH_KEYWORDS), not a method: CPython hands it
# NumPy's argument tuple and dict as they are, where a `def` method would repack both; the
# arithmetic ufuncs go straight to their primitives, everything else to graphad._interop.
cdef extern from *:
    """
    static PyMethodDef ga_array_ufunc_def = {"__array_ufunc__", NULL,
                                             METH_VARARGS | METH_KEYWORDS, NULL};
    static PyObject *ga_array_ufunc_new(void *fn, const char *doc) {
        ga_array_ufunc_def.ml_meth = (PyCFunction)(void (*)(void))fn;
        ga_array_ufunc_def.ml_doc = doc;
        return PyCFunction_NewEx(&ga_array_ufunc_def, NULL, NULL);
    }
    """
    object ga_array_ufunc_new(void *fn, const char *doc)


cdef object _array_ufunc(PyObject *unused, tuple args, PyObject *kwargs):
    cdef Py_ssize_t n = len(args), k = 1
    cdef PyObject *p
    if n and type(args[0]) is not Tensor and isinstance(args[0], np.ufunc):
        k = 0           # called through an instance, t.__array_ufunc__(ufunc, ...): no self
    if n < k + 2:
        raise TypeError("__array_ufunc__(ufunc, method, *inputs, **kwargs): too few arguments")
    ufunc = args[k]
    method = args[k + 1]
    if (kwargs == NULL or PyDict_Size(<object>kwargs) == 0) and method == "__call__":
        p = PyDict_GetItem(_UFUNC_PRIMS, ufunc)
        if p != NULL:
            return _apply(<Prim>p, PyTuple_GetSlice(args, k + 2, n), None, True)
    kw = {} if kwargs == NULL else dict(<object>kwargs)
    return _I.array_ufunc(ufunc, method, PyTuple_GetSlice(args, k + 2, n), kw)


_ARRAY_UFUNC = ga_array_ufunc_new(
    <void*>_array_ufunc,
    "__array_ufunc__(self, ufunc, method, *inputs, **kwargs): NumPy's ufunc protocol; a ufunc "
    "on a Tensor runs graphad's differentiable version (graphad/_interop.py) or raises "
    "TypeError.")


# Tensors are not tracked by the cycle collector: a node only references its inputs, never its
# consumers, so graphs are acyclic and reference counting frees them; tracking hundreds of
# thousands of nodes made the collector cost more than building the graph.  The one cycle a
# user can make is a leaf whose .grad came from backward(create_graph=True) (PyTorch's known
# leak too); the transforms (ga.grad of ga.grad, ...) never make it.  Deleting a million-node
# chain does not recurse deeply: every link goes through a `parents` tuple, whose dealloc uses
# CPython's trashcan.  Tensor itself must not: the trashcan stores its list in the GC header,
# which an untracked (no_gc) type does not have (that wrote over memory and crashed).
@cython.no_gc
@cython.freelist(256)
cdef class Tensor:
    """An n-dimensional array that records the operations applied to it.

    Arithmetic, indexing and the NumPy-style methods return new Tensors; when any input
    requires grad (and recording is on), the result remembers how it was made, and
    `backward()` runs a reverse sweep over that record.
    """
    # NumPy's protocols (graphad/_interop.py): a ufunc or NumPy function called on a Tensor runs
    # graphad's differentiable version (np_array + t -> Tensor) or raises TypeError; never a
    # silent constant
    __array_priority__ = 1000

    __array_ufunc__ = _ARRAY_UFUNC      # a C function, see _array_ufunc

    def __array_function__(self, func, types, args, kwargs):
        return _I.array_function(func, types, args, kwargs)

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = (<Tensor>data).data
        self.data = native(np.array(data, dtype=dtype))
        if self.data.dtype.kind == "c":
            raise TypeError(f"tensor: {_COMPLEX_MSG}")
        if self.data.dtype.kind not in "biuf":
            raise TypeError(f"tensor: cannot hold data of dtype {self.data.dtype}")
        self.requires_grad = requires_grad

    # -- attributes --------------------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad != 0

    @requires_grad.setter
    def requires_grad(self, value):
        if value:
            _float_dtype_required(self.data.dtype, "requires_grad")
            if self.prim is not None:
                return
        elif self.prim is not None:
            raise RuntimeError("requires_grad: cannot be switched off on a tensor computed from "
                               "others; use .detach()")
        self._requires_grad = bool(value)

    @property
    def is_leaf(self):
        return self.prim is None

    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    @property
    def T(self):
        return _O.transpose(self)

    def numpy(self):
        """The value as an ndarray (a read-only view: graphad never lets the graph be edited)."""
        v = self.data.view()
        v.flags.writeable = False
        return v

    def item(self):
        _read_value(self, ".item()")
        return self.data.item()

    def __array__(self, dtype=None, copy=None):
        # an implicit conversion (np.asarray, NumPy code without a graphad version) would drop
        # the derivative; constants convert
        if self._requires_grad or (_fwd != 0 and self._tan_at == _fwd):
            raise TypeError(
                "np.asarray: this Tensor carries derivatives (requires grad, or is traced by a "
                "transform), so converting it to a NumPy array would silently make it a "
                "constant; use ga.* functions on it, or take its value explicitly with "
                ".numpy(), .detach() or .item()")
        _read_value(self, "np.asarray")
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return np.asarray(self.data, dtype=dtype)

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        for i in range(len(self.data)):
            yield self[i]

    def __float__(self):
        _read_value(self, "float()")
        return float(self.data)

    def __int__(self):
        _read_value(self, "int()")
        return int(self.data)

    def __bool__(self):
        _read_value(self, "bool()")
        return bool(self.data)

    def __hash__(self):
        return id(self)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.prim is not None:
            extra = f", prim={self.prim.name}"
        elif self._requires_grad:
            extra = ", requires_grad=True"
        return f"tensor({body}{extra})"

    def astype(self, dtype):
        return _O.astype(self, dtype)

    def detach(self):
        """The same value, cut off from the graph."""
        return wrap(self.data)

    def zero_grad(self):
        self.grad = None
        if _tracing:
            _get_tracer().effect(Tensor.zero_grad, (self,))

    def backward(self, seed=None, retain_graph=False, create_graph=False):
        """Reverse sweep from this tensor; gradients accumulate into `.grad` of the leaves."""
        if seed is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward: the output has shape {self.data.shape}, not a scalar; pass a "
                    f"seed (the cotangent, an array of shape {self.data.shape}) to backward(seed)")
            seed = K.ones(self.data.shape, self.data.dtype)
        else:
            seed = _unwrap(seed) if not create_graph else seed
            if _shape_of(seed) != self.data.shape:
                raise ValueError(f"backward: seed has shape {_shape_of(seed)} but the output "
                                 f"has shape {self.data.shape}")
        if not self._requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (no input had "
                               "requires_grad=True, or it was computed under no_grad)")
        reverse_sweep([self], [seed], retain_graph=retain_graph or create_graph,
                      create_graph=create_graph)

    # -- operators ----------------------------------------------------------------------------
    def __add__(self, other): return _apply(_P_ADD, (self, other), None, True)
    def __radd__(self, other): return _apply(_P_ADD, (other, self), None, True)
    def __sub__(self, other): return _apply(_P_SUB, (self, other), None, True)
    def __rsub__(self, other): return _apply(_P_SUB, (other, self), None, True)
    def __mul__(self, other): return _apply(_P_MUL, (self, other), None, True)
    def __rmul__(self, other): return _apply(_P_MUL, (other, self), None, True)
    def __truediv__(self, other): return _apply(_P_DIV, (self, other), None, True)
    def __rtruediv__(self, other): return _apply(_P_DIV, (other, self), None, True)
    def __pow__(self, other, mod): return _O.power(self, other)
    def __rpow__(self, other, mod): return _O.power(other, self)
    def __mod__(self, other): return _O.remainder(self, other)
    def __rmod__(self, other): return _O.remainder(other, self)
    def __matmul__(self, other): return _O.matmul(self, other)
    def __rmatmul__(self, other): return _O.matmul(other, self)
    def __neg__(self): return _O.negative(self)
    def __pos__(self): return self
    def __abs__(self): return _O.abs(self)
    def __getitem__(self, idx): return _O.getitem(self, idx)
    def __lt__(self, other): return derived(self.data < _unwrap(other), (self, other), np.less)
    def __le__(self, other): return derived(self.data <= _unwrap(other), (self, other), np.less_equal)
    def __gt__(self, other): return derived(self.data > _unwrap(other), (self, other), np.greater)
    def __ge__(self, other): return derived(self.data >= _unwrap(other), (self, other), np.greater_equal)
    def __eq__(self, other): return derived(self.data == _unwrap(other), (self, other), np.equal)
    def __ne__(self, other): return derived(self.data != _unwrap(other), (self, other), np.not_equal)

    # -- NumPy-style methods ------------------------------------------------------------------
    # dtype= and out= are accepted so that np.sum(t), np.mean(t, axis=0), ... work on Tensors
    def sum(self, axis=None, dtype=None, out=None, keepdims=False):
        return _reduce(_O.sum, self, axis, dtype, out, keepdims)
    def mean(self, axis=None, dtype=None, out=None, keepdims=False):
        return _reduce(_O.mean, self, axis, dtype, out, keepdims)
    def max(self, axis=None, out=None, keepdims=False):
        return _reduce(_O.max, self, axis, None, out, keepdims)
    def min(self, axis=None, out=None, keepdims=False):
        return _reduce(_O.min, self, axis, None, out, keepdims)
    def reshape(self, *shape, order="C"):
        if order != "C":
            raise ValueError(f"reshape: only order='C' is supported, got {order!r}")
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = shape[0]
        return _O.reshape(self, shape)
    def transpose(self, *axes):
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = axes[0]
        return _O.transpose(self, axes or None)
    def swapaxes(self, a, b): return _O.swapaxes(self, a, b)
    def squeeze(self, axis=None): return _O.squeeze(self, axis)
    def dot(self, other): return _O.dot(self, other)
    def trace(self, offset=0, axis1=0, axis2=1, dtype=None, out=None):
        if out is not None:
            raise TypeError("trace: out= is not supported (graphad never writes into arrays "
                            "it is given)")
        return _O.trace(self if dtype is None else _O.astype(self, dtype), offset, axis1, axis2)
    def diagonal(self, offset=0, axis1=0, axis2=1): return _O.diagonal(self, offset, axis1, axis2)
    def exp(self): return _O.exp(self)
    def log(self): return _O.log(self)
    def sqrt(self): return _O.sqrt(self)
    def tanh(self): return _O.tanh(self)
    def clip(self, lo=None, hi=None): return _O.clip(self, lo, hi)
    def flatten(self): return _O.reshape(self, (-1,))
    def ravel(self): return _O.reshape(self, (-1,))
    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return _O.var(self, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims)
    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
        return _O.std(self, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims)
    def prod(self, axis=None, dtype=None, out=None, keepdims=False):
        return _O.prod(self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)
    def cumsum(self, axis=None, dtype=None, out=None):
        return _O.cumsum(self, axis=axis, dtype=dtype, out=out)
    def cumprod(self, axis=None, dtype=None, out=None):
        return _O.cumprod(self, axis=axis, dtype=dtype, out=out)
    def repeat(self, repeats, axis=None): return _O.repeat(self, repeats, axis)
    def round(self, decimals=0, out=None): return _O.round(self, decimals, out)


# ga.compile: a traced Tensor's value read into Python (bool, float, int, .item(), np.asarray)
# is frozen into the replay; the first such read at each call site warns (graphad.compile)
cdef bint _traced(object x):
    if type(x) is not Tensor:
        return False
    known = getattr(_get_tracer(), "known", None)
    return (<Tensor>x)._requires_grad or (<Tensor>x).prim is not None or \
        (known is not None and id(x) in known)


def traced(x):
    """Whether ga.compile is tracing and x is a traced value (a node, a Tensor argument or a
    value computed from them): a function that would freeze it (a where condition, an index)
    must make it an input of a node instead, or mark the trace unreplayable."""
    return _tracing and _traced(x)


def computed(x):
    """traced(x), and x is not an argument of the traced call (whose array the program binds
    as an input): a value computed from traced values."""
    if not (_tracing and _traced(x)):
        return False
    ids = getattr(_get_tracer(), "input_ids", None)
    return not ((<Tensor>x).prim is None and ids is not None and id((<Tensor>x).data) in ids)


cdef inline void _read_value(Tensor t, str what) except *:
    if _tracing and _traced(t):
        from graphad.compile import frozen_read
        frozen_read(what)


def derived(object value, tuple sources, fn=None):
    """A constant Tensor over value = fn(*sources), computed without a derivative (a
    comparison).  While ga.compile traces and a source is traced, it is a node of its own
    (nondiff, no derivative) instead, so that a replay recomputes it: where(x > 0, ...) then
    follows the new x rather than the traced one.  Without fn it counts as traced, so reading
    it into Python warns."""
    cdef Tensor t
    if _tracing and fn is not None and any(_traced(s) for s in sources):
        t = apply(_P_NONDIFF, sources, fn)
        t._requires_grad = False
        return t
    t = wrap(np.asarray(value))
    if _tracing:
        tracer = _get_tracer()
        known = getattr(tracer, "known", None)
        if known is not None and any(_traced(s) for s in sources):
            known[id(t)] = t
            if getattr(tracer, "flat", False):
                tracer.reads += 1       # a rule froze a value: the sweep is not traced flat
    return t


def _reduce(fn, Tensor x, axis, dtype, out, keepdims):
    if out is not None:
        raise TypeError(f"{fn.__name__}: out= is not supported (graphad never writes into "
                        f"arrays it is given)")
    return fn(x if dtype is None else _O.astype(x, dtype), axis, keepdims)


def tensor(data, requires_grad=False, dtype=None):
    """A new leaf Tensor holding a copy of `data`."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def as_tensor(x):
    """x itself if it is a Tensor, else a constant Tensor viewing x (no copy)."""
    if type(x) is Tensor:
        return x
    x = native(np.asarray(x))
    if x.dtype.kind == "c":
        raise TypeError(f"as_tensor: {_COMPLEX_MSG}")
    return wrap(x)


def leaf(data, requires_grad=True):
    """A leaf Tensor over `data` without copying (for the transforms, which own their inputs)."""
    cdef Tensor t = wrap(native(data))
    if requires_grad:
        _float_dtype_required(t.data.dtype, "differentiation")
        t._requires_grad = True
    return t


def make_node(Prim p, object data, tuple parents, object params=None, object saved=None):
    """A node for a value computed elsewhere (custom rules, the ODE solver); for a primitive
    with several outputs, data is their tuple and the result a tuple of Tensors.  graphad.compile
    replays it with p.fwd(params, *inputs), which must then recompute the value (and residuals,
    when p.saves) from arrays; without p.fwd the trace cannot be replayed."""
    cdef Tensor t = wrap(as_outputs(data) if p.multiple else data)
    _record_node(t, p, parents, params, saved)
    if _fwd != 0 and _grad_enabled:
        tans = _input_tangents(parents)
        if tans is not None:
            if p.multiple:
                t._tan = _fit_tangents(_eager_rule(p.jvp, t, None, tans), t, _fwd_nlead)
                t._tan_at = _fwd
            else:
                _eager_tangent(p, t, tans)
    if _tracing:
        if p.fwd is None:
            _get_tracer().opaque(p, t)
        else:
            _get_tracer().record(p, parents, params, t)
    if p.multiple:
        return tuple([_apply(P_OUTPUT, (t,), i, True) for i in range(len(t.data))])
    return t


# ----------------------------------------------------------------------------------------------
# the sweeps

cdef inline bint _take_pass():
    global _pass
    if _pass:
        _pass = False
        return True
    return False


def run_traced(fn, tuple args):
    """Run the sweep fn(*args) itself while graphad.compile's recorder stays installed (so that
    the primitives it applies are recorded); sweeps nested in it go to the recorder as usual."""
    global _pass
    _pass = True
    try:
        return fn(*args)
    finally:
        _pass = False


def _freed_error():
    return RuntimeError(
        "backward: this graph was already freed by an earlier backward(); call the first "
        "backward(retain_graph=True) to sweep the same graph twice")


cdef list _topo_order(list roots, long stamp, bint by_sources):
    """Nodes reachable from the roots through tensors that require grad, in topological order
    (inputs before outputs), by an iterative depth-first search.  Marks `_need` on every node
    that leads to a target (a leaf, or a source when sources are given).  The search's stack
    is a C array of borrowed pointers (the graph holds every node while it runs, and it runs
    no Python code) with the index of the next parent to visit beside each."""
    cdef list order = []
    cdef Py_ssize_t cap = 64, depth
    cdef PyObject **nodes = <PyObject**>PyMem_Malloc(cap * sizeof(PyObject*))
    cdef Py_ssize_t *next_parent = <Py_ssize_t*>PyMem_Malloc(cap * sizeof(Py_ssize_t))
    cdef Tensor t, p
    cdef tuple parents
    cdef Py_ssize_t i, n
    cdef bint pushed
    try:
        if nodes == NULL or next_parent == NULL:
            raise MemoryError()
        for r in roots:
            t = <Tensor>r
            if t._seen == stamp:
                continue
            t._seen = stamp
            if t._src == stamp or t.prim is None:
                # a root that is itself a target (f returned its input): mark it, so that other
                # roots that lead to it are not pruned
                if t._src == stamp or not by_sources:
                    t._need = stamp
                continue
            if t._freed:
                raise _freed_error()
            nodes[0], next_parent[0], depth = <PyObject*>t, 0, 1
            while depth:
                t = <Tensor>nodes[depth - 1]
                i = next_parent[depth - 1]
                parents = t.parents
                n = len(parents)
                pushed = False
                while i < n:
                    a = <object>PyTuple_GET_ITEM(parents, i)
                    i += 1
                    if type(a) is not Tensor:
                        continue
                    p = <Tensor>a
                    if not p._requires_grad or p._seen == stamp:
                        continue
                    p._seen = stamp
                    if p._src == stamp:          # a source: a target, never descended past
                        p._need = stamp
                        continue
                    if p.prim is None:           # a leaf: a target unless sources were named
                        if not by_sources:
                            p._need = stamp
                        continue
                    if p._freed:
                        raise _freed_error()
                    next_parent[depth - 1] = i
                    if depth == cap:
                        cap *= 2
                        nodes = <PyObject**>_grow(nodes, cap * sizeof(PyObject*))
                        next_parent = <Py_ssize_t*>_grow(next_parent, cap * sizeof(Py_ssize_t))
                    nodes[depth], next_parent[depth] = <PyObject*>p, 0
                    depth += 1
                    pushed = True
                    break
                if pushed:
                    continue
                depth -= 1
                # post-order: every input of t has been finished, so t knows if it leads anywhere
                if t._need != stamp:
                    for a in parents:
                        if type(a) is Tensor and (<Tensor>a)._need == stamp:
                            t._need = stamp
                            break
                if t._need == stamp:
                    order.append(t)
    finally:
        PyMem_Free(nodes)
        PyMem_Free(next_parent)
    return order


cdef void *_grow(void *block, size_t nbytes) except NULL:
    """PyMem_Realloc, raising MemoryError where it fails (the caller still owns the old block
    then, and frees it)."""
    cdef void *grown = PyMem_Realloc(block, nbytes)
    if grown == NULL:
        raise MemoryError()
    return grown


cdef object _sum_to(object g, tuple shape, Py_ssize_t nlead):
    """Un-broadcast: sum g (shape lead + broadcast shape) down to lead + shape.  The one place
    where broadcasting is undone, so that rules may return cotangents of the output's shape."""
    gshape = _shape_of(g)
    cdef Py_ssize_t extra = len(gshape) - nlead - len(shape)
    cdef Py_ssize_t i
    if extra < 0:
        raise ValueError(f"cotangent of shape {gshape} cannot reduce to {shape}")
    axes = list(range(nlead, nlead + extra))
    for i in range(len(shape)):
        if shape[i] == 1 and gshape[nlead + extra + i] != 1:
            axes.append(nlead + extra + i)
    target = tuple(gshape[:nlead]) + shape
    if not axes:
        return _O.reshape_(g, target)
    if nlead == 0 and extra == 1 and len(axes) == 1 and len(gshape) == 2:
        if not _recording:
            return K.sum_rows(g)
        if _flat:
            return _apply(P_SUM_ROWS, (g,), None, False)
    return _O.reshape_(_O.sum_(g, tuple(axes), False), target)


cdef inline void _accumulate(Tensor p, object g):
    """Add a cotangent into p's accumulator.  A buffer the sweep did not allocate itself (a rule
    may pass its input through) is never written to: the first sum allocates an owned one."""
    if p._ct is None:
        p._ct = g
        p._ct_owned = False
    elif _recording:
        p._ct = _O.add(p._ct, g)
    elif p._ct_owned:
        p._ct = K.accumulate(p._ct, g)
    else:
        p._ct = K.binary(K.GA_ADD, p._ct, g)
        p._ct_owned = True


cdef inline void _accumulate_slot(Tensor m, Py_ssize_t i, object g):
    """Add the cotangent of output i into a multi-output node's list of them (an output may be
    read by several `output` nodes in a recorded sweep, so slots add too, out of place)."""
    if m._ct is None:
        m._ct = [None] * len(m.data)
    prev = m._ct[i]
    if prev is None:
        m._ct[i] = g
    elif _recording:
        m._ct[i] = _O.add(prev, g)
    else:
        m._ct[i] = K.binary(K.GA_ADD, prev, g)


cdef object _fit(object g, Tensor p, Py_ssize_t nlead):
    """Bring a rule's cotangent for input p to shape lead + p.shape and to p's dtype."""
    cdef cnp.ndarray ga, pa
    if nlead == 0 and cnp.PyArray_Check(p.data):
        # the usual case, decided from the array headers: already p's shape and dtype (an
        # array, or a Tensor over one in a recorded sweep)
        d = (<Tensor>g).data if type(g) is Tensor else g
        if cnp.PyArray_Check(d):
            ga = <cnp.ndarray>d
            pa = <cnp.ndarray>p.data
            if cnp.PyArray_SAMESHAPE(ga, pa) and cnp.PyArray_TYPE(ga) == cnp.PyArray_TYPE(pa):
                return g
    pshape = p.data.shape
    gshape = _shape_of(g)
    if len(gshape) != nlead + len(pshape) or tuple(gshape[nlead:]) != pshape:
        g = _sum_to(g, pshape, nlead)
    if type(g) is Tensor:
        if (<Tensor>g).data.dtype != p.data.dtype:
            g = _O.astype(g, p.data.dtype)
    elif isinstance(g, np.ndarray):
        if (<cnp.ndarray>g).dtype != p.data.dtype:
            g = g.astype(p.data.dtype)
    else:
        g = np.asarray(g, dtype=p.data.dtype)
    return g


def reverse_sweep(list roots, list seeds, bint retain_graph=False, bint create_graph=False,
                  list sources=None, Py_ssize_t nlead=0, bint flat=False):
    """Propagate the seeds (one cotangent per root, each of shape lead + root.shape) backwards.

    Without sources, cotangents reaching leaves accumulate into their `.grad`.  With sources,
    the sweep stops at them and returns their cotangents (None where none arrived), leaving
    `.grad` alone.  `nlead` leading axes of every cotangent are a batch carried through the
    sweep (a block of cotangents for jacrev).  The graph is freed unless retain_graph.

    flat (graphad.compile, with create_graph): the sweep runs as a recorded one (its rules see
    Tensors, so that what they compute is recorded by the tracer), but instead of accumulating
    into `.grad` it returns the leaves' cotangents as [(leaf, cotangent)], which the tracer
    accumulates itself (and records, to do again on every replay); rules may use primitives
    without derivatives of their own (flat()).
    """
    global _stamp, _sweep, _recording, _grad_enabled, _flat
    cdef Tensor t, p
    cdef Py_ssize_t i, j, n
    cdef long stamp
    if _tracing and not _take_pass():      # graphad.compile: runs and records it
        return _get_tracer().sweep(reverse_sweep, (roots, seeds, True, create_graph, sources, nlead))
    _stamp += 1
    stamp = _stamp
    if sources is not None:
        for s in sources:
            (<Tensor>s)._src = stamp
    order = _topo_order(roots, stamp, sources is not None)
    leaves = []
    # the sweep makes no reference cycles, so the cycle collector has nothing to find in the
    # short-lived tuples it allocates; paused, it does not rescan the whole heap meanwhile
    gc_was_on = gc.isenabled()
    gc.disable()
    prev_sweep, prev_rec, prev_grad, prev_flat = _sweep, _recording, _grad_enabled, _flat
    _sweep = stamp
    _recording = create_graph
    _grad_enabled = create_graph
    _flat = flat
    try:
        for i in range(len(roots)):
            t = <Tensor>roots[i]
            is_target = t._src == stamp or (t.prim is None and sources is None)
            if t._need == stamp or is_target:
                if is_target and t._ct is None:
                    leaves.append(t)
                _accumulate(t, _fit(seeds[i], t, nlead))
        for j in range(len(order) - 1, -1, -1):
            t = <Tensor>order[j]
            order[j] = None
            g = t._ct
            t._ct = None
            if g is not None:
                if t.prim.vjp is None:
                    raise NotImplementedError(f"reverse mode: no VJP rule for {t.prim.name}")
                grads = t.prim.vjp(t, tuple(g) if t.prim.multiple else g)
                parents = t.parents
                n = len(parents)
                for i in range(n):
                    gi = grads[i]
                    if gi is None:
                        continue
                    a = parents[i]
                    if type(a) is not Tensor or (<Tensor>a)._need != stamp:
                        continue
                    p = <Tensor>a
                    if p.prim is not None and p.prim.multiple:     # t is its output t.params
                        _accumulate_slot(p, <Py_ssize_t>t.params, gi)
                        continue
                    gi = _fit(gi, p, nlead)
                    if _debug:
                        _check_finite(t.prim, _unwrap(gi), tuple(_unwrap(x) for x in parents),
                                      f" (backward, cotangent of input {i})")
                    if p._ct is None and (p.prim is None or p._src == stamp):
                        leaves.append(p)
                    _accumulate(p, gi)
            if not retain_graph:
                t.parents = None
                t.saved = None
                t._freed = True
        if sources is not None:
            results = []
            for s in sources:
                t = <Tensor>s
                g = t._ct
                # as for .grad: a buffer the sweep does not own (a seed passed through, a
                # broadcast view) is copied, so the caller gets a fresh writable array
                if g is not None and not (create_graph or t._ct_owned):
                    g = np.array(g, copy=True)
                results.append(g)
                t._ct = None
            for p in leaves:
                p._ct = None
            return results
        if flat:
            pairs = []
            for p in leaves:
                pairs.append((p, p._ct))
                p._ct = None
            return pairs
        for p in leaves:
            g = p._ct
            p._ct = None
            if p.grad is None:
                if create_graph or p._ct_owned:
                    p.grad = g
                else:
                    p.grad = np.array(g, copy=True)
            elif create_graph or type(p.grad) is Tensor:
                p.grad = _O.add(p.grad, g)
            else:
                p.grad = K.accumulate(p.grad, _unwrap(g))
        return None
    finally:
        if gc_was_on:
            gc.enable()
        _sweep, _recording, _grad_enabled, _flat = prev_sweep, prev_rec, prev_grad, prev_flat
        for t in order:
            if t is not None:
                t._ct = None


# Eager forward mode: while f runs between forward_begin and forward_end, every node made from
# inputs that carry tangents gets its own tangent at once, from its primitive's JVP rule (or
# together with its value, when the primitive has a fused rule: a matmul then reads its matrix
# once for both).  Values and tangents go through the program side by side, like dual numbers,
# with no graph traversal afterwards.  The transforms use it for a top-level jvp / jacfwd;
# nested ones, whose sweeps must be recorded, run forward_sweep on the recorded graph instead.

def tracing():
    """Whether graphad.compile is tracing (it records sweeps, which eager mode has none of)."""
    return _tracing


cpdef bint recording():
    """Whether the sweep now running records its rules (they see Tensors: create_graph)."""
    return _recording


cpdef bint flat():
    """Whether the sweep now running is traced flat by graphad.compile: its rules see Tensors
    and are recorded, but what they compute is never differentiated again, so a rule may use a
    fused primitive without a derivative of its own (cross_entropy's C VJP, sum_rows)."""
    return _flat and _recording


def _sum_rows_fwd(params, x):
    return K.sum_rows(x)

# the column sums of a matrix (a bias's cotangent) in one C pass, for flat-traced sweeps
P_SUM_ROWS = Prim("sum_rows", _sum_rows_fwd, pure=True)


def unreplayable(str reason):
    """Tell graphad.compile's trace, if one is running, that it cannot be replayed."""
    tracer = _get_tracer()
    if tracer is not None and tracer.unsupported is None:
        tracer.unsupported = reason


def forward_begin(list inputs, list tangents, Py_ssize_t nlead=0, bint demand=False):
    """Start an eager forward evaluation with these tangents (shape lead + input.shape) on the
    inputs; every forward_begin needs its forward_end.  demand=True (forward-over-reverse,
    graphad.transforms._second_order): operations outside a recorded sweep get no tangent when
    they are made, only when a recorded sweep's operation reads them (or forward_end asks for
    theirs), so that tangents nothing reads are never computed, while the recorded sweep's own
    operations compute theirs with their values (a matmul fusing both).  Outside the sweep, a
    primitive with a fused rule whose inputs' tangents are already there (a source's: A @ x)
    still computes value and tangent in one pass, where the rule takes them."""
    global _stamp, _fwd, _fwd_nlead, _fwd_demand
    _fwd_stack().append((_fwd, _fwd_nlead, _fwd_demand))
    _stamp += 1
    _fwd, _fwd_nlead, _fwd_demand = _stamp, nlead, demand
    for x, v in zip(inputs, tangents):
        (<Tensor>x)._tan = v
        (<Tensor>x)._tan_at = _fwd


def forward_end(list outputs):
    """End the eager forward evaluation; returns the outputs' tangents (None where none
    reached an output)."""
    global _fwd, _fwd_nlead, _fwd_demand
    try:
        if _fwd_demand:
            for o in outputs:
                if type(o) is Tensor and (<Tensor>o)._requires_grad and \
                        (<Tensor>o)._tan_at != _fwd:
                    _demand(<Tensor>o)
        res = [(<Tensor>o)._tan if type(o) is Tensor and (<Tensor>o)._tan_at == _fwd else None
               for o in outputs]
    finally:
        _fwd, _fwd_nlead, _fwd_demand = _fwd_stack().pop()
    return res


def forward_sweep(list inputs, list tangents, list outputs, Py_ssize_t nlead=0,
                  bint record=False, bint flat=False):
    """Push tangents (one per input, shape lead + input.shape) forward through the graph
    between inputs and outputs, with each node's JVP rule; returns the outputs' tangents
    (zeros where no tangent reached).  Rules see Tensors (and so are recorded) when recording
    is on, so forward sweeps nest and compose with reverse ones."""
    global _stamp, _recording, _grad_enabled, _flat
    cdef Tensor t, p
    cdef long stamp
    cdef Py_ssize_t j, i, n
    if _tracing and not _take_pass():
        return _get_tracer().sweep(forward_sweep, (inputs, tangents, outputs, nlead, record))
    _stamp += 1
    stamp = _stamp
    for x in inputs:
        (<Tensor>x)._src = stamp
    order = _topo_order(outputs, stamp, True)
    prev_rec, prev_grad, prev_flat = _recording, _grad_enabled, _flat
    _recording = record
    _grad_enabled = record
    _flat = flat
    try:
        for x, v in zip(inputs, tangents):
            (<Tensor>x)._ct = v
        for j in range(len(order)):
            t = <Tensor>order[j]
            parents = t.parents
            n = len(parents)
            tans = [None] * n
            anything = False
            for i in range(n):
                a = parents[i]
                if type(a) is Tensor and (<Tensor>a)._need == stamp:
                    tans[i] = (<Tensor>a)._ct
                    if tans[i] is not None:
                        anything = True
            if anything:
                if t.prim.jvp is None:
                    raise NotImplementedError(f"forward mode: no JVP rule for {t.prim.name}")
                if t.prim.broadcasts:
                    tans = _aligned(t, tans, nlead)
                v = t.prim.jvp(t, tans)
                if t.prim.multiple:
                    v = _fit_tangents(v, t, nlead)
                elif v is not None and not _tangent_fits(v, t, nlead):
                    v = _O.broadcast_to_(v, tuple(_shape_of(v)[:nlead]) + t.data.shape)
                t._ct = v
        results = []
        for o in outputs:
            t = <Tensor>o
            v = t._ct
            if v is None:
                v = np.zeros(tuple(_shape_of(tangents[0])[:nlead]) + t.data.shape, t.data.dtype)
            results.append(v)
        return results
    finally:
        _recording, _grad_enabled, _flat = prev_rec, prev_grad, prev_flat
        for t in order:
            t._ct = None
        for x in inputs:
            (<Tensor>x)._ct = None
