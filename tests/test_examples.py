"""The course-topic examples in examples/: each runs (in this process, through its main(), with
a temporary output folder), shows what it claims (the numbers it prints are checked here), and
writes its PNG when matplotlib is installed, and runs without matplotlib too."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
TOPICS = ["derivatives_as_linear_maps", "jacobians_of_powers", "vec_kronecker",
          "finite_differences", "newton_method", "det_inverse_derivatives",
          "eigenvalue_derivatives"]

try:
    import matplotlib  # noqa: F401
    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False


def load(name, monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)          # the examples import their _plotting helper
    spec = importlib.util.spec_from_file_location(f"example_{name}",
                                                  os.path.join(EXAMPLES, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def run(monkeypatch, tmp_path, capsys):
    """run(name) -> (the dict main() returns, what it printed, the output folder)."""
    def go(name):
        res = load(name, monkeypatch).main(["--out", str(tmp_path)])
        text = capsys.readouterr().out
        if HAVE_MPL:
            png = os.path.join(tmp_path, name + ".png")
            assert res["plot"] == png and os.path.getsize(png) > 5000
            with open(png, "rb") as fh:
                assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        return res, text
    return go


def test_every_topic_has_a_script():
    for name in TOPICS:
        assert os.path.exists(os.path.join(EXAMPLES, name + ".py")), name


def test_derivatives_as_linear_maps(run):
    res, text = run("derivatives_as_linear_maps")
    assert res["dot_gradient_error"] < 1e-14 and res["square_error"] < 1e-13
    assert res["square_vs_2AdA"] > 0.1                 # A dA + dA A is not 2 A dA
    assert res["linearity_error"] < 1e-13 and res["adjoint_error"] < 1e-12
    assert res["remainder_slope"] == pytest.approx(2.0, abs=0.05)
    assert res["change_slope"] == pytest.approx(1.0, abs=0.05)
    assert "e^2.00" in text


def test_jacobians_of_powers(run):
    res, text = run("jacobians_of_powers")
    assert max(res["errors"].values()) < 1e-12
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(res["J2"], np.kron(X.T, np.eye(2)) + np.kron(np.eye(2), X))
    assert "A^3 (rev)" in text


def test_vec_kronecker(run):
    res, text = run("vec_kronecker")
    for key in ("identity_error", "jacobian_error_fwd", "jacobian_error_rev",
                "mixed_product_error", "sylvester_operator_error", "sylvester_error"):
        assert res[key] < 1e-12, key
    assert res["commutation_is_permutation"]
    assert "solve_sylvester" in text


def test_finite_differences_slopes(run):
    res, text = run("finite_differences")
    fwd, cen = res["forward"], res["central"]
    assert fwd["truncation_slope"] == pytest.approx(1.0, abs=0.1)
    assert cen["truncation_slope"] == pytest.approx(2.0, abs=0.1)
    # the left arm of the V: rounding error ~ eps / h
    assert fwd["roundoff_slope"] == pytest.approx(-1.0, abs=0.3)
    assert cen["roundoff_slope"] == pytest.approx(-1.0, abs=0.3)
    # the bottoms of the V sit near eps^(1/2) and eps^(1/3), central far more accurate
    assert 1e-10 < fwd["best_h"] < 1e-6 and 1e-7 < cen["best_h"] < 1e-4
    assert cen["best_error"] < 1e-2 * fwd["best_error"]
    assert res["default_error"]["central"] < 1e-9 and res["default_error"]["forward"] < 1e-6
    assert "truncation slope  1.00" in text and "truncation slope  2.00" in text


def test_newton_method(run):
    res, text = run("newton_method")
    for name, r in res["results"].items():
        assert r.converged, name
        rr = np.asarray(r.residuals)
        near = [rr[k + 1] / rr[k] ** 2 for k in range(len(rr) - 1)
                if rr[k] < 0.5 and rr[k + 1] > 1e-13]
        assert len(near) >= 2 and max(near) < 1.0, (name, rr)
    assert float(res["results"]["sqrt(2)"].x) == pytest.approx(np.sqrt(2), rel=1e-15)
    assert "sqrt(2) = 1.41421356237309" in text


def test_det_inverse_derivatives(run):
    res, text = run("det_inverse_derivatives")
    for key in ("det_grad_error", "det_jvp_error", "logdet_grad_error", "inv_jvp_error",
                "inv_vjp_error", "inv_second_error", "rank3_cofactor_error",
                "rank2_cofactor_error"):
        assert res[key] < 1e-12, key
    assert res["rank3_grad_norm"] > 0.1                  # rank n-1: the cofactor is nonzero
    assert res["rank2_grad_norm"] < 1e-14                # rank n-2: it vanishes
    assert res["det_remainder_slope"] == pytest.approx(2.0, abs=0.1)
    assert res["inv_remainder_slope"] == pytest.approx(2.0, abs=0.1)


def test_eigenvalue_derivatives(run):
    res, text = run("eigenvalue_derivatives")
    for key in ("simple_jvp_error", "simple_grad_error", "repeated_sum_sq_error",
                "repeated_cluster_error", "repeated_logdet_error"):
        assert res[key] < 1e-12, key
    assert res["simple_fd_error"] < 1e-8 and res["split_error"] < 1e-4
    left, right = res["lambda0_slopes"]
    assert abs(left - right) > 0.1                      # no derivative of lambda_0 alone
    assert "2A" in text


def test_examples_run_without_matplotlib(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)     # import matplotlib -> ImportError
    res = load("finite_differences", monkeypatch).main(["--out", str(tmp_path)])
    assert res["plot"] is None and not os.listdir(tmp_path)
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert res["central"]["truncation_slope"] == pytest.approx(2.0, abs=0.1)


def test_example_runs_as_a_script(tmp_path):
    """From another working directory, as `python examples/<name>.py --out DIR`."""
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, "vec_kronecker.py"),
                           "--out", str(tmp_path)], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=120,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr
    assert "B^T kron A" in proc.stdout
    if HAVE_MPL:
        assert os.path.exists(tmp_path / "vec_kronecker.png")
