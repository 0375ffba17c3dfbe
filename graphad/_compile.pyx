# cython: language_level=3
"""The trace recorder and the flat program behind graphad.compile.

Tracing runs the function once, eagerly, with a Tracer installed in the engine (_core.set_tracer).
The Tracer keeps, in program order,

  FWD     every primitive applied to Tensors: (out Tensor, primitive, inputs, parameters);
  GRAD    a reverse sweep's cotangent for a leaf, accumulated into its `.grad`;
  RESULT  a sweep's results (the cotangents of its sources, the tangents of its outputs);
  EFFECT  every state change the program makes outside the graph: zero_grad, an optimizer's
          in-place update, a learning-rate schedule (graphad.compile.effect records them);
  SWEEP   a sweep that could not be traced flat (see below), rerun as a whole on the kept graph.

Sweeps are traced flat.  A reverse or forward sweep runs as a recorded one (create_graph: its
rules see Tensors), so that the primitives the rules apply (through mul_, matmul_, call, ...)
are recorded as FWD instructions like those of the forward pass.  The sweep's results and
`.grad` updates become RESULT and GRAD instructions.
So the program is one flat list of forward kernels, in the order the trace ran them (a
topological order, found once, by the trace itself), and a replay runs no sweep, no sort and
no rule: per instruction it calls the primitive's forward (an elementwise or product kernel
directly) and stores the result as the node's value.  A sweep through something a flat trace
cannot record (a custom rule, which computes with the user's functions; a rule that reads a
value into Python) is rolled back and kept as a SWEEP instead, rerun by the engine's own
reverse_sweep / forward_sweep over the kept graph, as before.

The recorded nodes stay alive between calls, and a replay writes each node's new value into
the same Tensor.  The inputs of the traced call are bound by identity: an input array that a
primitive received directly (or a constant Tensor passed as an argument) becomes a proxy
Tensor whose value is replaced on every call, a leaf made over an input array (a transform's
source) is rebound, an input array inside a primitive's parameters (integer indices) is
substituted, and an array that was a node's value when traced stands for that node.  After a
call every node's value is released, so that the buffers return to the kernels' cache
(_kernels.new_array) and the next call reuses them.

Once traced, a flat program is simplified (Program.optimize): matrix-times-vector products
that share a matrix are merged into one product (merge_products), the instructions of pure
primitives whose values nothing reads are removed (eliminate_dead), and each value is released
right after its last reader (keep).
"""
import threading

import numpy as np
cimport numpy as cnp
from graphad._core cimport Prim, Tensor, as_outputs, forward, unwrap_args, wrap
from graphad cimport _kernels as K
from graphad import _core
from graphad.tree import LEAF as _LEAF, unflatten as _unflatten
from graphad._shape import P_TRANSPOSE

cdef Prim _P_TRANSPOSE = P_TRANSPOSE, _P_SUM_ROWS = _core.P_SUM_ROWS

cnp.import_array()

cdef enum:
    FWD = 0
    SWEEP = 1
    EFFECT = 2
    GRAD = 3
    RESULT = 4
    ZERO = 5

# replays that ran the flat path (a program without SWEEP instructions), for the tests
cdef long flat_replays = 0
cdef long sweep_replays = 0


