"""The variance of two Monte Carlo gradient estimators against the number of samples.

    python examples/estimators_variance.py [--repeats 200] [--plot estimators_variance.png]

The gradient of L(mu, sigma) = E[f(x)], x ~ N(mu, sigma^2), with f(x) = x^2, whose exact value
is (2 mu, 2 sigma) since E[x^2] = mu^2 + sigma^2, estimated from n samples by

  pathwise (reparameterization)  x = mu + sigma eps:  (1/n) sum f'(x_i) (1, eps_i)
                                 ga.random.reparam_grad: graphad differentiates the samples
  score function (REINFORCE)     (1/n) sum (f(x_i) - b) d/d(mu, sigma) log p(x_i; mu, sigma)
                                 ga.random.score_function_grad, without a baseline (b = 0)
                                 and with the leave-one-out mean of f as baseline

Every estimator is unbiased and its variance falls like 1/n; the constant in front is what
differs.  For this f the pathwise per-sample variances are, exactly (Gaussian moments),
Var(2 x) = 4 sigma^2 for d/dmu and Var(2 x eps) = 4 (mu^2 + 2 sigma^2) for d/dsigma; the score
function's are several times larger (mu = 1, sigma = 2 by default), a baseline recovers part.
The script repeats each estimate `repeats` times with independent samples, prints the
empirical variance of the estimates for each n, and plots them on log-log axes (a PNG when
matplotlib is installed).
"""
import argparse

import numpy as np

import graphad as ga

MU, SIGMA = 1.0, 2.0


def f(x):
    return x * x


def estimate_variances(ns, repeats, seed=0, mu=MU, sigma=SIGMA):
    """{estimator: array (len(ns), 2)}: the variance over `repeats` independent estimates of
    (dL/dmu, dL/dsigma) from n samples, for each n in ns."""
    rng = np.random.default_rng(seed)
    estimators = {
        "pathwise": lambda n: ga.random.reparam_grad(f, (mu, sigma), n, rng=rng),
        "score function": lambda n: ga.random.score_function_grad(f, (mu, sigma), n, rng=rng),
        "score function, baseline": lambda n: ga.random.score_function_grad(
            f, (mu, sigma), n, rng=rng, baseline="mean"),
    }
    out = {}
    for name, est in estimators.items():
        rows = []
        for n in ns:
            g = np.array([est(n).grad for _ in range(repeats)])        # (repeats, 2)
            rows.append(g.var(axis=0, ddof=1))
        out[name] = np.array(rows)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--plot", default="estimators_variance.png", help="PNG path ('' for none)")
    args = ap.parse_args()
    ns = [10, 30, 100, 300, 1000, 3000]
    var = estimate_variances(ns, args.repeats)
    # exact per-sample variances of the pathwise estimator: 2x and 2x eps with x = mu + sigma eps
    path_mu = 4 * SIGMA ** 2
    path_sigma = 4 * (MU ** 2 + 2 * SIGMA ** 2)
    print(f"gradient of E[x^2], x ~ N({MU}, {SIGMA}^2): exact ({2 * MU}, {2 * SIGMA}); "
          f"variance of the estimate over {args.repeats} repeats")
    for j, pname in enumerate(("mu", "sigma")):
        print(f"{'d/d' + pname + ':':10}{'n':>6}" + "".join(f"{name:>26}" for name in var))
        for k, n in enumerate(ns):
            print(f"{'':10}{n:6d}" + "".join(f"{v[k, j]:26.4g}" for v in var.values()))
    print(f"pathwise, exactly: {path_mu:g} / n (mu), {path_sigma:g} / n (sigma)")
    n_ = np.array(ns, float)[:, None]          # compare n * variance, the per-sample variance
    ratio = (n_ * var["score function"]).mean(axis=0) / (n_ * var["pathwise"]).mean(axis=0)
    print(f"score function / pathwise variance: {ratio[0]:.1f}x (mu), {ratio[1]:.1f}x (sigma)")

    if args.plot:
        try:
            import matplotlib
        except ImportError:
            print("matplotlib is not installed: no plot")
            return
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        ns_ = np.array(ns, float)
        for j, (ax, pname, exact) in enumerate(zip(axes, ("mu", "sigma"),
                                                   (path_mu, path_sigma))):
            for name, v in var.items():
                ax.loglog(ns_, v[:, j], "o-", label=name)
            ax.loglog(ns_, exact / ns_, "k:", label="pathwise, exact")
            ax.set_xlabel("samples n")
            ax.set_title(f"variance of the estimate of dL/d{pname}")
            ax.legend(fontsize=8)
        axes[0].set_ylabel("variance over repeats")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        plt.close(fig)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
