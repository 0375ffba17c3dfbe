"""The C kernels and BLAS matmul (csrc/ga_kernels.c, graphad/_kernels.pyx) against NumPy: every
elementwise op on the contiguous, scalar (stride-0) and fallback paths, float32 and float64; matmul
on C/F-ordered, transposed, strided and broadcast-batched views; accumulate, sum_rows."""
import pathlib
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphad as ga
from graphad import _kernels as K
from conftest import broadcast_shapes, seeds, shapes

HEADER = pathlib.Path(__file__).resolve().parents[1] / "csrc" / "ga_kernels.h"


def _enum(name):
    """Op codes as the C header numbers them (the enums are not exported to Python)."""
    body = re.search(r"enum\s+" + name + r"\s*\{(.*?)\}", HEADER.read_text(), re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return {n.strip(): i for i, n in enumerate(body.split(",")) if n.strip()}


BIN = _enum("ga_binary_op")
UN = _enum("ga_unary_op")


def _mul0(a, b):
    with np.errstate(all="ignore"):
        return np.where(np.asarray(a) == 0, 0, np.multiply(a, b)).astype(np.result_type(a, b))


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x.astype(np.float64)))).astype(x.dtype)


BIN_REF = {
    "GA_ADD": np.add, "GA_SUB": np.subtract, "GA_MUL": np.multiply, "GA_DIV": np.true_divide,
    "GA_POW": np.power, "GA_MAXIMUM": np.maximum, "GA_MINIMUM": np.minimum, "GA_MUL0": _mul0,
    "GA_ARCTAN2": np.arctan2, "GA_HYPOT": np.hypot, "GA_LOGADDEXP": np.logaddexp,
    "GA_LOGADDEXP2": np.logaddexp2, "GA_FMAX": np.fmax, "GA_FMIN": np.fmin,
    "GA_TANH_GRAD": lambda g, y: _mul0(g, 1 - y * y),
    "GA_SIGMOID_GRAD": lambda g, y: _mul0(g, y * (1 - y)),
    "GA_RELU_GRAD": lambda g, y: np.where(y > 0, g, 0).astype(np.result_type(g, y)),
    "GA_DIV0": lambda g, x: _mul0(g, np.true_divide(1, x, where=x != 0,
                                                    out=np.full(np.shape(x), np.inf))),
}
UN_REF = {
    "GA_NEG": np.negative, "GA_EXP": np.exp, "GA_LOG": np.log, "GA_LOG1P": np.log1p,
    "GA_SIN": np.sin, "GA_COS": np.cos, "GA_TAN": np.tan, "GA_TANH": np.tanh, "GA_SINH": np.sinh,
    "GA_COSH": np.cosh, "GA_SQRT": np.sqrt, "GA_SQUARE": np.square, "GA_ABS": np.abs,
    "GA_SIGN": np.sign, "GA_RELU": lambda x: np.maximum(x, 0).astype(x.dtype),
    "GA_SIGMOID": _sigmoid, "GA_SOFTPLUS": lambda x: np.logaddexp(x, 0).astype(x.dtype),
    "GA_RECIPROCAL": np.reciprocal, "GA_STEP": lambda x: (x > 0).astype(x.dtype),
    "GA_EXPM1": np.expm1, "GA_EXP2": np.exp2, "GA_LOG2": np.log2, "GA_LOG10": np.log10,
    "GA_ARCSIN": np.arcsin, "GA_ARCCOS": np.arccos, "GA_ARCTAN": np.arctan,
    "GA_ARCSINH": np.arcsinh, "GA_ARCCOSH": np.arccosh, "GA_ARCTANH": np.arctanh,
}
# input ranges where each op is defined (and not overflowing)
UN_RANGE = {"GA_LOG": (0.1, 5), "GA_LOG1P": (-0.9, 5), "GA_SQRT": (0.0, 5),
            "GA_TAN": (-1.3, 1.3), "GA_RECIPROCAL": (0.2, 3), "GA_LOG2": (0.1, 5),
            "GA_LOG10": (0.1, 5), "GA_ARCSIN": (-0.99, 0.99), "GA_ARCCOS": (-0.99, 0.99),
            "GA_ARCCOSH": (1.0, 5), "GA_ARCTANH": (-0.99, 0.99)}


def test_every_op_has_a_reference():
    assert set(BIN) == set(BIN_REF) and set(UN) == set(UN_REF)


def _tol(dtype):
    return dict(rtol=1e-14, atol=1e-300) if dtype == np.float64 else dict(rtol=3e-6, atol=1e-30)


def _bin_inputs(name, rng, sa, sb, dtype):
    a = rng.uniform(-3, 3, sa)
    b = rng.uniform(-3, 3, sb)
    if name == "GA_POW":
        a = np.abs(a) + 0.1
    if name in ("GA_DIV", "GA_DIV0"):
        b = np.where(np.abs(b) < 0.2, 1.0, b)
    if name in ("GA_MUL0", "GA_TANH_GRAD", "GA_SIGMOID_GRAD", "GA_DIV0"):
        a = np.where(np.abs(a) < 1.0, 0.0, a)            # plenty of exact zeros
    return np.asarray(a, dtype), np.asarray(b, dtype)


def _check_binary(name, a, b, dtype):
    got = K.binary(BIN[name], a, b)
    want = np.asarray(BIN_REF[name](a, b))
    assert isinstance(got, np.ndarray)
    assert got.shape == want.shape, (np.shape(a), np.shape(b))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, **_tol(dtype))


# ---------------------------------------------------------------------------------------------
# binary

