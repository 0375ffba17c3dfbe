"""The rest of NumPy's array API (graphad/_array_api.py and the new elementwise primitives of
graphad/_elementwise.pyx): values and dtypes against NumPy over hypothesis-drawn shapes (empty
and size-1 axes included), derivatives against central differences in both modes
(ga.check_grad) and at second order (ga.hessian against finite differences of the gradient),
HIPS autograd as the independent reference, NumPy dispatch (np.<name>(tensor) stays in the
graph), the conventions at kinks, float32 kept, complex and out= rejected, and ga.compile
replays of sort."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import graphad as ga
from prim_cases import fd_jacobian

RNG = np.random.default_rng(12)


def _vals(rng, shape, lo, hi, dtype=np.float64):
    return rng.uniform(lo, hi, size=shape).astype(dtype)


# ---------------------------------------------------------------------------------------------
# elementwise: name -> (domain lo, hi); each is ga.<name>, np.<name>, anp.<name>
UNARY = {
    "arcsin": (-0.9, 0.9), "arccos": (-0.9, 0.9), "arctan": (-3, 3), "arcsinh": (-3, 3),
    "arccosh": (1.2, 4), "arctanh": (-0.9, 0.9), "log2": (0.2, 4), "log10": (0.2, 4),
    "exp2": (-3, 3), "expm1": (-3, 3), "reciprocal": (0.5, 3), "sinc": (-2, 2),
}
BINARY = {   # name -> (a's domain, b's domain)
    "arctan2": ((-2, 2), (-2, 2)), "hypot": ((-2, 2), (-2, 2)),
    "logaddexp": ((-3, 3), (-3, 3)), "logaddexp2": ((-3, 3), (-3, 3)),
    "fmax": ((-2, 2), (-2, 2)), "fmin": ((-2, 2), (-2, 2)),
}
MODS = {"remainder": np.remainder, "fmod": np.fmod, "mod": np.mod}


@pytest.mark.parametrize("name", sorted(UNARY))
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
       seed=st.integers(0, 2**31), f32=st.booleans())
def test_unary_values_and_dtypes_match_numpy(name, shape, seed, f32):
    dt = np.float32 if f32 else np.float64
    x = _vals(np.random.default_rng(seed), shape, *UNARY[name], dtype=dt)
    y = getattr(ga, name)(ga.tensor(x, requires_grad=True))
    ref = getattr(np, name)(x)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    np.testing.assert_allclose(y.data, ref, rtol=1e-6 if f32 else 1e-14, atol=1e-7 if f32 else 0)
    if y.size:
        ga.sum(y).backward()
    assert y.size == 0 or y.dtype == dt


@pytest.mark.parametrize("name", sorted(BINARY) + sorted(MODS))
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                min_side=0, max_side=3),
       seed=st.integers(0, 2**31), f32=st.booleans())
def test_binary_values_match_numpy(name, shapes, seed, f32):
    dt = np.float32 if f32 else np.float64
    rng = np.random.default_rng(seed)
    (la, ha), (lb, hb) = BINARY.get(name, ((-3, 3), (0.3, 2)))
    a, b = (_vals(rng, shapes.input_shapes[0], la, ha, dt),
            _vals(rng, shapes.input_shapes[1], lb, hb, dt))
    ref = MODS[name](a, b) if name in MODS else getattr(np, name)(a, b)
    y = getattr(ga, name)(ga.tensor(a, requires_grad=True), ga.tensor(b, requires_grad=True))
    assert y.shape == ref.shape and y.dtype == ref.dtype
    np.testing.assert_allclose(y.data, ref, rtol=1e-6 if f32 else 1e-14, atol=1e-6 if f32 else 0)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_derivatives_both_modes_second_order_and_autograd(name):
    lo, hi = UNARY[name]
    x = _vals(RNG, (2, 3), lo, hi)
    f = getattr(ga, name)
    ga.check_grad(f, x)
    _check_second_order(lambda x: ga.sum(f(x) * f(x)), x)
    _check_autograd(f, getattr(anp, name), [x])


@pytest.mark.parametrize("name", sorted(BINARY) + sorted(MODS))
def test_binary_derivatives_both_modes_second_order_and_autograd(name):
    (la, ha), (lb, hb) = BINARY.get(name, ((-3, 3), (0.3, 2)))
    a, b = _vals(RNG, (2, 3), la, ha), _vals(RNG, (3,), lb, hb)
    if name in ("fmax", "fmin"):
        b = a[0] + np.array([0.5, -0.5, 0.7])        # no ties
    if name in MODS:                                  # away from the jumps of the quotient
        b = np.array([0.7, 1.3, 1.9])
        q = np.floor(a / b) + 0.5
        a = q * b
    f = getattr(ga, name)
    ga.check_grad(f, a, b)
    _check_second_order(lambda a: ga.sum(f(a, b) ** 2), a)
    _check_second_order(lambda b: ga.sum(f(a, b) ** 2), b)
    if name != "fmod":                   # autograd defines no rule for fmod
        _check_autograd(f, getattr(anp, name), [a, b])


# ---------------------------------------------------------------------------------------------
# the composed functions: label -> (f(module, x) written once for ga, np and anp, min_dims,
# value domain).  Shapes are drawn with min_dims, so each f takes any such shape.
def _split_join(m, x, fn, *args):
    return m.concatenate([p * (i + 1.0) for i, p in enumerate(fn(x, *args))], axis=0) \
        if fn is not None else x


COMPOSED = {
    "prod all": (lambda m, x: m.prod(x), 0, (-1.5, 1.5)),
    "prod axis0 keepdims": (lambda m, x: m.prod(x, axis=0, keepdims=True), 1, (-1.5, 1.5)),
    "prod axis(0,-1)": (lambda m, x: m.prod(x, axis=(0, -1)), 2, (-1.5, 1.5)),
    "var": (lambda m, x: m.var(x), 0, (-2, 2)),
    "var axis0 ddof1": (lambda m, x: m.var(x, axis=0, ddof=1), 1, (-2, 2)),
    "var axis-1 keepdims": (lambda m, x: m.var(x, axis=-1, keepdims=True), 1, (-2, 2)),
    "std axis0": (lambda m, x: m.std(x, axis=0), 1, (-2, 2)),
    "cumsum": (lambda m, x: m.cumsum(x), 0, (-2, 2)),
    "cumsum axis-1": (lambda m, x: m.cumsum(x, axis=-1), 1, (-2, 2)),
    "cumprod": (lambda m, x: m.cumprod(x), 0, (-1.5, 1.5)),
    "cumprod axis0": (lambda m, x: m.cumprod(x, axis=0), 1, (-1.5, 1.5)),
    "vstack": (lambda m, x: m.vstack([x, 2.0 * x]), 1, (-2, 2)),
    "hstack": (lambda m, x: m.hstack([x, 2.0 * x]), 1, (-2, 2)),
    "column_stack": (lambda m, x: m.column_stack([x, 2.0 * x]), 1, (-2, 2)),
    "dstack": (lambda m, x: m.dstack([x, 2.0 * x]), 1, (-2, 2)),
    "array_split 3": (lambda m, x: m.array_split(x, 3, axis=-1)[0] * 2.0, 1, (-2, 2)),
    "split at [1]": (lambda m, x: m.split(x, [1], axis=0)[-1] * 2.0, 1, (-2, 2)),
    "atleast_1d": (lambda m, x: m.atleast_1d(x) * 2.0, 0, (-2, 2)),
    "atleast_2d": (lambda m, x: m.atleast_2d(x) * 2.0, 0, (-2, 2)),
    "atleast_3d": (lambda m, x: m.atleast_3d(x) * 2.0, 0, (-2, 2)),
    "tile (2,1,3)": (lambda m, x: m.tile(x, (2, 1, 3)), 0, (-2, 2)),
    "tile 2": (lambda m, x: m.tile(x, 2), 0, (-2, 2)),
    "repeat 2": (lambda m, x: m.repeat(x, 2), 0, (-2, 2)),
    "repeat 3 axis-1": (lambda m, x: m.repeat(x, 3, axis=-1), 1, (-2, 2)),
    "roll 1": (lambda m, x: m.roll(x, 1), 0, (-2, 2)),
    "roll (2,-1) axes (0,-1)": (lambda m, x: m.roll(x, (2, -1), axis=(0, -1)), 1, (-2, 2)),
    "moveaxis 0->-1": (lambda m, x: m.moveaxis(x, 0, -1), 1, (-2, 2)),
    "flip": (lambda m, x: m.flip(x), 0, (-2, 2)),
    "flip axis0": (lambda m, x: m.flip(x, 0), 1, (-2, 2)),
    "fliplr": (lambda m, x: m.fliplr(x), 2, (-2, 2)),
    "flipud": (lambda m, x: m.flipud(x), 1, (-2, 2)),
    "rot90": (lambda m, x: m.rot90(x), 2, (-2, 2)),
    "rot90 k=3 axes(1,0)": (lambda m, x: m.rot90(x, 3, axes=(1, 0)), 2, (-2, 2)),
    "rot90 k=2": (lambda m, x: m.rot90(x, 2), 2, (-2, 2)),
    "pad 1": (lambda m, x: m.pad(x, 1), 0, (-2, 2)),
    "pad constant 2.5": (lambda m, x: m.pad(x, (1, 2), constant_values=2.5), 1, (-2, 2)),
    "pad edge": (lambda m, x: m.pad(x, 2, mode="edge"), 1, (-2, 2)),
    "diagonal offset": (lambda m, x: m.diagonal(x, 1, -1, 0), 2, (-2, 2)),
    "trace offset -1 axes(1,0)": (lambda m, x: m.trace(x, -1, 1, 0), 2, (-2, 2)),
    "tril k=-1": (lambda m, x: m.tril(x, -1), 2, (-2, 2)),
    "triu k=1": (lambda m, x: m.triu(x, 1), 2, (-2, 2)),
    "tensordot 1": (lambda m, x: m.tensordot(x, m.moveaxis(x, -1, 0), 1), 1, (-2, 2)),
    "tensordot 0": (lambda m, x: m.tensordot(x, x, 0), 0, (-2, 2)),
    "tensordot axes0": (lambda m, x: m.tensordot(x, x + 1.0, ([0], [0])), 1, (-2, 2)),
    "inner": (lambda m, x: m.inner(x, x - 0.5), 0, (-2, 2)),
    "diff": (lambda m, x: m.diff(x), 1, (-2, 2)),
    "diff n=2 axis0": (lambda m, x: m.diff(x, 2, axis=0), 1, (-2, 2)),
    "diff prepend append": (lambda m, x: m.diff(x, prepend=0.5, append=x[..., :1]), 1, (-2, 2)),
    "sort": (lambda m, x: m.sort(x), 1, (-2, 2)),
    "sort axis0": (lambda m, x: m.sort(x, axis=0), 1, (-2, 2)),
    "sort None": (lambda m, x: m.sort(x, axis=None), 0, (-2, 2)),
    "sort raveled": (lambda m, x: m.sort(m.reshape(x, (-1,))), 0, (-2, 2)),
    "append": (lambda m, x: m.append(x, 2.0 * x), 0, (-2, 2)),
    "append axis-1": (lambda m, x: m.append(x, x[..., :1], axis=-1), 1, (-2, 2)),
}
# (pad with edge, and sort, need a non-empty axis: NumPy raises on an empty one for edge)
NONEMPTY = {"pad edge", "rot90", "array_split 3"}
# autograd lacks these derivatives or these forms of them (trace's offset and axes, sort and
# diff along axis 0 of a matrix), or gets them wrong (repeat along axis=-1 and dstack of a
# vector return a cotangent of the wrong values or shape; graphad's agree with finite
# differences above)
NO_AUTOGRAD = {"pad constant 2.5", "pad edge", "pad 1", "rot90 k=3 axes(1,0)", "tile 2",
               "sort None", "diff prepend append", "roll (2,-1) axes (0,-1)",
               "trace offset -1 axes(1,0)", "sort", "sort axis0", "diff n=2 axis0", "repeat 3 axis-1",
               "dstack", "cumprod", "cumprod axis0", "flip", "flip axis0"}


def _run(fn):
    try:
        return fn(), None
    except Exception as e:         # noqa: BLE001  (compared with graphad's error below)
        return None, e


@pytest.mark.parametrize("label", sorted(COMPOSED))
@given(data=st.data(), f32=st.booleans())
def test_composed_values_and_dtypes_match_numpy(label, data, f32):
    f, min_dims, (lo, hi) = COMPOSED[label]
    shape = data.draw(hnp.array_shapes(min_dims=max(min_dims, 0), max_dims=3,
                                       min_side=1 if label in NONEMPTY else 0, max_side=4))
    dt = np.float32 if f32 else np.float64
    x = _vals(np.random.default_rng(len(shape)), shape, lo, hi, dt)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref, err = _run(lambda: f(np, x))
            if err is not None:
                with pytest.raises(type(err)):
                    f(ga, ga.tensor(x, requires_grad=True))
                return
            y = f(ga, ga.tensor(x, requires_grad=True))
    ref = np.asarray(ref)
    assert y.shape == ref.shape, (y.shape, ref.shape)
    assert y.dtype == ref.dtype, (y.dtype, ref.dtype)
    np.testing.assert_allclose(y.data, ref, rtol=2e-5 if f32 else 1e-12,
                               atol=1e-5 if f32 else 1e-13)
    # and through NumPy's own function: np.<name>(tensor) stays in the graph
    t = ga.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = f(np, t)
    assert isinstance(z, ga.Tensor)
    np.testing.assert_allclose(z.data, ref, rtol=2e-5 if f32 else 1e-12,
                               atol=1e-5 if f32 else 1e-13)


DERIV_SHAPES = [(3,), (2, 3), (2, 1, 3)]     # (size-1 and empty axes: the value tests)


def _derivative_inputs(label):
    f, min_dims, (lo, hi) = COMPOSED[label]
    for shape in DERIV_SHAPES:
        if len(shape) >= min_dims:
            yield f, _vals(np.random.default_rng(len(label)), shape, lo, hi)


@pytest.mark.parametrize("label", sorted(COMPOSED))
def test_composed_derivatives_both_modes_and_second_order(label):
    for f, x in _derivative_inputs(label):
        g = lambda x: f(ga, x)   # noqa: E731
        ga.check_grad(g, x)
        w = np.random.default_rng(3).standard_normal(np.shape(f(np, x)))
        _check_second_order(lambda x: ga.sum(g(x) * g(x) * w), x)


@pytest.mark.parametrize("label", sorted(set(COMPOSED) - NO_AUTOGRAD))
def test_composed_against_autograd(label):
    for f, x in _derivative_inputs(label):
        _check_autograd(lambda x: f(ga, x), lambda x: f(anp, x), [x])


def _check_second_order(f, x):
    """ga.hessian of a scalar f against central differences of ga.grad, and hvp against it."""
    H = np.asarray(ga.hessian(f)(x)).reshape(x.size, x.size)
    Hfd = fd_jacobian(lambda x: ga.grad(f)(x), [x], 0).reshape(x.size, x.size)
    np.testing.assert_allclose(H, Hfd, rtol=1e-5, atol=1e-6)
    v = np.random.default_rng(1).standard_normal(x.shape)
    Hv = np.asarray(ga.hvp(f, (x,), (v,))[1]).reshape(-1)
    np.testing.assert_allclose(Hv, H @ v.reshape(-1), rtol=1e-9, atol=1e-10)


def _check_autograd(f, af, args):
    """Values, the VJP of a random cotangent and the JVP of a random tangent in every argument
    agree with HIPS autograd's (where autograd defines the rule; it has no JVP for a few)."""
    y = f(*args)
    ya = af(*args)
    np.testing.assert_allclose(np.asarray(y.data if isinstance(y, ga.Tensor) else y), ya,
                               rtol=1e-12, atol=1e-13)
    rng = np.random.default_rng(5)
    u = rng.standard_normal(np.shape(ya))
    compared = 0
    for i in range(len(args)):
        def fi(xi, i=i):
            a = list(args)
            a[i] = xi
            return a
        ga_ct = ga.vjp(lambda xi: f(*fi(xi)), args[i])[1](u)[0]
        try:
            ag_ct = autograd.make_vjp(lambda xi: af(*fi(xi)))(args[i])[0](u)
        except NotImplementedError:
            ag_ct = None
        if ag_ct is not None:
            np.testing.assert_allclose(ga_ct, ag_ct, rtol=1e-11, atol=1e-12)
            compared += 1
        v = rng.standard_normal(np.shape(args[i]))
        ga_t = ga.jvp(lambda xi: f(*fi(xi)), (args[i],), (v,))[1]
        try:
            ag_t = autograd.make_jvp(lambda xi: af(*fi(xi)))(args[i])(v)[1]
        except NotImplementedError:
            continue
        np.testing.assert_allclose(ga_t, ag_t, rtol=1e-11, atol=1e-12)
        compared += 1
    assert compared, "autograd has no rule to compare with: list the case in NO_AUTOGRAD"