def replay_counts():
    """(flat replays, replays that reran a sweep) since import."""
    return flat_replays, sweep_replays



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
    cdef public bint flat           # a sweep is being traced flat (reads roll it back)
    cdef public long reads          # values read into Python (or frozen) during flat sweeps
    cdef public long n_flat         # sweeps traced flat / kept as SWEEP
    cdef public long n_kept
    cdef public set input_ids       # ids of the traced call's input arrays

    def __init__(self):
        self.code = []
        self.unsupported = None
        self.sweep_results = []
        self.known = {}
        self.constants = {}
        self.flat = False
        self.reads = 0
        self.n_flat = self.n_kept = 0
        self.input_ids = set()

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
        if self.flat:
            # a sweep inside a rule (a custom rule, an ODE solve): the outer sweep is not
            # traced flat but rerun as a whole
            self.reads += 1
        if (fn is _core.reverse_sweep and args[3]) or (fn is _core.forward_sweep and args[4]):
            # a recorded sweep (create_graph, nested forward mode) is made of primitives: it
            # runs with the recorder on, so that the program holds the nodes it makes and
            # recomputes them on every replay (no SWEEP instruction: nothing to rerun)
            if fn is _core.reverse_sweep and args[4] is None:
                self.unsupported = ("backward(create_graph=True) into .grad (use ga.grad / "
                                    "ga.vjp, whose results the program can recompute)")
            return _core.run_traced(fn, args)
        if not self.flat and not self._input_params():
            res = self._flat_sweep(fn, args)
            if res is not _ROLLED_BACK:
                self.n_flat += 1
                return res
        self.n_kept += 1
        prev = _core.set_tracer(None)
        try:
            res = _contiguous(fn(*args))
        finally:
            _core.set_tracer(prev)
        self.code.append((SWEEP, fn, args, len(self.sweep_results)))
        self.sweep_results.append(res)
        return res

    cdef object _flat_sweep(self, fn, tuple args):
        """Run a plain sweep with its rules recorded (see the module docstring); returns its
        result as the plain sweep would, or _ROLLED_BACK (nothing recorded) when a rule did
        something the program cannot recompute."""
        cdef Py_ssize_t mark = len(self.code)
        cdef long reads = self.reads
        cdef Py_ssize_t n_results = len(self.sweep_results)
        unsupported = self.unsupported
        if fn is _core.reverse_sweep:
            roots, seeds, retain, _, sources, nlead = args
            call = lambda: _core.reverse_sweep(roots, seeds, True, True, sources, nlead, True)
        else:
            inputs, tangents, outputs, nlead, _ = args
            call = lambda: _core.forward_sweep(inputs, tangents, outputs, nlead, True, True)
        self.flat = True
        try:
            res = _core.run_traced(call, ())
        except Exception:
            res = _ROLLED_BACK          # the plain sweep below raises it again, if it is real
        finally:
            self.flat = False
        if res is _ROLLED_BACK or self.reads != reads or self.unsupported is not unsupported:
            del self.code[mark:]
            del self.sweep_results[n_results:]
            self.unsupported = unsupported
            return _ROLLED_BACK
        if fn is _core.reverse_sweep and sources is None:
            shared = self._shared()
            for p, g in res:                    # into .grad, as the plain sweep would
                copy = _needs_copy(g, shared)
                _accumulate_grad(<Tensor>p, g, copy)
                self.code.append((GRAD, p, g, copy))
            return None
        shared = self._shared()
        srcs = []
        values = []
        for r in res:
            if r is None:
                srcs.append(None)
                values.append(None)
                continue
            copy = _needs_copy(r, shared)
            srcs.append((r, copy))
            values.append(_value_of(r, copy))
        k = len(self.sweep_results)
        self.code.append((RESULT, srcs, k))
        self.sweep_results.append(values)
        return values

    cdef bint _input_params(self):
        """Whether a node of the graph holds an input array in its parameters (integer indices):
        a rule may derive values from them in Python, which a flat trace would freeze, so its
        sweeps are rerun as a whole (the node's parameters are rebound on every call)."""
        if not self.input_ids:
            return False
        for ins in self.code:
            if ins[0] == FWD and (<Tensor>ins[1]).prim is not None and \
                    _holds(ins[4], self.input_ids):
                return True
        return False

    cdef set _shared(self):
        """ids of the arrays that are not a fresh buffer of one node: the raw operands of the
        program's primitives, and values that several nodes hold (multi-output nodes and
        their outputs, views)."""
        cdef set seen = set()
        cdef set shared = set()
        cdef Tensor t
        for ins in self.code:
            if ins[0] != FWD:
                continue
            for a in <tuple>ins[3]:
                if cnp.PyArray_Check(a):
                    shared.add(id(a))
            t = <Tensor>ins[1]
            vals = t.data if type(t.data) is tuple else (t.data,)
            for v in vals:
                if id(v) in seen:
                    shared.add(id(v))
                seen.add(id(v))
        return shared


cdef object _ROLLED_BACK = object()


cdef bint _holds(object v, set ids):
    if cnp.PyArray_Check(v):
        return id(v) in ids
    if type(v) is tuple or type(v) is list:
        for x in v:
            if _holds(x, ids):
                return True
    return False


cdef bint _needs_copy(object g, set shared):
    """Whether a sweep's result g (a node of the program, or an array) must be copied on every
    replay to be the caller's own fresh array, as the plain sweep's results are."""
    if type(g) is not Tensor:
        return True                             # a seed passed through, a constant
    v = (<Tensor>g).data
    if not cnp.PyArray_CheckExact(v) or id(v) in shared:
        return True
    cdef cnp.ndarray a = <cnp.ndarray>v
    if not cnp.PyArray_IS_C_CONTIGUOUS(a) or not cnp.PyArray_ISWRITEABLE(a):
        return True
    base = cnp.PyArray_BASE(a)
    return base != NULL and cnp.PyArray_Check(<object>base)        # a view of another array


