"""Vectorized Jacobians (graphad/transforms.py: jacfwd, jacrev, jacobian): every primitive in the
registry through ONE batched forward sweep and ONE batched reverse sweep, against a
finite-difference Jacobian; random compositions; chunking; argnums and tuple outputs; the
column-major vec convention; and the course's computational-graph example."""
import numpy as np
import pytest

import graphad as ga
from graphad import transforms
from graphad._prims import REGISTRY
from prim_cases import CASE_LIST, CASES, draw, fd_jacobian, rng_for, value


def test_every_registry_primitive_has_a_jacobian_case():
    missing = sorted(set(REGISTRY) - set(CASES))
    assert not missing, f"primitives without a batched-sweep Jacobian case: {missing}"


@pytest.mark.parametrize("name,label,f,specs", CASE_LIST,
                         ids=[f"{c[0]}-{c[1]}" for c in CASE_LIST])
def test_primitive_jacobians_fwd_rev_fd(name, label, f, specs):
    """jacfwd (one forward sweep with a block of tangents) and jacrev (one reverse sweep with a
    block of cotangents) agree with the finite-difference Jacobian, for every argument."""
    rng = rng_for(name + label)
    args = [draw(s, rng) for s in specs]
    nums = tuple(range(len(args)))
    Jf = ga.jacfwd(f, argnums=nums)(*args)
    Jr = ga.jacrev(f, argnums=nums)(*args)
    out_shape = np.shape(value(f(*args)))
    for i in nums:
        fd = fd_jacobian(f, args, i)
        assert Jf[i].shape == out_shape + args[i].shape
        assert Jr[i].shape == out_shape + args[i].shape
        np.testing.assert_allclose(Jf[i], fd, rtol=1e-6, atol=1e-7, err_msg=f"jacfwd arg {i}")
        np.testing.assert_allclose(Jr[i], fd, rtol=1e-6, atol=1e-7, err_msg=f"jacrev arg {i}")
        # one argument: tangents computed with the values (eager forward mode, fused rules);
        # the same Jacobian as a forward sweep over the recorded graph
        eager = ga.jacfwd(f, argnums=i)(*args)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(transforms, "_eager", lambda trace: False)
            swept = ga.jacfwd(f, argnums=i)(*args)
        np.testing.assert_allclose(eager, swept, rtol=1e-13, atol=1e-14,
                                   err_msg=f"eager vs swept jacfwd, arg {i}")


@pytest.mark.parametrize("name,label,f,specs", CASE_LIST,
                         ids=[f"{c[0]}-{c[1]}" for c in CASE_LIST])
