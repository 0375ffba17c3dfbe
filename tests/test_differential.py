"""Differential testing: seeded random programs over elementwise, broadcasting, reduction, shape
and product primitives, run by graphad and by HIPS autograd (an independent engine, in the test
extra); values, gradients (reverse), JVPs (forward), hvp and compiled replays on new inputs must
agree.  `slow` runs many more programs (GRAPHAD_PROGRAMS=N)."""
import os
import warnings

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import graphad as ga

M = np.random.default_rng(99).standard_normal((4, 4)) / 2

# (name, arity, graphad, autograd): every operand is (3, 4) or (4,), so any two broadcast
OPS = [
    ("sin", 1, ga.sin, anp.sin), ("cos", 1, ga.cos, anp.cos), ("tanh", 1, ga.tanh, anp.tanh),
    ("sigmoid", 1, ga.sigmoid, lambda x: 1 / (1 + anp.exp(-x))),
    ("softplus", 1, ga.softplus, lambda x: anp.logaddexp(0.0, x)),
    ("square", 1, ga.square, anp.square), ("exp-tanh", 1, lambda x: ga.exp(ga.tanh(x)),
                                           lambda x: anp.exp(anp.tanh(x))),
    ("neg", 1, lambda x: -x, lambda x: -x),
    ("matmul", 1, lambda x: x @ M, lambda x: anp.dot(x, M)),
    ("transpose2", 1, lambda x: ga.transpose(ga.transpose(x)) * 0.5,
     lambda x: anp.transpose(anp.transpose(x)) * 0.5),
    ("add", 2, lambda a, b: a + b, lambda a, b: a + b),
    ("sub", 2, lambda a, b: a - b, lambda a, b: a - b),
    ("mul", 2, lambda a, b: a * b, lambda a, b: a * b),
    ("div", 2, lambda a, b: a / (1.5 + b * b), lambda a, b: a / (1.5 + b * b)),
    ("maximum", 2, lambda a, b: ga.maximum(a, b + 0.013), lambda a, b: anp.maximum(a, b + 0.013)),
    ("sum0", 1, lambda x: ga.sum(x, axis=0) if x.ndim == 2 else x,
     lambda x: anp.sum(x, axis=0) if x.ndim == 2 else x),
    ("mean0", 1, lambda x: ga.mean(x, axis=0, keepdims=True) if x.ndim == 2 else x,
     lambda x: anp.mean(x, axis=0, keepdims=True) if x.ndim == 2 else x),
    ("lse", 1, lambda x: x - ga.logsumexp(x, axis=-1, keepdims=True),
     lambda x: x - anp.log(anp.sum(anp.exp(x), axis=-1, keepdims=True))),
    ("flip", 1, lambda x: x[..., ::-1], lambda x: x[..., ::-1]),
]


def make_program(seed, steps=6):
    """A random straight-line program: a list of (op index, operand indices)."""
    rng = np.random.default_rng(seed)
    prog, live = [], 1
    for _ in range(steps):
        k = int(rng.integers(len(OPS)))
        args = tuple(int(rng.integers(live)) for _ in range(OPS[k][1]))
        prog.append((k, args))
        live += 1
    return prog


def run(prog, x, engine):
    vals = [x]
    for k, args in prog:
        fn = OPS[k][2] if engine == "ga" else OPS[k][3]
        vals.append(fn(*[vals[i] for i in args]))
    total = 0.0
    for j, v in enumerate(vals[1:]):        # every intermediate reaches the output
        total = total + (ga.sum(v) if engine == "ga" else anp.sum(v)) * (0.3 + 0.1 * j)
    return total


def check(seed):
    prog = make_program(seed)
    rng = np.random.default_rng(seed + 10**6)
    x, v = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    f = lambda z: run(prog, z, "ga")
    af = lambda z: run(prog, z, "ag")
    what = f"program {seed}: {[OPS[k][0] for k, _ in prog]}"
    np.testing.assert_allclose(f(x).numpy(), af(x), rtol=1e-12, atol=1e-12, err_msg=what)
    np.testing.assert_allclose(ga.grad(f)(x), autograd.grad(af)(x), rtol=1e-10, atol=1e-12,
                               err_msg=what)
    _, jv = ga.jvp(f, (x,), (v,))
    _, ajv = autograd.make_jvp(af)(x)(v)
    np.testing.assert_allclose(jv, ajv, rtol=1e-10, atol=1e-12, err_msg=what)
    _, hv = ga.hvp(f, x, v)
    with warnings.catch_warnings():         # autograd's note on a linear program's gradient
        warnings.filterwarnings("ignore", "Output seems independent of input")
        ahv = autograd.make_jvp(autograd.grad(af))(x)(v)[1]
    np.testing.assert_allclose(hv, ahv, rtol=1e-9, atol=1e-11, err_msg=what)
    comp = ga.compile(ga.grad(f))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        comp(x)
        x2 = rng.standard_normal((3, 4))
        np.testing.assert_allclose(comp(x2), autograd.grad(af)(x2), rtol=1e-10, atol=1e-12,
                                   err_msg=what + " (compiled replay)")
    assert comp.replays == 1


@pytest.mark.parametrize("block", range(10))
def test_random_programs_agree_with_autograd(block):
    for seed in range(block * 30, block * 30 + 30):     # 300 programs in all
        check(seed)


@pytest.mark.slow
def test_many_random_programs_agree_with_autograd():
    """GRAPHAD_PROGRAMS=5000 pytest -m slow tests/test_differential.py (about 20 s a 5,000)."""
    n = int(os.environ.get("GRAPHAD_PROGRAMS", "0"))
    if not n:
        pytest.skip("set GRAPHAD_PROGRAMS to the number of extra random programs to run")
    for seed in range(300, 300 + n):
        check(seed)