cdef object _value_of(object g, bint copy):
    v = (<Tensor>g).data if type(g) is Tensor else g
    if copy:
        return np.array(v, copy=True, order="C")
    return v


cdef object _add = None


cdef void _accumulate_grad(Tensor p, object g, bint copy) except *:
    """p.grad += g's value, as the plain reverse sweep does for a leaf."""
    global _add
    v = _value_of(g, copy)
    if p.grad is None:
        p.grad = v
    elif type(p.grad) is Tensor:
        if _add is None:
            from graphad._ops import add as _add_fn
            _add = _add_fn
        p.grad = _add(p.grad, v)
    else:
        p.grad = K.accumulate(p.grad, v)


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

cdef class Instr:
    """One instruction of a Program (see the module docstring for the kinds)."""
    cdef int kind
    cdef int fast          # FWD: 1 / 2 unary / binary C kernel, 3 matmul, 4 sum_rows,
                           # 5 a matrix's transpose, 6 two vectors times one matrix (merged
                           # products: args (A, u, v), see Program.merge_products), 0 any other
    cdef Tensor out        # FWD: the node; GRAD / ZERO: the leaf
    cdef Prim p
    cdef tuple args        # FWD: the inputs (Tensors, constants); EFFECT / SWEEP: fn's arguments
    cdef object params
    cdef Subst sub         # input arrays inside params (FWD) or a sweep's arguments (SWEEP)
    cdef object fn         # EFFECT / SWEEP
    cdef object src        # GRAD: the cotangent (a node or an array); RESULT: [(src, copy)]
    cdef Py_ssize_t k      # SWEEP / RESULT: index of the results
    cdef bint copy
    cdef tuple drop        # nodes whose value no later instruction reads: released after this
    cdef Tensor out2       # FWD fast 6 (two products merged): the second node
    cdef bint trans        # FWD fast 6: the rows times A^T (else times A)


cdef inline object _val(object a):
    return (<Tensor>a).data if type(a) is Tensor else a


cdef void _mark(object x, set live):
    """Add the nodes in x (a Tensor, or tuples and lists holding them) to live."""
    if type(x) is Tensor:
        live.add(id(x))
    elif type(x) is tuple or type(x) is list:
        for a in x:
            _mark(a, live)


cdef set _read_ids(Instr I):
    """ids of the nodes instruction I reads: a FWD's operands and parameters, a GRAD's
    cotangent, a RESULT's sources, an EFFECT's or SWEEP's arguments."""
    cdef set ids = set()
    if I.kind == FWD:
        _mark(I.args, ids)
        _mark(I.params, ids)
    elif I.kind == GRAD:
        _mark(I.src, ids)
    elif I.kind == RESULT:
        for src in <list>I.src:
            if src is not None:
                _mark(src[0], ids)
    elif I.kind == EFFECT or I.kind == SWEEP:
        _mark(I.args, ids)
    return ids


cdef bint _reads(Instr I, set ids):
    """Whether instruction I (a FWD) reads a node of ids; any other kind counts as reading."""
    return I.kind != FWD or not _read_ids(I).isdisjoint(ids)


cdef tuple _matvec_key(Instr I, dict producer, list rebind):
    """(key, (A, u)) for a FWD matrix-times-vector product that reads as u @ A^T (key[1] True)
    or u @ A, A a float matrix large enough for stacking to pay; (None, None) otherwise.  The
    key names A: a constant by its array (two Tensors over one array are one matrix), any
    other operand by its node; a transposed view made by the program counts as its matrix."""
    if I.kind != FWD or I.fast != 3 or len(I.args) != 2:
        return None, None
    a, b = I.args
    va, vb = _val(a), _val(b)
    if not (cnp.PyArray_Check(va) and cnp.PyArray_Check(vb)) or va.dtype != vb.dtype or \
            va.dtype.kind != "f":
        return None, None
    if va.ndim == 2 and vb.ndim == 1:
        M, u, trans = a, b, True            # M u = u @ M^T
    elif va.ndim == 1 and vb.ndim == 2:
        M, u, trans = b, a, False           # u @ M
    else:
        return None, None
    src = producer.get(id(M)) if type(M) is Tensor else None
    if src is not None and (<Instr>src).fast == 5:
        M, trans = (<Instr>src).args[0], not trans      # M = X^T: read X instead
    A = _val(M)
    if not cnp.PyArray_Check(A) or A.ndim != 2 or not K.stacking_pays(A, 2, trans):
        return None, None
    if type(M) is Tensor and ((<Tensor>M).prim is not None or (<Tensor>M).requires_grad or
                              any(t is M for t, _ in rebind)):
        name = ("node", id(M))
    else:
        name = ("array", id(A))
    return (name, trans, A.dtype, _val(u).shape), (M, u)


