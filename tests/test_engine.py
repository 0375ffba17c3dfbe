"""The graph engine (graphad/_core.pyx): DAGs with shared nodes, accumulation, retain_graph,
no_grad, detach, million-node chains, memory (weakrefs, RSS), and that nothing the user passes in
is modified in place."""
import gc
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphad as ga
from graphad import _core
from conftest import check_vjp


def _leaf(a):
    return ga.tensor(a, requires_grad=True)


# ---------------------------------------------------------------------------------------------
# DAGs

def test_diamond():
    # y = 2x feeds two branches that meet again: z = sin(y) * cos(y) = sin(2y) / 2
    x0 = np.array([0.3, -1.1, 2.0])
    x = _leaf(x0)
    y = x * 2.0
    z = ga.sum(ga.sin(y) * ga.cos(y))
    z.backward()
    np.testing.assert_allclose(x.grad, 2.0 * np.cos(4.0 * x0), rtol=1e-13)


def test_shared_subexpression():
    # s = x^2 used three times: z = s + s^2 + exp(s);  dz/dx = (1 + 2s + e^s) 2x
    x0 = np.array([0.5, -0.7])
    x = _leaf(x0)
    s = x * x
    z = ga.sum(s + s * s + ga.exp(s))
    z.backward()
    s0 = x0 * x0
    np.testing.assert_allclose(x.grad, (1 + 2 * s0 + np.exp(s0)) * 2 * x0, rtol=1e-14)


def test_wide_fan_out_and_fan_in():
    x = _leaf(np.array(1.5))
    terms = [x * float(k) for k in range(1, 101)]
    total = terms[0]
    for t in terms[1:]:
        total = total + t * t
    total.backward()
    want = 1.0 + sum(2 * k * k * 1.5 for k in range(2, 101))
    np.testing.assert_allclose(x.grad, want, rtol=1e-14)


def test_leaf_used_twice():
    x = _leaf(np.array([1.0, -2.0, 3.0]))
    ga.sum(x * x).backward()
    np.testing.assert_array_equal(x.grad, [2.0, -4.0, 6.0])
    x.zero_grad()
    ga.sum(x + x).backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])
    # as two arguments of one transform
    a = np.array([1.0, -2.0, 3.0])
    ga_, gb = ga.grad(lambda p, q: ga.sum(p * q * q), argnums=(0, 1))(a, a)
    np.testing.assert_array_equal(ga_, a * a)
    np.testing.assert_array_equal(gb, 2 * a * a)


def test_two_outputs_through_one_node():
    # backward from a node that is also an input of a later node
    x = _leaf(np.array(2.0))
    y = x * x
    z = y * x
    z.backward(retain_graph=True)          # 3x^2 = 12
    y.backward()                           # 2x = 4, accumulated
    np.testing.assert_allclose(x.grad, 16.0)


def test_constants_do_not_require_grad():
    x = ga.tensor([1.0, 2.0])
    y = ga.exp(x) * 2.0
    assert not y.requires_grad and y.is_leaf
    w = _leaf([1.0, 1.0])
    z = y * w
    assert z.requires_grad and not z.is_leaf
    assert w.is_leaf


def test_gradients_only_reach_leaves_that_require_grad():
    a, b = _leaf([1.0, 2.0]), ga.tensor([3.0, 4.0])
    ga.sum(a * b).backward()
    np.testing.assert_array_equal(a.grad, [3.0, 4.0])
    assert b.grad is None


def test_backward_with_a_seed():
    x = _leaf(np.arange(6.0).reshape(2, 3))
    y = ga.exp(x * 0.1)
    seed = np.random.default_rng(0).standard_normal((2, 3))
    y.backward(seed)
    np.testing.assert_allclose(x.grad, seed * 0.1 * np.exp(x.numpy() * 0.1), rtol=1e-14)
    # a Tensor seed works the same
    x.zero_grad()
    ga.exp(x * 0.1).backward(ga.tensor(seed))
    np.testing.assert_allclose(x.grad, seed * 0.1 * np.exp(x.numpy() * 0.1), rtol=1e-14)


def test_broadcast_gradients_sum_back_to_the_leaf_shape():
    b = _leaf(np.zeros((1, 3)))
    c = _leaf(np.zeros(()))
    x = np.ones((4, 2, 3))
    ga.sum(x * b + c).backward()
    assert b.grad.shape == (1, 3) and c.grad.shape == ()
    np.testing.assert_array_equal(b.grad, np.full((1, 3), 8.0))
    assert c.grad == 24.0


