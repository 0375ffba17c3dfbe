# cython: language_level=3, binding=True
"""Elementwise primitives: arithmetic with NumPy broadcasting, the unary functions, rounding,
where, clip, identity and astype; their rules, the public functions and the rule helpers
(conventions: graphad/_prims.pyx).  The table entries for the unary and binary functions also
make the public function of the same name (`ga.exp`, `ga.add`, ...)."""
import functools

import numpy as np
cimport numpy as cnp
from graphad cimport _kernels as K
from graphad._core cimport Prim, Tensor, apply, call, arg, out, need, recording
from graphad._prims cimport raw, shape_of, stacked
from graphad._prims import defprim
from graphad._core import traced

cnp.import_array()

__all__ = []


cdef object _no_out(str name, object out):
    if out is not None:
        raise TypeError(f"{name}: out= is not supported (graphad never writes into arrays it "
                        f"is given); use the returned Tensor")


def _export(Prim p, int arity, str doc):
    """Make the public function for primitive p: ga.<p.name>(x) or ga.<p.name>(a, b); out=None
    is accepted, as NumPy's ufuncs take it."""
    if arity == 1:
        def f(x, out=None):
            if out is not None:
                _no_out(p.name, out)
            return apply(p, (x,))
    else:
        def f(a, b, out=None):
            if out is not None:
                _no_out(p.name, out)
            return apply(p, (a, b))
    f.__name__ = f.__qualname__ = p.name
    f.__doc__ = doc if doc.endswith(".") else f"{doc}, elementwise."
    globals()[p.name] = f
    __all__.append(p.name)


# ==============================================================================================
# Elementwise binary: out = a (op) b with NumPy broadcasting.

def _binary(str name, int code, vjp, jvp, str doc=None):
    """A broadcasting binary primitive run by the C kernel `code` (the engine calls it directly
    and names the op in a shape error); with doc, also the public function of the same name."""
    p = defprim(name, lambda params, a, b: K.binary(code, a, b), vjp, jvp, kernel=2, code=code,
                broadcasts=True)
    if doc is not None:
        _export(p, 2, doc)
    return p


cpdef object tsum(object a, object b):
    """Sum of two tangents where None is zero."""
    if a is None:
        return b
    if b is None:
        return a
    return add_(a, b)


# d(a + b) = da + db
def add_vjp(n, g):
    return (g, g)

def add_jvp(n, t):
    return tsum(t[0], t[1])

P_ADD = _binary("add", K.GA_ADD, add_vjp, add_jvp, "a + b, elementwise with broadcasting.")


# d(a - b) = da - db
def sub_vjp(n, g):
    return (g, neg_(g) if need(n, 1) else None)

def sub_jvp(n, t):
    if t[1] is None:
        return t[0]
    return neg_(t[1]) if t[0] is None else sub_(t[0], t[1])

P_SUB = _binary("subtract", K.GA_SUB, sub_vjp, sub_jvp, "a - b, elementwise with broadcasting.")


# d(a b) = da b + a db
def mul_vjp(n, g):
    return (gmul_(g, arg(n, 1)) if need(n, 0) else None,
            gmul_(g, arg(n, 0)) if need(n, 1) else None)

def mul_jvp(n, t):
    return tsum(None if t[0] is None else gmul_(t[0], arg(n, 1)),
                 None if t[1] is None else gmul_(t[1], arg(n, 0)))

P_MUL = _binary("multiply", K.GA_MUL, mul_vjp, mul_jvp, "a * b, elementwise with broadcasting.")


# d(a / b) = da / b - (a / b) db / b
def div_vjp(n, g):
    rb = reciprocal_(arg(n, 1))
    return (gmul_(g, rb) if need(n, 0) else None,
            neg_(gmul_(g, mul_(out(n), rb))) if need(n, 1) else None)

def div_jvp(n, t):
    rb = reciprocal_(arg(n, 1))
    return tsum(None if t[0] is None else gmul_(t[0], rb),
                 None if t[1] is None else neg_(gmul_(t[1], mul_(out(n), rb))))