cdef class Program:
    """A traced function as a flat list of instructions, replayed on new inputs."""
    cdef list code              # of Instr, in program order, with inputs bound (see __init__)
    cdef list rebind            # [(Tensor, input index)]: leaves and proxies over an input
    cdef list nodes             # every FWD output, released after a call
    cdef public Py_ssize_t n_fwd, n_sweeps, n_effects, n_results
    cdef public bint is_flat    # no SWEEP instruction

    def __init__(self, Tracer tracer, list inputs, dict tensor_inputs=None):
        """inputs: the traced call's arrays (None where an argument is not one); tensor_inputs:
        id -> input index of the constant Tensors passed as arguments (they are replaced by
        proxies, so that the caller's Tensor is never rebound)."""
        cdef dict index = {}
        cdef dict proxies = {}
        cdef dict produced = {}
        cdef dict node_data = {}    # id of a value -> the node (without grad) that holds it
        cdef Tensor t, out
        cdef Prim p
        cdef Instr I
        self.code = []
        self.rebind = []
        self.nodes = []
        self.n_fwd = self.n_sweeps = self.n_effects = self.n_results = 0
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

        def bind(a):
            """An operand as the program holds it."""
            if type(a) is Tensor:
                if id(a) in tensor_inputs:
                    return proxy(tensor_inputs[id(a)], (<Tensor>a).data)
                bind_tensor(a)
                return a
            if cnp.PyArray_Check(a):
                if id(a) in index:
                    return proxy(index[id(a)], a)
                # a value of a node taken as an array (a sweep's result used again): the node
                n = node_data.get(id(a))
                if n is not None:
                    return n
            return a

        def bind_args(tuple args):
            cdef list items = None
            for k in range(len(args)):
                a = args[k]
                b = bind(a)
                if b is a:
                    continue
                if items is None:
                    items = list(args)
                items[k] = b
            return args if items is None else tuple(items)

        for ins in tracer.code:
            kind = ins[0]
            I = Instr.__new__(Instr)
            I.kind = kind
            if kind == FWD:
                _, out, p, args, params = ins
                new_args = bind_args(args)
                if out.parents is args:
                    out.parents = new_args
                sub = Subst(params, index)
                I.out, I.p, I.args, I.params = out, p, new_args, params
                I.sub = sub if sub.any else None
                I.fast = 0
                if I.sub is None and not p.saves and not p.multiple:
                    if p.kernel == 1 and len(new_args) == 1:
                        I.fast = 1
                    elif p.kernel == 2 and len(new_args) == 2:
                        I.fast = 2
                    elif p.kernel == 3 and len(new_args) == 2:
                        I.fast = 3
                    elif p is _P_SUM_ROWS:
                        I.fast = 4
                    elif p is _P_TRANSPOSE and params == (1, 0):
                        I.fast = 5
                produced[id(out)] = True
                if not out.requires_grad and cnp.PyArray_Check(out.data):
                    node_data[id(out.data)] = out
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
                I.fn, I.args, I.k = fn, args, k
                I.sub = sub if sub.any else None
                self.n_sweeps += 1
            elif kind == GRAD:
                _, leaf, g, copy = ins
                I.out, I.src, I.copy = leaf, bind(g), copy
            elif kind == RESULT:
                _, srcs, k = ins
                I.src = [None if s is None else (bind(s[0]), s[1]) for s in srcs]
                I.k = k
                self.n_results = max(self.n_results, k + 1)
            else:
                _, fn, args = ins
                if fn is Tensor.zero_grad:
                    I.kind = ZERO
                    I.out = args[0]
                else:
                    I.fn, I.args = fn, args
                self.n_effects += 1
            self.code.append(I)
        self.n_results = max(self.n_results, len(tracer.sweep_results))
        self.is_flat = self.n_sweeps == 0
        self.keep(())

    def optimize(self, nodes):
        """Simplify a flat program whose outputs read the values of `nodes`, then plan the
        release of values (keep): products that share a matrix are merged
        (merge_products), and instructions whose values nothing reads are removed (a hvp's
        f(x), which jvp(grad(f)) computes and drops)."""
        if self.is_flat:
            self.merge_products()
            self.eliminate_dead(nodes)
        self.keep(nodes)

    def eliminate_dead(self, nodes):
        """Remove the FWD instructions of pure primitives whose values no later instruction
        reads and no output (`nodes`) is: a backward scan marking what the kept ones read."""
        cdef Instr I
        cdef set live = {id(n) for n in nodes}
        cdef list code = []
        for ins in reversed(self.code):
            I = <Instr>ins
            if I.kind == FWD:
                if I.p.pure and id(I.out) not in live and \
                        (I.fast != 6 or id(I.out2) not in live):
                    self.n_fwd -= 1
                    continue
            live.update(_read_ids(I))
            code.append(I)
        code.reverse()
        self.code = code

    def merge_products(self):
        """Merge pairs of matrix-times-vector products that share the matrix into one product
        of the two vectors stacked as rows, which reads the matrix once (XLA's dot merger; two
        GEMVs read it twice, and a large matrix comes from memory each time).  jvp(grad(f))
        of f(x) = g(A x) makes two such pairs: A x with A v, and A^T g with A^T dg.  A pair is
        merged where stacking pays (_kernels.stacking_pays), neither product reads the other,
        and only forward instructions lie between them: the merged product takes the later
        one's place, and the instructions between that read the earlier one's value move
        after it."""
        cdef Instr I, J, M
        cdef list code = self.code
        cdef dict producer = {}
        cdef dict first = {}                # key -> (index, instruction, (A, u)) of a product
        cdef set after
        cdef list moved, rest
        cdef Py_ssize_t idx = 0, j, i1
        while idx < len(code):
            I = <Instr>code[idx]
            if I.kind == FWD:
                producer[id(I.out)] = I
            elif first:
                first = {}                  # never merge across a gradient, result or effect
            key, operands = _matvec_key(I, producer, self.rebind)
            if key is None:
                idx += 1
                continue
            if key not in first:
                first[key] = (idx, I, operands)
                idx += 1
                continue
            i1, J, (A, u) = first.pop(key)
            # the instructions between that read J's value (directly or not) move after the
            # merged product; I reading it makes the pair dependent
            after = {id(J.out)}
            moved, rest = [], []
            for j in range(i1 + 1, idx):
                if _reads((<Instr>code[j]), after):
                    after.add(id((<Instr>code[j]).out))
                    moved.append(code[j])
                else:
                    rest.append(code[j])
            if _reads(I, after):
                first[key] = (idx, I, operands)
                idx += 1
                continue
            M = Instr.__new__(Instr)
            M.kind, M.fast, M.p, M.params = FWD, 6, J.p, None
            M.out, M.out2 = J.out, I.out
            M.trans = key[1]
            M.args = (A, u, operands[1])
            code[i1:idx + 1] = rest + [M] + moved
            self.n_fwd -= 1
            first = {k: v for k, v in first.items() if v[0] < i1}   # indices shifted
            idx = i1 + len(rest) + 1

    def keep(self, nodes):
        """Plan the release of values by liveness, keeping those of `nodes` (the outputs read
        after a replay) to the end: a flat program drops each node's value right after the last
        instruction that reads it, so that its buffer returns to the allocator's cache and the
        next kernels reuse it while it is hot (a program that held every value to the end, as
        a 200-step ODE's backprop does, ran 1.5x slower than eager on fewer instructions).  A
        program with SWEEP instructions keeps every value: a rerun sweep reads the graph."""
        cdef Instr I
        cdef Tensor t
        cdef Py_ssize_t idx
        cdef dict last = {}             # id of a node -> (the index of its last reader, node)
        cdef set kept = {id(n) for n in nodes}
        for ins in self.code:
            (<Instr>ins).drop = None
        if not self.is_flat:
            return
        for idx in range(len(self.code)):
            I = <Instr>self.code[idx]
            for i in _read_ids(I):              # idx is now the latest reader of these
                if i in last:
                    last[i] = (idx, (<tuple>last[i])[1])
            if I.kind == FWD:
                if id(I.out) not in kept:
                    last[id(I.out)] = (idx, I.out)      # produced (a value nobody reads: now)
                if I.fast == 6 and id(I.out2) not in kept:
                    last[id(I.out2)] = (idx, I.out2)
        drops = {}
        for idx, t in last.values():
            drops.setdefault(idx, []).append(t)
        for idx, ts in drops.items():
            (<Instr>self.code[idx]).drop = tuple(ts)

    def run(self, list inputs):
        """Replay on new inputs (of the traced shapes and dtypes); returns the sweeps' results."""
        global flat_replays, sweep_replays
        cdef Tensor t
        cdef Prim p
        cdef Instr I
        cdef tuple args
        cdef Py_ssize_t i
        cdef list results = [None] * self.n_results
        for t, i in self.rebind:
            t.data = inputs[i]
        try:
            for ins in self.code:
                I = <Instr>ins
                if I.kind == FWD:
                    t = I.out
                    p = I.p
                    args = I.args
                    if I.fast == 2:
                        res = K.binary(p.code, _val(args[0]), _val(args[1]))
                    elif I.fast == 1:
                        res = K.unary(p.code, _val(args[0]))
                    elif I.fast == 3:
                        try:
                            res = K.matmul(_val(args[0]), _val(args[1]))
                        except ValueError:
                            res = p.fwd(I.params, _val(args[0]), _val(args[1]))
                    elif I.fast == 4:
                        res = K.sum_rows(_val(args[0]))
                    elif I.fast == 5:           # a matrix's transpose: a view
                        res = cnp.PyArray_Transpose(<cnp.ndarray>_val(args[0]), NULL)
                    elif I.fast == 6:
                        res, I.out2.data = K.matvecs(_val(args[0]), I.trans, _val(args[1]),
                                                     _val(args[2]))
                    else:
                        params = I.params
                        if I.sub is not None:
                            params = I.sub.build(inputs)
                            if t.prim is not None:
                                t.params = params
                        res = forward(p, params, unwrap_args(args))
                        if p.saves:
                            res, saved = res
                            t.saved = saved
                        if p.multiple:
                            res = as_outputs(res)
                    t.data = res if p.multiple or cnp.PyArray_CheckExact(res) else np.asarray(res)
                elif I.kind == GRAD:
                    _accumulate_grad(I.out, I.src, I.copy)
                elif I.kind == ZERO:
                    I.out.grad = None
                elif I.kind == RESULT:
                    results[I.k] = [None if s is None else _value_of(s[0], s[1])
                                    for s in <list>I.src]
                elif I.kind == SWEEP:
                    args = I.args
                    if I.sub is not None:
                        args = I.sub.build(inputs)
                    results[I.k] = _contiguous(I.fn(*args))
                else:
                    I.fn(*I.args)
                if I.drop is not None:
                    for t in I.drop:
                        t.data = None
        except BaseException:
            self.release()
            raise
        if self.is_flat:
            flat_replays += 1
        else:
            sweep_replays += 1
        return results

    def describe(self):
        """The instructions as (kind, name) pairs: ("fwd", primitive), ("grad", ""), ("result",
        ""), ("effect", function), ("zero_grad", ""), ("sweep", function)."""
        cdef Instr I
        kinds = {FWD: "fwd", SWEEP: "sweep", EFFECT: "effect", GRAD: "grad", RESULT: "result",
                 ZERO: "zero_grad"}
        out = []
        for ins in self.code:
            I = <Instr>ins
            name = I.p.name if I.kind == FWD else getattr(I.fn, "__name__", "")
            out.append((kinds[I.kind], name))
        return out

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


