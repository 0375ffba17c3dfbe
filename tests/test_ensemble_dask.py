"""examples/ensemble_dask.py on a dask.distributed LocalCluster of two worker processes (skipped
unless dask.distributed is importable), and the Jacobians' executor= path with a dask Client:
the Client itself (its map returns futures), its concurrent.futures executor, and a whole
transform sent to a worker with client.submit."""
import os
import sys

import numpy as np
import pytest

import graphad as ga

distributed = pytest.importorskip("dask.distributed")
pytest.importorskip("sklearn")

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), "examples")
TIMEOUT = 300       # seconds for any one wait on the cluster: a failure never hangs the suite


def _example():
    import ensemble_dask            # examples/ is on sys.path while the cluster runs
    return ensemble_dask


@pytest.fixture(scope="module")
def client(monkeypatch_module):
    # the worker processes (multiprocessing's spawn: they start with this process's sys.path)
    # import examples/ensemble_dask.py and this module by name
    for d in (HERE, EXAMPLES):
        if d not in sys.path:
            monkeypatch_module.syspath_prepend(d)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_ensemble_of_mlps_trained_on_workers(client):
    ex = _example()
    accs, ensemble = ex.run(members=4, epochs=8, client=client, timeout=TIMEOUT)
    assert len(accs) == 4
    # a 64-32-10 MLP on digits reaches ~0.95 in a few epochs; chance is 0.1
    assert min(accs) > 0.9, accs
    assert ensemble > 0.93 and ensemble >= min(accs), (accs, ensemble)
    # the members differ (own seeds and bootstrap samples): not one model four times
    assert len({round(a, 6) for a in accs}) > 1 or ensemble != accs[0]


def test_member_on_a_worker_equals_member_here(client):
    ex = _example()
    seed, acc, probs = client.submit(ex.train_member, 3, epochs=2, pure=False).result(
        timeout=TIMEOUT)
    here = ex.train_member(3, epochs=2)
    assert seed == 3 and acc == here[1]
    np.testing.assert_allclose(probs, here[2], rtol=1e-12, atol=1e-14)


def _f(x):
    return ga.sin(x) * ga.sum(x * x) + ga.tanh(x[::-1])


def _sum_f(x):
    return ga.sum(_f(x))


@pytest.mark.parametrize("transform", [ga.jacrev, ga.jacfwd])
def test_jacobian_executor_is_a_dask_client(client, transform):
    x = np.linspace(-1.0, 1.0, 7)
    want = transform(_f)(x)
    for executor in (client, client.get_executor()):
        got = transform(_f, chunk_size=2, executor=executor)(x)
        assert got.shape == (7, 7) and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(want, np.diag(np.cos(x) * np.sum(x * x)) + np.outer(np.sin(x), 2 * x)
                               + np.fliplr(np.diag(1 - np.tanh(x[::-1]) ** 2)), rtol=1e-12)


def test_transform_submitted_to_a_worker(client):
    x = np.linspace(-1.0, 1.0, 5).astype(np.float32)
    fut = client.submit(ga.jacobian(_f), x, pure=False)
    got = fut.result(timeout=TIMEOUT)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ga.jacobian(_f)(x), rtol=1e-6)
    futs = client.map(ga.grad(_sum_f), [x, 2 * x], pure=False)
    distributed.wait(futs, timeout=TIMEOUT)
    grads = client.gather(futs)
    np.testing.assert_allclose(grads[1], ga.grad(_sum_f)(2 * x), rtol=1e-6)