P_DIV = _binary("divide", K.GA_DIV, div_vjp, div_jvp, "a / b, elementwise with broadcasting.")


# d(a^b) = b a^(b-1) da + log(a) a^b db     (log(a) taken as 0 at a = 0, where a^b is 0)
def _pow_da(n):
    # gmul: exactly 0 where b == 0, since a^0 is constant (0 * 0^-1 = 0 * inf would be NaN at
    # a = 0); recorded, it also keeps every higher derivative of a^0, a^1, ... finite there
    b = arg(n, 1)
    return gmul_(b, power_(arg(n, 0), sub_(b, 1.0)))

def _is_zero(a):
    return np.asarray(a) == 0

def _pow_db(n):
    a = arg(n, 0)
    zero = nondiff_(_is_zero, (a,))
    if type(zero) is Tensor or zero.any():     # recorded: always, so the program is static
        a = where_(zero, 1.0, a)
    return mul_(out(n), log_(a))

def pow_vjp(n, g):
    return (gmul_(g, _pow_da(n)) if need(n, 0) else None,
            gmul_(g, _pow_db(n)) if need(n, 1) else None)

def pow_jvp(n, t):
    return tsum(None if t[0] is None else gmul_(t[0], _pow_da(n)),
                 None if t[1] is None else gmul_(t[1], _pow_db(n)))

P_POW = _binary("power", K.GA_POW, pow_vjp, pow_jvp, "a ** b, elementwise with broadcasting.")


# d max(a, b) = da where a > b, db where b > a, (da + db)/2 at ties (as for a subgradient)
def _first_weights(a, b):      # the weight of a in max(a, b); of b it is 1 - this
    dt = np.result_type(a, b, 1.0)      # before asarray: a Python number stays weak (float32)
    a, b = np.asarray(a), np.asarray(b)
    return (a > b).astype(dt) + dt.type(0.5) * (a == b).astype(dt)

def _select_weights(n, bint first):
    a, b = arg(n, 0), arg(n, 1)
    if n.prim is P_MIN:
        a, b = b, a
    return nondiff_(_first_weights, (a, b) if first else (b, a))

def minmax_vjp(n, g):
    return (gmul_(g, _select_weights(n, True)) if need(n, 0) else None,
            gmul_(g, _select_weights(n, False)) if need(n, 1) else None)

def minmax_jvp(n, t):
    return tsum(None if t[0] is None else gmul_(t[0], _select_weights(n, True)),
                 None if t[1] is None else gmul_(t[1], _select_weights(n, False)))

P_MAX = _binary("maximum", K.GA_MAXIMUM, minmax_vjp, minmax_jvp,
                "The larger of a and b, elementwise; at ties each gets half the derivative.")
P_MIN = _binary("minimum", K.GA_MINIMUM, minmax_vjp, minmax_jvp,
                "The smaller of a and b, elementwise; at ties each gets half the derivative.")


# gmul(g, d) = g d, but 0 where g == 0: the chain-rule product used by the rules themselves.
# d gmul = gmul(dg, d) + gmul(g, dd)
P_GMUL = _binary("gmul", K.GA_MUL0, mul_vjp, mul_jvp)


# The chain-rule products of tanh and sigmoid from their output y, in one pass (one kernel and
# one array instead of three), 0 where g == 0 as for gmul:
#   tanh_grad(g, y) = g (1 - y^2):   d = tanh_grad(dg, y) - 2 g y dy
#   sigmoid_grad(g, y) = g y (1 - y):   d = sigmoid_grad(dg, y) + g (1 - 2y) dy
cdef object _grad_dy(n):
    """d out / d y of tanh_grad / sigmoid_grad: -2 g y, or g (1 - 2y)."""
    g, y = arg(n, 0), arg(n, 1)
    if n.prim is P_TANH_GRAD:
        return mul_(mul_(g, y), -2.0)
    return mul_(g, sub_(1.0, mul_(y, 2.0)))

def act_grad_vjp(n, h):
    return (call(n.prim, (h, arg(n, 1))) if need(n, 0) else None,
            gmul_(h, _grad_dy(n)) if need(n, 1) else None)

