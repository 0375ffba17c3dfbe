"""Function transforms in JAX's style: grad, value_and_grad, vjp, jvp; and the Jacobians and
Hessians built on batched sweeps: jacfwd, jacrev, jacobian, hessian, hvp.

Each transform wraps the arguments it differentiates in fresh graph nodes, runs the function
(define-by-run), then runs one sweep from the output back to exactly those nodes.  Forward mode
at top level carries the tangents along while the function runs (eager, _core.forward_begin).
Inside another transform, sweeps record their own operations (create_graph), so transforms
compose: grad(grad(f)), jvp(grad(f)), ...  Top-level results are NumPy arrays.
"""
import functools

import numpy as np

from graphad import _core, tree
from graphad import _kernels as K
from graphad._core import Tensor
from graphad.compile import constant as _constant
from graphad._kernels import unit_block
from graphad._elementwise import P_ID

# how many transforms run f in this thread (> 0: nested) and running f as a transform: C
# thread-locals in the engine, read on every call
_depth = _core.transform_depth
_run = _core.run_transform
_LEAF_DEF = (tree.LEAF, 1)      # the (treedef, leaf count) of an argument that is one array


def _argnums_tuple(argnums, nargs):
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    for i in nums:
        if not -nargs <= i < nargs:
            raise ValueError(f"argnums {argnums} out of range for {nargs} positional arguments")
    if single:
        return (argnums % nargs,), True
    return tuple([i % nargs for i in nums]), False


def _as_source(x):
    """A node to differentiate with respect to: a fresh leaf over an array, or, inside an outer
    transform, an identity node over the outer Tensor so that this sweep stops there."""
    if not isinstance(x, (Tensor, np.ndarray, np.generic, int, float, complex)):
        raise TypeError(f"cannot differentiate with respect to a {type(x).__name__}: pass "
                        f"arrays, or tuples, lists and dicts of them")
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
    """Runs f on sources with recording on; knows whether sweeps must record (nested).
    A differentiated argument may be a tree (graphad.tree): each of its leaves is a source,
    and pack() gives the derivatives back in the argument's structure."""

    __slots__ = ("nums", "single", "nested", "args", "sources", "defs", "flat")

    def __init__(self, args, argnums):
        n = len(args)
        if type(argnums) is int and 0 <= argnums < n:
            nums, single = (argnums,), True
        else:
            nums, single = _argnums_tuple(argnums, n)
        self.nums, self.single = nums, single
        nested = _depth() > 0
        args = list(args)
        sources = []
        defs = []                       # per differentiated argument: (treedef, leaf count)
        flat = True                     # every differentiated argument is one array
        for i in nums:
            a = args[i]
            if type(a) is np.ndarray:   # the usual case (leaf() checks the dtype)
                s = _core.leaf(a)
            elif a is None or isinstance(a, (tuple, list, dict)):      # a tree
                leaves, td = tree.flatten(a)
                srcs = []
                for x in leaves:
                    if type(x) is Tensor and x.requires_grad:
                        nested = True
                    srcs.append(_as_source(x))
                sources.extend(srcs)
                defs.append((td, len(srcs)))
                args[i] = tree.unflatten(td, srcs)
                flat = False
                continue
            else:
                if type(a) is Tensor and a.requires_grad:
                    nested = True
                s = _as_source(a)
            sources.append(s)
            defs.append(_LEAF_DEF)
            args[i] = s
        self.nested, self.args, self.sources, self.defs, self.flat = (nested, args, sources,
                                                                      defs, flat)

    def run(self, f, kwargs):
        return _run(f, self.args, kwargs)

    def export(self, x):
        """A result for the caller: a Tensor when nested, else a NumPy array."""
        if self.nested:
            return x if isinstance(x, Tensor) else _core.as_tensor(x)
        return x.data if isinstance(x, Tensor) else np.asarray(x)

    def pack(self, grads):
        """Per-source results (in the order of self.sources) -> one per argument, each in the
        argument's structure."""
        if self.flat:
            return grads[0] if self.single else tuple(grads)
        out, k = [], 0
        for td, n in self.defs:
            out.append(grads[k] if td is tree.LEAF else tree.unflatten(td, grads[k:k + n]))
            k += n
        return out[0] if self.single else tuple(out)

    def split(self, per_source, what):
        """A tangent per differentiated argument (each in its argument's structure) -> a list
        in the order of self.sources."""
        if self.flat:
            return list(per_source)
        flat = []
        for (td, _), v in zip(self.defs, per_source):
            flat.extend([v] if td is tree.LEAF else tree.flatten_as(td, v, what))
        return flat


