"""graphad's own AVX-512 GEMM (csrc/ga_gemm*) against the BLAS the user has, on the shapes the
other workloads and the sweeps make, both dtypes."""
import os

import numpy as np

NAME = "gemm"
TITLE = "graphad's own AVX-512 GEMM against BLAS"
DESCRIPTION = """
C = A @ B, A m x k, B k x n (W^T: B a transposed row-major W). "graphad own" and "graphad via
BLAS" both go through graphad's `_kernels.matmul` (`set_own_gemm(True, always=True)` forces the
kernel, `set_own_gemm(False)` BLAS), so their ratio isolates the kernel; "dispatch" says which of
the two graphad's rules (`_kernels._use_own_gemm`) pick for the shape here; "NumPy (BLAS)" is np.matmul on the same BLAS; PyTorch's matmul
(its own bundled BLAS) is a second library where installed. OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are recorded as found (unset: OpenBLAS picks its kernel for this CPU; the
kernel family threadpoolctl reports is in the header).
"""
# (m, k, n, W^T): the shapes of the MLPs (batch x in x out and their backward), Jacobian blocks
SHAPES = [(10, 256, 10, True), (100, 256, 10, False), (10, 256, 1000, False),
          (2, 256, 1000, True), (32, 64, 32, False), (128, 64, 128, False),
          (128, 128, 128, False), (128, 128, 128, True), (256, 512, 512, False),
          (500, 500, 500, False), (1000, 256, 1000, True), (32, 4096, 2048, False),
          (3000, 3000, 24, False), (512, 1024, 1024, False), (512, 1024, 1024, True)]


def shapes(ctx):
    if ctx.tiny:
        return [(10, 256, 10, True), (32, 64, 32, False)]
    if ctx.quick:
        return SHAPES[:11]
    return SHAPES


def units(ctx):
    return 2 * len(shapes(ctx))


def run(ctx):
    from graphad import _kernels as K
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    if not K.own_gemm_available():
        ctx.skipped["graphad own GEMM"] = "needs AVX-512; this CPU has none"
        return {"available": False, "env": env}
    te = ctx.peer("torch_eager")
    rng = np.random.default_rng(0)
    prev = K.own_gemm_enabled()
    try:
        for dtype in ("float64", "float32"):
            for m, k, n, wt in shapes(ctx):
                a = rng.standard_normal((m, k)).astype(dtype)
                b = (rng.standard_normal((n, k)).T if wt else
                     rng.standard_normal((k, n))).astype(dtype)
                exact = a.astype(np.float64) @ b.astype(np.float64)
                tol = 1e-12 if dtype == "float64" else 1e-5
                K.set_own_gemm(True)
                dispatch = "own" if K.own_gemm_rule(m, k, n, False, wt) else "BLAS"
                K.set_own_gemm(True, always=True)
                assert np.allclose(K.matmul(a, b), exact, rtol=tol, atol=tol * k)

                def own():
                    K.set_own_gemm(True, always=True)
                    K.matmul(a, b)

                def blas():
                    K.set_own_gemm(False)
                    K.matmul(a, b)
                cases = {"graphad own": own, "graphad via BLAS": blas,
                         "NumPy (BLAS)": lambda: np.matmul(a, b)}
                roles = {"graphad own": "graphad", "graphad via BLAS": "peer",
                         "NumPy (BLAS)": "peer"}
                if te is not None:
                    cases["PyTorch matmul"] = te.matmul(a, b)
                    roles["PyTorch matmul"] = "peer"
                label = f"{dtype} {m}x{k}x{n}{' W^T' if wt else ''}"
                ctx.point(label, ctx.measure(cases), roles,
                          {"dtype": dtype, "m": m, "k": k, "n": n, "wt": wt, "dispatch": dispatch,
                           "gflop": 2 * m * k * n / 1e9})
                ctx.step(label)
    finally:
        K.set_own_gemm(prev)
    return {"available": True, "env": env}


def report(ctx, points, extra):
    if not extra.get("available"):
        return "graphad's own GEMM needs AVX-512; this CPU has none (every product uses BLAS)."
    def best_of_rounds(p):
        """own / the best BLAS, each at its fastest round: a kernel's speed, the machine's load
        (which only ever adds time) taken out."""
        own = p.timings["graphad own"].samples.min()
        return own / min(t.samples.min() for k, t in p.timings.items() if k != "graphad own")
    wins = [p for p in points if p.summary()["vs_best_peer"][0] <= 1 / 1.2
            and best_of_rounds(p) <= 1 / 1.2]
    lines = ["GFLOP/s (one thread, medians):", "",
             "| shape | own | graphad via BLAS | NumPy (BLAS) | PyTorch | own / best BLAS | "
             "same, fastest rounds | dispatch |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for p in points:
        gf = p.params["gflop"]
        g = lambda k: "n/a" if k not in p.timings else f"{gf / p.median(k):.1f}"  # noqa: E731
        lines.append(f"| {p.label} | {g('graphad own')} | {g('graphad via BLAS')} | "
                     f"{g('NumPy (BLAS)')} | {g('PyTorch matmul')} | "
                     f"{p.summary()['vs_best_peer'][0]:.2f} | {best_of_rounds(p):.2f} | "
                     f"{p.params.get('dispatch', '?')} |")
    lines += ["", f"The own kernel wins by >= 1.2x against the best BLAS (both statistics) on "
              f"{len(wins)} of "
              f"{len(points)} shapes" + (": " + ", ".join(p.label for p in wins) if wins else "")
              + f". OPENBLAS_CORETYPE={extra['env']['OPENBLAS_CORETYPE']}, "
              f"OPENBLAS_L2_SIZE={extra['env']['OPENBLAS_L2_SIZE']}."]
    return "\n".join(lines)
