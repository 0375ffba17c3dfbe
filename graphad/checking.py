"""Derivative checking: finite differences, and check_grad, which compares graphad's reverse
and forward derivatives with them (and with each other) along random directions."""
import numpy as np

from graphad import _core
from graphad._core import Tensor

_EPS = np.finfo(np.float64).eps


class GradientCheckError(AssertionError):
    """A derivative disagreed with its finite-difference estimate."""


def _value(y):
    y = y.data if isinstance(y, Tensor) else y
    return np.asarray(y, dtype=np.float64)


def finite_diff(f, x, dx, method="central", h=None):
    """Estimate f'(x)[dx] from f(x + h dx) (and f(x - h dx)).

    h is the absolute step along dx; by default eps^(1/3) (central) or eps^(1/2) (forward)
    times the scale max(1, |x|_inf) / |dx|_inf, near the step that balances truncation and
    rounding error for each method."""
    x = np.asarray(x.data if isinstance(x, Tensor) else x, dtype=np.float64)
    dx = np.asarray(dx.data if isinstance(dx, Tensor) else dx, dtype=np.float64)
    if x.shape != dx.shape:
        raise ValueError(f"finite_diff: x has shape {x.shape} but dx has shape {dx.shape}")
    if method not in ("central", "forward"):
        raise ValueError(f"finite_diff: method must be 'central' or 'forward', got {method!r}")
    if h is None:
        scale = max(1.0, float(np.max(np.abs(x)))) if x.size else 1.0
        size = float(np.max(np.abs(dx))) if dx.size else 1.0
        h = (_EPS ** (1 / 3) if method == "central" else _EPS ** 0.5) * scale / (size or 1.0)
    with _core.no_grad():
        if method == "central":
            return (_value(f(x + h * dx)) - _value(f(x - h * dx))) / (2 * h)
        return (_value(f(x + h * dx)) - _value(f(x))) / h


def _mismatch(a, b, scale, rtol, atol):
    """(whether a disagrees with the reference b, the relative error): they agree when
    |a - b| <= atol * scale + rtol * |b| in every entry.  `scale` is the size the compared
    quantity has when f's values change by their own magnitude (see check_grad): the rounding
    noise of finite differences is proportional to it, so a reference that is zero up to that
    noise is not compared relatively to the noise (an exact 0 against 1e-11 is a match)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = np.abs(a - b)
    bad = bool(np.any(diff > atol * scale + rtol * np.abs(b)))
    floor = np.maximum(np.abs(b), atol * scale) + np.finfo(np.float64).tiny
    return bad, float(np.max(diff / floor, initial=0.0))


def check_grad(f, *args, modes=("rev", "fwd"), method="central", rtol=None, atol=None,
               directions=3, rng=0):
    """Check f's derivatives with respect to every floating-point argument.

    For each argument and random direction v (and random output cotangent u):
      rev: <u, J v> by finite differences equals <J^T u, v> from vjp;
      fwd: J v from jvp equals its finite-difference estimate;
      both: <u, J v> (fwd) equals <J^T u, v> (rev): the VJP is the transpose of the JVP.
    Raises GradientCheckError with a report on the first mismatch; returns None otherwise."""
    from graphad.transforms import jvp, vjp
    rng = np.random.default_rng(rng)
    arrays = [np.asarray(a.data if isinstance(a, Tensor) else a) for a in args]
    low = any(a.dtype == np.float32 for a in arrays)
    rtol = rtol if rtol is not None else (2e-2 if low else 1e-5)
    atol = atol if atol is not None else (2e-3 if low else 1e-7)
    problems = []
    for i, x in enumerate(arrays):
        if x.dtype.kind not in "fc":
            continue

        def fi(xi, i=i):
            a = list(arrays)
            a[i] = xi.astype(arrays[i].dtype) if low else xi
            return f(*a)

        def f_at(xi, i=i):            # f as a function of argument i alone (others constant,
            a = list(arrays)          # so integer arguments are never differentiated)
            a[i] = xi
            return f(*a)

        # how large f's values are per unit change of x: finite differences' rounding noise
        # (and so the absolute tolerance) is relative to it, not to the derivative itself
        with _core.no_grad():
            f_size = float(np.max(np.abs(_value(fi(x))), initial=0.0))
        per_unit = max(1.0, f_size) / max(1.0, float(np.max(np.abs(x), initial=0.0)))
        for d in range(directions):
            v = rng.standard_normal(x.shape)
            fd = np.atleast_1d(finite_diff(fi, x, v, method=method))
            u = rng.standard_normal(fd.shape)
            tried = f"direction {d} (seed-drawn v of shape {x.shape})"
            uJv_fd = float(np.vdot(u, fd))
            scale_jv = float(np.linalg.norm(v)) * per_unit           # of each entry of J v
            scale_ujv = float(np.linalg.norm(u)) * scale_jv           # of <u, J v>
            rev_val = fwd_val = None
            if "rev" in modes:
                out, pull = vjp(f_at, x)
                ct = pull(u.reshape(np.shape(out)).astype(np.asarray(out).dtype))[0]
                rev_val = float(np.vdot(np.asarray(ct, np.float64), v))
                bad, err = _mismatch(rev_val, uJv_fd, scale_ujv, rtol, atol)
                if bad:
                    problems.append(f"argument {i}, rev: <J^T u, v> = {rev_val:.10g} but "
                                    f"finite differences give {uJv_fd:.10g} "
                                    f"(relative error {err:.3g}; {tried})")
            if "fwd" in modes:
                _, jv = jvp(f_at, (x,), (v.astype(x.dtype),))
                jv = np.atleast_1d(np.asarray(jv, np.float64))
                bad, err = _mismatch(jv, fd, scale_jv, rtol, atol)
                if bad:
                    problems.append(f"argument {i}, fwd: J v differs from finite differences "
                                    f"(max relative error {err:.3g}; {tried})")
                fwd_val = float(np.vdot(u, jv))
            if rev_val is not None and fwd_val is not None:
                bad, err = _mismatch(rev_val, fwd_val, scale_ujv, rtol, atol)
                if bad:
                    problems.append(f"argument {i}: VJP is not the transpose of the JVP: "
                                    f"<J^T u, v> = {rev_val:.10g}, <u, J v> = {fwd_val:.10g} "
                                    f"(relative error {err:.3g}; {tried})")
    if problems:
        raise GradientCheckError("gradient check failed:\n  " + "\n  ".join(problems))
