"""ga.odeint: ODE solutions y(t) with derivatives by the adjoint method (the course's adjoint
ODEs), by backpropagation through the steps, and by forward sensitivities.

    ys = ga.odeint(func, y0, t, *params, method="rk4", substeps=10)   # ys[i] = y(t[i])
    dy/dt = func(y, t, *params),   y(t[0]) = y0

Solvers.  Every method is an explicit Runge-Kutta scheme given by its Butcher tableau:
  stages   k_i = f(u_i, t_n + c_i h),   u_i = y_n + h sum_{j<i} a_ij k_j
  step     y_{n+1} = y_n + h sum_i b_i k_i
"euler" and "rk4" take `substeps` equal steps per interval of t; "dopri5" (Dormand-Prince 5(4),
Hairer, Norsett & Wanner, "Solving ODEs I", II.5) chooses its steps from the embedded error
estimate, err = h sum_i (b_i - b*_i) k_i, accepting a step when the RMS norm of
err / (atol + rtol max(|y_n|, |y_{n+1}|)) is at most 1, and lands exactly on every t[i].

Derivatives, all of the SAME discrete solution (the steps taken, with dopri5's step sizes held
fixed as constants: they are decisions, not functions of the inputs):
  adjoint=False   the steps are a plain composition of graphad operations, so every mode works
                  through them (memory: the whole graph, O(number of steps)).
  adjoint=True    one primitive node (P_ODEINT).  Its VJP is the discrete adjoint of the exact
                  steps, run backwards:
                    ybar_k = h b_k a + h sum_{i>k} a_ik gu_i,   (gu_k, gp_k) = (df/du_k)^T ybar_k
                    a_n = a_{n+1} + sum_k gu_k,                 gp += sum_k gp_k
                  (a is the adjoint state dL/dy_n; gp, the parameters' gradient quadrature, is
                  carried apart from it).  Each stage's VJP is one graphad reverse sweep of f
                  (vectorized over y and all the parameters, and over a block of cotangents for
                  jacrev).  The states it needs are recomputed from checkpoints: the outputs
                  y(t[i]) are the first level; within an interval of n steps the backward pass
                  re-runs the steps keeping a checkpoint every `seg` steps (seg >= _LEAF, at most
                  _FANOUT checkpoints, recursively), then re-runs each segment of at most _LEAF
                  steps recording f's graphs and sweeps them in reverse.  Memory: _LEAF steps of
                  graph plus _FANOUT states per level (levels = ceil(log_FANOUT(n / _LEAF)) + 1,
                  2 up to 16,384 steps per interval), independent of n in practice; time: the
                  forward solve, one re-run per level, and the sweeps.  Because these are the
                  exact reverse of the forward's own steps, gradients equal direct backprop to
                  rounding; no backward re-solve of the state (torchdiffeq's continuous adjoint),
                  so no loss of accuracy on dynamics that are unstable backwards.
                  Its JVP (jvp, jacfwd) is the tangent-linear recursion of the same steps,
                    du_k = dy_n + h sum_{j<k} a_kj dk_j,   dk_k = f'(u_k)[du_k] + f_p'(u_k)[dp]
                  one eager forward-mode evaluation of f per stage, memory O(1).
                  Higher order (hessian, hvp, grad of grad through adjoint=True): a rule that
                  runs in a recorded sweep (its result is differentiated again) re-solves the
                  same steps with graphad operations and differentiates them with a recorded
                  sweep, so the second derivative is the exact one of the same discrete
                  solution; that sweep's memory is O(number of steps), like adjoint=False.
Derivatives with respect to the times t (t a Tensor that requires grad, or a list holding one,
e.g. t = [0.0, T]):
  euler, rk4      the output is an exact differentiable function of t through the step sizes
                  h_i = (t[i+1] - t[i]) / substeps, the step starts t_n = t[i] + n h_i and the
                  stage times t_n + c_j h_i (func may depend on t explicitly), and every mode
                  gives that function's exact derivative (it matches finite differences of
                  odeint itself; it tends to the exact solution's as the steps shrink).
                  adjoint=True: each step's VJP also returns the cotangents of h and t_n,
                    hbar = <a, sum_k b_k k_k> + sum_k (<gu_k, sum_j a_kj k_j> + c_k gt_k),
                    tbar = sum_k gt_k,   (gu_k, gt_k, gp_k) = f'(u_k, t_k)^T ybar_k,
                  func then gets t as a 0-d Tensor (of the state's dtype) in the backward's
                  recorded stages; the JVP adds dh = (dt[i+1] - dt[i]) / substeps and
                  dt_n + c_k dh to the tangent-linear recursion.  adjoint=False records h_i, t_n
                  and the stage times as graphad operations, so func gets Tensors for t there.
                  Second order (hessian, hvp) in t through adjoint=True is the exact one too.
  dopri5          the discrete solution is not a differentiable function of t (the step sizes
                  are chosen from the values), so the t-derivative is the EXACT solution's,
                  y(t_i) = Phi(t_i; t_0, y0):
                    dy(t_i)/dt_i = f(y(t_i), t_i) (i > 0),  dy(t_i)/dt_0 = -(dy(t_i)/dy0) f(y0, t_0)
                  i.e. dL/dt_i = <ybar_i, f(y_i, t_i)> and dL/dt_0 = -<a_0, f(y0, t_0)> with a_0
                  the adjoint at t_0 from the outputs after t[0] (dL/dy0 less ybar_0: y(t_0) = y0
                  whatever t_0), with the accepted steps held fixed as for y0 and params.  It is
                  accurate to the solver's tolerance (finite differences of odeint agree to about
                  rtol / eps).  Reverse and forward mode, first order only: a recorded sweep that
                  needs t (second order in t) raises NotImplementedError.  With adjoint=False and
                  t requiring grad, dopri5 uses the node as well (the same numbers as the
                  recorded steps, which could not carry this convention).
  func must compute with t through graphad (or NumPy ufuncs on the Tensor): float(t) or math.sin(t)
  reads its value and drops the explicit dependence on t from the derivative.
ga.compile: a node of P_ODEINT replays (its forward reruns the solver on the new inputs, the
plain sweeps rerun its rules); a recorded sweep through it (a compiled hessian) is made of
ordinary primitives and replays too.  A traced t (an argument of the compiled function) is an
input of the node (or, with adjoint=False, of the recorded step arithmetic), so a replay follows
a new t.  `func` is called with Python floats for t in the solver, so branches on t are fine;
branches on values of y are evaluated afresh at every solve (the solver calls func itself,
untraced) except in adjoint=False, where the trace freezes them as usual.
"""
import math

