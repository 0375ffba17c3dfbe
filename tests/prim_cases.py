"""The primitive table shared by test_forward.py and test_jacobians.py: for every primitive in
graphad's registry, small functions that exercise it (with broadcasting, scalars and
lower-rank operands), argument generators, and a finite-difference Jacobian."""
import numpy as np

import graphad as ga
from graphad import _core
from graphad._prims import REGISTRY


def fd_jacobian(f, args, i, h=None):
    """Central finite-difference Jacobian of f with respect to args[i], shape out + in."""
    args = [np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f" else a for a in args]
    x = args[i]
    eps = np.finfo(np.float64).eps
    cols = []
    for k in range(x.size):
        step = h if h is not None else eps ** (1 / 3) * max(1.0, abs(x.flat[k]))
        xp, xm = x.copy(), x.copy()
        xp.flat[k] += step
        xm.flat[k] -= step
        with ga.no_grad():
            fp = np.asarray(value(f(*args[:i], xp, *args[i + 1:])), np.float64)
            fm = np.asarray(value(f(*args[:i], xm, *args[i + 1:])), np.float64)
        cols.append((fp - fm) / (2 * step))
    out_shape = cols[0].shape if cols else np.shape(value(f(*args)))
    J = np.stack(cols, axis=-1) if cols else np.zeros(out_shape + (0,))
    return J.reshape(out_shape + x.shape)


def value(y):
    return y.data if isinstance(y, ga.Tensor) else y


def rng_for(name):
    return np.random.default_rng(sum(map(ord, name)))


def U(shape, lo=-2.0, hi=2.0):
    return ("u", shape, lo, hi)


def AWAY(shape):
    """Values with |x| in [0.3, 2]: away from kinks at 0."""
    return ("away", shape)


def GRID(shape, offset):
    """Values on interleaved grids, so that two arguments never tie (max/min, where)."""
    return ("grid", shape, offset)


def draw(spec, rng):
    if spec[0] == "u":
        return rng.uniform(spec[2], spec[3], size=spec[1])
    if spec[0] == "away":
        return rng.uniform(0.3, 2.0, size=spec[1]) * rng.choice([-1.0, 1.0], size=spec[1])
    k = rng.integers(-4, 4, size=spec[1]) * 0.5 + (0.25 if spec[2] else 0.0)
    return k + rng.uniform(-0.05, 0.05, size=spec[1])


def P(name, *args, params=None):
    """Apply a registry primitive directly (for the ones without a public function)."""
    return _core.apply(REGISTRY[name], args, params)


def _eigh_mix(A):
    """Eigenvalues and eigenvectors together, invariant to each eigenvector's sign."""
    w, V = ga.linalg.eigh(A)
    return V ** 2 * w[..., None, :]


# primitive name -> list of (label, f, argument specs).  Shapes mix broadcasting, scalars and
# lower-rank operands, because a block of tangents carries a leading axis that must line up
# with the output, not with a lower-rank operand.
CASES = {
    "add": [("vec+scalar", lambda a, b: a + b, [U((3,)), U(())]),
            ("mat+row", lambda a, b: a + b, [U((2, 3)), U((3,))]),
            ("col+row", lambda a, b: a + b, [U((2, 1)), U((1, 3))])],
    "subtract": [("scalar-vec", lambda a, b: a - b, [U(()), U((3,))]),
                 ("row-mat", lambda a, b: a - b, [U((3,)), U((2, 3))])],
    "multiply": [("vec*scalar", lambda a, b: a * b, [U((3,)), U(())]),
                 ("col*row", lambda a, b: a * b, [U((2, 1)), U((3,))])],
    "divide": [("vec/scalar", lambda a, b: a / b, [U((3,)), U((), 0.5, 2)]),
               ("scalar/mat", lambda a, b: a / b, [U(()), U((2, 2), 0.5, 2)])],
    "power": [("vec**scalar", lambda a, b: a ** b, [U((3,), 0.5, 2), U((), 0.5, 2)]),
              ("scalar**mat", lambda a, b: a ** b, [U((), 0.5, 2), U((2, 2), -1, 1)]),
              ("vec**3", lambda a: a ** 3.0, [U((4,))])],
    "maximum": [("vec,scalar", lambda a, b: ga.maximum(a, b), [GRID((4,), 0), GRID((), 1)])],
    "minimum": [("mat,row", lambda a, b: ga.minimum(a, b), [GRID((2, 3), 0), GRID((3,), 1)])],
    "gmul": [("vec,scalar", lambda a, b: P("gmul", a, b), [AWAY((3,)), U(())])],
    "negative": [("mat", lambda x: -x, [U((2, 3))])],
    "exp": [("vec", ga.exp, [U((4,))])],
    "log": [("vec", ga.log, [U((4,), 0.3, 3)])],
    "log1p": [("vec", ga.log1p, [U((4,), -0.5, 2)])],
    "sin": [("mat", ga.sin, [U((2, 2))])],
    "cos": [("vec", ga.cos, [U((3,))])],
    "tan": [("vec", ga.tan, [U((3,), -1.2, 1.2)])],
    "tanh": [("vec", ga.tanh, [U((3,))])],
    "sinh": [("vec", ga.sinh, [U((3,))])],
    "cosh": [("vec", ga.cosh, [U((3,))])],
    "sqrt": [("vec", ga.sqrt, [U((3,), 0.3, 3)])],
    "square": [("scalar", ga.square, [U(())])],
    "abs": [("vec", ga.abs, [AWAY((4,))])],
    "sign": [("vec", lambda x: ga.sign(x) * x, [AWAY((4,))])],
    # rounding: zero derivative; values on a grid away from integers and half-integers
    "floor": [("vec", lambda x: ga.floor(x) * x, [GRID((4,), 1)])],
    "ceil": [("vec", lambda x: ga.ceil(x) * x, [GRID((4,), 1)])],
    "trunc": [("vec", lambda x: ga.trunc(x) * x, [GRID((4,), 1)])],
    "rint": [("vec", lambda x: ga.rint(x) * x, [GRID((4,), 1)])],
    "relu": [("vec", ga.relu, [AWAY((4,))])],
    "step": [("vec", lambda x: P("step", x) * x, [AWAY((4,))])],
    "sigmoid": [("vec", ga.sigmoid, [U((4,), -4, 4)])],
    "softplus": [("vec", ga.softplus, [U((4,), -4, 4)])],
    "reciprocal": [("vec", lambda x: P("reciprocal", x), [U((3,), 0.5, 2)])],
    "nondiff": [("mask times x", lambda x: P("nondiff", x, params=lambda v: v > 0) * x,
                 [AWAY((4,))])],
    "select": [("vec,scalar", lambda a, b: P("select", np.array([True, False, True]), a, b),
                [U((3,)), U(())])],
    "where": [("vec,scalar", lambda a, b: ga.where(np.array([True, False, True]), a, b),
               [U((3,)), U(())]),
              ("scalar,mat", lambda a, b: ga.where(np.array([[True], [False]]), a, b),
               [U(()), U((2, 3))])],
    "clip": [("vec", lambda x: ga.clip(x, -0.5, 0.5), [AWAY((5,))])],
    "identity": [("vec", lambda x: P("identity", x), [U((3,))])],
    "astype": [("vec", lambda x: ga.astype(x, np.float64) * 2.0, [U((3,))])],
    "sum": [("all", lambda x: ga.sum(x), [U((2, 3))]),
            ("axis0", lambda x: ga.sum(x, axis=0), [U((2, 3))]),
            ("keepdims", lambda x: ga.sum(x, axis=1, keepdims=True), [U((2, 3))])],
    "max": [("axis1", lambda x: ga.max(x, axis=1), [GRID((2, 3), 0)]),
            ("all", lambda x: ga.max(x), [GRID((3,), 0)])],
    "min": [("keepdims", lambda x: ga.min(x, axis=0, keepdims=True), [GRID((3, 2), 0)])],
    "logsumexp": [("axis1", lambda x: ga.logsumexp(x, axis=1), [U((2, 3))]),
                  ("all", lambda x: ga.logsumexp(x), [U((3,))])],
    "softmax": [("axis-1", lambda x: ga.softmax(x, axis=-1), [U((2, 3))]),
                ("axis0", lambda x: ga.softmax(x, axis=0), [U((3, 2))])],
    "log_softmax": [("axis-1", lambda x: ga.log_softmax(x), [U((2, 3))])],
    "reshape": [("2x3->6", lambda x: ga.reshape(x, (6,)), [U((2, 3))]),
                ("scalar->1x1", lambda x: ga.reshape(x, (1, 1)), [U(())])],
    "transpose": [("T", lambda x: x.T, [U((2, 3))]),
                  ("perm", lambda x: ga.transpose(x, (1, 2, 0)), [U((2, 1, 3))])],
    "broadcast_to": [("scalar->vec", lambda x: ga.broadcast_to(x, (3,)), [U(())]),
                     ("row->mat", lambda x: ga.broadcast_to(x, (2, 3)), [U((3,))]),
                     ("col->mat", lambda x: ga.broadcast_to(x, (2, 3)), [U((2, 1))])],
    "getitem": [("slice", lambda x: x[1:, ::2], [U((3, 4))]),
                ("int", lambda x: x[1], [U((3, 2))]),
                ("int-array repeats", lambda x: x[np.array([0, 2, 0])], [U((3, 2))]),
                ("newaxis", lambda x: x[None, :, 1], [U((3, 2))]),
                ("adjacent arrays", lambda x: x[np.array([0, 1]), np.array([2, 0])], [U((2, 3))]),
                ("split arrays", lambda x: x[np.array([0, 1]), :, np.array([1, 0])],
                 [U((2, 3, 2))]),
                ("int and array split", lambda x: x[0, :, np.array([1, 0, 1])], [U((2, 3, 2))]),
                ("bool mask", lambda x: x[np.array([True, False, True])], [U((3, 2))])],
    "scatter": [("slice", lambda g: P("scatter", g, params=((slice(1, 3),), (4,), 0)),
                 [U((2,))]),
                ("int (rank-changing)", lambda g: P("scatter", g, params=((1,), (3, 2), 0)),
                 [U((2,))]),
                ("repeats", lambda g: P("scatter", g, params=((np.array([0, 2, 0]),), (3, 2), 0)),
                 [U((3, 2))]),
                ("split arrays", lambda g: P("scatter", g, params=(
                    (np.array([0, 1]), slice(None), np.array([1, 0])), (2, 3, 2), 0)),
                 [U((2, 3))])],
    "concatenate": [("axis0", lambda a, b: ga.concatenate([a, b]), [U((2, 3)), U((1, 3))]),
                    ("axis1", lambda a, b: ga.concatenate([a, b], axis=1), [U((2, 1)), U((2, 2))]),
                    ("stack", lambda a, b: ga.stack([a, b], axis=1), [U((3,)), U((3,))])],
    "matmul": [("mat@vec", lambda A, x: A @ x, [U((3, 4)), U((4,))]),
               ("vec@mat", lambda x, A: x @ A, [U((3,)), U((3, 2))]),
               ("vec@vec", lambda x, y: x @ y, [U((3,)), U((3,))]),
               ("mat@mat", lambda A, B: A @ B, [U((2, 3)), U((3, 2))]),
               ("batch@mat", lambda A, B: A @ B, [U((2, 2, 3)), U((3, 2))]),
               ("mat@batch", lambda A, B: A @ B, [U((2, 3)), U((2, 3, 1))]),
               ("vec@batch", lambda x, B: x @ B, [U((3,)), U((2, 3, 2))]),
               ("batch@vec", lambda B, x: B @ x, [U((2, 2, 3)), U((3,))])],
    "einsum": [("ij,jk", lambda a, b: ga.einsum("ij,jk->ik", a, b), [U((2, 3)), U((3, 2))]),
               ("trace", lambda a: ga.einsum("ii->", a), [U((3, 3))]),
               ("diag", lambda a: ga.einsum("ii->i", a), [U((3, 3))]),
               ("ellipsis", lambda a, b: ga.einsum("...i,i->...", a, b), [U((2, 3)), U((3,))]),
               ("outer-sum", lambda a, b: ga.einsum("i,j->i", a, b), [U((2,)), U((3,))]),
               ("three", lambda a, b, c: ga.einsum("i,ij,j->", a, b, c),
                [U((2,)), U((2, 3)), U((3,))])],
    "cross_entropy": [(f"reduction={r}", (lambda r: lambda x: P(
        "cross_entropy", x, np.array([2, 0, 1]), params=r))(r), [U((3, 4))])
        for r in ("mean", "sum", "none")],
    "inv": [("3x3", lambda A: ga.linalg.inv(A + 3.0 * np.eye(3)), [U((3, 3))]),
            ("batch", lambda A: ga.linalg.inv(A + 3.0 * np.eye(2)), [U((2, 2, 2))]),
            ("A^-T (rule form)", lambda A: P("inv", A + 3.0 * np.eye(3), params=(None, True)),
             [U((3, 3))])],
    "slogdet": [("logabsdet", lambda A: ga.linalg.slogdet(A)[1], [U((3, 3))]),
                ("sign*logabsdet batch", lambda A: ga.linalg.slogdet(A)[0] *
                 ga.linalg.slogdet(A)[1], [U((2, 3, 3))])],
    "eigh": [("w and V", _eigh_mix, [U((3, 3))]),
             ("batch", _eigh_mix, [U((2, 3, 3))]),
             ("eigvalsh", ga.linalg.eigvalsh, [U((4, 4))])],
    # the LU family (graphad/linalg/_factor.py); the internal primitives with params None
    # factor their input themselves
    "det": [("3x3", ga.linalg.det, [U((3, 3))]),
            ("batch", ga.linalg.det, [U((2, 3, 3))])],
    "det_cofactor": [("3x3", lambda A: P("det_cofactor", A), [U((3, 3))]),
                     ("batch", lambda A: P("det_cofactor", A), [U((2, 2, 2))])],
    "det_hvp": [("A+3I, T", lambda A, T: P("det_hvp", A + 3.0 * np.eye(3), T),
                 [U((3, 3)), U((3, 3))]),
                ("batch", lambda A, T: P("det_hvp", A + 3.0 * np.eye(2), T),
                 [U((2, 2, 2)), U((2, 2, 2))])],
    "solve": [("vector b", lambda A, b: ga.linalg.solve(A + 3.0 * np.eye(3), b),
               [U((3, 3)), U((3,))]),
              ("batch A, matrix b", lambda A, b: ga.linalg.solve(A + 3.0 * np.eye(3), b),
               [U((2, 3, 3)), U((3, 2))]),
              ("matrix A, batch b", lambda A, b: ga.linalg.solve(A + 3.0 * np.eye(2), b),
               [U((2, 2)), U((3, 2, 1))])],
    "lu_solve": [("A^-1 B", lambda A, B: P("lu_solve", A + 3.0 * np.eye(3), B,
                                           params=(False, None)), [U((3, 3)), U((3, 2))]),
                 ("A^-T B batch", lambda A, B: P("lu_solve", A + 3.0 * np.eye(2), B,
                                                 params=(True, None)),
                  [U((2, 2, 2)), U((2, 1))])],
    "lu_trisolve": [("L^-1 B", lambda T, B: P("lu_trisolve", T + 3.0 * np.eye(3), B,
                                              params=(True, False)), [U((3, 3)), U((3, 2))]),
                    ("U^-T B batch", lambda T, B: P("lu_trisolve", T + 3.0 * np.eye(2), B,
                                                    params=(False, True)),
                     [U((2, 2, 2)), U((2, 1))])],
    "lu": [("2 L + U", lambda A: (lambda P_, L, U_: 2.0 * L + U_ + P_)(*ga.linalg.lu(A)),
            [U((3, 3))]),
           ("batch", lambda A: (lambda P_, L, U_: L * U_)(*ga.linalg.lu(A)), [U((2, 3, 3))])],
    # svd (graphad/linalg/_spectral.py): squares of U and Vh are invariant to each pair's sign
    "svd": [("tall thin", lambda A: (lambda U_, S, Vh: U_ ** 2 * S[..., None, :])(
                *ga.linalg.svd(A, full_matrices=False)), [U((4, 3))]),
            ("wide batch", lambda A: (lambda U_, S, Vh: Vh ** 2 * S[..., :, None])(
                *ga.linalg.svd(A, full_matrices=False)), [U((2, 2, 3))]),
            ("square full", lambda A: (lambda U_, S, Vh: U_ ** 2 + Vh ** 2 * S)(
                *ga.linalg.svd(A)), [U((3, 3))]),
            ("S only", lambda A: ga.linalg.svd(A, compute_uv=False), [U((3, 2))])],
    # cholesky, solve_triangular (graphad/linalg/_cholesky.py); expm and its Frechet
    # derivative (graphad/linalg/_functions.py)
    "cholesky": [("3x3", lambda A: ga.linalg.cholesky(A @ A.T + 3.0 * np.eye(3)), [U((3, 3))]),
                 ("batch", lambda A: ga.linalg.cholesky(
                     A @ ga.swapaxes(A, -1, -2) + 2.0 * np.eye(2)), [U((2, 2, 2))])],
    "solve_triangular": [
        ("lower, batch b", lambda A, B: ga.linalg.solve_triangular(
            A + 4.0 * np.eye(3), B, lower=True), [U((3, 3)), U((2, 3, 2))]),
        ("trans, batch a, vector b", lambda A, b: ga.linalg.solve_triangular(
            A + 4.0 * np.eye(2), b, trans=1), [U((2, 2, 2)), U((2,))]),
        ("unit diagonal", lambda A, B: ga.linalg.solve_triangular(
            A, B, unit_diagonal=True, lower=True), [U((3, 3), -0.5, 0.5), U((3, 1))])],
    "expm": [("3x3", ga.linalg.expm, [U((3, 3))]),
             ("batch", ga.linalg.expm, [U((2, 2, 2))])],
    "expm_frechet": [("A, E", lambda A, E: P("expm_frechet", A, E), [U((2, 2)), U((2, 2))]),
                     ("A, batch E", lambda A, E: P("expm_frechet", A, E),
                      [U((2, 2), -1, 1), U((2, 2, 2))])],
    "odeint": [("rk4, y0 and a matrix", lambda y0, M: ga.odeint(
        lambda y, t, M: ga.tanh(M @ y), y0, [0.0, 0.3, 0.5], M, substeps=3),
                [U((2,)), U((2, 2))]),
               ("euler, scalar rate", lambda y0, k: ga.odeint(
        lambda y, t, k: -k * y * y, y0, [0.0, 0.5], k, method="euler", substeps=4),
                [U((2,), 0.5, 1.0), U((), 0.5, 1.0)])],
    # the rest of the array API (graphad/_elementwise.pyx, _array_api.py)
    "expm1": [("vec", ga.expm1, [U((4,))])],
    "exp2": [("vec", ga.exp2, [U((4,))])],
    "log2": [("vec", ga.log2, [U((4,), 0.3, 3)])],
    "log10": [("vec", ga.log10, [U((4,), 0.3, 3)])],
    "arcsin": [("vec", ga.arcsin, [U((4,), -0.8, 0.8)])],
    "arccos": [("vec", ga.arccos, [U((4,), -0.8, 0.8)])],
    "arctan": [("vec", ga.arctan, [U((4,))])],
    "arcsinh": [("vec", ga.arcsinh, [U((4,))])],
    "arccosh": [("vec", ga.arccosh, [U((4,), 1.3, 3)])],
    "arctanh": [("vec", ga.arctanh, [U((4,), -0.8, 0.8)])],
    "arctan2": [("mat,row", lambda a, b: ga.arctan2(a, b), [AWAY((2, 3)), AWAY((3,))])],
    "hypot": [("vec,scalar", lambda a, b: ga.hypot(a, b), [AWAY((3,)), AWAY(())])],
    "logaddexp": [("mat,row", lambda a, b: ga.logaddexp(a, b), [U((2, 3)), U((3,))])],
    "logaddexp2": [("vec,scalar", lambda a, b: ga.logaddexp2(a, b), [U((3,)), U(())])],
    "fmax": [("vec,scalar", lambda a, b: ga.fmax(a, b), [GRID((4,), 0), GRID((), 1)])],
    "fmin": [("mat,row", lambda a, b: ga.fmin(a, b), [GRID((2, 3), 0), GRID((3,), 1)])],
    "remainder": [("vec,scalar", lambda a, b: ga.remainder(a, b), [GRID((4,), 1), U((), 0.3, 0.4)])],
    "fmod": [("mat,row", lambda a, b: ga.fmod(a, b), [GRID((2, 3), 1), U((3,), 0.3, 0.4)])],
    "round": [("decimals=1", lambda x: ga.round(x, 1) * x, [GRID((4,), 1)])],
    "cumsum": [("axis1", lambda x: ga.cumsum(x, axis=1), [U((2, 3))]),
               ("raveled", lambda x: ga.cumsum(x), [U((2, 2))])],
    "take_along_axis": [("axis0", lambda x: ga.take_along_axis(
        x, np.array([[1, 0, 1], [0, 0, 1]]), axis=0), [U((2, 3))]),
        ("sort", lambda x: ga.sort(x, axis=-1), [GRID((2, 4), 0)])],
    "put_along_axis_add": [("repeats", lambda g: P(
        "put_along_axis_add", g, np.array([[1, 1, 0]]), params=(-1, (1, 2))), [U((1, 3))])],
    # solve's fused VJP (graphad/linalg/_factor.py): outputs (gA, gB); params (vec, None)
    "solve_vjp": [("vector", lambda A, X, G: (lambda ga, gb: ga * 2.0 + gb)(*P(
        "solve_vjp", A + 3.0 * np.eye(3), X, G, params=(True, None))),
        [U((3, 3)), U((3,)), U((3,))]),
        ("matrix A, batch X", lambda A, X, G: (lambda ga, gb: ga[..., :1] + gb)(*P(
            "solve_vjp", A + 3.0 * np.eye(2), X, G, params=(False, None))),
         [U((2, 2)), U((3, 2, 1)), U((3, 2, 1))])],
    # eigh's fused VJP (graphad/linalg/_spectral.py): w spread apart (the rules divide by gaps)
    "eigh_vjp": [("w, V, gV, gw", lambda w, V, gV, gw: P(
        "eigh_vjp", 0.2 * w + np.array([-2.0, 0.0, 2.0]), V, gV, gw, params=True),
        [U((3,)), U((3, 3)), U((3, 3)), U((3,))]),
        ("batch, no gw", lambda w, V, gV: P(
            "eigh_vjp", 0.2 * w + np.array([-2.0, 0.0, 2.0]), V, gV, params=False),
         [U((2, 3)), U((2, 3, 3)), U((2, 3, 3))])],
    "var": [("axis0,ddof1", lambda x: ga.var(x, axis=0, ddof=1), [U((3, 4))]),
            ("axes(0,2),keepdims", lambda x: ga.var(x, axis=(0, 2), keepdims=True),
             [U((2, 3, 2))]),
            ("all", lambda x: ga.var(x), [U((2, 3))])],
    "lincomb": [("rk4 update", lambda y, a, b: P("lincomb", y, a, b, params=(1.0, 0.25, -1.5)),
                 [U((2, 3)), U((2, 3)), U((2, 3))]),
                ("broadcast row", lambda y, a: P("lincomb", y, a, params=(2.0, 0.5)),
                 [U((2, 3)), U((3,))])],
    "tanh_grad": [("vec,vec", lambda g, y: P("tanh_grad", g, y),
                   [AWAY((3,)), U((3,), -0.9, 0.9)]),
                  ("block,vec", lambda g, y: P("tanh_grad", g, y), [AWAY((2, 3)), U((3,))])],
    "sigmoid_grad": [("vec,vec", lambda g, y: P("sigmoid_grad", g, y),
                      [AWAY((3,)), U((3,), 0.1, 0.9)]),
                     ("block,vec", lambda g, y: P("sigmoid_grad", g, y), [AWAY((2, 3)), U((3,))])],
    "relu_grad": [("vec,vec", lambda g, y: P("relu_grad", g, y), [U((4,)), AWAY((4,))]),
                  ("block,vec", lambda g, y: P("relu_grad", g, y), [U((2, 4)), AWAY((4,))])],
    "div0": [("vec,vec", lambda g, x: P("div0", g, x), [AWAY((3,)), U((3,), 0.5, 2)]),
             ("block,vec", lambda g, x: P("div0", g, x), [AWAY((2, 3)), U((3,), 0.5, 2)])],
    "dropout": [("rate=0.5, fixed rng", lambda x: P(
        "dropout", x, params=(0.5, np.random.default_rng(3)))[0], [U((2, 5))])],
}

CASE_LIST = [(name, label, f, specs) for name, cases in CASES.items()
             for (label, f, specs) in cases]
