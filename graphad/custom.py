"""Custom derivative rules, with JAX's calling convention.

    @ga.custom_vjp
    def f(x, y): ...
    def f_fwd(x, y): return f(x, y), residuals
    def f_bwd(residuals, g): return (gx, gy)          # J^T g, one entry per argument
    f.defvjp(f_fwd, f_bwd)

    @ga.custom_jvp
    def f(x): ...
    @f.defjvp
    def f_jvp(primals, tangents): return f(*primals), tangent_out    # J v

Each decorated function becomes a primitive created on the fly: a call on Tensors that need
derivatives makes one graph node (graphad._core.make_node) whose rules call the user's.  A rule
gets arrays in a plain sweep and Tensors when the sweep records (create_graph, nested
transforms), exactly as the registry's rules do; write rules with graphad functions (ga.sin,
@, ...) so that they can be differentiated again, e.g. for hessian.

The mode the user did not give is derived, by transposition of the given rule's linear part:

  custom_vjp under forward mode.  g -> bwd(residuals, g) is linear (it is J^T), so J v is its
  transpose: the graph of bwd applied to a dummy cotangent u is swept in reverse with the
  tangent v as seed, giving d<bwd(u), v>/du = J v.  The forward derivative is therefore
  exactly the transpose of the user's VJP (<u, J v> = <J^T u, v> holds to rounding), it costs
  one extra small sweep, and f itself is never differentiated (it may call NumPy or SciPy).
  If bwd is not written with graphad operations (it returns plain arrays however called), the
  forward rule falls back to forward mode through f itself.
  JAX refuses jvp of a custom_vjp function; graphad supports it, and hessian with it
  (forward-over-reverse) when bwd and the residuals are computed with graphad operations.

  custom_jvp under reverse mode.  v -> tangent_out of the JVP rule is linear (it is J), so
  J^T g is the reverse sweep of the rule's graph on dummy tangents with g as seed (JAX's
  linearize-and-transpose).  Fallback: reverse mode through f itself.

Blocks (the leading batch axis of jacfwd / jacrev): the user's rules see one tangent or
cotangent at a time as in JAX; a block goes through the graph of the linear part in one batched
sweep, or, when that graph cannot be built, through a loop over the block.
"""
import functools
import inspect
import threading

import numpy as np

from graphad import _core
from graphad._core import Prim, Tensor

__all__ = ["custom_vjp", "custom_jvp"]


class _Depth(threading.local):
    """How deep this thread is inside a custom function's own fwd / bwd / rule, where f is the
    plain f (per thread: another thread calling f meanwhile still gets the custom rule)."""
    n = 0


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _tree_map(fn, tree):
    if isinstance(tree, (tuple, list)):
        return type(tree)(_tree_map(fn, t) for t in tree)
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    return fn(tree)


def _recording(node):
    """Whether the sweep now running records its rules (rules then see Tensors).  A compiled
    program cannot replay such a sweep through a custom rule (the user's functions compute
    residuals and derivatives outside the primitives), so a trace running it goes eager."""
    if type(_core.out(node)) is not Tensor:
        return False
    _core.unreplayable("a higher-order sweep through a custom rule (its residuals and "
                       "derivatives are computed by the user's functions)")
    return True


