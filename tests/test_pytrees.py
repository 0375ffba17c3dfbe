"""Trees of arrays (graphad/tree.py) through the transforms and ga.compile, has_aux, bare arrays
where a tuple is expected, and functional training with nn.functional_call (issue 12, items 2-4).
HIPS autograd, which differentiates dicts and tuples too, is the independent reference."""
from collections import OrderedDict, namedtuple

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import graphad as ga
from graphad import tree

rng = np.random.default_rng(12)
P = {"W": rng.standard_normal((3, 2)), "b": (rng.standard_normal(2), rng.standard_normal(()))}
X = rng.standard_normal((4, 3))


def loss_ga(p, x):
    h = ga.tanh(x @ p["W"] + p["b"][0])
    return ga.sum(h * h) * p["b"][1]


def loss_ag(p, x):
    h = anp.tanh(anp.dot(x, p["W"]) + p["b"][0])
    return anp.sum(h * h) * p["b"][1]


def assert_tree_close(a, b, **kw):
    la, ta = tree.flatten(a)
    lb, tb = tree.flatten(b)
    assert ta == tb, (tree.describe(ta), tree.describe(tb))
    for x, y in zip(la, lb):
        np.testing.assert_allclose(x, y, **kw)


# ---------------------------------------------------------------------------------------------
# the tree utilities

def test_flatten_unflatten_round_trip_keeps_types_and_order():
    Point = namedtuple("Point", "x y")
    t = OrderedDict(z=[1.0, (2.0, None)], a=Point(3.0, {"q": 4.0}))
    leaves, td = tree.flatten(t)
    assert leaves == [1.0, 2.0, 3.0, 4.0]
    back = tree.unflatten(td, leaves)
    assert back == t and type(back) is OrderedDict and type(back["a"]) is Point
    assert hash(td) == hash(tree.flatten(t)[1])


def test_flatten_as_matches_dicts_by_key_and_rejects_other_structures():
    _, td = tree.flatten({"a": 1, "b": (2, 3)})
    assert tree.flatten_as(td, {"b": (20, 30), "a": 10}) == [10, 20, 30]
    with pytest.raises(ValueError, match="structure"):
        tree.flatten_as(td, {"a": 1, "c": (2, 3)})
    with pytest.raises(ValueError, match="structure"):
        tree.flatten_as(td, {"a": 1, "b": (2,)})


# ---------------------------------------------------------------------------------------------
# gradients in the argument's structure

def test_grad_of_a_dict_of_arrays_matches_autograd():
    g = ga.grad(loss_ga)(P, X)
    assert_tree_close(g, autograd.grad(loss_ag)(P, X), rtol=1e-12, atol=1e-14)
    assert isinstance(g, dict) and isinstance(g["b"], tuple)


def test_value_and_grad_with_two_tree_arguments():
    v, (gp, gx) = ga.value_and_grad(loss_ga, argnums=(0, 1))(P, X)
    np.testing.assert_allclose(v, loss_ag(P, X), rtol=1e-12)
    assert_tree_close(gp, autograd.grad(loss_ag, 0)(P, X), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gx, autograd.grad(loss_ag, 1)(P, X), rtol=1e-12, atol=1e-14)


def test_list_argument_is_a_tree_of_leaves():
    g = ga.grad(lambda xs: ga.sum(xs[0] * xs[1]))([np.array([1.0, 2.0]), np.array([3.0, 4.0])])
    assert isinstance(g, list)
    np.testing.assert_allclose(g[0], [3.0, 4.0])
    np.testing.assert_allclose(g[1], [1.0, 2.0])


def test_none_in_a_tree_is_an_empty_subtree():
    g = ga.grad(lambda p: ga.sum(p["w"] ** 2))({"w": np.array([1.0, -2.0]), "unused": None})
    assert g["unused"] is None
    np.testing.assert_allclose(g["w"], [2.0, -4.0])


def test_grad_inside_grad_with_trees():
    # d/dx of sum(grad_p f) where f = sum(p.a * x^2): grad_p.a = x^2, so the result is 2x
    def inner(x):
        gp = ga.grad(lambda p: ga.sum(p["a"] * x * x))({"a": np.ones(3)})
        return ga.sum(gp["a"])
    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(ga.grad(inner)(x), 2 * x)


