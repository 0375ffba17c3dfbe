"""Custom derivative rules (graphad/custom.py): custom_vjp and custom_jvp with JAX's calling
convention, in reverse mode, forward mode (derived by transposition), batched Jacobians, under
hessian, with NumPy-only rules, and their errors."""
import numpy as np
import pytest

import graphad as ga
from prim_cases import fd_jacobian

RNG = np.random.default_rng(0)
X = RNG.uniform(-1, 1, 4)
Y = RNG.uniform(-1, 1, 4)


# ---------------------------------------------------------------------------------------------
# custom_vjp written with graphad operations: every mode, and hessian

@ga.custom_vjp
def sin_times(x, y):
    return ga.sin(x) * y


def sin_times_fwd(x, y):
    return sin_times(x, y), (ga.cos(x), ga.sin(x), y)


def sin_times_bwd(res, g):
    c, s, y = res
    return (g * c * y, g * s)


sin_times.defvjp(sin_times_fwd, sin_times_bwd)


def reference(x, y):
    return ga.sin(x) * y


def test_custom_vjp_reverse_forward_and_batched():
    for jac in (ga.jacrev, ga.jacfwd):
        Jx, Jy = jac(sin_times, argnums=(0, 1))(X, Y)
        Rx, Ry = jac(reference, argnums=(0, 1))(X, Y)
        np.testing.assert_allclose(Jx, Rx, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(Jy, Ry, rtol=1e-14, atol=1e-15)
    ga.check_grad(sin_times, X, Y)      # rev, fwd (derived), and the transpose identity
    y, t = ga.jvp(sin_times, (X, Y), (np.ones(4), np.zeros(4)))
    np.testing.assert_allclose(t, np.cos(X) * Y, rtol=1e-14)


def test_custom_vjp_under_hessian_and_grad_of_grad():
    f = lambda x: ga.sum(sin_times(x, Y) ** 2)
    g = lambda x: ga.sum(reference(x, Y) ** 2)
    np.testing.assert_allclose(ga.hessian(f)(X), ga.hessian(g)(X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ga.jacrev(ga.jacrev(f))(X), ga.hessian(g)(X), rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(ga.grad(lambda x: ga.sum(ga.grad(f)(x)))(X),
                               ga.grad(lambda x: ga.sum(ga.grad(g)(x)))(X), rtol=1e-12)
    _, Hv = ga.hvp(f, (X,), (Y,))
    np.testing.assert_allclose(Hv, ga.hessian(g)(X) @ Y, rtol=1e-12, atol=1e-14)


def test_custom_vjp_backward_on_tensors_and_plain_call():
    x = ga.tensor(X, requires_grad=True)
    ga.sum(sin_times(x, Y)).backward()
    np.testing.assert_allclose(x.grad, np.cos(X) * Y, rtol=1e-14)
    out = sin_times(X, Y)            # nothing to differentiate: just f
    np.testing.assert_allclose(np.asarray(out.data if isinstance(out, ga.Tensor) else out),
                               np.sin(X) * Y)


def test_custom_vjp_rule_is_used_not_the_function():
    """A deliberately different VJP (gradient clipping) is what reverse mode returns, and the
    derived forward mode is its transpose, so <u, Jv> == <J^T u, v> still holds."""
    @ga.custom_vjp
    def clip_grad(x):
        return x * 1.0

    clip_grad.defvjp(lambda x: (x * 1.0, None),
                     lambda res, g: (ga.clip(g, -0.5, 0.5),))
    x = np.array([1.0, 2.0, 3.0])
    g = ga.grad(lambda x: ga.sum(clip_grad(x) * np.array([0.2, 3.0, -4.0])))(x)
    np.testing.assert_allclose(g, [0.2, 0.5, -0.5])


def test_custom_vjp_of_a_scaled_map_forward_is_the_transpose():
    M = RNG.standard_normal((3, 4))

    @ga.custom_vjp
    def lin(x):
        return M @ x

    lin.defvjp(lambda x: (M @ x, None), lambda res, g: (M.T @ g,))
    np.testing.assert_allclose(ga.jacfwd(lin)(X), M, atol=1e-15)
    np.testing.assert_allclose(ga.jacrev(lin)(X), M, atol=1e-15)
    u, v = RNG.standard_normal(3), RNG.standard_normal(4)
    _, jv = ga.jvp(lin, (X,), (v,))
    _, pull = ga.vjp(lin, X)
    assert np.isclose(u @ jv, pull(u)[0] @ v, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# custom_vjp written with NumPy (f is opaque to graphad)

@ga.custom_vjp
def np_sin(x):
    return np.sin(x)


np_sin.defvjp(lambda x: (np.sin(x), np.cos(x)), lambda c, g: (g * c,))


def test_numpy_custom_vjp_in_both_modes():
    np.testing.assert_allclose(ga.grad(lambda x: ga.sum(np_sin(x)))(X), np.cos(X), rtol=1e-15)
    np.testing.assert_allclose(ga.jacfwd(np_sin)(X), np.diag(np.cos(X)), atol=1e-16)
    np.testing.assert_allclose(ga.jacrev(np_sin)(X), np.diag(np.cos(X)), atol=1e-16)
    np.testing.assert_allclose(ga.jacrev(lambda x: np_sin(x * x))(X),
                               np.diag(2 * X * np.cos(X * X)), atol=1e-15)


@ga.custom_vjp
def np_cbrt(x):
    return np.cbrt(x)


np_cbrt.defvjp(lambda x: (np.cbrt(x), 1.0 / (3.0 * np.cbrt(x) ** 2)), lambda c, g: (g * c,))


def test_numpy_custom_vjp_refuses_higher_derivatives_clearly():
    # np.cbrt has no graphad version, so f_fwd fails on Tensors and runs on arrays: its
    # residuals are constants, and a second derivative would silently miss their part
    with pytest.raises(TypeError, match="residuals"):
        ga.hessian(lambda x: ga.sum(np_cbrt(x)))(X / 4 + 1.0)
    # np.sin and np.cos on Tensors are graphad's (NumPy's protocols), so f_fwd runs on Tensors
    # and the residuals carry their graph: the second derivative is right
    np.testing.assert_allclose(ga.hessian(lambda x: ga.sum(np_sin(x)))(X), np.diag(-np.sin(X)),
                               atol=1e-15)


def test_numpy_bwd_that_bypasses_graphad_falls_back_to_differentiating_f():
    @ga.custom_vjp
    def square(x):
        return x * x

    # bwd turns the cotangent into a plain array: its linear map cannot be transposed
    square.defvjp(lambda x: (x * x, np.asarray(x.data if isinstance(x, ga.Tensor) else x)),
                  lambda x, g: (np.asarray(g.data if isinstance(g, ga.Tensor) else g) * 2 * x,))
    np.testing.assert_allclose(ga.jacfwd(square)(X), np.diag(2 * X), atol=1e-15)
    np.testing.assert_allclose(ga.jacrev(square)(X), np.diag(2 * X), atol=1e-15)


def test_fallback_with_two_arguments_and_one_tangent():
    @ga.custom_vjp
    def prod(x, y):
        return x * y

    raw = lambda a: np.asarray(a.data if isinstance(a, ga.Tensor) else a)
    prod.defvjp(lambda x, y: (x * y, (raw(x), raw(y))),
                lambda r, g: (raw(g) * r[1], raw(g) * r[0]))
    np.testing.assert_allclose(ga.jacfwd(prod, argnums=1)(X, Y), np.diag(X), atol=1e-15)
    _, t = ga.jvp(prod, (X, Y), (np.zeros(4), np.ones(4)))
    np.testing.assert_allclose(t, X, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# custom_jvp

@ga.custom_jvp
def softplus(x):
    return ga.log1p(ga.exp(x))


@softplus.defjvp
def softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return softplus(x), ga.sigmoid(x) * t


def test_custom_jvp_forward_reverse_batched_and_hessian():
    s = 1 / (1 + np.exp(-X))
    for jac in (ga.jacfwd, ga.jacrev):
        np.testing.assert_allclose(jac(softplus)(X), np.diag(s), rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(ga.grad(lambda x: ga.sum(softplus(x)))(X), s, rtol=1e-14)
    ga.check_grad(softplus, X)
    H = ga.hessian(lambda x: ga.sum(softplus(x)))(X)
    np.testing.assert_allclose(H, np.diag(s * (1 - s)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ga.jacrev(ga.jacfwd(lambda x: ga.sum(softplus(x))))(X), H,
                               rtol=1e-12, atol=1e-15)


def test_custom_jvp_with_two_arguments_and_a_constant():
    @ga.custom_jvp
    def f(x, y):
        return x * ga.exp(y)

    @f.defjvp
    def f_jvp(primals, tangents):
        x, y = primals
        dx, dy = tangents
        e = ga.exp(y)
        return x * e, dx * e + x * e * dy

    ref = lambda x, y: x * ga.exp(y)
    for jac in (ga.jacfwd, ga.jacrev):
        for a, b in zip(jac(f, argnums=(0, 1))(X, Y), jac(ref, argnums=(0, 1))(X, Y)):
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(ga.grad(lambda y: ga.sum(f(2.0, y)))(Y), 2 * np.exp(Y),
                               rtol=1e-14)
    np.testing.assert_allclose(ga.hessian(lambda x: ga.sum(f(x, Y) ** 2))(X),
                               ga.hessian(lambda x: ga.sum(ref(x, Y) ** 2))(X), rtol=1e-12)


def test_numpy_custom_jvp_falls_back_to_reverse_through_f():
    @ga.custom_jvp
    def cube(x):
        return x * x * x

    @cube.defjvp
    def cube_jvp(primals, tangents):
        x, t = primals[0], tangents[0]
        raw = lambda a: np.asarray(a.data if isinstance(a, ga.Tensor) else a)
        return raw(x) ** 3, 3 * raw(x) ** 2 * raw(t)

    np.testing.assert_allclose(ga.jacfwd(cube)(X), np.diag(3 * X ** 2), rtol=1e-14)
    np.testing.assert_allclose(ga.jacrev(cube)(X), np.diag(3 * X ** 2), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# errors and calling conventions

def test_missing_rules_and_bad_bwd_are_reported():
    @ga.custom_vjp
    def f(x):
        return x * 2.0
    with pytest.raises(TypeError, match="defvjp"):
        ga.grad(lambda x: ga.sum(f(x)))(X)
    f.defvjp(lambda x: (x * 2.0, None), lambda res, g: g * 2.0)     # not a tuple
    with pytest.raises(TypeError, match="tuple"):
        ga.grad(lambda x: ga.sum(f(x)))(X)

    @ga.custom_jvp
    def h(x):
        return x * 2.0
    with pytest.raises(TypeError, match="defjvp"):
        ga.jacfwd(h)(X)


def test_keyword_arguments_bind_positionally():
    @ga.custom_vjp
    def scale(x, k=3.0):
        return x * k

    scale.defvjp(lambda x, k=3.0: (x * k, k), lambda k, g: (g * k, None))
    np.testing.assert_allclose(ga.grad(lambda x: ga.sum(scale(x, k=5.0)))(X), 5.0)
    np.testing.assert_allclose(ga.jacfwd(lambda x: scale(x))(X), 3.0 * np.eye(4))


def test_custom_functions_compose_with_fd():
    f = lambda x: sin_times(softplus(x), x) + np_sin(x)
    J = ga.jacrev(f)(X)
    np.testing.assert_allclose(J, ga.jacfwd(f)(X), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(J, fd_jacobian(f, [X], 0), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# functions with several outputs (JAX's convention: the rules see and return tuples)

@ga.custom_vjp
def sin_and_prod(x, y):
    return ga.sin(x) * y, x * y


def _sin_and_prod_fwd(x, y):
    return sin_and_prod(x, y), (ga.cos(x), ga.sin(x), x, y)


def _sin_and_prod_bwd(res, g):
    c, s, x, y = res
    g0, g1 = g
    return (g0 * c * y + g1 * y, g0 * s + g1 * x)


sin_and_prod.defvjp(_sin_and_prod_fwd, _sin_and_prod_bwd)


@ga.custom_jvp
def sin_cos(x):
    return ga.sin(x), ga.cos(x)


@sin_cos.defjvp
def _sin_cos_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return sin_cos(x), (ga.cos(x) * t, -ga.sin(x) * t)


def _tuple_reference(x, y):
    return ga.sin(x) * y, x * y


@pytest.mark.parametrize("f", [sin_and_prod, lambda x, y: (sin_cos(x)[0] * y, x * y)],
                         ids=["custom_vjp", "custom_jvp"])
def test_tuple_outputs_in_every_mode(f):
    """Both outputs come back as Tensors; vjp, jvp, Jacobians (blocks), hessian and compile
    agree with the same function written without custom rules."""
    out = f(ga.tensor(X, requires_grad=True), Y)
    assert isinstance(out, tuple) and len(out) == 2
    ct = (RNG.standard_normal(4), RNG.standard_normal(4))
    for a, b in zip(ga.vjp(f, X, Y)[1](ct), ga.vjp(_tuple_reference, X, Y)[1](ct)):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    v = (RNG.standard_normal(4), RNG.standard_normal(4))
    for a, b in zip(ga.jvp(f, (X, Y), v)[1], ga.jvp(_tuple_reference, (X, Y), v)[1]):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    for jac in (ga.jacrev, ga.jacfwd):
        for k in (0, 1):
            J = jac(lambda x: f(x, Y)[k])(X)
            np.testing.assert_allclose(J, fd_jacobian(lambda x: _tuple_reference(x, Y)[k],
                                                      [X], 0), rtol=1e-6, atol=1e-8)
    loss = lambda x, f=f: ga.sum(f(x, Y)[0] ** 2 * f(x, Y)[1])
    ref = lambda x: ga.sum(_tuple_reference(x, Y)[0] ** 2 * _tuple_reference(x, Y)[1])
    np.testing.assert_allclose(ga.hessian(loss)(X), ga.hessian(ref)(X), rtol=1e-12, atol=1e-13)
    c = ga.compile(ga.grad(loss))
    for k in range(3):
        np.testing.assert_allclose(c(X + k), ga.grad(ref)(X + k), rtol=1e-13)
    assert c.replays == 2 and not c.stats()[0]["eager"]


def test_tuple_output_with_an_unused_output():
    g = ga.grad(lambda x: ga.sum(sin_and_prod(x, Y)[1]))(X)
    np.testing.assert_allclose(g, Y, rtol=1e-14)
