"""ga.compile: trace a function once, replay it on new inputs without Python-level per-op work.

    step = ga.compile(ga.value_and_grad(loss, argnums=(0, 1)))
    value, (gW, gb) = step(W, b, X, y)        # first call with these shapes: traced (eager run)
    value, (gW, gb) = step(W2, b2, X2, y2)    # same shapes and dtypes: replayed

    def train_step(X, y):                     # a whole training step
        opt.zero_grad()
        loss = ga.nn.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        return loss
    train_step = ga.compile(train_step)

The first call for a given signature (the structure of tuple, list and dict arguments, the
shapes and dtypes of the arrays, the values of the other arguments) runs `f` eagerly with a
recorder installed in the engine: every primitive applied to Tensors, every reverse or forward
sweep (`backward()`, the transforms) and every state change made through graphad (`zero_grad`,
an optimizer's `step`, a schedule's `step`; see `effect`) is kept, in order, as a flat program
(graphad/_compile.pyx).  A sweep is traced flat: its rules run as in a recorded sweep, so the
kernels they apply are instructions of the program like the forward pass's, followed by the
`.grad` updates and the sweep's results.  Later calls with the same signature replay that
program in one Cython loop: each instruction's forward kernel (an elementwise, product or
reduction kernel called directly) writes its node's new value, with no sweep, sort or rule
call, and the effects run again (the optimizer's C update, in place).  A sweep through a custom
rule, or through a node whose parameters hold input arrays, is kept whole and rerun over the
kept graph instead. Parameters are read from their Tensors
at every call, so the updates of one step are seen by the next. Results are the same numbers as
eager execution. A new signature traces again.

Array arguments (also inside tuple, list and dict arguments) reach f as constant Tensors over
the arrays, so NumPy arithmetic and indexing on them (`x * y`, `x[idx]`, `np.exp(x)`) run
through graphad and are traced.  What a trace cannot see, it freezes (as torch.jit.trace does):
Python control flow on values, computations on arrays taken out of the graph (`x.numpy()`,
`np.asarray(x)`), `float(t)` / `t.item()`, a module's train/eval mode, and direct writes such as
`p.data -= ...` (use ga.optim, or wrap the update in `effect`).  Compile training and
evaluation as separate functions.  Comparisons of traced values (`x > 0`) are nodes without a
derivative, so `ga.where(x > 0, ...)` follows each call's x; indexing by such a mask
(`x[x > 0]`, whose shape follows the data) makes the function run eagerly, with a warning.

Outputs are fresh on every call: Tensors come back detached (values, not graphs), arrays are
new arrays (or views of them, when f reshaped a result); a parameter's `.grad` is returned as
the sweep left it.  Nodes of custom rules (ga.custom_vjp / custom_jvp) and primitives with
several outputs replay like any other.  A recorded sweep (create_graph, nested forward mode: a
hessian, grad of grad) is traced with the recorder on, so the nodes it makes are part of the
program and are recomputed, not rerun as a sweep.  Functions whose trace cannot be replayed
(backward(create_graph=True) into .grad, a recorded sweep through a custom rule, a node made
without a forward to rerun, an output computed by NumPy from traced values) run eagerly, with
a warning.  Memory: between calls the program keeps its graph's structure but
none of its values; the kernels' buffer cache hands the same blocks to the next call.
"""
import functools
import os
import sys
import threading
import time
import warnings

import numpy as np

from graphad import _core, tree
from graphad._compile import Output as _Output, Program, Tracer, native_leaves, run_entry
from graphad._compile import replay as _replay, signature, tracers as _tracers
from graphad._core import Tensor

__all__ = ["compile", "effect", "constant", "TraceWarning"]

_frozen_sites = set()  # (file, line) of the reads of traced values already warned about
_PKG = os.path.dirname(os.path.abspath(__file__)) + os.sep


class TraceWarning(RuntimeWarning):
    """A traced value was read into Python: the compiled replay will reuse it."""


def frozen_read(what):
    """Warn, once per call site, that `what` (bool(), float(), .item(), ...) read a traced
    Tensor's value into Python: the replay reuses the traced value and any branch taken on it.
    The call site is the first frame outside graphad (graphad's own reads name their caller)."""
    tracers = _tracers()
    if tracers and tracers[-1].flat:     # a rule of a sweep traced flat: that sweep is rerun
        tracers[-1].reads += 1           # as a whole instead (nothing is frozen)
        return
    f = sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_PKG):
        f = f.f_back
    if f is None:
        return
    site = (f.f_code.co_filename, f.f_lineno)
    if site in _frozen_sites:
        return
    _frozen_sites.add(site)
    warnings.warn_explicit(
        f"ga.compile: {what} of a traced Tensor at {site[0]}:{site[1]} reads its value into "
        f"Python, so the value (and any branch taken on it) is frozen in the replay: later calls "
        f"reuse what this trace saw.  Compute with graphad functions instead (ga.where for a "
        f"branch), or call the function uncompiled", TraceWarning, site[0], site[1])


