"""One adapter module per peer engine.

Each module defines LABEL (the name in tables), MODULES (what it imports), `available(ctx)`
(None when usable, else the reason it is skipped) and, for every workload it supports, a function
of the workload's name that takes the workload's problem (NumPy arrays) and returns callables.
A workload asks `ctx.peer(name)`; a peer that cannot run is recorded once as skipped, with why.
"""
import importlib

PEERS = ("numpy_hand", "torch_eager", "torch_func", "torch_compile", "jax_xla",
         "hips_autograd", "torchdiffeq_peer")


def load(name):
    return importlib.import_module(f"graphad.bench.peers.{name}")


def missing(modules):
    """The first of `modules` that does not import (its error as text), else None."""
    for m in modules:
        try:
            importlib.import_module(m)
        except Exception as e:                       # not installed, or broken
            return f"{m} not importable ({type(e).__name__}: {e})"
    return None


def op_chain(y, n, sin, tanh):
    """The overhead workload's chain in any engine: y * 1.0001, sin, + 0.5, tanh, in turn."""
    for i in range(n):
        k = i & 3
        if k == 0:
            y = y * 1.0001
        elif k == 1:
            y = sin(y)
        elif k == 2:
            y = y + 0.5
        else:
            y = tanh(y)
    return y


def chain_by_hand(y, n, sin, cos, tanh, one):
    """op_chain forward, keeping sin's input and tanh's output, then its backward by hand:
    d op_chain / dy (one(y) is the seed).  NumPy by hand on arrays, the floor on Python floats."""
    saved = []
    for i in range(n):
        k = i & 3
        if k == 0:
            y = y * 1.0001
        elif k == 1:
            saved.append(y)
            y = sin(y)
        elif k == 2:
            y = y + 0.5
        else:
            y = tanh(y)
            saved.append(y)
    g = one(y)
    for i in range(n - 1, -1, -1):
        k = i & 3
        if k == 0:
            g = g * 1.0001
        elif k == 1:
            g = g * cos(saved.pop())
        elif k == 3:
            t = saved.pop()
            g = g * (1 - t * t)
    return g
