/* graphad's AVX-512 GEMM; see ga_gemm.h for the contract. */
#include "ga_gemm.h"
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

typedef double v8d __attribute__((vector_size(64), aligned(8)));

/* One tile: up to 8 rows of A times a strip of B 24 columns wide, over all of k; the 24
 * accumulators stay in registers (32 on AVX-512) and C is stored once.  Missing rows re-read
 * row 0 and are not stored. */
__attribute__((target("avx512f,fma")))
static void tile24(ptrdiff_t rows, ptrdiff_t k, const double *a, ptrdiff_t ars, ptrdiff_t acs,
                   const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
{
    v8d acc[8][3];
    memset(acc, 0, sizeof acc);
    const double *ap[8];
    for (int i = 0; i < 8; ++i)
        ap[i] = a + (i < rows ? i : 0) * ars;
    for (ptrdiff_t p = 0; p < k; ++p) {
        v8d b0, b1, b2;
        memcpy(&b0, b + p * ldb, 64);
        memcpy(&b1, b + p * ldb + 8, 64);
        memcpy(&b2, b + p * ldb + 16, 64);
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            double s = ap[i][p * acs];
            acc[i][0] += s * b0;
            acc[i][1] += s * b1;
            acc[i][2] += s * b2;
        }
    }
    for (ptrdiff_t i = 0; i < rows; ++i)
        memcpy(c + i * ldc, acc[i], sizeof acc[i]);
}

/* The narrower strips (8 columns, then fewer under a mask) take 4 rows at a time. */
__attribute__((target("avx512f,fma")))
static void tile8(ptrdiff_t rows, ptrdiff_t k, const double *a, ptrdiff_t ars, ptrdiff_t acs,
                  const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
{
    v8d c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
    const double *a0 = a, *a1 = a + (rows > 1) * ars, *a2 = a + (rows > 2) * 2 * ars,
                 *a3 = a + (rows > 3) * 3 * ars;
    for (ptrdiff_t p = 0; p < k; ++p) {
        v8d b0;
        memcpy(&b0, b + p * ldb, 64);
        c0 += a0[p * acs] * b0;
        c1 += a1[p * acs] * b0;
        c2 += a2[p * acs] * b0;
        c3 += a3[p * acs] * b0;
    }
    v8d out[4] = {c0, c1, c2, c3};
    for (ptrdiff_t i = 0; i < rows; ++i)
        memcpy(c + i * ldc, &out[i], sizeof out[i]);
}

/* As tile8, for a strip of width < 8: loads and stores under a lane mask never touch memory
 * past the matrices' last column. */
__attribute__((target("avx512f,fma")))
static void tile_masked(ptrdiff_t rows, ptrdiff_t k, const double *a, ptrdiff_t ars,
                        ptrdiff_t acs, const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc,
                        int width)
{
    __mmask8 lanes = (__mmask8)((1u << width) - 1u);
    __m512d c0 = _mm512_setzero_pd(), c1 = c0, c2 = c0, c3 = c0;
    const double *a0 = a, *a1 = a + (rows > 1) * ars, *a2 = a + (rows > 2) * 2 * ars,
                 *a3 = a + (rows > 3) * 3 * ars;
    for (ptrdiff_t p = 0; p < k; ++p) {
        __m512d b0 = _mm512_maskz_loadu_pd(lanes, b + p * ldb);
        c0 = _mm512_fmadd_pd(_mm512_set1_pd(a0[p * acs]), b0, c0);
        c1 = _mm512_fmadd_pd(_mm512_set1_pd(a1[p * acs]), b0, c1);
        c2 = _mm512_fmadd_pd(_mm512_set1_pd(a2[p * acs]), b0, c2);
        c3 = _mm512_fmadd_pd(_mm512_set1_pd(a3[p * acs]), b0, c3);
    }
    __m512d out[4] = {c0, c1, c2, c3};
    for (ptrdiff_t i = 0; i < rows; ++i)
        _mm512_mask_storeu_pd(c + i * ldc, lanes, out[i]);
}

__attribute__((target("avx512f,fma")))
void ga_gemm_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t ars,
               ptrdiff_t acs, const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
{
    ptrdiff_t j = 0;
    /* strips of B (k x 24) stay in cache while every 8-row block of A goes past them */
    for (; j + 24 <= n; j += 24)
        for (ptrdiff_t i = 0; i < m; i += 8)
            tile24(m - i < 8 ? m - i : 8, k, a + i * ars, ars, acs, b + j, ldb,
                   c + i * ldc + j, ldc);
    for (; j + 8 <= n; j += 8)
        for (ptrdiff_t i = 0; i < m; i += 4)
            tile8(m - i < 4 ? m - i : 4, k, a + i * ars, ars, acs, b + j, ldb,
                  c + i * ldc + j, ldc);
    if (j < n)                              /* the last < 8 columns, under a mask */
        for (ptrdiff_t i = 0; i < m; i += 4)
            tile_masked(m - i < 4 ? m - i : 4, k, a + i * ars, ars, acs, b + j, ldb,
                        c + i * ldc + j, ldc, (int)(n - j));
}

int ga_gemm_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
}

#else

int ga_gemm_available(void) { return 0; }
void ga_gemm_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t ars,
               ptrdiff_t acs, const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
{
    (void)m; (void)n; (void)k; (void)a; (void)ars; (void)acs; (void)b; (void)ldb; (void)c;
    (void)ldc;
}

#endif