@pytest.mark.parametrize("name", sorted(BIN_REF))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(shape=shapes(max_dims=3, max_side=5), seed=seeds)
def test_binary_same_shape(name, dtype, shape, seed):
    a, b = _bin_inputs(name, np.random.default_rng(seed), shape, shape, dtype)
    _check_binary(name, a, b, dtype)


@pytest.mark.parametrize("name", sorted(BIN_REF))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_scalar_stride_zero_path(name, dtype):
    rng = np.random.default_rng(0)
    a, b = _bin_inputs(name, rng, (3, 5), (3, 5), dtype)
    s = float(_bin_inputs(name, rng, (), (), np.float64)[1])
    sa = abs(s) + 0.5
    # Python scalars on either side
    for x, y in ((a, s), (sa, b), (a, 2), (3, b)):
        got = K.binary(BIN[name], x, y)
        want = np.asarray(BIN_REF[name](x, y))
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **_tol(dtype))
    # size-1 arrays on either side: (), (1,), (1, 1)
    for one in ((), (1,), (1, 1)):
        o = np.full(one, sa, dtype)
        _check_binary(name, a, o, dtype)
        _check_binary(name, o, b, dtype)
    _check_binary(name, np.full((), sa, dtype), np.full((), 1.5, dtype), dtype)
    _check_binary(name, np.full((1,), sa, dtype), np.full((1, 1), 1.5, dtype), dtype)
    _check_binary(name, np.full((3,), sa, dtype), np.full((1, 1), 1.5, dtype), dtype)


@pytest.mark.parametrize("name", sorted(BIN_REF))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_python_number_is_read_in_place_as_a_0d_array_would_be(name, dtype):
    """A Python number operand is read from a C double (float) at stride 0, not made into an
    array: the same bits as with the number as a 0-d array, on 0-d, n-d and strided arrays."""
    rng = np.random.default_rng(1)
    a, _ = _bin_inputs(name, rng, (4, 6), (4, 6), dtype)
    s = float(abs(_bin_inputs(name, rng, (), (), np.float64)[1])) + 0.5
    for x in (a, a[:, ::2], a.T, np.asarray(a[1, 2]), a[:0]):
        for v in (s, 3, -2.0):
            as_array = np.full((), v, dtype)
            for got, want in ((K.binary(BIN[name], x, v), K.binary(BIN[name], x, as_array)),
                              (K.binary(BIN[name], v, x), K.binary(BIN[name], as_array, x))):
                assert got.dtype == dtype and got.shape == x.shape
                np.testing.assert_array_equal(got, want)
            np.testing.assert_allclose(K.binary(BIN[name], x, v),
                                       np.asarray(BIN_REF[name](x, v)), **_tol(dtype))


@pytest.mark.parametrize("name", sorted(BIN_REF))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_with_a_broadcast_value(name, dtype):
    # a reduction's cotangent: one value broadcast (stride 0) against a full or strided array
    rng = np.random.default_rng(3)
    a, b = _bin_inputs(name, rng, (4, 6), (4, 6), dtype)
    one = K.broadcast_to(np.asarray(b[0, 0]), (4, 6))
    assert one.strides == (0, 0)
    for x, y in ((a, one), (one, a), (a.T.copy().T, one), (one, a[:, ::-1]), (a[::2], one[::2])):
        _check_binary(name, x, y, dtype)


@pytest.mark.parametrize("shape,target", [((), (3, 4)), ((1,), (2, 3)), ((4, 1), (2, 4, 5)),
                                          ((3,), (3,)), ((2, 1, 3), (2, 5, 3))])
def test_broadcast_to_matches_numpy(shape, target):
    x = np.random.default_rng(4).standard_normal(shape)
    got, want = K.broadcast_to(x, target), np.broadcast_to(x, target)
    assert got.shape == want.shape and got.strides == want.strides
    assert not got.flags.writeable
    np.testing.assert_array_equal(got, want)
    assert np.shares_memory(got, x)
    with pytest.raises(ValueError):
        K.broadcast_to(np.ones((2, 3)), (4, 3))


@pytest.mark.parametrize("name", sorted(BIN_REF))
@given(pair=broadcast_shapes(2, max_side=5), seed=seeds)
def test_binary_general_broadcasting(name, pair, seed):
    for dtype in (np.float64, np.float32):
        a, b = _bin_inputs(name, np.random.default_rng(seed), *pair, dtype)
        _check_binary(name, a, b, dtype)


@pytest.mark.parametrize("name", sorted(BIN_REF))
def test_binary_fallbacks(name):
    rng = np.random.default_rng(1)
    a, b = _bin_inputs(name, rng, (4, 6), (4, 6), np.float64)
    # non-contiguous views
    _check_binary(name, a[:, ::2], b[:, 1::2], np.float64)
    _check_binary(name, a.T, b.T, np.float64)
    _check_binary(name, a[::-1], b, np.float64)
    # mixed dtypes promote as NumPy does
    got = K.binary(BIN[name], a.astype(np.float32), b)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, BIN_REF[name](a.astype(np.float32), b), rtol=1e-14)
    # integer data
    i = np.arange(1, 7).reshape(2, 3)
    np.testing.assert_allclose(K.binary(BIN[name], i, i.astype(np.float64)),
                               BIN_REF[name](i, i.astype(np.float64)))
    # empty
    e = np.zeros((0, 3))
    assert K.binary(BIN[name], e, e).shape == (0, 3)
    assert K.binary(BIN[name], e, np.ones(1)).shape == (0, 3)


