"""ga.optimize: Newton's method for roots, and minimization (Newton-CG, BFGS, gradient descent),
with the derivatives taken by graphad.

    res = ga.optimize.newton(lambda x: x**3 - 2.0, 1.0)     # res.x, res.residuals, res.history
    res = ga.optimize.minimize(rosen, np.zeros(5), method="newton")    # res.x, res.fun, res.grad

Newton's method is the course's use of the derivative as a linear map: near x, f(x + dx) ~
f(x) + f'(x)[dx], so the step solves f'(x)[dx] = -f(x).  Near a simple root the residual is
squared at every step (quadratic convergence), which `history` and `residuals` show.

Both functions take x0 of any shape (a scalar, a vector, a matrix); they work on the flattened
vector and call f with x0's shape and dtype, returning iterates of that shape.  They never
return a non-finite iterate as a success: a NaN or Inf in f, its Jacobian or its gradient
stops the iteration with converged=False and a message saying so.
"""
import numpy as np
from scipy.linalg import get_lapack_funcs

from graphad import _core
from graphad._core import Tensor
from graphad.transforms import hessian, jacfwd, linearized_hvp, value_and_grad

__all__ = ["OptimizeResult", "newton", "minimize"]

_EPS = np.finfo(np.float64).eps
_DENSE_HESSIAN_MAX = 50   # minimize(method="newton"): a dense Hessian up to this n, else CG on hvp
# float64 LAPACK, called directly (scipy.linalg's wrappers cost microseconds of checks per call)
_GETRF, _GECON, _GETRS, _POTRF, _POTRS = get_lapack_funcs(
    ("getrf", "gecon", "getrs", "potrf", "potrs"), (np.zeros((1, 1)),))


