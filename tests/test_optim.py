"""graphad.optim: each update against a hand-written NumPy version of the same formula over
several steps, optimizer state through state_dict and files, and the schedules."""
import math

import numpy as np
import pytest

import graphad as ga
from graphad import nn, optim


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [ga.tensor(rng.standard_normal((3, 4)), requires_grad=True, dtype=dtype),
            ga.tensor(rng.standard_normal(4), requires_grad=True, dtype=dtype)]


def grads_for(step, params, seed=0):
    rng = np.random.default_rng(1000 + step + seed)
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def run(opt, params, steps=5):
    for k in range(steps):
        for p, g in zip(params, grads_for(k, params)):
            p.grad = g
        opt.step()
    return [p.data.copy() for p in params]


# ---------------------------------------------------------------------------------------------
# the NumPy references (PyTorch's formulas)

def sgd_ref(ps, steps, lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0):
    ps = [p.copy() for p in ps]
    bufs = [None] * len(ps)
    for k in range(steps):
        for i, g in enumerate(grads_for(k, ps)):
            d = g + weight_decay * ps[i]
            if momentum:
                bufs[i] = d.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * d
                d = d + momentum * bufs[i] if nesterov else bufs[i]
            ps[i] = ps[i] - lr * d
    return ps


def adam_ref(ps, steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    ps = [p.copy() for p in ps]
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    b1, b2 = betas
    for k in range(steps):
        t = k + 1
        for i, g in enumerate(grads_for(k, ps)):
            if decoupled:
                ps[i] = ps[i] * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * ps[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            mhat = m[i] / (1 - b1 ** t)
            vhat = v[i] / (1 - b2 ** t)
            ps[i] = ps[i] - lr * mhat / (np.sqrt(vhat) + eps)
    return ps


SGD_CASES = [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True),
             dict(lr=0.1, weight_decay=0.01), dict(lr=0.1, momentum=0.5, dampening=0.2,
                                                   weight_decay=0.1)]


@pytest.mark.parametrize("kw", SGD_CASES)
def test_sgd_matches_numpy(kw):
    params = make_params()
    start = [p.data.copy() for p in params]
    got = run(optim.SGD(params, **kw), params, steps=6)
    for a, b in zip(got, sgd_ref(start, 6, **kw)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


ADAM_CASES = [(optim.Adam, dict(lr=0.01)), (optim.Adam, dict(lr=0.01, weight_decay=0.1)),
              (optim.Adam, dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6)),
              (optim.AdamW, dict(lr=0.01)), (optim.AdamW, dict(lr=0.01, weight_decay=0.3))]


@pytest.mark.parametrize("cls, kw", ADAM_CASES)
def test_adam_matches_numpy(cls, kw):
    params = make_params()
    start = [p.data.copy() for p in params]
    got = run(cls(params, **kw), params, steps=7)
    ref_kw = dict(kw)
    if cls is optim.AdamW:
        ref_kw.setdefault("weight_decay", 1e-2)
    for a, b in zip(got, adam_ref(start, 7, decoupled=cls is optim.AdamW, **ref_kw)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.01)])
def test_float32_stays_float32(make):
    params = make_params(np.float32)
    start = [p.data.astype(np.float64) for p in params]
    run(make(params), params, steps=3)
    assert all(p.dtype == np.float32 for p in params)
    ref = make_params(np.float64)
    for p, s in zip(ref, start):
        p.data[...] = s
    run(make(ref), ref, steps=3)
    for a, b in zip(params, ref):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-4, atol=1e-5)


def test_step_skips_missing_grads_and_zero_grad_clears():
    params = make_params()
    before = [p.data.copy() for p in params]
    opt = optim.Adam(params, lr=0.1)
    params[0].grad = np.ones_like(params[0].data)
    opt.step()
    assert not np.array_equal(params[0].data, before[0])
    np.testing.assert_array_equal(params[1].data, before[1])
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_updates_are_in_place_and_leave_grads_alone():
    params = make_params()
    buffers = [p.data for p in params]
    grads = grads_for(0, params)
    for p, g in zip(params, grads):
        p.grad = g.copy()
    optim.SGD(params, lr=0.1, momentum=0.9).step()
    assert all(p.data is b for p, b in zip(params, buffers))
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad, g)


def test_trains_a_model():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) > 0).astype(np.int64)
    model = nn.MLP([3, 8, 2], rng=0)
    opt = optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        loss = nn.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
    assert float(loss) < 0.1


def test_param_groups():
    a, b = make_params()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.0}], lr=0.1)
    a0, b0 = a.data.copy(), b.data.copy()
    a.grad, b.grad = np.ones_like(a0), np.ones_like(b0)
    opt.step()
    np.testing.assert_allclose(a.data, a0 - 0.1)
    np.testing.assert_array_equal(b.data, b0)


def test_invalid_arguments():
    params = make_params()
    with pytest.raises(ValueError):
        optim.SGD(params, lr=-1.0)
    with pytest.raises(ValueError):
        optim.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.Adam(params, betas=(1.0, 0.9))
    with pytest.raises(ValueError):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="leaf"):
        optim.SGD([params[0] * 2.0], lr=0.1)