# random programs: DAGs with fan-out, fan-in and broadcasting, against finite differences, and
# the two sweeps (into .grad, and to a transform's sources) against each other

UNARY_POOL = [ga.sin, ga.tanh, ga.sigmoid, ga.cos, lambda a: a * a, lambda a: ga.exp(a * 0.3),
              lambda a: ga.softplus(a) - 1.0, lambda a: ga.log1p(a * a)]
BINARY_POOL = [ga.add, ga.subtract, ga.multiply, lambda a, b: a / (1.0 + b * b),
               lambda a, b: ga.sum(a * b, axis=-1, keepdims=True) * a,
               lambda a, b: ga.softmax(a + b, axis=-1), lambda a, b: a @ ga.tanh(b.T) @ b]


@st.composite
def programs(draw, max_len=12):
    n = draw(st.integers(1, max_len))
    steps = []
    for k in range(n):
        avail = 3 + k                            # inputs x, w, c, then every earlier result
        if draw(st.booleans()):
            steps.append((0, draw(st.integers(0, len(UNARY_POOL) - 1)),
                          draw(st.integers(0, avail - 1)), None))
        else:
            steps.append((1, draw(st.integers(0, len(BINARY_POOL) - 1)),
                          draw(st.integers(0, avail - 1)), draw(st.integers(0, avail - 1))))
    return steps


def _run(steps, x, w, c):
    nodes = [x, w, c]
    for kind, op, i, j in steps:
        a = nodes[i]
        if kind == 0:
            nodes.append(UNARY_POOL[op](a))
        else:
            b = nodes[j]
            if op == 6:                          # a (2,3)-shaped node times a square matrix
                a, b = a * np.ones((2, 3)), b * np.ones((2, 3))
            nodes.append(BINARY_POOL[op](a, b))
    return ga.sum(nodes[-1] * np.linspace(0.5, 1.5, 6).reshape(2, 3)) + ga.sum(nodes[-2]) * 0.5


def _program_check(steps, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (2, 3))
    w = rng.uniform(-1, 1, (3,))
    c = rng.uniform(-1, 1, (2, 1))
    check_vjp(lambda a, b, d: _run(steps, a, b, d), x, w, c, rng=seed)
    grads = ga.grad(lambda a, b, d: _run(steps, a, b, d), argnums=(0, 1, 2))(x, w, c)
    leaves = [_leaf(v) for v in (x, w, c)]
    _run(steps, *leaves).backward()
    for leaf, ct in zip(leaves, grads):
        got = np.zeros(leaf.shape) if leaf.grad is None else leaf.grad
        np.testing.assert_allclose(got, ct, rtol=1e-12, atol=1e-14)


@given(steps=programs(), seed=st.integers(0, 2**32 - 1))
def test_random_programs(steps, seed):
    _program_check(steps, seed)


@pytest.mark.slow
@settings(max_examples=300)
@given(steps=programs(max_len=60), seed=st.integers(0, 2**32 - 1))
def test_random_long_programs(steps, seed):
    _program_check(steps, seed)


# ---------------------------------------------------------------------------------------------
# accumulation, retain_graph, zero_grad

def test_grad_accumulates_over_two_backward_calls():
    x = _leaf(np.array([1.0, 2.0]))
    ga.sum(x * x).backward()
    first = x.grad.copy()
    ga.sum(x * x * x).backward()
    np.testing.assert_array_equal(first, [2.0, 4.0])
    np.testing.assert_array_equal(x.grad, first + 3 * np.array([1.0, 4.0]))


def test_retain_graph_allows_a_second_backward():
    x = _leaf(np.array(3.0))
    y = x * x
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad, 12.0)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_second_backward_through_a_freed_graph_raises():
    x = _leaf(np.array([1.0, 2.0]))
    h = ga.exp(x)
    y = ga.sum(h * h)
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    # a new graph built on the freed intermediate cannot sweep through it either
    with pytest.raises(RuntimeError, match="retain_graph"):
        ga.sum(h).backward()


