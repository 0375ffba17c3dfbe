"""ga.random: reparameterized samples (values, shapes, dtypes, gradients in every mode, compile
replays with fresh noise), the sphere, and the pathwise vs score-function estimators."""
import pickle
import warnings

import numpy as np
import pytest

import graphad as ga
from graphad import random as gr


def gen(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------
# values and shapes

def test_normal_uniform_equal_numpy_for_the_same_seed():
    mu, sigma = np.array([0.5, -1.0, 2.0]), np.array([[1.0], [0.1]])
    np.testing.assert_allclose(gr.normal(mu, sigma, rng=gen(3)).numpy(),
                               gen(3).normal(mu, sigma), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(gr.normal(mu, 2.0, size=(4, 3), rng=gen(4)).numpy(),
                               gen(4).normal(mu, 2.0, size=(4, 3)), rtol=1e-14, atol=1e-14)
    lo, hi = np.array([0.0, 1.0]), np.array([[2.0, 5.0], [1.0, 1.5], [3.0, 3.0]])
    np.testing.assert_allclose(gr.uniform(lo, hi, rng=gen(5)).numpy(),
                               gen(5).uniform(lo, hi), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(gr.uniform(size=7, rng=gen(6)).numpy(), gen(6).uniform(size=7),
                               rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("shapes, size, expected", [
    (((), ()), None, ()),
    (((3,), ()), None, (3,)),
    (((2, 1), (3,)), None, (2, 3)),
    (((), ()), 5, (5,)),
    (((3,), (1,)), (4, 3), (4, 3)),
    (((2, 1), ()), (2, 2, 5), (2, 2, 5)),
])
def test_shapes_broadcast_like_numpy(shapes, size, expected):
    a, b = (np.full(s, 0.5) for s in shapes)
    for fn in (gr.normal, gr.uniform):
        assert fn(a, b + 1.0, size=size, rng=gen()).shape == expected
    assert np.shape(gen().normal(a, b, size=size)) == expected


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"normal.*\(3,\).*size \(2,\)"):
        gr.normal(np.zeros(3), 1.0, size=2, rng=gen())
    with pytest.raises(ValueError, match=r"uniform.*do not broadcast to size \(3, 1\)"):
        gr.uniform(0.0, np.ones(2), size=(3, 1), rng=gen())
    with pytest.raises(ValueError, match="sigma < 0"):
        gr.normal(0.0, -1.0, rng=gen())
    with pytest.raises(TypeError, match=r"default_rng\(3\)"):
        gr.normal(0.0, 1.0, rng=3)
    with pytest.raises(TypeError, match="Generator"):
        gr.uniform(rng=np.random.RandomState(0))
    with pytest.raises(TypeError, match="complex"):
        gr.normal(np.zeros(2, complex), 1.0, rng=gen())
    with pytest.raises(ValueError, match="positive integer"):
        gr.sphere(0)
    with pytest.raises(ValueError, match="shape"):
        gr.reparam_grad(lambda x: ga.sum(x), (0.0, 1.0), 10, rng=gen())   # f must give (n,)


def test_float32_parameters_give_float32_samples_and_gradients():
    mu, sigma = np.float32([0.5, 1.0]), np.float32(2.0)
    for fn, (a, b) in ((gr.normal, (mu, sigma)), (gr.uniform, (mu, mu + sigma))):
        assert fn(a, b, size=(3, 2), rng=gen()).dtype == np.float32
        assert fn(a, 1.0, rng=gen()).dtype == np.float32         # a Python number stays weak
        g = ga.grad(lambda a, b: ga.sum(fn(a, b, size=(3, 2), rng=gen()) ** 2),
                    argnums=(0, 1))(a, b)
        assert g[0].dtype == np.float32 and g[1].dtype == np.float32
    assert gr.normal(0.0, 1.0, size=3, rng=gen()).dtype == np.float64
    assert gr.normal(np.arange(3), 1, rng=gen()).dtype == np.float64      # ints: float64
    assert gr.sphere(3, 4, rng=gen(), dtype=np.float32).dtype == np.float32


def test_float32_gradient_matches_float64_with_the_same_noise():
    eps = gen(1).standard_normal((6, 2), dtype=np.float32)
    mu, sigma = np.float32([0.5, -1.0]), np.float32([1.5, 0.5])

    def loss(m, s):
        return ga.sum(ga.sin(gr.normal(m, s, size=(6, 2), rng=gen(1))))

    g32 = ga.grad(loss, argnums=(0, 1))(mu, sigma)
    x = mu.astype(np.float64) + sigma.astype(np.float64) * eps
    np.testing.assert_allclose(g32[0], np.cos(x).sum(0), rtol=1e-5)
    np.testing.assert_allclose(g32[1], (np.cos(x) * eps).sum(0), rtol=1e-5)


def test_default_generator_and_seed():
    gr.seed(11)
    a = gr.normal(0.0, 1.0, size=4).numpy()
    b = gr.uniform(size=2).numpy()
    gr.seed(11)
    np.testing.assert_array_equal(gr.normal(0.0, 1.0, size=4).numpy(), a)
    np.testing.assert_array_equal(gr.uniform(size=2).numpy(), b)
    assert not np.array_equal(gr.normal(0.0, 1.0, size=4).numpy(), a)     # the state advanced
    assert gr.default_generator() is gr.default_generator()


# ----------------------------------------------------------------------------------------------
# gradients

def test_gradient_is_the_sample_path_derivative():
    # x = mu + sigma eps: d sum(x) / d mu = n, d sum(x) / d sigma = sum(eps); uniform likewise
    mu, sigma = 0.3, 1.7
    eps = gen(2).standard_normal(10)
    g = ga.grad(lambda m, s: ga.sum(gr.normal(m, s, size=10, rng=gen(2))), argnums=(0, 1))(
        mu, sigma)
    np.testing.assert_allclose(g, (10.0, eps.sum()), rtol=1e-13)
    u = gen(2).random(10)
    g = ga.grad(lambda lo, hi: ga.sum(gr.uniform(lo, hi, size=10, rng=gen(2))),
                argnums=(0, 1))(-1.0, 2.0)
    np.testing.assert_allclose(g, ((1 - u).sum(), u.sum()), rtol=1e-13)


@pytest.mark.parametrize("dist", ["normal", "uniform"])
def test_gradients_flow_to_every_parameter_vs_finite_differences(dist):
    """Both modes against central differences, the noise fixed by a Generator of one seed."""
    fn = getattr(gr, dist)
    a = np.array([0.5, -0.3, 1.2])
    b = np.array([[1.5], [0.7]]) + (2.0 if dist == "uniform" else 0.0)

    def f(a, b):
        x = fn(a, b, size=(4, 2, 3), rng=gen(9))
        return ga.sum(ga.sin(x) * x, axis=0)

    ga.check_grad(f, a, b, modes=("rev", "fwd"))
    # and by graphad's Jacobians against the finite-difference Jacobian, entry by entry
    from prim_cases import fd_jacobian
    for i in (0, 1):
        J = fd_jacobian(lambda *ab: f(*ab), [a, b], i)
        np.testing.assert_allclose(ga.jacrev(f, argnums=i)(a, b), J, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ga.jacfwd(f, argnums=i)(a, b), J, rtol=1e-6, atol=1e-8)


def test_second_order_through_the_sample():
    def f(p):
        x = gr.normal(p[0], p[1], size=8, rng=gen(4))
        return ga.sum(ga.sin(x))

    p = np.array([0.4, 1.3])
    eps = gen(4).standard_normal(8)
    x = p[0] + p[1] * eps
    # d2/dmu2 = -sum sin x, d2/dmu dsigma = -sum eps sin x, d2/dsigma2 = -sum eps^2 sin x
    H = -np.array([[np.sum(np.sin(x)), np.sum(eps * np.sin(x))],
                   [np.sum(eps * np.sin(x)), np.sum(eps ** 2 * np.sin(x))]])
    np.testing.assert_allclose(ga.hessian(f)(p), H, rtol=1e-12)
    np.testing.assert_allclose(ga.jacfwd(ga.jacrev(f))(p), H, rtol=1e-12)
    _, hv = ga.hvp(f, (p,), (np.array([1.0, -2.0]),))
    np.testing.assert_allclose(hv, H @ [1.0, -2.0], rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# ga.compile: fresh noise on every replay, the same numbers as eager for the same seed

def test_compile_replay_draws_fresh_noise_and_the_same_seed_reproduces():
    def loss(mu, sigma, rng):
        x = gr.normal(mu, sigma, size=(50, 2), rng=rng)
        u = gr.uniform(0.0, sigma, size=(50, 2), rng=rng)
        return ga.mean((x - u) ** 2)

    rng_c, rng_e = gen(5), gen(5)
    step = ga.compile(ga.value_and_grad(lambda m, s: loss(m, s, rng_c), argnums=(0, 1)))
    eager = ga.value_and_grad(lambda m, s: loss(m, s, rng_e), argnums=(0, 1))
    # (0-d parameters would meet a ga.compile quirk: their gradients come back with shape (1,))
    mu, sigma = np.array([0.7, -0.2]), np.array([1.3, 0.4])
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # no eager fallback
        for _ in range(4):
            (v, g), (ve, ge) = step(mu, sigma), eager(mu, sigma)
            np.testing.assert_allclose(v, ve, rtol=1e-14)
            np.testing.assert_allclose(g, ge, rtol=1e-13)
            seen.append(float(v))
    assert step.traces == 1 and step.replays == 3
    assert len(set(seen)) == 4                       # fresh noise each call


def test_compiled_training_step_with_sphere_draws_fresh_points():
    rng = gen(8)
    w = ga.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    opt = ga.optim.SGD([w], lr=0.0)                   # lr 0: the same w, the noise decides

    def step():
        opt.zero_grad()
        p = gr.sphere(3, size=5, rng=rng)
        loss = ga.sum((p @ w) ** 2)
        loss.backward()
        opt.step()
        return loss, p

    step = ga.compile(step)
    (l1, p1), (l2, p2), (l3, p3) = step(), step(), step()
    assert step.replays == 2
    p1, p2, p3 = p1.numpy(), p2.numpy(), p3.numpy()
    assert not np.allclose(p2, p3) and not np.allclose(p1, p2)
    np.testing.assert_allclose(np.linalg.norm(p3, axis=-1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(l3, np.sum((p3 @ w.numpy()) ** 2), rtol=1e-13)
    np.testing.assert_allclose(w.grad, 2 * p3.T @ (p3 @ w.numpy()), rtol=1e-12)


def _noisy_sum(m):
    return ga.sum(gr.normal(m, 1.0, size=3, rng=np.random.default_rng(1)))


def test_compiled_function_with_noise_pickles():
    step = ga.compile(_noisy_sum)
    step(np.zeros(3))
    again = pickle.loads(pickle.dumps(step))
    np.testing.assert_allclose(again(np.zeros(3)), gen(1).normal(0, 1, 3).sum(), rtol=1e-14)


# ----------------------------------------------------------------------------------------------
# the sphere

def test_sphere_points_are_unit_and_isotropic():
    n, N = 4, 20000
    p = gr.sphere(n, size=N, rng=gen(12)).numpy()
    assert p.shape == (N, n)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, rtol=1e-14)
    # each coordinate has mean 0 and variance 1/n (E[p p^T] = I / n): mean within 4 stderr
    assert np.all(np.abs(p.mean(0)) < 4 * np.sqrt(1.0 / n / N))
    np.testing.assert_allclose(p.T @ p / N, np.eye(n) / n, atol=0.01)
    assert gr.sphere(3, rng=gen()).shape == (3,)
    assert gr.sphere(2, size=(2, 3), rng=gen()).shape == (2, 3, 2)
    np.testing.assert_array_equal(gr.sphere(5, 7, rng=gen(2)).numpy(),
                                  gr.sphere(5, 7, rng=gen(2)).numpy())


def test_sphere_in_two_dimensions_has_uniform_angles():
    p = gr.sphere(2, size=40000, rng=gen(13)).numpy()
    counts, _ = np.histogram(np.arctan2(p[:, 1], p[:, 0]), bins=8, range=(-np.pi, np.pi))
    expected = 40000 / 8
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


# ----------------------------------------------------------------------------------------------
# the estimators: E[(mu + sigma z)^2] = mu^2 + sigma^2, gradient (2 mu, 2 sigma)

MU, SIGMA, N = 1.0, 2.0, 4000


def square(x):
    return x * x


def test_reparameterized_gradient_is_unbiased_within_four_standard_errors():
    est = gr.reparam_grad(square, (MU, SIGMA), N, rng=gen(20))
    for g, se, exact in zip(est.grad, est.stderr, (2 * MU, 2 * SIGMA)):
        assert abs(g - exact) < 4 * se
    # the per-sample estimates are the exact sample-path derivatives: 2 x and 2 x eps
    eps = gen(20).standard_normal(N)
    x = MU + SIGMA * eps
    np.testing.assert_allclose(est.samples[0], 2 * x, rtol=1e-13)
    np.testing.assert_allclose(est.samples[1], 2 * x * eps, rtol=1e-13)
    # and its mean is ga.grad of the Monte Carlo average, on the same noise
    g = ga.grad(lambda m, s: ga.mean(square(gr.normal(m, s, size=N, rng=gen(20)))),
                argnums=(0, 1))(MU, SIGMA)
    np.testing.assert_allclose(est.grad, g, rtol=1e-12)
    # the per-sample variances are near their exact values 4 sigma^2 and 4 (mu^2 + 2 sigma^2)
    np.testing.assert_allclose(est.variance, (4 * SIGMA ** 2, 4 * (MU ** 2 + 2 * SIGMA ** 2)),
                               rtol=0.1)


@pytest.mark.parametrize("baseline", [None, "mean", 5.0])
def test_score_function_is_unbiased_but_has_larger_variance(baseline):
    sf = gr.score_function_grad(square, (MU, SIGMA), N, rng=gen(21), baseline=baseline)
    rp = gr.reparam_grad(square, (MU, SIGMA), N, rng=gen(21))
    for g, se, exact in zip(sf.grad, sf.stderr, (2 * MU, 2 * SIGMA)):
        assert abs(g - exact) < 4 * se
    for v_sf, v_rp in zip(sf.variance, rp.variance):
        assert v_rp < v_sf


def test_score_function_per_sample_terms():
    est = gr.score_function_grad(square, (MU, SIGMA), 50, rng=gen(22))
    x = gen(22).normal(MU, SIGMA, 50)
    # d/dmu log p = (x - mu) / sigma^2, d/dsigma log p = ((x - mu)^2 - sigma^2) / sigma^3
    np.testing.assert_allclose(est.samples[0], x ** 2 * (x - MU) / SIGMA ** 2, rtol=1e-12)
    np.testing.assert_allclose(est.samples[1],
                               x ** 2 * ((x - MU) ** 2 - SIGMA ** 2) / SIGMA ** 3, rtol=1e-12)
    loo = gr.score_function_grad(square, (MU, SIGMA), 50, rng=gen(22), baseline="mean")
    b = (np.sum(x ** 2) - x ** 2) / 49
    np.testing.assert_allclose(loo.samples[0], (x ** 2 - b) * (x - MU) / SIGMA ** 2, rtol=1e-12)


def test_estimators_with_vector_parameters_and_custom_distributions():
    mu, sigma = np.array([0.5, -1.0, 2.0]), np.array(1.5)

    def f(x):                                        # (n, 3) -> (n,)
        return ga.sum(x * x, axis=1) if isinstance(x, ga.Tensor) else np.sum(x * x, axis=1)

    rp = gr.reparam_grad(f, (mu, sigma), N, rng=gen(23))
    assert rp.samples[0].shape == (N, 3) and rp.samples[1].shape == (N,)
    exact = (2 * mu, 2 * 3 * sigma)                  # E f = |mu|^2 + 3 sigma^2
    for g, se, e in zip(rp.grad, rp.stderr, exact):
        assert np.all(np.abs(g - e) < 4 * se)
    sf = gr.score_function_grad(f, (mu, sigma), N, rng=gen(23), baseline="mean")
    for g, se, e in zip(sf.grad, sf.stderr, exact):
        assert np.all(np.abs(g - e) < 4 * se)
    # a log-normal written by the user: x = exp(m + s eps), E[x] = exp(m + s^2 / 2)
    m, s = 0.2, 0.5
    ln = gr.reparam_grad(lambda x: x, (m, s), N, rng=gen(24),
                         dist=lambda m, s, size, rng: ga.exp(gr.normal(m, s, size, rng)))
    ex = np.exp(m + s * s / 2)
    for g, se, e in zip(ln.grad, ln.stderr, (ex, s * ex)):
        assert abs(g - e) < 4 * se
    sf = gr.score_function_grad(
        lambda x: x, (m, s), N, rng=gen(24), baseline="mean",
        dist=(lambda m, s, size, rng: np.exp(rng.normal(m, s, size)),
              lambda x, m, s: gr.normal_logpdf(np.log(x), m, s) - np.log(x)))
    for g, se, e in zip(sf.grad, sf.stderr, (ex, s * ex)):
        assert abs(g - e) < 4 * se
    with pytest.raises(ValueError, match="reparam_grad"):
        gr.score_function_grad(lambda x: x, (0.0, 1.0), 10, dist="uniform", rng=gen())


def test_uniform_pathwise_estimator():
    # E[x^2], x ~ U[a, b) = (a^2 + a b + b^2) / 3: gradient ((2a + b) / 3, (a + 2b) / 3)
    a, b = 0.5, 2.0
    est = gr.reparam_grad(square, (a, b), N, dist="uniform", rng=gen(25))
    for g, se, e in zip(est.grad, est.stderr, ((2 * a + b) / 3, (a + 2 * b) / 3)):
        assert abs(g - e) < 4 * se


def test_normal_logpdf():
    x = np.linspace(-3, 3, 7)
    pdf = np.exp(-(x - 0.5) ** 2 / (2 * 1.5 ** 2)) / (1.5 * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(gr.normal_logpdf(x, 0.5, 1.5).numpy(), np.log(pdf), rtol=1e-13)


# ----------------------------------------------------------------------------------------------
# the examples that use ga.random

def _example(name):
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "examples", name + ".py")
    spec = importlib.util.spec_from_file_location(name + "_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_estimators_variance_example(tmp_path, monkeypatch, capsys):
    ex = _example("estimators_variance")
    var = ex.estimate_variances([20, 200], repeats=60, seed=1)
    for name in ("score function", "score function, baseline"):
        assert np.all(var["pathwise"] < var[name])
    # the variance of the mean falls like 1/n: 10x the samples, about a tenth
    ratio = var["pathwise"][0] / var["pathwise"][1]
    assert np.all((5 < ratio) & (ratio < 20))
    out = tmp_path / "e.png"
    monkeypatch.setattr("sys.argv", ["estimators_variance.py", "--repeats", "5",
                                     "--plot", str(out)])
    ex.main()
    assert "score function / pathwise variance" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    assert out.stat().st_size > 0


def test_autoencoder_example_trains_through_ga_random(monkeypatch, capsys):
    pytest.importorskip("sklearn")
    ex = _example("autoencoder_reparam")
    monkeypatch.setattr("sys.argv", ["autoencoder_reparam.py", "--epochs", "1"])
    ex.main()
    assert "gradient check through the reparameterized sample: ok" in capsys.readouterr().out
