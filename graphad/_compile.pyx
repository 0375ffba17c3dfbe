# cython: language_level=3
"""The trace recorder and the replay loop behind graphad.compile.

Tracing runs the function once, eagerly, with a Tracer installed in the engine (_core.set_tracer).
The Tracer keeps, in program order,

  FWD     every primitive applied to Tensors: (out Tensor, primitive, inputs, parameters);
  SWEEP   every plain reverse or forward sweep, which it runs itself with the graph kept (a
          recorded sweep, create_graph or nested forward mode, is made of primitives, which
          it keeps as FWD instead);
  EFFECT  every state change the program makes outside the graph: zero_grad, an optimizer's
          in-place update, a learning-rate schedule (graphad.compile.effect records them).

The recorded nodes are the program: they stay alive between calls, and a replay writes each
node's new value into the same Tensor (`out.data = fwd(params, *inputs)`), so the VJP and JVP
rules, which read a node's inputs and output through the node, run unchanged during the replayed
sweeps.  The inputs of the traced call are bound by identity: an input array that a primitive
received directly (or a constant Tensor passed as an argument) becomes a proxy Tensor whose
value is replaced on every call, a leaf made over an input array (a transform's source) is
rebound, and an input array inside a primitive's parameters (integer indices) is substituted.
The sweeps are replayed by the engine's own reverse_sweep / forward_sweep on the kept graph
(with retain_graph), so `.grad` accumulation, un-broadcasting and the sources' results follow
exactly the eager rules.  No Tensor is created and no public function, shape
check or broadcasting decision runs again: what remains per primitive is its forward kernel and,
in the sweeps, its rules.  After a call every node's value is released, so that the buffers
return to the kernels' cache (_kernels.new_array) and the next call reuses them.
"""
import numpy as np
cimport numpy as cnp
from graphad._core cimport Prim, Tensor, as_outputs, forward, unwrap_args, wrap
from graphad import _core

cnp.import_array()

cdef enum:
    FWD = 0
    SWEEP = 1
    EFFECT = 2


# ----------------------------------------------------------------------------------------------
# recording

cdef class Tracer:
    """Installed in the engine while a function is traced; see the module docstring."""
    cdef public list code           # (kind, ...) tuples in program order
    cdef public object unsupported  # why this trace cannot be replayed, or None
    cdef public list sweep_results
    cdef public dict known          # id -> Tensor: the traced values (nodes, Tensor arguments,
                                    # comparisons of them), whose reads into Python are frozen
    cdef public dict constants      # id -> array: NumPy results marked the same on every call

    def __init__(self):
        self.code = []
        self.unsupported = None
        self.sweep_results = []
        self.known = {}
        self.constants = {}

    def record(self, Prim p, tuple args, object params, Tensor out):
        self.code.append((FWD, out, p, args, params))
        self.known[id(out)] = out

    def opaque(self, Prim p, Tensor out):
        if self.unsupported is None:
            self.unsupported = (f"the node '{p.name}' was computed outside the primitive "
                                f"registry (a custom rule or solver), so it cannot be replayed")

    def effect(self, fn, tuple args):
        self.code.append((EFFECT, fn, args))

    def sweep(self, fn, tuple args):
        if (fn is _core.reverse_sweep and args[3]) or (fn is _core.forward_sweep and args[4]):
            # a recorded sweep (create_graph, nested forward mode) is made of primitives: it
            # runs with the recorder on, so that the program holds the nodes it makes and
            # recomputes them on every replay (no SWEEP instruction: nothing to rerun)
            if fn is _core.reverse_sweep and args[4] is None:
                self.unsupported = ("backward(create_graph=True) into .grad (use ga.grad / "
                                    "ga.vjp, whose results the program can recompute)")
            return _core.run_traced(fn, args)
        prev = _core.set_tracer(None)
        try:
            res = _contiguous(fn(*args))
        finally:
            _core.set_tracer(prev)
        self.code.append((SWEEP, fn, args, len(self.sweep_results)))
        self.sweep_results.append(res)
        return res


cdef object _contiguous(object res):
    """A sweep's results, each array C-contiguous: an output that is a view of one (a Jacobian
    block reshaped) is then found again by its offset and strides in the next call's result."""
    if type(res) is not list:
        return res
    # (not np.ascontiguousarray for all: it turns a 0-d array into shape (1,))
    return [np.ascontiguousarray(r) if cnp.PyArray_Check(r) and not r.flags.c_contiguous
            else r for r in <list>res]


# ----------------------------------------------------------------------------------------------
# binding the inputs

cdef class Subst:
    """A value with input arrays at known places: rebuilt with the new inputs on each call."""
    cdef object template    # the traced value, with _Slot(i) where input i was
    cdef public bint any

    def __init__(self, value, dict index):
        self.any = False
        self.template = self._scan(value, index)

    cdef object _scan(self, v, dict index):
        if cnp.PyArray_Check(v):
            i = index.get(id(v))
            if i is not None:
                self.any = True
                return _Slot(i)
            return v
        if type(v) is tuple or type(v) is list:
            items = [self._scan(x, index) for x in v]
            return tuple(items) if type(v) is tuple else items
        return v

    cdef object build(self, list inputs):
        return _build(self.template, inputs)