import numpy as np

from graphad import _core
from graphad._core import Tensor, arg, call, need
from graphad._elementwise import P_ID, add_, astype_, mul_
from graphad._lincomb import P_LINCOMB
from graphad._prims import defprim, stacked

__all__ = ["odeint"]

_LEAF = 64        # steps whose graphs one backward segment keeps
_FANOUT = 256     # checkpoints per level of the backward's recursion
_MAX_STEPS = 100_000   # dopri5: accepted + rejected steps per call


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


class _Tableau:
    """An explicit Runge-Kutta scheme: stage i uses a[i] = ((j, a_ij), ...) (nonzeros only)."""

    def __init__(self, name, c, a, b, order, b_err=None):
        self.name, self.c, self.b, self.order, self.b_err = name, c, b, order, b_err
        self.a = [tuple((j, x) for j, x in enumerate(row) if x != 0.0) for row in a]
        self.s = len(c)
        # the transpose: at[i] = ((j, a_ji), ...) for the later stages j > i that read k_i
        self.at = [tuple((j, x) for j in range(i + 1, self.s) for jj, x in self.a[j] if jj == i)
                   for i in range(self.s)]


EULER = _Tableau("euler", [0.0], [[]], [1.0], 1)
RK4 = _Tableau("rk4", [0.0, 0.5, 0.5, 1.0], [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]],
               [1 / 6, 1 / 3, 1 / 3, 1 / 6], 4)
