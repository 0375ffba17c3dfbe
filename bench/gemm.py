"""graphad's float64 and float32 matrix products against the BLAS behind SciPy, one thread, on
the shapes the other benchmarks and the sweeps produce: square and rectangular, thin (a block of
a few cotangents or tangents times a weight), and A @ W^T with W row-major (a transposed view).

Both columns go through graphad's `_kernels.matmul`; `set_own_gemm(False)` sends every product
to BLAS, so the ratio isolates the kernel.  On a CPU without AVX-512 the own kernel is not
available and the script says so.

    python bench/gemm.py [--quick] [--out bench/out]
"""
import os
import sys
import timeit

import numpy as np

# (m, k, n, W^T): C = A @ B with A m x k and B k x n, B a transposed row-major W when W^T
SHAPES = [(10, 256, 10, True), (100, 256, 10, False), (10, 256, 1000, False),
          (2, 256, 1000, True), (10, 256, 1000, True), (1000, 256, 10, True),
          (128, 128, 128, False), (128, 128, 128, True), (256, 512, 512, False),
          (500, 500, 500, False), (1000, 256, 1000, True), (32, 4096, 2048, False),
          (3000, 3000, 24, False), (512, 1024, 1024, False), (512, 1024, 1024, True)]


def _best(fn, budget):
    fn()
    number = max(1, int(budget / 5 / max(timeit.timeit(fn, number=1), 1e-7)))
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def _compare(K, rng, dtype, m, k, n, wt, budget):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = (rng.standard_normal((n, k)).T if wt else rng.standard_normal((k, n))).astype(dtype)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.allclose(K.matmul(a, b), exact, rtol=tol, atol=tol * k)
    K.set_own_gemm(True)
    own = _best(lambda: K.matmul(a, b), budget)
    K.set_own_gemm(False)
    blas = _best(lambda: K.matmul(a, b), budget)
    K.set_own_gemm(True)
    gf = 2 * m * k * n / 1e9
    return {"dtype": np.dtype(dtype).name, "m": m, "k": k, "n": n, "wt": wt, "own": own,
            "blas": blas, "own_gflops": gf / own, "blas_gflops": gf / blas}


def run(quick=False, out="bench/out"):
    from threadpoolctl import threadpool_limits
    from graphad import _kernels as K
    if not K.own_gemm_available():
        print("graphad's own GEMM needs AVX-512; this CPU has none (every product uses BLAS)")
        return []
    rng = np.random.default_rng(0)
    budget = 0.05 if quick else 0.2
    rows = []
    prev = K.set_own_gemm(True)
    try:
        with threadpool_limits(1):
            for dtype in (np.float64, np.float32):
                for m, k, n, wt in SHAPES[:8] if quick else SHAPES:
                    rows.append(_compare(K, rng, dtype, m, k, n, wt, budget))
    finally:
        K.set_own_gemm(prev)
    lines = ["| dtype | m x k x n | B | graphad | GFLOP/s | BLAS | GFLOP/s | graphad / BLAS |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['dtype']} | {r['m']} x {r['k']} x {r['n']} | "
                     f"{'W^T' if r['wt'] else 'row-major'} | "
                     f"{r['own'] * 1e6:.1f} us | {r['own_gflops']:.0f} | "
                     f"{r['blas'] * 1e6:.1f} us | {r['blas_gflops']:.0f} | "
                     f"{r['own'] / r['blas']:.2f} |")
    from graphad.__main__ import bench_write
    bench_write(out, "gemm", "\n".join(lines), {
        "rows": rows, "quick": quick, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")})
    return rows


if __name__ == "__main__":
    from graphad.__main__ import bench_script
    sys.exit(bench_script(run, __doc__))