class OptimizeResult:
    """The result of newton / minimize: its fields are attributes (res.x, res.converged, ...);
    vars(res) gives them as a dict."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __repr__(self):
        lines = []
        for k, v in self.__dict__.items():
            if k == "history":
                v = f"[{len(v)} iterates]"
            elif isinstance(v, list) and len(v) > 6:
                v = "[" + ", ".join(f"{e:.3g}" for e in v[:3]) + ", ..., " + \
                    ", ".join(f"{e:.3g}" for e in v[-2:]) + f"]  ({len(v)} entries)"
            lines.append(f"{k:>11}: {v}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# shared helpers

def _start(x0, name):
    """(flat float64 copy of x0, x0's shape, the dtype f is called with)."""
    if isinstance(x0, Tensor):
        x0 = x0.numpy()
    x0 = np.asarray(x0)
    if x0.dtype.kind == "c":
        raise TypeError(f"{name}: complex x0 (dtype {x0.dtype}) is not supported")
    if x0.dtype.kind not in "biuf":
        raise TypeError(f"{name}: x0 must be a real number or array, got dtype {x0.dtype}")
    dtype = x0.dtype if x0.dtype.kind == "f" else np.dtype(np.float64)
    if x0.size == 0:
        raise ValueError(f"{name}: x0 is empty (shape {x0.shape})")
    return np.array(x0, dtype=np.float64).reshape(-1), x0.shape, dtype


def _shaped(x, shape, dtype):
    """The flat float64 iterate as the caller sees it: x0's shape and dtype (a 0-d x0 gives a
    NumPy scalar)."""
    y = x.astype(dtype, copy=True).reshape(shape)
    return y[()] if shape == () else y


def _plain(y):
    return np.asarray(y.numpy() if isinstance(y, Tensor) else y, dtype=np.float64)


def _finite(*arrays):
    return all(bool(np.all(np.isfinite(a))) for a in arrays)


# ----------------------------------------------------------------------------------------------
# newton: roots of f: R^n -> R^n

def newton(f, x0, tol=1e-10, maxiter=50, args=()):
    """A root of f by Newton's method, x_{k+1} = x_k + t_k dx_k with f'(x_k)[dx_k] = -f(x_k).

    f maps an array of x0's shape to an array of the same size (a scalar to a scalar).  The
    Jacobian is square, so forward and reverse mode cost the same number of sweep directions
    (n); it comes from jacfwd, which runs eagerly while f runs and records no graph.  The step
    comes from an LU solve (never an inverse).  A backtracking
    line search on |f| (t_k = 1, 1/2, 1/4, ... until |f| decreases by the Armijo condition)
    keeps the iteration from diverging far from the root; near a simple root the full step is
    taken and the residual converges quadratically.

    Converged when |f(x)| <= tol (the 2-norm).  Returns an OptimizeResult with
      x           the last iterate (x0's shape and dtype)
      fun         f(x)
      converged   bool; False with a message for: maxiter reached, a singular Jacobian, a
                  non-finite f or Jacobian, or a line search that cannot reduce |f|
      iterations  the number of steps taken
      history     the iterates x_0, x_1, ..., x (x0 first)
      residuals   |f(x_k)| for each iterate in history
      message, nfev, njev
    """
    x, shape, dtype = _start(x0, "newton")
    n = x.size

    def fval(xf):
        with _core.no_grad():
            return _plain(f(_shaped(xf, shape, dtype), *args))

    def finish(converged, message):
        return OptimizeResult(x=_shaped(x, shape, dtype), fun=fx.reshape(out_shape),
                              converged=converged, iterations=len(history) - 1,
                              history=history, residuals=residuals, message=message,
                              nfev=nfev, njev=njev)

    fx = fval(x)
    out_shape = fx.shape
    fx = fx.reshape(-1)
    nfev, njev = 1, 0
    if fx.size != n:
        raise ValueError(f"newton: f must map x0 (shape {shape}, size {n}) to as many values, "
                         f"got output shape {out_shape}; a root of a non-square system is "
                         f"not defined")
    history, residuals = [_shaped(x, shape, dtype)], [float(np.linalg.norm(fx))]
    if not _finite(fx):
        return finish(False, "f(x0) is not finite")
    jac_fn = jacfwd(lambda xs: f(xs, *args))
    for _ in range(maxiter):
        r = residuals[-1]
        if r <= tol:
            return finish(True, f"converged: |f(x)| = {r:.3g} <= tol = {tol:.3g}")
        J = np.asarray(jac_fn(_shaped(x, shape, dtype)), dtype=np.float64).reshape(n, n)
        njev += 1
        if not _finite(J):
            return finish(False, f"the Jacobian at iteration {len(history) - 1} is not finite")
        # dx = -J^{-1} f from one LU factorization; its reciprocal condition number (1-norm,
        # LAPACK's estimate) tells a numerically singular Jacobian from a merely large one
        lu, piv, info = _GETRF(J)
        rcond = 0.0
        if info == 0:
            rcond, _ = _GECON(lu, np.linalg.norm(J, 1), norm="1")
        if info != 0 or not rcond > _EPS:
            return finish(False, f"singular Jacobian at iteration {len(history) - 1} "
                                 f"(reciprocal condition number {rcond:.2g}); Newton's step "
                                 f"is undefined there")
        dx, _ = _GETRS(lu, piv, -fx)
        # backtracking on |f|: accept t when |f(x + t dx)| <= (1 - 1e-4 t) |f(x)|
        t = 1.0
        for _ in range(40):
            x_new = x + t * dx
            f_new = fval(x_new).reshape(-1)
            nfev += 1
            r_new = float(np.linalg.norm(f_new))
            if np.isfinite(r_new) and _finite(f_new) and r_new <= (1.0 - 1e-4 * t) * r:
                break
            t *= 0.5
        else:
            return finish(False, f"the line search could not reduce |f| = {r:.3g} at "
                                 f"iteration {len(history) - 1} (a local minimum of |f| that "
                                 f"is not a root, or |f| at rounding level: try a larger tol)")
        x, fx = x_new, f_new
        history.append(_shaped(x, shape, dtype))
        residuals.append(r_new)
    r = residuals[-1]
    if r <= tol:
        return finish(True, f"converged: |f(x)| = {r:.3g} <= tol = {tol:.3g}")
    return finish(False, f"maxiter = {maxiter} reached with |f(x)| = {r:.3g} > tol = {tol:.3g}")


# ----------------------------------------------------------------------------------------------
# minimize

def _line_search(phi, f0, d0, a1, c1=1e-4, c2=0.9, maxiter=30):
    """A step a > 0 meeting the strong Wolfe conditions along a descent direction
    (Nocedal & Wright, Algorithms 3.5 and 3.6):
        phi(a) <= f0 + c1 a d0   (sufficient decrease),   |phi'(a)| <= c2 |d0|   (curvature).
    Near a minimum the decrease c1 a |d0| falls below the rounding error of f; there a step
    whose value is within rounding of f0 and which meets the curvature condition is accepted
    too (Hager & Zhang's approximate Wolfe conditions, 2005), so that the slope, which is
    still accurate, decides.
    phi(a) -> (value, slope, payload); a non-finite value counts as too long a step.
    Returns (a, payload), or (a, payload) of the best step with sufficient decrease when the
    curvature condition could not be met, or None when no step decreased f."""
    noise = 1e-10 * abs(f0)

    def decrease(a, fa):         # sufficient decrease, or a value within rounding of f0
        return np.isfinite(fa) and (fa <= f0 + c1 * a * d0 or fa <= f0 + noise)

    def accept(fa, da):
        return abs(da) <= -c2 * d0 and fa <= f0 + noise

    def zoom(lo, f_lo, d_lo, p_lo, hi, f_hi):
        for _ in range(maxiter):
            width = hi - lo
            a = lo + 0.5 * width
            if np.isfinite(f_hi):
                # minimizer of the quadratic through f_lo, d_lo and f_hi, kept inside the bracket
                denom = 2.0 * (f_hi - f_lo - d_lo * width)
                if denom > 0.0:             # convex: its minimizer is a minimum
                    q = lo - d_lo * width * width / denom
                    if min(lo, hi) + 0.1 * abs(width) <= q <= max(lo, hi) - 0.1 * abs(width):
                        a = q
            fa, da, pa = phi(a)
            if np.isfinite(fa) and accept(fa, da):
                return a, pa
            if not decrease(a, fa) or fa > f_lo + noise:
                hi, f_hi = a, fa
            else:
                if da * (hi - lo) >= 0:
                    hi, f_hi = lo, f_lo
                lo, f_lo, d_lo, p_lo = a, fa, da, pa
            if abs(hi - lo) <= _EPS * max(1.0, abs(lo)):
                break
        return (lo, p_lo) if lo > 0 else None

    a_prev, f_prev, d_prev, p_prev = 0.0, f0, d0, None
    a = a1
    for i in range(maxiter):
        fa, da, pa = phi(a)
        if np.isfinite(fa) and accept(fa, da):
            return a, pa
        if not decrease(a, fa) or (i > 0 and fa > f_prev + noise):
            return zoom(a_prev, f_prev, d_prev, p_prev, a, fa if np.isfinite(fa) else np.inf)
        if da >= 0:
            return zoom(a, fa, da, pa, a_prev, f_prev)
        a_prev, f_prev, d_prev, p_prev = a, fa, da, pa
        a *= 2.0
    return (a_prev, p_prev) if a_prev > 0 else None


def _truncated_cg(matvec, g, maxiter):
    """(p, error): an approximate solution of H p = -g by conjugate gradients, stopped at the
    relative residual eta = min(0.5, |g|) (a forcing term that keeps Newton's convergence
    quadratic, Nocedal & Wright 7.1) or at the first direction of non-positive curvature: then
    the iterate so far, or -g when that happens at once (the steepest-descent fallback).
    (None, message) when a product H d is not finite."""
    gnorm = float(np.linalg.norm(g))
    eta = min(0.5, gnorm)
    z = np.zeros_like(g)
    r = g.copy()
    d = -r
    rr = float(r @ r)
    for j in range(maxiter):
        Hd = matvec(d)
        curv = float(d @ Hd)
        if not np.isfinite(curv):
            return None, "a Hessian-vector product is not finite"
        if curv <= 0.0:
            return (-g if j == 0 else z), None
        alpha = rr / curv
        z = z + alpha * d
        r = r + alpha * Hd
        rr_new = float(r @ r)
        if np.sqrt(rr_new) <= eta * gnorm:
            break
        d = -r + (rr_new / rr) * d
        rr = rr_new
    return z, None


def minimize(f, x0, method="bfgs", tol=1e-8, maxiter=None, args=()):
    """A local minimum of scalar f, starting from x0 (any shape).

    method
      "newton"  Newton's method with a line search: the Hessian from graphad (ga.hessian, one
                forward-over-reverse sweep, for up to 50 unknowns; larger problems solve
                H p = -g by conjugate gradients on Hessian-vector products, never forming H:
                f and its gradient are recorded once per step, and each product is one
                forward sweep through the recording, about half a ga.hvp).  Where H
                is not positive definite the CG iteration stops at the first direction of
                non-positive curvature (the gradient direction if it is the first).
      "bfgs"    quasi-Newton: an inverse-Hessian estimate updated from gradient differences.
      "gd"      gradient descent.
    All three take a strong-Wolfe line search (Nocedal & Wright 3.5-3.6) along their direction,
    with the value and gradient from one reverse sweep (ga.value_and_grad) per trial step.

    Converged when |grad f(x)| <= tol (the 2-norm).  maxiter defaults to max(200, 20 n)
    (newton, bfgs) or 10000 (gd).  Returns an OptimizeResult with
      x, fun, grad        the last iterate (x0's shape and dtype), f and its gradient there
      converged           bool, with a message when False (maxiter reached, a non-finite value
                          or gradient, or a line search that found no decrease)
      iterations          the number of steps taken
      history             the iterates, x0 first;  values, grad_norms: f and |grad f| at each
      message, nfev (value-and-gradient evaluations), nhev (Hessians or Hessian-vector products)
    """
    if method not in ("newton", "bfgs", "gd"):
        raise ValueError(f"minimize: method must be 'newton', 'bfgs' or 'gd', got {method!r}")
    x, shape, dtype = _start(x0, "minimize")
    n = x.size
    if maxiter is None:
        maxiter = {"newton": max(200, 20 * n), "bfgs": max(200, 20 * n), "gd": 10000}[method]
    vg = value_and_grad(lambda xs: f(xs, *args))
    counts = {"nfev": 0, "nhev": 0}

    def evaluate(xf):
        val, g = vg(_shaped(xf, shape, dtype))
        counts["nfev"] += 1
        return float(np.asarray(val)), np.asarray(g, dtype=np.float64).reshape(-1)

    def finish(converged, message):
        return OptimizeResult(x=_shaped(x, shape, dtype), fun=fx,
                              grad=_shaped(g, shape, dtype), converged=converged,
                              iterations=len(history) - 1, history=history, values=values,
                              grad_norms=grad_norms, message=message, **counts)

    fx, g = evaluate(x)
    history, values, grad_norms = [_shaped(x, shape, dtype)], [fx], [float(np.linalg.norm(g))]
    if not (np.isfinite(fx) and _finite(g)):
        return finish(False, "f(x0) or its gradient is not finite")
    H = None                     # bfgs: the inverse-Hessian estimate (None: not yet scaled)
    prev_slope, prev_step = None, None
    for k in range(maxiter):
        gnorm = grad_norms[-1]
        if gnorm <= tol:
            return finish(True, f"converged: |grad f(x)| = {gnorm:.3g} <= tol = {tol:.3g}")
        if method == "newton":
            xs = _shaped(x, shape, dtype)
            if n <= _DENSE_HESSIAN_MAX:
                Hm = np.asarray(hessian(lambda z: f(z, *args))(xs), np.float64).reshape(n, n)
                counts["nhev"] += 1
                if not _finite(Hm):
                    return finish(False, f"the Hessian at iteration {k} is not finite")
                Hm = 0.5 * (Hm + Hm.T)
                p = _newton_direction_dense(Hm, g)
            else:
                # f and its gradient recorded once per outer step; each CG product is one
                # forward sweep through that recording (about half an hvp)
                _, product = linearized_hvp(lambda z: f(z, *args), xs)

                def matvec(v):
                    counts["nhev"] += 1
                    return np.asarray(product(_shaped(v, shape, dtype)), np.float64).reshape(-1)
                p, note = _truncated_cg(matvec, g, maxiter=2 * n)
                if p is None:
                    return finish(False, f"{note} at iteration {k}")
            a1 = 1.0
        elif method == "bfgs":
            p = -g if H is None else -(H @ g)
            a1 = 1.0 if H is not None else min(1.0, 1.0 / gnorm)
        else:
            p = -g
            a1 = 1.0 / gnorm if prev_slope is None else \
                min(1e10, 2.0 * prev_step * prev_slope / float(g @ p))
        slope = float(g @ p)
        if not slope < 0.0:           # not a descent direction (a stale BFGS estimate): reset
            p, H, slope = -g, None, -gnorm * gnorm
            a1 = min(1.0, 1.0 / gnorm)

        def phi(a):
            xa = x + a * p
            fa, ga_ = evaluate(xa)
            if not _finite(ga_):
                fa = np.inf
            return fa, float(ga_ @ p) if np.isfinite(fa) else np.nan, (xa, fa, ga_)

        found = _line_search(phi, fx, slope, a1)
        if found is None:
            return finish(False, f"the line search found no decrease of f at iteration {k} "
                                 f"(|grad f| = {gnorm:.3g}; rounding may limit the accuracy: "
                                 f"try a larger tol)")
        a, (x_new, f_new, g_new) = found
        if method == "bfgs":
            s, y = x_new - x, g_new - g
            sy = float(s @ y)
            if sy > 0.0:
                if H is None:
                    H = np.eye(n) * (sy / float(y @ y))
                # H+ = (I - rho s y^T) H (I - rho y s^T) + rho s s^T,  rho = 1 / (y^T s)
                rho, Hy = 1.0 / sy, H @ y
                H += rho * ((1.0 + rho * float(y @ Hy)) * np.outer(s, s)
                            - np.outer(s, Hy) - np.outer(Hy, s))
        prev_slope, prev_step = slope, a
        x, fx, g = x_new, f_new, g_new
        history.append(_shaped(x, shape, dtype))
        values.append(fx)
        grad_norms.append(float(np.linalg.norm(g)))
    gnorm = grad_norms[-1]
    if gnorm <= tol:
        return finish(True, f"converged: |grad f(x)| = {gnorm:.3g} <= tol = {tol:.3g}")
    return finish(False, f"maxiter = {maxiter} reached with |grad f(x)| = {gnorm:.3g} > "
                         f"tol = {tol:.3g}")


def _newton_direction_dense(H, g):
    """Newton's direction -H^{-1} g by a Cholesky solve when H is positive definite; otherwise
    truncated CG on H, which stops at the first direction of non-positive curvature."""
    c, info = _POTRF(H, lower=False)
    d = np.abs(np.diag(c))
    if info == 0 and d.min() > np.sqrt(_EPS) * d.max():    # cond(H) ~ (max d / min d)^2
        p, _ = _POTRS(c, -g, lower=False)
        return p
    p, _ = _truncated_cg(lambda v: H @ v, g, maxiter=2 * H.shape[0])
    return p
