"""Dual numbers (graphad/dual.py): arithmetic with numbers on either side, the math functions,
comparisons, the Babylonian square root through a Python loop, and nested derivatives without
perturbation confusion."""
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import graphad as ga
from graphad import dual as D


def babylonian(x, iterations=10):
    t = (1 + x) / 2
    for _ in range(iterations):
        t = (t + x / t) / 2
    return t


def test_babylonian_sqrt_derivative_to_machine_precision():
    t = babylonian(ga.Dual(2.0, 1.0))
    assert abs(t.value - math.sqrt(2)) <= 1e-15
    assert abs(t.tangent - 0.5 / math.sqrt(2)) <= 1e-15


@pytest.mark.parametrize("x", [0.5, 2.0, 9.0, 49.0])
def test_babylonian_matches_sqrt_derivative(x):
    t = babylonian(ga.Dual(x, 1.0), iterations=20)
    assert math.isclose(t.tangent, 0.5 / math.sqrt(x), rel_tol=1e-14)


def test_arithmetic_with_numbers_on_both_sides():
    x = ga.Dual(3.0, 1.0)
    cases = {
        "x + 2": (x + 2, 5.0, 1.0), "2 + x": (2 + x, 5.0, 1.0),
        "x - 2": (x - 2, 1.0, 1.0), "2 - x": (2 - x, -1.0, -1.0),
        "x * 2": (x * 2, 6.0, 2.0), "2 * x": (2 * x, 6.0, 2.0),
        "x / 2": (x / 2, 1.5, 0.5), "2 / x": (2 / x, 2 / 3, -2 / 9),
        "x ** 2": (x ** 2, 9.0, 6.0), "2 ** x": (2 ** x, 8.0, 8 * math.log(2)),
        "x ** x": (x ** x, 27.0, 27 * (math.log(3) + 1)),
        "-x": (-x, -3.0, -1.0), "+x": (+x, 3.0, 1.0), "abs(-x)": (abs(-x), 3.0, 1.0),
        "x * x / x": (x * x / x, 3.0, 1.0),
    }
    for name, (d, v, t) in cases.items():
        assert isinstance(d, ga.Dual), name
        assert math.isclose(d.value, v, rel_tol=1e-15), name
        assert math.isclose(d.tangent, t, rel_tol=1e-15, abs_tol=1e-15), name
    y = ga.Dual(2.0, 5.0)
    p = x * y
    assert (p.value, p.tangent) == (6.0, 1.0 * 2.0 + 3.0 * 5.0)


def test_comparisons_use_the_value():
    a, b = ga.Dual(1.0, 100.0), ga.Dual(2.0, -100.0)
    assert a < b and a <= b and b > a and b >= a and a != b
    assert a == ga.Dual(1.0, 7.0) and a == 1.0 and 0.5 < a and a < 1.5
    assert max(a, b) is b


MATH = {
    "sin": (D.sin, math.sin, math.cos),
    "cos": (D.cos, math.cos, lambda x: -math.sin(x)),
    "tan": (D.tan, math.tan, lambda x: 1 / math.cos(x) ** 2),
    "exp": (D.exp, math.exp, math.exp),
    "log": (D.log, math.log, lambda x: 1 / x),
    "sqrt": (D.sqrt, math.sqrt, lambda x: 0.5 / math.sqrt(x)),
    "tanh": (D.tanh, math.tanh, lambda x: 1 - math.tanh(x) ** 2),
}


@given(name=st.sampled_from(sorted(MATH)), x=st.floats(0.1, 1.4))
def test_math_functions_value_and_derivative(name, x):
    fn, f, df = MATH[name]
    d = fn(ga.Dual(x, 1.0))
    assert math.isclose(d.value, f(x), rel_tol=1e-14)
    assert math.isclose(d.tangent, df(x), rel_tol=1e-13)
    assert fn(x) == f(x)                # plain numbers pass straight through


@given(x=st.floats(0.2, 3.0), v=st.floats(-2, 2))
def test_dual_agrees_with_graphad_jvp(x, v):
    f_dual = lambda x: D.exp(D.sin(x) * x) / (1 + x * x) + D.sqrt(x) * D.tanh(x) - D.log(x)
    f_ga = lambda x: ga.exp(ga.sin(x) * x) / (1 + x * x) + ga.sqrt(x) * ga.tanh(x) - ga.log(x)
    d = f_dual(ga.Dual(x, v))
    _, t = ga.jvp(f_ga, (x,), (v,))
    assert math.isclose(d.tangent, float(t), rel_tol=1e-12, abs_tol=1e-14)


def test_nested_derivatives_keep_perturbations_apart():
    # d/dx [x * d/dy (x + y)] = d/dx [x * 1] = 1, the classic perturbation-confusion example
    assert D.derivative(lambda x: x * D.derivative(lambda y: x + y, 3.0), 2.0) == 1.0
    # with one shared epsilon the inner x would be perturbed too and the answer would be 2
    confused = (lambda x: x * (x + ga.Dual(3.0, 1.0)).tangent)(ga.Dual(2.0, 1.0))
    assert confused.tangent == 2.0


def test_nested_derivatives_second_derivative_and_mixed_partials():
    d2 = D.derivative(lambda x: D.derivative(D.sin, x), 0.3)
    assert math.isclose(d2, -math.sin(0.3), rel_tol=1e-15)
    # d/dx d/dy sin(x y) = cos(xy) - xy sin(xy)
    x0, y0 = 0.7, 1.5
    mixed = D.derivative(lambda x: D.derivative(lambda y: D.sin(x * y), y0), x0)
    assert math.isclose(mixed, math.cos(x0 * y0) - x0 * y0 * math.sin(x0 * y0), rel_tol=1e-14)
    # a derivative of a function that closes over an outer dual and returns it unchanged
    assert D.derivative(lambda x: D.derivative(lambda y: x * x, 1.0), 4.0) == 0.0


def test_repr_and_float():
    d = ga.Dual(1.5, 2.0)
    assert "1.5" in repr(d) and "2.0" in repr(d)
    assert float(d) == 1.5
    assert ga.dual.value(D.derivative(lambda x: x, 1.0)) == 1.0
