"""Elementwise primitives (graphad/_elementwise.pyx): values against NumPy, VJPs against
finite differences over hypothesis-drawn shapes with broadcasting, float64 and float32, the
operators, and the `where` trap."""
import numpy as np
import pytest
import scipy.special
from hypothesis import given

import graphad as ga
from conftest import broadcast_shapes, check_vjp, check_vjp32, seeds, shapes, values

# name -> (graphad function, NumPy reference, value kind, lo, hi)
UNARY = {
    "negative": (ga.negative, np.negative, "uniform", -2, 2),
    "exp": (ga.exp, np.exp, "uniform", -3, 3),
    "log": (ga.log, np.log, "uniform", 0.2, 4),
    "log1p": (ga.log1p, np.log1p, "uniform", -0.7, 3),
    "sin": (ga.sin, np.sin, "uniform", -3, 3),
    "cos": (ga.cos, np.cos, "uniform", -3, 3),
    "tan": (ga.tan, np.tan, "uniform", -1.2, 1.2),
    "tanh": (ga.tanh, np.tanh, "uniform", -3, 3),
    "sinh": (ga.sinh, np.sinh, "uniform", -3, 3),
    "cosh": (ga.cosh, np.cosh, "uniform", -3, 3),
    "sqrt": (ga.sqrt, np.sqrt, "uniform", 0.2, 4),
    "square": (ga.square, np.square, "uniform", -2, 2),
    "abs": (ga.abs, np.abs, "away0", -2, 2),
    "sign": (ga.sign, np.sign, "away0", -2, 2),
    "relu": (ga.relu, lambda x: np.maximum(x, 0), "away0", -2, 2),
    "sigmoid": (ga.sigmoid, scipy.special.expit, "uniform", -6, 6),
    "softplus": (ga.softplus, lambda x: np.logaddexp(0, x), "uniform", -6, 6),
}

# name -> (graphad function, NumPy reference, (kind, lo, hi) of a, (kind, lo, hi) of b)
BINARY = {
    "add": (ga.add, np.add, ("uniform", -2, 2), ("uniform", -2, 2)),
    "subtract": (ga.subtract, np.subtract, ("uniform", -2, 2), ("uniform", -2, 2)),
    "multiply": (ga.multiply, np.multiply, ("uniform", -2, 2), ("uniform", -2, 2)),
    "divide": (ga.divide, np.divide, ("uniform", -2, 2), ("away0", -2, 2)),
    "power": (ga.power, np.power, ("uniform", 0.3, 2.5), ("uniform", -2, 2)),
    "maximum": (ga.maximum, np.maximum, ("grid", -2, 2), ("grid0", -2, 2)),
    "minimum": (ga.minimum, np.minimum, ("grid", -2, 2), ("grid0", -2, 2)),
}


def _unary_input(name, rng, shape, dtype=np.float64):
    _, _, kind, lo, hi = UNARY[name]
    return values(rng, shape, dtype, lo, hi, kind)


def _binary_inputs(name, rng, sa, sb, dtype=np.float64):
    _, _, (ka, la, ha), (kb, lb, hb) = BINARY[name]
    return values(rng, sa, dtype, la, ha, ka), values(rng, sb, dtype, lb, hb, kb)


# ---------------------------------------------------------------------------------------------
# unary

@pytest.mark.parametrize("name", sorted(UNARY))
@given(shape=shapes(), seed=seeds)
def test_unary_vjp_matches_finite_differences(name, shape, seed):
    f = UNARY[name][0]
    x = _unary_input(name, np.random.default_rng(seed), shape)
    check_vjp(f, x, rng=seed)