def test_binary_does_not_modify_its_inputs_and_returns_a_new_array():
    a, b = np.arange(1.0, 7.0), np.arange(2.0, 8.0)
    ka, kb = a.copy(), b.copy()
    for code in BIN.values():
        out = K.binary(code, a, b)
        assert not np.shares_memory(out, a) and not np.shares_memory(out, b)
    np.testing.assert_array_equal(a, ka)
    np.testing.assert_array_equal(b, kb)


def test_maximum_minimum_propagate_nan():
    a = np.array([np.nan, 1.0, 2.0, np.nan])
    b = np.array([1.0, np.nan, 1.0, np.nan])
    for name, ref in (("GA_MAXIMUM", np.maximum), ("GA_MINIMUM", np.minimum)):
        np.testing.assert_array_equal(K.binary(BIN[name], a, b), ref(a, b))
        np.testing.assert_array_equal(K.binary(BIN[name], a, 1.5), ref(a, 1.5))
        np.testing.assert_array_equal(K.binary(BIN[name], np.nan, b), ref(np.nan, b))


def test_mul0_is_zero_where_the_first_factor_is_zero():
    g = np.array([0.0, 0.0, 2.0, -0.0, 1.0])
    d = np.array([np.inf, np.nan, 3.0, -np.inf, np.inf])
    for dtype in (np.float64, np.float32):
        out = K.binary(BIN["GA_MUL0"], g.astype(dtype), d.astype(dtype))
        np.testing.assert_array_equal(out, [0.0, 0.0, 6.0, 0.0, np.inf])
        out = K.binary(BIN["GA_MUL0"], np.zeros(3, dtype), np.inf)
        np.testing.assert_array_equal(out, np.zeros(3))
        out = K.binary(BIN["GA_MUL0"], np.zeros((), dtype), np.full(3, np.nan, dtype))
        np.testing.assert_array_equal(out, np.zeros(3))


def test_pow_special_values_match_numpy():
    a = np.array([0.0, 0.0, -2.0, -2.0, 4.0, np.inf, 1.0])
    b = np.array([0.0, -1.0, 3.0, 0.5, -0.5, -1.0, np.nan])
    with np.errstate(all="ignore"):
        want = np.power(a, b)
    np.testing.assert_array_equal(K.binary(BIN["GA_POW"], a, b), want)


# ---------------------------------------------------------------------------------------------
# unary

def _un_input(name, rng, shape, dtype):
    lo, hi = UN_RANGE.get(name, (-4, 4))
    return np.asarray(rng.uniform(lo, hi, shape), dtype)


@pytest.mark.parametrize("name", sorted(UN_REF))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(shape=shapes(max_dims=3, max_side=6), seed=seeds)
def test_unary(name, dtype, shape, seed):
    x = _un_input(name, np.random.default_rng(seed), shape, dtype)
    got = K.unary(UN[name], x)
    want = UN_REF[name](x)
    assert isinstance(got, np.ndarray) and got.shape == x.shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, **_tol(dtype))


@pytest.mark.parametrize("name", sorted(UN_REF))
def test_unary_views_integers_and_empty(name):
    rng = np.random.default_rng(2)
    x = _un_input(name, rng, (5, 8), np.float64)
    for v in (x.T, x[:, ::3], x[::-1, 1:], np.asfortranarray(x)):
        np.testing.assert_allclose(K.unary(UN[name], v), UN_REF[name](v), rtol=1e-14)
    i = np.arange(1, 5)
    got = K.unary(UN[name], i)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, UN_REF[name](i.astype(np.float64)), rtol=1e-14)
    assert K.unary(UN[name], np.zeros((0, 2))).shape == (0, 2)
    assert K.unary(UN[name], np.float64(1.5)).shape == ()
    np.testing.assert_allclose(K.unary(UN[name], 1.5), UN_REF[name](np.array(1.5)), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["GA_EXP", "GA_LOG", "GA_LOG1P", "GA_SIN", "GA_COS", "GA_TAN",
                                  "GA_TANH", "GA_SINH", "GA_COSH"])