def test_unsupported_leaf_type_is_named():
    with pytest.raises(TypeError, match="set"):
        ga.grad(lambda s: 0.0)({1.0, 2.0})
    with pytest.raises(TypeError, match="str"):
        ga.grad(lambda p: ga.sum(p["a"]))({"a": "not an array"})


# ---------------------------------------------------------------------------------------------
# vjp, jvp, Jacobians and Hessians with trees

def test_vjp_with_dict_output_and_cotangent_in_another_key_order():
    def f(x):
        return {"s": ga.sin(x), "sq": x * x}
    x = np.array([0.3, -1.2])
    out, fn = ga.vjp(f, x)
    np.testing.assert_allclose(out["s"], np.sin(x))
    (g,) = fn({"sq": np.array([1.0, 0.0]), "s": np.array([0.0, 1.0])})
    np.testing.assert_allclose(g, [2 * x[0], np.cos(x[1])])
    with pytest.raises(ValueError, match="structure"):
        fn({"s": np.ones(2)})


def test_jvp_with_tree_primals_matches_autograd():
    v = {"W": rng.standard_normal((3, 2)),
         "b": (rng.standard_normal(2), rng.standard_normal(()))}
    val, tan = ga.jvp(loss_ga, (P, X), (v, np.zeros_like(X)))
    g = autograd.grad(loss_ag)(P, X)
    expect = sum(np.vdot(a, b) for a, b in zip(tree.flatten(g)[0], tree.flatten(v)[0]))
    np.testing.assert_allclose(tan, expect, rtol=1e-12)
    np.testing.assert_allclose(val, loss_ag(P, X), rtol=1e-12)
    with pytest.raises(ValueError, match="structure"):
        ga.jvp(loss_ga, (P, X), ({"W": v["W"]}, np.zeros_like(X)))


@pytest.mark.parametrize("jac", [ga.jacfwd, ga.jacrev])
def test_jacobians_of_dict_to_dict(jac):
    def f(d):
        return {"y": d["a"] * d["b"], "z": ga.sum(d["a"] ** 2)}
    d = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, -1.0])}
    J = jac(f)(d)
    np.testing.assert_allclose(J["y"]["a"], np.diag(d["b"]))
    np.testing.assert_allclose(J["y"]["b"], np.diag(d["a"]))
    np.testing.assert_allclose(J["z"]["a"], 2 * d["a"])
    np.testing.assert_allclose(J["z"]["b"], [0.0, 0.0])


def test_hessian_of_a_dict_argument_is_a_dict_of_dicts():
    f = lambda d: ga.sum(d["a"] ** 2 * d["b"])          # noqa: E731
    d = {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}
    H = ga.hessian(f)(d)
    Hag = autograd.hessian(lambda v: anp.sum(v[:2] ** 2 * v[2:]))(np.r_[d["a"], d["b"]])
    np.testing.assert_allclose(H["a"]["a"], Hag[:2, :2])
    np.testing.assert_allclose(H["a"]["b"], Hag[:2, 2:])
    np.testing.assert_allclose(H["b"]["a"], Hag[2:, :2])
    np.testing.assert_allclose(H["b"]["b"], Hag[2:, 2:])


# ---------------------------------------------------------------------------------------------
# has_aux (JAX's meaning)

def test_has_aux_on_grad_value_and_grad_vjp_and_jacobians():
    x = np.array([1.0, 2.0])

    def f(x):
        y = ga.sum(x ** 3)
        return y, {"y": y, "tag": "seen"}
    g, aux = ga.grad(f, has_aux=True)(x)
    np.testing.assert_allclose(g, 3 * x ** 2)
    assert aux["tag"] == "seen" and isinstance(aux["y"], np.ndarray)
    np.testing.assert_allclose(aux["y"], 9.0)
    (v, aux2), g2 = ga.value_and_grad(f, has_aux=True)(x)
    np.testing.assert_allclose([v, aux2["y"]], [9.0, 9.0])
    np.testing.assert_allclose(g2, g)
    out, fn, aux3 = ga.vjp(lambda x: (x * x, x.sum()), x, has_aux=True)
    np.testing.assert_allclose(fn(np.ones(2))[0], 2 * x)
    np.testing.assert_allclose(aux3, 3.0)
    for jac in (ga.jacfwd, ga.jacrev, ga.jacobian):
        J, a = jac(lambda x: (x * x, "aux"), has_aux=True)(x)
        np.testing.assert_allclose(J, np.diag(2 * x))
        assert a == "aux"