@pytest.mark.parametrize("name", sorted(UNARY))
@given(shape=shapes(), seed=seeds)
def test_unary_float32_values_and_gradients(name, shape, seed):
    f = UNARY[name][0]
    x = _unary_input(name, np.random.default_rng(seed), shape, np.float32)
    check_vjp32(f, x, rng=seed)


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_unary_values_match_numpy(name, dtype):
    f, ref = UNARY[name][:2]
    for shape in [(), (1,), (7,), (3, 1, 4)]:
        x = _unary_input(name, np.random.default_rng(1), shape, dtype)
        y = f(ga.tensor(x))
        assert isinstance(y, ga.Tensor)
        assert y.shape == shape and y.dtype == dtype
        tol = 1e-13 if dtype == np.float64 else 1e-6
        np.testing.assert_allclose(y.numpy(), ref(x.astype(np.float64)), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_on_a_non_contiguous_view(name):
    f, ref = UNARY[name][:2]
    x = _unary_input(name, np.random.default_rng(2), (5, 6))
    view = x.T[::2]
    np.testing.assert_allclose(f(view).numpy(), ref(view), rtol=1e-13)
    check_vjp(lambda a: f(a.T[::2]), x)


def test_unary_closed_form_derivatives():
    # the course's table of derivatives, at a few points
    x = np.array([-1.3, -0.4, 0.3, 0.9, 2.0])
    p = np.abs(x) + 0.1
    cases = [
        (ga.exp, x, np.exp(x)),
        (ga.log, p, 1 / p),
        (ga.log1p, p, 1 / (1 + p)),
        (ga.sin, x, np.cos(x)),
        (ga.cos, x, -np.sin(x)),
        (ga.tan, x, 1 / np.cos(x) ** 2),
        (ga.tanh, x, 1 / np.cosh(x) ** 2),
        (ga.sinh, x, np.cosh(x)),
        (ga.cosh, x, np.sinh(x)),
        (ga.sqrt, p, 0.5 / np.sqrt(p)),
        (ga.square, x, 2 * x),
        (ga.abs, x, np.sign(x)),
        (ga.sign, x, np.zeros_like(x)),
        (ga.relu, x, (x > 0).astype(float)),
        (ga.sigmoid, x, scipy.special.expit(x) * (1 - scipy.special.expit(x))),
        (ga.softplus, x, scipy.special.expit(x)),
        (ga.negative, x, -np.ones_like(x)),
    ]
    for f, at, want in cases:
        got = ga.grad(lambda a: ga.sum(f(a)))(at)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=f.__name__)


def test_sigmoid_and_softplus_do_not_overflow():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    np.testing.assert_allclose(ga.sigmoid(x).numpy(), scipy.special.expit(x), rtol=1e-15)
    np.testing.assert_allclose(ga.softplus(x).numpy(), np.logaddexp(0, x), rtol=1e-15)
    g = ga.grad(lambda a: ga.sum(ga.softplus(a)))(x)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, scipy.special.expit(x), rtol=1e-15)
    g = ga.grad(lambda a: ga.sum(ga.sigmoid(a)))(x)
    assert np.all(np.isfinite(g))


# ---------------------------------------------------------------------------------------------
# binary, with broadcasting

@pytest.mark.parametrize("name", sorted(BINARY))
@given(pair=broadcast_shapes(2), seed=seeds)
def test_binary_vjp_matches_finite_differences(name, pair, seed):
    f = BINARY[name][0]
    a, b = _binary_inputs(name, np.random.default_rng(seed), *pair)
    check_vjp(f, a, b, rng=seed)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(pair=broadcast_shapes(2), seed=seeds)
def test_binary_float32_values_and_gradients(name, pair, seed):
    f = BINARY[name][0]
    a, b = _binary_inputs(name, np.random.default_rng(seed), *pair, dtype=np.float32)
    check_vjp32(f, a, b, rng=seed)


