"""Command line: `python -m graphad demo` and `python -m graphad bench`."""
import argparse
import sys

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
    bench = sub.add_parser("bench", help="run the benchmark suite (graphad.bench) against the "
                                         "installed peers; writes results.json, RESULTS.md, PNGs")
    from graphad.bench import add_arguments
    add_arguments(bench)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from graphad.demo import run
        return run(args)
    if args.command == "bench":
        from graphad.bench import main as bench_main
        return bench_main(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
