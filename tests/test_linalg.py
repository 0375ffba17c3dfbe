"""ga.linalg (graphad/linalg/): inv, slogdet, eigh, eigvalsh against the course's closed forms,
finite differences in both modes and at second order, HIPS autograd as an independent engine,
float32, batches, ga.compile, and the multi-output machinery they run on (one forward per
call, one VJP per sweep, None for an unused output)."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import graphad as ga
from graphad import linalg as gl
from conftest import seeds
from prim_cases import fd_jacobian


def _mat(n, seed=0, batch=(), dtype=np.float64, shift=0.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(batch + (n, n)) + shift * np.eye(n)).astype(dtype)


def _sym(A):
    return (A + np.swapaxes(A, -1, -2)) / 2


def _grad_fd(f, A, h=1e-6):
    return fd_jacobian(lambda X: f(X), [A], 0, h=h)


# ---------------------------------------------------------------------------------------------
# closed forms from the course (Giles' collection)

def test_slogdet_gradient_is_inverse_transpose():
    A = _mat(5, seed=1)
    sign, logabs = gl.slogdet(A)
    np.testing.assert_allclose(sign.numpy(), np.sign(np.linalg.det(A)))
    np.testing.assert_allclose(logabs.numpy(), np.log(abs(np.linalg.det(A))), rtol=1e-12)
    g = ga.grad(lambda X: gl.slogdet(X)[1])(A)
    np.testing.assert_allclose(g, np.linalg.inv(A).T, rtol=1e-10, atol=1e-12)


def test_slogdet_hessian_is_minus_inverse_kron():
    """d^2 log|det A| [dA, dB] = -tr(A^{-1} dA A^{-1} dB): H[i,j,k,l] = -Y[j,k] Y[l,i]."""
    A = _mat(3, seed=2, shift=2.0)
    Y = np.linalg.inv(A)
    H = ga.hessian(lambda X: gl.slogdet(X)[1])(A)
    np.testing.assert_allclose(H, -np.einsum("jk,li->ijkl", Y, Y), rtol=1e-10, atol=1e-12)
    g = ga.grad(lambda X: gl.slogdet(X)[1])
    dA = _mat(3, seed=3)
    fd = (g(A + 1e-6 * dA) - g(A - 1e-6 * dA)) / 2e-6
    _, hv = ga.hvp(lambda X: gl.slogdet(X)[1], A, dA)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)


def test_inv_derivatives():
    """d(A^{-1}) = -A^{-1} dA A^{-1}, in both modes and at second order."""
    A, dA = _mat(4, seed=4, shift=3.0), _mat(4, seed=5)
    Y = np.linalg.inv(A)
    _, t = ga.jvp(gl.inv, (A,), (dA,))
    np.testing.assert_allclose(t, -Y @ dA @ Y, rtol=1e-10, atol=1e-12)
    J = ga.jacrev(gl.inv)(A)
    np.testing.assert_allclose(J, _grad_fd(lambda X: np.linalg.inv(X), A), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.jacfwd(gl.inv)(A), J, rtol=1e-12, atol=1e-14)
    f = lambda X: ga.sum(gl.inv(X) ** 2)
    H1, H2 = ga.hessian(f)(A), ga.jacrev(ga.jacfwd(f))(A)
    np.testing.assert_allclose(H1, H2, rtol=1e-9, atol=1e-11)


def test_eigh_values_vectors_and_eigenvalue_gradient():
    """dw_k = v_k^T dA v_k, so grad w_k = v_k v_k^T; A V = V diag(w), w ascending."""
    S = _sym(_mat(5, seed=6))
    w, V = gl.eigh(S)
    w, V = w.numpy(), V.numpy()
    assert np.all(np.diff(w) > 0)
    np.testing.assert_allclose(S @ V, V * w, atol=1e-12)
    for k in range(5):
        g = ga.grad(lambda X: gl.eigh(X)[0][k])(S)
        np.testing.assert_allclose(g, np.outer(V[:, k], V[:, k]), atol=1e-12)


def test_eigh_gradient_is_symmetric_and_matches_finite_differences():
    A = _mat(4, seed=7)                      # not symmetric: eigh takes (A + A^T)/2

    def loss(X):
        w, V = gl.eigh(X)
        return ga.sum(V[:, 1] ** 4) + ga.sum(w * np.arange(4.0))

    g = ga.grad(loss)(A)
    np.testing.assert_allclose(g, g.T, atol=1e-13)

    def ref(X):
        w, V = np.linalg.eigh(_sym(X))
        return np.sum(V[:, 1] ** 4) + np.sum(w * np.arange(4.0))

    np.testing.assert_allclose(g, _grad_fd(ref, A), rtol=1e-6, atol=1e-8)
    ga.check_grad(loss, A)


def test_eigh_second_order_both_ways():
    S = _sym(_mat(4, seed=8))

    def loss(X):
        w, V = gl.eigh(X)
        return ga.sum(V[:, 0] ** 3 * V[:, 2]) + w[3] ** 2

    H1 = ga.hessian(loss)(S)
    H2 = ga.jacrev(ga.jacfwd(loss))(S)
    np.testing.assert_allclose(H1, H2, rtol=1e-8, atol=1e-10)
    dS = _mat(4, seed=9)
    g = ga.grad(loss)
    fd = (g(S + 1e-6 * dS) - g(S - 1e-6 * dS)) / 2e-6
    np.testing.assert_allclose(np.tensordot(H1, dS, 2), fd, rtol=1e-5, atol=1e-7)


def test_eigh_repeated_eigenvalues_spectral_functions_are_exact():
    """At a repeated eigenvalue, losses of w alone get exact, finite gradients (no NaN): a
    zero cotangent on V contributes nothing.  sum w^2 = |A|_F^2 has gradient 2A."""
    for S in (np.eye(3), np.diag([1.0, 1.0, 2.0]), np.zeros((2, 2))):
        g = ga.grad(lambda X: ga.sum(gl.eigvalsh(X) ** 2))(S)
        np.testing.assert_allclose(g, 2 * S, atol=1e-14)
        g = ga.grad(lambda X: ga.sum(gl.eigh(X)[0]))(S)      # the trace: gradient I
        np.testing.assert_allclose(g, np.eye(len(S)), atol=1e-14)
        _, t = ga.jvp(gl.eigvalsh, (S,), (_sym(_mat(len(S), seed=10)),))
        assert np.all(np.isfinite(t))


# ---------------------------------------------------------------------------------------------
# every mode, batches, float32

def _eigvec_sq(X):
    V = gl.eigh(X)[1]
    return V * V                # invariant to each eigenvector's sign


FUNCS = {
    "logabsdet": (lambda X: gl.slogdet(X)[1], lambda X: np.linalg.slogdet(X)[1], 0.0),
    "inv": (gl.inv, np.linalg.inv, 3.0),
    "eigvalsh": (gl.eigvalsh, lambda X: np.linalg.eigvalsh(_sym(X)), 0.0),
    "eigvec^2": (lambda X: _eigvec_sq(X), lambda X: np.linalg.eigh(_sym(X))[1] ** 2, 0.0),
}


@pytest.mark.parametrize("name", list(FUNCS))
@pytest.mark.parametrize("batch", [(), (2,)])
def test_jacobians_both_modes_against_finite_differences(name, batch):
    f, ref, shift = FUNCS[name]
    A = _mat(3, seed=11, batch=batch, shift=shift)
    fd = _grad_fd(ref, A)
    np.testing.assert_allclose(ga.jacrev(f)(A), fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ga.jacfwd(f)(A), fd, rtol=1e-6, atol=1e-7)


@given(seed=seeds, n=st.integers(1, 4))
def test_random_matrices_check_grad(seed, n):
    A = _mat(n, seed=seed % 1000, shift=float(n))
    ga.check_grad(lambda X: gl.slogdet(X)[1], A)
    ga.check_grad(lambda X: ga.sum(gl.inv(X) * np.arange(n * n).reshape(n, n)), A)
    ga.check_grad(lambda X: gl.eigvalsh(X) * np.arange(1.0, n + 1), A)


@pytest.mark.parametrize("name", list(FUNCS))
def test_float32_is_kept(name):
    f, _, shift = FUNCS[name]
    A64 = _mat(3, seed=12, shift=shift)
    A32 = A64.astype(np.float32)
    for jac in (ga.jacrev, ga.jacfwd):
        J32, J64 = jac(f)(A32), jac(f)(A64)
        assert J32.dtype == np.float32
        np.testing.assert_allclose(J32, J64, rtol=2e-3, atol=2e-4)


# ---------------------------------------------------------------------------------------------
# HIPS autograd as an independent engine

def test_against_autograd():
    A = _mat(4, seed=13, shift=1.0)
    S = _sym(A)
    W = np.arange(16.0).reshape(4, 4) / 10
    cases = [   # (graphad, autograd, point, eigh: autograd's gradient is of one triangle)
        (lambda X: gl.slogdet(X)[1], lambda X: anp.linalg.slogdet(X)[1], A, False),
        (lambda X: ga.sum(gl.inv(X) * W), lambda X: anp.sum(anp.linalg.inv(X) * W), A, False),
        (lambda X: ga.sum(gl.eigh(X)[0] * np.arange(4.0)),
         lambda X: anp.sum(anp.linalg.eigh(X)[0] * np.arange(4.0)), S, True),
        (lambda X: ga.sum(gl.eigh(X)[1][:, 2] ** 4),
         lambda X: anp.sum(anp.linalg.eigh(X)[1][:, 2] ** 4), S, True),
    ]
    for f, af, X, triangle in cases:
        ours = ga.grad(f)(X)
        theirs = autograd.grad(af)(X)
        # the symmetric part of the gradient of a function of one triangle is the gradient of
        # the symmetrized function that graphad's eigh computes
        np.testing.assert_allclose(ours, _sym(theirs) if triangle else theirs,
                                   rtol=1e-9, atol=1e-11)
        if not triangle:
            np.testing.assert_allclose(ga.hessian(f)(X), autograd.hessian(af)(X),
                                       rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# the multi-output machinery

class _Counting:
    """Counts calls of a registry primitive's forward and VJP."""

    def __init__(self, prim, monkeypatch):
        self.fwd = self.vjp = 0
        fwd, vjp = prim.fwd, prim.vjp

        def counted_fwd(*a):
            self.fwd += 1
            return fwd(*a)

        def counted_vjp(*a):
            self.vjp += 1
            return vjp(*a)

        monkeypatch.setattr(prim, "fwd", counted_fwd)
        monkeypatch.setattr(prim, "vjp", counted_vjp)


