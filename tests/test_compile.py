"""ga.compile: replays give the eager numbers (to 1e-12) for transforms and whole training
steps, retrace on new shapes and dtypes, bind new inputs wherever the trace met them, keep
outputs fresh, and fall back to eager (with a warning) where a trace cannot be replayed."""
import warnings

import numpy as np
import pytest

import graphad as ga
from graphad import nn, optim
from graphad.compile import TraceWarning, effect


def mlp_loss(W1, b1, W2, b2, X, y):
    h = ga.tanh(X @ W1 + b1)
    return nn.cross_entropy(h @ W2 + b2, y)


def mlp_args(rng, batch=8):
    return [rng.standard_normal((4, 6)), rng.standard_normal(6), rng.standard_normal((6, 3)),
            rng.standard_normal(3), rng.standard_normal((batch, 4)), rng.integers(0, 3, batch)]


def assert_close(a, b, tol=1e-12):
    if isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_close(x, y, tol)
        return
    a = a.numpy() if isinstance(a, ga.Tensor) else np.asarray(a)
    b = b.numpy() if isinstance(b, ga.Tensor) else np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# transforms

def test_value_and_grad_matches_eager_on_new_inputs():
    rng = np.random.default_rng(0)
    vg = ga.value_and_grad(mlp_loss, argnums=(0, 1, 2, 3))
    cvg = ga.compile(vg)
    for _ in range(4):
        args = mlp_args(rng)
        got, want = cvg(*args), vg(*args)
        assert isinstance(got[0], np.ndarray) and isinstance(got[1][0], np.ndarray)
        assert_close(got, want)
    assert cvg.traces == 1 and cvg.replays == 3
    # the reverse sweep is traced flat: its rules' kernels are instructions of the program,
    # and no sweep is rerun (tests/test_compile_flat.py checks more)
    assert cvg.stats()[0]["sweeps"] == 0


def test_a_replay_does_not_run_the_python_function():
    """The replay is the recorded program: f's body (and so its Python-level dispatch) runs
    only when tracing; the primitives' forwards still run on every call."""
    calls = []
    forwards = []

    def loss(W, X):
        calls.append(1)
        return ga.sum(ga.tanh(X @ W))

    cvg = ga.compile(ga.value_and_grad(loss))
    tanh = ga._elementwise.P_TANH
    rng = np.random.default_rng(3)
    with pytest.MonkeyPatch.context() as mp:
        fwd = tanh.fwd
        mp.setattr(tanh, "kernel", 0)        # route tanh through fwd, so that it is counted
        mp.setattr(tanh, "fwd", lambda *a: forwards.append(1) or fwd(*a))
        for k in range(4):
            W, X = rng.standard_normal((3, 2)), rng.standard_normal((5, 3))
            assert_close(cvg(W, X), ga.value_and_grad(loss)(W, X))
    assert cvg.traces == 1 and cvg.replays == 3
    assert len(calls) == 1 + 4                # the trace, and the four eager references
    assert len(forwards) == 1 + 3 + 4         # trace, three replays, four eager references


