"""Command line: `python -m graphad demo` and `python -m graphad bench`."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="graphad", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a small model on scikit-learn's digits")
    demo.add_argument("--epochs", type=int, default=300)
    demo.add_argument("--lr", type=float, default=0.5)
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from graphad.demo import run
        return run(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
