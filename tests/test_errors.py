"""SPEC's "Errors": bad input gets a clear error naming the op and the shapes, never a wrong
number; anomaly mode (ga.set_debug) names the first primitive that produced NaN/Inf."""
import re

import numpy as np
import pytest

import graphad as ga


def _shapes_named(msg, *shapes):
    for s in shapes:
        assert str(tuple(s)) in msg, f"{s} not named in: {msg}"


# ---------------------------------------------------------------------------------------------
# shape mismatches: ValueError naming the op and both shapes

@pytest.mark.parametrize("name,op", [
    ("add", lambda a, b: a + b), ("add", ga.add), ("subtract", lambda a, b: a - b),
    ("multiply", lambda a, b: a * b), ("divide", lambda a, b: a / b),
    ("power", lambda a, b: a ** b), ("maximum", ga.maximum), ("minimum", ga.minimum)])
def test_elementwise_shape_mismatch(name, op):
    a = ga.tensor(np.ones((2, 3)), requires_grad=True)
    for b in (np.ones((4,)), ga.tensor(np.ones((3, 2)))):
        with pytest.raises(ValueError) as e:
            op(a, b)
        msg = str(e.value)
        assert name in msg
        _shapes_named(msg, (2, 3), np.shape(b))
    with pytest.raises(ValueError, match=name):
        op(np.ones((4,)), a)


@pytest.mark.parametrize("sa,sb", [((2, 3), (2, 3)), ((3,), (4,)), ((2, 2, 3), (3, 3, 2)),
                                   ((5,), (3, 2)), ((2, 4), (3,))])
def test_matmul_shape_mismatch(sa, sb):
    a = ga.tensor(np.ones(sa), requires_grad=True)
    for call in (lambda: a @ np.ones(sb), lambda: ga.matmul(a, np.ones(sb)),
                 lambda: np.ones(sa) @ ga.tensor(np.ones(sb))):
        with pytest.raises(ValueError) as e:
            call()
        msg = str(e.value)
        assert "matmul" in msg
        _shapes_named(msg, sa, sb)


def test_matmul_of_a_scalar_raises():
    with pytest.raises(ValueError, match="matmul"):
        ga.matmul(ga.tensor(2.0), np.ones(3))


def test_concatenate_shape_mismatch():
    a = ga.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError) as e:
        ga.concatenate([a, np.ones((2, 4))], axis=0)
    assert "concatenate" in str(e.value)
    _shapes_named(str(e.value), (2, 3), (2, 4))
    with pytest.raises(ValueError) as e:
        ga.concatenate([a, np.ones(3)])
    assert "concatenate" in str(e.value)
    _shapes_named(str(e.value), (2, 3), (3,))
    with pytest.raises(ValueError, match="stack"):
        ga.stack([a, np.ones((3, 2))])


def test_reshape_size_mismatch():
    a = ga.tensor(np.ones((2, 3)), requires_grad=True)
    for new in ((4, 2), (5, -1), (7,)):
        with pytest.raises(ValueError) as e:
            ga.reshape(a, new)
        msg = str(e.value)
        assert "reshape" in msg
        _shapes_named(msg, (2, 3), new)
    with pytest.raises(ValueError, match="reshape"):
        a.reshape(4, 2)


def test_where_shape_mismatch():
    a = ga.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError) as e:
        ga.where(np.ones(4, bool), a, 0.0)
    assert "where" in str(e.value)
    _shapes_named(str(e.value), (4,), (2, 3))
    with pytest.raises(ValueError) as e:
        ga.where(np.ones((2, 3), bool), a, np.ones((3, 2)))
    assert "where" in str(e.value)
    _shapes_named(str(e.value), (2, 3), (3, 2))


def test_einsum_shape_mismatch():
    a = ga.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError) as e:
        ga.einsum("ij,jk->ik", a, np.ones((4, 2)))
    assert "einsum" in str(e.value)
    _shapes_named(str(e.value), (2, 3), (4, 2))
    with pytest.raises(ValueError) as e:
        ga.einsum("ijk,jk->ik", a, np.ones((3, 2)))
    assert "einsum" in str(e.value) and "(2, 3)" in str(e.value)
    with pytest.raises(ValueError, match="einsum"):
        ga.einsum("ij,jk->ik", a)


def test_other_bad_shapes():
    with pytest.raises(ValueError, match=r"trace.*\(3,\)"):
        ga.trace(np.ones(3))
    with pytest.raises(ValueError, match=r"diag.*\(2, 2, 2\)"):
        ga.diag(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"transpose.*\(2, 3\)"):
        ga.transpose(np.ones((2, 3)), (0, 0))
    with pytest.raises(ValueError, match=r"broadcast_to.*\(2, 3\)"):
        ga.broadcast_to(np.ones((2, 3)), (4, 3))
    with pytest.raises(ValueError, match="max"):
        ga.max(np.ones((0,)))


def test_shape_errors_leave_no_half_built_graph():
    a = ga.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError):
        a + np.ones(4)
    ga.sum(a * 2.0).backward()
    np.testing.assert_array_equal(a.grad, [2.0, 2.0, 2.0])


# ---------------------------------------------------------------------------------------------
# dtypes: only floating-point values have derivatives

@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_])
def test_tensor_of_integers_with_requires_grad(dtype):
    with pytest.raises(TypeError, match="float"):
        ga.tensor(np.arange(3).astype(dtype), requires_grad=True)
    t = ga.tensor(np.arange(3).astype(dtype))        # fine without requires_grad
    with pytest.raises(TypeError, match="float"):
        t.requires_grad = True