def _positional(fun, args, kwargs):
    """The call's arguments as one positional tuple, defaults filled in (as JAX resolves them),
    so that f_fwd / f_bwd always see, and return gradients for, every parameter."""
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        if kwargs:
            raise TypeError("custom rules: cannot bind keyword arguments of a function "
                            "without a signature") from None
        return tuple(args)
    try:
        bound = sig.bind(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{getattr(fun, '__name__', 'custom function')}: {e}") from None
    bound.apply_defaults()
    if bound.kwargs:
        raise TypeError("custom_vjp/custom_jvp functions take their differentiable inputs "
                        "positionally; keyword-only parameters are not supported")
    return tuple(bound.args)


def _needs_node(args):
    return _core.is_grad_enabled() and any(
        isinstance(a, Tensor) and a.requires_grad for a in args)


def _lead(x, node):
    return np.ndim(_raw(x)) - node.data.ndim


class _Packing:
    """How a function with a tuple (or list) of outputs is one node: its outputs raveled into
    one vector, so that every mode, block and transposition below applies unchanged; the
    caller gets them back as reshaped slices, and the user's rules see and return tuples."""

    def __init__(self, outs):
        self.kind = type(outs)
        self.shapes = [np.shape(_raw(o)) for o in outs]
        self.bounds = np.cumsum([0] + [int(np.prod(s, dtype=np.int64)) for s in self.shapes])
        self.dtype = np.result_type(*[np.asarray(_raw(o)).dtype for o in outs], np.float32)

    def pack(self, outs, lead=()):
        """One vector (a block lead + (N,)) from the outputs (each lead + its shape); a Tensor
        when any part is one, so that a recorded rule stays differentiable."""
        from graphad import _ops
        if len(outs) != len(self.shapes):
            raise TypeError(f"custom rule: expected {len(self.shapes)} outputs or tangents, "
                            f"got {len(outs)}")
        parts = [np.zeros(tuple(lead) + s, self.dtype) if o is None else o
                 for o, s in zip(outs, self.shapes)]
        if any(isinstance(p, Tensor) for p in parts):
            return _ops.concatenate([_ops.reshape(p, tuple(lead) + (-1,)) for p in parts],
                                    axis=-1)
        return np.concatenate([np.reshape(p, tuple(lead) + (-1,)).astype(self.dtype)
                               for p in parts], axis=-1)

    def unpack(self, flat):
        """The outputs (each lead + its shape) from a packed vector or block."""
        lead = tuple(np.shape(_raw(flat))[:-1])
        parts = [flat[..., a:b].reshape(lead + s)
                 for a, b, s in zip(self.bounds[:-1], self.bounds[1:], self.shapes)]
        return self.kind(parts)


def _packing(out):
    return _Packing(out) if isinstance(out, (tuple, list)) else None


def _pack(packing, out, lead=()):
    return out if packing is None else packing.pack(out, lead)


def _unpack(packing, flat):
    return flat if packing is None else packing.unpack(flat)


def _connected(outs):
    """True when every non-None output is a Tensor with a graph (the map was built with
    graphad operations); plain arrays mean the user's code went around graphad."""
    return all(o is None or (isinstance(o, Tensor) and o.requires_grad) for o in outs)


def _with_grad(fn, *args):
    prev = _core.set_grad_enabled(True)
    try:
        return fn(*args)
    finally:
        _core.set_grad_enabled(prev)


def _stack(parts, recording):
    if recording:
        from graphad import _ops
        return _ops.stack(parts, axis=0)
    return np.stack([_raw(p) for p in parts], axis=0)


def _loop_block(fn, block, node_shape):
    """Apply a one-at-a-time map fn to every entry of a block (lead + node_shape)."""
    from graphad import _ops
    bshape = np.shape(_raw(block))
    lead_shape = bshape[:len(bshape) - len(node_shape)]
    K = int(np.prod(lead_shape, dtype=np.int64))
    flat = (_ops.reshape(block, (K,) + tuple(node_shape)) if isinstance(block, Tensor)
            else np.reshape(block, (K,) + tuple(node_shape)))
    results = [fn(flat[k]) for k in range(K)]
    return results, lead_shape


def _differentiate_fun(fun, node, mode, block):
    """Fallback: forward (mode "fwd", block = tangents) or reverse (mode "rev", block = the
    cotangent) mode through the user's function itself, on a fresh graph of it."""
    recording = _recording(node)
    args = [_core.arg(node, i) for i in range(len(node.parents))]
    diff = [i for i, a in enumerate(node.parents)
            if isinstance(a, Tensor) and a.requires_grad]
    sources = []
    for i in diff:
        a = args[i]
        s = _core.apply(_prim_identity(), (a,)) if isinstance(a, Tensor) else _core.leaf(a)
        sources.append(s)
        args[i] = s
    out = _with_grad(fun, *args)
    out = _pack(_packing(out), out)
    if not (isinstance(out, Tensor) and out.requires_grad):
        raise TypeError(f"{getattr(fun, '__name__', 'custom function')}: cannot derive the "
                        f"{'forward' if mode == 'fwd' else 'reverse'}-mode rule: the given rule "
                        f"and the function itself are not written with graphad operations")
    if mode == "fwd":
        pairs = [(s, block[i], i) for s, i in zip(sources, diff) if block[i] is not None]
        t0, i0 = pairs[0][1], pairs[0][2]
        nlead = np.ndim(_raw(t0)) - np.ndim(_raw(node.parents[i0]))
        return _core.forward_sweep([p[0] for p in pairs], [p[1] for p in pairs], [out],
                                   nlead=nlead, record=recording)[0]
    nlead = _lead(block, node)
    grads = _core.reverse_sweep([out], [block], retain_graph=recording,
                                create_graph=recording, sources=sources, nlead=nlead)
    result = [None] * len(node.parents)
    for i, g in zip(diff, grads):
        result[i] = g
    return tuple(result)


def _prim_identity():
    from graphad._elementwise import P_ID
    return P_ID


# ----------------------------------------------------------------------------------------------
# custom_vjp

class custom_vjp:
    """Decorator: give f a hand-written VJP with f.defvjp(f_fwd, f_bwd)."""

    def __init__(self, fun):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.fwd = None
        self.bwd = None
        self._inside = _Depth()  # > 0 while the user's fwd/bwd run: f there is plain f
        name = getattr(fun, "__name__", "f")
        self.prim = Prim(f"custom_vjp[{name}]", self._prim_fwd, _vjp_of_custom_vjp,
                         _jvp_of_custom_vjp, saves=True)

    def defvjp(self, fwd, bwd):
        """fwd(*args) -> (out, residuals);  bwd(residuals, g) -> one gradient per argument."""
        self.fwd = fwd
        self.bwd = bwd

    def _prim_fwd(self, params, *raw):
        """The primitive's forward on arrays (graphad.compile replays the node with it)."""
        with _core.no_grad():
            out, res = self.fwd(*raw)
        return np.asarray(_raw(_pack(params[2], out))), _tree_map(_raw, res)

    def __call__(self, *args, **kwargs):
        args = _positional(self.fun, args, kwargs)
        if self._inside.n or not _needs_node(args):
            return self.fun(*args)
        if self.fwd is None:
            raise TypeError(f"custom_vjp {self.__name__}: call defvjp(f_fwd, f_bwd) before "
                            f"differentiating it")
        # The user's forward runs on the inputs as given, so that residuals computed from them
        # with graphad operations carry their graph (higher derivatives differentiate bwd).
        # graphad.compile replays the node by running fwd on arrays, so it does not record
        # the operations fwd makes here
        self._inside.n += 1
        tracer = _core.set_tracer(None)
        try:
            try:
                out, res = self.fwd(*args)
                raw_res = False
            except TypeError:        # a forward in NumPy: residuals are constants of the graph
                with _core.no_grad():
                    out, res = self.fwd(*[_raw(a) for a in args])
                raw_res = True
        finally:
            _core.set_tracer(tracer)
            self._inside.n -= 1
        packing = _packing(out)
        data = np.asarray(_raw(_pack(packing, [_raw(o) for o in out] if packing else out)))
        node = _core.make_node(self.prim, data, tuple(args), params=(self, raw_res, packing),
                               saved=res)
        return _unpack(packing, node)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)