def act_grad_jvp(n, t):
    return tsum(None if t[0] is None else call(n.prim, (t[0], arg(n, 1))),
                None if t[1] is None else gmul_(t[1], _grad_dy(n)))

P_TANH_GRAD = _binary("tanh_grad", K.GA_TANH_GRAD, act_grad_vjp, act_grad_jvp)
P_SIGMOID_GRAD = _binary("sigmoid_grad", K.GA_SIGMOID_GRAD, act_grad_vjp, act_grad_jvp)

# relu's chain-rule product from its output y in one pass: relu_grad(g, y) = g [y > 0] (PyTorch's
# threshold_backward); piecewise constant in y:  d = relu_grad(dg, y)
def relu_grad_vjp(n, h):
    return (call(P_RELU_GRAD, (h, arg(n, 1))) if need(n, 0) else None, None)

def relu_grad_jvp(n, t):
    return None if t[0] is None else call(P_RELU_GRAD, (t[0], arg(n, 1)))

P_RELU_GRAD = _binary("relu_grad", K.GA_RELU_GRAD, relu_grad_vjp, relu_grad_jvp)

# div0(g, x) = g / x, but 0 where g == 0 (as gmul): log's chain-rule product in one pass
#   d div0(g, x) = div0(dg, x) - dx div0(div0(g, x), x)
def div0_vjp(n, h):
    g, x = arg(n, 0), arg(n, 1)
    return (call(P_DIV0, (h, x)) if need(n, 0) else None,
            neg_(gmul_(h, call(P_DIV0, (out(n), x)))) if need(n, 1) else None)

def div0_jvp(n, t):
    x = arg(n, 1)
    return tsum(None if t[0] is None else call(P_DIV0, (t[0], x)),
                None if t[1] is None else neg_(gmul_(t[1], call(P_DIV0, (out(n), x)))))

P_DIV0 = _binary("div0", K.GA_DIV0, div0_vjp, div0_jvp)


# fmax/fmin: maximum/minimum that ignore a NaN operand (the other one is taken, and gets the
# whole derivative); ties share it equally, as for maximum/minimum
def _fmax_weights(x, y):       # the weight of x in fmax(x, y)
    dt = np.result_type(x, y, 1.0)
    x, y = np.asarray(x), np.asarray(y)
    nx, ny = np.isnan(x), np.isnan(y)
    w = (x > y).astype(dt) + dt.type(0.5) * (x == y).astype(dt)
    return np.where(ny & ~nx, dt.type(1), np.where(nx, dt.type(0), w))

def _fmin_weights(x, y):       # the weight of x in fmin(x, y)
    return _fmax_weights(np.negative(x), np.negative(y))

def _fselect_weights(n, bint first):
    a, b = arg(n, 0), arg(n, 1)
    return nondiff_(_fmax_weights if n.prim is P_FMAX else _fmin_weights,
                    (a, b) if first else (b, a))

def fminmax_vjp(n, g):
    return (gmul_(g, _fselect_weights(n, True)) if need(n, 0) else None,
            gmul_(g, _fselect_weights(n, False)) if need(n, 1) else None)

def fminmax_jvp(n, t):
    return tsum(None if t[0] is None else gmul_(t[0], _fselect_weights(n, True)),
                 None if t[1] is None else gmul_(t[1], _fselect_weights(n, False)))

P_FMAX = _binary("fmax", K.GA_FMAX, fminmax_vjp, fminmax_jvp,
                 "The larger of a and b, elementwise, ignoring a NaN operand; at ties each gets "
                 "half the derivative.")
P_FMIN = _binary("fmin", K.GA_FMIN, fminmax_vjp, fminmax_jvp,
                 "The smaller of a and b, elementwise, ignoring a NaN operand; at ties each gets "
                 "half the derivative.")


def _nonzero_or_one(h):
    h = np.asarray(h)
    return np.where(h == 0, np.ones((), h.dtype), h)

