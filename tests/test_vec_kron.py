"""The course's Kronecker-product forms of matrix derivatives, through ga.jacobian(vec=True)
in forward and reverse mode: vec stacks columns (column-major), so that
vec(A X B) = (B^T kron A) vec(X), and the Jacobian matrix has rows vec(df), columns vec(dX).

Each identity below comes from the differential (the product rule on df = f'(X)[dX]) and
vec(A dX B) = (B^T kron A) vec(dX); the expected matrices are built with ga.kron / ga.vec and
checked against NumPy's kron and a column-major flatten as well, so that a convention slip in
either the transform or the helpers shows."""
import numpy as np
import pytest

import graphad as ga

MODES = ["fwd", "rev", "auto"]


def K(a, b):
    """kron through graphad (a Tensor for array inputs), as a NumPy array, checked against
    NumPy's."""
    k = ga.kron(a, b)
    k = k.numpy() if isinstance(k, ga.Tensor) else np.asarray(k)
    np.testing.assert_array_equal(k, np.kron(a, b))
    return k


def vec(x):
    v = ga.vec(x)
    v = v.numpy() if isinstance(v, ga.Tensor) else np.asarray(v)
    np.testing.assert_array_equal(v, np.asarray(x).reshape(-1, order="F"))
    return v


def jac_vec(f, X, mode, argnums=0):
    return ga.jacobian(f, argnums=argnums, mode=mode, vec=True)(*((X,) if argnums == 0 else X))


def fd_vec_jacobian(f, X, h=1e-6):
    """Column k: central difference of vec(f) along the k-th column-major unit matrix."""
    X = np.asarray(X, float)
    cols = []
    for k in range(X.size):
        E = np.zeros(X.size)
        E[k] = 1.0
        E = E.reshape(X.shape, order="F")
        with ga.no_grad():
            fp = np.asarray(ga.vec(f(X + h * E)).numpy())
            fm = np.asarray(ga.vec(f(X - h * E)).numpy())
        cols.append((fp - fm) / (2 * h))
    return np.stack(cols, axis=1)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ----------------------------------------------------------------------------------------------
