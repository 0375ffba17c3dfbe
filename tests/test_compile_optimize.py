"""The flat program's simplifications (issue 14): products that share a matrix merged into one
(Program.merge_products), values nothing reads not recomputed (Program.eliminate_dead), and
the numbers equal to eager execution in every case, merged or not."""
import numpy as np
import pytest

import graphad as ga
from graphad import _kernels as K

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")


def _program(c):
    (entry,) = c._cache.values()
    assert not entry.eager
    return entry.program


def _fwd_names(c):
    return [n for k, n in _program(c).describe() if k == "fwd"]


def _logistic(A):
    def f(x):
        return ga.sum(ga.log(1 + ga.exp(A @ x))) + 0.5 * (x @ x)
    return f


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_hvp_reads_the_matrix_twice_and_equals_eager_and_autograd(dtype):
    """jvp(grad(f)) of f(x) = g(A x) holds two pairs of products sharing A (A x with A v,
    A^T g with A^T dg); each pair runs as one product where stacking pays, and f's value,
    which hvp drops, is not computed."""
    rng = np.random.default_rng(0)
    A = (rng.standard_normal((200, 500)) / 20).astype(dtype)
    f = _logistic(A)
    hv = ga.compile(lambda x, v: ga.hvp(f, (x,), (v,)))
    tol = 1e-4 if dtype == "float32" else 1e-12

    def f_ag(x):
        return anp.sum(anp.log(1 + anp.exp(A.astype("float64") @ x))) + 0.5 * (x @ x)
    for _ in range(3):
        x, v = (rng.standard_normal(500).astype(dtype) for _ in range(2))
        g, h = hv(x, v)
        g0, h0 = ga.hvp(f, (x,), (v,))
        assert np.asarray(g).dtype == dtype and np.asarray(h).dtype == dtype
        np.testing.assert_allclose(np.asarray(g), g0, rtol=tol, atol=tol)
        np.testing.assert_allclose(np.asarray(h), h0, rtol=tol, atol=tol)
        x64, v64 = x.astype("float64"), v.astype("float64")
        h_ag = autograd.grad(lambda y: autograd.grad(f_ag)(y) @ v64)(x64)
        np.testing.assert_allclose(np.asarray(h), h_ag, rtol=10 * tol, atol=10 * tol)
    names = _fwd_names(hv)
    assert names.count("matmul") == (2 if K.stacking_pays(A, 2, True) else 4)
    assert "log" not in names and "sum" not in names      # f's value: nothing reads it


def test_a_dependent_pair_is_not_merged():
    """A @ sin(A @ x): the second product reads the first, so both run, in order."""
    rng = np.random.default_rng(1)
    A = rng.standard_normal((300, 300)) / 17
    f = ga.compile(lambda x: A @ ga.sin(A @ x))
    for _ in range(2):
        x = rng.standard_normal(300)
        np.testing.assert_allclose(np.asarray(f(x)), A @ np.sin(A @ x), rtol=1e-12, atol=1e-12)
    assert _fwd_names(f).count("matmul") == 2


def test_readers_of_the_earlier_product_move_after_the_merged_one():
    """exp(A x) reads the first product and lies between the pair; A (2 v) comes later: the
    merged product takes the later place and exp follows it."""
    rng = np.random.default_rng(2)
    A = rng.standard_normal((256, 400)) / 20

    def h(x, v):
        z = ga.exp(A @ x)
        w = 2.0 * v
        return z + A @ w, v @ A.T          # A w and v A^T: three products share A
    f = ga.compile(h)
    for _ in range(3):
        x, v = rng.standard_normal(400), rng.standard_normal(400)
        got = f(x, v)
        np.testing.assert_allclose(np.asarray(got[0]), np.exp(A @ x) + A @ (2 * v),
                                   rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(got[1]), A @ v, rtol=1e-12, atol=1e-12)
    merged = K.stacking_pays(A, 2, True)
    assert _fwd_names(f).count("matmul") == (2 if merged else 3)