# ---------------------------------------------------------------------------------------------
# conventions at kinks, documented in the docstrings

def test_rounding_and_sign_have_zero_derivative():
    x = np.array([-1.5, -0.5, 0.0, 0.5, 1.49, 2.5])
    for f in (ga.floor, ga.ceil, ga.round, ga.around, ga.rint, ga.trunc, ga.fix, ga.sign,
              lambda x: ga.round(x, 1)):
        t = ga.tensor(x, requires_grad=True)
        ga.sum(f(t) * 3.0).backward()
        np.testing.assert_array_equal(t.grad, np.zeros(6))
        np.testing.assert_array_equal(ga.jvp(f, (x,), (np.ones(6),))[1], np.zeros(6))
    np.testing.assert_array_equal(ga.round(x).data, np.round(x))
    np.testing.assert_array_equal(ga.round(x * 1.234, 2).data, np.round(x * 1.234, 2))
    np.testing.assert_array_equal(ga.fix(x).data, np.fix(x))


def test_abs_at_zero_and_maximum_at_ties_follow_the_documented_convention():
    # abs: sign(x), so 0 at 0; maximum/minimum/fmax/fmin: ties share the derivative equally
    assert ga.grad(lambda x: ga.abs(x))(0.0) == 0.0
    g = ga.grad(lambda a, b: ga.maximum(a, b), argnums=(0, 1))(1.0, 1.0)
    assert g == (0.5, 0.5)
    for f in (ga.fmax, ga.fmin):
        g = ga.grad(lambda a, b: f(a, b), argnums=(0, 1))(1.0, 1.0)
        assert g == (0.5, 0.5)
        # a NaN operand is ignored: the other one gets the whole derivative
        g = ga.grad(lambda a, b: f(a, b), argnums=(0, 1))(np.nan, 2.0)
        assert g == (0.0, 1.0)
    assert "half" in ga.maximum.__doc__ and "0 at 0" in ga.abs.__doc__


