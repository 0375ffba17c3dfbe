"""Differential testing: seeded random programs run by graphad and by HIPS autograd (an
independent engine, in the test extra), and by PyTorch where it is installed.

A program is a straight line of ops drawn from OPS: elementwise, broadcasting, reductions, shape,
indexing (integers, slices, negative steps, integer arrays with repeats and negative entries,
boolean masks), products and einsum with random valid subscripts (one to three operands, the
constant matrix M among them at times).  Every value is (3, 4) or (4,), so any two broadcast.

- float64 programs, the input, its tangent and the replay's input each in a random layout
  (C, Fortran, negative strides, a non-contiguous slice, read-only): the value, the gradient
  (reverse), the JVP (forward), hvp and a compiled replay on a new input agree with autograd,
  and no input is modified;
- float32 programs: value, gradient, JVP and the compiled replay stay float32 and agree with
  autograd's float64 result at the same point to float32 accuracy;
- PyTorch (skipped unless importable): value, gradient and hvp of the float64 programs.

`slow` runs many more (GRAPHAD_PROGRAMS=N of each kind)."""
import os
import warnings
from collections import namedtuple

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import graphad as ga

# float32-representable, so that a float32 program and its float64 reference use the same M
M = (np.random.default_rng(99).standard_normal((4, 4)) / 2).astype(np.float32).astype(np.float64)
IDX = np.array([3, 0, 0, -1])                       # repeated and negative entries
ROWS = np.array([2, 0, -1])
MASK2 = np.array([[True, False, False, True], [False, True, False, False],
                  [False, False, True, False]])     # four entries of a (3, 4) value
MASK1 = np.array([True, False, True, True])


def _m(x):
    """M in the dtype of the graphad value it meets (float32 stays float32)."""
    return M.astype(x.dtype)


def _by_ndim(two, one):
    """An op that maps (3, 4) -> `two`, (4,) -> `one` (each keeps to the two shapes)."""
    return lambda p, x: two(x) if x.ndim == 2 else one(x)


# einsum: i has size 3, j and k size 4; a (3, 4) operand is "ij" or "ik", a (4,) one "j" or "k",
# M is "jk", "kj" or "jj" (its diagonal); the output is a valid (3, 4) or (4,) subscript
def _einsum_spec(rng, shapes):
    subs = ["i" + str(rng.choice(["j", "k"])) if len(s) == 2 else str(rng.choice(["j", "k"]))
            for s in shapes]
    with_m = bool(rng.integers(2))
    if with_m:
        subs.append(str(rng.choice(["jk", "kj", "jj"])))
    used = set("".join(subs))
    outs = [o for o in ("ij", "ik", "j", "k") if set(o) <= used]
    return ",".join(subs) + "->" + str(rng.choice(outs)), with_m


def _ag_lse(x):
    """log sum exp over the last axis, shifted by the maximum (no overflow at large x)."""
    m = anp.max(x, axis=-1, keepdims=True)
    return m + anp.log(anp.sum(anp.exp(x - m), axis=-1, keepdims=True))


def _ga_einsum(p, *xs):
    spec, with_m = p
    return ga.einsum(spec, *xs, *((_m(xs[0]),) if with_m else ()))


def _ag_einsum(p, *xs):
    spec, with_m = p
    return anp.einsum(spec, *xs, *((M,) if with_m else ()))


# Op: graphad(p, *args), autograd(p, *args), torch(p, *args) or None; make(rng, shapes) -> p
Op = namedtuple("Op", "name arity ga ag torch make", defaults=(None, None))


def _t(name):
    """A PyTorch spelling, looked up when the PyTorch comparison runs."""
    return lambda p, *a: TORCH[name](p, *a)


