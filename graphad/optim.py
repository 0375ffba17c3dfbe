"""Optimizers and learning-rate schedules (PyTorch's conventions).

    opt = ga.optim.Adam(model.parameters(), lr=1e-3)
    sched = ga.optim.CosineAnnealing(opt, t_max=100)
    for X, y in batches:
        opt.zero_grad()
        ga.nn.cross_entropy(model(X), y).backward()
        opt.step()
    sched.step()

`step()` updates each parameter's value in place with one C kernel per parameter
(csrc/ga_kernels.c: ga_sgd_*, ga_adam_*): no graph nodes, no temporaries.  Parameters whose
.grad is None are skipped.  Inside ga.compile, step(), zero_grad() and a schedule's step() are
recorded as effects and run again on every replay.
"""
import math

import numpy as np

from graphad import _kernels as K
from graphad._core import Tensor
from graphad.compile import effect

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRScheduler", "StepLR", "ExponentialLR",
           "CosineAnnealing", "CosineAnnealingLR"]


class Optimizer:
    """Base class: parameter groups (dicts with 'params' and hyperparameters), per-parameter
    state, zero_grad(), step(), state_dict() / load_state_dict()."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        for g in groups:
            g = dict(g)
            g["params"] = list(g["params"])
            for p in g["params"]:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise TypeError(f"{type(self).__name__}: parameters must be Tensors with "
                                    f"requires_grad=True, got {type(p).__name__}")
                if not p.is_leaf:
                    raise ValueError(f"{type(self).__name__}: can only optimize leaf Tensors")
            for k, v in self.defaults.items():
                g.setdefault(k, v)
            self.param_groups.append(g)
        self.state = {}              # id(param) -> dict of arrays and counters

    def _params(self):
        for g in self.param_groups:
            for p in g["params"]:
                yield g, p

    def zero_grad(self):
        """Clear every parameter's gradient (set it to None)."""
        effect(self._zero_grad)

    def _zero_grad(self):
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def step(self):
        """One update of every parameter that has a gradient, in place."""
        effect(self._step)

    def _step(self):
        raise NotImplementedError

    @staticmethod
    def _grad(p):
        g = p.grad
        if type(g) is Tensor:
            g = g.data
        g, in_place = K.update_operands(g, p.data)
        if not in_place:
            p.data = np.array(p.data, copy=True)
        return g

    # -- state ------------------------------------------------------------------------------
    def state_dict(self):
        """{'state': {index: {name: value}}, 'param_groups': [hyperparameters, 'params':
        indices]}, parameters numbered in order across groups; arrays are copies."""
        index = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = ids
            groups.append(d)
        state = {}
        for g, p in self._params():
            s = self.state.get(id(p))
            if s:
                state[index[id(p)]] = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray)
                                           else v) for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("load_state_dict: the state's parameter groups do not match this "
                             "optimizer's")
        params = [p for _, p in self._params()]
        for g, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    g[k] = v
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[id(p)] = {k: (np.array(v, dtype=p.data.dtype, copy=True)
                                     if isinstance(v, np.ndarray) and v.ndim else
                                     (int(v) if k == "step" else v)) for k, v in s.items()}

    def save(self, path):
        """Write the state to an .npz file (flattened keys; load() reads it back)."""
        sd = self.state_dict()
        flat = {}
        for gi, g in enumerate(sd["param_groups"]):
            for k, v in g.items():
                flat[f"group.{gi}.{k}"] = np.asarray(v)
        for i, s in sd["state"].items():
            for k, v in s.items():
                flat[f"state.{i}.{k}"] = np.asarray(v)
        np.savez(path, **flat)

    def load(self, path):
        sd = {"state": {}, "param_groups": [dict() for _ in self.param_groups]}
        with np.load(path) as f:
            for key in f.files:
                kind, i, name = key.split(".", 2)
                v = f[key]
                v = v.item() if v.ndim == 0 else v
                if kind == "group":
                    if name == "params":
                        v = [int(x) for x in np.atleast_1d(v)]
                    elif isinstance(v, np.ndarray):
                        v = tuple(v.tolist())
                    sd["param_groups"][int(i)][name] = v
                else:
                    sd["state"].setdefault(int(i), {})[name] = v
        self.load_state_dict(sd)

    def __repr__(self):
        hp = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({hp})"