@pytest.mark.parametrize("name", sorted(BINARY))
@given(pair=broadcast_shapes(2), seed=seeds)
def test_binary_values_match_numpy(name, pair, seed):
    f, ref = BINARY[name][:2]
    a, b = _binary_inputs(name, np.random.default_rng(seed), *pair)
    y = f(ga.tensor(a), b)
    want = ref(a, b)
    assert y.shape == want.shape
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_with_a_python_scalar_on_either_side(name):
    f, ref = BINARY[name][:2]
    rng = np.random.default_rng(3)
    a, b = _binary_inputs(name, rng, (2, 3), (2, 3))
    s = 1.75
    for dtype in (np.float64, np.float32):
        x = ga.tensor(a.astype(dtype), requires_grad=True)
        y = f(x, s)
        assert y.dtype == dtype
        np.testing.assert_allclose(y.numpy(), ref(a.astype(dtype), s), rtol=1e-6)
        check_vjp(lambda t: f(t, s), a)
        if name != "power":       # s ** x: base positive, exponent free
            check_vjp(lambda t: f(s, t), b)
        else:
            check_vjp(lambda t: f(s, t), np.linspace(-2, 2, 6).reshape(2, 3))


def test_maximum_minimum_ties_share_the_gradient():
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 0.0, 5.0])
    ga_, gb = ga.grad(lambda x, y: ga.sum(ga.maximum(x, y)), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga_, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gb, [0.5, 0.0, 1.0])
    ga_, gb = ga.grad(lambda x, y: ga.sum(ga.minimum(x, y)), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga_, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(gb, [0.5, 1.0, 0.0])


def test_power_derivatives_at_zero_base_are_finite():
    x = np.array([0.0, 1.0, -2.0])
    np.testing.assert_array_equal(ga.grad(lambda a: ga.sum(a ** 2))(x), [0.0, 2.0, -4.0])
    np.testing.assert_array_equal(ga.grad(lambda a: ga.sum(a ** 3))(x), [0.0, 3.0, 12.0])
    # d/db 0^b = 0 for b > 0 (0^b is constant 0 there), not 0 * log 0 = NaN
    gb = ga.grad(lambda b: ga.sum(ga.power(np.array([0.0, 2.0]), b)))(np.array([2.0, 3.0]))
    np.testing.assert_allclose(gb, [0.0, 8.0 * np.log(2.0)], rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# clip and where

@given(shape=shapes(), seed=seeds)
def test_clip_vjp(shape, seed):
    rng = np.random.default_rng(seed)
    x = values(rng, shape, kind="grid")     # odd multiples of 0.25: at least 0.2 from +-0.5
    check_vjp(lambda a: ga.clip(a, -0.5, 0.5), x, rng=seed)
    check_vjp(lambda a: ga.clip(a, None, 0.5), x, rng=seed)
    check_vjp(lambda a: ga.clip(a, -0.5), x, rng=seed)
    check_vjp32(lambda a: ga.clip(a, -0.5, 0.5), x, rng=seed)


def test_clip_values_and_derivative():
    x = np.array([-3.0, -0.5, 0.2, 0.5, 4.0])
    np.testing.assert_array_equal(ga.clip(x, -1.0, 1.0).numpy(), np.clip(x, -1, 1))
    np.testing.assert_array_equal(ga.tensor(x).clip(-1.0, 1.0).numpy(), np.clip(x, -1, 1))
    g = ga.grad(lambda a: ga.sum(ga.clip(a, -1.0, 1.0)))(x)
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0, 1.0, 0.0])


@given(shp=broadcast_shapes(3), seed=seeds)
def test_where_vjp_with_broadcasting(shp, seed):
    rng = np.random.default_rng(seed)
    cond = rng.random(shp[0]) > 0.5
    a, b = values(rng, shp[1]), values(rng, shp[2])
    y = ga.where(cond, a, b)
    np.testing.assert_array_equal(y.numpy(), np.where(cond, a, b))
    check_vjp(lambda x, z: ga.where(cond, x, z), a, b, rng=seed)
    check_vjp32(lambda x, z: ga.where(cond, x, z), a, b, rng=seed)


def test_where_accepts_a_tensor_condition():
    x = ga.tensor([-1.0, 2.0, -3.0], requires_grad=True)
    y = ga.where(x > 0, x, 0.0 * x)
    np.testing.assert_array_equal(y.numpy(), [0.0, 2.0, 0.0])
    ga.sum(y * y).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 4.0, 0.0])


