"""ga.functional: the calculus of variations on a grid.

    J = ga.functional.functional(lambda y, yp, x: ga.sqrt(1 + yp ** 2), x, ya=0.0, yb=1.0)
    J(y)                        # the discretized arc length of the path through the interior y
    ga.grad(J)(y)               # its gradient: reverse mode through the whole sum
    J.euler_lagrange(y)         # the discrete Euler-Lagrange expression at the interior points
    res = J.minimize()          # the stationary path, by ga.optimize.minimize; J.full(res.x)

A functional J[y] = int_a^b F(y, y', x) dx of a function y with fixed ends y(a) = ya, y(b) = yb
becomes, on a grid a = x_0 < x_1 < ... < x_N = b, a function of the N - 1 interior values
y_1 .. y_{N-1}.  On each cell [x_i, x_{i+1}] (width h_i) the slope is the finite difference
p_i = (y_{i+1} - y_i) / h_i and F is integrated by a rule with points t_q in [0, 1] and weights w_q:

    J_h(y) = sum_i h_i sum_q w_q F(y_i + t_q (y_{i+1} - y_i), p_i, x_i + t_q h_i)

    rule="midpoint"   t = 1/2, w = 1          (F at the cell's centre; never at the ends, so a
                                               F singular at an end, the brachistochrone's
                                               1 / sqrt(y), is fine)
    rule="trapezoid"  t = 0, 1, w = 1/2, 1/2  (F at the grid points, with the cell's slope)

The first variation: the gradient of J_h is the discrete Euler-Lagrange expression times the
grid weights, exactly (it is the chain rule through the sum, term by term):

    dJ_h/dy_j = c_j EL_j,   c_j = (h_{j-1} + h_j) / 2,
    EL_j = [ sum_q w_q (h_{j-1} t_q F_y|_{j-1,q} + h_j (1 - t_q) F_y|_{j,q})
             - (Pi_j - Pi_{j-1}) ] / c_j,           Pi_i = sum_q w_q F_y'|_{i,q}

with F_y and F_y' taken by graphad at the rule's points of each cell.  On a uniform grid EL_j
is an average of F_y around x_j minus a centred difference of F_y': a second-order
approximation of the continuous Euler-Lagrange expression dF/dy - d/dx dF/dy' (which
`euler_lagrange(F, y, x)` evaluates exactly for a smooth function y, by graphad derivatives),
so setting grad J_h = 0 is solving the Euler-Lagrange equation, discretized consistently.

F(y, yp, x) is called on arrays (the values at all points of a rule at once) and must act
elementwise, written with graphad's functions (ga.sqrt, ...), as the examples are.  The dtype
of the grid x is the dtype of the computation (float32 grids give float32 values).
"""
import numpy as np

from graphad import _ops
from graphad._core import Tensor

__all__ = ["Functional", "functional", "euler_lagrange"]

_RULES = {"midpoint": ((0.5,), (1.0,)), "trapezoid": ((0.0, 1.0), (0.5, 0.5))}


def _plain(v):
    return v.numpy() if isinstance(v, Tensor) else np.asarray(v)


def _real(v, what, name):
    """Refuse complex values (and non-numbers) clearly, as graphad's functions do."""
    kind = np.asarray(v.data if isinstance(v, Tensor) else v).dtype.kind
    if kind == "c":
        raise TypeError(f"{name}: complex {what} is not supported")
    if kind not in "biuf":
        raise TypeError(f"{name}: {what} must be real numbers, got dtype "
                        f"{np.asarray(v.data if isinstance(v, Tensor) else v).dtype}")