# ----------------------------------------------------------------------------------------------
# a call's cache key, its replay and its outputs: graphad.compile's per-call work, in C (in
# Python it took 32k instructions of a trivial compiled call, against 2k for the replay itself;
# now 15k)

def signature(list leaves, object structure):
    """The cache key of a call: the arguments' tree structure, shapes and dtypes of arrays,
    identities of Tensors that require grad (they are read in place: parameters), values of
    everything else (static); with the input arrays (None where a leaf is not one) and the
    constant Tensor arguments (id -> input index)."""
    cdef list key = [structure]
    cdef list arrays = []
    cdef dict tensors = {}
    cdef dict first = None              # an array passed twice must be passed twice again
    cdef Tensor t
    cdef Py_ssize_t j
    for a in leaves:
        if cnp.PyArray_Check(a):
            j = len(arrays)
            if first is None:
                first = {id(a): j}
            else:
                j = first.setdefault(id(a), j)
            key.append(("a", a.shape, <object>cnp.PyArray_DESCR(<cnp.ndarray>a), j))
            arrays.append(a)
        elif isinstance(a, Tensor):
            t = <Tensor>a
            if t.requires_grad:
                key.append(("t", id(a)))
                arrays.append(None)
            else:
                key.append(("c", t.shape, t.dtype))
                tensors[id(a)] = len(arrays)
                arrays.append(t.data)
        else:
            try:
                hash(a)
                key.append(("s", type(a), a))
            except TypeError:
                key.append(("o", id(a)))
            arrays.append(None)
    return tuple(key), arrays, tensors