# Dormand & Prince (1980); the solution uses stages 1-6 (b_7 = 0); stage 7, f(y_{n+1}), only
# enters the error estimate (and is the next step's first stage: FSAL)
_DP_B = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]
_DP_BSTAR = [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]
DOPRI5 = _Tableau(
    "dopri5", [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0],
    [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
     [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
     [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656]],
    _DP_B, 5, [x - y for x, y in zip(_DP_B + [0.0], _DP_BSTAR)])
METHODS = {"euler": EULER, "rk4": RK4, "dopri5": DOPRI5}


class _Spec:
    """The static parameters of one odeint call (the node's params)."""

    def __init__(self, func, t, tab, substeps, rtol, atol, shape, dtype, tin=False):
        self.func, self.t, self.tab, self.substeps = func, t, tab, substeps
        self.rtol, self.atol, self.shape, self.dtype = rtol, atol, shape, dtype
        self.tin = tin          # t is the node's last input (it requires grad, or is traced)

    def eval(self, y, t, ps):
        """func(y, t, *ps), checked: the state's shape and its dtype (cast back to it)."""
        k = self.func(y, t, *ps)
        if k is None or np.shape(_raw(k)) != self.shape:
            raise ValueError(f"odeint: func returned shape {np.shape(_raw(k))} for a state of "
                             f"shape {self.shape}")
        if not isinstance(k, Tensor):
            k = np.asarray(k)
            if k.dtype != self.dtype:
                k = k.astype(self.dtype)
        elif k.data.dtype is not self.dtype and k.dtype != self.dtype:
            # func promoted (np.sin(t) * y is float64 for a float32 y): the state keeps its dtype
            k = astype_(k, self.dtype)
        return k

    def eval_raw(self, y, t, ps):
        return _raw(self.eval(y, t, ps))


# ----------------------------------------------------------------------------------------------
# one step, on arrays or Tensors (add_ / mul_ run kernels on arrays and record nodes on Tensors)

def _combine(y, h, coeffs, ks):
    """y + h sum_j coeff_j k_j over the nonzero (j, coeff), as one lincomb (one node when
    recorded, one C pass on arrays)."""
    cs, xs = [1.0], [y]
    for j, x in coeffs:
        if x != 0.0 and ks[j] is not None:
            cs.append(float(h * x))
            xs.append(ks[j])
    if len(xs) == 1:
        return y
    return call(P_LINCOMB, tuple(xs), tuple(cs))


def _stages(spec, y, t, h, ps, k1=None, raw=False):
    """The stages k_i of one step (arrays when raw, else as func returns them)."""
    tab = spec.tab
    ev = spec.eval_raw if raw else spec.eval
    ks = [k1 if k1 is not None else ev(y, t, ps)]
    for i in range(1, tab.s):
        u = _combine(y, h, tab.a[i], ks)
        ks.append(ev(u, t + tab.c[i] * h, ps))
    return ks


def _step(spec, y, t, h, ps, raw=False):
    ks = _stages(spec, y, t, h, ps, raw=raw)
    return _combine(y, h, tuple(enumerate(spec.tab.b)), ks)


class _Grid:
    """Steps i0 .. i0 + n - 1 of h from t0, as (t_n, h): a sequence that costs O(1) memory."""

    def __init__(self, t0, h, n, i0=0):
        self.t0, self.h, self.n, self.i0 = t0, h, n, i0

    def __len__(self):
        return self.n

    def __iter__(self):
        for i in range(self.i0, self.i0 + self.n):
            yield (self.t0 + i * self.h, self.h)

    def __getitem__(self, s):
        start, stop, _ = s.indices(self.n)
        return _Grid(self.t0, self.h, max(0, stop - start), self.i0 + start)


def _fixed_steps(t, m):
    """The steps of every interval of t (euler, rk4): `substeps` equal ones."""
    return [_Grid(float(t0), float((t1 - t0) / m), m) for t0, t1 in zip(t[:-1], t[1:])]


def _rms(x):
    return math.sqrt(float(np.mean(np.square(x)))) if np.size(x) else 0.0


def _initial_step(spec, y, t0, t1, ps, f0):
    """Hairer, Norsett & Wanner II.4: a first step whose Euler error is about tolerance."""
    scale = spec.atol + spec.rtol * np.abs(y)
    d0, d1 = _rms(y / scale), _rms(f0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, abs(t1 - t0))
    direction = 1.0 if t1 > t0 else -1.0
    f1 = spec.eval_raw(y + direction * h0 * f0, t0 + direction * h0, ps)
    d2 = _rms((f1 - f0) / scale) / h0
    h1 = (max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15
          else (0.01 / max(d1, d2)) ** (1 / (DOPRI5.order)))
    return min(100 * h0, h1)


def _adaptive(spec, y, ps, t):
    """Solve with dopri5: (the outputs, the accepted (t_n, h) per interval).  On Tensors the
    accepted steps are recorded (direct backprop); the error control reads values only."""
    tab = DOPRI5
    raw = not any(isinstance(x, Tensor) for x in [y, *ps])
    ys, steps = [y], []
    k1 = spec.eval_raw(y, float(t[0]), ps) if raw else spec.eval(y, float(t[0]), ps)
    h = (_initial_step(spec, _raw(y), float(t[0]), float(t[-1]), [_raw(p) for p in ps],
                       _raw(k1)) if len(t) > 1 else 0.0)
    tried = 0
    for t0, t1 in zip(t[:-1], t[1:]):
        t0, t1 = float(t0), float(t1)
        direction = 1.0 if t1 > t0 else -1.0
        tn, taken = t0, []
        while direction * (t1 - tn) > 0:
            last = abs(h) >= abs(t1 - tn) * (1 - 1e-12)
            hn = (t1 - tn) if last else direction * abs(h)
            tried += 1
            if tried > _MAX_STEPS:
                raise RuntimeError(f"odeint(dopri5): more than {_MAX_STEPS} steps between "
                                   f"t={t[0]} and t={t[-1]} (stiff problem, or rtol={spec.rtol}"
                                   f" / atol={spec.atol} too tight); try rk4 with substeps")
            ks = _stages(spec, y, tn, hn, ps, k1, raw=raw)
            y_new = _combine(y, hn, tuple(enumerate(tab.b)), ks)
            k7 = spec.eval_raw(y_new, tn + hn, ps) if raw else spec.eval(y_new, tn + hn, ps)
            yr, ynr = _raw(y), _raw(y_new)
            err = _combine(np.zeros_like(yr), hn, tuple(enumerate(tab.b_err)),
                           [_raw(k) for k in ks + [k7]])
            scale = spec.atol + spec.rtol * np.maximum(np.abs(yr), np.abs(ynr))
            e = _rms(err / scale)
            if not np.isfinite(e):
                raise FloatingPointError(f"odeint(dopri5): the state became non-finite near "
                                         f"t={tn}")
            factor = 10.0 if e == 0 else min(10.0, max(0.2, 0.9 * e ** -0.2))
            if e <= 1.0:
                taken.append((tn, hn))
                tn = t1 if last else tn + hn
                y, k1 = y_new, k7
                h = abs(hn) * factor if not last else max(abs(h), abs(hn) * factor)
            else:
                h = abs(hn) * factor
        ys.append(y)
        steps.append(taken)
    return ys, steps


def _solve(spec, y0, ps, t, steps=None):
    """The solution at every t (a list) and the steps per interval.  On arrays (raw) or on
    Tensors (every step recorded: direct backprop); with `steps` given, exactly those steps."""
    if steps is None:
        if spec.tab is DOPRI5:
            return _adaptive(spec, y0, ps, t)
        steps = _fixed_steps(t, spec.substeps)
    raw = not any(isinstance(x, Tensor) for x in [y0, *ps])
    ys, y = [y0], y0
    for interval in steps:
        for tn, h in interval:
            y = _step(spec, y, tn, h, ps, raw)
        ys.append(y)
    return ys, steps


def _lincomb_h(y, h, coeffs, ks):
    """y + h sum_j coeff_j k_j with h a Tensor (a step size that depends on the times)."""
    cs, xs = [], []
    for j, x in coeffs:
        if x != 0.0 and ks[j] is not None:
            cs.append(float(x))
            xs.append(ks[j])
    if not xs:
        return y
    return add_(y, mul_(h, call(P_LINCOMB, tuple(xs), tuple(cs))))


def _solve_times(spec, y0, ps, tt):
    """The fixed steps with the times tt a Tensor (float64, 1-D): h_i = (t[i+1] - t[i]) / m,
    t_n = t[i] + n h_i and the stage times t_n + c_j h_i are recorded, so every mode
    differentiates the solution in t too (the same values as _solve, to rounding)."""
    tab, m = spec.tab, spec.substeps
    cast = spec.dtype != np.float64        # a float32 state gets float32 times and steps
    ys, y = [y0], y0
    for i in range(tt.shape[0] - 1):
        t0 = tt[i]
        h = (tt[i + 1] - t0) / m
        hs = astype_(h, spec.dtype) if cast else h
        for n in range(m):
            tn = t0 + n * h if n else t0
            ks = []
            for j in range(tab.s):
                u = _lincomb_h(y, hs, tab.a[j], ks) if j else y
                tj = tn + tab.c[j] * h if tab.c[j] != 0.0 else tn
                ks.append(spec.eval(u, astype_(tj, spec.dtype) if cast else tj, ps))
            y = _lincomb_h(y, hs, tuple(enumerate(tab.b)), ks)
        ys.append(y)
    return ys


# ----------------------------------------------------------------------------------------------
# the primitive: inputs (y0, *params), and t last when spec.tin

def _untraced(fn, *args):
    """Run fn with graphad.compile's recorder off: the solver's own arithmetic on arrays is the
    primitive's forward, not part of the traced program."""
    tracer = _core.set_tracer(None)
    try:
        with _core.no_grad():
            return fn(*args)
    finally:
        _core.set_tracer(tracer)


def _odeint_fwd(spec, y0, *ps):
    t = spec.t
    if spec.tin:
        ps, t = ps[:-1], np.asarray(ps[-1], dtype=np.float64)
    ys, steps = _untraced(_solve, spec, np.asarray(y0), ps, t)
    return np.stack([np.asarray(_raw(y)) for y in ys]), steps


def _nparams(n):
    return len(n.parents) - 1 - n.params.tin


def _times(n):
    """The node's times as float64 values (its input when spec.tin: a replay's new t)."""
    spec = n.params
    return np.asarray(_raw(n.parents[-1]), dtype=np.float64) if spec.tin else spec.t


def _at(x, k, ndim):
    """x[..., k, :, ...] with ndim trailing state axes (a block's leading axes kept)."""
    return x[(Ellipsis, k) + (slice(None),) * ndim]


def _inner(x, v, ndim):
    """<x, v> over the ndim trailing state axes: x may carry a block's leading axes, v is one
    state (an array); the result has x's leading axes."""
    x = np.asarray(x)
    return np.reshape(x, x.shape[:x.ndim - ndim] + (-1,)) @ np.reshape(v, -1)


def _with_grad(fn, *args):
    prev = _core.set_grad_enabled(True)
    try:
        return fn(*args)
    finally:
        _core.set_grad_enabled(prev)


class _Adjoint:
    """The backward pass of one node: the adjoint state a, and the parameters' quadrature gp.
    With tgrad (fixed steps, t's cotangent needed) each step also gives the cotangents of its
    step size h and its start time t_n, summed per interval into sh = sum_n hbar_n,
    st = sum_n tbar_n and snt = sum_n n tbar_n."""

    def __init__(self, spec, ps, live, nlead, tgrad=False):
        self.spec, self.nlead, self.tgrad = spec, nlead, tgrad
        self.ps = list(ps)
        self.live = live                  # indices of the parameters whose gradient is needed
        for i in live:
            self.ps[i] = _core.leaf(np.asarray(ps[i]))
        self.gp = {i: None for i in live}
        self.sh = self.st = self.snt = 0.0

    def advance(self, y, steps):
        for tn, h in steps:
            y = _untraced(_step, self.spec, y, tn, h, self.ps_raw(), True)
        return y

    def ps_raw(self):
        return [_raw(p) for p in self.ps]

    def segment(self, y, steps, a):
        """a at the start of `steps` from a at their end."""
        n = len(steps)
        if n > _LEAF:
            seg = max(_LEAF, -(-n // _FANOUT))
            starts = list(range(0, n, seg))
            cps = [y]
            for s in starts[1:]:
                cps.append(self.advance(cps[-1], steps[s - seg:s]))
            for s, c in zip(reversed(starts), reversed(cps)):
                a = self.segment(c, steps[s:s + seg], a)
            return a
        tapes = []
        for tn, h in steps:                      # re-run the segment, keeping f's graphs
            tapes.append((h, _with_grad(self._record_step, y, tn, h)))
            y = _combine(y, h, tuple(enumerate(self.spec.tab.b)),
                         [_raw(o[1]) for o in tapes[-1][1]])
        if not self.tgrad:
            for h, tape in reversed(tapes):
                a = self._step_vjp(tape, h, a)
            return a
        for idx in range(len(tapes) - 1, -1, -1):
            h, tape = tapes[idx]
            a, hbar, tbar = self._step_vjp(tape, h, a)
            self.sh = self.sh + hbar
            if tbar is not None:                 # the step's index in its interval: i0 + idx
                self.st = self.st + tbar
                self.snt = self.snt + (steps.i0 + idx) * tbar
        return a

    def _record_step(self, y, tn, h):
        """The stages of one step, each as (leaf u_i, f(u_i) recorded, leaf t_i or None)."""
        spec, tab, ps = self.spec, self.spec.tab, self.ps
        tape, ks = [], []
        for i in range(tab.s):
            u = _combine(y, h, tab.a[i], ks) if i else y
            leaf = _core.leaf(np.asarray(u))
            if self.tgrad:                       # t_n + c_i h as a 0-d leaf of the state's dtype
                ti = _core.leaf(np.asarray(tn + tab.c[i] * h, dtype=spec.dtype))
                k = spec.eval(leaf, ti, ps)
            else:
                k, ti = spec.eval(leaf, tn + tab.c[i] * h, ps), None
            tape.append((leaf, k, ti))
            ks.append(_raw(k))
        return tape

    def _step_vjp(self, tape, h, a):
        """Reverse one step: ybar_i = h b_i a + h sum_{j>i} a_ji gu_j, a += sum_i gu_i.
        With tgrad also (a, hbar, tbar), from y_{n+1} = y_n + h sum_i b_i k_i,
        u_i = y_n + h sum_j a_ij k_j, k_i = f(u_i, t_n + c_i h):
          hbar = <a, sum_i b_i k_i> + sum_i (<gu_i, sum_j a_ij k_j> + c_i gt_i),
          tbar = sum_i gt_i,   (gu_i, gt_i, gp_i) = f'(u_i, t_i)^T ybar_i."""
        tab, tgrad = self.spec.tab, self.tgrad
        s = tab.s
        gu = [None] * s
        a_new = a
        if tgrad:
            ndim = len(self.spec.shape)
            ks = [_raw(x[1]) for x in tape]
            hbar = _inner(a, _combine(np.zeros_like(ks[0]), 1.0, tuple(enumerate(tab.b)), ks),
                          ndim)
            tbar = None
        for i in range(s - 1, -1, -1):
            ybar = mul_(a, h * tab.b[i]) if tab.b[i] != 0.0 else None
            for j, x in tab.at[i]:
                if gu[j] is not None:
                    term = mul_(gu[j], h * x)
                    ybar = term if ybar is None else add_(ybar, term)
            if ybar is None:
                continue
            leaf, k, tleaf = tape[i]
            if not (isinstance(k, Tensor) and k.requires_grad):
                continue                      # f(u) does not depend on u or the parameters
            sources = [leaf] + [self.ps[i2] for i2 in self.live]
            if tgrad:
                sources.append(tleaf)
            grads = _core.reverse_sweep([k], [ybar], sources=sources, nlead=self.nlead)
            gu[i] = grads[0]
            if gu[i] is not None:
                a_new = add_(a_new, gu[i])
            for i2, gpi in zip(self.live, grads[1:]):
                if gpi is not None:
                    prev = self.gp[i2]
                    self.gp[i2] = gpi if prev is None else add_(prev, gpi)
            if tgrad:
                if gu[i] is not None and tab.a[i]:
                    hbar = hbar + _inner(gu[i], _combine(np.zeros_like(ks[0]), 1.0, tab.a[i],
                                                         ks), ndim)
                gt = grads[-1]
                if gt is not None:
                    tbar = gt if tbar is None else tbar + gt
                    if tab.c[i] != 0.0:
                        hbar = hbar + tab.c[i] * gt
        if tgrad:
            return a_new, hbar, tbar
        return a_new


def _f_at(spec, y, t, ps):
    """f(y, t) on arrays, untraced (the output-time terms of dopri5's t-derivative)."""
    return np.asarray(_untraced(spec.eval_raw, np.asarray(y), float(t), ps))


def _odeint_vjp(n, g):
    spec, steps = n.params, n.saved
    if _core.recording():
        return _differentiate_direct(n, "rev", g)
    ys = n.data
    npar = _nparams(n)
    ps = [arg(n, i) for i in range(1, 1 + npar)]
    ndim = len(spec.shape)
    nlead = np.ndim(g) - ys.ndim
    live = [i for i in range(npar) if need(n, i + 1)]
    tneed = spec.tin and need(n, npar + 1)
    fixed = spec.tab is not DOPRI5
    adj = _Adjoint(spec, ps, live, nlead, tneed and fixed)
    nt = len(ys)
    if tneed:
        t = _times(n)
        tb = [np.zeros(np.shape(g)[:nlead])] * nt
    a = _at(g, nt - 1, ndim)
    a_start = None
    for k in range(nt - 2, -1, -1):
        a = adj.segment(ys[k], steps[k], a)
        if tneed and fixed:
            # t_n = t_k + n h, h = (t_{k+1} - t_k) / m: dt_n/dt_k = 1 - n/m, dt_n/dt_{k+1} = n/m
            m = spec.substeps
            w = (adj.snt + adj.sh) / m
            tb[k] = tb[k] + adj.st - w
            tb[k + 1] = tb[k + 1] + w
            adj.sh = adj.st = adj.snt = 0.0
        a_start = a                   # d L / d y0 from the outputs after t[0]
        a = add_(a, _at(g, k, ndim))
    result = (a,) + tuple(adj.gp.get(i) for i in range(npar))
    if not spec.tin:
        return result
    if not tneed:
        return result + (None,)
    if not fixed and nt > 1:
        # dopri5: the t-derivative of the exact solution y(t_k) = Phi(t_k; t_0, y0):
        # dy(t_k)/dt_k = f(y(t_k), t_k),  dy(t_k)/dt_0 = -dy(t_k)/dy0 f(y0, t_0)
        ps_raw = [_raw(p) for p in ps]
        for k in range(1, nt):
            tb[k] = _inner(_at(g, k, ndim), _f_at(spec, ys[k], t[k], ps_raw), ndim)
        tb[0] = -_inner(a_start, _f_at(spec, ys[0], t[0], ps_raw), ndim)
    tdt = np.asarray(_raw(n.parents[-1])).dtype
    return result + (np.stack(np.broadcast_arrays(*tb), axis=-1).astype(tdt, copy=False),)


def _tangent_stage(spec, u, du, tk, ps, dps, nlead, dtk=None):
    """(f(u), f'(u)[du] + f_p'[dp] + f_t dt): one eager forward-mode evaluation of f."""
    leaf = _core.leaf(np.asarray(u))
    sources, tans, args = [leaf], [du], list(ps)
    for i, d in dps.items():
        args[i] = _core.leaf(np.asarray(ps[i]))
        sources.append(args[i])
        tans.append(d)
    if dtk is not None:                 # the stage time as a 0-d leaf of the state's dtype
        tk = _core.leaf(np.asarray(tk, dtype=spec.dtype))
        sources.append(tk)
        tans.append(np.asarray(dtk, dtype=spec.dtype))
    _core.forward_begin(sources, tans, nlead)
    k = None
    try:
        k = spec.eval(leaf, tk, args)
    finally:
        dk = _core.forward_end([k] if isinstance(k, Tensor) else [])
    dk = dk[0] if dk else None
    return _raw(k), dk


def _add_scaled(x, c, v, nd):
    """x + c v with c a block of scalars (leading axes), v one state: x may be None (zero)."""
    term = np.reshape(c, np.shape(c) + (1,) * nd) * v
    return term if x is None else x + term


def _odeint_jvp(n, t):
    spec, steps = n.params, n.saved
    if _core.recording() or any(isinstance(ti, Tensor) for ti in t):
        return _differentiate_direct(n, "fwd", list(t))
    tab = spec.tab
    npar = _nparams(n)
    ps = [_raw(arg(n, i)) for i in range(1, 1 + npar)]
    dps = {i - 1: t[i] for i in range(1, 1 + npar) if t[i] is not None}
    dts = t[-1] if spec.tin else None
    j, first = next((i, ti) for i, ti in enumerate(t) if ti is not None)
    nlead = np.ndim(first) - np.ndim(_raw(n.parents[j]))
    lead = np.shape(first)[:nlead]
    nd = len(spec.shape)
    y = np.asarray(_raw(arg(n, 0)))
    dy = t[0] if t[0] is not None else np.zeros(lead + spec.shape, n.data.dtype)
    out = [np.broadcast_to(dy, lead + spec.shape)]
    if dts is None:
        for interval in steps:
            for tn, h in interval:
                ks, dks = [], []
                for i in range(tab.s):
                    u = _combine(y, h, tab.a[i], ks) if i else y
                    du = _combine(dy, h, tab.a[i], dks) if i else dy
                    k, dk = _with_grad(_tangent_stage, spec, u, du, tn + tab.c[i] * h, ps,
                                       dps, nlead)
                    ks.append(k)
                    dks.append(dk)
                all_b = tuple(enumerate(tab.b))
                y, dy = _combine(y, h, all_b, ks), _combine(dy, h, all_b, dks)
            out.append(np.broadcast_to(dy, lead + spec.shape))
        return np.stack(out, axis=nlead)
    times = _times(n)
    dts = np.asarray(dts)
    fixed = tab is not DOPRI5
    if not fixed and len(times) > 1:
        # dopri5, the exact solution's convention: dy(t_k) = (dy(t_k)/dy0)(dy0 - f(y0, t_0) dt_0)
        # + f(y(t_k), t_k) dt_k for k > 0 (the steps held fixed)
        dy = _add_scaled(dy, -dts[..., 0], _f_at(spec, y, times[0], ps), nd)
    m = spec.substeps
    for k_int, interval in enumerate(steps):
        if fixed:       # h = (t_{k+1} - t_k) / m, t_n = t_k + n h, stage times t_n + c_i h
            dt0 = dts[..., k_int]
            dh = (dts[..., k_int + 1] - dt0) / m
        for idx, (tn, h) in enumerate(interval):
            ks, dks = [], []
            dtn = dt0 + idx * dh if fixed else None
            for i in range(tab.s):
                u = _combine(y, h, tab.a[i], ks) if i else y
                du = _combine(dy, h, tab.a[i], dks) if i else dy
                if fixed and i:            # du_i += dh sum_j a_ij k_j
                    du = _add_scaled(du, dh, _combine(np.zeros_like(y), 1.0, tab.a[i], ks), nd)
                k, dk = _with_grad(_tangent_stage, spec, u, du, tn + tab.c[i] * h, ps, dps,
                                   nlead, dtn + tab.c[i] * dh if fixed else None)
                ks.append(k)
                dks.append(dk)
            all_b = tuple(enumerate(tab.b))
            y, dy = _combine(y, h, all_b, ks), _combine(dy, h, all_b, dks)
            if fixed:                      # dy_{n+1} += dh sum_i b_i k_i
                dy = _add_scaled(dy, dh, _combine(np.zeros_like(y), 1.0, all_b, ks), nd)
        dout = dy
        if not fixed:
            dout = _add_scaled(dy, dts[..., k_int + 1], _f_at(spec, y, times[k_int + 1], ps),
                               nd)
        out.append(np.broadcast_to(dout, lead + spec.shape))
    return np.stack(out, axis=nlead).astype(n.data.dtype, copy=False)


def _differentiate_direct(n, mode, block):
    """In a recorded sweep: the same steps re-solved with graphad operations on the node's
    inputs, then swept with recording on, so that the result is differentiable again.  With
    the times among the inputs to differentiate (fixed steps only), the steps are re-derived
    from them (_solve_times)."""
    spec, steps = n.params, n.saved
    args = [arg(n, i) for i in range(len(n.parents))]
    live = [i for i, a in enumerate(n.parents) if isinstance(a, Tensor) and a.requires_grad
            and (mode == "fwd" and block[i] is not None or mode == "rev" and need(n, i))]
    # t among the inputs as a Tensor that requires grad (a source of this sweep, or of an
    # enclosing one: d/dt of d/dy0), or traced: the re-solve must follow it
    if spec.tab is DOPRI5:
        if spec.tin and isinstance(args[-1], Tensor) and args[-1].requires_grad:
            raise NotImplementedError(
                "odeint(method='dopri5'): derivatives with respect to t in a recorded sweep "
                "(second order involving t: hessian, hvp, grad of grad, a derivative in t of a "
                "derivative, nested forward mode) are not supported: dopri5's t-derivative is "
                "the exact solution's, not a function of the steps that can be differentiated "
                "again; use method='rk4' with substeps")
        _core.unreplayable(_FROZEN_STEPS)
    sources = []
    for i in live:
        a = args[i]
        s = _core.apply(P_ID, (a,)) if isinstance(a, Tensor) else _core.leaf(np.asarray(a))
        sources.append(s)
        args[i] = s
    npar = _nparams(n)
    ps = args[1:1 + npar]
    tt = args[-1] if spec.tin and spec.tab is not DOPRI5 else None
    if isinstance(tt, Tensor):
        if tt.dtype != np.float64:
            tt = astype_(tt, np.float64)
        ys = _with_grad(_solve_times, spec, args[0], ps, tt)
    else:
        ys, _ = _with_grad(_solve, spec, args[0], ps, _times(n), steps)
    from graphad._shape import stack
    out = stack([y if isinstance(y, Tensor) else _core.as_tensor(y) for y in ys])
    if not live or not (isinstance(out, Tensor) and out.requires_grad):
        return None if mode == "fwd" else (None,) * len(args)
    if mode == "fwd":
        tans = [block[i] for i in live]
        nlead = np.ndim(_raw(tans[0])) - np.ndim(_raw(args[live[0]]))
        return _core.forward_sweep(sources, tans, [out], nlead=nlead, record=True)[0]
    nlead = np.ndim(_raw(block)) - n.data.ndim
    grads = _core.reverse_sweep([out], [block], retain_graph=True, create_graph=True,
                                sources=sources, nlead=nlead)
    result = [None] * len(args)
    for i, gi in zip(live, grads):
        result[i] = gi
    return tuple(result)


_FROZEN_STEPS = ("odeint(method='dopri5') recorded step by step (adjoint=False, or a higher-order "
                 "sweep): its step sizes are chosen from the values, a replay would freeze them")

P_ODEINT = defprim("odeint", _odeint_fwd, _odeint_vjp, _odeint_jvp, saves=True,
                   pure=False)     # calls the user's func


# ----------------------------------------------------------------------------------------------
# the public function

def _check_float(name, x):
    dt = np.asarray(_raw(x)).dtype
    if dt.kind == "c":
        raise TypeError(f"odeint: {name} is complex ({dt}); complex dtypes are not supported yet")
    return dt


def odeint(func, y0, t, *params, method="rk4", adjoint=True, substeps=1, rtol=None,
           atol=None):
    """The solution of dy/dt = func(y, t, *params), y(t[0]) = y0, at every time in t: an array
    of shape (len(t),) + y0.shape.

    method: "rk4" (default) or "euler", fixed steps, `substeps` per interval of t; "dopri5",
    adaptive Dormand-Prince 5(4) with error control rtol (default 1e-7) and atol (1e-9).
    Derivatives with respect to y0 and params (arrays or Tensors) in every mode: adjoint=True
    (default) by the discrete adjoint of the steps, memory independent of their number;
    adjoint=False by backpropagation through the recorded steps.  Both are the exact derivative
    of the computed solution (dopri5's step sizes held fixed); see graphad.ode.

    Derivatives with respect to t (a Tensor, or a list holding Tensors, e.g. [0.0, T]): for
    euler and rk4 the exact derivative of the computed solution through the step sizes and stage
    times, in every mode and at second order; for dopri5 the exact solution's,
    dy(t_i)/dt_i = f(y(t_i), t_i) and dy(t_i)/dt_0 = -(dy(t_i)/dy0) f(y0, t_0), accurate to the
    tolerance, first order only (a second derivative in t raises NotImplementedError).  func
    then receives t as a 0-d Tensor where it is differentiated: compute with it through graphad,
    not float(t).
    """
    if method not in METHODS:
        raise ValueError(f"odeint: unknown method {method!r}; choose one of "
                         f"{', '.join(map(repr, METHODS))}")
    tab = METHODS[method]
    if tab is DOPRI5:
        if substeps != 1:
            raise ValueError("odeint: substeps applies to the fixed-step methods 'euler' and "
                             "'rk4'; dopri5 chooses its own steps (set rtol / atol)")
        rtol = 1e-7 if rtol is None else float(rtol)
        atol = 1e-9 if atol is None else float(atol)
        if not (rtol >= 0 and atol >= 0 and rtol + atol > 0):
            raise ValueError(f"odeint: rtol and atol must be >= 0 and not both 0, got "
                             f"rtol={rtol}, atol={atol}")
    else:
        if rtol is not None or atol is not None:
            raise ValueError(f"odeint: rtol / atol apply to method='dopri5'; {method!r} takes "
                             f"fixed steps (set substeps)")
        if isinstance(substeps, bool) or not isinstance(substeps, (int, np.integer)) \
                or substeps < 1:
            raise ValueError(f"odeint: substeps must be a positive integer, got {substeps!r}")
        substeps = int(substeps)
    if not callable(func):
        raise TypeError(f"odeint: func must be callable as func(y, t, *params), got "
                        f"{type(func).__name__}")
    t = stacked(t)                      # a list holding Tensors (t = [0.0, T]) as one Tensor
    tt = None                           # t as a Tensor: it requires grad, or ga.compile traces it
    if isinstance(t, Tensor):
        if t.requires_grad or _core.traced(t):
            tt = t
        t = t.data
    _check_float("t", t)
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"odeint: t must be a non-empty 1-D array of times, got shape "
                         f"{t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("odeint: t must be finite")
    dt = np.diff(t)
    if t.size > 1 and not (np.all(dt > 0) or np.all(dt < 0)):
        raise ValueError("odeint: t must be strictly increasing or strictly decreasing")
    dtype = _check_float("y0", y0)
    if not isinstance(y0, Tensor):       # integers in float64; '>f8' in the native byte order
        y0 = np.asarray(y0, dtype=dtype.newbyteorder("=") if dtype.kind == "f" else np.float64)
    elif dtype.kind != "f":
        y0 = y0.astype(np.float64)
    dtype = np.asarray(_raw(y0)).dtype
    for i, p in enumerate(params):
        _check_float(f"params[{i}]", p)
    spec = _Spec(func, t, tab, substeps, rtol, atol, np.shape(_raw(y0)), dtype)
    if tt is not None and tt.dtype != np.float64:
        tt = astype_(tt, np.float64)
    if not adjoint and not (tab is DOPRI5 and tt is not None and tt.requires_grad):
        from graphad._shape import stack
        if tab is DOPRI5:
            _core.unreplayable(_FROZEN_STEPS)
            ys, _ = _solve(spec, y0, list(params), t)
        elif tt is not None:
            ys = _solve_times(spec, y0, list(params), tt)
        else:
            ys, _ = _solve(spec, y0, list(params), t)
        return stack([y if isinstance(y, Tensor) else _core.as_tensor(y) for y in ys])
    # the node (also dopri5 with adjoint=False when t requires grad: the same numbers)
    params = tuple(p if isinstance(p, Tensor) else np.asarray(p) for p in params)
    if tt is None:
        return _core.apply(P_ODEINT, (y0,) + params, spec)
    spec.tin = True
    return _core.apply(P_ODEINT, (y0,) + params + (tt,), spec)
