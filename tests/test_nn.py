"""graphad.nn: every layer and loss against finite differences in both modes, the losses
against NumPy/SciPy closed forms (and stable at huge logits), initializers, and the Module
machinery (discovery, state round trip through a file, train/eval)."""
import numpy as np
import pytest
from scipy.special import logsumexp

import graphad as ga
from graphad import nn

MODES = ("rev", "fwd")


def with_params(layer, names):
    """f(x, *params) that runs `layer` with its named parameters replaced by the arguments,
    so that check_grad can differentiate with respect to them."""
    def f(x, *ps):
        saved = {n: getattr(layer, n) for n in names}
        for n, p in zip(names, ps):
            setattr(layer, n, p)
        try:
            return layer(x)
        finally:
            for n, p in saved.items():
                setattr(layer, n, p)
    return f


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# layers

def test_linear_value_and_gradients(rng):
    lin = nn.Linear(4, 3, rng=1)
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(lin(x).numpy(), x @ lin.W.data + lin.b.data, rtol=1e-14)
    f = with_params(lin, ["W", "b"])
    ga.check_grad(f, x, lin.W.data, lin.b.data, modes=MODES)


def test_linear_without_bias_and_float32(rng):
    lin = nn.Linear(4, 2, rng=0, bias=False, dtype=np.float32)
    assert lin.b is None and [p.dtype for p in lin.parameters()] == [np.float32]
    y = lin(rng.standard_normal((3, 4)).astype(np.float32))
    assert y.dtype == np.float32 and y.shape == (3, 2)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "softplus"])
def test_mlp_gradients(rng, activation):
    model = nn.MLP([3, 5, 4, 2], activation=activation, rng=2)
    x = rng.standard_normal((6, 3)) + 0.05          # away from relu's kink in practice
    first = model[0]
    ga.check_grad(lambda x: model(x), x, modes=MODES)
    ga.check_grad(with_params(first, ["W", "b"]), x, first.W.data, first.b.data, modes=MODES)


@pytest.mark.parametrize("module, fn", [(nn.ReLU, ga.relu), (nn.Tanh, ga.tanh),
                                        (nn.Sigmoid, ga.sigmoid), (nn.Softplus, ga.softplus)])
def test_activation_modules(rng, module, fn):
    x = rng.standard_normal((4, 3))
    np.testing.assert_array_equal(module()(x).numpy(), fn(x).numpy())
    ga.check_grad(module(), x + 0.01, modes=MODES)


def test_sequential_and_mlp_structure():
    model = nn.MLP([8, 16, 4], rng=0)
    assert len(model) == 3 and isinstance(model[1], nn.ReLU)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b"]
    for p in model.parameters():
        assert p.requires_grad and p.is_leaf
    seq = nn.Sequential(nn.Linear(2, 3, rng=0), nn.Tanh(), nn.Linear(3, 1, rng=1))
    assert len(seq.parameters()) == 4
    assert "Linear(2, 3, bias=True)" in repr(seq)


def test_mlp_is_reproducible_from_a_seed_or_generator():
    a = nn.MLP([5, 7, 3], rng=42)
    b = nn.MLP([5, 7, 3], rng=np.random.default_rng(42))
    c = nn.MLP([5, 7, 3], rng=43)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert not np.array_equal(a[0].W.data, c[0].W.data)
    with pytest.raises(TypeError):
        nn.MLP([2, 2], rng="seed")
    with pytest.raises(ValueError):
        nn.MLP([3])
    with pytest.raises(ValueError, match="unknown activation"):
        nn.MLP([2, 3, 2], activation="swish")


def test_dropout(rng):
    x = rng.standard_normal((200, 50))
    d = nn.Dropout(0.3, rng=0)
    y = d(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-14)
    d.eval()
    assert d(x) is x
    d.train()
    assert not np.array_equal(d(x).numpy(), y)            # a fresh mask each call
    # the derivative is the mask: the same rng state gives the same mask to finite differences
    ga.check_grad(lambda x: nn.Dropout(0.5, rng=3)(x), x[:4, :5], modes=MODES)
    with pytest.raises(ValueError):
        nn.Dropout(1.0)


