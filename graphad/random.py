"""ga.random: reparameterized random samples, and the two Monte Carlo gradient estimators.

    rng = np.random.default_rng(0)
    z = ga.random.normal(mu, sigma, size=1000, rng=rng)      # mu + sigma * eps, eps ~ N(0, 1)
    loss = ga.mean(z ** 2)                                    # d loss / d mu, d loss / d sigma
    u = ga.random.uniform(low, high, size=(10, 3), rng=rng)   # low + (high - low) * eps
    p = ga.random.sphere(3, size=500, rng=rng)                # 500 points uniform on S^2

The course's "random functions": a sample is written as a deterministic, differentiable function
of the distribution's parameters and of noise that does not depend on them (the
reparameterization trick), so that d/dtheta E[f(x)] = E[d/dtheta f(x(theta, eps))], the
pathwise estimator.  The noise eps is drawn inside a node without a derivative (graphad's
`nondiff` primitive), so that

  * gradients reach mu and sigma (low and high) and never the noise, in every mode (grad,
    jacfwd, hessian, ...);
  * a ga.compile replay draws FRESH noise on every call (the draw is part of the program, like
    nn.Dropout's mask), from the same Generator, whose state advances call by call;
  * the same seed gives the same samples; in float64 the numbers equal NumPy's
    `np.random.default_rng(seed).normal(mu, sigma, size)` (and `.uniform(low, high, size)`),
    drawn in the same order (float32 samples come from NumPy's float32 streams,
    `standard_normal(dtype=np.float32)` and `random(dtype=np.float32)`).

Seeding: `rng` is a numpy.random.Generator, or None for graphad's default Generator, which is
seeded from fresh OS entropy when graphad is imported and can be re-seeded with
`ga.random.seed(s)` (in place: compiled functions that draw from it see the new seed).  An int
is refused, as it would silently mean different things eagerly (the same draw on every call)
and compiled (one Generator made at trace time, advancing): make the Generator yourself,
`np.random.default_rng(seed)`, and pass it.

Shapes follow NumPy's Generator: the sample has the parameters' broadcast shape, or `size`
when given, which the parameters must broadcast to.  dtype: float32 parameters give float32
samples (and gradients); otherwise float64.

The estimators compare the pathwise gradient with the score-function (REINFORCE, likelihood
ratio) gradient, d/dtheta E[f(x)] = E[f(x) d/dtheta log p(x; theta)], which needs only samples
and the log-density but usually has a much larger variance:

    est = ga.random.reparam_grad(f, (mu, sigma), n=1000, rng=rng)
    est = ga.random.score_function_grad(f, (mu, sigma), n=1000, rng=rng, baseline="mean")
    est.grad, est.stderr, est.variance, est.samples     # one entry per parameter
"""
import numpy as np

from graphad import _core, _elementwise
from graphad._core import Tensor
from graphad._prims import stacked

__all__ = ["normal", "uniform", "sphere", "seed", "default_generator", "normal_logpdf",
           "GradientEstimate", "reparam_grad", "score_function_grad"]

_DEFAULT = np.random.default_rng()


def seed(s):
    """Re-seed graphad's default Generator (the one rng=None draws from) in place."""
    _DEFAULT.bit_generator.state = type(_DEFAULT.bit_generator)(s).state


def default_generator():
    """graphad's default numpy Generator (used where rng=None)."""
    return _DEFAULT


def _generator(rng, name):
    if rng is None:
        return _DEFAULT
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        raise TypeError(f"{name}: rng must be a numpy.random.Generator or None, got the int "
                        f"{rng}; pass np.random.default_rng({rng}) (a Generator keeps its state "
                        f"from call to call, also in a compiled function)")
    raise TypeError(f"{name}: rng must be a numpy.random.Generator or None, got "
                    f"{type(rng).__name__}")