OPS = [
    Op("sin", 1, lambda p, x: ga.sin(x), lambda p, x: anp.sin(x), _t("sin")),
    Op("cos", 1, lambda p, x: ga.cos(x), lambda p, x: anp.cos(x), _t("cos")),
    Op("tanh", 1, lambda p, x: ga.tanh(x), lambda p, x: anp.tanh(x), _t("tanh")),
    Op("sigmoid", 1, lambda p, x: ga.sigmoid(x), lambda p, x: 1 / (1 + anp.exp(-x)),
       _t("sigmoid")),
    Op("softplus", 1, lambda p, x: ga.softplus(x), lambda p, x: anp.logaddexp(0.0, x),
       _t("softplus")),
    Op("square", 1, lambda p, x: ga.square(x), lambda p, x: anp.square(x), _t("square")),
    Op("exp-tanh", 1, lambda p, x: ga.exp(ga.tanh(x)), lambda p, x: anp.exp(anp.tanh(x)),
       _t("exp-tanh")),
    Op("neg", 1, lambda p, x: -x, lambda p, x: -x, _t("neg")),
    Op("matmul", 1, lambda p, x: x @ _m(x), lambda p, x: anp.dot(x, M), _t("matmul")),
    Op("transpose2", 1, lambda p, x: ga.transpose(ga.transpose(x)) * 0.5,
       lambda p, x: anp.transpose(anp.transpose(x)) * 0.5, _t("transpose2")),
    Op("add", 2, lambda p, a, b: a + b, lambda p, a, b: a + b, _t("add")),
    Op("sub", 2, lambda p, a, b: a - b, lambda p, a, b: a - b, _t("sub")),
    Op("mul", 2, lambda p, a, b: a * b, lambda p, a, b: a * b, _t("mul")),
    Op("div", 2, lambda p, a, b: a / (1.5 + b * b), lambda p, a, b: a / (1.5 + b * b), _t("div")),
    Op("maximum", 2, lambda p, a, b: ga.maximum(a, b + 0.013),
       lambda p, a, b: anp.maximum(a, b + 0.013), _t("maximum")),
    Op("sum0", 1, _by_ndim(lambda x: ga.sum(x, axis=0), lambda x: x),
       _by_ndim(lambda x: anp.sum(x, axis=0), lambda x: x), _t("sum0")),
    Op("mean0", 1, _by_ndim(lambda x: x - ga.mean(x, axis=0, keepdims=True), lambda x: x),
       _by_ndim(lambda x: x - anp.mean(x, axis=0, keepdims=True), lambda x: x), _t("mean0")),
    Op("lse", 1, lambda p, x: x - ga.logsumexp(x, axis=-1, keepdims=True),
       lambda p, x: x - _ag_lse(x), _t("lse")),
    Op("flip", 1, lambda p, x: x[..., ::-1], lambda p, x: x[..., ::-1], _t("flip")),
    # indexing: an integer (a row, or a 0-d entry times the vector), negative steps, slices
    # put back together, integer arrays with repeats, boolean masks
    Op("int-index", 1, _by_ndim(lambda x: x[-2], lambda x: x[2] * x),
       _by_ndim(lambda x: x[-2], lambda x: x[2] * x), _t("int-index")),
    Op("negative-steps", 1,
       lambda p, x: ga.concatenate([x[..., ::-2], x[..., -2::-2]], axis=-1)[::-1],
       lambda p, x: anp.concatenate([x[..., ::-2], x[..., -2::-2]], axis=-1)[::-1],
       _t("negative-steps")),
    Op("roll-slices", 1, lambda p, x: ga.concatenate([x[..., 1:], x[..., :1]], axis=-1),
       lambda p, x: anp.concatenate([x[..., 1:], x[..., :1]], axis=-1), _t("roll-slices")),
    Op("int-array", 1, _by_ndim(lambda x: x[ROWS][..., IDX], lambda x: x[IDX]),
       _by_ndim(lambda x: x[ROWS][..., IDX], lambda x: x[IDX]), _t("int-array")),
    Op("bool-mask", 1, _by_ndim(lambda x: x[MASK2],
                                lambda x: ga.concatenate([x[MASK1], x[~MASK1]])),
       _by_ndim(lambda x: x[MASK2], lambda x: anp.concatenate([x[MASK1], x[~MASK1]])),
       _t("bool-mask")),
    Op("einsum1", 1, _ga_einsum, _ag_einsum, _t("einsum"), _einsum_spec),
    Op("einsum2", 2, _ga_einsum, _ag_einsum, _t("einsum"), _einsum_spec),
    Op("einsum3", 3, _ga_einsum, _ag_einsum, _t("einsum"), _einsum_spec),
]
TORCH = {}          # name -> torch spelling, filled by _torch_ops() when PyTorch is importable