def test_layernorm(rng):
    ln = nn.LayerNorm(6)
    x = rng.standard_normal((4, 6)) * 3 + 1
    y = ln(x).numpy()
    np.testing.assert_allclose(y.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=1), 1, rtol=1e-4)
    gamma = rng.standard_normal(6)
    beta = rng.standard_normal(6)
    # (finite differences through the normalization lose a few digits: rtol 1e-4)
    ga.check_grad(with_params(ln, ["gamma", "beta"]), x, gamma, beta, modes=MODES, rtol=1e-4)
    with pytest.raises(ValueError, match="LayerNorm"):
        ln(rng.standard_normal((4, 5)))


def test_train_eval_propagate():
    model = nn.Sequential(nn.Linear(3, 3, rng=0), nn.Dropout(0.5), nn.Sequential(nn.Dropout()))
    model.eval()
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


# ---------------------------------------------------------------------------------------------
# initializers

@pytest.mark.parametrize("name", ["xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
                                  "kaiming_uniform", "kaiming_normal"])
def test_initializers(name):
    fn = getattr(nn.init, name)
    a = fn((400, 300), rng=0)
    np.testing.assert_array_equal(a, fn((400, 300), rng=np.random.default_rng(0)))
    assert a.shape == (400, 300) and a.dtype == np.float64
    expected_std = {"xavier": np.sqrt(2 / 700), "he": np.sqrt(2 / 400),
                    "kaiming": np.sqrt(2 / 400)}[name.split("_")[0]]
    assert abs(a.std() / expected_std - 1) < 0.02
    if name.endswith("uniform"):
        assert np.abs(a).max() <= expected_std * np.sqrt(3) + 1e-12
    assert fn((3, 2), rng=0, dtype=np.float32).dtype == np.float32


# ---------------------------------------------------------------------------------------------
# losses

def _xent_ref(z, y):
    return logsumexp(z, axis=1) - z[np.arange(len(y)), y]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_values_and_gradients(rng, reduction):
    z = rng.standard_normal((7, 5))
    y = rng.integers(0, 5, 7)
    ref = _xent_ref(z, y)
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    np.testing.assert_allclose(nn.cross_entropy(z, y, reduction).numpy(), ref, rtol=1e-13)
    ga.check_grad(lambda z: nn.cross_entropy(z, y, reduction), z, modes=MODES)


def test_cross_entropy_gradient_closed_form(rng):
    # d mean_i l_i / dz = (softmax(z) - onehot(y)) / N
    z = rng.standard_normal((6, 4))
    y = np.array([0, 3, 3, 1, 2, 0])
    g = ga.grad(lambda z: nn.cross_entropy(z, y))(z)
    p = np.exp(z - logsumexp(z, axis=1, keepdims=True))
    p[np.arange(6), y] -= 1
    np.testing.assert_allclose(g, p / 6, rtol=1e-13, atol=1e-16)


def test_cross_entropy_second_order_matches_composition(rng):
    z = rng.standard_normal((3, 4))
    y = np.array([1, 0, 3])

    def composed(z):
        return -ga.mean(ga.log_softmax(z, axis=-1)[np.arange(3), y])

    np.testing.assert_allclose(ga.hessian(lambda z: nn.cross_entropy(z, y))(z),
                               ga.hessian(composed)(z), atol=1e-14)
    np.testing.assert_allclose(ga.jacrev(lambda z: nn.cross_entropy(z, y, "none"))(z),
                               ga.jacfwd(lambda z: nn.cross_entropy(z, y, "none"))(z),
                               atol=1e-15)


def test_cross_entropy_is_stable_at_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 3.0], [1e4, 1e4, 1e4]])
    y = np.array([0, 0, 2])
    loss = nn.cross_entropy(z, y, "none").numpy()
    assert np.all(np.isfinite(loss))
    np.testing.assert_allclose(loss, [0.0, 2e4, np.log(3)], rtol=1e-12)
    g = ga.grad(lambda z: nn.cross_entropy(z, y))(z)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g[1], [-1 / 3, 1 / 3, 0], atol=1e-12)
    z32 = z.astype(np.float32)
    assert np.all(np.isfinite(ga.grad(lambda z: nn.cross_entropy(z, y))(z32)))