def _with_aux(f, has_aux, name):
    """f, or (when has_aux) a function returning f's first output that keeps the second (the
    auxiliary data, JAX's has_aux) in holder[0]."""
    if not has_aux:
        return f, None
    holder = [None]

    @functools.wraps(f)
    def main(*args, **kwargs):
        out = f(*args, **kwargs)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(f"{name}(has_aux=True): f must return a pair (output, aux), got "
                            f"{type(out).__name__}")
        holder[0] = out[1]
        return out[0]
    return main, holder


def _export_aux(trace, holder):
    """The auxiliary data for the caller: Tensors as arrays at top level (no graph attached)."""
    if trace.nested:
        return holder[0]
    return tree.map_leaves(lambda x: x.data if isinstance(x, Tensor) else x, holder[0])


def _scalar_output(out, name):
    if type(out) is not Tensor:
        out = _core.as_tensor(out)
    if out.size != 1:
        raise TypeError(f"{name}: the function must return a scalar, got shape {out.shape}; "
                        f"use jacrev/jacobian for vector outputs")
    if out.dtype.kind not in "fc":
        raise TypeError(f"{name}: the output has dtype {out.dtype}; only floating-point "
                        f"outputs have derivatives")
    return out


def _reverse(trace, outs, seeds, retain=False, record=False):
    """Cotangents of the trace's sources, zeros where nothing flowed.  The sweep is recorded
    (and its results are Tensors) when the trace is nested or `record` asks for it."""
    record = record or trace.nested
    roots, live_seeds = [], []
    for o, s in zip(outs, seeds):
        if isinstance(o, Tensor) and o.requires_grad:
            roots.append(o)
            live_seeds.append(s)
    sources = trace.sources
    if roots:
        grads = _core.reverse_sweep(roots, live_seeds, retain_graph=retain or record,
                                    create_graph=record, sources=sources)
    else:
        grads = [None] * len(sources)
    result = []
    for g, s in zip(grads, sources):
        if g is None:
            g = _zeros(s.shape, s.dtype)
        if record:
            result.append(g if isinstance(g, Tensor) else _core.as_tensor(g))
        elif type(g) is np.ndarray:
            result.append(g)
        else:
            result.append(trace.export(g))
    return result


def value_and_grad(f, argnums=0, has_aux=False):
    """f's value and its gradient with respect to the arguments named by argnums.  An argument
    may be a tree (tuples, lists, dicts of arrays): its gradient has the same structure.
    has_aux=True: f returns (value, aux) and the result is ((value, aux), gradient)."""
    g, holder = _with_aux(f, has_aux, "value_and_grad")

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        trace = _Trace(args, argnums)
        out = _scalar_output(_run(g, trace.args, kwargs), "grad")
        seed = K.ones(out.shape, out.dtype)
        grads = _reverse(trace, [out], [seed])
        value = out.data if not trace.nested and type(out) is Tensor else trace.export(out)
        if holder is not None:
            value = (value, _export_aux(trace, holder))
        return value, trace.pack(grads)
    return wrapper


def grad(f, argnums=0, has_aux=False):
    """The gradient of scalar-valued f with respect to the arguments named by argnums, in the
    structure of each argument.  has_aux=True: f returns (value, aux); the result is
    (gradient, aux)."""
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    return wrapper


def _as_outputs(out):
    """f's output as a list of Tensors and its treedef (None: a single array)."""
    if type(out) is Tensor:
        return [out], None
    if tree.is_container(out):
        leaves, td = tree.flatten(out)
        return [o if isinstance(o, Tensor) else _core.as_tensor(o) for o in leaves], td
    return [out if isinstance(out, Tensor) else _core.as_tensor(out)], None


def _pack_outputs(kind, values):
    return values[0] if kind is None else tree.unflatten(kind, values)


def _coerce(trace, v, like, what, whose):
    """A seed or tangent v for the Tensor `like`: its dtype and shape, an array at top level
    (a Tensor is kept when nested or when it carries a graph itself)."""
    if type(v) is np.ndarray and v.dtype is like.dtype:     # the usual case: nothing to convert
        if v.shape != like.shape:
            raise ValueError(f"{what} has shape {v.shape} but {whose} has shape {like.shape}")
        return v
    if not (isinstance(v, Tensor) and (trace.nested or v.requires_grad)):
        v = v.data if isinstance(v, Tensor) else v
        if np.iscomplexobj(v):       # casting to like's real dtype would drop the imaginary part
            raise TypeError(f"{what}: {_core._COMPLEX_MSG}")
        v = np.asarray(v, dtype=like.dtype)
    shape = v.shape
    if tuple(shape) != like.shape:
        raise ValueError(f"{what} has shape {tuple(shape)} but {whose} has shape {like.shape}")
    return v


