"""Function transforms in JAX's style: grad, value_and_grad, vjp, jvp.

Each transform wraps the arguments it differentiates in fresh graph nodes, runs the function
(define-by-run), then runs one sweep from the output back to (or forward from) exactly those
nodes.  Inside another transform, sweeps record their own operations (create_graph), so
transforms compose: grad(grad(f)), jvp(grad(f)), ...  Top-level results are NumPy arrays.
"""
import functools

import numpy as np

from graphad import _core
from graphad._core import Tensor
from graphad._prims import P_ID

_depth = 0   # how many transforms are running f right now; > 0 means sweeps must record


def _argnums_tuple(argnums, nargs):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for i in nums:
        if not -nargs <= i < nargs:
            raise ValueError(f"argnums {argnums} out of range for {nargs} positional arguments")
    return tuple(i % nargs for i in nums), single


def _as_source(x):
    """A node to differentiate with respect to: a fresh leaf over an array, or, inside an outer
    transform, an identity node over the outer Tensor so that this sweep stops there."""
    if isinstance(x, Tensor):
        _core._float_dtype_required(x.dtype, "differentiation")
        if x.requires_grad:
            return _core.apply(P_ID, (x,))
        return _core.leaf(x.data)
    data = np.asarray(x)
    if data.dtype.kind in "biu" or data.dtype.kind not in "fc":
        _core._float_dtype_required(data.dtype, "differentiation")
    return _core.leaf(data)


class _Trace:
    """Runs f on sources with recording on; knows whether sweeps must record (nested)."""

    def __init__(self, args, argnums):
        self.nums, self.single = _argnums_tuple(argnums, len(args))
        self.nested = _depth > 0 or any(
            isinstance(args[i], Tensor) and args[i].requires_grad for i in self.nums)
        self.sources = [_as_source(args[i]) for i in self.nums]
        self.args = list(args)
        for i, s in zip(self.nums, self.sources):
            self.args[i] = s

    def run(self, f, kwargs):
        global _depth
        prev = _core.set_grad_enabled(True)
        _depth += 1
        try:
            return f(*self.args, **kwargs)
        finally:
            _depth -= 1
            _core.set_grad_enabled(prev)

    def export(self, x):
        """A result for the caller: a Tensor when nested, else a NumPy array."""
        if self.nested:
            return x if isinstance(x, Tensor) else _core.as_tensor(x)
        return x.data if isinstance(x, Tensor) else np.asarray(x)

    def pack(self, grads):
        return grads[0] if self.single else tuple(grads)


def _scalar_output(out, name):
    if not isinstance(out, Tensor):
        out = _core.as_tensor(out)
    if out.size != 1:
        raise TypeError(f"{name}: the function must return a scalar, got shape {out.shape}; "
                        f"use jacrev/jacobian for vector outputs")
    if out.dtype.kind not in "fc":
        raise TypeError(f"{name}: the output has dtype {out.dtype}; only floating-point "
                        f"outputs have derivatives")
    return out


def _reverse(trace, outs, seeds, retain=False):
    """Cotangents of the trace's sources, zeros where nothing flowed."""
    live = [(o, s) for o, s in zip(outs, seeds) if isinstance(o, Tensor) and o.requires_grad]
    if live:
        grads = _core.reverse_sweep([o for o, _ in live], [s for _, s in live],
                                    retain_graph=retain or trace.nested,
                                    create_graph=trace.nested, sources=trace.sources)
    else:
        grads = [None] * len(trace.sources)
    result = []
    for g, s in zip(grads, trace.sources):
        if g is None:
            g = np.zeros(s.shape, s.dtype)
        result.append(trace.export(g))
    return result


def value_and_grad(f, argnums=0):
    """f's value and its gradient with respect to the arguments named by argnums."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        trace = _Trace(args, argnums)
        out = _scalar_output(trace.run(f, kwargs), "grad")
        seed = np.ones(out.shape, out.dtype)
        grads = _reverse(trace, [out], [seed])
        return trace.export(out), trace.pack(grads)
    return wrapper


def grad(f, argnums=0):
    """The gradient of scalar-valued f with respect to the arguments named by argnums."""
    vg = value_and_grad(f, argnums)

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return vg(*args, **kwargs)[1]
    return wrapper


def _as_outputs(out):
    if isinstance(out, (tuple, list)):
        return [o if isinstance(o, Tensor) else _core.as_tensor(o) for o in out], type(out)
    return [out if isinstance(out, Tensor) else _core.as_tensor(out)], None


def vjp(f, *primals, argnums=None):
    """(f(*primals), vjp_fn): vjp_fn(cotangent) returns one cotangent per primal, J^T u.

    f may return an array or a tuple of arrays (then the cotangent is a tuple too).  vjp_fn
    may be called many times; the graph lives as long as vjp_fn does."""
    nums = tuple(range(len(primals))) if argnums is None else argnums
    trace = _Trace(primals, nums)
    out = trace.run(f, {})
    outs, kind = _as_outputs(out)

    def vjp_fn(cotangent):
        cts = list(cotangent) if kind is not None else [cotangent]
        if len(cts) != len(outs):
            raise ValueError(f"vjp: expected {len(outs)} cotangents, got {len(cts)}")
        seeds = []
        for o, c in zip(outs, cts):
            c = c if (trace.nested and isinstance(c, Tensor)) else np.asarray(
                c.data if isinstance(c, Tensor) else c, dtype=o.dtype)
            if tuple(np.shape(c.data if isinstance(c, Tensor) else c)) != o.shape:
                raise ValueError(f"vjp: cotangent has shape {np.shape(c)} but the output has "
                                 f"shape {o.shape}")
            seeds.append(c)
        return tuple(_reverse(trace, outs, seeds, retain=True))

    result = [trace.export(o) for o in outs]
    return (result[0] if kind is None else kind(result)), vjp_fn


def jvp(f, primals, tangents):
    """(f(*primals), J v): forward mode, one sweep that pushes the tangents through f's graph."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    trace = _Trace(primals, tuple(range(len(primals))))
    tans = []
    for s, t in zip(trace.sources, tangents):
        t = t if (trace.nested and isinstance(t, Tensor)) else np.asarray(
            t.data if isinstance(t, Tensor) else t, dtype=s.dtype)
        if tuple(np.shape(t.data if isinstance(t, Tensor) else t)) != s.shape:
            raise ValueError(f"jvp: tangent has shape {np.shape(t)} but its primal has shape "
                             f"{s.shape}")
        tans.append(t)
    out = trace.run(f, {})
    outs, kind = _as_outputs(out)
    live = [o for o in outs if o.requires_grad]
    if live:
        res = _core.forward_sweep(trace.sources, tans, live, record=trace.nested)
    it = iter(res if live else [])
    touts = [next(it) if o.requires_grad else np.zeros(o.shape, o.dtype) for o in outs]
    values = [trace.export(o) for o in outs]
    touts = [trace.export(t) for t in touts]
    if kind is None:
        return values[0], touts[0]
    return kind(values), kind(touts)