def test_cross_entropy_shapes_dtypes_and_errors(rng):
    z = rng.standard_normal((2, 3, 4))
    y = rng.integers(0, 4, (2, 3))
    out = nn.cross_entropy(z, y, "none")
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out.numpy().ravel(), _xent_ref(z.reshape(6, 4), y.ravel()))
    assert nn.cross_entropy(z[0, 0], y[0, 0]).shape == ()
    assert nn.cross_entropy(z[0].astype(np.float32), y[0]).dtype == np.float32
    assert nn.cross_entropy(z[0], ga.tensor(y[0])).shape == ()
    with pytest.raises(ValueError, match="outside"):
        nn.cross_entropy(z[0], np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="outside"):
        nn.cross_entropy(z[0], np.array([0, -1, 1]))
    with pytest.raises(TypeError, match="integers"):
        nn.cross_entropy(z[0], np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="labels of shape"):
        nn.cross_entropy(z[0], np.array([0, 1]))
    with pytest.raises(ValueError, match="reduction"):
        nn.cross_entropy(z[0], y[0], reduction="avg")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse(rng, reduction):
    p, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    ref = (p - t) ** 2
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    np.testing.assert_allclose(nn.mse(p, t, reduction).numpy(), ref, rtol=1e-14)
    ga.check_grad(lambda p, t: nn.mse(p, t, reduction), p, t, modes=MODES)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits(rng, reduction):
    x = rng.standard_normal((5, 2)) * 3
    t = rng.uniform(0, 1, (5, 2))
    s = 1 / (1 + np.exp(-x))
    ref = -(t * np.log(s) + (1 - t) * np.log(1 - s))
    ref = {"mean": ref.mean(), "sum": ref.sum(), "none": ref}[reduction]
    np.testing.assert_allclose(nn.binary_cross_entropy_with_logits(x, t, reduction).numpy(),
                               ref, rtol=1e-12)
    ga.check_grad(lambda x: nn.binary_cross_entropy_with_logits(x, t, reduction), x,
                  modes=MODES)


def test_binary_cross_entropy_is_stable_at_huge_logits():
    x = np.array([1e4, -1e4, 1e4, -1e4])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    loss = nn.binary_cross_entropy_with_logits(x, t, "none").numpy()
    np.testing.assert_allclose(loss, [0, 0, 1e4, 1e4])
    g = ga.grad(lambda x: nn.binary_cross_entropy_with_logits(x, t, "sum"))(x)
    np.testing.assert_allclose(g, [0, 0, 1, -1])


# ---------------------------------------------------------------------------------------------
# Module state

class Net(nn.Module):
    """Parameters directly, in a list of modules, in a dict, and a constant buffer."""

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.scale = ga.tensor(rng.standard_normal(3), requires_grad=True)
        self.blocks = [nn.Linear(3, 3, rng=rng), nn.Linear(3, 2, rng=rng)]
        self.extra = {"head": nn.LayerNorm(2)}
        self.offset = ga.tensor(np.arange(2.0))          # a buffer: state, not a parameter

    def forward(self, x):
        h = ga.tanh(self.blocks[0](x * self.scale))
        return self.extra["head"](self.blocks[1](h)) + self.offset


def test_module_discovery():
    net = Net(0)
    assert [n for n, _ in net.named_parameters()] == [
        "scale", "blocks.0.W", "blocks.0.b", "blocks.1.W", "blocks.1.b",
        "extra.head.gamma", "extra.head.beta"]
    assert [n for n, _ in net.named_buffers()] == ["offset"]
    assert list(net.state_dict()) == [n for n, _ in net._named_tensors()]
    net.zero_grad()
    ga.sum(net(np.ones((2, 3)))).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_state_dict_round_trip_through_a_file(tmp_path):
    a, b = Net(0), Net(1)
    x = np.random.default_rng(5).standard_normal((4, 3))
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    path = tmp_path / "net.npz"
    a.save(path)
    params_before = [id(p) for p in b.parameters()]
    b.load(path)
    assert [id(p) for p in b.parameters()] == params_before      # loaded in place
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    sd = a.state_dict()
    sd["blocks.0.W"][...] = 0                                      # a copy, not a view
    assert not np.all(a.blocks[0].W.data == 0)


def test_load_state_dict_errors():
    net = Net(0)
    sd = net.state_dict()
    del sd["scale"]
    with pytest.raises(KeyError, match="missing"):
        net.load_state_dict(sd)
    net.load_state_dict(sd, strict=False)
    sd = net.state_dict()
    sd["blocks.0.W"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="shape"):
        net.load_state_dict(sd)


def test_module_astype():
    model = nn.MLP([3, 4, 2], rng=0).astype(np.float32)
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert model(np.ones((1, 3), np.float32)).dtype == np.float32
