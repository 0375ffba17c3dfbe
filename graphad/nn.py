"""Small neural networks: modules, layers, activations, initializers and losses.

    model = ga.nn.MLP([64, 128, 10], activation="relu", rng=0)
    loss = ga.nn.cross_entropy(model(X), y)       # integer labels, from logits
    loss.backward()                               # gradients in p.grad for p in model.parameters()

A Module finds its parameters (leaf Tensors with requires_grad=True), constant Tensors (buffers)
and submodules among its attributes, lists, tuples and dicts, in definition order; names are
dotted paths ("layers.0.W").  Layers compute with graphad's primitives, so everything they do is
differentiable in both modes and replays under ga.compile.  `rng` (a numpy.random.Generator or
an int seed) makes initialization, and Dropout's masks, reproducible.
"""
import math
from collections import OrderedDict

import numpy as np

from graphad import _core, _ops
from graphad._core import Tensor
from graphad._nn import P_CROSS_ENTROPY, P_DROPOUT

__all__ = ["Module", "functional_call", "Linear", "MLP", "Sequential", "ReLU", "Tanh", "Sigmoid", "Softplus",
           "Identity", "Dropout", "LayerNorm", "init", "cross_entropy", "mse",
           "binary_cross_entropy_with_logits"]


def _as_rng(rng):
    """A numpy Generator from a Generator, an int seed or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got "
                    f"{type(rng).__name__}")


# ----------------------------------------------------------------------------------------------
# initializers

class init:
    """Weight initializers for a weight of shape (fan_in, fan_out) (graphad's x @ W layout).
    Each returns a new array; `rng` is a numpy Generator or an int seed."""

    @staticmethod
    def _fans(shape):
        shape = tuple(shape)
        if len(shape) == 0:
            raise ValueError("init: a weight needs at least one axis")
        if len(shape) == 1:
            return shape[0], shape[0]
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        return shape[-2] * receptive, shape[-1] * receptive

    @staticmethod
    def xavier_uniform(shape, rng=None, gain=1.0, dtype=np.float64):
        """U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
        fan_in, fan_out = init._fans(shape)
        a = gain * math.sqrt(6.0 / (fan_in + fan_out))
        return _as_rng(rng).uniform(-a, a, size=shape).astype(dtype)

    @staticmethod
    def xavier_normal(shape, rng=None, gain=1.0, dtype=np.float64):
        """N(0, s^2) with s = gain sqrt(2 / (fan_in + fan_out))."""
        fan_in, fan_out = init._fans(shape)
        s = gain * math.sqrt(2.0 / (fan_in + fan_out))
        return (_as_rng(rng).standard_normal(shape) * s).astype(dtype)

    @staticmethod
    def he_uniform(shape, rng=None, gain=math.sqrt(2.0), dtype=np.float64):
        """U(-a, a) with a = gain sqrt(3 / fan_in); the default gain suits ReLU (He et al., 2015)."""
        fan_in, _ = init._fans(shape)
        a = gain * math.sqrt(3.0 / fan_in)
        return _as_rng(rng).uniform(-a, a, size=shape).astype(dtype)

    @staticmethod
    def he_normal(shape, rng=None, gain=math.sqrt(2.0), dtype=np.float64):
        """N(0, s^2) with s = gain / sqrt(fan_in)."""
        fan_in, _ = init._fans(shape)
        return (_as_rng(rng).standard_normal(shape) * (gain / math.sqrt(fan_in))).astype(dtype)

    kaiming_uniform = he_uniform
    kaiming_normal = he_normal

    @staticmethod
    def zeros(shape, rng=None, dtype=np.float64):
        return np.zeros(shape, dtype)


# ----------------------------------------------------------------------------------------------
# Module

class Module:
    """Base class: subclasses set parameters and submodules as attributes and define forward."""

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # -- discovery --------------------------------------------------------------------------
    def _members(self):
        """(name, value) for the Tensors and Modules among the attributes, in definition order,
        looking inside lists, tuples and dicts."""
        for name, v in vars(self).items():
            if name.startswith("_"):
                continue
            yield from _members_of(name, v)

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, v in self._members():
            if isinstance(v, Module):
                yield from v.named_modules(prefix + name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def children(self):
        return [v for _, v in self._members() if isinstance(v, Module)]

    def named_parameters(self, prefix=""):
        """(dotted name, Tensor) for every parameter, each once, in definition order."""
        seen = set()
        for name, t in self._named_tensors(prefix):
            if t.requires_grad and id(t) not in seen:
                seen.add(id(t))
                yield name, t

    def parameters(self):
        return [t for _, t in self.named_parameters()]

    def named_buffers(self, prefix=""):
        """Constant Tensors (no requires_grad) that are part of the module's state."""
        for name, t in self._named_tensors(prefix):
            if not t.requires_grad:
                yield name, t

    def _named_tensors(self, prefix=""):
        for name, v in self._members():
            if isinstance(v, Tensor):
                yield prefix + name, v
            elif isinstance(v, Module):
                yield from v._named_tensors(prefix + name + ".")

    # -- modes ------------------------------------------------------------------------------
    def train(self, mode=True):
        """Training mode (Dropout active) on this module and all submodules; returns self."""
        for _, m in self.named_modules():
            m.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def astype(self, dtype):
        """Convert every parameter and buffer to dtype (in place, keeping the Tensors)."""
        for _, t in self._named_tensors():
            t.data = t.data.astype(dtype)
            t.grad = None
        return self

    # -- state ------------------------------------------------------------------------------
    def state_dict(self):
        """name -> a copy of the value, for every parameter and buffer."""
        return OrderedDict((name, np.array(t.data, copy=True))
                           for name, t in self._named_tensors())

    def param_dict(self):
        """name -> a copy of the value, for every parameter: the tree of arrays that a
        functional training loop differentiates, ga.grad(loss)(params, X, y), with
        functional_call(model, params, X) inside loss; load_state_dict puts it back."""
        return OrderedDict((name, np.array(t.data, copy=True))
                           for name, t in self.named_parameters())

    def load_state_dict(self, state, strict=True):
        """Copy values into the parameters and buffers in place (optimizers keep working)."""
        own = OrderedDict(self._named_tensors())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys "
                           f"{unexpected}")
        for name, t in own.items():
            if name not in state:
                continue
            v = np.asarray(state[name])
            if v.shape != t.data.shape:
                raise ValueError(f"load_state_dict: {name} has shape {t.data.shape} but the "
                                 f"state has {v.shape}")
            if t.data.flags.writeable:
                np.copyto(t.data, v, casting="same_kind")
            else:
                t.data = v.astype(t.data.dtype)
        return self

    def save(self, path):
        """Write the state to an .npz file (NumPy's format; np.load reads it back)."""
        np.savez(path, **self.state_dict())

    def load(self, path):
        """Read a state written by save() into this module."""
        with np.load(path) as f:
            return self.load_state_dict({k: f[k] for k in f.files})

    # -- display ----------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        kids = [(name, v) for name, v in self._members() if isinstance(v, Module)]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not kids:
            return head + ")"
        lines = [head]
        for name, m in kids:
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"


def functional_call(module, params, *args, **kwargs):
    """module(*args, **kwargs) computed with the parameters named in `params` (a dict from
    dotted names, as param_dict() gives, to arrays or Tensors) in place of the module's own, so
    that a transform can differentiate with respect to them.  The module is unchanged after."""
    own = dict(module.named_parameters())
    unknown = [k for k in params if k not in own]
    if unknown:
        raise KeyError(f"functional_call: {type(module).__name__} has no parameters {unknown}")
    saved = []
    try:
        _rebind(module, "", params, saved)
        return module(*args, **kwargs)
    finally:
        for m, name, v in reversed(saved):
            setattr(m, name, v)


def _rebind(module, prefix, params, saved):
    """Set module's attributes holding named parameters to the values in params (recording the
    old ones in saved); containers are rebuilt, submodules rebound in turn."""
    for name, v in list(vars(module).items()):
        if name.startswith("_"):
            continue
        new = _substitute(module, prefix + name, v, params, saved)
        if new is not v:
            saved.append((module, name, v))
            object.__setattr__(module, name, new)


def _substitute(module, name, v, params, saved):
    if isinstance(v, Tensor):
        if name in params:
            x = params[name]
            return x if isinstance(x, Tensor) else _core.as_tensor(x)
        return v
    if isinstance(v, Module):
        _rebind(v, name + ".", params, saved)
        return v
    if isinstance(v, (list, tuple)):
        items = [_substitute(module, f"{name}.{i}", x, params, saved) for i, x in enumerate(v)]
        if all(a is b for a, b in zip(items, v)):
            return v
        return type(v)(items) if type(v) in (list, tuple) else type(v)(*items)
    if isinstance(v, dict):
        items = {k: _substitute(module, f"{name}.{k}", x, params, saved) for k, x in v.items()}
        if all(items[k] is v[k] for k in v):
            return v
        return type(v)(items)
    return v


def _members_of(name, v):
    if isinstance(v, (Tensor, Module)):
        yield name, v
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            yield from _members_of(f"{name}.{i}", x)
    elif isinstance(v, dict):
        for k, x in v.items():
            yield from _members_of(f"{name}.{k}", x)


# ----------------------------------------------------------------------------------------------
# layers

class Linear(Module):
    """y = x @ W + b, with W of shape (in_features, out_features).

    init: a function (shape, rng, dtype) -> array from ga.nn.init; by default PyTorch's,
    U(-1/sqrt(in), 1/sqrt(in)) for W and b.  With an init given, b starts at zero."""

    def __init__(self, in_features, out_features, rng=None, bias=True, dtype=np.float64,
                 init=None):
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = _as_rng(rng)
        shape = (self.in_features, self.out_features)
        if init is None:
            a = 1.0 / math.sqrt(self.in_features) if self.in_features else 0.0
            W = rng.uniform(-a, a, size=shape)
            b = rng.uniform(-a, a, size=self.out_features)
        else:
            W = init(shape, rng=rng, dtype=dtype)
            b = np.zeros(self.out_features)
        self.W = _core.tensor(W, requires_grad=True, dtype=dtype)
        self.b = _core.tensor(b, requires_grad=True, dtype=dtype) if bias else None

    def forward(self, x):
        y = _ops.matmul(x, self.W)
        return y if self.b is None else _ops.add(y, self.b)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.b is not None}"