def make_program(seed, steps=6):
    """A random straight-line program: a list of (op index, operand indices, op parameter).
    The shapes of the values are followed (on NumPy dummies) so that einsum's subscripts fit."""
    rng = np.random.default_rng(seed)
    prog, shapes = [], [(3, 4)]
    for _ in range(steps):
        k = int(rng.integers(len(OPS)))
        args = tuple(int(rng.integers(len(shapes))) for _ in range(OPS[k].arity))
        p = OPS[k].make(rng, [shapes[i] for i in args]) if OPS[k].make else None
        out = OPS[k].ag(p, *[np.full(shapes[i], 0.5) for i in args])
        assert np.shape(out) in ((3, 4), (4,)), (OPS[k].name, np.shape(out))
        prog.append((k, args, p))
        shapes.append(np.shape(out))
    return prog


def run(prog, x, engine, total_of=None):
    vals = [x]
    for k, args, p in prog:
        vals.append(getattr(OPS[k], engine)(p, *[vals[i] for i in args]))
    total_of = total_of or (ga.sum if engine == "ga" else anp.sum)
    total = 0.0
    for j, v in enumerate(vals[1:]):        # every intermediate reaches the output
        total = total + total_of(v) * (0.3 + 0.1 * j)
    return total


def describe(seed, prog):
    return f"program {seed}: " + str([OPS[k].name + (f"[{p[0]}]" if p else "")
                                      for k, _, p in prog])


def _fortran(a):
    return np.asfortranarray(a)


def _negative(a):
    return np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]


def _slice(a):
    big = np.full((2 * a.shape[0], 3 * a.shape[1]), np.nan, a.dtype)
    big[::2, 1::3] = a
    return big[::2, 1::3]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


LAYOUTS = {"C": np.ascontiguousarray, "Fortran": _fortran, "negative strides": _negative,
           "non-contiguous slice": _slice, "read-only": _read_only}


def _pick_layout(rng):
    name = list(LAYOUTS)[int(rng.integers(len(LAYOUTS)))]
    return name, LAYOUTS[name]


def check(seed):
    """A float64 program, its inputs in random layouts, against autograd."""
    prog = make_program(seed)
    rng = np.random.default_rng(seed + 10**6)
    x0, v0, x20 = (rng.standard_normal((3, 4)) for _ in range(3))
    (lx, fx), (lv, fv), (l2, f2) = (_pick_layout(rng) for _ in range(3))
    x, v, x2 = fx(x0), fv(v0), f2(x20)
    kept = [(a, a.copy(), a.flags.writeable) for a in (x, v, x2)]
    f = lambda z: run(prog, z, "ga")
    af = lambda z: run(prog, z, "ag")
    what = describe(seed, prog) + f" (x {lx}, v {lv}, replay input {l2})"
    np.testing.assert_allclose(f(x).numpy(), af(x0), rtol=1e-12, atol=1e-12, err_msg=what)
    g = ga.grad(f)(x)
    assert g.shape == x.shape and g.dtype == np.float64, what
    np.testing.assert_allclose(g, autograd.grad(af)(x0), rtol=1e-10, atol=1e-12, err_msg=what)
    _, jv = ga.jvp(f, (x,), (v,))
    _, ajv = autograd.make_jvp(af)(x0)(v0)
    np.testing.assert_allclose(jv, ajv, rtol=1e-10, atol=1e-12, err_msg=what)
    _, hv = ga.hvp(f, x, v)
    with warnings.catch_warnings():         # autograd's note on a linear program's gradient
        warnings.filterwarnings("ignore", "Output seems independent of input")
        ahv = autograd.make_jvp(autograd.grad(af))(x0)(v0)[1]
    np.testing.assert_allclose(hv, ahv, rtol=1e-9, atol=1e-11, err_msg=what)
    comp = ga.compile(ga.grad(f))
    want = autograd.grad(af)(x20)
    with warnings.catch_warnings():         # a replay, not an eager run with a TraceWarning
        warnings.simplefilter("error")
        comp(x)
        got = comp(x2)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12,
                               err_msg=what + " (compiled replay)")
    assert comp.replays == 1
    for a, before, writeable in kept:       # no input modified, none made writeable
        np.testing.assert_array_equal(a, before, err_msg=what + " (input modified)")
        assert a.flags.writeable == writeable, what


