"""The NumPy boundary (graphad/_interop.py and Tensor.__array__): NumPy ufuncs and functions
called on Tensors run graphad's differentiable versions or raise TypeError naming the function;
implicit conversion of a Tensor that carries derivatives raises; lists of Tensors are stacked
with gradients; reading traced values under ga.compile warns; complex dtypes are refused.
Nothing silently becomes a constant (a zero gradient)."""
import re
import sys
import types
import warnings

import numpy as np
import pytest

import graphad as ga
from graphad.compile import TraceWarning

RNG = np.random.default_rng(7)
W = RNG.standard_normal((3, 4))
X = RNG.uniform(0.3, 1.5, 4)
M = RNG.standard_normal((4, 4)) + 4 * np.eye(4)


# ---------------------------------------------------------------------------------------------
# the reported bugs: NumPy functions on Tensors gave zero gradients

def test_regression_np_dot_stays_in_graph():
    g = ga.grad(lambda x: ga.sum(np.dot(W, x)))(X)
    np.testing.assert_allclose(g, W.sum(axis=0), rtol=1e-14)
    y = np.dot(W, ga.tensor(X))
    assert isinstance(y, ga.Tensor)
    np.testing.assert_allclose(y.numpy(), W @ X, rtol=1e-14)
    # matmul is a ufunc: np.matmul and ndarray @ Tensor as well
    np.testing.assert_allclose(ga.grad(lambda x: ga.sum(np.matmul(W, x)))(X), W.sum(axis=0))
    np.testing.assert_allclose(ga.grad(lambda x: ga.sum(W @ x))(X), W.sum(axis=0))


def _fake_linalg():
    """A stand-in graphad.linalg with norm only (the real one is being written elsewhere)."""
    mod = types.ModuleType("graphad.linalg")
    mod.norm = lambda x, ord=None, axis=None, keepdims=False: ga.sqrt(ga.sum(x * x))
    return mod