class _Elementwise(Module):
    fn = None

    def forward(self, x):
        return type(self).fn(x)


class ReLU(_Elementwise):
    fn = staticmethod(_ops.relu)


class Tanh(_Elementwise):
    fn = staticmethod(_ops.tanh)


class Sigmoid(_Elementwise):
    fn = staticmethod(_ops.sigmoid)


class Softplus(_Elementwise):
    fn = staticmethod(_ops.softplus)


class Identity(Module):
    def forward(self, x):
        return x


_ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "softplus": Softplus,
                "identity": Identity, None: Identity}


def _activation(a):
    if isinstance(a, Module):
        return a
    if isinstance(a, type) and issubclass(a, Module):
        return a()
    if a in _ACTIVATIONS:
        return _ACTIVATIONS[a]()
    raise ValueError(f"unknown activation {a!r}; one of {sorted(k for k in _ACTIVATIONS if k)}"
                     f" or a Module")


class Sequential(Module):
    """Modules applied one after the other."""

    def __init__(self, *modules):
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = modules[0]
        self.layers = list(modules)

    def forward(self, x):
        for m in self.layers:
            x = m(x)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def append(self, m):
        self.layers.append(m)
        return self


class MLP(Sequential):
    """A multilayer perceptron: Linear layers of the given sizes with the activation between
    them (none after the last).  sizes = [in, hidden..., out].  Weights start from He
    initialization for ReLU-like activations and Xavier for tanh/sigmoid; biases from zero."""

    def __init__(self, sizes, activation="relu", rng=None, dtype=np.float64):
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs an input and an output size, got {sizes}")
        rng = _as_rng(rng)
        name = activation if isinstance(activation, str) else None
        weight_init = init.xavier_uniform if name in ("tanh", "sigmoid") else init.he_uniform
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(a, b, rng=rng, dtype=dtype, init=weight_init))
            if i < len(sizes) - 2:
                layers.append(_activation(activation))
        super().__init__(*layers)
        self.sizes = sizes

    def extra_repr(self):
        return f"sizes={self.sizes}"


