"""Function transforms (graphad/transforms.py): grad, value_and_grad, vjp (argnums int / tuple,
vjp_fn reused), jvp against finite differences, grad of grad, and perturbation confusion."""
import numpy as np
import pytest
from hypothesis import given

import graphad as ga
from conftest import fd_gradient, seeds, shapes, values


def f2(a, b):
    return ga.sum(ga.sin(a) * b + a * a)


def f2_grads(a, b):
    return np.cos(a) * b + 2 * a, np.sin(a)


A = np.array([0.3, -1.2, 2.0])
B = np.array([1.5, 0.5, -0.7])


# ---------------------------------------------------------------------------------------------
# grad and value_and_grad

def test_grad_default_argnum_is_zero():
    g = ga.grad(f2)(A, B)
    assert isinstance(g, np.ndarray) and g.shape == A.shape
    np.testing.assert_allclose(g, f2_grads(A, B)[0], rtol=1e-14)


@pytest.mark.parametrize("argnums", [0, 1, -1, (0,), (1,), (0, 1), (1, 0)])
def test_grad_argnums(argnums):
    want = f2_grads(A, B)
    g = ga.grad(f2, argnums=argnums)(A, B)
    if isinstance(argnums, int):
        assert isinstance(g, np.ndarray)
        np.testing.assert_allclose(g, want[argnums], rtol=1e-14)
    else:
        assert isinstance(g, tuple) and len(g) == len(argnums)
        for gi, i in zip(g, argnums):
            np.testing.assert_allclose(gi, want[i], rtol=1e-14)


@pytest.mark.parametrize("argnums", [0, (0, 1)])
def test_value_and_grad(argnums):
    v, g = ga.value_and_grad(f2, argnums=argnums)(A, B)
    np.testing.assert_allclose(v, np.sum(np.sin(A) * B + A * A), rtol=1e-14)
    assert isinstance(v, np.ndarray) and v.shape == ()
    want = f2_grads(A, B)
    if argnums == 0:
        np.testing.assert_allclose(g, want[0], rtol=1e-14)
    else:
        np.testing.assert_allclose(g[0], want[0], rtol=1e-14)
        np.testing.assert_allclose(g[1], want[1], rtol=1e-14)