# the identities of the course

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m, n", [(3, 3), (2, 4), (4, 2), (1, 3)])
def test_XAX(rng, mode, m, n):
    """f(X) = X A X with X m x n, A n x m:  df = dX (A X) + (X A) dX
    ->  (A X)^T kron I_m  +  I_n kron (X A)."""
    X, A = rng.standard_normal((m, n)), rng.standard_normal((n, m))
    M = jac_vec(lambda X: X @ A @ X, X, mode)
    want = K((A @ X).T, np.eye(m)) + K(np.eye(n), X @ A)
    assert M.shape == (m * n, m * n)
    np.testing.assert_allclose(M, want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(M, fd_vec_jacobian(lambda X: X @ A @ X, X), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("p, m, n, q", [(3, 3, 3, 3), (2, 3, 4, 5), (5, 4, 2, 1), (1, 2, 3, 2)])
def test_AXB(rng, mode, p, m, n, q):
    """vec(A X B) = (B^T kron A) vec(X): the map is linear, its matrix is B^T kron A."""
    A, X, B = rng.standard_normal((p, m)), rng.standard_normal((m, n)), rng.standard_normal((n, q))
    M = jac_vec(lambda X: A @ X @ B, X, mode)
    want = K(B.T, A)
    np.testing.assert_allclose(M, want, rtol=1e-12, atol=1e-14)
    # and the identity itself, through ga.vec and ga.kron
    np.testing.assert_allclose(vec(A @ X @ B), want @ vec(X), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 2, 4])
def test_X_squared(rng, mode, n):
    """d(X^2) = dX X + X dX  ->  I kron X + X^T kron I."""
    X, I = rng.standard_normal((n, n)), np.eye(n)
    M = jac_vec(lambda X: X @ X, X, mode)
    np.testing.assert_allclose(M, K(I, X) + K(X.T, I), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode", MODES)
def test_X_cubed(rng, mode):
    """d(X^3) = dX X^2 + X dX X + X^2 dX  ->  (X^2)^T kron I + X^T kron X + I kron X^2,
    through @ and through ga.linalg.matrix_power where it exists."""
    X, I = rng.standard_normal((3, 3)), np.eye(3)
    X2 = X @ X
    want = K(X2.T, I) + K(X.T, X) + K(I, X2)
    np.testing.assert_allclose(jac_vec(lambda X: X @ X @ X, X, mode), want,
                               rtol=1e-12, atol=1e-13)
    if hasattr(ga.linalg, "matrix_power"):
        np.testing.assert_allclose(jac_vec(lambda X: ga.linalg.matrix_power(X, 3), X, mode),
                                   want, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m, n", [(2, 3), (3, 3), (4, 1)])
def test_transpose_is_the_commutation_matrix(mode, m, n):
    """vec(X^T) = K_{mn} vec(X): a permutation matrix with K (A kron B) K^T = B kron A for
    A n x n, B m x m (vec(B X A^T) = (A kron B) vec X, transposed: vec(A X^T B^T))."""
    X = np.arange(m * n, dtype=float).reshape(m, n)
    Kmn = jac_vec(lambda X: X.T, X, mode)
    assert Kmn.shape == (m * n, m * n)
    np.testing.assert_array_equal(Kmn @ vec(X), vec(X.T))
    np.testing.assert_array_equal(Kmn @ Kmn.T, np.eye(m * n))
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n)), rng.standard_normal((m, m))
    np.testing.assert_allclose(Kmn @ K(A, B) @ Kmn.T, K(B, A), rtol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_inverse(rng, mode):
    """d(X^{-1}) = -X^{-1} dX X^{-1}  ->  -(X^{-T} kron X^{-1})."""
    X = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    Y = np.linalg.inv(X)
    np.testing.assert_allclose(jac_vec(ga.linalg.inv, X, mode), -K(Y.T, Y), rtol=1e-11,
                               atol=1e-13)


@pytest.mark.parametrize("mode", MODES)
def test_scalar_output_row_is_vec_of_gradient(rng, mode):
    """A scalar f gives one row, vec(grad f)^T: log|det X| -> vec(X^{-T})^T."""
    X = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    row = jac_vec(lambda X: ga.linalg.slogdet(X)[1], X, mode)
    assert row.shape == (1, 9)
    np.testing.assert_allclose(row[0], vec(np.linalg.inv(X).T), rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_two_arguments(rng, mode):
    """f(A, X) = A X:  df = dA X + A dX  ->  (X^T kron I_p, I_n kron A)."""
    A, X = rng.standard_normal((2, 3)), rng.standard_normal((3, 4))
    MA, MX = jac_vec(lambda A, X: A @ X, (A, X), mode, argnums=(0, 1))
    np.testing.assert_allclose(MA, K(X.T, np.eye(2)), atol=1e-14)
    np.testing.assert_allclose(MX, K(np.eye(4), A), atol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_chain_rule_multiplies_kronecker_matrices(rng, mode):
    """g(f(X)) with f(X) = X A X and g(Y) = B Y^2: the vec Jacobian of the composition is the
    product of the two (the chain rule as a product of linear maps)."""
    X, A, B = (rng.standard_normal((3, 3)) for _ in range(3))
    f = lambda X: X @ A @ X          # noqa: E731
    g = lambda Y: B @ Y @ Y          # noqa: E731
    Jf = jac_vec(f, X, mode)
    Jg = jac_vec(g, X @ A @ X, mode)
    np.testing.assert_allclose(jac_vec(lambda X: g(f(X)), X, mode), Jg @ Jf, rtol=1e-11,
                               atol=1e-11)


def test_vec_on_vectors_is_the_plain_jacobian(rng):
    x = rng.standard_normal(4)
    f = lambda x: ga.sin(x)[:3] * x[1:]       # noqa: E731
    for mode in MODES:
        np.testing.assert_allclose(jac_vec(f, x, mode), ga.jacobian(f, mode=mode)(x),
                                   rtol=1e-15)


def test_vec_matrix_of_a_non_matrix_output(rng):
    """Output of shape (2, 3, 2) from a 2x3 input: rows are vec(df) with the first index
    fastest (column-major in every axis), checked against finite differences."""
    X = rng.standard_normal((2, 3))
    f = lambda X: ga.stack([X * X, ga.sin(X)], axis=-1)     # noqa: E731
    for mode in ("fwd", "rev"):
        M = jac_vec(f, X, mode)
        assert M.shape == (12, 6)
        np.testing.assert_allclose(M, fd_vec_jacobian(f, X), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mode", ["fwd", "rev"])
def test_float32(rng, mode):
    X = rng.standard_normal((3, 2)).astype(np.float32)
    A = rng.standard_normal((2, 3)).astype(np.float32)
    M = jac_vec(lambda X: X @ A @ X, X, mode)
    assert M.dtype == np.float32
    want = np.kron((A @ X).T, np.eye(3)) + np.kron(np.eye(2), X @ A)
    np.testing.assert_allclose(M, want, rtol=1e-5, atol=1e-5)


def test_modes_agree_exactly_in_structure(rng):
    """Forward and reverse give the same matrix; zeros of the Kronecker structure are exact
    zeros in both (no rounding noise where I kron X has its zero blocks)."""
    X = rng.standard_normal((3, 3))
    Mf = jac_vec(lambda X: X @ X, X, "fwd")
    Mr = jac_vec(lambda X: X @ X, X, "rev")
    np.testing.assert_allclose(Mf, Mr, rtol=1e-13, atol=1e-14)
    structural_zero = (np.kron(np.eye(3), np.ones((3, 3))) + np.kron(np.ones((3, 3)),
                                                                     np.eye(3))) == 0
    assert np.all(Mf[structural_zero] == 0) and np.all(Mr[structural_zero] == 0)


def test_vec_against_autograd(rng):
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    X, A = rng.standard_normal((3, 4)), rng.standard_normal((4, 3))
    J = autograd.jacobian(lambda X: anp.dot(anp.dot(X, A), X))(X)       # (3, 4, 3, 4)
    want = np.transpose(J, (1, 0, 3, 2)).reshape(12, 12)                 # column-major vec
    for mode in MODES:
        np.testing.assert_allclose(jac_vec(lambda X: X @ A @ X, X, mode), want, rtol=1e-12,
                                   atol=1e-13)