def test_regression_np_linalg_uses_graphad_linalg_looked_up_at_call_time(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphad.linalg", _fake_linalg())
    g = ga.grad(lambda x: np.linalg.norm(x))(X)
    np.testing.assert_allclose(g, X / np.linalg.norm(X), rtol=1e-14)
    # a name the module lacks: a TypeError naming the NumPy function, not a zero gradient
    monkeypatch.delattr(sys.modules["graphad.linalg"], "norm")
    with pytest.raises(TypeError, match=r"np\.linalg\.norm is not differentiable.*\.detach\(\)"):
        ga.grad(lambda x: np.linalg.norm(x))(X)


def test_regression_np_linalg_det_and_norm_never_give_zero_gradients():
    # whatever graphad.linalg provides today: the right gradient or a TypeError
    for f, want in [(lambda a: np.linalg.det(a), np.linalg.det(M) * np.linalg.inv(M).T)]:
        try:
            g = ga.grad(f)(M)
        except TypeError as e:
            assert "np.linalg.det" in str(e)
        else:
            np.testing.assert_allclose(g, want, rtol=1e-10)
    try:
        g = ga.grad(lambda x: np.linalg.norm(x))(X)
    except TypeError as e:
        assert "np.linalg.norm" in str(e)
    else:
        np.testing.assert_allclose(g, X / np.linalg.norm(X), rtol=1e-12)


def test_regression_without_graphad_linalg_np_linalg_raises(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphad.linalg", None)    # import fails
    with pytest.raises((TypeError, ImportError)):
        ga.grad(lambda a: np.linalg.det(a))(M)


# ---------------------------------------------------------------------------------------------
# ufuncs

UNARY = [np.negative, np.exp, np.log, np.log1p, np.sin, np.cos, np.tan, np.tanh, np.sinh,
         np.cosh, np.sqrt, np.square, np.absolute, np.reciprocal, np.exp2, np.log2, np.log10,
         np.positive]
BINARY = [np.add, np.subtract, np.multiply, np.divide, np.power, np.maximum, np.minimum]


@pytest.mark.parametrize("uf", UNARY, ids=lambda u: u.__name__)
def test_regression_np_unary_ufuncs_are_differentiable(uf):
    y = uf(ga.tensor(X))
    assert isinstance(y, ga.Tensor)
    np.testing.assert_allclose(y.numpy(), uf(X), rtol=1e-14)
    ga.check_grad(lambda x: ga.sum(uf(x) * np.arange(1.0, 5.0)), X)


@pytest.mark.parametrize("uf", BINARY, ids=lambda u: u.__name__)
def test_regression_np_binary_ufuncs_are_differentiable(uf):
    a, b = X, RNG.uniform(0.5, 2.0, 4)
    np.testing.assert_allclose(uf(ga.tensor(a), b).numpy(), uf(a, b), rtol=1e-14)
    np.testing.assert_allclose(uf(a, ga.tensor(b)).numpy(), uf(a, b), rtol=1e-14)
    ga.check_grad(lambda x, y: ga.sum(uf(x, y)), a, b)
    ga.check_grad(lambda y: ga.sum(uf(a, y)), b)      # ndarray first, Tensor second


def test_np_array_on_the_left_of_an_operator_still_gives_a_tensor():
    t = ga.tensor(X, requires_grad=True)
    for y in (W[0] + t, W[0] - t, W[0] * t, W[0] / t, W[0] ** t, np.float64(2.0) * t,
              np.float32(2.0) + t):
        assert isinstance(y, ga.Tensor) and y.requires_grad
    assert ga.Tensor.__array_priority__ > 0


def test_rounding_ufuncs_have_zero_derivative():
    x = np.array([-1.3, 0.4, 2.6])
    for uf in (np.floor, np.ceil, np.trunc, np.rint, np.sign):
        y = uf(ga.tensor(x))
        assert isinstance(y, ga.Tensor)
        np.testing.assert_array_equal(y.numpy(), uf(x))
        np.testing.assert_array_equal(ga.grad(lambda a: ga.sum(uf(a) * a))(x), uf(x))


def test_comparison_ufuncs_give_constant_boolean_tensors():
    t = ga.tensor(X, requires_grad=True)
    for uf in (np.greater, np.less_equal, np.equal, np.not_equal):
        r = uf(t, 0.8)
        assert isinstance(r, ga.Tensor) and not r.requires_grad and r.dtype == bool
        np.testing.assert_array_equal(r.numpy(), uf(X, 0.8))
    np.testing.assert_array_equal(np.isfinite(t).numpy(), np.ones(4, bool))
    np.testing.assert_array_equal((X > t).numpy(), np.zeros(4, bool))
    # a comparison selects in np.where / ga.where, with the gradient of the chosen branch
    g = ga.grad(lambda x: ga.sum(np.where(np.greater(x, 0.8), x * x, x)))(X)
    np.testing.assert_allclose(g, np.where(X > 0.8, 2 * X, 1.0))


def test_ufunc_reduce_and_outer():
    A = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(np.add.reduce(ga.tensor(A)).numpy(), A.sum(axis=0))
    np.testing.assert_allclose(np.add.reduce(ga.tensor(A), axis=None).numpy(), A.sum())
    np.testing.assert_allclose(np.maximum.reduce(ga.tensor(A), axis=1).numpy(), A.max(axis=1))
    np.testing.assert_array_equal(ga.grad(lambda a: np.add.reduce(a, axis=None))(A),
                                  np.ones((3, 4)))
    np.testing.assert_allclose(np.multiply.outer(ga.tensor(X), W).numpy(),
                               np.multiply.outer(X, W), rtol=1e-15)
    ga.check_grad(lambda x, w: ga.sum(np.subtract.outer(x, w) ** 2), X, W)


def test_ufuncs_without_a_graphad_version_raise_naming_the_function():
    t = ga.tensor(X, requires_grad=True)
    with pytest.raises(TypeError, match=r"np\.heaviside is not differentiable by graphad yet.*"
                                        r"ga\.\*.*\.detach\(\)"):
        np.heaviside(t, 1.0)
    with pytest.raises(TypeError, match=r"np\.cbrt"):
        np.cbrt(t)
    with pytest.raises(TypeError, match=r"np\.add\.accumulate"):
        np.add.accumulate(t)
    with pytest.raises(TypeError, match=r"np\.multiply\.reduce"):
        np.multiply.reduce(t)


def test_ufunc_out_raises():
    t = ga.tensor(X, requires_grad=True)
    buf = np.zeros(4)
    with pytest.raises(TypeError, match="out="):
        np.exp(t, out=buf)
    with pytest.raises(TypeError, match="out="):
        buf += t
    np.testing.assert_array_equal(buf, np.zeros(4))     # nothing was written
    with pytest.raises(TypeError, match="out="):
        np.add.reduce(t, out=np.zeros(()))
    with pytest.raises(TypeError, match="where="):
        np.exp(t, where=X > 0.5)


# ---------------------------------------------------------------------------------------------
# NumPy functions

A3 = RNG.standard_normal((2, 3, 4))
S = RNG.standard_normal((3, 3))
FUNCS = {
    "sum": (lambda a: np.sum(a, axis=1), A3),
    "sum_keepdims": (lambda a: np.sum(a, axis=(0, 2), keepdims=True), A3),
    "mean": (lambda a: np.mean(a, axis=0), A3),
    "max": (lambda a: np.max(a, axis=-1), A3),
    "amin": (lambda a: np.amin(a), A3),
    "reshape": (lambda a: np.reshape(a, (6, 4)), A3),
    "ravel": (lambda a: np.ravel(a), A3),
    "transpose": (lambda a: np.transpose(a, (2, 0, 1)), A3),
    "swapaxes": (lambda a: np.swapaxes(a, 0, 2), A3),
    "expand_dims": (lambda a: np.expand_dims(a, 1), A3),
    "squeeze": (lambda a: np.squeeze(np.expand_dims(a, 0)), A3),
    "broadcast_to": (lambda a: np.broadcast_to(a, (5, 2, 3, 4)), A3),
    "concatenate": (lambda a: np.concatenate([a, 2 * a], axis=1), A3),
    "concatenate_none": (lambda a: np.concatenate([a, a], axis=None), A3),
    "stack": (lambda a: np.stack([a, a * a], axis=-1), A3),
    "where": (lambda a: np.where(A3 > 0, a, -a), A3),
    "clip": (lambda a: np.clip(a, -0.5, 0.5), A3),
    "dot": (lambda a: np.dot(a, S[:, :1].repeat(4, 0)[:4]), A3),
    "einsum": (lambda a: np.einsum("ijk,k->ij", a, X), A3),
    "outer": (lambda a: np.outer(a, X), S),
    "trace": (lambda a: np.trace(a, 1), A3),
    "diagonal": (lambda a: np.diagonal(a, 0, 1, 2), A3),
    "diag": (lambda a: np.diag(a, -1), S),
    "tril": (lambda a: np.tril(a, -1), A3),
    "triu": (lambda a: np.triu(a), S),
    "kron": (lambda a: np.kron(a, S), S),
}


# these reached Tensor's methods through NumPy's own fallback already; the others gave constants
_WORKED = {"sum", "sum_keepdims", "mean", "max", "amin", "reshape", "transpose", "swapaxes"}


@pytest.mark.parametrize("name", sorted(set(FUNCS) - _WORKED))
def test_regression_numpy_functions_run_graphads_version(name):
    _check_numpy_function(name)


@pytest.mark.parametrize("name", sorted(_WORKED))
def test_numpy_reductions_and_shape_functions_still_run_graphads_version(name):
    _check_numpy_function(name)


def _check_numpy_function(name):
    f, x = FUNCS[name]
    y = f(ga.tensor(x, requires_grad=True))
    assert isinstance(y, ga.Tensor) and y.requires_grad
    np.testing.assert_allclose(y.numpy(), f(x), rtol=1e-13, atol=1e-15)
    w = RNG.standard_normal(np.shape(f(x)))
    ga.check_grad(lambda a: ga.sum(f(a) * w), x)


def test_numpy_functions_without_a_graphad_version_raise_naming_them():
    t = ga.tensor(X, requires_grad=True)
    for call, name in [(lambda: np.nancumsum(t), "np.nancumsum"),
                       (lambda: np.median(t), "np.median"),
                       (lambda: np.partition(t, 1), "np.partition"), (lambda: np.copy(t), "np.copy"),
                       (lambda: np.fft.fft(t), "np.fft.fft"),
                       (lambda: np.interp(0.5, X, t), "np.interp")]:
        with pytest.raises(TypeError, match=re.escape(name) + r" is not differentiable"
                                            r".*ga\.\*.*\.detach\(\)"):
            call()
    with pytest.raises(TypeError, match="out="):
        np.sum(t, out=np.zeros(()))
    with pytest.raises(TypeError, match="out="):
        np.dot(t, t, out=np.zeros(()))


def test_metadata_functions_run_on_the_values():
    t = ga.tensor(A3, requires_grad=True)
    assert np.shape(t) == (2, 3, 4) and np.ndim(t) == 3 and np.size(t) == 24
    assert np.result_type(t, 1.0) == np.float64
    np.testing.assert_array_equal(np.zeros_like(t), np.zeros((2, 3, 4)))
    assert np.argmax(t) == np.argmax(A3)
    assert np.allclose(t, A3)
    np.testing.assert_array_equal(np.nonzero(ga.tensor(X) > 0.8)[0], np.nonzero(X > 0.8)[0])


# ---------------------------------------------------------------------------------------------
# implicit conversion

def test_regression_asarray_of_a_tensor_that_requires_grad_raises():
    t = ga.tensor(X, requires_grad=True)
    with pytest.raises(TypeError, match=r"\.numpy\(\), \.detach\(\) or \.item\(\)"):
        np.asarray(t)
    with pytest.raises(TypeError, match="constant"):
        np.array(t * 2.0)
    with pytest.raises(TypeError):
        ga.grad(lambda x: ga.sum(x * np.asarray(x)))(X)
    with pytest.raises(TypeError):     # carries tangents in forward mode
        ga.jvp(lambda x: np.asarray(x), (X,), (np.ones(4),))
    # the explicit ways out, and constants, still convert
    np.testing.assert_array_equal(np.asarray(t.detach()), X)
    np.testing.assert_array_equal(t.numpy(), X)
    assert ga.tensor(2.5, requires_grad=True).item() == 2.5
    np.testing.assert_array_equal(np.asarray(ga.tensor(X)), X)
    np.testing.assert_array_equal(np.asarray(ga.tensor(X), dtype=np.float32), X.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# lists and tuples of Tensors

def test_regression_list_of_tensors_is_stacked_with_gradients():
    assert ga.grad(lambda x: ga.mean([x, x + 2.0]))(1.5) == 1.0
    assert ga.grad(lambda x: ga.sum((x, 2.0 * x, 3.0)))(1.5) == 3.0
    np.testing.assert_allclose(ga.grad(lambda x: ga.sum((x, 2.0 * x)))(X), np.full(4, 3.0))
    np.testing.assert_allclose(ga.mean([ga.tensor(1.0), 3.0]).numpy(), 2.0)
    # nested, in operators, products, einsum operands and concatenate's sequences
    assert ga.grad(lambda x: ga.sum([[x, 1.0], [x * x, x]]))(2.0) == 6.0
    assert ga.grad(lambda x: ga.sum(x * [x, 1.0]))(3.0) == 7.0
    assert ga.grad(lambda x: ga.dot([x, x], [1.0, 2.0]))(1.0) == 3.0
    assert ga.grad(lambda x: ga.einsum("i,i->", [x, x], np.ones(2)))(1.0) == 2.0
    assert ga.grad(lambda x: ga.sum(ga.concatenate([[x, x], [x]])))(1.0) == 3.0
    assert ga.grad(lambda x: ga.sum(ga.exp([x, 0.0])))(0.5) == pytest.approx(np.exp(0.5))
    assert ga.grad(lambda x: ga.max([x, 2 * x]))(1.0) == 2.0
    # NumPy functions called on Tensors get the lists stacked the same way
    assert ga.grad(lambda x: np.sum(np.stack([x, 3 * x])))(1.0) == 4.0


def test_clip_with_bounds_that_require_grad():
    lo = ga.tensor(0.5, requires_grad=True)
    y = ga.sum(ga.clip(ga.tensor(np.array([0.1, 0.7, 2.0])), lo, 1.0))
    y.backward()
    assert lo.grad == 1.0


# ---------------------------------------------------------------------------------------------
# ga.compile: values read into Python while tracing are frozen

def _frozen(record):
    return [w for w in record if issubclass(w.category, TraceWarning)]


def test_regression_compile_warns_once_per_site_when_a_traced_value_is_read():
    def f(x):
        s = ga.sum(x)
        if s > 0:                                  # bool(): the branch is frozen
            return s * 2.0
        return s

    cf = ga.compile(f)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cf(np.ones(3))
        cf(np.ones(3))                             # replay: no trace, no warning
        cf(np.ones(5))                             # a retrace: the site has warned already
    ws = _frozen(rec)
    assert len(ws) == 1, [str(w.message) for w in ws]
    msg = str(ws[0].message)
    assert "bool()" in msg and "frozen" in msg
    assert f"test_numpy_interop.py:{f.__code__.co_firstlineno + 2}" in msg
    assert ws[0].filename.endswith("test_numpy_interop.py")
    # the frozen branch is what the warning is about: the replay keeps the traced one
    assert float(cf(-np.ones(3)).item()) == -6.0


def test_compile_warns_for_float_int_item_reads():
    def f(x):
        s = ga.sum(x)
        a = float(s)
        b = s.item()
        c = int(s)
        return s * (a + b + c)

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ga.compile(f)(np.ones(2))
    msgs = [str(w.message) for w in _frozen(rec)]
    assert len(msgs) == 3
    assert any("float()" in m for m in msgs) and any(".item()" in m for m in msgs) \
        and any("int()" in m for m in msgs)


def test_no_warning_outside_tracing_or_for_untraced_values():
    c = ga.tensor(2.0)

    def f(x):
        return ga.sum(x) * float(c)              # c is neither an input nor computed from one

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ga.compile(f)(np.ones(2))
        y = ga.sum(ga.tensor(X))
        bool(y > 0), float(y), y.item()
    assert not _frozen(rec)


# ---------------------------------------------------------------------------------------------
# complex dtypes

def test_regression_complex_dtypes_raise():
    with pytest.raises(TypeError, match="complex dtypes are not supported yet"):
        ga.tensor(1 + 2j)
    with pytest.raises(TypeError, match="complex dtypes are not supported yet"):
        ga.tensor(np.ones(2, np.complex64))
    # jvp of abs at 0.4+0.3j used to give 0.8+0.6j
    with pytest.raises(TypeError, match="complex dtypes are not supported yet"):
        ga.jvp(ga.abs, (0.4 + 0.3j,), (1.0,))
    with pytest.raises(TypeError, match="complex dtypes are not supported yet"):
        ga.grad(lambda z: ga.sum(ga.abs(z)))(np.array([0.4 + 0.3j]))
    with pytest.raises(TypeError, match="complex dtypes are not supported yet"):
        ga.exp(np.array([1j]))
    with pytest.raises(TypeError, match="complex dtypes are not supported yet"):
        ga.tensor(1.0, requires_grad=True) * (1 + 1j)
    with pytest.raises(TypeError, match="complex dtypes are not supported yet"):
        ga.tensor(1.0) + np.complex64(1j)
    with pytest.raises(TypeError, match="complex dtypes are not supported yet"):
        ga.astype(ga.tensor(X), np.complex128)
    with pytest.raises(TypeError, match="complex dtypes are not supported yet"):
        ga.jvp(ga.sin, (X,), (X * 1j,))           # a complex tangent lost its imaginary part