def test_transcendentals_are_numpys_own_loops(name, dtype):
    # NumPy's SIMD inner loops are called directly: the same bits as the ufunc, any length
    rng = np.random.default_rng(6)
    for n in (1, 7, 64, 1001):
        x = (rng.uniform(0.05, 1.4, n)).astype(dtype)
        np.testing.assert_array_equal(K.unary(UN[name], x), UN_REF[name](x))
    # an unaligned buffer goes to graphad's own loop, with the same values to rounding
    vals = np.linspace(0.1, 1.3, 32).astype(dtype)
    raw = np.zeros(vals.nbytes + 1, np.uint8)
    raw[1:] = vals.view(np.uint8)
    x = np.frombuffer(raw.data, dtype, count=32, offset=1)
    assert not x.flags.aligned
    np.testing.assert_allclose(K.unary(UN[name], x), UN_REF[name](np.array(x)), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_and_softplus_from_numpys_exp_stay_finite(dtype):
    # built from exp(-|x|) (NumPy's loop, in place) so that nothing overflows at any magnitude
    x = np.concatenate([np.linspace(-800, 800, 1001), [0.0, -0.0, 1e-30, -1e-30]]).astype(dtype)
    ref = x.astype(np.longdouble)                      # the references in extended precision
    sig, sp = K.unary(UN["GA_SIGMOID"], x), K.unary(UN["GA_SOFTPLUS"], x)
    assert sig.dtype == sp.dtype == dtype and np.all(np.isfinite(sig)) and np.all(np.isfinite(sp))
    tol = dict(rtol=4 * np.finfo(dtype).eps, atol=np.finfo(dtype).tiny * 1024)   # subnormals
    np.testing.assert_allclose(sig, (1 / (1 + np.exp(-ref))).astype(dtype), **tol)
    np.testing.assert_allclose(sp, np.logaddexp(ref, 0).astype(dtype), **tol)


def test_unary_special_values():
    x = np.array([-np.inf, -800.0, -1.0, -0.0, 0.0, 1.0, 800.0, np.inf, np.nan])
    for dtype in (np.float64, np.float32):
        v = x.astype(dtype)
        with np.errstate(all="ignore"):
            for name in ("GA_NEG", "GA_ABS", "GA_SIGN", "GA_RELU", "GA_SQUARE", "GA_STEP"):
                np.testing.assert_array_equal(K.unary(UN[name], v), UN_REF[name](v),
                                              err_msg=f"{name} {dtype}")
            for name in ("GA_EXP", "GA_TANH", "GA_SINH", "GA_COSH"):     # inf, nan as NumPy
                np.testing.assert_allclose(K.unary(UN[name], v), UN_REF[name](v),
                                           rtol=1e-6, err_msg=f"{name} {dtype}")
            sig = K.unary(UN["GA_SIGMOID"], v)
            np.testing.assert_allclose(sig[:-1], [0, 0, 1 / (1 + np.e), 0.5, 0.5,
                                                  1 / (1 + np.exp(-1.0)), 1, 1], rtol=1e-6)
            sp = K.unary(UN["GA_SOFTPLUS"], v)
            np.testing.assert_allclose(sp[:-1], np.logaddexp(x[:-1], 0), rtol=1e-6)
            assert np.isnan(sig[-1]) and np.isnan(sp[-1])


def test_unary_does_not_modify_its_input():
    x = np.linspace(0.1, 2.0, 7)
    keep = x.copy()
    for code in UN.values():
        out = K.unary(code, x)
        assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(x, keep)


# ---------------------------------------------------------------------------------------------
# matmul

def _mm_check(a, b):
    got = K.matmul(a, b)
    want = np.matmul(a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-12 if want.dtype == np.float64 else 2e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, a.shape[-1]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_layouts(dtype):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((7, 9)).astype(dtype)
    B = rng.standard_normal((9, 5)).astype(dtype)
    C = np.asfortranarray(A)
    big = rng.standard_normal((20, 30)).astype(dtype)
    views_a = [A, C, A.T.T, np.ascontiguousarray(A.T).T, big[:7, :9], big[2:16:2, 3:30:3],
               big[:9, :7].T, big[::-2, :9][:7], A[:, ::-1], big[:7, :1], big[:1, :9]]
    for a in views_a:
        for b in (B[: a.shape[1]], np.asfortranarray(B)[: a.shape[1]], big[: a.shape[1], :5],
                  big[:5, : a.shape[1]].T, big[:a.shape[1], 5:6]):
            _mm_check(a, b)


@st.composite
def strided_view(draw, dtype):
    """A random view of a random array: slices with steps (negative too), maybe transposed."""
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    srow, scol = draw(st.sampled_from([1, 2, -1, 3])), draw(st.sampled_from([1, 2, -1, -2]))
    base = np.arange(1, rows * abs(srow) * cols * abs(scol) + 1, dtype=dtype) / 7.0
    base = base.reshape(rows * abs(srow), cols * abs(scol))
    if draw(st.booleans()):
        base = np.asfortranarray(base)
    v = base[::srow, ::scol]
    return v.T if draw(st.booleans()) else v


@given(a=strided_view(np.float64), b=strided_view(np.float64), data=st.data())
def test_matmul_random_strided_views(a, b, data):
    # make b's rows match a's columns by slicing or tiling
    k = a.shape[1]
    b = np.resize(b, (k, b.shape[1])) if b.shape[0] != k else b
    _mm_check(a, b)
    _mm_check(a.astype(np.float32), b.astype(np.float32))


@pytest.mark.parametrize("sa,sb", [((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)),
                                   ((2, 1, 3, 4), (5, 4, 2)), ((1, 3, 4), (6, 4, 2)),
                                   ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((4,), (4,)),
                                   ((4,), (4, 3)), ((3, 4), (4,)), ((2, 0, 4), (4, 3)),
                                   ((2, 3, 0), (0, 3)), ((0, 3, 4), (4, 2))])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_batched_and_vectors(sa, sb, dtype):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    _mm_check(a, b)
    if len(sa) >= 3:
        _mm_check(np.swapaxes(np.swapaxes(a, -1, -2).copy(), -1, -2), b)   # F-ordered blocks
        _mm_check(a[..., ::-1], b[::-1] if b.ndim == 1 else b[..., ::-1, :])


@given(bshapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3,
                                                 max_side=3),
       mkn=st.tuples(*[st.integers(1, 4)] * 3), ta=st.booleans(), tb=st.booleans(),
       seed=seeds)
def test_matmul_broadcast_batches_with_transposed_blocks(bshapes, mkn, ta, tb, seed):
    m, k, n = mkn
    ba, bb = bshapes.input_shapes
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(ba + ((k, m) if ta else (m, k)))
    b = rng.standard_normal(bb + ((n, k) if tb else (k, n)))
    a = np.swapaxes(a, -1, -2) if ta else a
    b = np.swapaxes(b, -1, -2) if tb else b
    _mm_check(a, b)
    _mm_check(np.broadcast_to(a, (2,) + a.shape), b)     # a stride-0 batch axis


def test_matmul_mixed_and_integer_dtypes_fall_back_to_numpy():
    a = np.arange(6.0).reshape(2, 3)
    b = np.arange(6).reshape(3, 2)
    _mm_check(a, b)
    _mm_check(a.astype(np.float32), b.astype(np.float64))
    _mm_check(b.T, b)


def test_matmul_shape_errors():
    with pytest.raises(ValueError):
        K.matmul(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError):
        K.matmul(np.ones((2, 2, 3)), np.ones((3, 3, 2)))


def test_matmul_does_not_modify_or_alias_inputs():
    a = np.arange(12.0).reshape(3, 4)
    b = np.arange(8.0).reshape(4, 2)
    ka, kb = a.copy(), b.copy()
    c = K.matmul(a, b)
    assert not np.shares_memory(c, a) and not np.shares_memory(c, b)
    np.testing.assert_array_equal(a, ka)
    np.testing.assert_array_equal(b, kb)


# ---------------------------------------------------------------------------------------------
# accumulate, sum_rows

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_accumulate(dtype):
    acc = np.arange(6, dtype=dtype).reshape(2, 3)
    x = np.ones((2, 3), dtype)
    out = K.accumulate(acc, x)
    assert out is acc
    np.testing.assert_array_equal(acc, np.arange(6).reshape(2, 3) + 1)
    # another shape: the sum, as a new array
    out = K.accumulate(acc, np.ones(3, dtype))
    np.testing.assert_array_equal(out, np.arange(6).reshape(2, 3) + 2)
    assert out.dtype == dtype
    # acc read-only or of a smaller shape: a new array, acc untouched
    ro = np.zeros(3, dtype)
    ro.flags.writeable = False
    out = K.accumulate(ro, np.ones(3, dtype))
    assert out is not ro and np.all(ro == 0) and np.all(out == 1)
    small = np.zeros(3, dtype)
    out = K.accumulate(small, np.ones((2, 3), dtype))
    assert out.shape == (2, 3) and np.all(small == 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (0, 4), (4, 0), (17, 9)])