def test_has_aux_requires_a_pair():
    with pytest.raises(TypeError, match="has_aux"):
        ga.grad(lambda x: ga.sum(x), has_aux=True)(np.ones(2))


def test_has_aux_under_compile_and_nested():
    f = ga.compile(ga.value_and_grad(lambda x: (ga.sum(x * x), x * 2.0), has_aux=True))
    for x in (np.array([1.0, 2.0]), np.array([3.0, -1.0])):
        (v, aux), g = f(x)
        np.testing.assert_allclose(aux, 2 * x)
        np.testing.assert_allclose(g, 2 * x)
    assert f.replays == 1
    # inside an outer grad the aux output stays on the outer graph
    outer = ga.grad(lambda x: ga.sum(ga.grad(lambda y: (ga.sum(y ** 2), y * x), has_aux=True)(x)[1]))
    np.testing.assert_allclose(outer(np.array([1.0, 3.0])), [2.0, 6.0])


# ---------------------------------------------------------------------------------------------
# bare arrays where a tuple is expected

def test_jvp_accepts_bare_arrays():
    x, v = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, -1.0])
    y, t = ga.jvp(lambda a: a * a, x, v)
    np.testing.assert_allclose(t, 2 * x * v)
    y1, t1 = ga.jvp(lambda a: a * a, (x,), (v,))
    np.testing.assert_allclose(t, t1)


def test_jvp_with_mismatched_counts_says_what_to_pass():
    with pytest.raises(ValueError, match="one entry per argument"):
        ga.jvp(lambda a, b: a * b, (np.ones(2), np.ones(2)), (np.ones(2),))


# ---------------------------------------------------------------------------------------------
# ga.compile with trees

def test_compile_reads_arrays_inside_a_mutated_dict():
    """Regression: ga.compile keyed a dict argument by its identity and froze the arrays inside
    it as constants; after p["W"] = new, the replay returned the gradient of the old W."""
    f = lambda p, x: ga.sum(p["W"] * x)              # noqa: E731
    cf = ga.compile(ga.grad(f, argnums=1))
    p, x = {"W": np.ones(3)}, np.arange(3.0)
    np.testing.assert_allclose(cf(p, x), np.ones(3))
    p["W"] = np.full(3, 5.0)
    np.testing.assert_allclose(cf(p, x), np.full(3, 5.0))
    assert cf.replays == 1 and cf.traces == 1


def test_compile_replays_a_tree_gradient_and_retraces_on_new_structure():
    cg = ga.compile(ga.value_and_grad(loss_ga))
    for seed in range(3):
        r = np.random.default_rng(seed)
        p = {"W": r.standard_normal((3, 2)), "b": (r.standard_normal(2), r.standard_normal(()))}
        v, g = cg(p, X)
        np.testing.assert_allclose(v, loss_ag(p, X), rtol=1e-12)
        assert_tree_close(g, autograd.grad(loss_ag)(p, X), rtol=1e-12, atol=1e-14)
    assert cg.traces == 1 and cg.replays == 2
    q = {"W": P["W"], "b": [P["b"][0], P["b"][1]]}        # a list, not a tuple: a new program
    v, g = cg(q, X)
    assert isinstance(g["b"], list) and cg.traces == 2


def test_compile_keyword_arguments_are_inputs():
    cf = ga.compile(lambda x, *, scale: ga.sum(x * scale))
    x = np.ones(3)
    assert float(cf(x, scale=np.full(3, 2.0))) == 6.0
    assert float(cf(x, scale=np.full(3, 3.0))) == 9.0
    assert cf.replays == 1


