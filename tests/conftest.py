"""Shared helpers for graphad's tests.

- Hypothesis profiles: "graphad" (the default: few examples, no deadline, so that the whole suite
  stays fast) and "slow" (many examples), picked with `--hypothesis-profile=slow` or the
  environment variable GRAPHAD_HYPOTHESIS_PROFILE.  Tests marked `slow` are long randomized
  runs; deselect them with `-m "not slow"`.
- Strategies: shapes (with size-1 axes), pairs and triples of mutually broadcastable shapes, and
  `values(...)`, which draws an array of a given shape and dtype from a range that is safe for the
  op under test (away from poles, kinks and ties).
- `check_vjp(f, *args)`: graphad's VJP against central finite differences, entry by entry (a
  full gradient of <u, f(x)> for a random cotangent u), written here independently of
  ga.check_grad so that the checker is itself checked by another route.
- `check_vjp32(f, *args)`: float32 inputs give float32 values and gradients that agree with the
  float64 computation at the same point.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphad as ga

settings.register_profile(
    "graphad", max_examples=20, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile(
    "slow", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("GRAPHAD_HYPOTHESIS_PROFILE", "graphad"))

FLOATS = (np.float64, np.float32)


# ---------------------------------------------------------------------------------------------
# strategies

def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    """Array shapes; small sides so that size-1 axes are frequent."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def broadcast_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4):
    """Tuples of shapes that broadcast together (NumPy's rules, size-1 and missing axes)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=num_shapes, min_dims=min_dims,
                                             max_dims=max_dims, min_side=1,
                                             max_side=max_side).map(lambda b: b.input_shapes)


seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------------------------------------
# values

def values(rng, shape, dtype=np.float64, lo=-2.0, hi=2.0, kind="uniform"):
    """An array of `shape` and `dtype` with values chosen to keep the op under test smooth.

    kind: "uniform"  uniform in [lo, hi];
          "away0"    |x| in [0.25, hi] with a random sign (away from the kink/pole at 0);
          "grid"     odd multiples of 0.25 plus jitter below 0.05, so that two such arrays (one
                     built with offset=True) never come within 0.15 of each other: no ties;
          "grid0"    the other half of "grid": even multiples of 0.25 plus jitter.
    """
    shape = tuple(shape)
    if kind == "uniform":
        x = rng.uniform(lo, hi, size=shape)
    elif kind == "away0":
        x = rng.uniform(0.25, hi, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    elif kind in ("grid", "grid0"):
        k = rng.integers(-4, 4, size=shape) * 0.5 + (0.25 if kind == "grid" else 0.0)
        x = k + rng.uniform(-0.05, 0.05, size=shape)
    else:
        raise ValueError(kind)
    return np.asarray(x, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# derivative checks

def _as_array(y):
    return np.asarray(y.data if isinstance(y, ga.Tensor) else y)


def fd_gradient(f, args, i, u, h=None):
    """Central finite-difference gradient of <u, f(*args)> with respect to args[i], one entry
    at a time (in float64)."""
    args = [np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f" else a for a in args]
    x = args[i]
    g = np.zeros(x.shape)
    flat = g.reshape(-1)
    eps = np.finfo(np.float64).eps

    def phi(xi):
        a = list(args)
        a[i] = xi
        with ga.no_grad():
            return float(np.vdot(u, _as_array(f(*a)).astype(np.float64)))

    for k in range(x.size):
        step = h if h is not None else eps ** (1 / 3) * max(1.0, abs(x.flat[k]))
        xp, xm = x.copy(), x.copy()
        xp.flat[k] += step
        xm.flat[k] -= step
        flat[k] = (phi(xp) - phi(xm)) / (2 * step)
    return g


def check_vjp(f, *args, argnums=None, rtol=1e-5, atol=1e-6, rng=0):
    """Assert that ga.vjp(f, *args) agrees with central finite differences.

    A random cotangent u of the output's shape is pulled back; each argument's cotangent must
    match the finite-difference gradient of <u, f(x)> entry by entry, have the argument's shape
    and (for floating arguments) its dtype.  Returns the cotangents."""
    rng = np.random.default_rng(rng)
    args = tuple(np.asarray(a) for a in args)
    nums = tuple(i for i in range(len(args)) if args[i].dtype.kind == "f") \
        if argnums is None else tuple(argnums)

    def g(*xs):
        a = list(args)
        for i, x in zip(nums, xs):
            a[i] = x
        return f(*a)

    out, pull = ga.vjp(g, *(args[i] for i in nums))
    out = np.asarray(out)
    assert isinstance(out, np.ndarray)
    u = rng.standard_normal(out.shape).astype(out.dtype)
    cts = pull(u)
    assert isinstance(cts, tuple) and len(cts) == len(nums)
    for k, (i, ct) in enumerate(zip(nums, cts)):
        ct = np.asarray(ct)
        assert ct.shape == args[i].shape, f"argument {i}: cotangent shape {ct.shape}"
        assert ct.dtype == args[i].dtype, f"argument {i}: cotangent dtype {ct.dtype}"
        fd = fd_gradient(f, args, i, u.astype(np.float64))
        scale = atol * max(1.0, float(np.max(np.abs(fd), initial=0.0)))
        np.testing.assert_allclose(ct, fd, rtol=rtol, atol=scale,
                                   err_msg=f"VJP of argument {i} disagrees with finite "
                                           f"differences")
    return cts


def check_vjp32(f, *args, rtol=2e-4, atol=2e-5, rng=0):
    """float32 end to end: the value and every gradient stay float32 and agree with the
    float64 computation at the same (float32-representable) point."""
    rng = np.random.default_rng(rng)
    a32 = tuple(np.asarray(a).astype(np.float32) if np.asarray(a).dtype.kind == "f" else a
                for a in args)
    a64 = tuple(np.asarray(a).astype(np.float64) if np.asarray(a).dtype.kind == "f" else a
                for a in args)
    nums = tuple(i for i in range(len(args)) if np.asarray(a32[i]).dtype.kind == "f")

    def on(arrs):
        def g(*xs):
            a = list(arrs)
            for i, x in zip(nums, xs):
                a[i] = x
            return f(*a)
        return ga.vjp(g, *(arrs[i] for i in nums))

    out32, pull32 = on(a32)
    out64, pull64 = on(a64)
    out32, out64 = np.asarray(out32), np.asarray(out64)
    assert out32.dtype == np.float32, f"float32 inputs gave a {out32.dtype} output"
    vscale = atol * max(1.0, float(np.max(np.abs(out64), initial=0.0)))
    np.testing.assert_allclose(out32, out64, rtol=rtol, atol=vscale)
    u = rng.standard_normal(out64.shape)
    cts32 = pull32(u.astype(np.float32))
    cts64 = pull64(u)
    for i, c32, c64 in zip(nums, cts32, cts64):
        c32 = np.asarray(c32)
        assert c32.dtype == np.float32, f"argument {i}: float32 input got a {c32.dtype} gradient"
        gscale = atol * max(1.0, float(np.max(np.abs(c64), initial=0.0)))
        np.testing.assert_allclose(c32, c64, rtol=rtol, atol=gscale,
                                   err_msg=f"float32 gradient of argument {i}")
    return cts32


@pytest.fixture
def debug_mode():
    """Anomaly mode on for one test, and off again whatever happens."""
    ga.set_debug(True)
    try:
        yield
    finally:
        ga.set_debug(False)


@pytest.fixture(autouse=True)
def _modes_restored():
    """No test may leave recording off or debug mode on for the tests after it."""
    yield
    ok_grad, ok_debug = ga.is_grad_enabled(), not ga.is_debug()
    ga.set_grad_enabled(True)
    ga.set_debug(False)
    assert ok_grad, "the test left graph recording switched off"
    assert ok_debug, "the test left debug mode switched on"