def vjp(f, *primals, argnums=None, has_aux=False):
    """(f(*primals), vjp_fn): vjp_fn(cotangent) returns one cotangent per primal, J^T u.

    f may return an array or a tree of arrays (then the cotangent has that structure); a primal
    may be a tree too.  vjp_fn may be called many times; the graph lives as long as vjp_fn does.
    has_aux=True: f returns (output, aux) and vjp returns (output, vjp_fn, aux)."""
    nums = tuple(range(len(primals))) if argnums is None else argnums
    g, holder = _with_aux(f, has_aux, "vjp")
    trace = _Trace(primals, nums)
    out = _run(g, trace.args, {})
    outs, kind = _as_outputs(out)

    def vjp_fn(cotangent):
        if kind is None:
            seed = _coerce(trace, cotangent, outs[0], "vjp: cotangent", "the output")
            record = isinstance(seed, Tensor) and seed.requires_grad
            return tuple(_reverse(trace, outs, [seed], retain=True, record=record))
        if kind is None:
            cts = [cotangent]
        elif isinstance(kind, tuple) and kind[0] == "seq" and not tree.is_container(cotangent):
            raise ValueError(f"vjp: expected {len(outs)} cotangents, got one array")
        else:
            cts = tree.flatten_as(kind, cotangent, "vjp: cotangent")
        if len(cts) != len(outs):
            raise ValueError(f"vjp: expected {len(outs)} cotangents, got {len(cts)}")
        seeds = [_coerce(trace, c, o, "vjp: cotangent", "the output")
                 for o, c in zip(outs, cts)]
        # a cotangent that is itself being differentiated (vjp_fn inside another transform,
        # as in a Gauss-Newton product J^T (J v)): record the sweep, so that J^T u is linear
        # in u on the graph, not a constant
        record = any(isinstance(c, Tensor) and c.requires_grad for c in seeds)
        return tuple(_reverse(trace, outs, seeds, retain=True, record=record))

    if kind is None:
        o = outs[0]
        result = o.data if not trace.nested and type(o) is Tensor else trace.export(o)
    else:
        result = _pack_outputs(kind, [trace.export(o) for o in outs])
    if holder is not None:
        return result, vjp_fn, _export_aux(trace, holder)
    return result, vjp_fn


def _eager(trace):
    """Whether forward mode can run eagerly (values and tangents together, _core.forward_begin):
    at top level, where its sweep need not be recorded, and outside graphad.compile's tracing."""
    return not trace.nested and not _core.tracing()


def _run_eager(trace, f, kwargs, tangents, nlead):
    """Run f with the sources carrying these tangents: (outputs, kind, their tangents)."""
    _core.forward_begin(trace.sources, tangents, nlead)
    outs = []
    try:
        outs, kind = _as_outputs(_run(f, trace.args, kwargs))
    finally:
        touts = _core.forward_end(outs)
    return outs, kind, touts


def jvp(f, primals, tangents):
    """(f(*primals), J v): forward mode, one pass that carries the tangents through f (at top
    level while f runs; nested, a sweep over f's recorded graph).  primals and tangents are
    tuples (or lists) with one entry per positional argument of f, each an array or a tree of
    arrays; a bare array stands for a 1-tuple."""
    primals = tuple(primals) if isinstance(primals, (tuple, list)) else (primals,)
    tangents = tuple(tangents) if isinstance(tangents, (tuple, list)) else (tangents,)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents (pass "
                         f"tuples with one entry per argument of f)")
    trace = _Trace(primals, tuple(range(len(primals))))
    tans = [_coerce(trace, t, s, "jvp: tangent", "its primal")
            for s, t in zip(trace.sources, trace.split(tangents, "jvp: tangent"))]
    if _eager(trace):
        outs, kind, touts = _run_eager(trace, f, {}, tans, 0)
    else:
        outs, kind = _as_outputs(trace.run(f, {}))
        live = [o for o in outs if o.requires_grad]
        it = iter(_core.forward_sweep(trace.sources, tans, live, record=trace.nested)
                  if live else [])
        touts = [next(it) if o.requires_grad else None for o in outs]
    touts = [_zeros(o.shape, o.dtype) if t is None else t for o, t in zip(outs, touts)]
    values = [trace.export(o) for o in outs]
    touts = [trace.export(t) for t in touts]
    return _pack_outputs(kind, values), _pack_outputs(kind, touts)