def constant(x):
    """Mark the array x, made by NumPy while a compiled function is traced, as the same on every
    call (a structurally zero derivative), so that the program may return it; returns x."""
    tracers = _tracers()
    if tracers:
        tracers[-1].constants[id(x)] = x
    return x


def effect(fn, *args):
    """Run fn(*args) now and, inside a trace, record it so that every replay runs it again at
    the same point of the program.  For state changes outside the graph: an optimizer's update,
    a learning-rate schedule, zeroing gradients (graphad's own do this already)."""
    tracers = _tracers()
    if not tracers:
        return fn(*args)
    prev = _core.set_tracer(None)        # what fn computes is its own business, not the graph's
    try:
        result = fn(*args)
    finally:
        _core.set_tracer(prev)
    tracers[-1].effect(fn, args)
    return result


# ----------------------------------------------------------------------------------------------
# signatures and outputs

class Untraceable(Exception):
    """An output the program cannot recompute (made by NumPy from traced values)."""


def _address(a):
    return a.__array_interface__["data"][0]


def _output_map(leaves, tracer, program, inputs, tensors):
    """How to fetch each output leaf after a replay: a node's value, a sweep's result, an
    input, a view of one of those (f reshaped or transposed a result), or a constant."""
    by_data = {}
    node_ids = set()
    buffers = []                        # (start, end, array, _Output): where a view may point
    for t in program.values():
        node_ids.add(id(t))
        if isinstance(t.data, np.ndarray):
            by_data[id(t.data)] = t
            buffers.append((t.data, _Output("data", t)))
    by_result = {}
    for k, res in enumerate(tracer.sweep_results):
        for j, r in enumerate(res or ()):
            if isinstance(r, np.ndarray):
                by_result[id(r)] = (k, j)
                buffers.append((r, _Output("sweep", k, j)))
    by_input = {id(x): i for i, x in enumerate(inputs) if x is not None}
    by_grad = {}
    for t in program.values():
        for a in t.parents or ():
            if isinstance(a, Tensor) and a.is_leaf and isinstance(a.grad, np.ndarray):
                by_grad[id(a.grad)] = a
    outs = []
    for v in leaves:
        if isinstance(v, Tensor):
            if id(v) in node_ids:
                outs.append(_Output("node", v))
            elif id(v) in tensors:               # a constant Tensor argument, passed through
                outs.append(_Output("input_tensor", tensors[id(v)]))
            else:
                outs.append(_Output("const", v))
        elif isinstance(v, np.ndarray):
            if id(v) in by_data:
                outs.append(_Output("data", by_data[id(v)]))
            elif id(v) in by_result:
                outs.append(_Output("sweep", *by_result[id(v)]))
            elif id(v) in by_input:
                outs.append(_Output("input", by_input[id(v)]))
            elif id(v) in by_grad:
                outs.append(_Output("grad", by_grad[id(v)]))
            elif id(v) in tracer.constants:
                outs.append(_Output("const", v))
            else:
                outs.append(_view_of(v, buffers))
        elif isinstance(v, (float, np.floating, complex)):
            raise TypeError(
                "ga.compile: the function returned a Python/NumPy float, which a trace cannot "
                "recompute; return the Tensor (or array) instead and convert it outside "
                "(e.g. float(step(...)))")
        else:
            outs.append(_Output("const", v))
    return outs


def _output_nodes(outs):
    """The nodes whose values the outputs read after a replay (kept to the program's end)."""
    nodes = []
    for o in outs:
        while o.kind == "view":
            o = o.a
        if o.kind in ("node", "data"):
            nodes.append(o.a)
    return nodes


def _view_of(v, buffers):
    """v as a view into one of the program's fresh C-contiguous arrays, or Untraceable."""
    if v.size:
        lo = _address(v)
        for base, getter in buffers:
            if base.flags.c_contiguous and base.dtype == v.dtype and np.shares_memory(v, base):
                offset = lo - _address(base)
                return _Output("view", getter, (v.shape, v.dtype, offset, v.strides))
    raise Untraceable("an output array was computed by NumPy outside graphad (it is neither "
                      "a value of the program nor a view of one)")


# ----------------------------------------------------------------------------------------------
# the compiled function

class _Entry:
    __slots__ = ("program", "spec", "outs", "eager", "compile_ms")