# ---------------------------------------------------------------------------------------------
# state

@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
                                  lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
                                  lambda ps: optim.AdamW(ps, lr=0.01)])
@pytest.mark.parametrize("through_file", [False, True])
def test_state_round_trip_resumes_exactly(tmp_path, make, through_file):
    # 6 steps straight, versus 3 steps, save, a fresh optimizer loads, 3 more steps
    straight = make_params()
    run(make(straight), straight, steps=6)

    first = make_params()
    opt = make(first)
    run(opt, first, steps=3)
    second = make_params()
    for p, q in zip(second, first):
        p.data[...] = q.data
    opt2 = make(second)
    if through_file:
        opt.save(tmp_path / "opt.npz")
        opt2.load(tmp_path / "opt.npz")
    else:
        opt2.load_state_dict(opt.state_dict())
    for k in range(3, 6):
        for p, g in zip(second, grads_for(k, second)):
            p.grad = g
        opt2.step()
    for a, b in zip(second, straight):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_is_a_copy():
    params = make_params()
    opt = optim.SGD(params, lr=0.1, momentum=0.9)
    run(opt, params, steps=1)
    sd = opt.state_dict()
    sd["state"][0]["momentum_buffer"][...] = 0
    assert not np.all(opt.state[id(params[0])]["momentum_buffer"] == 0)
    assert sd["param_groups"][0]["params"] == [0, 1]


def test_model_and_optimizer_checkpoint(tmp_path):
    """The usual checkpoint: model and optimizer saved, both restored, training continues."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((16, 4)), rng.integers(0, 3, 16)

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            nn.cross_entropy(model(X), y).backward()
            opt.step()

    ref = nn.MLP([4, 6, 3], rng=0)
    train(ref, optim.Adam(ref.parameters(), lr=0.01), 8)
    m1 = nn.MLP([4, 6, 3], rng=0)
    o1 = optim.Adam(m1.parameters(), lr=0.01)
    train(m1, o1, 4)
    m1.save(tmp_path / "model.npz")
    o1.save(tmp_path / "opt.npz")
    m2 = nn.MLP([4, 6, 3], rng=99)
    o2 = optim.Adam(m2.parameters(), lr=0.5)
    m2.load(tmp_path / "model.npz")
    o2.load(tmp_path / "opt.npz")
    assert o2.param_groups[0]["lr"] == 0.01
    train(m2, o2, 4)
    for p, q in zip(m2.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


# ---------------------------------------------------------------------------------------------
# schedules

def lrs(sched, n):
    out = []
    for _ in range(n):
        sched.step()
        out.append(sched.get_last_lr()[0])
    return out


def test_step_lr():
    opt = optim.SGD(make_params(), lr=1.0)
    assert lrs(optim.StepLR(opt, step_size=2, gamma=0.5), 5) == [1.0, 0.5, 0.5, 0.25, 0.25]


def test_exponential_lr():
    opt = optim.SGD(make_params(), lr=2.0)
    np.testing.assert_allclose(lrs(optim.ExponentialLR(opt, 0.9), 3), [1.8, 1.62, 1.458])


def test_cosine_annealing():
    opt = optim.SGD(make_params(), lr=1.0)
    got = lrs(optim.CosineAnnealing(opt, t_max=4, eta_min=0.1), 6)
    ref = [0.1 + 0.9 * (1 + math.cos(math.pi * min(e, 4) / 4)) / 2 for e in range(1, 7)]
    np.testing.assert_allclose(got, ref, rtol=1e-15)
    assert got[-1] == pytest.approx(0.1)


def test_scheduler_state_round_trip():
    opt = optim.SGD(make_params(), lr=1.0)
    s = optim.CosineAnnealing(opt, t_max=10, eta_min=0.01)
    lrs(s, 3)
    opt2 = optim.SGD(make_params(), lr=1.0)
    s2 = optim.CosineAnnealing(opt2, t_max=10, eta_min=0.01)
    s2.load_state_dict(s.state_dict())
    assert s2.get_last_lr() == s.get_last_lr()
    assert lrs(s2, 2) == lrs(s, 2)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.5),
                                  lambda ps: optim.Adam(ps, lr=0.01)])
def test_gradients_of_another_layout_or_dtype_and_read_only_parameters(make):
    """A transposed or float32 gradient is read as the parameter's contiguous float64; a
    read-only parameter is replaced by an updated copy (the caller's array is never written)."""
    params = make_params()
    ref = make_params()
    frozen = params[0].data
    frozen.flags.writeable = False
    snapshot = frozen.copy()
    opt, opt_ref = make(params), make(ref)
    for k in range(3):
        gs = grads_for(k, params)
        params[0].grad = np.asfortranarray(gs[0])          # another layout
        params[1].grad = gs[1].astype(np.float32)          # another dtype
        ref[0].grad, ref[1].grad = gs[0], gs[1].astype(np.float32).astype(np.float64)
        opt.step()
        opt_ref.step()
    np.testing.assert_array_equal(frozen, snapshot)
    for p, r in zip(params, ref):
        assert p.data.dtype == np.float64 and p.data.flags.c_contiguous
        np.testing.assert_allclose(p.data, r.data, rtol=1e-15)