RTOL32 = 2e-4       # float32 accuracy after six ops: a few hundred ulps of the largest value


def _close32(got, want, what):
    assert np.asarray(got).dtype == np.float32, f"{what}: float32 became {np.asarray(got).dtype}"
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=RTOL32,
                               atol=RTOL32 * scale, err_msg=what)


def check32(seed):
    """A float32 program against autograd's float64 result at the same (float32) point."""
    prog = make_program(seed)
    rng = np.random.default_rng(seed + 2 * 10**6)
    x, v, x2 = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(3))
    x64, v64, x264 = (a.astype(np.float64) for a in (x, v, x2))
    f = lambda z: run(prog, z, "ga")
    af = lambda z: run(prog, z, "ag")
    what = describe(seed, prog) + " (float32)"
    _close32(f(x).numpy(), af(x64), what + " value")
    _close32(ga.grad(f)(x), autograd.grad(af)(x64), what + " gradient")
    y, jv = ga.jvp(f, (x,), (v,))
    assert np.asarray(y).dtype == np.float32, what
    _close32(jv, autograd.make_jvp(af)(x64)(v64)[1], what + " JVP")
    comp = ga.compile(ga.grad(f))
    want = autograd.grad(af)(x264)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        comp(x)
        got = comp(x2)
    _close32(got, want, what + " compiled replay")
    assert comp.replays == 1


@pytest.mark.parametrize("block", range(8))
def test_random_programs_agree_with_autograd(block):
    for seed in range(block * 25, block * 25 + 25):     # 200 float64 programs in all
        check(seed)


@pytest.mark.parametrize("block", range(4))
def test_random_float32_programs_stay_float32_and_agree(block):
    for seed in range(block * 25, block * 25 + 25):     # 100 float32 programs in all
        check32(seed)


def test_programs_cover_every_op():
    """The CI programs draw every op of OPS, einsum with M and without, and every layout."""
    drawn = {OPS[k].name for s in range(200) for k, _, _ in make_program(s)}
    assert drawn == {op.name for op in OPS}
    ms = {p[1] for s in range(200) for k, _, p in make_program(s) if p}
    assert ms == {True, False}
    layouts = set()
    for seed in range(200):
        rng = np.random.default_rng(seed + 10**6)
        [rng.standard_normal((3, 4)) for _ in range(3)]
        layouts |= {_pick_layout(rng)[0] for _ in range(3)}
    assert layouts == set(LAYOUTS)


def test_layouts_are_what_they_say():
    a = np.arange(12.0).reshape(3, 4)
    assert LAYOUTS["Fortran"](a).flags.f_contiguous and not LAYOUTS["Fortran"](a).flags.c_contiguous
    assert all(s < 0 for s in LAYOUTS["negative strides"](a).strides)
    s = LAYOUTS["non-contiguous slice"](a)
    assert not s.flags.c_contiguous and not s.flags.f_contiguous
    assert not LAYOUTS["read-only"](a).flags.writeable
    for make in LAYOUTS.values():
        np.testing.assert_array_equal(make(a), a)


# ---------------------------------------------------------------------------------------------
# PyTorch as a second opinion (float64; value, gradient and hvp by double backward)

