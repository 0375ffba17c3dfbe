"""HIPS autograd as an independent engine (in the `test` extra, so these run in CI): values,
reverse-mode gradients and forward-mode JVPs of every differentiable family in graphad —
elementwise, broadcasting binary ops, reductions, softmax family, shape and indexing, products,
linear algebra, and a small network — agree with autograd's on the same inputs.  The PyTorch
checks in the area files are a third opinion where torch is installed."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import graphad as ga

RNG = np.random.default_rng(2026)
X34 = RNG.uniform(0.3, 2.0, (3, 4))
B14 = RNG.uniform(0.5, 2.0, (1, 4))
M45 = RNG.standard_normal((4, 5))
S44 = RNG.standard_normal((4, 4)) + 3 * np.eye(4)
IDX = np.array([2, 0, 2])

# name -> (graphad function, the same function in autograd.numpy, arguments)
CASES = {
    "exp": (ga.exp, anp.exp, [X34]),
    "log": (ga.log, anp.log, [X34]),
    "log1p": (ga.log1p, anp.log1p, [X34]),
    "sin": (ga.sin, anp.sin, [X34]),
    "cos": (ga.cos, anp.cos, [X34]),
    "tan": (ga.tan, anp.tan, [X34 / 2]),
    "tanh": (ga.tanh, anp.tanh, [X34]),
    "sinh": (ga.sinh, anp.sinh, [X34]),
    "cosh": (ga.cosh, anp.cosh, [X34]),
    "sqrt": (ga.sqrt, anp.sqrt, [X34]),
    "square": (ga.square, anp.square, [X34]),
    "abs": (ga.abs, anp.abs, [X34 - 1.15]),
    "sigmoid": (ga.sigmoid, lambda x: 1 / (1 + anp.exp(-x)), [X34 - 1]),
    "softplus": (ga.softplus, lambda x: anp.logaddexp(0.0, x), [X34 - 1]),
    "add": (lambda a, b: a + b, lambda a, b: a + b, [X34, B14]),
    "subtract": (lambda a, b: a - b, lambda a, b: a - b, [X34, B14]),
    "multiply": (lambda a, b: a * b, lambda a, b: a * b, [X34, B14]),
    "divide": (lambda a, b: a / b, lambda a, b: a / b, [X34, B14]),
    "power": (lambda a, b: a ** b, lambda a, b: a ** b, [X34, B14]),
    "maximum": (ga.maximum, anp.maximum, [X34, B14 + 0.01]),
    "sum": (lambda x: ga.sum(x, axis=0), lambda x: anp.sum(x, axis=0), [X34]),
    "mean": (lambda x: ga.mean(x, axis=1), lambda x: anp.mean(x, axis=1), [X34]),
    "max": (lambda x: ga.max(x, axis=1), lambda x: anp.max(x, axis=1), [X34]),
    "logsumexp": (lambda x: ga.logsumexp(x, axis=1),
                  lambda x: anp.log(anp.sum(anp.exp(x), axis=1)), [X34]),
    "softmax": (lambda x: ga.softmax(x, axis=1),
                lambda x: anp.exp(x) / anp.sum(anp.exp(x), axis=1, keepdims=True), [X34]),
    "log_softmax": (lambda x: ga.log_softmax(x, axis=0),
                    lambda x: x - anp.log(anp.sum(anp.exp(x), axis=0, keepdims=True)), [X34]),
    "reshape+transpose": (lambda x: ga.transpose(ga.reshape(x, (2, 6)), (1, 0)),
                          lambda x: anp.transpose(anp.reshape(x, (2, 6)), (1, 0)), [X34]),
    "getitem": (lambda x: x[IDX][:, 1:3], lambda x: x[IDX][:, 1:3], [X34]),
    "concatenate": (lambda a, b: ga.concatenate([a, b]), lambda a, b: anp.concatenate([a, b]),
                    [X34, B14]),
    "where": (lambda x: ga.where(X34 > 1, x, -x), lambda x: anp.where(X34 > 1, x, -x), [X34]),
    "matmul": (lambda a, b: a @ b, lambda a, b: anp.dot(a, b), [X34, M45]),
    "einsum": (lambda a, b: ga.einsum("ij,jk->ik", a, b),
               lambda a, b: anp.einsum("ij,jk->ik", a, b), [X34, M45]),
    "kron": (ga.kron, anp.kron, [X34[:2, :2], B14[:, :3]]),
    "inv": (ga.linalg.inv, anp.linalg.inv, [S44]),
    "slogdet": (lambda a: ga.linalg.slogdet(a)[1], lambda a: anp.linalg.slogdet(a)[1], [S44]),
    "mlp": (lambda W, x: ga.sum(ga.tanh(x @ W) ** 2, axis=1),
            lambda W, x: anp.sum(anp.tanh(anp.dot(x, W)) ** 2, axis=1), [M45, X34]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_values_gradients_and_jvps_agree_with_autograd(name):
    f, af, args = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    out = f(*args)
    want = af(*args)
    np.testing.assert_allclose(getattr(out, "data", out), want, rtol=1e-13, atol=1e-14)
    u = rng.standard_normal(np.shape(want))
    nums = tuple(range(len(args)))
    ours = ga.vjp(f, *args)[1](u)
    for i in nums:
        theirs = autograd.grad(lambda *a: anp.sum(af(*a) * u), i)(*args)
        np.testing.assert_allclose(ours[i], theirs, rtol=1e-11, atol=1e-13,
                                   err_msg=f"{name}: gradient of argument {i}")
        v = rng.standard_normal(np.shape(args[i]))
        tangents = tuple(v if j == i else np.zeros_like(a) for j, a in enumerate(args))
        _, jv = ga.jvp(f, tuple(args), tangents)
        try:
            _, ajv = autograd.make_jvp(af, i)(*args)(v)
        except NotImplementedError:          # autograd has no forward rule (inv, slogdet)
            J = autograd.jacobian(af, i)(*args)
            ajv = np.tensordot(J, v, axes=v.ndim)
        np.testing.assert_allclose(jv, ajv, rtol=1e-11, atol=1e-13,
                                   err_msg=f"{name}: jvp in argument {i}")


def test_hessian_agrees_with_autograd():
    x = RNG.standard_normal(5)
    A = RNG.standard_normal((3, 5))
    f = lambda x: ga.sum(ga.log1p(ga.exp(A @ x))) + ga.sum(x ** 4) / 4
    af = lambda x: anp.sum(anp.log1p(anp.exp(anp.dot(A, x)))) + anp.sum(x ** 4) / 4
    np.testing.assert_allclose(ga.hessian(f)(x), autograd.hessian(af)(x), rtol=1e-12, atol=1e-14)