def test_custom_rules_replay():
    @ga.custom_vjp
    def cube(x):
        return x ** 3

    cube.defvjp(lambda x: (cube(x), x), lambda x, g: (3.0 * x ** 2 * g,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # no "running it eagerly"
        cg = ga.compile(ga.grad(lambda x: ga.sum(ga.sin(cube(x)))))
        for k in range(3):
            x = np.linspace(-1, 1, 4) + k
            np.testing.assert_allclose(cg(x), np.cos(x ** 3) * 3 * x ** 2, rtol=1e-13)
    assert cg.replays == 2


def test_retrace_on_new_batch_size_and_dtype():
    rng = np.random.default_rng(1)
    vg = ga.value_and_grad(mlp_loss, argnums=(0, 2))
    cvg = ga.compile(vg)
    for batch in (8, 16, 8, 5):
        args = mlp_args(rng, batch)
        assert_close(cvg(*args), vg(*args))
    assert cvg.traces == 3
    args32 = [a.astype(np.float32) if a.dtype == np.float64 else a for a in mlp_args(rng, 5)]
    got = cvg(*args32)
    assert got[0].dtype == np.float32 and got[1][0].dtype == np.float32
    assert_close(got, vg(*args32), tol=1e-6)
    assert cvg.traces == 4


def test_grad_vjp_and_jvp_replay():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((5, 5))

    def f(x):
        return ga.sin(A @ x) * x

    cg = ga.compile(ga.grad(lambda x: ga.sum(f(x) ** 2)))
    cj = ga.compile(lambda x, v: ga.jvp(f, (x,), (v,)))
    cr = ga.compile(ga.jacrev(f))            # reshapes its result: a view of the sweep
    for _ in range(3):
        x, v = rng.standard_normal(5), rng.standard_normal(5)
        assert_close(cg(x), ga.grad(lambda x: ga.sum(f(x) ** 2))(x))
        assert_close(cj(x, v), ga.jvp(f, (x,), (v,)))
        assert_close(cr(x), ga.jacrev(f)(x))


def test_labels_as_index_arrays_are_rebound():
    """An input that a primitive keeps in its parameters (integer indices) is substituted."""
    rng = np.random.default_rng(3)

    def loss(z, y):
        return -ga.mean(ga.log_softmax(z, axis=-1)[np.arange(len(y)), y])

    cg = ga.compile(ga.value_and_grad(loss))
    for _ in range(3):
        z, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
        assert_close(cg(z, y), ga.value_and_grad(loss)(z, y))


def test_outputs_are_fresh_and_inputs_untouched():
    rng = np.random.default_rng(4)
    cf = ga.compile(lambda x: (ga.exp(x), ga.sum(x * x)))
    x1, x2 = rng.standard_normal(3), rng.standard_normal(3)
    keep1 = x1.copy()
    a1, s1 = cf(x1)
    a2, s2 = cf(x2)
    a3, s3 = cf(x1)
    assert isinstance(a1, ga.Tensor) and not a1.requires_grad
    np.testing.assert_array_equal(a1.numpy(), np.exp(keep1))       # not overwritten by replays
    np.testing.assert_array_equal(a2.numpy(), np.exp(x2))
    np.testing.assert_array_equal(a3.numpy(), a1.numpy())
    np.testing.assert_array_equal(x1, keep1)


def test_static_arguments_and_kwargs():
    calls = []

    def f(x, power, scale=1.0):
        calls.append(power)
        return ga.sum(ga.power(x, power)) * scale

    cf = ga.compile(f)
    x = np.arange(1.0, 4.0)
    assert float(cf(x, 2)) == 14.0
    assert float(cf(x + 1, 2)) == 29.0
    assert float(cf(x, 3)) == 36.0                   # a new static value: a new trace
    assert float(cf(x, 3, scale=2.0)) == 72.0
    assert calls == [2, 3, 3]


def test_returning_a_python_float_is_an_error():
    cf = ga.compile(lambda x: float(ga.sum(x)))
    with pytest.raises(TypeError, match="float"), pytest.warns(TraceWarning, match="float"):
        cf(np.ones(3))


# ---------------------------------------------------------------------------------------------
# training steps

def make_step(seed, opt_kind, dropout=False, schedule=False):
    layers = [nn.Linear(5, 16, rng=seed), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(0.2, rng=seed + 100))
    layers += [nn.Linear(16, 16, rng=seed + 1), nn.Tanh(), nn.Linear(16, 3, rng=seed + 2)]
    model = nn.Sequential(*layers)
    if opt_kind == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                        weight_decay=1e-3)
    else:
        opt = optim.AdamW(model.parameters(), lr=0.01)
    sched = optim.StepLR(opt, step_size=3, gamma=0.5) if schedule else None

    def step(X, y):
        opt.zero_grad()
        loss = nn.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        return loss
    return model, opt, step


@pytest.mark.parametrize("opt_kind, dropout, schedule", [("sgd", False, False),
                                                         ("adamw", False, True),
                                                         ("sgd", True, True)])
def test_training_trajectory_matches_eager(opt_kind, dropout, schedule):
    m_eager, o_eager, eager = make_step(0, opt_kind, dropout, schedule)
    m_comp, o_comp, comp = make_step(0, opt_kind, dropout, schedule)
    comp = ga.compile(comp)
    rng = np.random.default_rng(5)
    for k in range(20):
        X, y = rng.standard_normal((12, 5)), rng.integers(0, 3, 12)
        le, lc = eager(X, y), comp(X, y)
        assert isinstance(lc, ga.Tensor)
        assert abs(float(le) - float(lc)) <= 1e-12 * max(1.0, abs(float(le))), k
    assert comp.traces == 1
    for (name, p), q in zip(m_eager.named_parameters(), m_comp.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-12, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(q.grad, p.grad, rtol=1e-12, atol=1e-12, err_msg=name)
    assert o_comp.param_groups[0]["lr"] == o_eager.param_groups[0]["lr"]


def test_training_step_retraces_on_a_new_batch_size():
    m_eager, _, eager = make_step(1, "sgd")
    m_comp, _, comp = make_step(1, "sgd")
    comp = ga.compile(comp)
    rng = np.random.default_rng(6)
    for batch in (8, 8, 3, 3, 8):
        X, y = rng.standard_normal((batch, 5)), rng.integers(0, 3, batch)
        assert abs(float(eager(X, y)) - float(comp(X, y))) < 1e-12
    assert comp.traces == 2
    for p, q in zip(m_eager.parameters(), m_comp.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=1e-12, atol=1e-12)


def test_gradient_accumulation_without_zero_grad():
    """Without zero_grad, backward accumulates into .grad, replayed or not."""
    w_e = ga.tensor(np.ones(3), requires_grad=True)
    w_c = ga.tensor(np.ones(3), requires_grad=True)

    def step(w, x):
        ga.sum(ga.sin(w * x)).backward()
        return w.grad

    comp = ga.compile(lambda x: step(w_c, x))
    for k in range(3):
        x = np.full(3, 0.5 + k)
        step(w_e, x)
        comp(x)
        np.testing.assert_allclose(w_c.grad, w_e.grad, rtol=1e-14)


def test_compiled_call_inside_a_trace_and_effects():
    inner = ga.compile(lambda x: ga.exp(x))
    log = []

    def outer(x):
        y = inner(x) * 2.0                  # a compiled function inside a trace: inlined
        effect(log.append, "ran")           # recorded, and run again by every replay
        return y

    cf = ga.compile(outer)
    for k in range(3):
        x = np.full(2, float(k))
        np.testing.assert_allclose(cf(x).numpy(), 2 * np.exp(x))
    assert log == ["ran"] * 3


def test_higher_order_sweeps_replay():
    """grad of grad records its inner sweep (create_graph): the program holds the nodes that
    sweep made and recomputes them, so the replay is compiled, not eager."""
    inner = ga.grad(lambda x: ga.sum(ga.sin(x)))
    f = ga.grad(lambda x: ga.sum(inner(x)))
    cf = ga.compile(lambda x: f(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(3):
            x = np.array([0.3, 1.2]) + k
            np.testing.assert_allclose(cf(x), -np.sin(x), rtol=1e-14)
    assert cf.replays == 2 and not cf.stats()[0]["eager"]


def test_unreplayable_trace_runs_eagerly_with_a_warning():
    """backward(create_graph=True) writes graphs into .grad, which a program cannot recompute."""
    def f(x):
        t = ga.tensor(x, requires_grad=True)
        ga.sum(t ** 3).backward(create_graph=True)
        return ga.sum(t.grad)
    cf = ga.compile(f)
    x = np.array([0.3, 1.2])
    with pytest.warns(RuntimeWarning, match="eager"):
        got = cf(x)
    np.testing.assert_allclose(got.numpy(), np.sum(3 * x ** 2), rtol=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(cf(x + 1).numpy(), np.sum(3 * (x + 1) ** 2), rtol=1e-14)


def test_compile_time_is_milliseconds():
    _, _, step = make_step(2, "adamw")
    comp = ga.compile(step)
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((32, 5)), rng.integers(0, 3, 32)
    comp(X, y)
    assert comp.compile_ms < 250                 # trace + one eager step, usually ~1 ms
    stats = comp.stats()[0]
    assert not stats["eager"] and stats["primitives"] >= 6 and stats["effects"] == 2


def test_constant_tensor_arguments_are_not_rebound():
    cf = ga.compile(lambda x, y: (ga.sum(x * y), y))
    a, b = ga.tensor([1.0, 2.0]), ga.tensor([3.0, 4.0])
    s1, y1 = cf(np.ones(2), a)
    s2, y2 = cf(np.ones(2), b)
    assert float(s1) == 3.0 and float(s2) == 7.0
    np.testing.assert_array_equal(a.numpy(), [1.0, 2.0])       # the caller's Tensor untouched
    np.testing.assert_array_equal(y2.numpy(), [3.0, 4.0])


def test_aliased_arguments_are_part_of_the_signature():
    cf = ga.compile(lambda x, y: ga.sum(x * y))
    x = np.arange(3.0)
    assert float(cf(x, x)) == 5.0
    assert float(cf(x, np.ones(3))) == 3.0          # not the (x, x) trace
    assert cf.traces == 2


# ---------------------------------------------------------------------------------------------
# every primitive's rules, recorded and replayed

from prim_cases import CASE_LIST, draw, rng_for, value   # noqa: E402


@pytest.mark.parametrize("name,label,f,specs",
                         [c for c in CASE_LIST if c[0] != "dropout"],   # draws a new mask
                         ids=[f"{c[0]}-{c[1]}" for c in CASE_LIST if c[0] != "dropout"])
def test_every_primitive_under_compiled_second_order(name, label, f, specs):
    """hessian, hvp and grad-of-grad of <u, f(x)> compiled once and replayed on NEW values equal
    the eager results: any value a rule computes outside the primitives (a mask, tie weights,
    a one-hot) would be frozen at the traced values and show here."""
    rng = rng_for("compile" + name + label)
    first = [np.asarray(draw(s, rng)) for s in specs]       # arrays: scalars would be static
    u = rng.standard_normal(np.shape(value(f(*first))))

    def scalar(x0, *rest):
        return ga.sum(f(x0, *rest) * u)

    # each also returns a first derivative computed by the recorded sweep, where a frozen mask
    # shows (second derivatives of piecewise-linear functions do not depend on it)
    transforms = {
        "hessian": ga.hessian(scalar),
        "hvp (grad, Hv)": lambda *a: ga.hvp(lambda x0: scalar(x0, *a[1:]), a[0],
                                            np.ones_like(a[0])),
        "grad of <grad, x>": ga.grad(lambda *a: ga.sum(ga.grad(scalar)(*a) * a[0])),
    }
    for tname, t in transforms.items():
        comp = ga.compile(t)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            comp(*first)
            for _ in range(2):
                args = [np.asarray(draw(s, rng)) for s in specs]
                got, want = comp(*args), t(*args)
                for g, w in zip(got if isinstance(got, tuple) else (got,),
                                want if isinstance(want, tuple) else (want,)):
                    np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12,
                                               err_msg=f"{tname} replayed on new values")
        assert comp.replays == 2, tname


def test_labels_are_rebound_inside_recorded_sweeps():
    """hvp of a cross-entropy loss: the recorded sweep's one-hot of the labels is recomputed
    from each call's labels (a frozen one would give the traced labels' gradient)."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((6, 4))

    def loss(W, X, y):
        return nn.cross_entropy(ga.tanh(X @ W), y)

    f = lambda W, X, y, V: ga.hvp(lambda w: loss(w, X, y), W, V)
    comp = ga.compile(f)
    W, V = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    comp(W, X, rng.integers(0, 3, 6), V)
    for _ in range(3):
        y = rng.integers(0, 3, 6)
        assert_close(comp(W, X, y, V), f(W, X, y, V), tol=1e-11)
    assert comp.replays == 3


def test_nested_forward_mode_replays():
    """jacfwd of jacfwd and grad of a jvp record their inner forward sweep; both replay."""
    A = np.random.default_rng(12).standard_normal((3, 3))
    f = lambda x: ga.tanh(A @ x) * ga.maximum(x, 0.1)
    v = np.array([0.3, -0.2, 0.5])
    cases = {"jacfwd(jacfwd)": ga.jacfwd(ga.jacfwd(f)),
             "grad(jvp)": ga.grad(lambda x: ga.sum(ga.jvp(f, (x,), (v,))[1] ** 2))}
    for name, t in cases.items():
        comp = ga.compile(t)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for k in range(3):
                x = np.array([0.4, -0.7, 1.1]) * (k + 1)
                np.testing.assert_allclose(comp(x), t(x), rtol=1e-12, atol=1e-13, err_msg=name)
        assert comp.replays == 2, name


def test_recorded_sweep_through_a_custom_rule_runs_eagerly():
    """A custom rule's residuals come from the user's forward, outside the program: a compiled
    hessian through one must not replay frozen residuals (it gave wrong numbers); it runs eagerly
    with a warning, and first-order programs through custom rules still replay."""
    @ga.custom_vjp
    def f(x):
        return ga.sin(x) * x

    f.defvjp(lambda x: (f(x), (ga.cos(x), ga.sin(x), x)),
             lambda r, g: (g * (r[0] * r[2] + r[1]),))
    t = ga.hessian(lambda x: ga.sum(f(x) ** 2))
    comp = ga.compile(t)
    x = np.array([0.3, 0.6])
    with pytest.warns(RuntimeWarning, match="custom rule"):
        comp(x)
    np.testing.assert_allclose(comp(x + 1), t(x + 1), rtol=1e-13)
    assert comp.replays == 0


def _square_sum_grad(x):            # module level: pickle sends functions by name
    return ga.grad(lambda v: ga.sum(v * v))(x)


def test_compiled_functions_pickle():
    """A pickled compiled function (to a process pool, say) traces again where it lands."""
    import pickle
    comp = ga.compile(_square_sum_grad)
    x = np.arange(3.0)
    comp(x)
    copy = pickle.loads(pickle.dumps(comp))
    np.testing.assert_allclose(copy(x), 2 * x)
    np.testing.assert_allclose(copy(x + 1), 2 * (x + 1))
    assert copy.replays == 1 and copy.traces == 2
    np.testing.assert_allclose(comp(x + 2), 2 * (x + 2))


def test_regression_comparisons_of_traced_values_are_recomputed_on_replay():
    """Regression: a comparison of traced values (x > 0) was a constant in the program, so
    ga.where(x > 0, ...) kept the traced mask: a replay at [-1, 1, -2] returned -3 (the sum
    over the first call's positive entries) and a gradient of the wrong pattern."""
    a, b = np.array([1.0, -1.0, 2.0]), np.array([-1.0, 1.0, -2.0])
    f = ga.compile(lambda x: ga.sum(ga.where(x > 0, x, 0.0)))
    assert float(f(a)) == 3.0 and float(f(b)) == 1.0
    g = ga.compile(ga.grad(lambda x: ga.sum(ga.where(x > 0, x * x, 0.0))))
    np.testing.assert_array_equal(g(a), [2.0, 0.0, 4.0])
    np.testing.assert_array_equal(g(b), [0.0, 2.0, 0.0])
    h = ga.compile(ga.grad(lambda x: ga.sum(ga.where(np.greater(x, 0), x, -x))))   # NumPy's
    np.testing.assert_array_equal(h(a), [1.0, -1.0, 1.0])
    np.testing.assert_array_equal(h(b), [-1.0, 1.0, -1.0])
    assert f.replays == g.replays == h.replays == 1


def test_regression_indexing_by_a_traced_mask_runs_eagerly_not_frozen():
    """x[x > 0] has a shape that follows the data: the trace cannot replay it, so the function
    runs eagerly (with a warning) instead of returning the first call's selection."""
    m = ga.compile(lambda x: ga.sum(x[x > 0]))
    with pytest.warns(RuntimeWarning, match="cannot replay getitem"):
        assert float(m(np.array([1.0, -1.0, 2.0]))) == 3.0
    assert float(m(np.array([-1.0, 1.0, -2.0]))) == 1.0
    assert m.replays == 0