# ----------------------------------------------------------------------------------------------
# Jacobians and Hessians.  A Jacobian costs ONE sweep per differentiated argument (jacfwd) or per
# output (jacrev): the sweep carries a block of identity tangents / cotangents of shape
# (k,) + shape as one leading batch axis (nlead=1), so every matmul in it is a GEMM on the block.
# chunk_size=k splits the identity into blocks of at most k rows (k sweeps' worth of memory).

def _ops():
    from graphad import _ops
    return _ops


def _chunks(n, chunk_size):
    """(start, k) of the blocks of at most chunk_size rows that cover n rows."""
    if chunk_size is None or chunk_size >= n:
        return [(0, n)]
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    step = int(chunk_size)
    return [(start, min(step, n - start)) for start in range(0, n, step)]


def _identity_blocks(shape, dtype, chunk_size):
    """Rows of the identity on a space of the given shape, as blocks of shape (k,) + shape.
    They are registered as unit blocks (graphad._kernels.unit_block), so that a matmul applying
    a matrix to one copies rows of the matrix instead of running a GEMM with the identity."""
    n = 1
    for d in shape:
        n *= d
    if chunk_size is None:
        return [unit_block(shape, 0, n, dtype)]
    return [unit_block(shape, start, k, dtype) for start, k in _chunks(n, chunk_size)]


def _stack_blocks(blocks, nested):
    """Concatenate per-chunk results (each (k,) + shape) along the block axis."""
    if len(blocks) == 1:
        return blocks[0]
    if nested:
        return _ops().concatenate(blocks, axis=0)
    return np.concatenate([b.data if isinstance(b, Tensor) else b for b in blocks], axis=0)


def _block_to_jacobian(block, in_axes_first, out_shape, in_shape, nested):
    """Reshape a stacked block into out_shape + in_shape.  A forward block is indexed
    (input, output...) and is transposed; a reverse block is (output, input...) already."""
    if in_axes_first and out_shape:     # (n,) + out_shape  ->  out_shape + (n,)
        nd = len(out_shape)
        perm = tuple(range(1, nd + 1)) + (0,)
        if nested:
            block = _ops().transpose(block, perm)
        elif _core.tracing():           # a view, which graphad.compile can replay
            block = np.moveaxis(block, 0, -1)
        else:                           # one tiled transpose of the (n, size) matrix
            size = 1
            for d in out_shape:
                size *= d
            block = K.contiguous(block.reshape(block.shape[0], size).T)
    shape = tuple(out_shape) + tuple(in_shape)
    if nested:
        return _ops().reshape(block, shape)
    if not block.flags.writeable:       # the identity block itself (f returned its input)
        block = block.copy()
    return block.reshape(shape)


def _zeros(shape, dtype):
    """A derivative that is structurally zero (no path from the input): a constant, also for
    a program that graphad.compile replays."""
    return _constant(np.zeros(shape, dtype))


def _fwd_entry(trace, o, s, blocks):
    """d o / d s from the tangent blocks (each (k,) + o.shape, None for zero) of a forward
    sweep that carried the identity on s."""
    for _, t in blocks:
        if t is not None:
            break
    else:                               # no tangent reached o: structurally zero
        return trace.export(_zeros(o.shape + s.shape, o.dtype))
    blocks = [np.zeros((b.shape[0],) + o.shape, o.dtype) if t is None else t for b, t in blocks]
    return trace.export(_block_to_jacobian(_stack_blocks(blocks, trace.nested), True, o.shape,
                                           s.shape, trace.nested))


def _jac_fwd(trace, outs, chunk_size):
    """jac[o][i]: d outs[o] / d sources[i], by forward sweeps with blocks of tangents."""
    live = [o for o in outs if o.requires_grad]
    jac = [[None] * len(trace.sources) for _ in outs]
    for i, s in enumerate(trace.sources):
        per_out = [[] for _ in outs]
        for block in _identity_blocks(s.shape, s.dtype, chunk_size):
            res = _core.forward_sweep([s], [block], live, nlead=1,
                                      record=trace.nested) if live else []
            it = iter(res)
            for o, acc in zip(outs, per_out):
                acc.append((block, next(it) if o.requires_grad else None))
        for j, o in enumerate(outs):
            jac[j][i] = _fwd_entry(trace, o, s, per_out[j])
    return jac


