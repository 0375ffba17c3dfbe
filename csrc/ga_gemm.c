/* graphad's AVX-512 GEMM; see ga_gemm.h for the contract. */
#include "ga_gemm.h"
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

typedef double v8d __attribute__((vector_size(64), aligned(8)));

/* One tile: rows (<= 4) of A times a strip of B 24 (or 8) columns wide, over all of k; the
 * 12 (or 4) accumulators stay in registers and C is stored once.  The loop bodies are spelled
 * out so that the compiler keeps every accumulator in a register. */
__attribute__((target("avx512f,fma")))
static void tile24(ptrdiff_t rows, ptrdiff_t k, const double *a, ptrdiff_t ars, ptrdiff_t acs,
                   const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
{
    v8d c00 = {0}, c01 = {0}, c02 = {0}, c10 = {0}, c11 = {0}, c12 = {0};
    v8d c20 = {0}, c21 = {0}, c22 = {0}, c30 = {0}, c31 = {0}, c32 = {0};
    const double *a0 = a, *a1 = a + (rows > 1) * ars, *a2 = a + (rows > 2) * 2 * ars,
                 *a3 = a + (rows > 3) * 3 * ars;     /* missing rows re-read row 0, unused */
    for (ptrdiff_t p = 0; p < k; ++p) {
        v8d b0, b1, b2;
        memcpy(&b0, b + p * ldb, 64);
        memcpy(&b1, b + p * ldb + 8, 64);
        memcpy(&b2, b + p * ldb + 16, 64);
        double s0 = a0[p * acs], s1 = a1[p * acs], s2 = a2[p * acs], s3 = a3[p * acs];
        c00 += s0 * b0; c01 += s0 * b1; c02 += s0 * b2;
        c10 += s1 * b0; c11 += s1 * b1; c12 += s1 * b2;
        c20 += s2 * b0; c21 += s2 * b1; c22 += s2 * b2;
        c30 += s3 * b0; c31 += s3 * b1; c32 += s3 * b2;
    }
    v8d out[4][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32}};
    for (ptrdiff_t i = 0; i < rows; ++i)
        memcpy(c + i * ldc, out[i], sizeof out[i]);
}

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
    /* strips of B (k x 24) stay in cache while every 4-row block of A goes past them */
    for (; j + 24 <= n; j += 24)
        for (ptrdiff_t i = 0; i < m; i += 4)
            tile24(m - i < 4 ? m - i : 4, k, a + i * ars, ars, acs, b + j, ldb,
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