def test_zero_grad():
    x, w = _leaf([1.0]), _leaf([2.0])
    ga.sum(x * w).backward()
    x.zero_grad()
    assert x.grad is None and w.grad is not None
    ga.zero_grad([x, w])
    assert w.grad is None
    ga.sum(x * w).backward()
    np.testing.assert_array_equal(x.grad, [2.0])


def test_create_graph_gives_a_differentiable_grad():
    x = _leaf(np.array([1.0, 2.0]))
    ga.sum(x ** 3).backward(create_graph=True)
    g = x.grad
    assert isinstance(g, ga.Tensor)
    np.testing.assert_allclose(g.numpy(), 3 * np.array([1.0, 4.0]))
    x.grad = None
    ga.sum(g).backward()
    np.testing.assert_allclose(x.grad, 6 * np.array([1.0, 2.0]))


# ---------------------------------------------------------------------------------------------
# no_grad and detach

def test_no_grad_context():
    x = _leaf([1.0, 2.0])
    with ga.no_grad():
        assert not ga.is_grad_enabled()
        y = x * 2.0
        assert not y.requires_grad
    assert ga.is_grad_enabled()
    z = x * 2.0
    assert z.requires_grad
    with pytest.raises(RuntimeError):
        ga.sum(y).backward()


def test_no_grad_restores_the_mode_after_an_exception_and_when_nested():
    with pytest.raises(ZeroDivisionError):
        with ga.no_grad():
            1 / 0
    assert ga.is_grad_enabled()
    with ga.no_grad():
        with ga.no_grad():
            pass
        assert not ga.is_grad_enabled()
    assert ga.is_grad_enabled()


def test_no_grad_as_a_decorator():
    @ga.no_grad()
    def step(t):
        """doc"""
        assert not ga.is_grad_enabled()
        return t * 3.0

    x = _leaf([1.0])
    y = step(x)
    assert not y.requires_grad
    assert ga.is_grad_enabled()
    assert step.__name__ == "step" and step.__doc__ == "doc"


def test_detach():
    x = _leaf(np.array([1.0, 2.0]))
    y = x * x
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.numpy(), y.numpy())
    # the detached branch contributes a value but no gradient
    ga.sum(d * x + y).backward()
    np.testing.assert_array_equal(x.grad, np.array([1.0, 4.0]) + 2 * np.array([1.0, 2.0]))


def test_requires_grad_cannot_be_switched_off_on_a_computed_tensor():
    x = _leaf([1.0])
    y = x * 2.0
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad = False
    x.requires_grad = False
    assert not (x * 2.0).requires_grad


# ---------------------------------------------------------------------------------------------
# long chains

def test_million_node_chain_backpropagates():
    x = _leaf(np.array(1.0))
    y = x
    for _ in range(500_000):
        y = y * 1.000001
        y = y + 0.0
    assert sys.getrecursionlimit() < 100_000
    y.backward()
    np.testing.assert_allclose(x.grad, 1.000001 ** 500_000, rtol=1e-9)
    np.testing.assert_allclose(y.numpy(), 1.000001 ** 500_000, rtol=1e-9)


def test_long_chain_through_the_grad_transform():
    def f(x):
        for _ in range(100_000):
            x = ga.sin(x) * 0.5 + x * 0.5
        return x

    g = ga.grad(f)(0.0)
    np.testing.assert_allclose(g, 1.0, rtol=1e-12)