def test_shared_factorization_runs_once(monkeypatch):
    """Both outputs come from one forward, and one VJP call takes both cotangents."""
    count = _Counting(gl._spectral.P_EIGH, monkeypatch)
    S = _sym(_mat(4, seed=14))

    def loss(X):
        w, V = gl.eigh(X)
        return ga.sum(w) + ga.sum(V ** 4) + ga.sum(V[0] * w)

    ga.grad(loss)(S)
    assert count.fwd == 1 and count.vjp == 1


def test_unused_output_gets_none(monkeypatch):
    seen = []
    vjp = gl._factor.P_SLOGDET.vjp

    def spy(n, gs):
        seen.append(tuple(g is None for g in gs))
        return vjp(n, gs)

    monkeypatch.setattr(gl._factor.P_SLOGDET, "vjp", spy)
    ga.grad(lambda X: gl.slogdet(X)[1])(_mat(3, seed=15))
    assert seen == [(True, False)]


def test_multi_output_under_compile():
    def loss(A, S):
        sign, logabs = gl.slogdet(A)
        w, V = gl.eigh(S)
        return sign * logabs + ga.sum(w ** 2) + ga.sum(V[:, 0] ** 4)

    vg = ga.value_and_grad(loss, argnums=(0, 1))
    cvg = ga.compile(vg)
    rng = np.random.default_rng(16)
    for _ in range(3):
        A = rng.standard_normal((4, 4))
        S = _sym(rng.standard_normal((4, 4)))
        (v1, (ga1, gs1)), (v2, (ga2, gs2)) = cvg(A, S), vg(A, S)
        np.testing.assert_allclose(v1, v2, rtol=1e-13)
        np.testing.assert_allclose(ga1, ga2, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(gs1, gs2, rtol=1e-12, atol=1e-13)
    assert cvg.traces == 1 and cvg.replays == 2


def test_multi_output_backward_on_tensors():
    A = ga.tensor(_mat(3, seed=17, shift=2.0), requires_grad=True)
    sign, logabs = gl.slogdet(A)
    assert sign.prim.name == logabs.prim.name == "output"
    assert sign.parents[0] is logabs.parents[0]          # one node holds both outputs
    (sign * logabs).backward()
    np.testing.assert_allclose(A.grad, np.sign(np.linalg.det(A.numpy())) *
                               np.linalg.inv(A.numpy()).T, rtol=1e-10)


def test_errors_name_the_op_and_shape():
    with pytest.raises(ValueError, match=r"slogdet.*\(2, 3\)"):
        gl.slogdet(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"eigh.*\(3,\)"):
        gl.eigh(np.ones(3))
    with pytest.raises(np.linalg.LinAlgError, match=r"inv.*\(2, 2\)"):
        gl.inv(np.ones((2, 2)))