def _vjp_residuals(node):
    self, raw_res, _ = node.params
    if _recording(node):
        if raw_res:
            raise TypeError(f"custom_vjp {self.__name__}: higher derivatives differentiate "
                            f"f_bwd, so f_fwd must compute its residuals with graphad "
                            f"operations (it failed on Tensors and ran on NumPy arrays)")
        return node.saved
    return _tree_map(_raw, node.saved)


def _check_grads(self, grads, node):
    if not isinstance(grads, (tuple, list)) or len(grads) != len(node.parents):
        raise TypeError(f"custom_vjp {self.__name__}: f_bwd must return a tuple of "
                        f"{len(node.parents)} gradients (one per argument), got {grads!r:.80}")
    return tuple(grads)


def _call_bwd(self, node, res, g):
    self._inside.n += 1
    try:
        return _check_grads(self, self.bwd(res, _unpack(node.params[2], g)), node)
    finally:
        self._inside.n -= 1


def _bwd_graph(self, node, res):
    """The linear map u -> bwd(res, u) built on a dummy cotangent u: (u, outputs)."""
    u = _core.leaf(np.zeros(node.data.shape, node.data.dtype))
    grads = _with_grad(_call_bwd, self, node, res, u)
    keep = [g if (isinstance(node.parents[i], Tensor) and node.parents[i].requires_grad)
            else None for i, g in enumerate(grads)]
    return u, keep