class _Draw:
    """The noise of one sample, drawn when the node runs (eagerly, and on every compiled
    replay).  A class rather than a closure, so that compiled functions pickle."""
    __slots__ = ("kind", "shape", "dtype", "rng")

    def __init__(self, kind, shape, dtype, rng):
        self.kind, self.shape, self.dtype, self.rng = kind, shape, dtype, rng

    def __call__(self):
        if self.kind == "normal":
            return self.rng.standard_normal(self.shape, dtype=self.dtype)
        if self.kind == "uniform":
            return self.rng.random(self.shape, dtype=self.dtype)
        g = self.rng.standard_normal(self.shape, dtype=self.dtype)       # sphere
        return g / np.sqrt(np.einsum("...i,...i->...", g, g))[..., None]

    def __repr__(self):
        return f"<{self.kind} noise of shape {self.shape}, {np.dtype(self.dtype).name}>"

    def __reduce__(self):
        return (_Draw, (self.kind, self.shape, self.dtype, self.rng))


def _noise(kind, shape, dtype, rng):
    """A constant Tensor of noise made by a node without a derivative (a compiled program
    reruns the draw)."""
    return _core.apply(_elementwise.P_NONDIFF, (), _Draw(kind, shape, dtype, rng))


def _param(x, name, what):
    """A parameter as graphad takes it (a Tensor, or an array), checked to be real."""
    if type(x) is float or type(x) is int:
        return float(x)            # a Python number stays weak: float32 parameters keep float32
    x = stacked(x)
    if type(x) is not Tensor:
        x = np.asarray(x)
    if np.dtype(x.dtype).kind == "c":
        raise TypeError(f"{name}: complex {what} (dtype {x.dtype}) is not supported")
    if np.dtype(x.dtype).kind not in "biuf":
        raise TypeError(f"{name}: {what} must be real numbers, got dtype {x.dtype}")
    return x


def _raw(x):
    return x.data if type(x) is Tensor else x


