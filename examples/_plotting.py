"""Shared by the course-topic examples: the command line (--out), and matplotlib when it is
installed (the Agg backend: files only, no window).  Without matplotlib the examples still run
and print their results; they only skip the plot."""
import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(doc, argv=None, **extra):
    """--out DIR (default examples/out) and any extra options given as name=(type, default)."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    ap.add_argument("--out", default=os.path.join(HERE, "out"),
                    help="folder for the PNG plot (default: examples/out)")
    for name, (kind, default) in extra.items():
        ap.add_argument("--" + name.replace("_", "-"), type=kind, default=default)
    return ap.parse_args(argv)


def pyplot():
    """matplotlib.pyplot on the Agg backend, or None (with a note) when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        print("(matplotlib is not installed: no plot)")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, out, name):
    """Write fig to out/name and close it; returns the path."""
    import matplotlib.pyplot as plt
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"plot written to {path}")
    return path


def slope(x, y):
    """The least-squares slope of log y against log x."""
    import numpy as np
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
