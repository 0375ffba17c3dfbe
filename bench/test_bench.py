"""pytest-benchmark entry points for the suite's workloads, graphad's side of each (the peers are
compared by `python -m graphad bench`; these track graphad across commits):

    python -m pytest bench/ --benchmark-only                       # run and print
    python -m pytest bench/ --benchmark-only --benchmark-autosave  # save .benchmarks/
    python -m pytest bench/ --benchmark-only --benchmark-compare   # against the last save

The problems are built by the same graphad.bench modules `python -m graphad bench` runs, at its
--quick sizes; one BLAS thread. Not collected by the normal test run (testpaths = tests).
"""
import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

from graphad.bench import (array_api, jacobian, linalg, odeint, overhead,  # noqa: E402
                           second_order, train_step)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    from graphad.bench._timing import pinned
    with pinned(1):
        yield


def _run(benchmark, group, fn):
    benchmark.group = group
    fn()                                             # warm-up (first touches, tracing)
    benchmark(fn)


@pytest.mark.parametrize("shape", [(), (1000,)], ids=["scalar", "vector1000"])
def test_chain_1000_ops(benchmark, shape):
    _run(benchmark, "overhead", overhead.graphad_chain(np.full(shape, 0.3), 1000))


def test_mlp_loss_and_grads(benchmark):
    p = overhead.make_mlp((64, 128, 128, 10), 128)
    _run(benchmark, "overhead", overhead.graphad_mlp_grad(p))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("net", train_step.NETS[:3], ids=lambda n: "-".join(map(str, n[0])))
def test_train_step(benchmark, net, dtype, compiled):
    p = overhead.make_mlp(net[0], net[1], dtype)
    _run(benchmark, "train_step", train_step.graphad_step(p, compiled))


@pytest.mark.parametrize("mode", ["jacfwd", "jacrev"])
@pytest.mark.parametrize("n,m", [(1, 100), (100, 1), (100, 100)])
def test_jacobian(benchmark, n, m, mode):
    _run(benchmark, "jacobian", jacobian.graphad_cases(jacobian.problem(n, m))[mode])


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("what", ["grad", "hvp", "hessian"])
def test_second_order(benchmark, what, compiled):
    _run(benchmark, "second_order",
         second_order.graphad_cases(second_order.problem(), compiled)[what])


@pytest.mark.parametrize("own", [True, False], ids=["own", "blas"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mkn", [(10, 256, 10), (128, 128, 128), (500, 500, 500)],
                         ids=lambda s: "x".join(map(str, s)))
def test_gemm(benchmark, mkn, dtype, own):
    from graphad import _kernels as K
    if own and not K.own_gemm_available():
        pytest.skip("the own GEMM needs AVX-512")
    m, k, n = mkn
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s).astype(dtype) for s in ((m, k), (k, n)))
    prev = K.set_own_gemm(own)
    try:
        _run(benchmark, "gemm", lambda: K.matmul(a, b))
    finally:
        K.set_own_gemm(prev)


@pytest.mark.parametrize("kind", linalg.KINDS)
@pytest.mark.parametrize("n", [10, 100])
def test_linalg_grad(benchmark, n, kind):
    _run(benchmark, "linalg", linalg.graphad_cases(linalg.problem(n))[kind])


@pytest.mark.parametrize("adjoint", [True, False], ids=["adjoint", "direct"])
def test_odeint_grad(benchmark, adjoint):
    _run(benchmark, "odeint", odeint.graphad_grad(odeint.problem(), 100, adjoint))


@pytest.mark.parametrize("phase", ["forward", "backward"])
@pytest.mark.parametrize("kind", array_api.KINDS)
def test_array_api(benchmark, kind, phase):
    _run(benchmark, "array_api", array_api.graphad_cases(array_api.problem())[kind][phase])