class SGD(Optimizer):
    """Stochastic gradient descent, with momentum (PyTorch's form: buf = momentum buf +
    (1 - dampening) g; Nesterov: g + momentum buf) and L2 weight decay (g + wd p)."""

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
                 dampening=0.0):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, "
                             f"{momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and no dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov,
                                      weight_decay=weight_decay, dampening=dampening))

    def _step(self):
        for g in self.param_groups:
            lr, mu = float(g["lr"]), float(g["momentum"])
            damp, wd = float(g["dampening"]), float(g["weight_decay"])
            nesterov = bool(g["nesterov"])
            for p in g["params"]:
                if p.grad is None:
                    continue
                grad = self._grad(p)
                buf, first = None, False
                if mu != 0.0:
                    s = self.state.get(id(p))
                    if s is None:
                        s = self.state[id(p)] = {"momentum_buffer": np.empty_like(p.data)}
                        first = True
                    buf = s["momentum_buffer"]
                K.sgd_update(p.data, grad, buf, lr, mu, damp, wd, nesterov, first)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction; weight_decay adds wd p to the gradient
    (L2).  AdamW decouples it: p *= 1 - lr wd before the Adam step."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        b1, b2 = betas
        if lr < 0 or not (0 <= b1 < 1 and 0 <= b2 < 1) or eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: invalid hyperparameters lr={lr}, "
                             f"betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=(float(b1), float(b2)), eps=eps,
                                      weight_decay=weight_decay))

    def _step(self):
        for g in self.param_groups:
            lr = float(g["lr"])
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                grad = self._grad(p)
                s = self.state.get(id(p))
                if s is None:
                    s = self.state[id(p)] = {"step": 0, "exp_avg": np.zeros_like(p.data),
                                             "exp_avg_sq": np.zeros_like(p.data)}
                s["step"] += 1
                t = s["step"]
                K.adam_update(p.data, grad, s["exp_avg"], s["exp_avg_sq"], lr, b1, b2,
                              float(g["eps"]), float(g["weight_decay"]), self.decoupled,
                              1.0 - b1 ** t, 1.0 - b2 ** t)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019); weight_decay 0.01."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


# ----------------------------------------------------------------------------------------------
# learning-rate schedules: call step() once per epoch (or per iteration) after opt.step()

class LRScheduler:
    """Sets each group's lr to base_lr * factor(epoch); `last_epoch` counts step() calls."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0

    def factor(self, epoch):
        raise NotImplementedError

    def lr_at(self, base, epoch):
        return base * self.factor(epoch)

    def step(self):
        effect(self._step)

    def _step(self):
        self.last_epoch += 1
        self._set()

    def _set(self):
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(base, self.last_epoch)

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = list(state["base_lrs"])
        self._set()


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size, self.gamma = int(step_size), float(gamma)

    def factor(self, epoch):
        return self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** epoch."""

    def __init__(self, optimizer, gamma):
        super().__init__(optimizer)
        self.gamma = float(gamma)

    def factor(self, epoch):
        return self.gamma ** epoch


class CosineAnnealing(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / t_max)) / 2, constant at eta_min
    after t_max epochs (SGDR without restarts)."""

    def __init__(self, optimizer, t_max, eta_min=0.0):
        super().__init__(optimizer)
        self.t_max, self.eta_min = int(t_max), float(eta_min)

    def lr_at(self, base, epoch):
        e = min(epoch, self.t_max)
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * e / self.t_max)) / 2


CosineAnnealingLR = CosineAnnealing
