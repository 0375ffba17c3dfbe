"""Forward mode (graphad/transforms.py: jvp; the JVP rules in graphad/_elementwise.pyx ...): every
primitive's JVP against central finite differences, and the transpose identity
<u, J v> == <J^T u, v> between its JVP and its VJP, on hypothesis-drawn shapes and values."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import graphad as ga
from conftest import broadcast_shapes, seeds, shapes, values
from prim_cases import CASE_LIST, draw, rng_for, value


def jvp_vs_fd_and_transpose(f, args, rng, rtol=1e-6, atol=1e-8):
    """For every argument: J v from jvp equals the central difference along v, and
    <u, J v> (forward) equals <J^T u, v> (reverse)."""
    args = [np.asarray(a, np.float64) for a in args]
    out = np.asarray(value(f(*args)))
    for i, x in enumerate(args):
        v = rng.standard_normal(x.shape)
        tans = [np.zeros_like(a) for a in args]
        tans[i] = v
        y, jv = ga.jvp(f, args, tans)
        assert isinstance(jv, np.ndarray) and jv.shape == out.shape
        np.testing.assert_allclose(y, out, rtol=1e-14, atol=0)

        def along(xi, i=i):
            a = list(args)
            a[i] = xi
            return f(*a)
        fd = ga.finite_diff(along, x, v)
        scale = max(1.0, float(np.max(np.abs(fd), initial=0.0)))
        np.testing.assert_allclose(jv, fd, rtol=rtol, atol=atol * scale * 100,
                                   err_msg=f"J v of argument {i} vs finite differences")
        u = rng.standard_normal(out.shape)
        _, pull = ga.vjp(f, *args)
        jtu = pull(u)[i]
        lhs, rhs = float(np.vdot(u, jv)), float(np.vdot(jtu, v))
        assert abs(lhs - rhs) <= 1e-10 * (1 + abs(lhs)), \
            f"argument {i}: <u, Jv> = {lhs} but <J^T u, v> = {rhs}"


@pytest.mark.parametrize("name,label,f,specs", CASE_LIST,
                         ids=[f"{c[0]}-{c[1]}" for c in CASE_LIST])
def test_every_primitive_jvp_vs_fd_and_transpose(name, label, f, specs):
    rng = rng_for("jvp" + name + label)
    jvp_vs_fd_and_transpose(f, [draw(s, rng) for s in specs], rng)


# name -> (function, value kind, lo, hi) for the drawn-shape tests
UNARY = {
    "exp": (ga.exp, "uniform", -2, 2), "log": (ga.log, "uniform", 0.3, 3),
    "log1p": (ga.log1p, "uniform", -0.5, 2), "sin": (ga.sin, "uniform", -3, 3),
    "cos": (ga.cos, "uniform", -3, 3), "tan": (ga.tan, "uniform", -1.2, 1.2),
    "tanh": (ga.tanh, "uniform", -2, 2), "sinh": (ga.sinh, "uniform", -2, 2),
    "cosh": (ga.cosh, "uniform", -2, 2), "sqrt": (ga.sqrt, "uniform", 0.3, 3),
    "square": (ga.square, "uniform", -2, 2), "abs": (ga.abs, "away0", -2, 2),
    "relu": (ga.relu, "away0", -2, 2), "sigmoid": (ga.sigmoid, "uniform", -4, 4),
    "softplus": (ga.softplus, "uniform", -4, 4), "negative": (ga.negative, "uniform", -2, 2),
}


@given(name=st.sampled_from(sorted(UNARY)), shape=shapes(), seed=seeds)
def test_unary_jvp_hypothesis(name, shape, seed):
    fn, kind, lo, hi = UNARY[name]
    rng = np.random.default_rng(seed)
    jvp_vs_fd_and_transpose(fn, [values(rng, shape, lo=lo, hi=hi, kind=kind)], rng)


BINARY = {
    "add": (ga.add, "uniform", "uniform"), "subtract": (ga.subtract, "uniform", "uniform"),
    "multiply": (ga.multiply, "uniform", "uniform"), "divide": (ga.divide, "uniform", "pos"),
    "power": (ga.power, "pos", "uniform"), "maximum": (ga.maximum, "grid", "grid0"),
    "minimum": (ga.minimum, "grid", "grid0"),
}


def _binary_values(rng, shape, kind):
    if kind == "pos":
        return values(rng, shape, lo=0.5, hi=2.0)
    return values(rng, shape, kind=kind)


@given(name=st.sampled_from(sorted(BINARY)), shapes2=broadcast_shapes(2), seed=seeds)
def test_binary_broadcasting_jvp_hypothesis(name, shapes2, seed):
    fn, ka, kb = BINARY[name]
    rng = np.random.default_rng(seed)
    a, b = _binary_values(rng, shapes2[0], ka), _binary_values(rng, shapes2[1], kb)
    jvp_vs_fd_and_transpose(fn, [a, b], rng)


@given(shape=shapes(min_dims=1), seed=seeds, keepdims=st.booleans(),
       op=st.sampled_from(["sum", "mean", "logsumexp", "softmax", "log_softmax", "max"]),
       data=st.data())
def test_reduction_jvp_hypothesis(shape, seed, keepdims, op, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    if op in ("softmax", "log_softmax"):
        f = lambda x: getattr(ga, op)(x, axis=axis)
    else:
        f = lambda x: getattr(ga, op)(x, axis=axis, keepdims=keepdims)
    x = values(rng, shape, kind="grid" if op == "max" else "uniform")
    jvp_vs_fd_and_transpose(f, [x], rng)


@given(batch=st.sampled_from([(), (2,), (1, 2)]), m=st.integers(1, 3), k=st.integers(1, 3),
       n=st.integers(1, 3), vec_a=st.booleans(), vec_b=st.booleans(), seed=seeds)
def test_matmul_jvp_hypothesis(batch, m, k, n, vec_a, vec_b, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k,) if vec_a else batch + (m, k))
    b = rng.standard_normal((k,) if vec_b else batch + (k, n))
    jvp_vs_fd_and_transpose(ga.matmul, [a, b], rng)


# ---------------------------------------------------------------------------------------------
# the jvp transform itself

def test_jvp_is_one_forward_pass(monkeypatch):
    # at top level, values and tangents go through f together (eager forward mode): f runs
    # once and no sweep follows; nested inside grad, jvp sweeps the recorded graph once
    from graphad import _core
    calls = {"sweep": 0, "eager": 0, "f": 0}
    sweep, begin = _core.forward_sweep, _core.forward_begin
    monkeypatch.setattr(_core, "forward_sweep",
                        lambda *a, **k: calls.__setitem__("sweep", calls["sweep"] + 1) or
                        sweep(*a, **k))
    monkeypatch.setattr(_core, "forward_begin",
                        lambda *a: calls.__setitem__("eager", calls["eager"] + 1) or begin(*a))
    W = np.arange(6.0).reshape(2, 3) / 6

    def f(x, s):
        calls["f"] += 1
        return ga.tanh(W @ x) * s
    y, t = ga.jvp(f, (np.ones(3), 2.0), (np.ones(3), 1.0))
    assert calls == {"sweep": 0, "eager": 1, "f": 1}
    h = np.tanh(W @ np.ones(3))
    np.testing.assert_allclose(t, (1 - h ** 2) * (W @ np.ones(3)) * 2 + h, rtol=1e-14)
    g = ga.grad(lambda x: ga.sum(ga.jvp(f, (x, 2.0), (np.ones(3), 0.0))[1]))(np.ones(3))
    assert calls["sweep"] == 1 and calls["eager"] == 1
    Hv = ga.hvp(lambda x: ga.sum(f(x, 2.0)), np.ones(3), np.ones(3))[1]
    np.testing.assert_allclose(g, Hv, rtol=1e-12)


def test_jvp_tuple_outputs_and_float32():
    x = np.array([0.5, 1.5], np.float32)
    (s, c), (ts, tc) = ga.jvp(lambda x: (ga.sin(x), ga.cos(x)), (x,), (np.ones(2, np.float32),))
    assert ts.dtype == np.float32 and tc.dtype == np.float32
    np.testing.assert_allclose(ts, np.cos(x), rtol=1e-6)
    np.testing.assert_allclose(tc, -np.sin(x), rtol=1e-6)


def test_jvp_shape_errors():
    with pytest.raises(ValueError, match="tangent"):
        ga.jvp(ga.sin, (np.ones(3),), (np.ones(2),))
    with pytest.raises(ValueError, match="primals"):
        ga.jvp(ga.sin, (np.ones(3),), ())


def test_jvp_of_output_independent_of_input_is_zero():
    y, t = ga.jvp(lambda x: np.ones(3) * 2.0, (np.ones(2),), (np.ones(2),))
    assert not np.asarray(t).any()


def test_check_grad_compares_both_modes_and_the_transpose():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 4))
    ga.check_grad(lambda X, v: ga.softmax(X @ v), A, rng.standard_normal(4))


# ---------------------------------------------------------------------------------------------
# eager forward mode: a matmul with a constant matrix computes value and tangents in ONE product

@pytest.mark.parametrize("layout", ["A@x", "x@A", "X@A"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_matmul_value_and_tangents(layout, dtype, monkeypatch):
    from graphad import _products, transforms
    rng = np.random.default_rng(11)
    # A much larger than x and its Jacobian's tangent block, so that fusing pays
    A = rng.standard_normal((3000, 12) if layout == "A@x" else (12, 3000)).astype(dtype)
    shape = {"A@x": (12,), "x@A": (12,), "X@A": (2, 12)}[layout]
    x = rng.standard_normal(shape).astype(dtype)
    f = {"A@x": lambda x: ga.sin(A @ ga.tanh(x)), "x@A": lambda x: ga.sin(ga.tanh(x) @ A),
         "X@A": lambda x: ga.sin(ga.tanh(x) @ A)}[layout]
    fused = []
    rule = _products.P_MATMUL.fused
    monkeypatch.setattr(_products.P_MATMUL, "fused",
                        lambda *a: fused.append(rule(*a) is not None) or rule(*a))
    v = rng.standard_normal(shape).astype(dtype)
    y, jv = ga.jvp(f, (x,), (v,))
    J = ga.jacfwd(f)(x)
    assert fused == [True, True]          # jvp (one tangent) and jacfwd (a block of them)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    assert y.dtype == jv.dtype == J.dtype == dtype
    np.testing.assert_allclose(y, f(x).data, **tol)
    monkeypatch.setattr(transforms, "_eager", lambda trace: False)
    y2, jv2 = ga.jvp(f, (x,), (v,))
    np.testing.assert_allclose(jv, jv2, **tol)
    np.testing.assert_allclose(J, ga.jacfwd(f)(x), **tol)
    np.testing.assert_allclose(J, ga.jacrev(f)(x), **tol)
    np.testing.assert_allclose(J.reshape(jv.size, x.size) @ v.ravel(), jv.ravel(), **tol)


def test_fused_matmul_declines_where_it_does_not_pay():
    from graphad import _kernels, _products
    rule = _products.P_MATMUL.fused
    A = np.ones((4000, 30))
    x, t = np.ones(30), np.ones(30)
    assert rule(None, (A, x), [None, t]) is not None
    assert rule(None, (A[:40], x), [None, t]) is None                  # A small: no gain
    assert rule(None, (A, x), [t[:20], t]) is None                     # both carry tangents
    assert rule(None, (A, x), [None, np.ones((3000, 30))]) is None     # stacking costs more
    assert rule(None, (A, x), [None, t.astype(np.float32)]) is None    # mixed dtypes
    assert rule(None, (A, np.ones((30, 2))), [None, np.ones((30, 2))]) is None   # A @ X
    assert rule(None, (x, A.T), [t, None]) is not None                 # x @ A
    assert rule(None, (A, np.ones(29)), [None, np.ones(29)]) is None   # shapes: fwd raises
    assert rule(None, (np.float64(2.0), A), [np.float64(1.0), None]) is None      # 0-d x
    with pytest.raises(ValueError, match="matmul"):
        ga.jvp(lambda v: A @ v, (np.ones(29),), (np.ones(29),))
    unit = _kernels.unit_block((30,), 0, 3, np.float64)
    assert rule(None, (A, x), [None, unit]) is None                    # identity: rows copied


def test_regression_jvp_of_broadcast_to_that_adds_leading_axes():
    # a single tangent of the lower-rank input has no batch axes (its count went negative)
    x = np.arange(6.0).reshape(2, 3)
    y, t = ga.jvp(lambda a: ga.broadcast_to(a, (4, 2, 3)), (x,), (np.ones((2, 3)),))
    np.testing.assert_array_equal(t, np.ones((4, 2, 3)))
    J = ga.jacfwd(lambda a: ga.broadcast_to(a, (4, 2, 3)))(x)
    np.testing.assert_array_equal(J, np.broadcast_to(np.eye(6).reshape(2, 3, 2, 3),
                                                     (4, 2, 3, 2, 3)))
