"""The demo (`python -m graphad demo`) and the training benchmark's implementations: the digits
MLP reaches 97% test accuracy, compiled training follows the eager one, the command line runs,
and the benchmark's NumPy-by-hand step computes the same step as graphad."""
import numpy as np
import pytest

import graphad as ga
from graphad import demo
from graphad.__main__ import main

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    return demo.load_digits_split(seed=0)


def test_digits_mlp_reaches_97_percent(digits):
    Xtr, ytr, Xte, yte, _ = digits
    model, losses = demo.train(Xtr, ytr, hidden=(128,), epochs=30, seed=0, progress=False)
    acc = np.mean(demo.predict(model, Xte) == yte)
    assert acc >= 0.97, f"test accuracy {acc:.4f}"
    assert losses[-1] < 0.1 * losses[0]


def test_compiled_training_follows_eager(digits):
    Xtr, ytr, _, _, _ = digits
    _, eager = demo.train(Xtr, ytr, hidden=(32,), epochs=3, seed=1, progress=False)
    _, comp = demo.train(Xtr, ytr, hidden=(32,), epochs=3, seed=1, compiled=True,
                         progress=False)
    np.testing.assert_allclose(comp, eager, rtol=1e-12)


def test_cost_table_has_the_expected_winners():
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):          # as the demo runs it: no BLAS threads to contend
        text, rows = demo.cost_table(sizes=((1, 400), (400, 1)), hidden=32)
    assert "jacfwd" in text and len(rows) == 2
    (_, _, fwd_tall, rev_tall), (_, _, fwd_wide, rev_wide) = rows
    assert fwd_tall < rev_tall          # n << m: forward mode
    assert rev_wide < fwd_wide          # n >> m: reverse mode


def test_command_line_demo(tmp_path, capsys):
    png = tmp_path / "demo.png"
    assert main(["demo", "--epochs", "12", "--hidden", "64", "--compile",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "jacfwd" in out and str(png) in out
    assert png.exists() and png.stat().st_size > 1000


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bench_numpy_by_hand_computes_the_same_step(dtype):
    from graphad.bench import overhead, train_step
    from graphad.bench.peers import numpy_hand
    p = overhead.make_mlp((16, 12, 8, 5), 10, dtype)
    floor = numpy_hand.train_step(p, train_step.LR)
    step = train_step.graphad_step(p, compiled=False)
    comp = train_step.graphad_step(p, compiled=True)
    tol = 1e-12 if dtype == "float64" else 1e-5
    for _ in range(3):
        a, b, c = float(floor()), float(step().item()), float(comp().item())
        assert abs(a - b) < tol * abs(a) and abs(b - c) < tol * abs(a)