def native_leaves(tuple args):
    """args as a list of native arrays (_core.native), or None when one of them is a tree
    (None, a tuple, list or dict): then the caller flattens them."""
    cdef list out = []
    for a in args:
        if a is None or isinstance(a, (tuple, list, dict)):
            return None
        if cnp.PyArray_Check(a) and not (cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a) and
                                         cnp.PyArray_ISALIGNED(<cnp.ndarray>a)):
            a = _core.native(a)
        out.append(a)
    return out


cdef dict _KINDS = {"node": 0, "data": 1, "sweep": 2, "grad": 3, "input": 4, "input_tensor": 5,
                    "view": 6, "const": 7}


cdef class Output:
    """How to fetch one output leaf of a compiled function after a replay (kind, a, b):
      node          a Tensor the program computes (a): its new value, as a fresh Tensor
      data          an array that is a node's (a) value
      sweep         results[a][b]: a sweep's result
      grad          a parameter's (a) .grad, as the replayed sweep left it
      input         inputs[a];  input_tensor: a constant Tensor argument, inputs[a] wrapped
      view          a view of what the Output a fetches, b = (shape, dtype, offset, strides)
      const         a itself: None, an int, a parameter Tensor, ..."""
    cdef readonly str kind
    cdef readonly object a, b
    cdef int code

    def __init__(self, str kind, a=None, b=None):
        self.kind, self.a, self.b, self.code = kind, a, b, _KINDS[kind]

    cdef object get(self, list results, list inputs):
        cdef int k = self.code
        if k == 0:
            return _core.as_tensor((<Tensor>self.a).data)
        if k == 1:
            return (<Tensor>self.a).data
        if k == 2:
            return results[self.a][self.b]
        if k == 3:
            return (<Tensor>self.a).grad
        if k == 4:
            return inputs[self.a]
        if k == 5:
            return _core.as_tensor(inputs[self.a])
        if k == 6:
            base = (<Output>self.a).get(results, inputs)
            shape, dtype, offset, strides = self.b
            return np.ndarray(shape, dtype, buffer=base, offset=offset, strides=strides)
        return self.a


