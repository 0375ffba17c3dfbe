/* graphad's own GEMM for CPUs with AVX-512, float64 (_d) and float32 (_f): C = A B.
 *
 * Why: OpenBLAS is often pinned to its AVX2 (Haswell) kernels (OPENBLAS_CORETYPE), which on an
 * AVX-512 CPU run GEMMs about 2x below what a register-tiled AVX-512 loop reaches, and more so
 * for the thin products of reverse mode (a block of a few cotangents times a weight matrix).
 * Large products are blocked for the caches (see gemm_blocked).  Contract:
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

/* Whether ga_gemm_d / _f run the product (m x k times k x n) blocked for the caches, with A and B
 * packed: the large products.  Those may also have B of any strides: */
int ga_gemm_blocked(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k);

/* C = A B as ga_gemm_d / _f, for a product that ga_gemm_blocked accepts, with B's element (p, j) at
 * b[p * brs + j * bcs] (a transposed weight needs no copy) */
void ga_gemm_strided_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t ars,
                       ptrdiff_t acs, const double *b, ptrdiff_t brs, ptrdiff_t bcs, double *c,
                       ptrdiff_t ldc);
void ga_gemm_strided_f(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t ars,
                       ptrdiff_t acs, const float *b, ptrdiff_t brs, ptrdiff_t bcs, float *c,
                       ptrdiff_t ldc);

/* C = A B^T with A m x k (row stride lda) and B n x k (row stride ldb), both row-major, by dot
 * products: for the thin products (a value and a few tangents times a weight) where m is
 * small (it is best for m <= 4).  Same conditions as ga_gemm_d. */
void ga_gemm_nt_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda,
                  const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc);
void ga_gemm_nt_f(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *a, ptrdiff_t lda,
                  const float *b, ptrdiff_t ldb, float *c, ptrdiff_t ldc);

#endif