def _torch_ops(torch):
    F = torch.nn.functional
    rev = lambda x: x.permute(*range(x.ndim - 1, -1, -1))
    flip = lambda x, d=-1: torch.flip(x, [d])
    mt = torch.as_tensor(M)
    return {
        "sin": lambda p, x: torch.sin(x), "cos": lambda p, x: torch.cos(x),
        "tanh": lambda p, x: torch.tanh(x), "sigmoid": lambda p, x: torch.sigmoid(x),
        "softplus": lambda p, x: torch.logaddexp(torch.zeros_like(x), x),   # F.softplus cuts at 20
        "square": lambda p, x: torch.square(x), "exp-tanh": lambda p, x: torch.exp(torch.tanh(x)),
        "neg": lambda p, x: -x, "matmul": lambda p, x: x @ mt,
        "transpose2": lambda p, x: rev(rev(x)) * 0.5,
        "add": lambda p, a, b: a + b, "sub": lambda p, a, b: a - b, "mul": lambda p, a, b: a * b,
        "div": lambda p, a, b: a / (1.5 + b * b),
        "maximum": lambda p, a, b: torch.maximum(a, b + 0.013),
        "sum0": lambda p, x: torch.sum(x, 0) if x.ndim == 2 else x,
        "mean0": lambda p, x: x - torch.mean(x, 0, keepdim=True) if x.ndim == 2 else x,
        "lse": lambda p, x: x - torch.logsumexp(x, -1, keepdim=True),
        "flip": lambda p, x: flip(x),
        "int-index": lambda p, x: x[-2] if x.ndim == 2 else x[2] * x,
        # x[..., ::-2] is flip(x)[..., ::2] (entries 3, 1), x[..., -2::-2] is flip(x)[..., 1::2]
        "negative-steps": lambda p, x: flip(torch.cat([flip(x)[..., ::2], flip(x)[..., 1::2]],
                                                      -1), 0),
        "roll-slices": lambda p, x: torch.cat([x[..., 1:], x[..., :1]], -1),
        "int-array": lambda p, x: (x[torch.as_tensor(ROWS)][..., torch.as_tensor(IDX)]
                                   if x.ndim == 2 else x[torch.as_tensor(IDX)]),
        "bool-mask": lambda p, x: (x[torch.as_tensor(MASK2)] if x.ndim == 2 else
                                   torch.cat([x[torch.as_tensor(MASK1)],
                                              x[torch.as_tensor(~MASK1)]])),
        "einsum": lambda p, *xs: torch.einsum(p[0], *xs, *((mt,) if p[1] else ())),
    }


def check_torch(seed, torch):
    prog = make_program(seed)
    rng = np.random.default_rng(seed + 10**6)
    x, v = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    f = lambda z: run(prog, z, "ga")
    what = describe(seed, prog) + " (PyTorch)"
    xt = torch.tensor(x, requires_grad=True)
    yt = run(prog, xt, "torch", total_of=torch.sum)
    (gt,) = torch.autograd.grad(yt, xt, create_graph=True)
    hvt = None
    if gt.requires_grad:                    # else the program is linear: its Hessian is 0
        (hvt,) = torch.autograd.grad(gt, xt, grad_outputs=torch.tensor(v), allow_unused=True)
    hvt = np.zeros_like(x) if hvt is None else hvt.detach().numpy()
    np.testing.assert_allclose(f(x).numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12,
                               err_msg=what)
    np.testing.assert_allclose(ga.grad(f)(x), gt.detach().numpy(), rtol=1e-10, atol=1e-12,
                               err_msg=what)
    np.testing.assert_allclose(ga.hvp(f, x, v)[1], hvt, rtol=1e-9, atol=1e-11, err_msg=what)


def test_random_programs_agree_with_torch():
    torch = pytest.importorskip("torch")
    TORCH.update(_torch_ops(torch))
    for seed in range(100):
        check_torch(seed, torch)


@pytest.mark.slow
def test_many_random_programs_agree_with_autograd():
    """GRAPHAD_PROGRAMS=5000 pytest -m slow tests/test_differential.py: N more float64 programs
    (random layouts) and N more float32 ones (and N against PyTorch when it is importable)."""
    n = int(os.environ.get("GRAPHAD_PROGRAMS", "0"))
    if not n:
        pytest.skip("set GRAPHAD_PROGRAMS to the number of extra random programs to run")
    for seed in range(200, 200 + n):
        check(seed)
        check32(seed)
    try:
        import torch
    except ImportError:
        return
    TORCH.update(_torch_ops(torch))
    for seed in range(100, 100 + n):
        check_torch(seed, torch)