class Compiled:
    """A function compiled by ga.compile; call it like the function.  `.traces` counts the
    traces made so far, `.replays` the calls answered by replaying a program (not by running
    f), `.compile_ms` the time (ms) of the last trace (its eager run included).  Calls from
    several threads take turns: a program's nodes hold the values of the call running it."""

    def __init__(self, f, cache_size=16):
        functools.update_wrapper(self, f)
        self.f = f
        self.cache_size = cache_size
        self._cache = {}
        self._lock = threading.RLock()
        self.traces = 0
        self.replays = 0
        self.compile_ms = 0.0

    def __getstate__(self):
        # a program holds live graph nodes: it is not sent, and the copy traces again
        state = self.__dict__.copy()
        state["_cache"] = {}
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # a call: inside another trace, f itself (it becomes part of that trace); else a replay of
    # the program cached for the arguments' signature (_compile.replay), or self._call
    __call__ = _replay

    def _call(self, args, kwargs):
        # byte-swapped or unaligned arrays as native copies, before f and the program see them
        leaves, structure = None if kwargs else native_leaves(args), None
        if leaves is None:
            # arguments that are trees: their leaves are the inputs, and the structure is part
            # of the cache key (an array inside a dict is an input, not a frozen constant)
            leaves, structure = tree.flatten((args, kwargs))
            leaves = [_core.native(a) for a in leaves]
            args, kwargs = tree.unflatten(structure, leaves)
        else:
            args = leaves
        key, inputs, tensors = signature(leaves, structure)
        entry = self._cache.get(key)
        if entry is None:
            return self._trace(key, inputs, tensors, args, kwargs)
        if entry.eager:
            return self.f(*args, **kwargs)
        return run_entry(self, entry, inputs)

    def _trace(self, key, inputs, tensors, args, kwargs):
        start = time.perf_counter()
        tracer = Tracer()
        tracer.input_ids = {id(x) for x in inputs if x is not None}
        # Array arguments are seen by f as constant Tensors over them, so that NumPy arithmetic
        # on an input (x * y, x ** 2) runs through graphad and is traced, instead of being
        # computed once by NumPy and frozen into the program as a constant.
        position = {id(x): i for i, x in enumerate(inputs) if x is not None}
        leaves, structure = tree.flatten((args, kwargs))
        for k, a in enumerate(leaves):
            if isinstance(a, np.ndarray) and a.dtype.kind in "fiub":
                t = leaves[k] = _core.as_tensor(a)
                tensors[id(t)] = position[id(a)]
        args, kwargs = tree.unflatten(structure, leaves)
        for a in leaves:
            if isinstance(a, Tensor):      # an argument's value is traced too (see frozen_read)
                tracer.known[id(a)] = a
        _tracers().append(tracer)
        prev = _core.set_tracer(tracer)
        try:
            out = self.f(*args, **kwargs)
        finally:
            _core.set_tracer(prev)
            _tracers().pop()
        entry = _Entry()
        entry.eager = tracer.unsupported is not None
        self.traces += 1
        if entry.eager:
            warnings.warn(f"ga.compile({getattr(self.f, '__name__', 'f')}): cannot replay "
                          f"{tracer.unsupported}; running it eagerly", RuntimeWarning,
                          stacklevel=3)
            entry.program = None
        else:
            program = Program(tracer, inputs, tensors)
            leaves, entry.spec = tree.flatten(out)
            try:
                entry.outs = _output_map(leaves, tracer, program, inputs, tensors)
            except Untraceable as e:
                entry.eager = True
                warnings.warn(f"ga.compile({getattr(self.f, '__name__', 'f')}): {e}; running it "
                              f"eagerly", RuntimeWarning, stacklevel=3)
            else:
                program.optimize(_output_nodes(entry.outs))
                entry.program = program
                out = tree.unflatten(entry.spec, [_core.as_tensor(v.data) if o.kind == "node"
                                                  else v for o, v in zip(entry.outs, leaves)])
                program.release()
        if len(self._cache) >= self.cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = entry
        entry.compile_ms = self.compile_ms = (time.perf_counter() - start) * 1e3
        return out

    def stats(self):
        """Per signature: the number of primitives, sweeps and effects the program replays."""
        return [dict(signature=k, eager=e.eager,
                     primitives=None if e.eager else e.program.n_fwd,
                     sweeps=None if e.eager else e.program.n_sweeps,
                     effects=None if e.eager else e.program.n_effects,
                     compile_ms=e.compile_ms)
                for k, e in self._cache.items()]


def compile(f=None, *, cache_size=16):
    """Compile f by tracing: see the module documentation.  Usable as a decorator."""
    if f is None:
        return lambda g: Compiled(g, cache_size)
    return Compiled(f, cache_size)