def test_sum_rows(dtype, shape):
    x = np.random.default_rng(5).standard_normal(shape).astype(dtype)
    got = K.sum_rows(x)
    assert got.shape == (shape[1],) and got.dtype == dtype
    np.testing.assert_allclose(got, x.sum(axis=0), **_tol(dtype) if dtype == np.float64
                               else dict(rtol=1e-5, atol=1e-5))
    np.testing.assert_allclose(K.sum_rows(np.asfortranarray(x)), x.sum(axis=0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows,cols", [(1, 1), (1, 40), (40, 1), (16, 16), (17, 33), (100, 7),
                                       (0, 5), (5, 0)])
def test_contiguous_transposes_column_major_matrices(rows, cols, dtype):
    x = np.random.default_rng(rows * 100 + cols).standard_normal((cols + 3, rows)).astype(dtype)
    for v in (x[:cols].T, x[:cols, ::-1].T, x.T[:, 2:], np.asfortranarray(x[:cols].T)):
        got = K.contiguous(v)
        assert got.flags.c_contiguous and got.dtype == dtype
        np.testing.assert_array_equal(got, v)
        assert not np.shares_memory(got, x) or v.flags.c_contiguous
    c = np.ascontiguousarray(x)
    assert K.contiguous(c) is c
    np.testing.assert_array_equal(K.contiguous([[1.0, 2.0]]), [[1.0, 2.0]])


@pytest.mark.skipif(not K.own_gemm_available(),
                    reason="graphad's own GEMM needs a CPU with AVX-512")
