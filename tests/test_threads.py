"""Engine state per thread (graphad/_core.pyx): grad mode, no_grad, recording, eager forward mode
and graphad.compile's tracing belong to the thread that set them, so graphs built in different
threads are differentiated concurrently with correct results.  (The kernels release the GIL, so
the threads really interleave inside sweeps.)  A Tensor must not be mutated from two threads at
once: each job here owns its graph."""
import threading
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

import graphad as ga

_W = np.random.default_rng(0).standard_normal((64, 64)) / 8


def _grad_job(rng):
    x = rng.standard_normal(256)
    g = ga.grad(lambda v: ga.sum(ga.sin(v) * v))(x)
    return np.allclose(g, np.cos(x) * x + np.sin(x), rtol=1e-12, atol=1e-12)


def _backward_job(rng):
    x = rng.standard_normal(64)
    W = ga.tensor(_W, requires_grad=True)
    ga.sum(ga.tanh(W @ x)).backward()
    want = np.outer(1 - np.tanh(_W @ x) ** 2, x)
    return np.allclose(W.grad, want, rtol=1e-12, atol=1e-12)


def _jvp_job(rng):
    x, v = rng.standard_normal(128), rng.standard_normal(128)
    _, t = ga.jvp(lambda a: ga.exp(a) * a, (x,), (v,))       # eager forward mode
    return np.allclose(t, (np.exp(x) * x + np.exp(x)) * v, rtol=1e-12, atol=1e-12)


def _hvp_job(rng):
    x, v = rng.standard_normal(32), rng.standard_normal(32)
    _, hv = ga.hvp(lambda a: ga.sum(a ** 4) / 4.0, x, v)     # a recorded sweep
    return np.allclose(hv, 3 * x * x * v, rtol=1e-12, atol=1e-12)


def _no_grad_job(rng):
    with ga.no_grad():
        y = ga.tensor(rng.standard_normal(8), requires_grad=True) * 2.0
        off = not y.requires_grad and not ga.is_grad_enabled()
    return off and ga.is_grad_enabled()


def _compile_job(rng, compiled=ga.compile(ga.grad(lambda v: ga.sum(ga.tanh(v) * v)))):
    x = rng.standard_normal(16)
    t = np.tanh(x)
    return np.allclose(compiled(x), t + x * (1 - t * t), rtol=1e-12, atol=1e-12)


_B = np.random.default_rng(5).standard_normal((160, 160)) / 16


def _big_job(rng):
    # big enough that the kernels release the GIL (>= 16k elements, m n k >= 128k): the
    # sweeps of other threads then run inside this one's kernels
    x = rng.standard_normal((160, 160))
    g = ga.grad(lambda a: ga.sum(ga.tanh(_B @ a) * a))(x)
    t = np.tanh(_B @ x)
    return np.allclose(g, t + _B.T @ ((1 - t * t) * x), rtol=1e-11, atol=1e-11)


JOBS = [_grad_job, _backward_job, _jvp_job, _hvp_job, _no_grad_job, _big_job]


def _run_threads(jobs, n_threads, n_iter):
    wrong, errors = [0] * n_threads, []

    def worker(k):
        rng = np.random.default_rng(k)
        try:
            for i in range(n_iter):
                if not jobs[(i + k) % len(jobs)](rng):
                    wrong[k] += 1
        except Exception as e:                     # noqa: BLE001 (reported by the test)
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(wrong), errors


def test_concurrent_differentiation_is_correct():
    """Regression: 4 threads each differentiating its own graph got wrong gradients (361 of
    20,000) and 'does not require grad' errors (1,059), and grad mode could stay off."""
    # one BLAS thread per caller, as OpenBLAS asks of multi-threaded programs: with its own
    # pool as well, four callers' GEMMs contend (measured 30x slower here)
    with threadpool_limits(1):
        wrong, errors = _run_threads(JOBS, n_threads=4, n_iter=400)
    assert errors == [] and wrong == 0
    assert ga.is_grad_enabled()


def test_no_grad_in_one_thread_leaves_others_recording():
    inside, resume = threading.Event(), threading.Event()

    def holder():
        with ga.no_grad():
            inside.set()
            resume.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(10)
    try:
        assert ga.is_grad_enabled()
        y = ga.tensor([1.0, 2.0], requires_grad=True) * 3.0
        assert y.requires_grad
    finally:
        resume.set()
        t.join()


def test_a_trace_in_one_thread_records_nothing_from_another():
    """graphad.compile traces in one thread while another computes: the trace holds only its
    own thread's operations, and its replays stay right."""
    jobs = [_compile_job, _grad_job, _jvp_job]
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # no "running it eagerly" fallback
        wrong, errors = _run_threads(jobs, n_threads=3, n_iter=200)
    assert errors == [] and wrong == 0


def test_new_threads_start_with_grad_enabled():
    seen = []
    with ga.no_grad():
        t = threading.Thread(target=lambda: seen.append(ga.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_regression_custom_rule_used_by_two_threads():
    """custom_vjp's 'inside my own forward' flag was shared: a second thread calling f while the
    first ran f_fwd got plain f, whose NumPy body has no derivative (a silent zero)."""
    import time

    @ga.custom_vjp
    def f(x):
        return ga.tensor(np.sin(x.numpy() if isinstance(x, ga.Tensor) else x))

    def f_fwd(x):
        time.sleep(0.001)                   # widen the window another thread could fall into
        return f(x), x

    f.defvjp(f_fwd, lambda x, g: (g * ga.cos(x),))
    x = np.linspace(0.1, 1.0, 5)
    wrong, errors = _run_threads([lambda rng: np.allclose(ga.grad(lambda v: ga.sum(f(v)))(x),
                                                          np.cos(x))], n_threads=4, n_iter=50)
    assert errors == [] and wrong == 0
