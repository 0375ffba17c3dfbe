"""The run: a Context the workloads measure through, the machine description, and the report
(results.json, RESULTS.md, the plots)."""
import datetime
import json
import math
import os
import platform
import sys
import time

import numpy as np

from graphad.bench import _timing, peers as _peers
from graphad.bench._timing import fmt_ratio, fmt_time, ratio

ROLES = ("graphad", "peer", "hand", "floor")


class Point:
    """One measured point of a workload: the timings of one measure() call, each case with a
    role: graphad (the subject; its best variant counts), peer (the best peer counts), hand (NumPy
    by hand) or floor (the physical floor)."""

    def __init__(self, label, timings, roles, params=None):
        self.label, self.timings, self.roles = label, timings, roles
        self.params = params or {}

    def best(self, role):
        names = [k for k, r in self.roles.items() if r == role]
        return min(names, key=lambda k: self.timings[k].median) if names else None

    def ratio(self, a, b):
        if a is None or b is None:
            return None
        return ratio(self.timings[a], self.timings[b])

    def median(self, name):
        return None if name is None else self.timings[name].median

    def summary(self):
        g = self.best("graphad")
        return {"graphad": g, "best_peer": self.best("peer"), "hand": self.best("hand"),
                "floor": self.best("floor"),
                "vs_best_peer": self.ratio(g, self.best("peer")),
                "vs_hand": self.ratio(g, self.best("hand")),
                "vs_floor": self.ratio(g, self.best("floor"))}

    def to_json(self):
        s = self.summary()
        for k in ("vs_best_peer", "vs_hand", "vs_floor"):
            if s[k] is not None:
                s[k] = {"median": s[k][0], "p25": s[k][1][0], "p75": s[k][1][1]}
        return {"label": self.label, "params": self.params, "roles": self.roles,
                "timings": {k: t.to_json() for k, t in self.timings.items()}, "summary": s}


class Progress:
    """tqdm when it imports, else one plain line per step."""

    def __init__(self, total, enabled=True):
        self.total, self.n, self.bar = total, 0, None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def step(self, desc):
        self.n += 1
        if self.bar is not None:
            self.bar.set_description_str(desc[:40])
            self.bar.update(1)
        elif self.enabled:
            print(f"[{self.n:3d}/{self.total}] {desc}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class Context:
    """What a workload sees: the run's settings, peers, measuring and recording."""

    def __init__(self, quick=False, tiny=False, threads=1, without=()):
        self.quick, self.tiny, self.threads = quick or tiny, tiny, threads
        self.without = set(without)
        if tiny:
            self.budget, self.rounds = 0.004, 3
        elif quick:
            self.budget, self.rounds = 0.025, 5
        else:
            self.budget, self.rounds = 0.25, 9
        self.peers, self.skipped = {}, {}
        self.points, self.extra, self.seconds = {}, {}, {}
        self.workload = None
        self.progress = None

    def peer(self, name):
        """The adapter module of peer `name`, or None (recorded as skipped, with the reason)."""
        if name in self.peers:
            return self.peers[name]
        if name in self.skipped:
            return None
        mod = _peers.load(name)
        why = "excluded by --without" if name in self.without or any(
            m.split(".")[0] in self.without for m in mod.MODULES) else mod.available(self)
        if why:
            self.skipped[name] = why
            return None
        self.peers[name] = mod
        if "torch" in sys.modules:                   # a pool of its own: the same thread count
            sys.modules["torch"].set_num_threads(self.threads)
        return mod

    def measure(self, cases, budget=None, rounds=None):
        return _timing.measure(cases, budget or self.budget, rounds or self.rounds)

    def point(self, label, timings, roles, params=None):
        p = Point(label, timings, roles, params)
        self.points.setdefault(self.workload, []).append(p)
        return p

    def step(self, desc):
        if self.progress is not None:
            self.progress.step(f"{self.workload}: {desc}")


# ---- the machine --------------------------------------------------------------------------------

def _cpu():
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    break
    except OSError:
        pass
    keep = [f for f in flags if f.startswith(("avx", "fma", "sse4", "amx", "f16c"))]
    return model, sorted(set(keep))


def machine(ctx):
    from threadpoolctl import threadpool_info
    import graphad
    from graphad import _kernels as K
    model, flags = _cpu()
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "graphad": getattr(graphad, "__version__", None)}
    import scipy
    versions["scipy"] = scipy.__version__
    for name, mod in ctx.peers.items():
        if hasattr(mod, "version"):
            versions[name] = mod.version()
    try:
        import threadpoolctl
        versions["threadpoolctl"] = threadpoolctl.__version__
    except Exception:
        pass
    blas = [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                   "threading_layer", "filepath")}
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "platform": platform.platform(), "cpu_model": model, "cpu_flags": flags,
            "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None,
            "threads": ctx.threads, "versions": versions, "blas": blas,
            "own_gemm": {"available": bool(K.own_gemm_available()),
                         "enabled": bool(K.own_gemm_enabled())},
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                   "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                   "GRAPHAD_BLAS_ONLY", "XLA_FLAGS")}}


# ---- the report ----------------------------------------------------------------------------

def _name(p, k):
    return "n/a" if k is None else k


