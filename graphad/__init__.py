"""graphad: automatic differentiation on computational graphs, with a Cython engine.

    import graphad as ga
    x = ga.tensor([1.0, 2.0], requires_grad=True)
    y = (ga.sin(x) * x).sum()
    y.backward()          # x.grad == cos(x) * x + sin(x)
"""
# ruff: noqa: F401  (this module re-exports the public API)
import os as _os

from graphad import _arena
from graphad import _core, _ops, _interop

# freed arenas kept for the next graph instead of being faulted in afresh (see _arena)
_arena.install(float(_os.environ.get("GRAPHAD_ARENA_CACHE_MB", "64")))
from graphad._core import (Tensor, as_tensor, is_debug, is_grad_enabled, no_grad, set_debug,
                           set_grad_enabled, tensor)
from graphad._ops import *  # noqa: F401,F403  (the public array functions; _ops.__all__)
from graphad.checking import GradientCheckError, check_grad, finite_diff
from graphad.transforms import (grad, hessian, hvp, jacfwd, jacobian, jacrev, jvp,
                                value_and_grad, vjp)
from graphad import dual  # ga.dual.sin, ...: the dual-number math functions
from graphad.dual import Dual
from graphad.custom import custom_jvp, custom_vjp
from graphad.compile import compile  # noqa: A001  (ga.compile shadows the builtin on purpose)
from graphad.ode import odeint
from graphad import linalg, nn, optim, optimize
from graphad import functional, random

_core.install_ops(_ops, _interop)

__version__ = "0.1.0"


def zero_grad(params):
    """Clear .grad of every tensor in params."""
    for p in params:
        p.zero_grad()
