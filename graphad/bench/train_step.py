"""MLP training steps: forward, cross-entropy, backward and an SGD update, in both dtypes."""
import graphad as ga
from graphad.bench import floors
from graphad.bench._timing import fmt_time, once
from graphad.bench.overhead import make_mlp
from graphad.bench.peers import numpy_hand

NAME = "train_step"
TITLE = "MLP training step (forward, cross-entropy, backward, SGD update)"
DESCRIPTION = """
graphad eager and graphad compiled (ga.compile: traced once, replayed) against PyTorch eager,
torch.compile, JAX jit and HIPS autograd, every engine in the row's dtype. The floor is the step's
GEMMs alone. Compile: the first call's time minus the median step (not clamped: a value within
the step's spread is noise).
"""
NETS = (((64, 32, 10), 32), ((64, 128, 128, 10), 128), ((64, 512, 512, 10), 256),
        ((1024, 1024, 1024, 10), 512))
LR = 0.01


def graphad_step(p, compiled):
    layers = []
    for W, b in zip(p["Ws"], p["bs"]):
        lin = ga.nn.Linear(W.shape[0], W.shape[1], dtype=W.dtype)
        lin.W.data[...] = W
        lin.b.data[...] = b
        layers += [lin, ga.nn.ReLU()]
    model = ga.nn.Sequential(*layers[:-1])
    opt = ga.optim.SGD(model.parameters(), lr=LR)
    X, y = p["X"], p["y"]

    def step(X, y):
        opt.zero_grad()
        loss = ga.nn.cross_entropy(model(X), y)
        loss.backward()
        opt.step()
        return loss
    step = ga.compile(step) if compiled else step
    return lambda: step(X, y)


def grid(ctx):
    if ctx.tiny:
        return [(((16, 12, 5), 8), "float64"), (((16, 12, 5), 8), "float32")]
    if ctx.quick:
        return [(n, "float64") for n in NETS[:3]] + [(n, "float32") for n in NETS[:2]]
    return [(n, dt) for dt in ("float64", "float32") for n in NETS]


def units(ctx):
    return len(grid(ctx))


def run(ctx):
    compile_s = []
    for (sizes, batch), dtype in grid(ctx):
        p = make_mlp(sizes, batch, dtype)
        makers = {"graphad eager": (lambda: graphad_step(p, False), "graphad"),
                  "graphad compiled": (lambda: graphad_step(p, True), "graphad"),
                  "NumPy by hand": (lambda: numpy_hand.train_step(p, LR), "hand"),
                  "GEMMs alone": (lambda: floors.mlp_gemms(p), "floor")}
        for name, key, kw in (("torch_eager", "PyTorch eager", {}),
                              ("torch_compile", "torch.compile", {}),
                              ("jax_xla", "JAX jit", {"jit": True}),
                              ("hips_autograd", "HIPS autograd", {})):
            peer = ctx.peer(name)
            if peer is not None:
                makers[key] = ((lambda peer=peer, kw=kw: peer.train_step(p, LR, **kw)), "peer")
        # the same numbers: three steps of each from the same weights agree with NumPy by hand
        cases, first = {}, {}
        for k, (make, _) in makers.items():
            fn = make()
            first[k] = once(fn)                  # the first call: compilation where there is one
            cases[k] = fn
        tol = 1e-9 if dtype == "float64" else 2e-4
        ref_step = numpy_hand.train_step(p, LR)
        ref = [float(ref_step()) for _ in range(2)][-1]
        for k in ("graphad eager", "graphad compiled"):
            f = makers[k][0]()
            v = [float(f().item()) for _ in range(2)][-1]
            assert abs(v - ref) <= tol * max(1.0, abs(ref)), \
                f"train_step: {k}'s loss {v} disagrees with NumPy by hand's {ref}"
        timings = ctx.measure(cases)
        label = "-".join(map(str, sizes)) + f" (batch {batch}) {dtype}"
        pt = ctx.point(label, timings, {k: r for k, (_, r) in makers.items()},
                       {"sizes": sizes, "batch": batch, "dtype": dtype})
        for k in ("graphad compiled", "torch.compile", "JAX jit"):
            if k in first:
                compile_s.append({"point": label, "engine": k, "first_call": first[k],
                                  "step": pt.median(k),
                                  "step_p75": pt.timings[k].spread[1],
                                  "compile": first[k] - pt.median(k)})
        ctx.step(label)
    return {"compile": compile_s}


def report(ctx, points, extra):
    lines = ["Compile time (first call minus the median step):", "",
             "| point | engine | first call | step | compile |", "|---|---|---:|---:|---:|"]
    for c in extra["compile"]:
        noise = c["compile"] <= c["step_p75"] - c["step"] + 1e-12
        lines.append(f"| {c['point']} | {c['engine']} | {fmt_time(c['first_call'])} | "
                     f"{fmt_time(c['step'])} | {fmt_time(c['compile'])}"
                     f"{' (within noise)' if noise else ''} |")
    return "\n".join(lines)


def plot(ctx, points, extra, out):
    import matplotlib.pyplot as plt
    from graphad.bench._plots import bars
    dtypes = [d for d in ("float64", "float32") if any(p.params["dtype"] == d for p in points)]
    fig, axes = plt.subplots(1, len(dtypes), figsize=(6.5 * len(dtypes), 4.8), squeeze=False)
    for ax, dt in zip(axes[0], dtypes):
        pts = [p for p in points if p.params["dtype"] == dt]
        bars(ax, pts, ref="GEMMs alone",
             xlabels=["-".join(map(str, p.params["sizes"])) + f"\nbatch {p.params['batch']}"
                      for p in pts])
        ax.set_title(f"training step, {dt}")
        ax.set_ylabel("time / GEMMs alone")
    fig.tight_layout()
    path = f"{out}/train_step.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