cdef object _safe_denominator(h):
    """h with its zeros replaced by 1 (a constant mask), so that a derivative a/h or a/h^2 with
    a = 0 where h = 0 is 0 there rather than NaN, in every order."""
    zero = nondiff_(_is_zero, (h,))
    if type(zero) is Tensor or zero.any():
        return where_(zero, 1.0, h)
    return h


# hypot: h = sqrt(a^2 + b^2);  dh = (a da + b db) / h, taken as 0 at a = b = 0 (where hypot(a, 0)
# = |a| has derivative sign(a) = 0: the convention of abs)
def _hypot_d(n, Py_ssize_t i):
    return mul_(arg(n, i), reciprocal_(_safe_denominator(out(n))))

def hypot_vjp(n, g):
    return (gmul_(g, _hypot_d(n, 0)) if need(n, 0) else None,
            gmul_(g, _hypot_d(n, 1)) if need(n, 1) else None)

def hypot_jvp(n, t):
    return tsum(None if t[0] is None else gmul_(t[0], _hypot_d(n, 0)),
                 None if t[1] is None else gmul_(t[1], _hypot_d(n, 1)))

P_HYPOT = _binary("hypot", K.GA_HYPOT, hypot_vjp, hypot_jvp,
                  "sqrt(a^2 + b^2) without overflow, elementwise; the derivative is taken as 0 "
                  "at a = b = 0.")


# arctan2(a, b) = the angle of (b, a);  d = (b da - a db) / (a^2 + b^2), taken as 0 at the origin
def _atan2_d(n, Py_ssize_t i):
    a, b = arg(n, 0), arg(n, 1)
    r2 = reciprocal_(_safe_denominator(add_(square_(a), square_(b))))
    return mul_(b, r2) if i == 0 else neg_(mul_(a, r2))

def atan2_vjp(n, g):
    return (gmul_(g, _atan2_d(n, 0)) if need(n, 0) else None,
            gmul_(g, _atan2_d(n, 1)) if need(n, 1) else None)

def atan2_jvp(n, t):
    return tsum(None if t[0] is None else gmul_(t[0], _atan2_d(n, 0)),
                 None if t[1] is None else gmul_(t[1], _atan2_d(n, 1)))

P_ARCTAN2 = _binary("arctan2", K.GA_ARCTAN2, atan2_vjp, atan2_jvp,
                    "The angle of the point (b, a) (NumPy's arctan2(x1, x2)), elementwise; the "
                    "derivative is taken as 0 at the origin.")


# logaddexp: y = log(e^a + e^b);  dy = e^(a - y) da + e^(b - y) db   (the two softmax weights)
# logaddexp2: y = log2(2^a + 2^b);  dy = 2^(a - y) da + 2^(b - y) db
def _lae_d(n, Py_ssize_t i):
    d = sub_(arg(n, i), out(n))
    return exp_(d) if n.prim is P_LOGADDEXP else call(P_EXP2, (d,))

def lae_vjp(n, g):
    return (gmul_(g, _lae_d(n, 0)) if need(n, 0) else None,
            gmul_(g, _lae_d(n, 1)) if need(n, 1) else None)

def lae_jvp(n, t):
    return tsum(None if t[0] is None else gmul_(t[0], _lae_d(n, 0)),
                 None if t[1] is None else gmul_(t[1], _lae_d(n, 1)))

P_LOGADDEXP = _binary("logaddexp", K.GA_LOGADDEXP, lae_vjp, lae_jvp,
                      "log(e^a + e^b) without overflow, elementwise.")
P_LOGADDEXP2 = _binary("logaddexp2", K.GA_LOGADDEXP2, lae_vjp, lae_jvp,
                       "log2(2^a + 2^b) without overflow, elementwise.")