@pytest.mark.parametrize("m,k,n", [(2, 1, 24), (3, 7, 25), (4, 64, 31), (5, 3, 47), (9, 17, 48),
                                   (13, 64, 100), (1, 8, 24), (31, 33, 129), (6, 5, 8),
                                   (7, 9, 9), (10, 256, 10), (11, 3, 15), (17, 40, 23),
                                   (12, 7, 17), (10, 1, 40), (9, 2, 8), (2, 9, 7), (1, 5, 3),
                                   (5, 9, 47), (11, 17, 48), (13, 40, 33),
                                   # the sizes the dispatch sends to it: medium, thin outputs
                                   (128, 64, 128), (300, 700, 24), (3, 512, 200)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_own_gemm_matches_blas(m, k, n, dtype):
    # every tile shape and tail (8/4/2/1-row tiles and the 9-12-row ones; strips of 3 and 2
    # vectors (8 doubles or 16 floats each) with the last vector masked; odd and even k for the
    # two-sum tiles), with A row- or column-major and B row-major (rows longer than n) or
    # column-major (W^T: dot products for m <= 4, else a tiled transpose of the smaller side)
    rng = np.random.default_rng(m * 1000 + n)
    A = rng.standard_normal((m, k)).astype(dtype)
    Bwide = rng.standard_normal((k, n + 5)).astype(dtype)
    tol = (dict(rtol=1e-13, atol=1e-13 * k) if dtype == np.float64 else
           dict(rtol=1e-5, atol=1e-6 * k))
    prev = K.set_own_gemm(True, always=True)
    try:
        for a in (A, np.asfortranarray(A)):
            # B row-major (a view with longer rows, or contiguous) or column-major (W^T)
            for b in (Bwide[:, :n], np.ascontiguousarray(Bwide[:, :n]),
                      np.ascontiguousarray(Bwide[:, :n].T).T,
                      np.ascontiguousarray(Bwide.T)[:n].T):      # column-major, long columns
                K.set_own_gemm(True, always=True)
                own = K.matmul(a, b)
                assert own.flags.c_contiguous
                K.set_own_gemm(False)
                blas = K.matmul(a, b)
                assert own.dtype == dtype
                np.testing.assert_allclose(own, blas, **tol)
                np.testing.assert_allclose(own, a.astype(np.float64) @ b.astype(np.float64),
                                           **tol)
    finally:
        K.set_own_gemm(prev)


@pytest.mark.skipif(not K.own_gemm_available(),
                    reason="graphad's own GEMM needs a CPU with AVX-512")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_own_gemm_in_batched_products(dtype):
    # a stack times a stack (broadcast batch axes, transposed blocks): one product per matrix
    rng = np.random.default_rng(12)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    a = rng.standard_normal((3, 1, 9, 20)).astype(dtype)
    b = rng.standard_normal((1, 4, 20, 26)).astype(dtype)
    bt = np.swapaxes(rng.standard_normal((4, 26, 20)).astype(dtype), -1, -2)
    prev = K.set_own_gemm(True, always=True)
    try:
        for x, y in ((a, b), (a, bt), (np.swapaxes(a, -1, -2).copy().swapaxes(-1, -2), b)):
            own = K.matmul(x, y)
            K.set_own_gemm(False)
            blas = K.matmul(x, y)
            K.set_own_gemm(True, always=True)
            assert own.dtype == dtype and own.shape == np.broadcast_shapes(
                x.shape[:-2], y.shape[:-2]) + (9, 26)
            np.testing.assert_allclose(own, blas, **tol)
            np.testing.assert_allclose(own, x.astype(np.float64) @ y.astype(np.float64), **tol)
    finally:
        K.set_own_gemm(prev)


@pytest.mark.skipif(not K.own_gemm_available(),
                    reason="graphad's own GEMM needs a CPU with AVX-512")
def test_own_gemm_dispatch_rules():
    # the measured rules (_use_own_gemm): with SciPy on OpenBLAS and BLAS on one thread, the own
    # kernel takes the small/medium products and thin outputs where it won, BLAS the rest; with
    # any other BLAS, or switched off, BLAS takes everything
    from threadpoolctl import threadpool_limits
    rule = K.own_gemm_rule
    prev, prev_blas = K.set_own_gemm(True), K._blas
    try:
        K._blas = None
        with threadpool_limits(1):
            if not K._find_blas()[0]:
                pytest.skip("SciPy's BLAS is not OpenBLAS: everything goes to BLAS")
            assert rule(10, 256, 10) and rule(128, 128, 128) and rule(3000, 3000, 24)
            assert rule(128, 128, 128, a_t=True) and not rule(128, 128, 10, a_t=True)
            assert rule(2, 256, 1000, b_t=True) and rule(1000, 256, 10, b_t=True)
            assert rule(128, 10, 128, b_t=True)
            assert not rule(10, 256, 10, b_t=True) and not rule(256, 10, 512, b_t=True)
            assert rule(10, 256, 100) and not rule(2, 256, 100) and not rule(4, 256, 100)
            assert not rule(32, 32, 10) and not rule(128, 256, 128)
            assert not rule(512, 1024, 1024) and not rule(512, 1024, 1024, b_t=True)
            K._blas = (False, None, True)            # MKL, BLIS, ...: all to BLAS
            assert not rule(10, 256, 10) and not rule(2, 256, 1000, b_t=True)
        K._blas = None
        with threadpool_limits(2):                   # BLAS threaded: only what it runs serially
            if K._find_blas()[1]() == 2:             # (the count read by the C function too)
                assert not rule(128, 128, 128) and rule(10, 256, 10)
        with threadpool_limits(1):
            assert rule(128, 128, 128)               # read again on every call
        K._blas = None
        K.set_own_gemm(False)
        assert not rule(10, 256, 10)
        K.set_own_gemm(True, always=True)
        assert rule(512, 1024, 1024)
    finally:
        K.set_own_gemm(prev)
        K._blas = prev_blas


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matmul_of_an_identity_block_copies_rows(dtype):
    """An identity block (the seed of jacfwd / jacrev) on the left selects rows of the right
    operand, exactly, for matrices, vectors, transposed views and mixed dtypes; a plain array
    with the same entries takes the GEMM."""
    unit = K.unit_block((6,), 2, 3, dtype)
    assert not unit.flags.writeable
    B = np.random.default_rng(0).standard_normal((6, 4)).astype(dtype)
    for b in (B, B[:, 0], np.asfortranarray(B), B.T.copy().T):
        got = K.matmul(unit, b)
        np.testing.assert_array_equal(got, b[2:5])
        assert got.dtype == dtype and got.flags.c_contiguous
    assert K.matmul(unit, B.astype(np.float64)).dtype == np.float64
    np.testing.assert_allclose(K.matmul(np.array(unit), B), B[2:5], rtol=1e-6)
    assert K.unit_block((6,), 2, 3, dtype) is unit          # cached


def test_fused_product_of_a_few_rows_only_where_blas_runs_them_fast():
    # [x; v] @ A^T as one product of 2 rows: on OpenBLAS's AVX2 kernels (no small-matrix path)
    # it took 4x one GEMV, so there the value and the tangent are two products (None: the plain
    # product and the JVP rule run); the numbers are the same either way
    rng = np.random.default_rng(0)
    A, x, v = rng.standard_normal((200, 500)), rng.standard_normal(500), rng.standard_normal(500)
    prev, prev_blas = K.set_own_gemm(False), K._blas
    try:
        K._blas = (True, None, False)
        assert K.matmul_fused(None, (A, x), (None, v)) is None
        K._blas = (True, None, True)
        val, tan = K.matmul_fused(None, (A, x), (None, v))
        np.testing.assert_allclose(val, A @ x, rtol=1e-13)
        np.testing.assert_allclose(tan, A @ v, rtol=1e-13)
    finally:
        K.set_own_gemm(prev)
        K._blas = prev_blas


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_and_sigmoid_chain_rule_kernels_equal_the_composite_bit_for_bit(dtype):
    # tanh's and sigmoid's rules are one kernel each (g (1 - y^2), g y (1 - y)); they must give
    # the numbers of the three-op composite they replace, 0 where g == 0 even next to NaN/inf,
    # and the NumPy fallback (another dtype mix) the same
    rng = np.random.default_rng(0)
    g = rng.standard_normal((4, 5)).astype(dtype)
    g[0, :2] = 0
    y = rng.uniform(-1, 1, 5).astype(dtype)
    y[0], y[1] = np.nan, np.inf
    with np.errstate(invalid="ignore"):
        want_t = np.where(g == 0, dtype(0), g * (1 - y * y))
        want_s = np.where(g == 0, dtype(0), g * (y * (1 - y)))
        for op, want in ((BIN["GA_TANH_GRAD"], want_t), (BIN["GA_SIGMOID_GRAD"], want_s)):
            got = K.binary(op, g, y)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, want)
            gi = (3 * g).astype(np.int64)                    # the NumPy fallback
            np.testing.assert_allclose(K.binary(op, gi, y), np.where(gi == 0, 0, gi * (
                (1 - y * y) if op == BIN["GA_TANH_GRAD"] else y * (1 - y))), rtol=1e-6)
    x = rng.standard_normal(7)
    for f, d in ((ga.tanh, lambda x: 1 - np.tanh(x) ** 2),
                 (ga.sigmoid, lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2)):
        np.testing.assert_allclose(ga.grad(lambda x: ga.sum(f(x)))(x), d(x), rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# 0-d results: a freed one is handed out again (_kernels._new_scalar), never one still in use

def _scalars(n, dtype, start=0.0):
    return [K.unary(UN["GA_SIN"], np.asarray(start + 0.01 * i, dtype)) for i in range(n)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_0d_result_nobody_holds_is_reused_and_one_held_never_is(dtype):
    held = _scalars(40, dtype)                 # all alive: none may be handed out again
    values = [float(h) for h in held]
    freed = K.unary(UN["GA_SIN"], np.asarray(0.7, dtype))
    freed_id = id(freed)
    del freed
    later = _scalars(20, dtype, start=1.0)
    assert freed_id in {id(r) for r in later}  # the dropped one came back, with its new value
    assert len({id(r) for r in held + later}) == len(held) + len(later)
    assert [float(h) for h in held] == values
    for i, r in enumerate(later):
        want = float(np.sin(dtype(1.0 + 0.01 * i)))
        assert r.dtype == dtype and r.shape == () and float(r) == want


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_0d_result_seen_through_a_view_or_a_weak_reference_is_never_reused(dtype):
    import weakref
    a = K.unary(UN["GA_SIN"], np.asarray(0.25, dtype))
    view = a.view()                             # keeps a alive through its base
    b = K.unary(UN["GA_SIN"], np.asarray(0.5, dtype))
    weak = weakref.ref(b)
    c = K.unary(UN["GA_SIN"], np.asarray(0.75, dtype))
    c.flags.writeable = False
    c_ref = weakref.ref(c)
    want = (float(view), float(b), float(c))
    del a, b, c
    later = _scalars(50, dtype, start=2.0)
    assert float(view) == want[0]
    for ref, value in ((weak, want[1]), (c_ref, want[2])):
        old = ref()                             # alive only while the ring still holds it
        assert old is None or (float(old) == value and all(r is not old for r in later))


def test_scalar_graph_gradients_are_unchanged_by_reuse():
    """A long scalar chain (many 0-d values made and freed) against the same chain in NumPy."""
    x = ga.tensor(0.3, requires_grad=True)
    y, v, d = x, 0.3, 1.0
    for i in range(400):
        if i % 2:
            y, v, d = ga.sin(y), np.sin(v), d * np.cos(v)
        else:
            y, v, d = ga.tanh(y) * 1.01, np.tanh(v) * 1.01, d * (1 - np.tanh(v) ** 2) * 1.01
    y.backward()
    assert float(y) == pytest.approx(v, rel=1e-14)
    assert float(x.grad) == pytest.approx(d, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# full sums: NumPy's pairwise summation in C, the same bits as np.add.reduce

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@given(n=st.one_of(st.integers(0, 300), st.sampled_from([1023, 1024, 1025, 8192, 8193, 70001])),
       seed=seeds)
def test_sum_all_has_numpys_bits(dtype, n, seed):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 6, n)).astype(dtype)
    got, want = K.sum_all(a), np.add.reduce(a)
    assert got.shape == () and got.dtype == dtype
    assert got.tobytes() == np.asarray(want).tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sum_all_of_shapes_special_values_and_layouts(dtype):
    rng = np.random.default_rng(3)
    for shape in ((), (0,), (3, 4), (7, 9, 5), (129,), (2, 1000), (0, 3)):
        a = rng.standard_normal(shape).astype(dtype)
        assert K.sum_all(a).tobytes() == np.asarray(np.add.reduce(a, None)).tobytes()
    for vals in ([-0.0], [-0.0] * 9, [np.inf, 1.0], [np.inf, -np.inf], [np.nan, 2.0] * 70):
        a = np.array(vals, dtype)
        with np.errstate(invalid="ignore"):
            want = np.asarray(np.add.reduce(a))
        assert K.sum_all(a).tobytes() == want.tobytes()
    m = rng.standard_normal((6, 8)).astype(dtype)
    assert K.sum_all(m[:, ::2]) is None and K.sum_all(m.T) is None     # NumPy decides those
    assert K.sum_all(np.arange(5)) is None
    np.testing.assert_array_equal(ga.sum(ga.tensor(m.T)).data, np.add.reduce(m.T, None))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_accumulate_a_broadcast_value_in_place(dtype):
    rng = np.random.default_rng(4)
    for shape in ((7,), (3, 5), (2, 1, 4)):
        acc = rng.standard_normal(shape).astype(dtype)
        v = np.broadcast_to(np.asarray(rng.standard_normal(), dtype), shape)   # all strides 0
        want = acc + v
        got = K.accumulate(acc, v)
        assert got is acc and got.dtype == dtype
        np.testing.assert_array_equal(got, want)
    ro = np.broadcast_to(np.asarray(2.0, dtype), (6,))
    assert K.accumulate(ro.copy(), ro).tolist() == [4.0] * 6
    acc = np.arange(1.0, 6.0, dtype=dtype)
    own = np.broadcast_to(acc[2:3], (5,))            # one of acc's own entries, broadcast
    np.testing.assert_array_equal(K.accumulate(acc, own), np.arange(1.0, 6.0) + 3.0)
    row = np.broadcast_to(np.arange(3, dtype=dtype), (2, 3))              # not one value
    got = K.accumulate(np.ones((2, 3), dtype), row)
    np.testing.assert_array_equal(got, np.ones((2, 3), dtype) + row)


def test_ones_is_numpys_ones():
    for shape in ((), (1,), (3, 2), (0,), (2, 0, 3)):
        for dtype in (np.float64, np.float32, "float64", np.dtype(np.float32), np.int64, bool):
            got, want = K.ones(shape, dtype), np.ones(shape, dtype)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            assert got.flags.c_contiguous and got.flags.writeable


# ---------------------------------------------------------------------------------------------
# cross-entropy from logits: shift, NumPy's vectorized exp, then the sums (and the VJP likewise)

def _xent_numpy(x, y, g, scale):
    with np.errstate(all="ignore"):
        m = x.max(axis=1)
        m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
        lse = np.log(np.exp(x - m[:, None]).sum(axis=1)) + m
        loss = lse - x[np.arange(len(y)), y]
        c = x.dtype.type(scale * g)
        out = np.exp(x - lse[:, None]) * c
    out[np.arange(len(y)), y] -= c
    return loss, lse, out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(128, 10), (3, 1), (5, 1000), (1, 7)])