def test_primitive_second_order_blocks(name, label, f, specs):
    """The batched sweeps also run through recorded rules: the Hessian of <u, f(x)> by
    forward-over-reverse (jacfwd of jacrev) equals reverse-over-forward (jacrev of jacfwd)."""
    rng = rng_for("second" + name + label)
    args = [draw(s, rng) for s in specs]
    u = rng.standard_normal(np.shape(value(f(*args))))

    def scalar(x0, *rest):
        return ga.sum(f(x0, *rest) * u)

    H1 = ga.jacfwd(ga.jacrev(scalar))(*args)
    H2 = ga.jacrev(ga.jacfwd(scalar))(*args)
    H3 = ga.hessian(scalar)(*args)
    np.testing.assert_allclose(H1, H2, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(H3, H1, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(H1, np.swapaxes(H1.reshape(args[0].size, -1), 0, 1)
                               .reshape(H1.shape), rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# one sweep per Jacobian, chunking

@pytest.fixture
def sweep_counter(monkeypatch):
    """Counts forward passes that carry tangents (a sweep over a recorded graph, or an eager
    evaluation of f that carries them: forward_begin) and reverse sweeps."""
    from graphad import _core
    counts = {"fwd": 0, "rev": 0, "nlead": set()}
    fwd, rev, begin = _core.forward_sweep, _core.reverse_sweep, _core.forward_begin

    def counted_fwd(*a, **k):
        counts["fwd"] += 1
        counts["nlead"].add(k.get("nlead", 0))
        return fwd(*a, **k)

    def counted_begin(inputs, tangents, nlead=0):
        counts["fwd"] += 1
        counts["nlead"].add(nlead)
        return begin(inputs, tangents, nlead)

    def counted_rev(*a, **k):
        counts["rev"] += 1
        counts["nlead"].add(k.get("nlead", 0))
        return rev(*a, **k)

    monkeypatch.setattr(_core, "forward_sweep", counted_fwd)
    monkeypatch.setattr(_core, "reverse_sweep", counted_rev)
    monkeypatch.setattr(_core, "forward_begin", counted_begin)
    return counts


def mlp(W1, W2):
    return lambda x: ga.tanh(W2 @ ga.tanh(W1 @ x))


def test_jacfwd_and_jacrev_are_one_batched_sweep_each(sweep_counter):
    rng = np.random.default_rng(0)
    W1, W2 = rng.standard_normal((16, 7)), rng.standard_normal((5, 16))
    x = rng.standard_normal(7)
    Jf = ga.jacfwd(mlp(W1, W2))(x)
    assert sweep_counter["fwd"] == 1 and sweep_counter["rev"] == 0
    Jr = ga.jacrev(mlp(W1, W2))(x)
    assert sweep_counter["fwd"] == 1 and sweep_counter["rev"] == 1
    assert sweep_counter["nlead"] == {1}
    np.testing.assert_allclose(Jf, Jr, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Jf, fd_jacobian(mlp(W1, W2), [x], 0), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100])
def test_chunk_size_gives_the_same_jacobian_in_ceil_n_over_k_sweeps(chunk, sweep_counter):
    rng = np.random.default_rng(1)
    W1, W2 = rng.standard_normal((6, 7)), rng.standard_normal((5, 6))
    x = rng.standard_normal(7)
    f = mlp(W1, W2)
    J = ga.jacrev(f)(x)
    sweep_counter["rev"] = 0
    np.testing.assert_allclose(ga.jacfwd(f, chunk_size=chunk)(x), J, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ga.jacrev(f, chunk_size=chunk)(x), J, rtol=1e-12, atol=1e-14)
    assert sweep_counter["fwd"] == -(-7 // chunk)
    assert sweep_counter["rev"] == -(-5 // chunk)


def test_chunk_size_must_be_positive():
    with pytest.raises(ValueError, match="chunk_size"):
        ga.jacfwd(ga.sin, chunk_size=0)(np.ones(3))


def test_jacobian_auto_picks_the_cheaper_mode(sweep_counter):
    rng = np.random.default_rng(2)
    wide = rng.standard_normal((2, 9))       # R^9 -> R^2: reverse
    tall = rng.standard_normal((9, 2))       # R^2 -> R^9: forward
    ga.jacobian(lambda x: ga.tanh(wide @ x))(rng.standard_normal(9))
    assert (sweep_counter["fwd"], sweep_counter["rev"]) == (0, 1)
    ga.jacobian(lambda x: ga.tanh(tall @ x))(rng.standard_normal(2))
    assert (sweep_counter["fwd"], sweep_counter["rev"]) == (1, 1)
    ga.jacobian(lambda x: ga.tanh(tall @ x), mode="rev")(rng.standard_normal(2))
    assert sweep_counter["rev"] == 2
    with pytest.raises(ValueError, match="mode"):
        ga.jacobian(ga.sin, mode="sideways")


# ---------------------------------------------------------------------------------------------
# random compositions

UNARY = [ga.tanh, ga.sin, lambda h: ga.exp(0.3 * h), ga.softplus, lambda h: 0.5 * h * h,
         lambda h: ga.log1p(h * h), ga.sigmoid, lambda h: ga.sqrt(1.0 + h * h)]


def random_composition(rng, n, m, depth=5):
    """A random function R^n -> R^m: matmuls, elementwise maps, products, sums and slices."""
    steps = []
    width = n
    for _ in range(depth):
        kind = rng.integers(0, 5)
        if kind == 0:
            new = int(rng.integers(2, 6))
            steps.append(("matmul", rng.standard_normal((new, width)) / np.sqrt(width)))
            width = new
        elif kind == 1:
            steps.append(("unary", int(rng.integers(0, len(UNARY)))))
        elif kind == 2:
            steps.append(("times_x", rng.standard_normal((width, n)) / np.sqrt(n)))
        elif kind == 3:
            steps.append(("plus_sum", None))
        else:
            steps.append(("reverse", None))
    W_out = rng.standard_normal((m, width)) / np.sqrt(width)

    def f(x):
        h = x
        for kind, p in steps:
            if kind == "matmul":
                h = p @ h
            elif kind == "unary":
                h = UNARY[p](h)
            elif kind == "times_x":
                h = h * ga.cos(p @ x)
            elif kind == "plus_sum":
                h = h + ga.sum(h * h) * 0.1
            else:
                h = h[::-1]
        return W_out @ h
    return f


@pytest.mark.parametrize("seed", range(8))
def test_random_compositions_jacfwd_equals_jacrev_equals_fd(seed):
    rng = np.random.default_rng(100 + seed)
    n, m = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    f = random_composition(rng, n, m)
    x = rng.uniform(-1, 1, n)
    Jf, Jr = ga.jacfwd(f)(x), ga.jacrev(f)(x)
    assert Jf.shape == Jr.shape == (m, n)
    np.testing.assert_allclose(Jf, Jr, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Jr, fd_jacobian(f, [x], 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.jacobian(f)(x), Jr, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# argnums, tuple outputs, shapes, dtypes

def test_argnums_tuple_and_matrix_shapes():
    rng = np.random.default_rng(3)
    A, X = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))

    def f(A, X):
        return ga.tanh(A @ X)
    for jac in (ga.jacfwd, ga.jacrev):
        JA, JX = jac(f, argnums=(0, 1))(A, X)
        assert JA.shape == (2, 4, 2, 3) and JX.shape == (2, 4, 3, 4)
        np.testing.assert_allclose(JA, fd_jacobian(f, [A, X], 0), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(JX, fd_jacobian(f, [A, X], 1), rtol=1e-6, atol=1e-8)
        JX1 = jac(f, argnums=1)(A, X)
        np.testing.assert_allclose(JX1, JX, rtol=1e-12, atol=1e-14)


def test_tuple_outputs_give_one_jacobian_per_output():
    x = np.array([0.3, -0.7, 1.1])

    def f(x):
        return ga.sin(x), ga.sum(x * x)
    for jac in (ga.jacfwd, ga.jacrev):
        Js, Jq = jac(f)(x)
        np.testing.assert_allclose(Js, np.diag(np.cos(x)), atol=1e-15)
        np.testing.assert_allclose(Jq, 2 * x, atol=1e-15)


def test_scalar_input_and_output_and_constant_function():
    for jac in (ga.jacfwd, ga.jacrev):
        assert np.isclose(jac(lambda t: ga.sin(t) * t)(0.5), np.cos(0.5) * 0.5 + np.sin(0.5))
        J = jac(lambda x: np.ones(2))(np.ones(3))
        assert J.shape == (2, 3) and not J.any()
        assert isinstance(jac(ga.exp)(np.ones(2)), np.ndarray)


def test_float32_jacobians_stay_float32():
    x = np.linspace(-1, 1, 4).astype(np.float32)
    for jac in (ga.jacfwd, ga.jacrev):
        J = jac(ga.tanh)(x)
        assert J.dtype == np.float32
        np.testing.assert_allclose(J, np.diag(1 - np.tanh(x) ** 2), rtol=1e-6)


def test_integer_inputs_are_rejected():
    for jac in (ga.jacfwd, ga.jacrev, ga.jacobian):
        with pytest.raises(TypeError):
            jac(ga.sin)(np.arange(3))


# ---------------------------------------------------------------------------------------------
# the course's vec convention: vec(A X B) = (B^T kron A) vec(X), columns stacked

def test_vec_jacobian_of_AXB_is_kron_BT_A():
    rng = np.random.default_rng(4)
    A, X, B = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    for mode in ("fwd", "rev", "auto"):
        M = ga.jacobian(lambda X: A @ X @ B, mode=mode, vec=True)(X)
        np.testing.assert_allclose(M, np.kron(B.T, A), rtol=1e-12, atol=1e-14)
    # and it is the matrix that maps vec(dX) to vec(df)
    dX = rng.standard_normal(X.shape)
    vec = lambda Y: Y.reshape(-1, order="F")
    np.testing.assert_allclose(M @ vec(dX), vec(A @ dX @ B), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ga.vec(A @ dX @ B).numpy(), vec(A @ dX @ B))


def test_vec_jacobian_of_inverse_like_map_and_tuple_argnums():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 3))
    # d(X^2) = dX X + X dX  ->  (X^T kron I) + (I kron X)
    M = ga.jacobian(lambda X: X @ X, vec=True)(X)
    I = np.eye(3)
    np.testing.assert_allclose(M, np.kron(X.T, I) + np.kron(I, X), rtol=1e-12, atol=1e-13)
    A = rng.standard_normal((3, 3))
    MA, MX = ga.jacobian(lambda A, X: A @ X, argnums=(0, 1), vec=True)(A, X)
    np.testing.assert_allclose(MA, np.kron(X.T, I), atol=1e-14)
    np.testing.assert_allclose(MX, np.kron(I, A), atol=1e-14)


# ---------------------------------------------------------------------------------------------
# the course's computational-graph example

def course_graph(x, y, z):
    a = (x @ y) * z
    b = ga.sin(a) + x * ga.exp(z)
    c = ga.log(b)
    d = (b @ b) * b
    e = b
    return e * ga.sin(c @ d)


def test_course_computational_graph_forward_reverse_fd():
    rng = np.random.default_rng(6)
    x, y, z = rng.uniform(1.5, 2.0, 3), rng.uniform(-1, 1, 3), rng.uniform(0, 1, 3)
    args = [x, y, z]
    Jf = ga.jacfwd(course_graph, argnums=(0, 1, 2))(*args)
    Jr = ga.jacrev(course_graph, argnums=(0, 1, 2))(*args)
    for i in range(3):
        assert Jf[i].shape == (3, 3)
        np.testing.assert_allclose(Jf[i], Jr[i], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(Jr[i], fd_jacobian(course_graph, args, i, h=1e-7),
                                   rtol=2e-5, atol=1e-6)
    ga.check_grad(course_graph, *args, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# chunks run by an executor (concurrent.futures' map: a process pool, dask, Ray)

_EA = np.random.default_rng(21).standard_normal((5, 7))


def _two_outputs(x, y):                     # module level, so that a process pool can pickle it
    return ga.tanh(_EA @ x) * ga.sum(y ** 2), ga.sin(x)


@pytest.mark.parametrize("pool", ["threads", "processes"])
def test_jacobian_chunks_run_by_an_executor(pool):
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
    x, y = np.linspace(-1, 1, 7), np.array([0.3, -0.2])
    want = ga.jacrev(_two_outputs, argnums=(0, 1))(x, y)
    make = ThreadPoolExecutor if pool == "threads" else ProcessPoolExecutor
    with make(2) as ex:
        for jac in (ga.jacfwd, ga.jacrev):
            got = jac(_two_outputs, argnums=(0, 1), chunk_size=3, executor=ex)(x, y)
            for g_row, w_row in zip(got, want):
                for g, w in zip(g_row, w_row):
                    np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)
        J = ga.jacobian(lambda v: ga.sin(v) * v, chunk_size=2, executor=ex, vec=True) \
            if pool == "threads" else None
        if J is not None:
            np.testing.assert_allclose(J(x), np.diag(np.cos(x) * x + np.sin(x)), atol=1e-15)


def test_executor_inside_another_transform_is_refused():
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(1) as ex:
        inner = ga.jacrev(lambda v: ga.sin(v), executor=ex)
        with pytest.raises(ValueError, match="executor= runs the chunks elsewhere"):
            ga.grad(lambda v: ga.sum(inner(v)))(np.ones(3))