class Functional:
    """J[y] = int F(y, y', x) dx discretized on the grid x with y(x[0]) = ya, y(x[-1]) = yb:
    a function of the interior values y[1:-1] (see the module docstring)."""

    def __init__(self, F, x, ya, yb, rule="midpoint"):
        if rule not in _RULES:
            raise ValueError(f"functional: rule must be one of {sorted(_RULES)}, got {rule!r}")
        _real(x, "grid x", "functional")
        x = np.asarray(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float64)
        if x.ndim != 1 or x.size < 3:
            raise ValueError(f"functional: the grid x must be 1-D with at least 3 points (one "
                             f"interior value), got shape {x.shape}")
        h = np.diff(x)
        if not np.all(h > 0):
            raise ValueError("functional: the grid x must be strictly increasing")
        self.F, self.x, self.h, self.rule = F, x, h, rule
        self.ya, self.yb = x.dtype.type(ya), x.dtype.type(yb)
        self.t, self.w = _RULES[rule]
        self.weights = 0.5 * (h[:-1] + h[1:])        # c_j: dJ/dy_j = c_j EL_j
        # each rule point of each cell: the abscissa, and the interpolation weight of the
        # cell's right end
        self._xq = [x[:-1] + x.dtype.type(t) * h for t in self.t]

    @property
    def n(self):
        """The number of unknowns (interior grid values)."""
        return self.x.size - 2

    def full(self, y):
        """The interior values y with the boundary values attached: y on the whole grid."""
        if isinstance(y, Tensor):
            return _ops.concatenate([np.array([self.ya]), y, np.array([self.yb])])
        return np.concatenate([[self.ya], np.asarray(y, self.x.dtype), [self.yb]])

    def _check(self, y):
        _real(y, "interior values y", "functional")
        if np.shape(y) != (self.n,):
            raise ValueError(f"functional: expected the {self.n} interior values, shape "
                             f"({self.n},), got shape {np.shape(y)}")

    def __call__(self, y):
        """J_h(y) for the interior values y (a Tensor when y is one; differentiable)."""
        self._check(y)
        Y = self.full(y)
        left, right = Y[:-1], Y[1:]
        p = (right - left) / self.h
        J = 0.0
        for t, w, xq in zip(self.t, self.w, self._xq):
            yq = left if t == 0.0 else right if t == 1.0 else left + t * (right - left)
            J = J + _ops.sum((w * self.h) * self.F(yq, p, xq))
        return J

    def partials(self, y):
        """(F_y, F_y') at every rule point of every cell: two lists (one entry per rule
        point) of arrays of length N, by one reverse sweep each."""
        from graphad.transforms import grad
        Y = self.full(_plain(y))
        left, right = Y[:-1], Y[1:]
        p = (right - left) / self.h
        Fy, Fp = [], []
        for t, xq in zip(self.t, self._xq):
            yq = left + Y.dtype.type(t) * (right - left)
            gy, gp = grad(lambda a, b: _ops.sum(self.F(a, b, xq)), argnums=(0, 1))(yq, p)
            Fy.append(np.asarray(gy))
            Fp.append(np.asarray(gp))
        return Fy, Fp

    def euler_lagrange(self, y):
        """The discrete Euler-Lagrange expression EL_j at the interior points, from graphad's
        derivatives of F (not of J): grad J_h(y) = self.weights * EL (module docstring)."""
        self._check(y)
        Fy, Fp = self.partials(y)
        h = self.h
        Sy = 0.0
        Pi = 0.0
        for t, w, fy, fp in zip(self.t, self.w, Fy, Fp):
            # y_j is the right end of cell j-1 (weight t) and the left end of cell j (1 - t)
            Sy = Sy + w * (h[:-1] * t * fy[:-1] + h[1:] * (1.0 - t) * fy[1:])
            Pi = Pi + w * fp
        return (Sy - np.diff(Pi)) / self.weights

    def initial_guess(self):
        """The straight line between the boundary values, at the interior points."""
        x = self.x
        s = (x[1:-1] - x[0]) / (x[-1] - x[0])
        return (self.ya + s * (self.yb - self.ya)).astype(x.dtype)

    def minimize(self, y0=None, method="newton", tol=1e-10, maxiter=None):
        """A stationary (locally minimal) path, by ga.optimize.minimize on J_h from y0 (the
        straight line by default).  Returns the OptimizeResult; res.x holds the interior
        values (self.full(res.x) the whole path)."""
        from graphad.optimize import minimize
        y0 = self.initial_guess() if y0 is None else np.asarray(y0, self.x.dtype)
        return minimize(self, y0, method=method, tol=tol, maxiter=maxiter)


def functional(F, x, ya, yb, rule="midpoint"):
    """J[y] = int F(y, y', x) dx on the grid x with fixed ends ya, yb, as a Functional: call it
    on the interior values (a differentiable scalar), .euler_lagrange(y) for the discrete
    Euler-Lagrange expression, .minimize() for the stationary path."""
    return Functional(F, x, ya, yb, rule)


def euler_lagrange(F, y, x):
    """The Euler-Lagrange expression dF/dy - d/dx dF/dy' along a smooth function y, at the
    points x, by graphad derivatives (exact up to rounding): y is a callable acting
    elementwise with graphad functions, F(y, yp, x) as in the module docstring.  The total
    derivative d/dx dF/dy'(y(x), y'(x), x) is differentiated through y and y'."""
    from graphad.transforms import grad
    _real(x, "points x", "euler_lagrange")
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)

    def dy(s):                                      # y'(s), elementwise
        return grad(lambda r: _ops.sum(y(r)))(s)

    def F_p(s):                                     # dF/dy' along the path, a function of s
        return grad(lambda a, b: _ops.sum(F(a, b, s)), argnums=1)(y(s), dy(s))

    F_y = grad(lambda a, b: _ops.sum(F(a, b, x)), argnums=0)(_plain(y(x)), _plain(dy(x)))
    dF_p = grad(lambda s: _ops.sum(F_p(s)))(x)
    return np.asarray(F_y) - np.asarray(dF_p)
