"""Higher derivatives (graphad/transforms.py: hessian, hvp; nested transforms;
backward(create_graph=True)): closed forms from the course, symmetry, and agreement between
every way of composing forward and reverse mode."""
import numpy as np
import pytest

import graphad as ga
from prim_cases import fd_jacobian


def test_hessian_of_quadratic_form_is_A_plus_AT():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    x = rng.standard_normal(5)
    H = ga.hessian(lambda x: x @ A @ x)(x)
    np.testing.assert_allclose(H, A + A.T, rtol=1e-13, atol=1e-14)


def test_hessian_of_matrix_argument_has_shape_in_plus_in():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2, 3))
    # f(X) = sum(X^2)/2 + trace-like coupling: the Hessian is the identity on R^{2x3} + coupling
    H = ga.hessian(lambda X: 0.5 * ga.sum(X * X))(X)
    assert H.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(H.reshape(6, 6), np.eye(6), atol=1e-15)


def logistic_loss(A):
    return lambda x: ga.sum(ga.softplus(A @ x)) + 0.5 * (x @ x)


def test_hessian_of_logistic_loss_closed_form_and_symmetry():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((7, 4))
    x = rng.standard_normal(4)
    s = 1 / (1 + np.exp(-(A @ x)))
    H_true = A.T @ np.diag(s * (1 - s)) @ A + np.eye(4)
    H = ga.hessian(logistic_loss(A))(x)
    np.testing.assert_allclose(H, H_true, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-14)