def test_python_integers_with_requires_grad():
    with pytest.raises(TypeError):
        ga.tensor([1, 2, 3], requires_grad=True)
    assert ga.tensor([1, 2, 3], requires_grad=True, dtype=np.float64).dtype == np.float64


def test_grad_with_respect_to_an_integer_input():
    f = lambda a, b: ga.sum(a * b)
    with pytest.raises(TypeError, match="float"):
        ga.grad(f)(np.arange(3), np.ones(3))
    with pytest.raises(TypeError, match="float"):
        ga.grad(f, argnums=1)(np.ones(3), np.arange(3))
    with pytest.raises(TypeError):
        ga.grad(lambda a: a * 1.0)(3)
    with pytest.raises(TypeError):
        ga.value_and_grad(f, argnums=(0, 1))(np.ones(3), np.arange(3))
    with pytest.raises(TypeError):
        ga.vjp(lambda a: a * 1.0, np.arange(3))
    # an integer argument that is not differentiated is fine
    np.testing.assert_array_equal(ga.grad(f)(np.ones(3), np.arange(3)), [0.0, 1.0, 2.0])


# ---------------------------------------------------------------------------------------------
# backward misuse: RuntimeError with the remedy

def test_backward_on_a_non_scalar_without_a_seed():
    x = ga.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match="seed") as e:
        (x * 2.0).backward()
    assert "(2, 3)" in str(e.value)
    (x * 2.0).backward(np.ones((2, 3)))           # the remedy works
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 2.0))


def test_backward_with_a_seed_of_the_wrong_shape():
    x = ga.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError) as e:
        (x * 2.0).backward(np.ones(3))
    _shapes_named(str(e.value), (3,), (2, 3))


def test_second_backward_through_a_freed_graph():
    x = ga.tensor(np.ones(3), requires_grad=True)
    y = ga.sum(ga.exp(x))
    y.backward()
    with pytest.raises(RuntimeError) as e:
        y.backward()
    assert "retain_graph" in str(e.value)
    assert "backward" in str(e.value)


def test_backward_on_a_tensor_without_a_graph():
    with pytest.raises(RuntimeError, match="require"):
        ga.tensor(1.0).backward()


def test_grad_of_a_non_scalar_function():
    with pytest.raises(TypeError, match=r"scalar.*\(3,\)"):
        ga.grad(lambda a: a * 2.0)(np.ones(3))


def test_vjp_cotangent_of_the_wrong_shape():
    _, pull = ga.vjp(lambda a: a * 2.0, np.ones(3))
    with pytest.raises(ValueError) as e:
        pull(np.ones(2))
    _shapes_named(str(e.value), (2,), (3,))


def test_argnums_out_of_range():
    with pytest.raises(ValueError, match="argnums"):
        ga.grad(lambda a: ga.sum(a), argnums=1)(np.ones(3))


# ---------------------------------------------------------------------------------------------
# anomaly mode

def test_debug_names_the_primitive_and_its_input_shapes(debug_mode):
    x = ga.tensor(np.array([[-1.0, 2.0, 3.0]]), requires_grad=True)
    y = x * 2.0                                   # fine
    with pytest.raises(FloatingPointError) as e:
        ga.log(y)
    msg = str(e.value)
    assert re.search(r"\blog\b", msg) and "(1, 3)" in msg


def test_debug_names_the_first_primitive_not_a_later_one(debug_mode):
    x = ga.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with pytest.raises(FloatingPointError) as e:
        ga.sum(ga.exp(ga.log(x) * 2.0))
    msg = str(e.value)
    assert msg.startswith("log") and "(2,)" in msg


@pytest.mark.parametrize("make,name,shapes", [
    (lambda: ga.tensor(np.ones(2)) / 0.0, "divide", [(2,), ()]),
    (lambda: ga.exp(np.full((2, 2), 1000.0)), "exp", [(2, 2)]),
    (lambda: ga.sqrt(np.array([-1.0])), "sqrt", [(1,)]),
    (lambda: ga.tensor(np.ones((3, 1))) * np.array([np.inf]), "multiply", [(3, 1), (1,)]),
])
def test_debug_on_several_primitives(debug_mode, make, name, shapes):
    with pytest.raises(FloatingPointError) as e:
        make()
    assert str(e.value).startswith(name)
    _shapes_named(str(e.value), *shapes)


def test_debug_catches_a_non_finite_cotangent(debug_mode):
    # sqrt(0) is fine, its derivative 1/(2 sqrt 0) is not
    with pytest.raises(FloatingPointError) as e:
        ga.grad(lambda a: ga.sum(ga.sqrt(a)))(np.array([0.0, 4.0]))
    msg = str(e.value)
    assert "sqrt" in msg and "backward" in msg and "(2,)" in msg


def test_debug_does_not_flag_the_where_trap(debug_mode):
    # the rule's own 1/sqrt(0) meets an exact zero cotangent: the gradient is finite
    g = ga.grad(lambda a: ga.sum(ga.where(a > 0, ga.sqrt(a), 0.0)))(np.array([0.0, 4.0]))
    np.testing.assert_array_equal(g, [0.0, 0.25])


def test_without_debug_non_finite_values_pass_silently():
    assert not ga.is_debug()
    with np.errstate(all="ignore"):
        y = ga.log(ga.tensor(np.array([-1.0, 0.0, 1.0])))
    v = y.numpy()
    assert np.isnan(v[0]) and v[1] == -np.inf and v[2] == 0.0


def test_set_debug_toggles():
    try:
        ga.set_debug(True)
        assert ga.is_debug()
    finally:
        ga.set_debug(False)
    assert not ga.is_debug()
    ga.exp(np.full(2, 1000.0))    # no error once off
