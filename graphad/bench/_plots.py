"""Shared plotting: grouped bars of time relative to a reference, on a log axis whose limits
always hold every bar and its label."""
import numpy as np

ROLE_ORDER = ("graphad", "peer", "hand", "floor")


def bars(ax, points, ref, xlabels):
    """One group per point, one bar per case (graphad's first), height = time / time of `ref`."""
    import matplotlib.ticker as mt
    keys = []
    for role in ROLE_ORDER:
        for p in points:
            for k, r in p.roles.items():
                if r == role and k not in keys and k != ref:
                    keys.append(k)
    x = np.arange(len(points))
    w = 0.8 / max(1, len(keys))
    vals = []
    for i, k in enumerate(keys):
        ys = [p.timings[k].median / p.timings[ref].median if k in p.timings else np.nan
              for p in points]
        vals += [y for y in ys if np.isfinite(y)]
        ax.bar(x + (i - (len(keys) - 1) / 2) * w, ys, w, label=k)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    if vals:
        ax.set_ylim(min(min(vals), 1.0) / 1.6, max(max(vals), 1.0) * 1.6)
    ax.yaxis.set_major_formatter(mt.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(mt.NullFormatter())
    ax.set_xticks(x)
    ax.set_xticklabels(xlabels, fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