# remainder (Python's %, the sign of b) and fmod (C's, the sign of a): r = a - q b with q the
# integer quotient (floor(a / b) or trunc(a / b)), constant between its jumps:
#   dr = da - q db
def _floor_quotient(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.floor_divide(a, b)

def _trunc_quotient(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.rint(np.divide(np.subtract(a, np.fmod(a, b)), b))   # an integer but for rounding

def _mod_q(n):
    return nondiff_(_floor_quotient if n.prim is P_REMAINDER else _trunc_quotient,
                    (arg(n, 0), arg(n, 1)))

def mod_vjp(n, g):
    return (g if need(n, 0) else None,
            neg_(gmul_(g, _mod_q(n))) if need(n, 1) else None)

def mod_jvp(n, t):
    return tsum(t[0], None if t[1] is None else neg_(gmul_(t[1], _mod_q(n))))

def _ufunc2(uf):
    def fwd(params, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(uf(a, b))
    return fwd

P_REMAINDER = defprim("remainder", _ufunc2(np.remainder), mod_vjp, mod_jvp, broadcasts=True)
_export(P_REMAINDER, 2, "a mod b with the sign of b (NumPy's remainder, Python's %), "
        "elementwise; d = da - floor(a / b) db.")
P_FMOD = defprim("fmod", _ufunc2(np.fmod), mod_vjp, mod_jvp, broadcasts=True)
_export(P_FMOD, 2, "a mod b with the sign of a (C's fmod), elementwise; d = da - trunc(a / b) db.")


# ==============================================================================================
# Elementwise unary: out = f(x); every rule is g * f'(x), so each entry gives only f'.

def _unary(str name, int code, deriv, str doc=None, Prim grad=None, bint of_input=False):
    """deriv(n) -> f'(x) as an array (or Tensor), evaluated from the node's input and output;
    with doc, also the public function of the same name.  grad: a binary primitive computing
    the chain-rule product g f'(x) from g and the output (or, of_input, the input x) in one
    pass (tanh, sigmoid, relu; log), used by both rules instead of gmul(g, deriv(n))."""
    def fwd(params, x):
        return K.unary(code, x)
    if grad is not None:
        at = (lambda n: arg(n, 0)) if of_input else (lambda n: out(n))
        p = defprim(name, fwd, lambda n, g: (call(grad, (g, at(n))),),
                    lambda n, t: call(grad, (t[0], at(n))), kernel=1, code=code)
    elif deriv is None:   # piecewise constant: zero derivative (zeros, so that leaves get a .grad)
        p = defprim(name, fwd, lambda n, g: (np.zeros_like(raw(g)),), lambda n, t: None,
                    kernel=1, code=code)
    else:
        def vjp(n, g):
            return (gmul_(g, deriv(n)),)
        def jvp(n, t):
            return gmul_(t[0], deriv(n))
        p = defprim(name, fwd, vjp, jvp, kernel=1, code=code)
    if doc is not None:
        _export(p, 1, doc)
    return p


def _neg_vjp(n, g):
    return (neg_(g),)

P_NEG = defprim("negative", lambda params, x: K.unary(K.GA_NEG, x), _neg_vjp,
                lambda n, t: neg_(t[0]))
_export(P_NEG, 1, "-x, elementwise.")

# f'(x) for each, in terms of x = arg(n, 0) and y = out(n):
P_EXP = _unary("exp", K.GA_EXP, lambda n: out(n), "e^x")                            # e^x
P_LOG = _unary("log", K.GA_LOG, None, "ln x", P_DIV0, True)                          # 1/x
P_LOG1P = _unary("log1p", K.GA_LOG1P, lambda n: reciprocal_(add_(arg(n, 0), 1.0)),
                 "ln(1 + x), accurate for small x")                                 # 1/(1+x)
P_SIN = _unary("sin", K.GA_SIN, lambda n: cos_(arg(n, 0)), "sin x")                 # cos x
P_COS = _unary("cos", K.GA_COS, lambda n: neg_(sin_(arg(n, 0))), "cos x")           # -sin x
P_TAN = _unary("tan", K.GA_TAN, lambda n: add_(square_(out(n)), 1.0), "tan x")      # 1 + y^2
P_TANH = _unary("tanh", K.GA_TANH, None, "tanh x", P_TANH_GRAD)                      # 1 - y^2
P_SINH = _unary("sinh", K.GA_SINH, lambda n: cosh_(arg(n, 0)), "sinh x")            # cosh x
P_COSH = _unary("cosh", K.GA_COSH, lambda n: sinh_(arg(n, 0)), "cosh x")            # sinh x
P_SQRT = _unary("sqrt", K.GA_SQRT, lambda n: mul_(reciprocal_(out(n)), 0.5),
                "The square root")                                                  # 1/(2y)
P_SQUARE = _unary("square", K.GA_SQUARE, lambda n: mul_(arg(n, 0), 2.0), "x^2")     # 2x
P_ABS = _unary("abs", K.GA_ABS, lambda n: sign_(arg(n, 0)),
               "|x| (derivative sign(x), 0 at 0)")                                  # sign x
P_SIGMOID = _unary("sigmoid", K.GA_SIGMOID, None, "The logistic function 1 / (1 + e^-x)",
                   P_SIGMOID_GRAD)                                                  # y(1-y)
P_SOFTPLUS = _unary("softplus", K.GA_SOFTPLUS, lambda n: sigmoid_(arg(n, 0)),
                    "ln(1 + e^x), computed stably")                                 # sigmoid x
P_RECIPROCAL = _unary("reciprocal", K.GA_RECIPROCAL, lambda n: neg_(square_(out(n))),
                      "1 / x")                                                      # -y^2
P_RELU = _unary("relu", K.GA_RELU, None, "max(x, 0) (derivative 0 at 0)",
                P_RELU_GRAD)                                                        # [x > 0]
P_SIGN = _unary("sign", K.GA_SIGN, None, "The sign of x, -1, 0 or 1 (zero derivative)")
P_STEP = _unary("step", K.GA_STEP, None)

_LN2, _LN10 = float(np.log(2.0)), float(np.log(10.0))
P_EXPM1 = _unary("expm1", K.GA_EXPM1, lambda n: add_(out(n), 1.0),
                 "e^x - 1, accurate for small x")                                   # e^x = y + 1
P_EXP2 = _unary("exp2", K.GA_EXP2, lambda n: mul_(out(n), _LN2), "2^x")            # y ln 2
P_LOG2 = _unary("log2", K.GA_LOG2, lambda n: reciprocal_(mul_(arg(n, 0), _LN2)),
                "The base-2 logarithm")                                             # 1/(x ln 2)
P_LOG10 = _unary("log10", K.GA_LOG10, lambda n: reciprocal_(mul_(arg(n, 0), _LN10)),
                 "The base-10 logarithm")                                           # 1/(x ln 10)
P_ARCSIN = _unary("arcsin", K.GA_ARCSIN,
                  lambda n: reciprocal_(sqrt_(sub_(1.0, square_(arg(n, 0))))),
                  "The inverse sine")                                               # 1/sqrt(1-x^2)
P_ARCCOS = _unary("arccos", K.GA_ARCCOS,
                  lambda n: neg_(reciprocal_(sqrt_(sub_(1.0, square_(arg(n, 0)))))),
                  "The inverse cosine")                                             # -1/sqrt(1-x^2)
P_ARCTAN = _unary("arctan", K.GA_ARCTAN,
                  lambda n: reciprocal_(add_(square_(arg(n, 0)), 1.0)),
                  "The inverse tangent")                                            # 1/(1+x^2)
P_ARCSINH = _unary("arcsinh", K.GA_ARCSINH,
                   lambda n: reciprocal_(sqrt_(add_(square_(arg(n, 0)), 1.0))),
                   "The inverse hyperbolic sine")                                   # 1/sqrt(x^2+1)
P_ARCCOSH = _unary("arccosh", K.GA_ARCCOSH,
                   lambda n: reciprocal_(sqrt_(sub_(square_(arg(n, 0)), 1.0))),
                   "The inverse hyperbolic cosine")                                 # 1/sqrt(x^2-1)
P_ARCTANH = _unary("arctanh", K.GA_ARCTANH,
                   lambda n: reciprocal_(sub_(1.0, square_(arg(n, 0)))),
                   "The inverse hyperbolic tangent")                                # 1/(1-x^2)


# rounding: piecewise constant, so zero derivative (NumPy's ufuncs; primitives so that a compiled
# program recomputes them rather than freezing the traced values)
def _zero_deriv(str name, fn):
    p = defprim(name, lambda params, x: np.asarray(fn(x)),
                lambda n, g: (np.zeros_like(raw(g)),), lambda n, t: None)
    _export(p, 1, f"NumPy's {name}, elementwise (zero derivative)")
    return p

P_FLOOR = _zero_deriv("floor", np.floor)
P_CEIL = _zero_deriv("ceil", np.ceil)
P_TRUNC = _zero_deriv("trunc", np.trunc)
P_RINT = _zero_deriv("rint", np.rint)

# round to `decimals` places (NumPy's round: half to even); zero derivative
def _round_fwd(decimals, x):
    x = np.asarray(x)
    if decimals != 0 and x.dtype == np.bool_:     # NumPy scales by 10^decimals in x's dtype
        x = x.astype(np.float64)
    return np.asarray(np.round(x, decimals))

P_ROUND = defprim("round", _round_fwd,
                  lambda n, g: (np.zeros_like(raw(g)),), lambda n, t: None)


# nondiff(fn; x...) = fn(x...): a value computed with NumPy from the inputs that has no
# derivative (a mask, tie weights, a one-hot of labels).  Rules get it from nondiff_, which in
# a plain sweep just calls fn; in a recorded sweep it is a node, so that a compiled program
# recomputes it from the new values on every replay instead of freezing the traced one.
P_NONDIFF = defprim("nondiff", lambda fn, *xs: np.asarray(fn(*xs)),
                    lambda n, g: (None,) * len(n.parents), lambda n, t: None,
                    pure=False)     # fn may draw (graphad.random's samples)


# where(c, a, b): the condition is a constant (params); d = where(c, da, db)
def _where_fwd(cond, a, b):
    return np.where(cond, a, b)

def _split(c, g, n, Py_ssize_t first):
    """where's cotangents: g where c for input `first`, g elsewhere for input first + 1."""
    z = np.zeros((), raw(g).dtype if isinstance(raw(g), np.ndarray) else np.float64)
    return (where_(c, g, z) if need(n, first) else None,
            where_(c, z, g) if need(n, first + 1) else None)

def where_vjp(n, g):
    return _split(n.params, g, n, 0)

def where_jvp(n, t):
    ta = 0.0 if t[0] is None else t[0]
    tb = 0.0 if t[1] is None else t[1]
    return where_(n.params, ta, tb)

P_WHERE = defprim("where", _where_fwd, where_vjp, where_jvp, broadcasts=True)


# select(c, a, b) = where(c, a, b) with the condition an input (no derivative): a rule's mask
# computed by nondiff in a recorded sweep (where_ picks it when the condition is a Tensor)
def select_vjp(n, g):
    return (None,) + _split(arg(n, 0), g, n, 1)

def select_jvp(n, t):
    return where_(arg(n, 0), 0.0 if t[1] is None else t[1], 0.0 if t[2] is None else t[2])

P_SELECT = defprim("select", lambda params, c, a, b: np.where(c, a, b), select_vjp,
                   select_jvp, broadcasts=True)


# clip(x, lo, hi): d = dx inside [lo, hi], 0 outside
def _inside(lo, hi, x):
    m = np.ones(np.shape(x), bool)
    if lo is not None:
        m &= x >= lo
    if hi is not None:
        m &= x <= hi
    return m

def _clip_mask(n):
    lo, hi = n.params
    return nondiff_(functools.partial(_inside, lo, hi), (arg(n, 0),))

P_CLIP = defprim("clip", lambda params, x: np.clip(x, params[0], params[1]),
                 lambda n, g: (where_(_clip_mask(n), g, 0.0),),
                 lambda n, t: where_(_clip_mask(n), t[0], 0.0))


# identity: a fresh node over x (a transform's own input, so nested sweeps stop there)
P_ID = defprim("identity", lambda params, x: x, lambda n, g: (g,), lambda n, t: t[0])


# astype: d = dx in the new dtype
P_ASTYPE = defprim("astype", lambda dtype, x: np.asarray(x).astype(dtype),
                   lambda n, g: (g,),
                   lambda n, t: astype_(t[0], n.params))


# ==============================================================================================
# Public functions that are more than their primitive

__all__ += ["where", "clip", "astype", "round", "around", "fix", "mod", "absolute"]


def round(x, decimals=0, out=None):      # noqa: A001  (NumPy's name)
    """NumPy's round: to `decimals` places, halves to even (zero derivative)."""
    _no_out("round", out)
    return apply(P_ROUND, (x,), int(decimals))


around = round
mod = globals()["remainder"]
absolute = globals()["abs"]


def fix(x, out=None):
    """NumPy's fix: round toward zero (trunc; zero derivative)."""
    _no_out("fix", out)
    return apply(P_TRUNC, (x,))


def where(cond, a, b):
    """Elementwise a where cond else b; no derivative flows through cond.  A condition that is
    a node (a comparison of traced values while ga.compile traces) is an input of the node, so
    that a replay recomputes it; otherwise it is a constant."""
    c = np.asarray(raw(cond), dtype=bool)
    a, b = stacked(a), stacked(b)
    try:
        np.broadcast_shapes(c.shape, shape_of(a), shape_of(b))
    except ValueError:
        raise ValueError(f"where: shapes {c.shape}, {shape_of(a)} and {shape_of(b)} do not "
                         f"broadcast together") from None
    if type(cond) is Tensor and ((<Tensor>cond).prim is not None or traced(cond)):
        return apply(P_SELECT, (cond, a, b))
    return apply(P_WHERE, (a, b), c)


def clip(x, lo=None, hi=None):
    """Values of x limited to [lo, hi]; the derivative is 1 inside and 0 outside."""
    if (type(lo) is Tensor and lo.requires_grad) or (type(hi) is Tensor and hi.requires_grad):
        # bounds that carry derivatives: min/max pass theirs on (a constant bound would not)
        y = x if hi is None else apply(P_MIN, (x, hi))
        return y if lo is None else apply(P_MAX, (y, lo))
    return apply(P_CLIP, (x,), (raw(lo), raw(hi)))


def astype(x, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        raise TypeError(f"astype: complex dtypes are not supported yet (got {dtype})")
    return apply(P_ASTYPE, (x,), dtype)




# ==============================================================================================
# Helpers for the rules (arrays in -> arrays out; Tensors in -> Tensors out)

cpdef add_(a, b): return call(P_ADD, (a, b))
cpdef sub_(a, b): return call(P_SUB, (a, b))
cpdef mul_(a, b): return call(P_MUL, (a, b))
cpdef gmul_(g, d): return call(P_GMUL, (g, d))
cpdef neg_(x): return call(P_NEG, (x,))
cpdef power_(a, b): return call(P_POW, (a, b))
cpdef exp_(x): return call(P_EXP, (x,))
cpdef log_(x): return call(P_LOG, (x,))
cpdef sin_(x): return call(P_SIN, (x,))
cpdef cos_(x): return call(P_COS, (x,))
cpdef sinh_(x): return call(P_SINH, (x,))
cpdef cosh_(x): return call(P_COSH, (x,))
cpdef square_(x): return call(P_SQUARE, (x,))
cpdef sign_(x): return call(P_SIGN, (x,))
cpdef step_(x): return call(P_STEP, (x,))
cpdef sigmoid_(x): return call(P_SIGMOID, (x,))
cpdef reciprocal_(x): return call(P_RECIPROCAL, (x,))
cpdef sqrt_(x): return call(P_SQRT, (x,))
cpdef where_(c, a, b):
    if type(c) is Tensor:
        return call(P_SELECT, (c, a, b))
    return call(P_WHERE, (a, b), np.asarray(c))

cpdef nondiff_(fn, tuple args):
    if recording():
        return apply(P_NONDIFF, args, fn)
    return fn(*[raw(a) for a in args])
cpdef astype_(x, dtype): return call(P_ASTYPE, (x,), np.dtype(dtype))
