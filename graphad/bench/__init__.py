"""graphad's benchmark suite: `python -m graphad bench [--quick] [--only NAME ...] [--threads N]
[--out DIR]`.

One module per workload (WORKLOADS), one shared timing discipline (_timing.py), one adapter
module per peer engine (peers/), the physical floors (floors.py) and the report (_suite.py:
results.json, RESULTS.md, PNG plots). A workload module defines NAME, TITLE, units(ctx) (its
progress steps) and run(ctx), which measures through ctx.measure() and records ctx.point()s;
optionally report(ctx, points, extra) -> Markdown and plot(ctx, points, extra, out) -> paths.
"""
import importlib

WORKLOADS = ("overhead", "train_step", "jacobian", "second_order", "cost_model", "gemm",
             "linalg", "odeint", "array_api")


def load(name):
    return importlib.import_module(f"graphad.bench.{name}")


def run(only=None, quick=False, threads=1, out="graphad-bench", tiny=False, without=(),
        progress=True):
    """Run the named workloads (all by default); write the report into `out`; return the
    results dict that results.json holds."""
    from graphad.bench import _suite
    names = [n for n in WORKLOADS if not only or n in only]
    return _suite.run([load(n) for n in names], quick=quick, threads=threads, out=out,
                      tiny=tiny, without=without, progress=progress)[1]


def add_arguments(ap):
    ap.add_argument("--quick", action="store_true",
                    help="smaller grids and shorter timings (under two minutes on 2 cores)")
    ap.add_argument("--only", nargs="+", choices=WORKLOADS, default=None, metavar="NAME",
                    help="run only these workloads: " + ", ".join(WORKLOADS))
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS / framework threads and CPUs used (default 1)")
    ap.add_argument("--out", default="graphad-bench",
                    help="directory for results.json, RESULTS.md and the plots")
    ap.add_argument("--without", nargs="+", default=(), metavar="PEER",
                    help="treat these peers (or their modules: torch, jax, autograd, ...) as "
                         "missing")
    ap.add_argument("--tiny", action="store_true", help=__import__("argparse").SUPPRESS)


def main(args):
    import os
    import time
    t0 = time.perf_counter()
    res = run(args.only, args.quick, args.threads, args.out, args.tiny, args.without)
    print(open(os.path.join(args.out, "RESULTS.md")).read())
    print(f"results written to {os.path.abspath(args.out)} ({time.perf_counter() - t0:.0f} s; "
          f"peers skipped: {', '.join(sorted(res['peers']['skipped'])) or 'none'})")
    return 0