def test_where_trap_log():
    # d/dx where(x > 0, log(x), 0) at x = 0 is exactly 0, not 0 * inf = NaN
    x = np.array([0.0, 1.0, 2.0])
    g = ga.grad(lambda a: ga.sum(ga.where(a > 0, ga.log(a), 0.0)))(x)
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.5])
    t = ga.tensor(x, requires_grad=True)
    ga.sum(ga.where(t > 0, ga.log(t), 0.0)).backward()
    np.testing.assert_array_equal(t.grad, [0.0, 1.0, 0.5])


def test_where_trap_sqrt():
    x = np.array([0.0, 4.0])
    g = ga.grad(lambda a: ga.sum(ga.where(a > 0, ga.sqrt(a), 0.0)))(x)
    assert not np.any(np.isnan(g))
    np.testing.assert_array_equal(g, [0.0, 0.25])
    # sqrt(x^2 + 0): the cotangent of the unused branch is exactly zero too
    g = ga.grad(lambda a: ga.sum(ga.where(a != 0, ga.sqrt(a * a), a)))(np.array([0.0, -3.0]))
    np.testing.assert_array_equal(g, [1.0, -1.0])


def test_where_trap_through_a_deeper_chain():
    # the zero cotangent stays exactly zero through several rules with infinite derivatives
    x = np.array([0.0, 1.0])
    f = lambda a: ga.sum(ga.where(a > 0, ga.exp(ga.log(a) * 2.0) + ga.sqrt(a) / a, 0.0))
    g = ga.grad(f)(x)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [0.0, 2.0 - 0.5], rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# operators and NumPy interop

def _leaf(a):
    return ga.tensor(a, requires_grad=True)


def test_operators_values_and_gradients():
    rng = np.random.default_rng(4)
    a = values(rng, (3, 4), kind="away0")
    b = values(rng, (4,), kind="away0")
    ops = {
        "+": (lambda x, y: x + y, np.add),
        "-": (lambda x, y: x - y, np.subtract),
        "*": (lambda x, y: x * y, np.multiply),
        "/": (lambda x, y: x / y, np.divide),
        "**": (lambda x, y: abs(x) ** y, lambda x, y: np.abs(x) ** y),
    }
    for sym, (op, ref) in ops.items():
        x, y = _leaf(a), _leaf(b)
        z = op(x, y)
        assert isinstance(z, ga.Tensor), sym
        np.testing.assert_allclose(z.numpy(), ref(a, b), rtol=1e-14, err_msg=sym)
        u = rng.standard_normal(z.shape)
        z.backward(u)
        gx, gy = ga.vjp(op, a, b)[1](u)
        np.testing.assert_allclose(x.grad, gx, rtol=1e-14, err_msg=sym)
        np.testing.assert_allclose(y.grad, gy, rtol=1e-14, err_msg=sym)
        check_vjp(op, a, b)


def test_unary_operators():
    a = np.array([[-1.5, 2.0], [0.5, -0.25]])
    x = _leaf(a)
    y = -x
    assert isinstance(y, ga.Tensor)
    np.testing.assert_array_equal(y.numpy(), -a)
    z = abs(x)
    assert isinstance(z, ga.Tensor)
    np.testing.assert_array_equal(z.numpy(), np.abs(a))
    ga.sum(y * 3.0 + z).backward()
    np.testing.assert_array_equal(x.grad, -3.0 + np.sign(a))
    assert (+x) is x


def test_matmul_operator():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    x, y = _leaf(a), _leaf(b)
    z = x @ y
    np.testing.assert_allclose(z.numpy(), a @ b, rtol=1e-14)
    u = rng.standard_normal((3, 2))
    z.backward(u)
    np.testing.assert_allclose(x.grad, u @ b.T, rtol=1e-14)
    np.testing.assert_allclose(y.grad, a.T @ u, rtol=1e-14)