def _sample_shape(name, size, *params):
    shape = np.broadcast_shapes(*[np.shape(_raw(p)) for p in params])
    if size is None:
        return shape
    size = (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
    try:
        ok = np.broadcast_shapes(shape, size) == size
    except ValueError:
        ok = False
    if not ok:
        shapes = " and ".join(str(np.shape(_raw(p))) for p in params)
        raise ValueError(f"{name}: parameters of shapes {shapes} do not broadcast to size {size}")
    return size


def _sample_dtype(*params):
    """float32 parameters give float32 samples; any other (float16, integers, a byte-swapped
    float64) float64: the dtypes of NumPy's Generator streams."""
    dt = np.result_type(*[_raw(p) for p in params])
    return np.dtype(np.float32) if dt == np.float32 else np.dtype(np.float64)


def _in_dtype(x, dt):
    """A parameter in the samples' dtype (a float16 low is not to round high - low), a Python
    number left weak."""
    if type(x) is float or np.dtype(_raw(x).dtype) == dt:
        return x
    return _elementwise.astype(x, dt)


def normal(mu=0.0, sigma=1.0, size=None, rng=None):
    """Samples of N(mu, sigma^2) as mu + sigma * eps, eps ~ N(0, 1) drawn from rng: a Tensor
    differentiable with respect to mu and sigma.  NumPy's Generator.normal(loc, scale, size)
    with reparameterized gradients (the same numbers for the same seed); sigma < 0 raises
    ValueError as in NumPy."""
    mu, sigma = _param(mu, "normal", "mu"), _param(sigma, "normal", "sigma")
    if np.any(_raw(sigma) < 0):
        raise ValueError("normal: sigma < 0")
    shape = _sample_shape("normal", size, mu, sigma)
    dt = _sample_dtype(mu, sigma)
    mu, sigma = _in_dtype(mu, dt), _in_dtype(sigma, dt)
    eps = _noise("normal", shape, dt, _generator(rng, "normal"))
    # x = mu + sigma eps;  dx = dmu + eps dsigma
    return mu + sigma * eps


def uniform(low=0.0, high=1.0, size=None, rng=None):
    """Samples of U[low, high) as low + (high - low) * eps, eps ~ U[0, 1) drawn from rng: a
    Tensor differentiable with respect to low and high.  NumPy's Generator.uniform(low, high,
    size) with reparameterized gradients (the same numbers for the same seed); high < low
    raises ValueError as in NumPy."""
    low, high = _param(low, "uniform", "low"), _param(high, "uniform", "high")
    with np.errstate(invalid="ignore"):
        if np.any(np.subtract(_raw(high), _raw(low)) < 0):
            raise ValueError("uniform: high - low < 0 (NumPy's Generator.uniform refuses it)")
    shape = _sample_shape("uniform", size, low, high)
    dt = _sample_dtype(low, high)
    low, high = _in_dtype(low, dt), _in_dtype(high, dt)
    eps = _noise("uniform", shape, dt, _generator(rng, "uniform"))
    # x = low + (high - low) eps;  dx = (1 - eps) dlow + eps dhigh
    return low + (high - low) * eps


def sphere(n, size=None, rng=None, dtype=np.float64):
    """Points uniform on the unit sphere S^(n-1) in R^n, shape size + (n,): normalized Gaussian
    vectors g / |g| (the Gaussian is rotation invariant, so its direction is uniform).  A
    constant Tensor (no parameters to differentiate), drawn afresh by every compiled replay."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"sphere: n must be a positive integer, got {n!r}")
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and not dtype.isnative:          # '>f8': the same numbers, native
        dtype = dtype.newbyteorder("=")
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"sphere: dtype must be float32 or float64, got {dtype}")
    if size is None:
        size = ()
    elif isinstance(size, (int, np.integer)):
        size = (int(size),)
    shape = tuple(int(s) for s in size) + (int(n),)
    return _noise("sphere", shape, dtype, _generator(rng, "sphere"))


def normal_logpdf(x, mu, sigma):
    """log N(x; mu, sigma^2), elementwise, differentiable in x, mu and sigma."""
    from graphad import _ops
    x, mu = _param(x, "normal_logpdf", "x"), _param(mu, "normal_logpdf", "mu")
    sigma = _param(sigma, "normal_logpdf", "sigma")
    r = _ops.divide(_ops.subtract(x, mu), sigma)      # graphad's ops: named shape errors
    return _ops.subtract(_ops.multiply(_ops.square(r), -0.5),
                         _ops.add(_ops.log(sigma), 0.5 * np.log(2.0 * np.pi)))


def _uniform_logpdf(x, low, high):
    raise ValueError("score_function_grad: the uniform distribution's support depends on low "
                     "and high, so the score-function estimator is biased for them; use "
                     "reparam_grad (the pathwise estimator), or pass your own (sample, logpdf)")


# ----------------------------------------------------------------------------------------------
# Monte Carlo gradient estimators

class GradientEstimate:
    """A Monte Carlo estimate of the gradient of E[f(x)] with respect to each parameter.

      grad      the estimate (the mean of the per-sample estimates), one array per parameter
      stderr    its standard error, std(samples) / sqrt(n)
      variance  the per-sample variance (ddof=1): what the number of samples divides
      samples   the n per-sample estimates, shape (n,) + the parameter's shape
      value     the estimate of E[f(x)] itself
    """

    def __init__(self, samples, value):
        self.samples = tuple(samples)
        n = len(self.samples[0])
        self.grad = tuple(s.mean(axis=0) for s in self.samples)
        self.variance = tuple(s.var(axis=0, ddof=1) for s in self.samples)
        self.stderr = tuple(np.sqrt(v / n) for v in self.variance)
        self.value = value

    def __repr__(self):
        return (f"GradientEstimate(grad={self.grad}, stderr={self.stderr}, "
                f"n={len(self.samples[0])})")


_SAMPLERS = {"normal": normal, "uniform": uniform}
_LOGPDFS = {"normal": normal_logpdf, "uniform": _uniform_logpdf}


def _per_sample_params(params, n, name):
    """Each parameter repeated once per sample: shape (n,) + (1,) * k + p.shape, aligned with
    the samples' shape (n,) + event, so that the gradient of a sum over the samples with
    respect to the repeated parameter holds each sample's own gradient."""
    # real parameters, in the samples' dtype (a Python number weak, as in normal(mu, 0.5))
    params = [_param(p, name, "parameter") for p in params]
    dt = _sample_dtype(*params)
    params = [np.asarray(p.numpy() if isinstance(p, Tensor) else p, dtype=dt) for p in params]
    event = np.broadcast_shapes(*[p.shape for p in params])
    rep = [np.broadcast_to(p.reshape((1,) * (len(event) - p.ndim + 1) + p.shape),
                           (n,) + (1,) * (len(event) - p.ndim) + p.shape).copy()
           for p in params]
    return params, event, rep


def _per_sample_values(fx, n, name):
    fx = fx.numpy() if isinstance(fx, Tensor) else np.asarray(fx)
    if fx.shape != (n,):
        raise ValueError(f"{name}: f must map the batch of n = {n} samples (leading axis) to "
                         f"n values, shape ({n},); got shape {fx.shape}")
    return fx


def reparam_grad(f, params, n, dist="normal", rng=None):
    """The pathwise (reparameterization) estimate of d/dtheta E_{x ~ p(theta)}[f(x)].

    f        maps a batch of samples x, shape (n,) + event, to their values, shape (n,), with
             graphad operations; value i must depend on x[i] only (the estimator reads each
             sample's own gradient from one reverse sweep)
    params   the distribution's parameters theta (a tuple); event = their broadcast shape
    dist     "normal" (params (mu, sigma)), "uniform" (params (low, high)), or a function
             sample(*params, size=, rng=) that builds the samples from the parameters with
             graphad operations (e.g. lambda m, s, size, rng: ga.exp(ga.random.normal(m, s,
             size, rng)) for a log-normal)
    Returns a GradientEstimate: per-sample estimates d f(x(theta, eps_i)) / d theta.
    """
    from graphad.transforms import value_and_grad
    sample = _SAMPLERS[dist] if isinstance(dist, str) else dist
    rng = _generator(rng, "reparam_grad")
    params, event, rep = _per_sample_params(params, n, "reparam_grad")
    values = {}

    def total(*ps):
        fx = f(sample(*ps, size=(n,) + event, rng=rng))
        values["f"] = fx
        return fx.sum() if isinstance(fx, Tensor) else np.sum(fx)

    _, grads = value_and_grad(total, argnums=tuple(range(len(rep))))(*rep)
    fx = _per_sample_values(values["f"], n, "reparam_grad")
    return GradientEstimate([np.asarray(g).reshape((n,) + p.shape)
                             for g, p in zip(grads, params)], fx.mean())


def score_function_grad(f, params, n, dist="normal", rng=None, baseline=None):
    """The score-function (REINFORCE, likelihood-ratio) estimate of d/dtheta E_{x ~ p(theta)}
    [f(x)] = E[(f(x) - b) d/dtheta log p(x; theta)]: f is only evaluated, never differentiated.

    f         maps a batch of samples x, shape (n,) + event, to their values, shape (n,)
              (a NumPy or graphad function: it sees plain arrays)
    params    the distribution's parameters theta (a tuple); event = their broadcast shape
    dist      "normal" (params (mu, sigma), independent entries), or a pair (sample, logpdf):
              sample(*params, size=, rng=) draws the samples (an array or Tensor of shape
              size), logpdf(x, *params) their log-density elementwise (graphad operations;
              it is summed over the event axes)
    baseline  None (b = 0), a number, or "mean": for sample i the mean of f over the OTHER
              samples (leave-one-out, so the estimate stays unbiased) -- a control variate
              that removes most of the variance that a large E[f] causes
    Returns a GradientEstimate.
    """
    from graphad.transforms import grad
    if isinstance(dist, str):
        sample, logpdf = _SAMPLERS[dist], _LOGPDFS[dist]
    else:
        sample, logpdf = dist
    rng = _generator(rng, "score_function_grad")
    params, event, rep = _per_sample_params(params, n, "score_function_grad")
    with _core.no_grad():
        x = sample(*params, size=(n,) + event, rng=rng)
    x = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    with _core.no_grad():
        fx = _per_sample_values(f(x), n, "score_function_grad")
    if baseline is None:
        b = 0.0
    elif isinstance(baseline, str):
        if baseline != "mean":
            raise ValueError(f"score_function_grad: baseline must be None, a number or "
                             f"'mean', got {baseline!r}")
        if n < 2:
            raise ValueError("score_function_grad: baseline='mean' needs n >= 2 samples")
        b = (fx.sum() - fx) / (n - 1)
    else:
        b = float(baseline)
    # the score of sample i: d/dtheta log p(x_i; theta), one reverse sweep for all samples
    scores = grad(lambda *ps: logpdf(x, *ps).sum(), argnums=tuple(range(len(rep))))(*rep)
    w = fx - b
    samples = []
    for s, p in zip(scores, params):
        s = np.asarray(s).reshape((n,) + p.shape)
        samples.append(w.reshape((n,) + (1,) * p.ndim).astype(s.dtype) * s)
    return GradientEstimate(samples, fx.mean())