class Dropout(Module):
    """Zeroes each entry with probability `rate` in training mode and scales the rest by
    1 / (1 - rate); the identity in eval mode.  The masks come from rng."""

    def __init__(self, rate=0.5, rng=None):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self._rng = _as_rng(rng)

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            return x
        return _core.apply(P_DROPOUT, (x,), (self.rate, self._rng))[0]

    def extra_repr(self):
        return f"rate={self.rate}"


class LayerNorm(Module):
    """Normalizes over the trailing axes `normalized_shape`: (x - mean) / sqrt(var + eps),
    then scales by gamma and shifts by beta (learned, from ones and zeros)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, dtype=np.float64):
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = float(eps)
        if elementwise_affine:
            self.gamma = _core.tensor(np.ones(self.normalized_shape), True, dtype)
            self.beta = _core.tensor(np.zeros(self.normalized_shape), True, dtype)
        else:
            self.gamma = self.beta = None

    def forward(self, x):
        k = len(self.normalized_shape)
        shape = x.shape if isinstance(x, Tensor) else np.shape(x)
        if tuple(shape[len(shape) - k:]) != self.normalized_shape:
            raise ValueError(f"LayerNorm: input of shape {tuple(shape)} does not end with "
                             f"{self.normalized_shape}")
        axes = tuple(range(-k, 0))
        xc = _ops.subtract(x, _ops.mean(x, axis=axes, keepdims=True))
        var = _ops.mean(_ops.square(xc), axis=axes, keepdims=True)
        y = _ops.divide(xc, _ops.sqrt(_ops.add(var, self.eps)))
        if self.gamma is not None:
            y = _ops.add(_ops.multiply(y, self.gamma), self.beta)
        return y

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


# ----------------------------------------------------------------------------------------------
# losses

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction, name):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(x, reduction):
    if reduction == "mean":
        return _ops.mean(x)
    if reduction == "sum":
        return _ops.sum(x)
    return x


def cross_entropy(logits, labels, reduction="mean"):
    """Cross-entropy of integer class labels under softmax(logits), from the logits:
    l_i = logsumexp(logits_i) - logits_{i, labels_i}, stable for any finite logits.

    logits: (N, C) (or (..., C) with labels of shape (...), or (C,) with a scalar label);
    reduction: "mean" (default), "sum" or "none" (one loss per example)."""
    _check_reduction(reduction, "cross_entropy")
    shape = logits.shape if isinstance(logits, Tensor) else np.shape(logits)
    if not isinstance(labels, Tensor):
        labels = np.asarray(labels)
    lshape = labels.shape
    if len(shape) == 0:
        raise ValueError("cross_entropy: logits need a class axis, got a scalar")
    if tuple(lshape) != tuple(shape[:-1]):
        raise ValueError(f"cross_entropy: logits of shape {tuple(shape)} need labels of shape "
                         f"{tuple(shape[:-1])}, got {tuple(lshape)}")
    if len(shape) != 2:
        logits = _ops.reshape(logits, (-1, shape[-1]))
        labels = _ops.reshape(labels, (-1,)) if isinstance(labels, Tensor) \
            else labels.reshape(-1)
    if reduction == "mean" and int(np.prod(shape[:-1])) == 0:
        raise ValueError("cross_entropy: the mean over an empty batch is undefined")
    out = _core.apply(P_CROSS_ENTROPY, (logits, labels), reduction)
    if reduction == "none" and len(shape) != 2:
        out = _ops.reshape(out, tuple(shape[:-1]))
    return out


def mse(pred, target, reduction="mean"):
    """Mean squared error: mean((pred - target)^2) (or its sum, or the squares)."""
    _check_reduction(reduction, "mse")
    return _reduce(_ops.square(_ops.subtract(pred, target)), reduction)


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """-[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] from the logits x, computed as
    softplus(x) - x y (stable for any finite x); targets y in [0, 1]."""
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    return _reduce(_ops.subtract(_ops.softplus(logits), _ops.multiply(logits, targets)),
                   reduction)