def _jac_fwd_eager(trace, f, kwargs, block):
    """The Jacobian by one eager forward evaluation of f carrying the whole identity block on
    the single source: f's values and the tangent block are computed side by side."""
    outs, kind, tans = _run_eager(trace, f, kwargs, [block], 1)
    s = trace.sources[0]
    jac = []
    for o, t in zip(outs, tans):
        if type(t) is np.ndarray:       # (n,) + o.shape -> o.shape + s.shape, at top level
            if o.shape:                 # one tiled transpose of the (n, size) matrix
                t = K.contiguous(t.reshape(t.shape[0], o.size).T)
            if not t.flags.writeable:   # the identity block itself (f returned its input)
                t = t.copy()
            jac.append([t.reshape(o.shape + s.shape)])
        else:
            jac.append([_fwd_entry(trace, o, s, [(block, t)])])
    return outs, kind, jac


def _jac_rev(trace, outs, chunk_size):
    """jac[o][i]: d outs[o] / d sources[i], by reverse sweeps with blocks of cotangents."""
    sources, nested = trace.sources, trace.nested
    if len(outs) == 1 and outs[0].requires_grad and chunk_size is None:
        # the usual case: one output, one sweep with its whole identity
        o = outs[0]
        grads = _core.reverse_sweep([o], _identity_blocks(o.shape, o.dtype, None),
                                    retain_graph=nested, create_graph=nested, sources=sources,
                                    nlead=1)
        row = []
        for g, s in zip(grads, sources):
            if g is None:
                row.append(trace.export(_zeros(o.shape + s.shape, s.dtype)))
            elif not nested and type(g) is np.ndarray:     # a fresh array from the sweep
                row.append(g.reshape(o.shape + s.shape))
            else:
                row.append(trace.export(_block_to_jacobian(g, False, o.shape, s.shape, nested)))
        return [row]
    jac = [[None] * len(trace.sources) for _ in outs]
    for j, o in enumerate(outs):
        per_src = [[] for _ in trace.sources]
        blocks = list(_identity_blocks(o.shape, o.dtype, chunk_size)) if o.requires_grad else []
        for b, block in enumerate(blocks):
            last = j == len(outs) - 1 and b == len(blocks) - 1
            grads = _core.reverse_sweep([o], [block], retain_graph=trace.nested or not last,
                                        create_graph=trace.nested, sources=trace.sources,
                                        nlead=1)
            for acc, g in zip(per_src, grads):
                acc.append(g)
        for i, s in enumerate(trace.sources):
            if blocks and any(g is not None for g in per_src[i]):
                parts = [np.zeros((b.shape[0],) + s.shape, s.dtype) if g is None else g
                         for b, g in zip(blocks, per_src[i])]
                stacked = _stack_blocks(parts, trace.nested)
                jac[j][i] = trace.export(_block_to_jacobian(stacked, False, o.shape,
                                                            s.shape, trace.nested))
            else:
                jac[j][i] = trace.export(_zeros(o.shape + s.shape, s.dtype))
    return jac


def _pack_jacobian(trace, jac, kind):
    """jac[o][i] -> the output's structure of (the arguments' structure of) blocks."""
    if kind is None:
        return trace.pack(jac[0])
    return _pack_outputs(kind, [trace.pack(row) for row in jac])


def _float_outputs(outs, name):
    for o in outs:
        if o.dtype.kind not in "fc":
            raise TypeError(f"{name}: the output has dtype {o.dtype}; only floating-point "
                            f"outputs have derivatives")


def _chunk_job(job):
    """One chunk of a Jacobian, run wherever an executor sends it (another process or machine):
    f traced afresh, then one sweep with rows start..start+k of the identity on source `which`
    (mode "fwd": the tangent blocks of every output) or on output `which` (mode "rev": the
    cotangent blocks of every source); None where nothing flowed."""
    f, args, kwargs, argnums, mode, which, start, k, has_aux = job
    f, _ = _with_aux(f, has_aux, "jacobian")
    trace = _Trace(args, argnums)
    outs, _ = _as_outputs(trace.run(f, kwargs))
    if mode == "fwd":
        s = trace.sources[which]
        live = [o for o in outs if o.requires_grad]
        it = iter(_core.forward_sweep([s], [unit_block(s.shape, start, k, s.dtype)], live,
                                      nlead=1) if live else [])
        return [_plain(next(it)) if o.requires_grad else None for o in outs]
    o = outs[which]
    if not o.requires_grad:
        return [None] * len(trace.sources)
    grads = _core.reverse_sweep([o], [unit_block(o.shape, start, k, o.dtype)],
                                sources=trace.sources, nlead=1)
    return [_plain(g) for g in grads]


def _plain(x):
    return None if x is None else np.array(x.data if isinstance(x, Tensor) else x)