def fetch(list outs, list results, list inputs):
    """The output leaves of a replay, by their Outputs."""
    return [(<Output>o).get(results, inputs) for o in outs]


cdef object _local = threading.local()


def tracers():
    """The tracers of the compiled functions this thread is tracing now (innermost last)."""
    t = getattr(_local, "tracers", None)
    if t is None:
        t = _local.tracers = []
    return t


def replay(self, *args, **kwargs):
    """graphad.compile.Compiled.__call__: f itself inside another trace; else, for plain array
    arguments whose signature has a replayable program, the replay; else Compiled._call (trees,
    keyword arguments, a first call, a program that runs eagerly)."""
    if tracers():
        return self.f(*args, **kwargs)
    with self._lock:
        leaves = None if kwargs else native_leaves(args)
        if leaves is None:
            return self._call(args, kwargs)
        key, inputs, _ = signature(leaves, None)
        entry = self._cache.get(key)
        if entry is None or entry.eager:
            return self._call(args, kwargs)
        return run_entry(self, entry, inputs)


def run_entry(compiled, entry, list inputs):
    """Replay a cache entry's program on inputs; its outputs, in the traced tree structure."""
    cdef Program program = <Program>entry.program
    results = program.run(inputs)
    compiled.replays += 1
    try:
        leaves = fetch(entry.outs, results, inputs)
    finally:
        program.release()
    spec = entry.spec
    if spec is _LEAF:
        return leaves[0]
    return _unflatten(spec, leaves)