@pytest.mark.parametrize("sym", ["+", "-", "*", "/", "**", "@"])
def test_numpy_array_on_either_side_returns_a_tensor(sym):
    import operator
    op = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
          "**": operator.pow, "@": operator.matmul}[sym]
    rng = np.random.default_rng(6)
    a = rng.uniform(0.5, 2.0, (3, 3))
    b = rng.uniform(0.5, 2.0, (3, 3))
    x = _leaf(b)
    left, right = op(a, x), op(x, a)
    for z, want in ((left, op(a, b)), (right, op(b, a))):
        assert isinstance(z, ga.Tensor), f"ndarray {sym} Tensor gave {type(z).__name__}"
        np.testing.assert_allclose(z.numpy(), want, rtol=1e-14)
    ga.sum(left).backward()
    check = ga.grad(lambda t: ga.sum(op(a, t)))(b)
    np.testing.assert_allclose(x.grad, check, rtol=1e-14)
    check_vjp(lambda t: op(a, t), b)
    check_vjp(lambda t: op(t, a), b)


def test_numpy_scalars_and_python_scalars_on_either_side():
    x = _leaf(np.array([1.0, 2.0]))
    for z in (np.float64(2.0) * x, x * np.float64(2.0), 2 * x, x * 2, 1.0 + x, x - 1, 1 - x):
        assert isinstance(z, ga.Tensor)
    z = np.float64(3.0) * x - 1.0 / x + 2 ** x
    assert isinstance(z, ga.Tensor)
    ga.sum(z).backward()
    np.testing.assert_allclose(x.grad, 3.0 + 1.0 / np.array([1.0, 4.0]) +
                               np.log(2.0) * 2.0 ** np.array([1.0, 2.0]), rtol=1e-14)


def test_integer_array_with_a_float_tensor():
    x = _leaf(np.array([0.5, 1.5]))
    z = np.array([1, 2]) * x + np.array([3, 4])
    assert isinstance(z, ga.Tensor) and z.dtype == np.float64
    ga.sum(z).backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])


# ---------------------------------------------------------------------------------------------
# dtypes

@pytest.mark.parametrize("name", sorted(UNARY))
def test_float32_in_float32_out_and_float32_grad(name):
    f = UNARY[name][0]
    x = ga.tensor(_unary_input(name, np.random.default_rng(7), (4,), np.float32),
                  requires_grad=True)
    y = f(x)
    assert y.dtype == np.float32
    z = ga.sum(y * 2.0 + 1)
    assert z.dtype == np.float32
    z.backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("name", sorted(BINARY))
def test_float32_binary_keeps_float32_with_scalars(name):
    f = BINARY[name][0]
    a, b = _binary_inputs(name, np.random.default_rng(8), (3,), (2, 3), np.float32)
    x, y = ga.tensor(a, requires_grad=True), ga.tensor(b, requires_grad=True)
    z = f(x, y)
    assert z.dtype == np.float32
    ga.sum(f(z, 1.5) if name != "power" else z * 1.5).backward()
    assert x.grad.dtype == np.float32 and y.grad.dtype == np.float32
    assert x.grad.shape == (3,) and y.grad.shape == (2, 3)


def test_zero_dimensional_operands_give_zero_dimensional_tensors():
    # NumPy's ufuncs return scalars on 0-d arrays; a Tensor must still hold an ndarray
    x = ga.tensor(np.array(0.5), requires_grad=True)
    results = [ga.clip(x, 0.0, 1.0), ga.logsumexp(x), np.array(2) + x, x * np.array(3),
               x ** np.array(2), ga.maximum(x, np.array(1)), x * np.float32(2.0),
               ga.where(True, x, 0.0)] + [f(x) for f, *_ in UNARY.values()]
    for y in results:
        assert isinstance(y.data, np.ndarray) and y.shape == ()
        assert y.numpy().shape == ()
    ga.sum(sum(results[1:], results[0])).backward()
    assert isinstance(x.grad, np.ndarray) and x.grad.shape == ()