def _jac_executor(trace, f, args, kwargs, argnums, outs, mode, chunk_size, executor, has_aux):
    """jac[o][i] with the chunks' sweeps run by executor.map (each chunk traces f itself)."""
    plain_args = tuple(a.data if isinstance(a, Tensor) else a for a in args)
    over = trace.sources if mode == "fwd" else outs
    jobs = [(w, start, k) for w, x in enumerate(over) for start, k in _chunks(x.size, chunk_size)]
    results = list(executor.map(_chunk_job, [(f, plain_args, kwargs, argnums, mode, w, start, k,
                                              has_aux) for w, start, k in jobs]))
    results = [r.result() if hasattr(r, "result") else r for r in results]  # a dask Client's futures
    jac = [[None] * len(trace.sources) for _ in outs]
    for j, o in enumerate(outs):
        for i, s in enumerate(trace.sources):
            w, other = (i, j) if mode == "fwd" else (j, i)
            parts = [r[other] for (wj, _, _), r in zip(jobs, results) if wj == w]
            if all(p is None for p in parts):
                jac[j][i] = _zeros(o.shape + s.shape, o.dtype)
                continue
            ks = [k for (wj, _, k) in jobs if wj == w]
            tail = o.shape if mode == "fwd" else s.shape
            parts = [np.zeros((k,) + tail, o.dtype) if p is None else p
                     for p, k in zip(parts, ks)]
            jac[j][i] = _block_to_jacobian(np.concatenate(parts, axis=0), mode == "fwd",
                                           o.shape, s.shape, False)
    return jac


def _jacobian_transform(f, argnums, chunk_size, mode, name, executor=None, has_aux=False):
    user_f = f
    f, holder = _with_aux(f, has_aux, name)

    def finish(trace, jac, kind):
        J = _pack_jacobian(trace, jac, kind)
        return (J, _export_aux(trace, holder)) if holder is not None else J

    @functools.wraps(user_f)
    def wrapper(*args, **kwargs):
        trace = _Trace(args, argnums)
        if executor is not None:
            if trace.nested:
                raise ValueError(f"{name}: executor= runs the chunks elsewhere, where an outer "
                                 f"transform's graph cannot go; use it at top level")
            outs, kind = _as_outputs(trace.run(f, kwargs))
            _float_outputs(outs, name)
            m = mode
            if m == "auto":
                n_in = sum(s.size for s in trace.sources)
                m = "fwd" if n_in <= sum(o.size for o in outs) else "rev"
            jac = _jac_executor(trace, user_f, args, kwargs, argnums, outs, m, chunk_size,
                                executor, has_aux)
            return finish(trace, jac, kind)
        blocks = None
        if mode == "fwd" and len(trace.sources) == 1 and _eager(trace):
            s = trace.sources[0]
            blocks = _identity_blocks(s.shape, s.dtype, chunk_size)
        if blocks is not None and len(blocks) == 1:
            outs, kind, jac = _jac_fwd_eager(trace, f, kwargs, blocks[0])
            _float_outputs(outs, name)
            if holder is None:
                return _pack_jacobian(trace, jac, kind)
            return finish(trace, jac, kind)
        outs, kind = _as_outputs(_run(f, trace.args, kwargs))
        _float_outputs(outs, name)
        m = mode
        if m == "auto":
            n_in = sum(s.size for s in trace.sources)
            n_out = sum(o.size for o in outs)
            m = "fwd" if n_in <= n_out else "rev"
        jac = (_jac_fwd if m == "fwd" else _jac_rev)(trace, outs, chunk_size)
        if holder is None:
            return _pack_jacobian(trace, jac, kind)
        return finish(trace, jac, kind)
    return wrapper


def jacfwd(f, argnums=0, chunk_size=None, executor=None, has_aux=False):
    """The Jacobian of f (shape out.shape + in.shape) by forward mode: one forward sweep per
    argument carrying the whole identity as a block of tangents.  With chunk_size, blocks of at
    most chunk_size tangents (less memory, more sweeps).  A tuple argnums gives a tuple.
    executor: any object with concurrent.futures' map (a ProcessPoolExecutor, a
    dask.distributed Client, Ray's executor) runs the chunks in parallel; f and the arguments
    must pickle for a process pool, and each chunk traces f afresh.  Arguments and outputs may
    be trees: the result is the output's structure of the argument's structure of blocks.
    has_aux=True: f returns (output, aux); the result is (Jacobian, aux)."""
    return _jacobian_transform(f, argnums, chunk_size, "fwd", "jacfwd", executor, has_aux)