cdef class _Slot:
    cdef Py_ssize_t i

    def __init__(self, Py_ssize_t i):
        self.i = i


cdef object _build(object t, list inputs):
    if type(t) is _Slot:
        return inputs[(<_Slot>t).i]
    if type(t) is tuple:
        return tuple([_build(x, inputs) for x in <tuple>t])
    if type(t) is list:
        return [_build(x, inputs) for x in <list>t]
    return t


# ----------------------------------------------------------------------------------------------
# the program

cdef class Program:
    """A traced function's primitives, sweeps and effects, replayed on new inputs."""
    cdef list code              # as recorded, with inputs bound (see bind)
    cdef list rebind            # [(Tensor, input index)]: leaves and proxies over an input
    cdef list nodes             # every FWD output, released after a call
    cdef public Py_ssize_t n_fwd, n_sweeps, n_effects
    cdef list results           # the sweeps' results of the call running now

    def __init__(self, Tracer tracer, list inputs, dict tensor_inputs=None):
        """inputs: the traced call's arrays (None where an argument is not one); tensor_inputs:
        id -> input index of the constant Tensors passed as arguments (they are replaced by
        proxies, so that the caller's Tensor is never rebound)."""
        cdef dict index = {}
        cdef dict proxies = {}
        cdef dict produced = {}
        cdef Tensor t, out
        self.code = []
        self.rebind = []
        self.nodes = []
        self.n_fwd = self.n_sweeps = self.n_effects = 0
        for i, x in enumerate(inputs):
            if x is not None:
                index[id(x)] = i
        tensor_inputs = tensor_inputs or {}
        seen_leaf = set()

        def proxy(Py_ssize_t i, value):
            if i not in proxies:
                proxies[i] = wrap(value)
                self.rebind.append((proxies[i], i))
            return proxies[i]

        def bind_tensor(Tensor a):
            # a leaf over an input array (a transform's source, a constant wrapper) is rebound
            if a.prim is None and id(a) not in produced and id(a) not in seen_leaf:
                seen_leaf.add(id(a))
                i = index.get(id(a.data))
                if i is not None:
                    self.rebind.append((a, i))

        def bind_args(tuple args):
            cdef list items = None
            for k in range(len(args)):
                a = args[k]
                if type(a) is Tensor and id(a) in tensor_inputs:
                    i = tensor_inputs[id(a)]
                    a = proxy(i, (<Tensor>a).data)
                elif type(a) is Tensor:
                    bind_tensor(a)
                    continue
                elif cnp.PyArray_Check(a) and id(a) in index:
                    a = proxy(index[id(a)], a)
                else:
                    continue
                if items is None:
                    items = list(args)
                items[k] = a
            return args if items is None else tuple(items)

        for ins in tracer.code:
            kind = ins[0]
            if kind == FWD:
                _, out, p, args, params = ins
                new_args = bind_args(args)
                if out.parents is args:
                    out.parents = new_args
                sub = Subst(params, index)
                self.code.append((FWD, out, p, new_args, params, sub if sub.any else None))
                produced[id(out)] = True
                self.nodes.append(out)
                self.n_fwd += 1
            elif kind == SWEEP:
                _, fn, args, k = ins
                for group in args:
                    if type(group) is list:
                        for a in group:
                            if type(a) is Tensor:
                                bind_tensor(a)
                sub = Subst(args, index)
                self.code.append((SWEEP, fn, args, sub if sub.any else None, k))
                self.n_sweeps += 1
            else:
                self.code.append(ins)
                self.n_effects += 1

    def run(self, list inputs):
        """Replay on new inputs (of the traced shapes and dtypes); returns the sweeps' results."""
        cdef Tensor t
        cdef Prim p
        cdef tuple args
        cdef Py_ssize_t i
        cdef list results = [None] * self.n_sweeps
        for t, i in self.rebind:
            t.data = inputs[i]
        try:
            for ins in self.code:
                kind = ins[0]
                if kind == FWD:
                    t = <Tensor>ins[1]
                    p = <Prim>ins[2]
                    args = <tuple>ins[3]
                    params = ins[4]
                    if ins[5] is not None:
                        params = (<Subst>ins[5]).build(inputs)
                        if t.prim is not None:
                            t.params = params
                    res = forward(p, params, unwrap_args(args))
                    if p.saves:
                        res, saved = res
                        t.saved = saved
                    if p.multiple:
                        t.data = as_outputs(res)
                    else:
                        t.data = res if cnp.PyArray_CheckExact(res) else np.asarray(res)
                elif kind == SWEEP:
                    args = <tuple>ins[2]
                    if ins[3] is not None:
                        args = (<Subst>ins[3]).build(inputs)
                    results[<Py_ssize_t>ins[4]] = _contiguous(ins[1](*args))
                else:
                    ins[1](*ins[2])
        except BaseException:
            self.release()
            raise
        return results

    def values(self):
        """The current values of the program's nodes (for output mapping)."""
        return self.nodes

    def release(self):
        """Drop every node's value and residuals (they are recomputed by the next call), and
        the references to this call's inputs."""
        cdef Tensor t
        for t, _ in self.rebind:
            t.data = None
        for t in self.nodes:
            t.data = None
            t.saved = None
            t._ct = None