def test_hvp_equals_hessian_times_v_and_returns_the_gradient():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((6, 5))
    f = logistic_loss(A)
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    g, Hv = ga.hvp(f, (x,), (v,))
    np.testing.assert_allclose(Hv, ga.hessian(f)(x) @ v, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(g, ga.grad(f)(x), rtol=1e-13, atol=1e-14)
    g2, Hv2 = ga.hvp(f, x, v)          # a bare array works too
    np.testing.assert_allclose(Hv2, Hv, rtol=0, atol=0)


def test_hvp_with_several_primals():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    f = lambda a, b: ga.sum(ga.sin(a * b)) + a @ a

    (ga_, gb), (Ha, Hb) = ga.hvp(f, (a, b), (np.ones(3), np.zeros(3)))
    # d/da of grad w.r.t. (a, b) along (1, 0)
    c, s = np.cos(a * b), np.sin(a * b)
    np.testing.assert_allclose(Ha, -s * b * b + 2, rtol=1e-12)
    np.testing.assert_allclose(Hb, c - s * a * b, rtol=1e-12)


def test_hessian_argnums_tuple_gives_nested_blocks():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal(2), rng.standard_normal(3)
    W = rng.standard_normal((2, 3))
    f = lambda a, b: ga.tanh(a @ W @ b)
    H = ga.hessian(f, argnums=(0, 1))(a, b)
    assert H[0][0].shape == (2, 2) and H[0][1].shape == (2, 3)
    assert H[1][0].shape == (3, 2) and H[1][1].shape == (3, 3)
    np.testing.assert_allclose(H[0][1], H[1][0].T, rtol=1e-12, atol=1e-14)
    g = ga.grad(f, argnums=1)
    np.testing.assert_allclose(H[1][0], fd_jacobian(lambda a, b: g(a, b), [a, b], 0),
                               rtol=1e-6, atol=1e-8)


def test_hessian_requires_scalar_output():
    with pytest.raises(TypeError, match="scalar"):
        ga.hessian(ga.sin)(np.ones(3))


def test_every_composition_of_modes_agrees():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((4, 3))
    f = lambda x: ga.sum(ga.tanh(W @ x) ** 2) + ga.sum(ga.exp(0.3 * x))
    x = rng.standard_normal(3)
    H = ga.hessian(f)(x)
    for outer in (ga.jacfwd, ga.jacrev):
        for inner in (ga.jacfwd, ga.jacrev):
            np.testing.assert_allclose(outer(inner(f))(x), H, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(ga.jacfwd(ga.grad(f))(x), H, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(ga.jacrev(ga.grad(f))(x), H, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(H, fd_jacobian(ga.grad(f), [x], 0), rtol=1e-6, atol=1e-8)


def test_grad_of_grad_and_third_derivatives():
    d1 = ga.grad(ga.sin)
    d2 = ga.grad(d1)
    d3 = ga.grad(d2)
    for t in (0.0, 0.4, 2.0):
        assert np.isclose(d1(t), np.cos(t), rtol=1e-15)
        assert np.isclose(d2(t), -np.sin(t), rtol=1e-15, atol=1e-16)
        assert np.isclose(d3(t), -np.cos(t), rtol=1e-15)
    # x^4: 4x^3, 12x^2, 24x; mixing grad with jvp
    f = lambda x: x ** 4
    assert np.isclose(ga.grad(ga.grad(ga.grad(f)))(1.5), 36.0)
    _, t = ga.jvp(ga.grad(ga.grad(f)), (1.5,), (1.0,))
    assert np.isclose(t, 36.0)


def test_jacobian_of_jacobian_of_vector_function():
    # f: R^2 -> R^2, second derivative tensor of shape (2, 2, 2), symmetric in the last two axes
    f = lambda x: ga.stack([ga.sin(x[0] * x[1]), x[0] ** 2 * x[1]])
    x = np.array([0.7, -1.3])
    T1 = ga.jacfwd(ga.jacrev(f))(x)
    T2 = ga.jacrev(ga.jacfwd(f))(x)
    assert T1.shape == (2, 2, 2)
    np.testing.assert_allclose(T1, T2, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(T1, np.swapaxes(T1, 1, 2), atol=1e-14)
    a, b = x
    np.testing.assert_allclose(T1[1], [[2 * b, 2 * a], [2 * a, 0]], atol=1e-14)


def test_backward_create_graph_gives_second_derivatives():
    x = ga.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = ga.sum(x ** 3)
    y.backward(create_graph=True)
    g = x.grad
    assert isinstance(g, ga.Tensor)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    x.grad = None                  # the first gradient is a graph, not an accumulator target
    z = ga.sum(g * np.array([1.0, 2.0, 3.0]))
    z.backward()
    np.testing.assert_allclose(x.grad, 6 * x.numpy() * np.array([1.0, 2.0, 3.0]))


def test_backward_create_graph_through_matmul_and_hessian_vector():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((4, 3))
    x0, v = rng.standard_normal(3), rng.standard_normal(3)
    x = ga.tensor(x0, requires_grad=True)
    loss = ga.sum(ga.softplus(A @ x))
    loss.backward(create_graph=True)
    g = x.grad
    x.grad = None
    ga.sum(g * v).backward()        # d/dx <grad, v> = H v
    s = 1 / (1 + np.exp(-(A @ x0)))
    np.testing.assert_allclose(x.grad, A.T @ (s * (1 - s) * (A @ v)), rtol=1e-12)


def test_hvp_cost_is_a_small_multiple_of_a_gradient():
    """Forward-over-reverse: one recorded reverse sweep and one forward sweep through it.
    Counted in primitive evaluations rather than time, so the test cannot be flaky (the
    benchmark, graphad/bench/second_order.py, measures the time)."""
    rng = np.random.default_rng(8)
    A = rng.standard_normal((30, 20))
    f = logistic_loss(A)
    x, v = rng.standard_normal(20), rng.standard_normal(20)
    g_calls = _evaluations_during(lambda: ga.grad(f)(x))
    h_calls = _evaluations_during(lambda: ga.hvp(f, (x,), (v,)))
    assert 0 < g_calls and h_calls <= 5 * g_calls, (h_calls, g_calls)


def _evaluations_during(fn):
    """Number of primitive forward evaluations (graph nodes and rule arithmetic) while fn runs."""
    from graphad._prims import REGISTRY
    counter = {"n": 0}
    saved = {}
    for name, p in REGISTRY.items():
        saved[name] = (p.fwd, getattr(p, "kernel", 0))

        def wrapped(params, *xs, _f=p.fwd):
            counter["n"] += 1
            return _f(params, *xs)
        p.fwd = wrapped
        if hasattr(p, "kernel"):
            p.kernel = 0            # route kernel primitives through fwd, so they are counted
    try:
        fn()
    finally:
        for name, p in REGISTRY.items():
            p.fwd = saved[name][0]
            if hasattr(p, "kernel"):
                p.kernel = saved[name][1]
    return counter["n"]