def jacrev(f, argnums=0, chunk_size=None, executor=None, has_aux=False):
    """The Jacobian of f (shape out.shape + in.shape) by reverse mode: one reverse sweep carrying
    the whole identity on the output as a block of cotangents.  With chunk_size, blocks of at
    most chunk_size cotangents.  A tuple argnums gives a tuple.  executor, trees and has_aux:
    as for jacfwd."""
    return _jacobian_transform(f, argnums, chunk_size, "rev", "jacrev", executor, has_aux)


def _vec_matrix(J, out_shape, in_shape):
    """out_shape + in_shape Jacobian -> the matrix with rows vec(df), columns vec(dX), vec
    stacking columns (column-major) as in the course: reverse both index groups, then flatten."""
    no, ni = len(out_shape), len(in_shape)
    perm = tuple(range(no - 1, -1, -1)) + tuple(range(no + ni - 1, no - 1, -1))
    rows = int(np.prod(out_shape, dtype=np.int64))
    cols = int(np.prod(in_shape, dtype=np.int64))
    if isinstance(J, Tensor):
        return _ops().reshape(_ops().transpose(J, perm), (rows, cols))
    return np.ascontiguousarray(np.transpose(J, perm)).reshape(rows, cols)


def jacobian(f, argnums=0, mode="auto", vec=False, chunk_size=None, executor=None,
             has_aux=False):
    """The Jacobian of f.  mode="fwd" / "rev" as jacfwd / jacrev; "auto" evaluates f once and
    picks forward mode when the (total) input size is at most the output size, else reverse.
    vec=True returns, per argument, the matrix of the linear map vec(dX) -> vec(df) in the
    course's column-major vec convention; otherwise the shape is out.shape + in.shape.
    chunk_size, executor and has_aux as for jacfwd."""
    if mode not in ("auto", "fwd", "rev"):
        raise ValueError(f"jacobian: mode must be 'auto', 'fwd' or 'rev', got {mode!r}")
    if vec and has_aux:
        raise ValueError("jacobian: vec=True and has_aux=True cannot be combined")
    jac_f = _jacobian_transform(f, argnums, chunk_size, mode, "jacobian", executor, has_aux)
    if not vec:
        return jac_f

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        nums, single = _argnums_tuple(argnums, len(args))
        in_shapes = [np.shape(args[i].data if isinstance(args[i], Tensor) else args[i])
                     for i in nums]
        J = jac_f(*args, **kwargs)
        parts = (J,) if single else tuple(J)
        if any(isinstance(p, (tuple, list)) for p in parts):
            raise TypeError("jacobian(vec=True): f must return a single array")
        mats = []
        for Ji, shp in zip(parts, in_shapes):
            full = tuple(np.shape(Ji.data if isinstance(Ji, Tensor) else Ji))
            mats.append(_vec_matrix(Ji, full[:len(full) - len(shp)], shp))
        return mats[0] if single else tuple(mats)
    return wrapper


def _second_order(f, primals, tangents, nlead):
    """Forward-over-reverse at top level, for a scalar f of plain arrays, in one pass: f runs
    and its gradient's reverse sweep is recorded (create_graph) inside one forward evaluation on
    demand (_core.forward_begin(demand=True)), with the tangents (one block per source, nlead
    leading axes) on the sources: no nested transform, identity node or second trace.  f's own
    operations get their tangents only when the recorded sweep reads them, so those of f's value
    (log, sum, ... after the last intermediate the gradient reads) are never computed; the
    sweep's operations compute theirs with their values (A^T g and A^T dg as one product).
    (gradients, their tangents), one per source, arrays; a tangent None where nothing reached
    it."""
    trace = _Trace(primals, tuple(range(len(primals))))
    _core.forward_begin(trace.sources, tangents, nlead, True)
    grads = []
    try:
        out = _scalar_output(_run(f, trace.args, {}), "grad")
        grads = _reverse(trace, [out], [K.ones(out.shape, out.dtype)], record=True)
    finally:
        touts = _core.forward_end(grads)
    return [g.data for g in grads], touts


def _plain_primals(primals):
    """Whether the fast forward-over-reverse path applies: top level, outside graphad.compile's
    tracing, every primal a float ndarray (no trees, no Tensors)."""
    if _depth() > 0 or _core.tracing():
        return False
    for x in primals:
        if type(x) is not np.ndarray or x.dtype.kind != "f":
            return False
    return True


