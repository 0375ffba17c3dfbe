"""ga.linalg's spectral part (graphad/linalg/_spectral.py): svd in both modes and at second
order, against NumPy's values, finite differences, HIPS autograd and the closed forms; eigh /
eigvalsh at close and repeated eigenvalues; the degeneracy policy (exact gradients for
basis-invariant losses, NonDifferentiableError otherwise); batches, float32, ga.compile."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import scipy.linalg as sl
from hypothesis import given
from hypothesis import strategies as st

import graphad as ga
from graphad import linalg as gl
from conftest import seeds
from prim_cases import fd_jacobian

NDE = gl._spectral.NonDifferentiableError     # a np.linalg.LinAlgError


def _rng(seed):
    return np.random.default_rng(seed)


def _orth(n, seed):
    return np.linalg.qr(_rng(seed).standard_normal((n, n)))[0]


def _sym(A):
    return (A + np.swapaxes(A, -1, -2)) / 2


def _with_spectrum(w, seed=0):
    Q = _orth(len(w), seed)
    return _sym((Q * np.asarray(w, float)) @ Q.T)


def _with_singular_values(s, m, n, seed=0):
    k = len(s)
    U = np.linalg.qr(_rng(seed).standard_normal((m, k)))[0]
    V = np.linalg.qr(_rng(seed + 1).standard_normal((n, k)))[0]
    return (U * np.asarray(s, float)) @ V.T


def _fd(f, A, h=None):
    return fd_jacobian(f, [A], 0, h=h)


def _signed(U, Vh, k):
    """Sign-fixed thin factors: the first row of U made nonnegative (a differentiable gauge)."""
    sg = np.sign(np.asarray(U.numpy() if isinstance(U, ga.Tensor) else U)[..., :1, :k])
    sg[sg == 0] = 1
    return U[..., :, :k] * sg, Vh[..., :k, :] * np.swapaxes(sg, -1, -2)


SHAPES = [(4, 4), (5, 3), (3, 5)]


# ---------------------------------------------------------------------------------------------
# svd: values and conventions

@pytest.mark.parametrize("shape", SHAPES + [(2, 4, 3), (2, 3, 3, 2)])
@pytest.mark.parametrize("full", [True, False])
def test_svd_matches_numpy(shape, full):
    A = _rng(0).standard_normal(shape)
    U, S, Vh = gl.svd(A, full_matrices=full)
    U0, S0, Vh0 = np.linalg.svd(A, full_matrices=full)
    assert U.shape == U0.shape and S.shape == S0.shape and Vh.shape == Vh0.shape
    np.testing.assert_allclose(S.numpy(), S0, rtol=1e-12)
    assert np.all(np.diff(S.numpy(), axis=-1) <= 0)
    k = min(shape[-2:])
    np.testing.assert_allclose((U.numpy()[..., :k] * S.numpy()[..., None, :]) @ Vh.numpy()[..., :k, :],
                               A, atol=1e-12)
    np.testing.assert_allclose(gl.svd(A, compute_uv=False).numpy(), S0, rtol=1e-12)


def test_svd_errors():
    with pytest.raises(ValueError, match=r"svd.*\(3,\)"):
        gl.svd(np.ones(3))
    with pytest.raises(TypeError, match="svd.*complex"):
        gl.svd(np.ones((2, 2), complex))
    for f in (gl.svd, gl.eigh, gl.eigvalsh):
        with pytest.raises(TypeError, match="float16"):
            f(np.eye(2, dtype=np.float16))
    U, S, Vh = gl.svd(np.arange(6).reshape(2, 3))       # integers: as float64
    assert S.dtype == np.float64


# ---------------------------------------------------------------------------------------------
# svd derivatives: finite differences in both modes, closed forms, autograd

def _svd_loss(full, C1, C2, c):
    def f(X):
        U, S, Vh = gl.svd(X, full_matrices=full)
        k = min(X.shape[-2:])
        U, Vh = _signed(U, Vh, k)
        return ga.sum(U ** 3 * C1) + ga.sum(S ** 3 * c) + ga.sum(Vh ** 3 * C2)
    return f


def _svd_loss_np(C1, C2, c):
    def f(X):
        U, S, Vh = np.linalg.svd(X, full_matrices=False)
        sg = np.sign(U[..., :1, :])
        U, Vh = U * sg, Vh * np.swapaxes(sg, -1, -2)
        return np.sum(U ** 3 * C1) + np.sum(S ** 3 * c) + np.sum(Vh ** 3 * C2)
    return f


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("full", [True, False])
def test_svd_gradient_matches_finite_differences(shape, full):
    rng = _rng(1)
    m, n = shape
    k = min(m, n)
    A = rng.standard_normal(shape)
    C1, C2, c = rng.standard_normal((m, k)), rng.standard_normal((k, n)), rng.standard_normal(k)
    f = _svd_loss(full, C1, C2, c)
    fd = _fd(_svd_loss_np(C1, C2, c), A)
    np.testing.assert_allclose(ga.grad(f)(A), fd, rtol=1e-6, atol=1e-8)
    dA = rng.standard_normal(shape)
    _, t = ga.jvp(f, (A,), (dA,))
    np.testing.assert_allclose(t, np.sum(fd * dA), rtol=1e-6)
    ga.check_grad(f, A)


@pytest.mark.parametrize("shape", SHAPES)
def test_svd_full_jacobians_both_modes(shape):
    """Every output entry of the thin factors (sign-fixed) in both modes = finite differences."""
    A = _rng(2).standard_normal(shape)
    k = min(shape)

    def f(X):
        U, S, Vh = gl.svd(X, full_matrices=False)
        U, Vh = _signed(U, Vh, k)
        return ga.concatenate([ga.reshape(U, (-1,)), S, ga.reshape(Vh, (-1,))])

    def ref(X):
        U, S, Vh = np.linalg.svd(X, full_matrices=False)
        sg = np.sign(U[:1])
        return np.concatenate([(U * sg).ravel(), S, (Vh * sg.T).ravel()])

    fd = _fd(ref, A)
    np.testing.assert_allclose(ga.jacrev(f)(A), fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ga.jacfwd(f)(A), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape", SHAPES)
def test_singular_value_gradients_closed_form(shape):
    """ds_k = u_k^T dA v_k: grad s_k = u_k v_k^T; grad sum(S) (compute_uv=False) = U Vh."""
    A = _rng(3).standard_normal(shape)
    U, S, Vh = np.linalg.svd(A, full_matrices=False)
    for k in range(len(S)):
        g = ga.grad(lambda X: gl.svd(X, compute_uv=False)[k])(A)
        np.testing.assert_allclose(g, np.outer(U[:, k], Vh[k]), atol=1e-12)
    J = ga.jacfwd(lambda X: gl.svd(X, compute_uv=False))(A)
    np.testing.assert_allclose(J, np.einsum("ik,kj->kij", U, Vh), atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_svd_against_autograd(shape):
    rng = _rng(4)
    A = rng.standard_normal(shape)
    k = min(shape)
    C1, C2, c = rng.standard_normal((shape[0], k)), rng.standard_normal((k, shape[1])), \
        rng.standard_normal(k)

    def ours(X):      # squares: invariant to each singular pair's sign
        U, S, Vh = gl.svd(X, full_matrices=False)
        return ga.sum(U ** 2 * C1) + ga.sum(S ** 2 * c + S) + ga.sum(Vh ** 2 * C2)

    def theirs(X):
        U, S, Vh = anp.linalg.svd(X, full_matrices=False)
        return anp.sum(U ** 2 * C1) + anp.sum(S ** 2 * c + S) + anp.sum(Vh ** 2 * C2)

    np.testing.assert_allclose(ga.grad(ours)(A), autograd.grad(theirs)(A), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 4)])
def test_svd_second_order(shape):
    rng = _rng(5)
    A = rng.standard_normal(shape)
    k = min(shape)
    C1, C2, c = rng.standard_normal((shape[0], k)), rng.standard_normal((k, shape[1])), \
        rng.standard_normal(k)
    f = _svd_loss(False, C1, C2, c)
    H1 = ga.hessian(f)(A)
    H2 = ga.jacrev(ga.jacfwd(f))(A)
    np.testing.assert_allclose(H1, H2, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(H1, np.swapaxes(np.swapaxes(H1, 0, 2), 1, 3), rtol=1e-8, atol=1e-9)
    dA = rng.standard_normal(shape)
    g = ga.grad(f)
    fd = (g(A + 1e-6 * dA) - g(A - 1e-6 * dA)) / 2e-6
    _, hv = ga.hvp(f, A, dA)
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.tensordot(H1, dA, 2), hv, rtol=1e-8, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# eigh: eigenvalue derivatives at distinct, close (gap 1e-6) eigenvalues; eigenvectors at 1e-6

@pytest.mark.parametrize("gap", [1.0, 1e-6])
def test_eigenvalue_derivative_is_vk_dA_vk(gap):
    S = _with_spectrum([-1.0, 0.5, 0.5 + gap, 2.0], seed=6)
    w, V = (x.numpy() for x in gl.eigh(S))
    assert abs((w[2] - w[1]) - gap) < 1e-12
    dA = _sym(_rng(7).standard_normal((4, 4)))
    _, t = ga.jvp(gl.eigvalsh, (S,), (dA,))
    np.testing.assert_allclose(t, np.einsum("ik,ij,jk->k", V, dA, V), rtol=1e-12, atol=1e-13)
    J = ga.jacrev(gl.eigvalsh)(S)
    np.testing.assert_allclose(J, np.einsum("ik,jk->kij", V, V), atol=1e-13)
    # finite differences with a step below the gap (the second derivative is ~ 1/gap)
    h = 1e-9 * min(gap, 1.0) / 1e-6 if gap < 1 else 1e-6
    fd = (np.linalg.eigvalsh(S + h * dA) - np.linalg.eigvalsh(S - h * dA)) / (2 * h)
    np.testing.assert_allclose(t, fd, rtol=1e-5, atol=1e-6)


def test_eigenvector_derivatives_at_gap_1e_6():
    """dV = V (F o X) with F_ij = 1/(w_j - w_i) ~ 1e6 at the close pair: the cluster tolerance
    (~1e-13 here) leaves it alone.  Finite differences with a step (1e-10) well below the gap."""
    S = _with_spectrum([-1.0, 0.5, 0.5 + 1e-6, 2.0], seed=8)
    dA = _sym(_rng(9).standard_normal((4, 4)))

    def ours(X):
        V = gl.eigh(X)[1]
        return V * V              # sign-invariant

    _, t = ga.jvp(ours, (S,), (dA,))
    h = 1e-10
    fd = (np.linalg.eigh(S + h * dA)[1] ** 2 - np.linalg.eigh(S - h * dA)[1] ** 2) / (2 * h)
    assert np.abs(t).max() > 1e4                     # the 1/gap coupling is there
    np.testing.assert_allclose(t, fd, rtol=1e-4, atol=1e-4 * np.abs(fd).max())
    C = _rng(10).standard_normal((4, 4))
    g = ga.grad(lambda X: ga.sum(ours(X) * C))(S)
    np.testing.assert_allclose(np.sum(g * dA), np.sum(fd * C), rtol=1e-4)


def test_eigh_against_autograd_and_second_order():
    S = _with_spectrum([-2.0, -0.5, 1.0, 3.0], seed=11)
    c = np.arange(1.0, 5.0)
    C = _rng(12).standard_normal((4, 4))

    def ours(X):
        w, V = gl.eigh(X)
        return ga.sum(w * c) + ga.sum(V ** 2 * C)

    def theirs(X):
        w, V = anp.linalg.eigh(X)
        return anp.sum(w * c) + anp.sum(V ** 2 * C)

    np.testing.assert_allclose(ga.grad(ours)(S), _sym(autograd.grad(theirs)(S)),
                               rtol=1e-9, atol=1e-11)
    H = ga.hessian(ours)(S)
    np.testing.assert_allclose(H, ga.jacfwd(ga.jacrev(ours))(S), rtol=1e-8, atol=1e-9)
    dA = _sym(_rng(13).standard_normal((4, 4)))
    g = ga.grad(ours)
    fd = (g(S + 1e-6 * dA) - g(S - 1e-6 * dA)) / 2e-6
    np.testing.assert_allclose(ga.hvp(ours, S, dA)[1], fd, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# degenerate spectra: exact gradients for basis-invariant losses

REPEATED = [1.0, 1.0, 2.0, -0.5, -0.5]


def test_eigh_spectral_function_at_repeated_eigenvalue_is_expm():
    S = _with_spectrum(REPEATED, seed=14)
    g = ga.grad(lambda X: ga.sum(ga.exp(gl.eigvalsh(X))))(S)
    np.testing.assert_allclose(g, sl.expm(S), rtol=1e-12, atol=1e-12)
    g = ga.grad(lambda X: ga.sum(gl.eigh(X)[0] ** 2))(S)         # |A|_F^2
    np.testing.assert_allclose(g, 2 * S, atol=1e-13)
    g = ga.grad(lambda X: ga.sum(gl.eigh(X)[0] ** 2))(np.eye(3))
    np.testing.assert_allclose(g, 2 * np.eye(3), atol=1e-14)


def _projector_basis_free(X, lo, hi):
    """The spectral projector onto the eigenvalues in (lo, hi), by a Riesz contour integral
    (no eigenvectors): P = (1/2 pi i) \\oint (z - X)^{-1} dz on a circle, trapezoidal rule."""
    X = _sym(X)
    c, r = (lo + hi) / 2, (hi - lo) / 2
    P = np.zeros_like(X)
    N = 64
    for t in 2 * np.pi * (np.arange(N) + 0.5) / N:
        z = c + r * np.exp(1j * t)
        P = P + (np.linalg.solve(z * np.eye(len(X)) - X, np.eye(len(X))) * r * np.exp(1j * t)).real
    return P / N


def test_cluster_projector_gradient_is_exact():
    S = _with_spectrum(REPEATED, seed=15)
    C = _rng(16).standard_normal((5, 5))
    np.testing.assert_allclose(_projector_basis_free(S, 0.5, 1.5),
                               np.linalg.eigh(S)[1][:, 2:4] @ np.linalg.eigh(S)[1][:, 2:4].T,
                               atol=1e-12)

    def ours(X):
        V = gl.eigh(X)[1][:, 2:4]            # w ascending: the pair at 1.0
        return ga.sum(C * (V @ V.T))

    g = ga.grad(ours)(S)
    fd = _fd(lambda X: np.sum(C * _projector_basis_free(X, 0.5, 1.5)), S, h=1e-5)
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-8)
    # the analytic form: dP = V_o F_oc ... : gA = sum over outside eigenpairs (i) and cluster (c)
    w, V = np.linalg.eigh(S)
    Cs = C + C.T
    ref = np.zeros((5, 5))
    for a in (2, 3):
        for i in (0, 1, 4):
            coeff = V[:, i] @ Cs @ V[:, a] / (w[a] - w[i])
            ref += coeff * (np.outer(V[:, i], V[:, a]) + np.outer(V[:, a], V[:, i])) / 2
    np.testing.assert_allclose(g, ref, atol=1e-12)
    dA = _sym(_rng(17).standard_normal((5, 5)))
    np.testing.assert_allclose(ga.jvp(ours, (S,), (dA,))[1], np.sum(fd * dA), rtol=1e-7)


@pytest.mark.parametrize("shape", [(4, 4), (6, 4), (4, 6)])
def test_svd_invariant_losses_at_repeated_singular_values(shape):
    m, n = shape
    A = _with_singular_values([3.0, 2.0, 2.0, 1.0], m, n, seed=18)
    U, S, Vh = np.linalg.svd(A, full_matrices=False)
    g = ga.grad(lambda X: ga.sum(gl.svd(X, compute_uv=False)))(A)          # nuclear norm
    np.testing.assert_allclose(g, U @ Vh, atol=1e-13)
    g = ga.grad(lambda X: ga.sum(gl.svd(X)[1] ** 2))(A)
    np.testing.assert_allclose(g, 2 * A, atol=1e-13)
    C = _rng(19).standard_normal(shape)

    def polar(X):
        U, S, Vh = gl.svd(X, full_matrices=False)
        return ga.sum(C * (U @ Vh))

    def polar_ref(X):            # basis free: the orthogonal factor of X = Q (X^T X)^{1/2}
        if X.shape[0] >= X.shape[1]:
            return np.sum(C * sl.polar(X)[0])
        return np.sum(C * sl.polar(X.T)[0].T)

    fd = _fd(polar_ref, A)
    np.testing.assert_allclose(ga.grad(polar)(A), fd, rtol=1e-7, atol=1e-8)
    dA = _rng(20).standard_normal(shape)
    np.testing.assert_allclose(ga.jvp(polar, (A,), (dA,))[1], np.sum(fd * dA), rtol=1e-7)


@pytest.mark.parametrize("shape", [(5, 4), (4, 5), (4, 4)])
def test_svd_zero_singular_values_no_nan(shape):
    A = _with_singular_values([2.0, 1.0], *shape, seed=21)          # rank 2
    for full in (True, False):
        g = ga.grad(lambda X: ga.sum(gl.svd(X, full_matrices=full)[1] ** 2))(A)
        np.testing.assert_allclose(g, 2 * A, atol=1e-13)
        g = ga.grad(lambda X: ga.sum(gl.svd(X, full_matrices=full)[1]))(A)
        U, S, Vh = np.linalg.svd(A, full_matrices=False)
        np.testing.assert_allclose(g[:, :] @ Vh[:2].T, U[:, :2], atol=1e-12)   # u_k v_k^T
        assert np.all(np.isfinite(g))
        dA = _rng(22).standard_normal(shape)
        _, t = ga.jvp(lambda X: gl.svd(X, full_matrices=full), (A,), (dA,))
        assert all(np.all(np.isfinite(x)) for x in t)
    g = ga.grad(lambda X: ga.sum(gl.svd(X)[1] ** 2))(np.zeros(shape))
    np.testing.assert_array_equal(g, 0.0)


def test_none_cotangents_contribute_exactly_zero(monkeypatch):
    seen = []
    vjp = gl._spectral.P_SVD.vjp

    def spy(n, gs):
        seen.append(tuple(g is None for g in gs))
        return vjp(n, gs)

    monkeypatch.setattr(gl._spectral.P_SVD, "vjp", spy)
    A = _with_singular_values([1.0, 1.0, 1.0], 3, 3, seed=23)      # all singular values equal
    g = ga.grad(lambda X: ga.sum(gl.svd(X)[1]))(A)
    assert seen == [(True, False, True)]
    np.testing.assert_allclose(g, np.linalg.svd(A)[0] @ np.linalg.svd(A)[2], atol=1e-14)


# ---------------------------------------------------------------------------------------------
# degenerate spectra: the policy for what is not differentiable

def test_one_eigenvector_of_a_repeated_pair_raises():
    S = _with_spectrum(REPEATED, seed=24)
    with pytest.raises(NDE, match=r"eigh.*w\[2\] = 0?\.?9*[0-9]* and w\[3\] = 1.*gap .* <= tol"):
        ga.grad(lambda X: ga.sum(gl.eigh(X)[1][:, 2] ** 4))(S)
    assert issubclass(NDE, np.linalg.LinAlgError)
    with pytest.raises(NDE, match="matrix \\(1,\\)"):            # batched: names the matrix
        B = np.stack([_with_spectrum([0.0, 1.0, 2.0], 1), _with_spectrum([0.0, 1.0, 1.0], 2)])
        ga.grad(lambda X: ga.sum(gl.eigh(X)[1][..., 2] ** 4))(B)
    # an eigenvector outside the cluster is differentiable there
    ga.check_grad(lambda X: ga.sum(gl.eigh(X)[1][:, 4] ** 4), S)


def test_one_singular_vector_of_a_repeated_pair_raises():
    A = _with_singular_values([3.0, 2.0, 2.0, 1.0], 5, 4, seed=25)
    with pytest.raises(NDE, match=r"svd.*S\[1\] = (2|1\.99).*S\[2\] = (2|1\.99)"):
        ga.grad(lambda X: ga.sum(gl.svd(X)[0][:, 1] ** 4))(A)
    with pytest.raises(NDE, match="null space"):                 # rank-deficient, m > n
        R = _with_singular_values([2.0, 1.0], 5, 4, seed=26)
        ga.grad(lambda X: ga.sum(gl.svd(X, full_matrices=False)[0][:, 3] ** 4))(R)


def test_full_matrices_extra_columns():
    """The complement's projector U_x U_x^T is differentiable (no rotation inside it), a
    basis-dependent loss of the extra columns raises, and a cotangent that is exactly zero on
    them (slicing the first k) is fine."""
    rng = _rng(27)
    for shape in [(6, 4), (4, 6)]:
        A = rng.standard_normal(shape)
        C = rng.standard_normal((2, 2))
        tall = shape[0] > shape[1]

        def comp(X, lib):
            if lib is np:
                U, _, Vh = np.linalg.svd(X)
            else:
                U, _, Vh = gl.svd(X)
            W = U[:, 4:] if tall else Vh[4:].T
            return lib.sum(C * (W @ W.T)[:2, :2])

        fd = _fd(lambda X: comp(X, np), A)
        np.testing.assert_allclose(ga.grad(lambda X: comp(X, ga))(A), fd, rtol=1e-7, atol=1e-8)
        ga.check_grad(lambda X: comp(X, ga), A)
        with pytest.raises(NDE, match="extra"):
            ga.grad(lambda X: ga.sum((gl.svd(X)[0][:, 5] if tall else gl.svd(X)[2][5]) ** 4))(A)
    A = rng.standard_normal((5, 3))
    f = lambda X: ga.sum(gl.svd(X)[0][:, :3] ** 2 * np.arange(15.0).reshape(5, 3))
    np.testing.assert_allclose(ga.grad(f)(A), ga.grad(lambda X: ga.sum(
        gl.svd(X, full_matrices=False)[0] ** 2 * np.arange(15.0).reshape(5, 3)))(A), atol=1e-13)


def test_single_repeated_eigenvalue_follows_the_max_convention():
    """A cotangent on one eigenvalue of a cluster gives v_k v_k^T for the returned basis (a
    generalized gradient, as max at ties); it is finite and in the Clarke set."""
    S = _with_spectrum(REPEATED, seed=28)
    w, V = (x.numpy() for x in gl.eigh(S))
    g = ga.grad(lambda X: gl.eigvalsh(X)[3])(S)
    np.testing.assert_allclose(g, np.outer(V[:, 3], V[:, 3]), atol=1e-13)


# ---------------------------------------------------------------------------------------------
# batches, float32, compile, random shapes

def test_batched_equals_per_matrix():
    rng = _rng(29)
    A = rng.standard_normal((2, 3, 5, 3))
    C = rng.standard_normal((5, 3))

    def f(X):
        U, S, Vh = gl.svd(X, full_matrices=False)
        w, V = gl.eigh(X[..., :3, :])
        return ga.sum(U ** 2 * C) + ga.sum(S ** 3) + ga.sum(w * np.arange(3.0)) + ga.sum(V ** 4)

    g = ga.grad(f)(A)
    dA = rng.standard_normal(A.shape)
    t = ga.jvp(f, (A,), (dA,))[1]
    per = [ga.grad(f)(A[i, j]) for i in range(2) for j in range(3)]
    np.testing.assert_allclose(g.reshape(6, 5, 3), np.stack(per), rtol=1e-11, atol=1e-12)
    per_t = sum(ga.jvp(f, (A[i, j],), (dA[i, j],))[1] for i in range(2) for j in range(3))
    np.testing.assert_allclose(t, per_t, rtol=1e-11)


@pytest.mark.parametrize("shape", [(3, 3), (4, 3), (3, 4)])
def test_float32_is_kept(shape):
    A64 = _rng(30).standard_normal(shape)
    A32 = A64.astype(np.float32)
    k = min(shape)

    def f(X):
        U, S, Vh = gl.svd(X, full_matrices=False)
        return ga.concatenate([ga.reshape(U ** 2, (-1,)), S, ga.reshape(Vh ** 2, (-1,))])

    for out in gl.svd(A32):
        assert out.dtype == np.float32
    for jac in (ga.jacrev, ga.jacfwd):
        J32, J64 = jac(f)(A32), jac(f)(A64)
        assert J32.dtype == np.float32
        np.testing.assert_allclose(J32, J64, rtol=2e-3, atol=2e-3)
    S32 = _with_spectrum(REPEATED, seed=31).astype(np.float32)       # float32 clusters
    g = ga.grad(lambda X: ga.sum(gl.eigh(X)[0] ** 2))(S32)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2 * S32, atol=1e-5)
    C = _rng(32).standard_normal((5, 5)).astype(np.float32)
    g = ga.grad(lambda X: ga.sum(C * (lambda V: V @ V.T)(gl.eigh(X)[1][:, 2:4])))(S32)
    g64 = ga.grad(lambda X: ga.sum(C * (lambda V: V @ V.T)(gl.eigh(X)[1][:, 2:4])))(
        S32.astype(np.float64))
    np.testing.assert_allclose(g, g64, atol=1e-4)
    del k


def test_compile_replays():
    C = _rng(33).standard_normal((4, 3))

    def loss(A, S):
        U, s, Vh = gl.svd(A, full_matrices=False)
        w, V = gl.eigh(S)
        return ga.sum(U ** 2 * C) + ga.sum(s) + ga.sum(w ** 3) + ga.sum(V[:, 0] ** 4)

    vg = ga.value_and_grad(loss, argnums=(0, 1))
    cvg = ga.compile(vg)
    rng = _rng(34)
    for _ in range(3):
        A, S = rng.standard_normal((4, 3)), _sym(rng.standard_normal((3, 3)))
        (v1, (a1, s1)), (v2, (a2, s2)) = cvg(A, S), vg(A, S)
        np.testing.assert_allclose(v1, v2, rtol=1e-13)
        np.testing.assert_allclose(a1, a2, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(s1, s2, rtol=1e-11, atol=1e-12)
    assert cvg.traces == 1 and cvg.replays == 2
    # the degeneracy check is part of the replayed program, not frozen at trace time
    f = ga.compile(ga.grad(lambda X: ga.sum(gl.eigh(X)[1][:, 1] ** 4)))
    f(_with_spectrum([0.0, 1.0, 2.0], 35))
    with pytest.raises(NDE):
        f(_with_spectrum([0.0, 1.0, 1.0], 36))


@given(seed=seeds, m=st.integers(1, 5), n=st.integers(1, 5), full=st.booleans())
def test_random_shapes_check_grad(seed, m, n, full):
    A = _rng(seed % 1000).standard_normal((m, n))
    k = min(m, n)
    c = np.arange(1.0, k + 1)
    ga.check_grad(lambda X: gl.svd(X, full_matrices=full)[1] * c, A)
    C = _rng(seed % 1000 + 1).standard_normal((m, k))
    ga.check_grad(lambda X: ga.sum(gl.svd(X, full_matrices=full)[0][:, :k] ** 2 * C), A)
    ga.check_grad(lambda X: ga.sum(gl.eigh(X[:k, :k])[1] ** 2 * C[:k]), A)


def test_matrix_function_through_eigh_at_a_repeated_eigenvalue_raises_not_wrong():
    """Regression: V diag(exp(w)) V^T at an exactly repeated eigenvalue returned a finite but
    wrong gradient (the in-cluster divided difference f'(w) was lost); it now raises, and the
    same loss written with expm gets the exact gradient."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    A = Q @ np.diag([1.0, 1.0, 2.0]) @ Q.T
    C = rng.standard_normal((3, 3))
    C = C + C.T

    def matfun(A):
        w, V = gl.eigh(A)
        return ga.sum(C * ((V * ga.exp(w)) @ ga.swapaxes(V, -1, -2)))
    with pytest.raises(gl._spectral.NonDifferentiableError, match="pairs eigenvectors"):
        ga.grad(matfun)(A)
    g = ga.grad(lambda A: ga.sum(C * gl.expm(A)))(A)
    np.testing.assert_allclose(g, fd_jacobian(lambda X: ga.sum(C * gl.expm(X)), [A], 0),
                               rtol=1e-6, atol=1e-8)
    # a loss of the cluster's projector plus the trace still differentiates (gw equal in the
    # cluster): no error, and the right number
    def proj(A):
        w, V = gl.eigh(A)
        Vc = V[:, :2]
        return ga.sum(C * (Vc @ ga.swapaxes(Vc, -1, -2))) + ga.sum(w)
    P = Q[:, :2] @ Q[:, :2].T
    R = Q[:, 2:] @ Q[:, 2:].T          # resolvent of the gap 1 -> 2
    expect = np.eye(3) - (P @ C @ R + R @ C @ P)
    np.testing.assert_allclose(ga.grad(proj)(A), expect, rtol=1e-10, atol=1e-10)
