"""graphad._arena: freed arenas of Python's small-object allocator are kept (up to a limit) and
handed to the next graph instead of being faulted in afresh."""
import os
import subprocess
import sys

import numpy as np
import pytest

import graphad as ga
from graphad import _arena

LIMIT = int(float(os.environ.get("GRAPHAD_ARENA_CACHE_MB", "64")) * (1 << 20))
needs_cache = pytest.mark.skipif(
    LIMIT == 0 or os.environ.get("PYTHONMALLOC", "") in ("malloc", "malloc_debug"),
    reason="GRAPHAD_ARENA_CACHE_MB=0, or no small-object allocator (PYTHONMALLOC=malloc)")


def _long_chain_gradient(n):
    x = ga.tensor(0.3, requires_grad=True)
    y = x
    for i in range(n):
        y = ga.sin(y) if i % 2 else y * 1.0001
    y.backward()
    return float(x.grad)


@needs_cache
def test_a_second_large_graph_reuses_the_first_ones_arenas():
    installed, _, limit, _, _ = _arena.stats()
    assert installed and limit == LIMIT
    want = _long_chain_gradient(60_000)
    _, _, _, hits0, misses0 = _arena.stats()
    got = _long_chain_gradient(60_000)        # about 18 MiB of nodes, built and freed again
    _, held, _, hits1, misses1 = _arena.stats()
    assert got == want
    assert hits1 - hits0 >= 8                 # the second graph ran on the first one's blocks
    assert misses1 - misses0 <= (hits1 - hits0) // 4
    assert 0 <= held <= limit


@needs_cache
def test_a_lower_limit_returns_the_blocks_over_it():
    _long_chain_gradient(30_000)
    try:
        _arena.install(0)
        assert _arena.stats()[1] == 0
        _long_chain_gradient(30_000)          # frees pass through while the limit is 0
        assert _arena.stats()[1] == 0
    finally:
        _arena.install(LIMIT / (1 << 20))
    assert _arena.stats()[2] == LIMIT


def test_the_cache_can_be_switched_off_before_import():
    env = dict(os.environ, GRAPHAD_ARENA_CACHE_MB="0")
    out = subprocess.run([sys.executable, "-c", "import graphad as ga; print(ga._arena.stats())"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "(False, 0, 0, 0, 0)"


def test_values_are_unchanged_with_the_cache():
    """The same gradients with and without the cache (a fresh interpreter without it)."""
    code = ("import graphad as ga, numpy as np\n"
            "x = ga.tensor(np.linspace(-1, 1, 7), requires_grad=True)\n"
            "y = x\n"
            "for i in range(3000): y = ga.tanh(y) * 1.01\n"
            "ga.sum(y).backward(); print(repr(x.grad.tolist()))\n")
    env = dict(os.environ, GRAPHAD_ARENA_CACHE_MB="0")
    without = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout
    x = ga.tensor(np.linspace(-1, 1, 7), requires_grad=True)
    y = x
    for _ in range(3000):
        y = ga.tanh(y) * 1.01
    ga.sum(y).backward()
    assert repr(x.grad.tolist()) == without.strip()
