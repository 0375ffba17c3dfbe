/* graphad's own GEMM for CPUs with AVX-512, float64 (_d) and float32 (_f): C = A B.
 *
 * Why: on the small and medium products of the sweeps (up to a few million multiply-adds, and
 * thin outputs of any size) a register-tiled loop that reads its operands in place beats
 * OpenBLAS's packing kernels by 1.2-6x on one thread (the measured table is at _use_own_gemm in
 * graphad/_kernels.pyx).  It does not block for the caches: larger products go to BLAS.
 * Contract:
 *   - A is m x k with element (i, p) at a[i * ars + p * acs] (any strides: its entries are
 *     broadcast one at a time);
 *   - B is k x n row-major with row stride ldb (unit column stride); C is m x n row-major with
 *     row stride ldc, written (not accumulated); C aliases neither A nor B;
 *   - call only when ga_gemm_available() is 1 (the CPU has AVX-512F), without the GIL.
 */
#ifndef GA_GEMM_H
#define GA_GEMM_H
#include <stddef.h>

int ga_gemm_available(void);
void ga_gemm_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t ars,
               ptrdiff_t acs, const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc);
void ga_gemm_f(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t ars,
               ptrdiff_t acs, const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc);

/* C = A B^T with A m x k (row stride lda) and B n x k (row stride ldb), both row-major, by dot
 * products: for the thin products (a value and a few tangents times a weight) where m is
 * small (it is best for m <= 4).  Same conditions as ga_gemm_d. */
void ga_gemm_nt_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda,
                  const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc);
void ga_gemm_nt_f(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                  const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc);

#endif