def _vjp_of_custom_vjp(node, g):
    self = node.params[0]
    res = _vjp_residuals(node)
    nlead = _lead(g, node)
    if nlead == 0:
        return _call_bwd(self, node, res, g)
    # a block of cotangents: push it through the graph of the linear map u -> bwd(res, u)
    u, grads = _bwd_graph(self, node, res)
    if _connected(grads):
        live = [x for x in grads if x is not None]
        outs = iter(_core.forward_sweep([u], [g], live, nlead=nlead,
                                        record=_recording(node)) if live else [])
        return tuple(None if x is None else next(outs) for x in grads)
    recording = _recording(node)
    results, _ = _loop_block(lambda gk: _call_bwd(self, node, res, gk), g, node.data.shape)
    lead_shape = np.shape(_raw(g))[:nlead]
    stacked = []
    for i in range(len(node.parents)):
        parts = [r[i] for r in results]
        if all(p is None for p in parts):
            stacked.append(None)
            continue
        shape = np.shape(_raw(node.parents[i]))
        parts = [np.zeros(shape, node.data.dtype) if p is None else p for p in parts]
        s = _stack(parts, recording)
        stacked.append(s.reshape(tuple(lead_shape) + shape))
    return tuple(stacked)


def _jvp_of_custom_vjp(node, t):
    """J v as the transpose of the VJP: reverse sweep of u -> bwd(res, u) seeded with v."""
    self = node.params[0]
    res = _vjp_residuals(node)
    u, grads = _bwd_graph(self, node, res)
    roots, seeds = [], []
    for gi, ti in zip(grads, t):
        if gi is not None and ti is not None:
            roots.append(gi)
            seeds.append(ti)
    if not roots:
        return None
    if not _connected(grads):
        return _differentiate_fun(self.fun, node, "fwd", list(t))
    recording = _recording(node)
    nlead = np.ndim(_raw(seeds[0])) - np.ndim(_raw(roots[0]))
    fitted = [_fit_seed(s, r, nlead) for s, r in zip(seeds, roots)]
    jv = _core.reverse_sweep(roots, fitted, retain_graph=recording, create_graph=recording,
                             sources=[u], nlead=nlead)[0]
    return jv


def _fit_seed(seed, root, nlead):
    """A tangent of an argument as a seed for the root bwd produced for it (same shape, unless
    bwd returned a gradient that broadcasts to the argument's shape)."""
    rshape = np.shape(_raw(root))
    sshape = np.shape(_raw(seed))
    if tuple(sshape[nlead:]) == tuple(rshape):
        return seed
    raise ValueError(f"custom_vjp: f_bwd returned a gradient of shape {rshape} for an argument "
                     f"of shape {tuple(sshape[nlead:])}")


# ----------------------------------------------------------------------------------------------
# custom_jvp

class custom_jvp:
    """Decorator: give f a hand-written JVP with f.defjvp(rule)."""

    def __init__(self, fun):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.rule = None
        self._inside = _Depth()  # > 0 while the user's rule runs: f there is plain f
        name = getattr(fun, "__name__", "f")
        self.prim = Prim(f"custom_jvp[{name}]", self._prim_fwd, _vjp_of_custom_jvp,
                         _jvp_of_custom_jvp)

    def defjvp(self, rule):
        """rule(primals, tangents) -> (out, tangent_out).  Usable as a decorator."""
        self.rule = rule
        return rule

    def _prim_fwd(self, params, *raw):
        with _core.no_grad():
            return np.asarray(_raw(_pack(params[1], self.fun(*raw))))

    def __call__(self, *args, **kwargs):
        args = _positional(self.fun, args, kwargs)
        if self._inside.n or not _needs_node(args):
            return self.fun(*args)
        if self.rule is None:
            raise TypeError(f"custom_jvp {self.__name__}: call defjvp(rule) before "
                            f"differentiating it")
        with _core.no_grad():
            out = self.fun(*[_raw(a) for a in args])
        packing = _packing(out)
        node = _core.make_node(self.prim, np.asarray(_raw(_pack(packing, out))), tuple(args),
                               params=(self, packing))
        return _unpack(packing, node)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)