def test_hypot_and_arctan2_derivative_is_zero_at_the_origin():
    for f in (ga.hypot, ga.arctan2):
        g = ga.grad(lambda a, b: f(a, b), argnums=(0, 1))(0.0, 0.0)
        assert g == (0.0, 0.0)
    # hypot(a, 0) = |a|, derivative sign(a)
    assert ga.grad(lambda a: ga.hypot(a, 0.0))(-2.0) == -1.0


def test_sinc_derivatives_at_and_near_zero():
    d1 = ga.grad(ga.sinc)
    d2 = ga.grad(ga.grad(ga.sinc))
    assert d1(0.0) == 0.0
    np.testing.assert_allclose(d2(0.0), -np.pi ** 2 / 3, rtol=1e-14)
    for x in (1e-3, 0.0099, 0.0101, 0.5):
        h = 1e-6
        np.testing.assert_allclose(d1(x), (np.sinc(x + h) - np.sinc(x - h)) / (2 * h),
                                   rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(d2(x), (d1(x + h) - d1(x - h)) / (2 * h), rtol=1e-5)


def test_sort_routes_the_derivative_to_the_sorted_entry():
    x = np.array([3.0, -1.0, 2.0, 0.5])
    w = np.array([1.0, 10.0, 100.0, 1000.0])
    g = ga.grad(lambda x: ga.sum(ga.sort(x) * w))(x)
    np.testing.assert_array_equal(g, w[np.argsort(np.argsort(x))])


def test_prod_and_cumprod_derivatives_are_exact_at_zeros():
    x = np.array([2.0, 0.0, 3.0, 0.0, 5.0])
    np.testing.assert_array_equal(ga.grad(ga.prod)(x), np.zeros(5))
    y = np.array([2.0, 0.0, 3.0, 4.0])
    np.testing.assert_array_equal(ga.grad(ga.prod)(y), [0.0, 24.0, 0.0, 0.0])
    J = ga.jacrev(ga.cumprod)(y)
    np.testing.assert_allclose(J, fd_jacobian(ga.cumprod, [y], 0), atol=1e-9)
    H = ga.hessian(ga.prod)(y)
    np.testing.assert_allclose(H, fd_jacobian(ga.grad(ga.prod), [y], 0), atol=1e-7)


def test_var_with_too_few_degrees_of_freedom_warns_like_numpy():
    x = np.array([1.0, 2.0])
    with pytest.warns(RuntimeWarning):
        y = ga.var(x, ddof=2)
    with pytest.warns(RuntimeWarning):
        assert np.isinf(np.var(x, ddof=2)) and np.isinf(y)
    np.testing.assert_allclose(ga.var(x, correction=1), np.var(x, correction=1))
    m = np.mean(x, keepdims=True)
    np.testing.assert_allclose(ga.var(x, mean=m), np.var(x, mean=m))


# ---------------------------------------------------------------------------------------------
# NumPy dispatch, dtypes, errors, compile

@pytest.mark.parametrize("name", sorted(UNARY) + ["round", "around", "fix"])
def test_numpy_unary_dispatch_stays_in_the_graph(name):
    lo, hi = UNARY.get(name, (-2, 2))
    x = _vals(RNG, (3,), lo, hi)
    t = ga.tensor(x, requires_grad=True)
    y = getattr(np, name)(t)
    assert isinstance(y, ga.Tensor)
    ga.sum(y * y).backward()
    ref = ga.grad(lambda x: ga.sum(getattr(ga, name)(x) ** 2))(x)
    np.testing.assert_allclose(t.grad, ref, rtol=1e-14)


@pytest.mark.parametrize("name", sorted(BINARY) + sorted(MODS))
def test_numpy_binary_dispatch_stays_in_the_graph(name):
    a, b = _vals(RNG, (3,), -2, 2), _vals(RNG, (3,), 0.5, 2)
    t = ga.tensor(a, requires_grad=True)
    y = getattr(np, name)(t, b)
    assert isinstance(y, ga.Tensor)
    y2 = getattr(np, name)(b, t)              # the reflected form: __array_ufunc__ of t
    assert isinstance(y2, ga.Tensor)
    ga.sum(2.0 * y + y2).backward()
    assert np.all(np.isfinite(t.grad)) and np.any(t.grad != 0)


def test_tensor_mod_operator():
    a = ga.tensor(np.array([-2.5, 1.2, 3.7]), requires_grad=True)
    np.testing.assert_allclose((a % 1.5).data, np.array([-2.5, 1.2, 3.7]) % 1.5)
    np.testing.assert_allclose((4.0 % ga.tensor([1.5, 2.5])).data, 4.0 % np.array([1.5, 2.5]))
    ga.sum(a % 1.5).backward()
    np.testing.assert_array_equal(a.grad, np.ones(3))


@pytest.mark.parametrize("f", [ga.var, ga.std, ga.prod, ga.cumsum, ga.cumprod, ga.arcsin,
                               lambda x, out: ga.hypot(x, x, out=out)],
                         ids=["var", "std", "prod", "cumsum", "cumprod", "arcsin", "hypot"])
def test_out_none_is_accepted_and_anything_else_raises(f):
    x = np.array([0.1, 0.2, 0.3])
    f(x, out=None)
    with pytest.raises(TypeError, match="out="):
        f(x, out=np.empty(3))


@pytest.mark.parametrize("f", [ga.var, ga.prod, ga.cumsum, ga.sort, ga.sinc,
                               lambda x: ga.tensordot(x, x, 1), lambda x: ga.pad(x, 1)])
def test_complex_input_raises_type_error(f):
    with pytest.raises(TypeError):
        f(np.array([1.0 + 1.0j, 2.0]))


def test_float32_derivatives_stay_float32():
    x = np.array([[0.3, -0.4, 0.2], [0.1, 0.25, -0.35]], np.float32)
    for f in (ga.arcsin, ga.expm1, lambda x: ga.var(x, axis=0), lambda x: ga.cumsum(x, 1),
              ga.prod, lambda x: ga.sort(x), lambda x: ga.tensordot(x, x.T, 1),
              lambda x: ga.hypot(x, 1.0), lambda x: ga.logaddexp(x, x[0])):
        g = ga.grad(lambda x: ga.sum(f(x)))(x)
        assert g.dtype == np.float32
        g64 = ga.grad(lambda x: ga.sum(f(x)))(x.astype(np.float64))
        np.testing.assert_allclose(g, g64, rtol=1e-4, atol=1e-5)


def test_shape_errors_match_numpy():
    x = np.ones((4, 3))
    with pytest.raises(ValueError):
        ga.split(x, 3)
    with pytest.raises(ValueError):
        ga.tensordot(x, x, 1)
    with pytest.raises(ValueError):
        ga.cross(x[:, :1], x)
    with pytest.raises(ValueError):
        ga.pad(x, 1, mode="median")
    with pytest.raises(ValueError):
        ga.diff(x, -1)
    with pytest.raises(np.exceptions.AxisError):
        ga.cumsum(x, axis=2)


def test_compiled_sort_and_cumsum_replay_on_new_values():
    f = ga.compile(lambda x: ga.sum(ga.sort(x, axis=-1) * np.arange(4.0)) +
                   ga.sum(ga.cumsum(x, axis=0) ** 2))
    g = ga.compile(ga.grad(lambda x: ga.sum(ga.sort(x) * np.arange(4.0))))
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((2, 4))
        ref = float(np.sum(np.sort(x, -1) * np.arange(4.0)) + np.sum(np.cumsum(x, 0) ** 2))
        np.testing.assert_allclose(float(f(x)), ref, rtol=1e-12)
        np.testing.assert_allclose(g(x), ga.grad(lambda x: ga.sum(ga.sort(x) *
                                                                  np.arange(4.0)))(x))


def test_trace_offset_axes_and_diag_k():
    A = RNG.standard_normal((3, 4, 2))
    for off, a1, a2 in ((0, 0, 1), (1, 0, 1), (-1, 1, 0), (1, 2, 0), (0, -1, -2)):
        np.testing.assert_allclose(ga.trace(A, off, a1, a2).data, np.trace(A, off, a1, a2))
        ga.check_grad(lambda A: ga.trace(A, off, a1, a2), A)
    v = RNG.standard_normal(3)
    M = RNG.standard_normal((3, 4))
    for k in (-2, -1, 0, 1, 3):
        np.testing.assert_allclose(ga.diag(v, k).data, np.diag(v, k))
        np.testing.assert_allclose(ga.diag(M, k).data, np.diag(M, k))
        ga.check_grad(lambda v: ga.diag(v, k), v)
        ga.check_grad(lambda M: ga.diag(M, k), M)


def test_tensor_methods_match_numpy_and_differentiate():
    """x.var(), x.std(), x.prod(), x.cumsum(), x.cumprod(), x.repeat(), x.round() on a Tensor, as
    on an ndarray (ported NumPy code calls the methods)."""
    a = np.random.default_rng(3).uniform(0.5, 2.0, (3, 4))
    t = ga.tensor(a)
    for name, kw in (("var", {"axis": 1, "ddof": 1}), ("std", {"axis": 0}), ("prod", {}),
                     ("cumsum", {"axis": 1}), ("cumprod", {"axis": 0}),
                     ("repeat", {"repeats": 2, "axis": 1}), ("round", {"decimals": 1})):
        np.testing.assert_allclose(getattr(t, name)(**kw).numpy(), getattr(a, name)(**kw),
                                   rtol=1e-12, err_msg=name)
    g = ga.grad(lambda x: x.var(axis=1).sum() + x.cumsum(axis=0).prod())(a)
    g_ag = autograd.grad(lambda x: anp.sum(anp.var(x, axis=1)) +
                         anp.prod(anp.cumsum(x, axis=0)))(a)
    np.testing.assert_allclose(g, g_ag, rtol=1e-10)
