"""Dual numbers: forward mode in its teaching form.

A dual number a + b ε (ε² = 0) carries a value a and a tangent b.  Evaluating f on x + ε gives
f(x) + f'(x) ε, because every operation applies the chain rule to the ε part:

    (a + a'ε)(b + b'ε) = ab + (a'b + ab')ε,        sin(a + a'ε) = sin a + cos(a) a' ε.

    >>> x = ga.Dual(2.0, 1.0)
    >>> y = x * x + ga.dual.sin(x)       # Dual(value=4 + sin 2, tangent=4 + cos 2)

Nested derivatives and perturbation confusion
---------------------------------------------
Each Dual belongs to one perturbation, its `tag`.  Dual(value, tangent) without a tag uses the
shared default perturbation ε (the course's single ε).  `derivative(f, x)` creates a fresh tag
for every call, so that nested derivatives keep their perturbations apart: in
d/dx [x · d/dy (x + y)] the inner derivative must treat x as a constant, and the answer is 1
(with one shared ε the x in the inner sum would be perturbed too, giving the wrong 2).

Two duals of different tags combine as a dual in the NEWER tag whose value and tangent are
duals in the older one (the older perturbation is a constant of the newer one); the value and
tangent of a Dual may therefore themselves be Duals.  Tags are ordered by creation, and the
default tag is the oldest.
"""
import builtins
import itertools
import math

import numpy as np

__all__ = ["Dual", "derivative", "sin", "cos", "tan", "exp", "log", "sqrt", "tanh",
           "sinh", "cosh", "abs", "value", "tangent"]

_DEFAULT_TAG = 0
_tags = itertools.count(1)


def new_tag():
    """A fresh perturbation, newer than every existing one."""
    return next(_tags)


def _tag(x):
    return x.tag if isinstance(x, Dual) else -1


def _split(x, tag):
    """(value, tangent) of x as a dual number in perturbation `tag` (tangent 0 for a
    constant, or for a dual in an older perturbation)."""
    if isinstance(x, Dual) and x.tag == tag:
        return x.value, x.tangent
    return x, 0.0


class Dual:
    """A dual number value + tangent·ε; `tag` names its perturbation ε (see the module doc)."""

    __slots__ = ("value", "tangent", "tag")
    __array_ufunc__ = None          # NumPy defers to our reflected operators
    __array_priority__ = 1000

    def __init__(self, value, tangent=0.0, tag=None):
        self.value = value
        self.tangent = tangent
        self.tag = _DEFAULT_TAG if tag is None else tag

    def __repr__(self):
        suffix = "" if self.tag == _DEFAULT_TAG else f", tag={self.tag}"
        return f"Dual(value={self.value!r}, tangent={self.tangent!r}{suffix})"

    # -- arithmetic: each line is the chain rule on the ε part ---------------------------------
    def __add__(self, other):
        t = max(self.tag, _tag(other))
        (a, da), (b, db) = _split(self, t), _split(other, t)
        return Dual(a + b, da + db, t)

    __radd__ = __add__

    def __sub__(self, other):
        t = max(self.tag, _tag(other))
        (a, da), (b, db) = _split(self, t), _split(other, t)
        return Dual(a - b, da - db, t)

    def __rsub__(self, other):
        return _as_dual_in(other, self).__sub__(self)

    def __mul__(self, other):
        t = max(self.tag, _tag(other))
        (a, da), (b, db) = _split(self, t), _split(other, t)
        return Dual(a * b, da * b + a * db, t)          # d(ab) = da b + a db

    __rmul__ = __mul__

    def __truediv__(self, other):
        t = max(self.tag, _tag(other))
        (a, da), (b, db) = _split(self, t), _split(other, t)
        q = a / b
        return Dual(q, (da - q * db) / b, t)            # d(a/b) = (da - (a/b) db) / b

    def __rtruediv__(self, other):
        return _as_dual_in(other, self).__truediv__(self)

    def __pow__(self, other):
        t = max(self.tag, _tag(other))
        (a, da), (b, db) = _split(self, t), _split(other, t)
        p = a ** b
        if not isinstance(db, Dual) and db == 0:        # constant exponent: b a^(b-1) da
            return Dual(p, b * a ** (b - 1) * da, t)
        # d(a^b) = b a^(b-1) da + log(a) a^b db
        return Dual(p, b * a ** (b - 1) * da + log(a) * p * db, t)

    def __rpow__(self, other):
        return _as_dual_in(other, self).__pow__(self)

    def __neg__(self):
        return Dual(-self.value, -self.tangent, self.tag)

    def __pos__(self):
        return self

    def __abs__(self):
        return abs_(self)

    # -- comparisons look at the value only (the real part) ------------------------------------
    def _real(self):
        return value(self)

    def __eq__(self, other):
        return self._real() == value(other)

    def __ne__(self, other):
        return self._real() != value(other)

    def __lt__(self, other):
        return self._real() < value(other)

    def __le__(self, other):
        return self._real() <= value(other)

    def __gt__(self, other):
        return self._real() > value(other)

    def __ge__(self, other):
        return self._real() >= value(other)

    def __hash__(self):
        return hash((id(self),))

    def __float__(self):
        return float(self._real())

    def __bool__(self):
        return bool(self._real())