def test_deleting_a_million_node_chain_without_backward_does_not_crash():
    code = textwrap.dedent("""
        import numpy as np, graphad as ga
        x = ga.tensor(np.array(1.0), requires_grad=True)
        y = x
        for _ in range(1_000_000):
            y = y * 1.0
        del y
        # memory reused after a deep deallocation must be intact (a trashcan writing into a
        # GC header that Tensor lacks once corrupted it here)
        for _ in range(3):
            z = x
            for _ in range(150_000):
                z = ga.exp(z * 0.0)
            z = None
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "ok"


# ---------------------------------------------------------------------------------------------
# memory

def test_intermediates_are_freed_after_backward():
    x = _leaf(np.ones(1000))
    h = ga.exp(x * 2.0)
    w_h = weakref.ref(h)
    w_data = weakref.ref(h.data)
    y = ga.sum(ga.sin(h))
    del h
    gc.collect()
    assert w_h() is not None, "the graph keeps its intermediates until the sweep"
    y.backward()
    assert w_h() is None, "backward() freed the graph, so the intermediate must be gone"
    assert w_data() is None
    assert x.grad is not None and y.numpy() is not None


def test_intermediates_live_on_with_retain_graph_until_the_output_dies():
    x = _leaf(np.ones(10))
    h = x * 3.0
    w = weakref.ref(h)
    y = ga.sum(h * h)
    del h
    y.backward(retain_graph=True)
    assert w() is not None
    del y
    assert w() is None


def test_transforms_leave_no_graph_behind():
    held = []

    def f(x):
        h = ga.tanh(x) * 2.0
        held.append(weakref.ref(h))
        return ga.sum(h * h)

    for fn in (ga.grad(f), lambda a: ga.value_and_grad(f)(a)[1]):
        fn(np.ones(5))
    gc.collect()
    assert held and all(w() is None for w in held)


def test_gradient_does_not_keep_the_graph_alive():
    x = _leaf(np.ones(4))
    h = x * 2.0
    w = weakref.ref(h)
    ga.sum(h).backward()
    del h
    assert w() is None
    assert isinstance(x.grad, np.ndarray)


def _rss():
    psutil = pytest.importorskip("psutil")
    gc.collect()
    return psutil.Process().memory_info().rss


def test_rss_stays_flat_over_ten_thousand_training_iterations():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((32, 8)), rng.standard_normal((32, 4))
    W1 = _leaf(rng.standard_normal((8, 16)) * 0.3)
    b1 = _leaf(np.zeros(16))
    W2 = _leaf(rng.standard_normal((16, 4)) * 0.3)
    b2 = _leaf(np.zeros(4))
    params = [W1, b1, W2, b2]
    losses = {}
    rss = {}
    for it in range(1, 10_001):
        h = ga.relu(X @ W1 + b1)
        loss = ga.mean((ga.tanh(h @ W2 + b2) - Y) ** 2)
        loss.backward()
        for p in params:
            p.data -= 0.05 * p.grad
            p.grad = None
        if it in (1, 1000, 10_000):
            losses[it] = loss.item()
            rss[it] = _rss()
    assert losses[10_000] < losses[1], "training must make progress"
    growth = rss[10_000] - rss[1000]
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 9000 iterations"


def test_rss_stays_flat_with_value_and_grad():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((32, 8)), rng.standard_normal((32, 4))
    W = rng.standard_normal((8, 4)) * 0.3
    vg = ga.value_and_grad(lambda w: ga.mean((ga.sigmoid(X @ w) - Y) ** 2))
    rss = {}
    for it in range(1, 10_001):
        _, g = vg(W)
        W = W - 0.1 * g
        if it in (1000, 10_000):
            rss[it] = _rss()
    growth = rss[10_000] - rss[1000]
    assert growth < 4 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 9000 iterations"


# ---------------------------------------------------------------------------------------------
# nothing the user passes in is modified in place

def test_arrays_passed_to_ops_are_not_modified():
    rng = np.random.default_rng(2)
    arrs = [rng.standard_normal((3, 4)) for _ in range(4)]
    copies = [a.copy() for a in arrs]
    a, b, c, d = arrs
    x = _leaf(a)
    y = ga.sum(ga.exp(x) * b + (x @ c.T) @ d + ga.where(b > 0, x, c)[[0, 0, 1]].sum(axis=0))
    y.backward()
    for arr, cp in zip(arrs, copies):
        np.testing.assert_array_equal(arr, cp)
    np.testing.assert_array_equal(x.numpy(), a)


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0])
    t = ga.tensor(a, requires_grad=True)
    a[0] = 100.0
    assert t.numpy()[0] == 1.0
    v = t.numpy()
    with pytest.raises(ValueError):
        v[0] = 5.0


def test_seeds_passed_to_backward_are_not_modified():
    seed = np.array([1.0, 2.0, 3.0])
    keep = seed.copy()
    # y = a + a and y = a + b pass the seed straight through to the leaves, then accumulate
    a, b = _leaf(np.zeros(3)), _leaf(np.zeros(3))
    (a + a).backward(seed)
    (a + b).backward(seed)
    (a * 1.0).backward(seed)
    np.testing.assert_array_equal(seed, keep)
    np.testing.assert_array_equal(a.grad, 4 * keep)
    np.testing.assert_array_equal(b.grad, keep)
    # a leaf swept directly: its .grad must not be the seed itself
    c = _leaf(np.zeros(3))
    c.backward(seed)
    c.backward(seed)
    np.testing.assert_array_equal(seed, keep)
    np.testing.assert_array_equal(c.grad, 2 * keep)


def test_grad_buffers_are_not_shared_between_leaves():
    a, b = _leaf(np.zeros(2)), _leaf(np.zeros(2))
    seed = np.array([1.0, 1.0])
    (a + b).backward(seed)
    (a + b).backward(seed)
    a.grad[0] = 50.0
    np.testing.assert_array_equal(b.grad, [2.0, 2.0])
    np.testing.assert_array_equal(seed, [1.0, 1.0])


def test_arrays_passed_to_transforms_are_not_modified():
    x = np.array([0.5, -1.0, 2.0])
    keep = x.copy()
    ga.grad(lambda a: ga.sum(a * a + a))(x)
    ga.value_and_grad(lambda a: ga.sum(ga.exp(a)))(x)
    ct = np.array([1.0, 2.0, 3.0])
    ct_keep = ct.copy()
    _, pull = ga.vjp(lambda a: a + a, x)
    pull(ct)
    pull(ct)
    tan = np.ones(3)
    ga.jvp(lambda a: a * a, (x,), (tan,))
    np.testing.assert_array_equal(x, keep)
    np.testing.assert_array_equal(ct, ct_keep)
    np.testing.assert_array_equal(tan, np.ones(3))


def test_returned_gradients_do_not_alias_inputs():
    x = np.array([1.0, 2.0])
    u = np.array([3.0, 4.0])
    _, pull = ga.vjp(lambda a: a * 1.0 + 0.0, x)
    g = pull(u)[0]
    g += 100.0
    np.testing.assert_array_equal(u, [3.0, 4.0])
    g2 = ga.grad(lambda a: ga.sum(a))(x)
    g2 += 1.0
    np.testing.assert_array_equal(x, [1.0, 2.0])


# ---------------------------------------------------------------------------------------------
# regressions: wrong numbers that came back without an error

def test_regression_vjp_output_that_is_an_input_keeps_other_cotangents():
    """vjp of (v, 2v) with cotangents (1, 1) is 1 + 2 = 3: a root that is a source itself
    must not prune the other roots that lead to it (it gave [1, 1])."""
    x, ones = np.array([0.5, -1.0]), np.ones(2)
    np.testing.assert_array_equal(ga.vjp(lambda v: (v, 2.0 * v), x)[1]((ones, ones))[0], 3.0)
    ga_, gb = ga.vjp(lambda a, b: (a, a * b), x, 2 * x)[1]((ones, ones))
    np.testing.assert_allclose(ga_, 1 + 2 * x)
    np.testing.assert_allclose(gb, x)
    # the same through backward on a leaf that is also a root of the sweep
    t = ga.tensor(x, requires_grad=True)
    _core.reverse_sweep([t, 2.0 * t], [ones, ones])
    np.testing.assert_array_equal(t.grad, 3.0)


def test_regression_vjp_fn_is_differentiable_in_its_cotangent():
    """u -> J^T u from a top-level vjp is linear in u; differentiating it gave zeros.  The
    Gauss-Newton product J^T (J v) built the usual way must be right."""
    x = np.array([0.3, -0.8, 1.4])
    _, pull = ga.vjp(lambda x: ga.sin(x) * x, x)
    d = np.cos(x) * x + np.sin(x)                       # the diagonal Jacobian
    u = np.array([1.0, 2.0, -1.0])
    np.testing.assert_allclose(ga.jacrev(lambda u: pull(u)[0])(u), np.diag(d), rtol=1e-14)
    np.testing.assert_allclose(ga.vjp(lambda u: pull(u)[0], u)[1](np.ones(3))[0], d,
                               rtol=1e-14)
    A = np.random.default_rng(0).standard_normal((4, 3))
    f = lambda x: ga.tanh(A @ x)
    _, pull = ga.vjp(f, x)
    v = np.array([0.2, 0.1, -0.4])
    Jv = ga.jvp(f, (x,), (v,))[1]
    J = ga.jacrev(f)(x)
    np.testing.assert_allclose(pull(Jv)[0], J.T @ J @ v, rtol=1e-12)
    np.testing.assert_allclose(ga.jacfwd(lambda w: pull(w)[0])(Jv), J.T, rtol=1e-12)