@given(shape=shapes(), seed=seeds)
def test_grad_matches_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    a, b = values(rng, shape), values(rng, shape)
    f = lambda x, y: ga.sum(ga.tanh(x * y) + ga.exp(x) / (1.0 + y * y))
    ga_, gb = ga.grad(f, argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga_, fd_gradient(f, [a, b], 0, 1.0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gb, fd_gradient(f, [a, b], 1, 1.0), rtol=1e-6, atol=1e-8)


def test_grad_of_an_unused_argument_is_zero():
    g = ga.grad(lambda a, b: ga.sum(a * 2.0), argnums=1)(A, B.astype(np.float32))
    np.testing.assert_array_equal(g, np.zeros(3))
    assert g.dtype == np.float32
    g = ga.grad(lambda a: 3.0)(A)
    np.testing.assert_array_equal(g, np.zeros(3))


def test_grad_with_python_scalars_and_tensors_and_kwargs():
    g = ga.grad(lambda x, scale=1.0: x ** 3 * scale)(2.0, scale=2.0)
    np.testing.assert_allclose(g, 24.0)
    assert np.shape(g) == ()
    t = ga.tensor(A)
    np.testing.assert_allclose(ga.grad(f2)(t, B), f2_grads(A, B)[0], rtol=1e-14)
    assert isinstance(ga.grad(f2)(t, B), np.ndarray)


def test_grad_keeps_float32():
    a32 = A.astype(np.float32)
    v, g = ga.value_and_grad(lambda x: ga.sum(ga.exp(x) * 2.0))(a32)
    assert v.dtype == np.float32 and g.dtype == np.float32
    np.testing.assert_allclose(g, 2 * np.exp(a32), rtol=1e-6)


def test_grad_does_not_touch_dot_grad_of_closed_over_leaves():
    w = ga.tensor(B, requires_grad=True)
    g = ga.grad(lambda x: ga.sum(x * w))(A)
    np.testing.assert_array_equal(g, B)
    assert w.grad is None


def test_grad_keeps_the_function_name():
    def loss(x):
        """the loss"""
        return ga.sum(x)

    assert ga.grad(loss).__name__ == "loss" and ga.grad(loss).__doc__ == "the loss"


# ---------------------------------------------------------------------------------------------
# vjp

def test_vjp_single_output():
    out, pull = ga.vjp(lambda a, b: ga.sin(a) * b, A, B)
    np.testing.assert_allclose(out, np.sin(A) * B, rtol=1e-15)
    u = np.array([1.0, -2.0, 0.5])
    cts = pull(u)
    assert isinstance(cts, tuple) and len(cts) == 2
    np.testing.assert_allclose(cts[0], u * np.cos(A) * B, rtol=1e-14)
    np.testing.assert_allclose(cts[1], u * np.sin(A), rtol=1e-14)


def test_vjp_fn_called_twice_gives_the_same_answer():
    _, pull = ga.vjp(lambda a, b: ga.exp(a) @ ga.reshape(b, (3, 1)) * a, A, B)
    u1, u2 = np.ones(3), np.array([0.0, 1.0, -1.0])
    first = pull(u1)
    second = pull(u2)
    third = pull(u1)
    for x, y in zip(first, third):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(first[0], second[0])
    # and linearity in the cotangent
    both = pull(u1 + 2 * u2)
    for x, y, z in zip(both, first, second):
        np.testing.assert_allclose(x, y + 2 * z, rtol=1e-13)


def test_vjp_with_tuple_outputs():
    out, pull = ga.vjp(lambda a, b: (a * b, ga.sum(a)), A, B)
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_allclose(out[0], A * B)
    ga_, gb = pull((np.ones(3), 2.0))
    np.testing.assert_allclose(ga_, B + 2.0, rtol=1e-15)
    np.testing.assert_allclose(gb, A, rtol=1e-15)


@pytest.mark.parametrize("argnums,which", [(0, (0,)), (1, (1,)), ((0, 1), (0, 1)),
                                           ((1,), (1,))])
def test_vjp_argnums(argnums, which):
    out, pull = ga.vjp(lambda a, b: ga.sin(a) * b, A, B, argnums=argnums)
    u = np.array([1.0, -2.0, 0.5])
    cts = pull(u)
    assert isinstance(cts, tuple) and len(cts) == len(which)
    full = (u * np.cos(A) * B, u * np.sin(A))
    for c, i in zip(cts, which):
        np.testing.assert_allclose(c, full[i], rtol=1e-14)


@given(shape=shapes(min_dims=1), seed=seeds)
def test_vjp_matches_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    f = lambda a: ga.softmax(a * 2.0, axis=-1) * ga.cos(a)
    out, pull = ga.vjp(f, x)
    u = rng.standard_normal(out.shape)
    np.testing.assert_allclose(pull(u)[0], fd_gradient(f, [x], 0, u), rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# jvp

@given(shape=shapes(), seed=seeds)
def test_jvp_matches_finite_differences(shape, seed):
    rng = np.random.default_rng(seed)
    a, b = values(rng, shape), values(rng, shape, lo=0.5, hi=2.0)
    da, db = rng.standard_normal(shape), rng.standard_normal(shape)
    f = lambda x, y: ga.sin(x) * ga.log(y) + x * x / y
    out, tan = ga.jvp(f, (a, b), (da, db))
    np.testing.assert_allclose(out, np.sin(a) * np.log(b) + a * a / b, rtol=1e-14)
    h = 1e-6
    fd = (np.asarray(f(a + h * da, b + h * db)) - np.asarray(f(a - h * da, b - h * db))) / (2 * h)
    np.testing.assert_allclose(tan, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tan, ga.finite_diff(lambda z: f(z[0], z[1]), np.stack([a, b]),
                                                   np.stack([da, db])), rtol=1e-6, atol=1e-8)


def test_jvp_and_vjp_are_transposes():
    # <u, J v> = <J^T u, v>
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    f = lambda a: ga.tanh(a @ a.T) @ a
    v, u = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    _, jv = ga.jvp(f, (x,), (v,))
    _, pull = ga.vjp(f, x)
    np.testing.assert_allclose(np.vdot(u, jv), np.vdot(pull(u)[0], v), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# higher order and nesting

def test_grad_of_grad_of_a_cube():
    d2 = ga.grad(ga.grad(lambda x: x ** 3))
    for x in (-1.5, 0.0, 2.0):
        np.testing.assert_allclose(d2(x), 6 * x, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ga.grad(ga.grad(ga.grad(lambda x: x ** 3)))(0.7), 6.0)


@pytest.mark.parametrize("f,d2", [
    (ga.sin, lambda x: -np.sin(x)),
    (ga.exp, np.exp),
    (ga.tanh, lambda x: -2 * np.tanh(x) / np.cosh(x) ** 2),
    (lambda x: 1.0 / x, lambda x: 2 / x ** 3),
    (lambda x: ga.log(x) * x, lambda x: 1 / x),
    (ga.sigmoid, lambda x: (lambda s: s * (1 - s) * (1 - 2 * s))(1 / (1 + np.exp(-x)))),
])
def test_second_derivatives_of_scalar_functions(f, d2):
    for x in (0.4, 1.3):
        np.testing.assert_allclose(ga.grad(ga.grad(f))(x), d2(x), rtol=1e-12)


def test_grad_of_grad_with_two_arguments():
    # f = x^2 y^3: d/dy (df/dx) = 6 x y^2
    f = lambda x, y: x * x * y ** 3
    mixed = ga.grad(lambda x, y: ga.grad(f, argnums=0)(x, y), argnums=1)
    np.testing.assert_allclose(mixed(1.5, 2.0), 6 * 1.5 * 4.0, rtol=1e-14)


def test_perturbation_confusion():
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1
    f = lambda x: x * ga.grad(lambda y: x + y)(1.0)
    np.testing.assert_allclose(ga.grad(f)(2.0), 1.0)
    # d/dx [x * d/dy (x * y)] = d/dx [x * x] = 2x
    f = lambda x: x * ga.grad(lambda y: x * y)(3.0)
    np.testing.assert_allclose(ga.grad(f)(2.0), 4.0)
    # the inner derivative alone, evaluated at a Tensor x, is a function of x
    f = lambda x: ga.grad(lambda y: x * y * y)(x)            # = 2 x^2
    np.testing.assert_allclose(ga.grad(f)(1.5), 4 * 1.5)


def test_grad_of_grad_of_a_vector_function():
    # f(x) = sum(x^3); grad = 3x^2; grad of sum(grad * w) = 6 x w
    x, w = np.array([1.0, -2.0]), np.array([0.5, 3.0])
    h = ga.grad(lambda a: ga.sum(ga.grad(lambda b: ga.sum(b ** 3))(a) * w))(x)
    np.testing.assert_allclose(h, 6 * x * w, rtol=1e-14)


def test_jvp_of_grad():
    # forward-over-reverse: the Hessian-vector product of sum(x^4)/4 is 3 x^2 v
    x, v = np.array([1.0, 2.0]), np.array([1.0, -1.0])
    _, hv = ga.jvp(ga.grad(lambda a: ga.sum(a ** 4) / 4.0), (x,), (v,))
    np.testing.assert_allclose(hv, 3 * x * x * v, rtol=1e-14)


def test_grad_against_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    X, W = rng.standard_normal((5, 3)), rng.standard_normal((3, 2))
    tW = torch.tensor(W, requires_grad=True)
    torch.log_softmax(torch.tanh(torch.tensor(X) @ tW), 1)[:, 0].sum().backward()
    g = ga.grad(lambda w: ga.sum(ga.log_softmax(ga.tanh(X @ w), axis=1)[:, 0]))(W)
    np.testing.assert_allclose(g, tW.grad.numpy(), rtol=1e-12)