def test_float64_is_the_default():
    assert ga.tensor([1, 2]).dtype.kind == "i"
    assert ga.tensor([1.0, 2.0]).dtype == np.float64
    assert ga.tensor([1, 2], dtype=np.float32).dtype == np.float32
    assert ga.exp(ga.tensor([1, 2])).dtype == np.float64
    assert ga.tensor(1.0, requires_grad=True).grad is None


@given(pair=broadcast_shapes(2), seed=seeds)
def test_mixed_precision_promotes_to_float64(pair, seed):
    rng = np.random.default_rng(seed)
    a = values(rng, pair[0], np.float32)
    b = values(rng, pair[1], np.float64)
    x, y = ga.tensor(a, requires_grad=True), ga.tensor(b, requires_grad=True)
    z = x * y
    assert z.dtype == np.float64
    ga.sum(z).backward()
    assert x.grad.dtype == np.float32 and x.grad.shape == a.shape
    assert y.grad.dtype == np.float64 and y.grad.shape == b.shape


# ---------------------------------------------------------------------------------------------
# a second opinion from PyTorch, where installed

@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "softplus", "sqrt", "sin"])
def test_unary_gradients_against_torch(name):
    torch = pytest.importorskip("torch")
    f = UNARY[name][0]
    x = _unary_input(name, np.random.default_rng(9), (3, 4))
    u = np.random.default_rng(10).standard_normal((3, 4))
    tx = torch.tensor(x, requires_grad=True)
    tf = {"softplus": torch.nn.functional.softplus}.get(name, getattr(torch, name, None))
    (tf(tx) * torch.tensor(u)).sum().backward()
    g = ga.vjp(f, x)[1](u)[0]
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-10)


def test_binary_broadcast_gradients_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    a, b = rng.uniform(0.5, 2, (3, 1, 4)), rng.uniform(0.5, 2, (2, 1))
    for op in (lambda x, y: x * y, lambda x, y: x / y, lambda x, y: x ** y,
               lambda x, y: x - y):
        ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        op(ta, tb).sum().backward()
        ga_, gb = ga.grad(lambda x, y: ga.sum(op(x, y)), argnums=(0, 1))(a, b)
        np.testing.assert_allclose(ga_, ta.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-12)


def test_regression_power_zero_exponent_has_zero_derivative_at_zero():
    # d/dx x^0 = 0 everywhere, also at x = 0 (was 0 * 0^-1 = NaN)
    assert ga.grad(lambda x: ga.power(x, 0.0))(0.0) == 0.0
    assert ga.grad(lambda x: x ** 0)(np.array(0.0)) == 0.0
    np.testing.assert_array_equal(ga.grad(lambda x: ga.sum(x ** 0.0))(np.array([0.0, 2.0, -1.0])),
                                  [0.0, 0.0, 0.0])
    _, t = ga.jvp(lambda x: ga.power(x, 0.0), (0.0,), (1.0,))
    assert t == 0.0
    # x^1 and x^2 at 0: 1 and 0, and their second derivatives 0 and 2
    assert ga.grad(lambda x: x ** 1.0)(0.0) == 1.0
    assert ga.grad(lambda x: x ** 2.0)(0.0) == 0.0
    assert ga.grad(ga.grad(lambda x: x ** 1.0))(0.0) == 0.0
    assert ga.grad(ga.grad(lambda x: x ** 2.0))(0.0) == 2.0
    assert ga.grad(ga.grad(lambda x: x ** 0.0))(0.0) == 0.0
    # the exponent's gradient at a = 0: d/db 0^b = 0 for b > 0; a and b both Tensors
    ga_, gb = ga.grad(lambda a, b: ga.power(a, b), argnums=(0, 1))(0.0, 0.0)
    assert (ga_, gb) == (0.0, 0.0)
    assert ga.grad(lambda b: ga.power(0.0, b))(2.0) == 0.0