def _as_dual_in(x, like):
    """A constant x as a dual in the perturbation of `like` (for the reflected operators)."""
    return Dual(x, 0.0, like.tag)


def value(x):
    """The real part of x: its value with every perturbation dropped."""
    while isinstance(x, Dual):
        x = x.value
    return x


def tangent(y, tag=_DEFAULT_TAG):
    """The coefficient of perturbation `tag` in y (a dual in the older perturbations, if any)."""
    if not isinstance(y, Dual):
        return 0.0
    if y.tag == tag:
        return y.tangent
    if y.tag < tag:         # only older perturbations: no ε of `tag` anywhere inside
        return 0.0
    # a newer perturbation on the outside: take the `tag` part of its value and tangent
    return _join(tangent(y.value, tag), tangent(y.tangent, tag), y.tag)


def _join(v, dv, tag):
    if not isinstance(dv, Dual) and dv == 0:
        return v
    return Dual(v, dv, tag)


def derivative(f, x):
    """f'(x) for f: R -> R by forward mode with a fresh perturbation (safe to nest)."""
    tag = new_tag()
    y = f(Dual(x, 1.0, tag))
    return tangent(y, tag)


# ----------------------------------------------------------------------------------------------
# elementary functions: f(a + a'ε) = f(a) + f'(a) a' ε, recursively for nested duals

def _lift(fn, deriv):
    def g(x):
        if isinstance(x, Dual):
            return Dual(g(x.value), deriv(x.value) * x.tangent, x.tag)
        return fn(x)
    g.__name__ = fn.__name__
    return g


def _np(f):
    return lambda x: f(x) if isinstance(x, np.ndarray) else getattr(math, f.__name__)(x)


sin = _lift(_np(np.sin), lambda a: cos(a))
cos = _lift(_np(np.cos), lambda a: -sin(a))
tan = _lift(_np(np.tan), lambda a: 1 + tan(a) ** 2)
exp = _lift(_np(np.exp), lambda a: exp(a))
log = _lift(_np(np.log), lambda a: 1 / a)
sqrt = _lift(_np(np.sqrt), lambda a: 0.5 / sqrt(a))
tanh = _lift(_np(np.tanh), lambda a: 1 - tanh(a) ** 2)
sinh = _lift(_np(np.sinh), lambda a: cosh(a))
cosh = _lift(_np(np.cosh), lambda a: sinh(a))


def _sign(a):
    r = value(a)
    return (r > 0) - (r < 0) if not isinstance(r, np.ndarray) else np.sign(r)


abs_ = _lift(lambda x: np.abs(x) if isinstance(x, np.ndarray) else builtins.abs(x), _sign)
abs = abs_  # noqa: A001  (ga.dual.abs, like math.fabs for duals)