def test_xent_kernels_match_numpy(dtype, shape):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    if shape[0] >= 3 and shape[1] >= 2:
        x[0, 1], x[1, 0], x[2, :] = np.inf, -np.inf, np.nan      # non-finite rows, as NumPy
    y = rng.integers(0, shape[1], shape[0])
    loss, lse = K.xent_fwd(x, y)
    g = np.asarray(0.75, dtype)
    out = K.xent_vjp(x, y, lse, g, 1.0 / shape[0])
    want = _xent_numpy(x, y, 0.75, 1.0 / shape[0])
    tol = dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-15)
    for got, w in zip((loss, lse, out), want):
        assert got.dtype == dtype and got.shape == w.shape
        np.testing.assert_allclose(got, w, equal_nan=True, **tol)
    with pytest.raises(ValueError, match="label"):
        K.xent_fwd(x, np.full(shape[0], shape[1]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_vectors_times_one_matrix_in_one_product(dtype):
    """matvecs and matmul_fused's value-and-tangent product: [u; v] stacked (memcpy for
    contiguous vectors, NumPy for strided ones) times A or A^T, equal to two products."""
    rng = np.random.default_rng(6)
    A = rng.standard_normal((200, 300)).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for u, v in ((rng.standard_normal(300).astype(dtype), rng.standard_normal(300).astype(dtype)),
                 (rng.standard_normal(600).astype(dtype)[::2], rng.standard_normal(300).astype(dtype))):
        a, b = K.matvecs(A, True, u, v)                  # A u, A v
        np.testing.assert_allclose(a, A @ u, **tol)
        np.testing.assert_allclose(b, A @ v, **tol)
        fused = K.matmul_fused(None, (A, u), (None, v))
        if not K.stacking_pays(A, 2, True):      # a BLAS without a fast few-rows path
            assert fused is None
            continue
        np.testing.assert_allclose(fused[0], A @ u, **tol)
        np.testing.assert_allclose(fused[1], A @ v, **tol)
    g, dg = (rng.standard_normal(200).astype(dtype) for _ in range(2))
    a, b = K.matvecs(A, False, g, dg)                    # g A, dg A
    np.testing.assert_allclose(a, g @ A, **tol)
    np.testing.assert_allclose(b, dg @ A, **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_regression_accumulate_of_an_overlapping_view_is_numpys_sum(dtype):
    """acc += x where x's memory overlaps acc's (views of one buffer, one behind the other):
    the in-place loop read entries it had already changed (buf[1:6] += buf[:5] gave
    [1, 3, 6, 10, 15] instead of [1, 3, 5, 7, 9]); such an x now goes to NumPy."""
    for lo, hi in ((1, 0), (0, 1), (3, 1)):
        buf = np.arange(10, dtype=dtype)
        want = buf[lo:lo + 5] + buf[hi:hi + 5]
        got = K.accumulate(buf[lo:lo + 5], buf[hi:hi + 5])
        np.testing.assert_array_equal(got, want)
    a = np.arange(4, dtype=dtype)
    np.testing.assert_array_equal(K.accumulate(a, a), 2 * np.arange(4, dtype=dtype))   # itself