def _primals(node):
    return tuple(_core.arg(node, i) for i in range(len(node.parents)))


def _tangent_out(self, primals, tangents, packing=None, lead=()):
    self._inside.n += 1
    try:
        res = self.rule(primals, tangents)
    finally:
        self._inside.n -= 1
    if not isinstance(res, (tuple, list)) or len(res) != 2:
        raise TypeError(f"custom_jvp {self.__name__}: the rule must return "
                        f"(out, tangent_out), got {res!r:.80}")
    return _pack(packing, res[1], lead)


def _differentiable(node, i):
    a = node.parents[i]
    return isinstance(a, Tensor) and a.requires_grad


def _jvp_graph(self, node):
    """The linear map v -> tangent_out built on dummy tangents v: (leaves, tangent_out)."""
    primals = _primals(node)
    leaves, tans = [], []
    for i, p in enumerate(primals):
        shape, dtype = np.shape(_raw(p)), np.asarray(_raw(p)).dtype
        if _differentiable(node, i):
            v = _core.leaf(np.zeros(shape, dtype if dtype.kind in "fc" else np.float64))
            leaves.append(v)
            tans.append(v)
        else:
            leaves.append(None)
            tans.append(np.zeros(shape, dtype if dtype.kind in "fc" else np.float64))
    tout = _with_grad(_tangent_out, self, primals, tuple(tans), node.params[1])
    return leaves, tout


def _jvp_of_custom_jvp(node, t):
    self, packing = node.params
    _recording(node)                # (a compiled trace of a recorded sweep goes eager)
    primals = _primals(node)
    nlead = next(np.ndim(_raw(ti)) - np.ndim(_raw(p)) for ti, p in zip(t, primals)
                 if ti is not None)
    if nlead == 0:
        tans = tuple(ti if ti is not None else
                     np.zeros(np.shape(_raw(p)), node.data.dtype) for ti, p in zip(t, primals))
        return _tangent_out(self, primals, tans, packing)
    leaves, tout = _jvp_graph(self, node)
    if isinstance(tout, Tensor) and tout.requires_grad:
        srcs = [v for v, ti in zip(leaves, t) if v is not None and ti is not None]
        tans = [ti for v, ti in zip(leaves, t) if v is not None and ti is not None]
        return _core.forward_sweep(srcs, tans, [tout], nlead=nlead,
                                   record=_recording(node))[0]
    # the rule went around graphad: one tangent at a time
    recording = _recording(node)
    lead_shape = next(np.shape(_raw(ti))[:nlead] for ti in t if ti is not None)
    K = int(np.prod(lead_shape, dtype=np.int64))
    flat = [None if ti is None else
            (ti.reshape((K,) + np.shape(_raw(p)))) for ti, p in zip(t, primals)]
    outs = []
    for k in range(K):
        tans = tuple(np.zeros(np.shape(_raw(p)), node.data.dtype) if f is None else f[k]
                     for f, p in zip(flat, primals))
        outs.append(_tangent_out(self, primals, tans, packing))
    return _stack(outs, recording).reshape(tuple(lead_shape) + node.data.shape)


def _vjp_of_custom_jvp(node, g):
    """J^T g as the transpose of the JVP rule's linear part (linearize and transpose)."""
    self = node.params[0]
    leaves, tout = _jvp_graph(self, node)
    recording = _recording(node)
    nlead = _lead(g, node)
    if not (isinstance(tout, Tensor) and tout.requires_grad):
        return _differentiate_fun(self.fun, node, "rev", g)
    srcs = [v for v in leaves if v is not None]
    grads = iter(_core.reverse_sweep([tout], [g], retain_graph=recording,
                                     create_graph=recording, sources=srcs, nlead=nlead))
    return tuple(None if v is None else next(grads) for v in leaves)