def ratio_table(points):
    """graphad's best variant against the best peer, NumPy by hand and the floor, per point."""
    lines = ["| point | graphad | time | best peer | time | graphad / peer | NumPy by hand | "
             "graphad / by hand | floor | graphad / floor |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for p in points:
        s = p.summary()
        lines.append(
            f"| {p.label} | {_name(p, s['graphad'])} | {fmt_time(p.median(s['graphad']))} | "
            f"{_name(p, s['best_peer'])} | {fmt_time(p.median(s['best_peer']))} | "
            f"{fmt_ratio(s['vs_best_peer'])} | {fmt_time(p.median(s['hand']))} | "
            f"{fmt_ratio(s['vs_hand'])} | {fmt_time(p.median(s['floor']))} | "
            f"{fmt_ratio(s['vs_floor'])} |")
    return "\n".join(lines)


def summary_table(ctx, workloads):
    """One line per workload: in how many points graphad is ahead of the best peer, and the
    geometric means of its ratios to the best peer and to the floor."""
    gm = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None  # noqa: E731
    lines = ["| workload | points | graphad ahead of the best peer | geo-mean graphad / best peer "
             "| geo-mean graphad / floor | most frequent best peer |",
             "|---|---:|---:|---:|---:|---|"]
    for w in workloads:
        pts = [p for p in ctx.points.get(w.NAME, []) if p.best("graphad")]
        if not pts:
            continue
        ss = [p.summary() for p in pts]
        vp = [s["vs_best_peer"][0] for s in ss if s["vs_best_peer"]]
        vf = [s["vs_floor"][0] for s in ss if s["vs_floor"]]
        peers = [s["best_peer"] for s in ss if s["best_peer"]]
        top = max(set(peers), key=peers.count) if peers else "n/a"
        f = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
        lines.append(f"| {w.NAME} | {len(pts)} | {sum(r < 1 for r in vp)} of {len(vp)} | "
                     f"{f(gm(vp))} | {f(gm(vf))} | {top} |")
    return "\n".join(lines)


def write(ctx, out, workloads, seconds, mach):
    os.makedirs(out, exist_ok=True)
    res = {"machine": mach, "quick": ctx.quick, "tiny": ctx.tiny, "seconds": seconds,
           "timing": {"budget_s": ctx.budget, "rounds": ctx.rounds,
                      "statistic": "median of rounds; spread p25-p75 of rounds; ratios per round"},
           "peers": {"used": sorted(ctx.peers), "skipped": ctx.skipped}, "workloads": {}}
    md = ["# graphad benchmark results", "",
          f"`python -m graphad bench{' --quick' if ctx.quick else ''} --threads {ctx.threads}`"
          f" on {mach['cpu_model']} ({mach['cpus']} CPUs), {mach['date']}, {seconds:.0f} s.",
          "",
          "BLAS: " + "; ".join(f"{b['internal_api']} {b['version']} ({b['architecture']} "
                               f"kernels, {b['num_threads']} threads)" for b in mach["blas"]),
          "", "Versions: " + ", ".join(f"{k} {v}" for k, v in mach["versions"].items() if v), "",
          "Times are medians over interleaved rounds; ratios are computed round by round and "
          "shown as median (p25-p75). Below 1 means graphad is faster. *NumPy by hand* is the "
          "workload written out with NumPy; *floor* is the arithmetic alone (the GEMMs, or "
          "Python floats for scalar chains).", ""]
    md += ["## Summary", "", summary_table(ctx, workloads), ""]
    if ctx.skipped:
        md += ["Skipped peers: " + "; ".join(f"{_peers.load(k).LABEL} ({v})"
                                               for k, v in sorted(ctx.skipped.items())), ""]
    plots = []
    for w in workloads:
        pts = ctx.points.get(w.NAME, [])
        extra = ctx.extra.get(w.NAME, {})
        res["workloads"][w.NAME] = {"title": w.TITLE, "seconds": ctx.seconds.get(w.NAME),
                                    "points": [p.to_json() for p in pts], "extra": extra}
        md += [f"## {w.NAME}: {w.TITLE}", "", f"({ctx.seconds.get(w.NAME, 0):.0f} s)", ""]
        if getattr(w, "DESCRIPTION", None):
            md += [w.DESCRIPTION.strip(), ""]
        if pts and getattr(w, "RATIO_TABLE", True):
            md += [ratio_table(pts), ""]
        if hasattr(w, "report"):
            md += [w.report(ctx, pts, extra), ""]
        if hasattr(w, "plot"):
            try:
                import matplotlib
                matplotlib.use("Agg")
            except ImportError:
                continue
            for path in w.plot(ctx, pts, extra, out) or ():
                plots.append(os.path.basename(path))
                md += [f"![{w.NAME}]({os.path.basename(path)})", ""]
    res["plots"] = plots
    with open(os.path.join(out, "results.json"), "w") as fh:
        json.dump(res, fh, indent=1, default=_json_default, allow_nan=False)
    with open(os.path.join(out, "RESULTS.md"), "w") as fh:
        fh.write("\n".join(md).rstrip() + "\n")
    return res


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def run(workloads, quick=False, threads=1, out="graphad-bench", tiny=False, without=(),
        progress=True):
    ctx = Context(quick=quick, tiny=tiny, threads=threads, without=without)
    t0 = time.perf_counter()
    import graphad  # noqa: F401  (its BLAS loaded before the pools are limited)
    with _timing.pinned(threads):
        ctx.progress = Progress(sum(w.units(ctx) for w in workloads), enabled=progress)
        try:
            for w in workloads:
                ctx.workload = w.NAME
                tw = time.perf_counter()
                ctx.extra[w.NAME] = w.run(ctx) or {}
                ctx.seconds[w.NAME] = time.perf_counter() - tw
        finally:
            ctx.progress.close()
        mach = machine(ctx)                          # inside the pinning: the limits in force
    res = write(ctx, out, workloads, time.perf_counter() - t0, mach)
    return ctx, res