def test_products_with_the_matrix_on_either_side_merge():
    """u @ A and A^T @ w are both rows times A."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((300, 200)) / 15
    f = ga.compile(lambda u, w: (u @ A, ga.transpose(A) @ w))
    u, w = rng.standard_normal(300), rng.standard_normal(300)
    a, b = f(u, w)
    np.testing.assert_allclose(np.asarray(a), u @ A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(b), A.T @ w, rtol=1e-12, atol=1e-12)
    a, b = f(w, u)                         # replayed with new inputs
    np.testing.assert_allclose(np.asarray(a), w @ A, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(b), A.T @ u, rtol=1e-12, atol=1e-12)


def test_small_matrices_and_matrix_products_are_left_alone():
    rng = np.random.default_rng(4)
    S = rng.standard_normal((20, 30))               # cache-resident: two GEMVs are cheaper
    B = rng.standard_normal((300, 300))
    f = ga.compile(lambda x, y, X: (S @ x, S @ y, B @ X, B @ (2.0 * X)))
    x, y, X = rng.standard_normal(30), rng.standard_normal(30), rng.standard_normal((300, 2))
    got = f(x, y, X)
    for g, w in zip(got, (S @ x, S @ y, B @ X, B @ (2 * X))):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-12, atol=1e-12)
    assert _fwd_names(f).count("matmul") == 4


def test_dead_values_are_not_recomputed():
    rng = np.random.default_rng(5)

    def h(x):
        unused = ga.sum(ga.sin(x) ** 2)           # computed, never returned or read
        del unused
        return ga.cos(x)
    f = ga.compile(h)
    x = rng.standard_normal(7)
    np.testing.assert_allclose(np.asarray(f(x)), np.cos(x), rtol=1e-15)
    x = rng.standard_normal(7)
    np.testing.assert_allclose(np.asarray(f(x)), np.cos(x), rtol=1e-15)
    assert _fwd_names(f) == ["cos"]
    assert f.stats()[0]["primitives"] == 1


def test_regression_a_dead_random_draw_still_advances_the_generator():
    """A sample nothing reads is still drawn on every replay, as eagerly: a program that skipped
    it would shift every later sample of the stream."""
    def h(x, rng):
        ga.random.normal(0.0, 1.0, size=4, rng=rng)         # drawn, dropped
        return x * ga.random.uniform(0.0, 1.0, size=3, rng=rng)
    eager_rng, compiled_rng = np.random.default_rng(9), np.random.default_rng(9)
    f = ga.compile(lambda x: h(x, compiled_rng))
    x = np.ones(3)
    for _ in range(3):
        np.testing.assert_array_equal(np.asarray(f(x)), np.asarray(h(x, eager_rng)))
    assert eager_rng.bit_generator.state == compiled_rng.bit_generator.state


def test_a_dead_dropout_mask_and_a_dead_custom_rule_still_run():
    """Primitives that are not pure (a dropout mask, a custom rule's user code) run on every
    replay even where nothing reads their values."""
    calls = []

    @ga.custom_vjp
    def noisy(x):
        calls.append(1)
        return x * 2.0

    def noisy_fwd(x):
        calls.append(1)
        return x * 2.0, None
    noisy.defvjp(noisy_fwd, lambda res, g: (2.0 * g,))
    w = ga.tensor(np.ones(5), requires_grad=True)      # the custom rule's node needs a grad input
    drop = ga.nn.Dropout(0.5, rng=np.random.default_rng(3))
    drop_eager = ga.nn.Dropout(0.5, rng=np.random.default_rng(3))

    def h(x, d):
        noisy(w * x)
        d(w * x)
        return ga.sin(x)
    f = ga.compile(lambda x: h(x, drop))
    x = np.ones(5)
    for _ in range(3):
        np.testing.assert_allclose(np.asarray(f(x)), np.sin(x))
        h(x, drop_eager)
    assert len(calls) == 6                  # 3 eager calls, the trace and 2 replays
    assert drop._rng.bit_generator.state == drop_eager._rng.bit_generator.state