# ---------------------------------------------------------------------------------------------
# functional training with a module's parameters as a dict

def _digits():
    sklearn = pytest.importorskip("sklearn.datasets")
    d = sklearn.load_digits()
    Xd = d.data / 16.0
    return Xd[:1200], d.target[:1200], Xd[1200:], d.target[1200:]


def test_functional_training_on_digits_matches_the_module_loop():
    Xtr, ytr, Xte, yte = _digits()
    model_a = ga.nn.MLP([64, 32, 10], rng=0)
    model_b = ga.nn.MLP([64, 32, 10], rng=0)
    opt = ga.optim.SGD(model_a.parameters(), lr=0.5)

    def loss(params, X, y):
        return ga.nn.cross_entropy(ga.nn.functional_call(model_b, params, X), y)
    step = ga.compile(ga.value_and_grad(loss))
    params = model_b.param_dict()
    for epoch in range(3):
        for i in range(0, len(Xtr), 100):
            Xb, yb = Xtr[i:i + 100], ytr[i:i + 100]
            opt.zero_grad()
            la = ga.nn.cross_entropy(model_a(Xb), yb)
            la.backward()
            opt.step()
            lb, g = step(params, Xb, yb)
            params = {k: params[k] - 0.5 * g[k] for k in params}
            np.testing.assert_allclose(lb, la.item(), rtol=1e-10)
    model_b.load_state_dict(params, strict=False)
    for (na, ta), (nb, tb) in zip(model_a.named_parameters(), model_b.named_parameters()):
        assert na == nb
        np.testing.assert_allclose(ta.data, tb.data, rtol=1e-9, atol=1e-12)
    acc = lambda m: np.mean(np.argmax(m(Xte).numpy(), axis=1) == yte)   # noqa: E731
    assert acc(model_a) == acc(model_b) > 0.8


def test_functional_call_restores_the_module_and_rejects_unknown_names():
    m = ga.nn.Linear(3, 2, rng=0)
    W = m.W
    out = ga.nn.functional_call(m, {"W": np.zeros((3, 2))}, np.ones((1, 3)))
    np.testing.assert_allclose(out.numpy(), m.b.numpy()[None])
    assert m.W is W
    with pytest.raises(KeyError, match="no parameters"):
        ga.nn.functional_call(m, {"V": np.zeros(1)}, np.ones((1, 3)))


def test_compile_traces_numpy_arithmetic_and_indexing_on_array_arguments():
    """Regression: array arguments reached f as plain arrays, so `x * y` (NumPy's) and `x[idx]`
    (an index array baked into getitem's parameters) were computed once and frozen: the
    replays returned the first call's numbers."""
    x = np.arange(5.0)
    cf = ga.compile(lambda x, y: ga.sum(x * y + 1.0))
    assert float(cf(x, np.full(5, 2.0))) == 25.0
    assert float(cf(x, np.full(5, 3.0))) == 35.0
    ci = ga.compile(lambda x, idx: ga.sum(x[idx]))
    assert float(ci(x, np.array([0, 1]))) == 1.0
    assert float(ci(x, np.array([3, 4]))) == 7.0
    cm = ga.compile(lambda x, m: ga.sum(ga.where(m, x, 0.0)))
    assert float(cm(x, x > 2)) == 7.0
    assert float(cm(x, x < 2)) == 1.0
    assert cf.replays == ci.replays == cm.replays == 1


def test_compile_keeps_0d_gradients_0d():
    """Regression: a compiled sweep's 0-d results came back with shape (1,)
    (np.ascontiguousarray promotes 0-d arrays)."""
    f = ga.compile(ga.grad(lambda m: m * m))
    for v in (0.7, 0.8):
        g = f(np.array(v))
        assert g.shape == () and float(g) == 2 * v
    h = ga.compile(ga.value_and_grad(lambda a, b: a * b, argnums=(0, 1)))
    for a, b in ((0.7, 2.0), (0.8, 3.0)):
        v, (ga_, gb) = h(np.array(a), np.array(b))
        assert v.shape == ga_.shape == gb.shape == ()
        assert (float(ga_), float(gb)) == (b, a)
    assert f.replays == h.replays == 1
