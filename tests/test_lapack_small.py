"""graphad._lapack: eigh's forward and VJP for one small matrix, without SciPy's f2py layer.

Each kernel is checked against the NumPy formula it replaces, on the layouts a caller can hand
it (transposed, strided, unaligned, float32), and on the inputs where it must decline (a
cluster of eigenvalues, NaN) so that the cluster-aware general path decides."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import graphad as ga
from graphad import _lapack
from graphad.linalg import _spectral

TOL = {np.float64: 1e-11, np.float32: 2e-4}


def _views(a):
    """a as C order, transposed, with a negative stride, and inside a wider array."""
    wide = np.zeros((a.shape[0], 2 * a.shape[1]), a.dtype)
    wide[:, ::2] = a
    return [a, a.T, a[:, ::-1], wide[:, ::2]]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 2, 3, 10, 33, _lapack.MAX_N])
def test_eigh_small_matches_numpy_on_every_layout(n, dtype):
    rng = np.random.default_rng(n)
    for a in _views(rng.standard_normal((n, n)).astype(dtype)):
        w, v = _lapack.eigh_small(a)
        s = (a.astype(np.float64) + a.T) / 2
        assert w.dtype == v.dtype == dtype and v.flags.c_contiguous
        np.testing.assert_allclose(w, np.linalg.eigvalsh(s), atol=TOL[dtype] * n)
        np.testing.assert_allclose((v * w) @ v.T, s, atol=TOL[dtype] * n)
        np.testing.assert_allclose(v.T @ v, np.eye(n), atol=TOL[dtype] * n)


def test_eigh_small_on_an_unaligned_array():
    buf = np.zeros(10 * 10 * 8 + 1, np.uint8)
    a = np.frombuffer(buf.data, dtype=np.float64, count=100, offset=1).reshape(10, 10)
    assert not a.flags.aligned
    a[...] = np.random.default_rng(0).standard_normal((10, 10))
    w, _ = _lapack.eigh_small(a)
    np.testing.assert_allclose(w, np.linalg.eigvalsh((a + a.T) / 2), atol=1e-12)


def _general_vjp(w, v, gv, gw):
    """eigh's VJP by the NumPy formula of _spectral.py: sym(V (F o M + diag(gw)) V^T)."""
    m = v.T @ gv
    d = w[None, :] - w[:, None]
    np.fill_diagonal(d, 1.0)
    k = m / d
    np.fill_diagonal(k, 0.0 if gw is None else gw)
    k = (k + k.T) / 2
    np.fill_diagonal(k, 0.0 if gw is None else gw)
    return v @ k @ v.T


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), seed=st.integers(0, 2 ** 16), with_gw=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_eigh_vjp_small_equals_the_general_formula(n, seed, with_gw, dtype):
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((n, n))
    w, v = np.linalg.eigh((s + s.T) / 2)
    gv = rng.standard_normal((n, n))
    gw = rng.standard_normal(n) if with_gw else None
    want = _general_vjp(w, v, gv, gw)
    cast = [x.astype(dtype) if x is not None else None for x in (w, v, gv, gw)]
    got = _lapack.eigh_vjp_small(*cast, 64 * n * np.finfo(dtype).eps)
    if got is None:                    # only when a gap is within the cluster tolerance
        assert dtype == np.float32
        return
    assert got.dtype == dtype
    scale = np.abs(want).max() + 1
    np.testing.assert_allclose(got, want, atol=TOL[dtype] * scale * n * 10)


@pytest.mark.parametrize("w", [[1.0, 1.0, 2.0], [2.0, 1.0, 3.0], [1.0, np.nan, 2.0]])
def test_eigh_vjp_small_declines_clusters_disorder_and_nan(w):
    w = np.array(w)
    v, gv = np.eye(3), np.ones((3, 3))
    assert _lapack.eigh_vjp_small(w, v, gv, None, 64 * 3 * 2.2e-16) is None


def test_eigh_grad_at_a_repeated_eigenvalue_still_raises_through_the_fast_path():
    # the fast path declines a cluster, so the general path's degeneracy check still runs
    a = np.diag([1.0, 1.0, 2.0])
    assert _lapack.eigh_vjp_small(np.array([1.0, 1.0, 2.0]), np.eye(3), np.eye(3), None,
                                  64 * 3 * 2.2e-16) is None
    with pytest.raises(_spectral.NonDifferentiableError):
        ga.grad(lambda x: ga.linalg.eigh(x)[1][0, 1])(a)
    np.testing.assert_allclose(ga.grad(lambda x: ga.sum(ga.exp(ga.linalg.eigh(x)[0])))(a),
                               np.diag(np.exp([1.0, 1.0, 2.0])), atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_eigh_gradient_through_the_small_kernels_matches_autograd(dtype):
    autograd = pytest.importorskip("autograd")
    anp = autograd.numpy
    rng = np.random.default_rng(3)
    s = rng.standard_normal((10, 10))
    c, C = rng.standard_normal(10), rng.standard_normal((10, 10))

    def loss(lib, x):
        w, v = (ga.linalg.eigh if lib is ga else anp.linalg.eigh)(x)
        return lib.sum(c * w) + lib.sum(C * v * v)
    sym = (s + s.T) / 2
    want = autograd.grad(lambda x: loss(anp, (x + x.T) / 2))(sym)
    got = ga.grad(lambda x: loss(ga, x))(sym.astype(dtype))
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, atol=TOL[dtype] * 100)
    compiled = ga.compile(ga.grad(lambda x: loss(ga, x)))
    compiled(sym.astype(dtype))
    np.testing.assert_allclose(compiled(sym.astype(dtype)), want, atol=TOL[dtype] * 100)


def test_regression_eigh_small_reads_a_byte_swapped_array_by_value_not_by_bytes():
    # the kernel read '>f8' memory as native doubles: eigenvalues of 1e299 (the public eigh
    # was safe, its operands are made native at the boundary; the kernel now is too)
    a = np.random.default_rng(0).standard_normal((5, 5))
    s = (a + a.T) / 2
    w, v = _lapack.eigh_small(s.astype(">f8"))
    np.testing.assert_allclose(w, np.linalg.eigvalsh(s), atol=1e-12)
    np.testing.assert_allclose((v * w) @ v.T, s, atol=1e-12)
    w0, v0 = np.linalg.eigh(s)
    with pytest.raises(ValueError, match="native"):
        _lapack.eigh_vjp_small(w0, v0, np.ones((5, 5)).astype(">f8"), None, 1e-14)
    with pytest.raises(ValueError, match="C-contiguous"):
        _lapack.eigh_vjp_small(w0, v0, np.ones((5, 5), order="F"), None, 1e-14)