def hessian(f, argnums=0):
    """The Hessian of scalar f, shape in.shape + in.shape, by forward-over-reverse:
    jacfwd(jacrev(f)), one forward sweep with a block of tangents through the recorded reverse
    sweep.  A tuple argnums gives the nested tuple of blocks ((H00, H01), (H10, H11)).
    With one argument at top level the identity block goes through f's recorded gradient
    sweep directly (_second_order); for a vector argument the result is then the transposed
    view of that block (Fortran-ordered, no copy)."""
    def scalar_f(*args, **kwargs):
        out = f(*args, **kwargs)
        _scalar_output(out if isinstance(out, Tensor) else _core.as_tensor(out), "hessian")
        return out
    functools.update_wrapper(scalar_f, f)
    general = jacfwd(jacrev(scalar_f, argnums), argnums)
    if type(argnums) is not int:
        return general

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        n = len(args)
        if kwargs or not -n <= argnums < n or not _plain_primals((args[argnums],)):
            return general(*args, **kwargs)
        # one argument, at top level: the identity block rides through f and its recorded
        # gradient sweep (jacfwd's eager evaluation without jacrev's nested transform)
        i = argnums % n
        x = args[i]
        if i == 0 and n == 1:
            g = f
        else:
            def g(z):
                return f(*args[:i], z, *args[i + 1:])
        _, (t,) = _second_order(g, (x,), [unit_block(x.shape, 0, x.size, x.dtype)], 1)
        if t is None:                   # f linear (or constant) in x
            return np.zeros(x.shape + x.shape, x.dtype)
        # t[j] = d grad / d x_j: the block is H^T.  For a vector x, H is its transposed view
        # (Fortran-ordered, no copy); else (n,) + x.shape -> x.shape + x.shape by one tiled
        # transpose
        if x.ndim == 1:
            return t.T if t.flags.writeable else np.array(t.T)   # (the identity block itself)
        t = K.contiguous(t.reshape(x.size, x.size).T) if x.ndim else np.array(t)
        return t.reshape(x.shape + x.shape)
    return wrapper


def linearized_hvp(f, x):
    """(gradient of scalar f at the array x, v -> H v): f and its gradient's reverse sweep are
    recorded once, and each product is one forward sweep through that recording, with no rerun
    of f or of the sweep: about half an hvp per product (Newton-CG's inner loop, where x is
    fixed for many products).  The recording lives as long as the returned function.  Inside
    another transform or a trace, each product is a plain hvp."""
    if _depth() > 0 or _core.tracing():
        g, _ = hvp(f, x, np.zeros_like(x))
        return g, lambda v: hvp(f, x, v)[1]
    trace = _Trace((x,), 0)
    out = _scalar_output(_run(f, trace.args, {}), "hvp")
    (g,) = _reverse(trace, [out], [K.ones(out.shape, out.dtype)], record=True)
    src = trace.sources[0]

    def product(v):
        v = np.asarray(v, dtype=x.dtype)
        if v.shape != x.shape:
            raise ValueError(f"hvp: tangent has shape {v.shape} but its primal has shape "
                             f"{x.shape}")
        (t,) = _core.forward_sweep([src], [v], [g])
        return np.asarray(t.data if isinstance(t, Tensor) else t)
    return np.asarray(g.data), product


def hvp(f, primals, tangents):
    """(gradient, Hessian-vector product) of scalar f at primals along tangents, by
    forward-over-reverse: jvp of grad(f), one forward sweep through the recorded reverse sweep,
    a small constant times the cost of one gradient.  With one primal (a bare array or a 1-tuple)
    both results are arrays; with several, tuples (one entry per primal)."""
    single = not isinstance(primals, (tuple, list))
    primals = (primals,) if single else tuple(primals)
    tangents = (tangents,) if not isinstance(tangents, (tuple, list)) else tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"hvp: {len(primals)} primals but {len(tangents)} tangents")
    if _plain_primals(primals):
        tans = []
        for x, v in zip(primals, tangents):
            if type(v) is not np.ndarray or v.dtype is not x.dtype:
                if np.iscomplexobj(v):
                    raise TypeError(f"hvp: tangent: {_core._COMPLEX_MSG}")
                v = np.asarray(v.data if isinstance(v, Tensor) else v, dtype=x.dtype)
            if v.shape != x.shape:
                raise ValueError(f"jvp: tangent has shape {v.shape} but its primal has shape "
                                 f"{x.shape}")
            tans.append(v)
        grads, touts = _second_order(f, primals, tans, 0)
        touts = [np.zeros(g.shape, g.dtype) if t is None else np.asarray(t)
                 for g, t in zip(grads, touts)]
        if len(primals) == 1:
            return grads[0], touts[0]
        return tuple(grads), tuple(touts)
    argnums = 0 if len(primals) == 1 else tuple(range(len(primals)))
    return jvp(grad(f, argnums), primals, tangents)
