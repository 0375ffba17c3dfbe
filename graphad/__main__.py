"""Command line: `python -m graphad demo` and `python -m graphad bench`."""
import argparse
import importlib.util
import json
import os
import sys

# The benchmark scripts in bench/, in the order `bench` runs them; each defines run(quick, out).
BENCHMARKS = ("fwd_vs_rev", "train_step", "overhead", "gemm", "linalg")


def _bench_dir():
    """bench/ of the source tree (next to the package), or of the current directory."""
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")
    for d in (here, os.path.join(os.getcwd(), "bench")):
        if os.path.isdir(d):
            return d
    return None


def run_benchmarks(quick=False, out="bench/out", only=None):
    d = _bench_dir()
    if d is None:
        print("bench: no bench/ directory found (run from a source checkout)", file=sys.stderr)
        return 1
    names = [n for n in BENCHMARKS if only is None or n in only]
    for name in names:
        path = os.path.join(d, name + ".py")
        if not os.path.exists(path):
            continue
        spec = importlib.util.spec_from_file_location(f"graphad_bench_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if not hasattr(module, "run"):
            continue
        print(f"\n== bench/{name}.py ==", flush=True)
        module.run(quick=quick, out=out)
    print(f"\nresults written to {os.path.abspath(out)}")
    return 0


def bench_write(out, name, md, data):
    """What a bench/ script leaves in `out`: NAME.md (the tables, also printed) and NAME.json
    (every timing)."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, name + ".md"), "w") as fh:
        fh.write(md if md.endswith("\n") else md + "\n")
    with open(os.path.join(out, name + ".json"), "w") as fh:
        json.dump(data, fh, indent=2, default=str)
    print(md)


def bench_script(run, doc, quick_help="smaller sizes, shorter timings", argv=None):
    """The command line of one bench/ script run on its own (python bench/NAME.py): --quick and
    --out, as `python -m graphad bench` passes them to its run()."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--out", default="bench/out", help="directory for tables, JSON, plots")
    a = ap.parse_args(argv)
    run(a.quick, a.out)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="graphad", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train an MLP on scikit-learn's digits, then compare "
                                       "forward and reverse mode")
    demo.add_argument("--epochs", type=int, default=30)
    demo.add_argument("--hidden", type=int, nargs="+", default=[128], metavar="SIZE",
                      help="hidden layer sizes (default: 128)")
    demo.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate")
    demo.add_argument("--batch-size", type=int, default=32)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--compile", action="store_true",
                      help="trace the training step once with ga.compile and replay it")
    demo.add_argument("--plot", nargs="?", const="graphad_demo.png", default=None,
                      metavar="PATH", help="write a PNG of the loss curve and some "
                                           "misclassified digits (default graphad_demo.png)")
    bench = sub.add_parser("bench", help="run the benchmarks in bench/")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, shorter timings")
    bench.add_argument("--out", default="bench/out", help="directory for tables, JSON, plots")
    bench.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from graphad.demo import run
        return run(args)
    if args.command == "bench":
        return run_benchmarks(args.quick, args.out, args.only)
    return 1


if __name__ == "__main__":
    sys.exit(main())
