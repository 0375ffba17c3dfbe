/* graphad's AVX-512 GEMM; see ga_gemm.h for the contract. */
#include "ga_gemm.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

typedef double v8d __attribute__((vector_size(64), aligned(8)));

/* One tile: R rows of A times a strip of B of V vectors of 8 columns, the last one under the
 * lane mask `last`, over all of k (R <= 8 with V <= 3, or R <= 12 with V <= 2).  The first
 * `rows` rows are real; missing ones re-read row 0 and are not stored.  The R*V accumulators
 * stay in registers (32 on AVX-512) and C is stored once (added to, when `add`).  R and V are
 * compile-time constants in each instance.  With few accumulators the FMA latency would bind,
 * so small tiles keep even and odd p in separate sums. */
#define STEP(ACC, P) do {                                                         \
    const double *bp = b + (P) * ldb;                                               \
    v8d bv[3];                                                                      \
    _Pragma("GCC unroll 3")                                                         \
    for (int v = 0; v < V; ++v)                                                     \
        bv[v] = (v8d)_mm512_maskz_loadu_pd(v < V - 1 ? (__mmask8)0xFF : last,       \
                                           bp + 8 * v);                             \
    _Pragma("GCC unroll 12")                                                        \
    for (int i = 0; i < R; ++i) {                                                   \
        double x = ap[i][(P) * acs];                                                \
        _Pragma("GCC unroll 3")                                                     \
        for (int v = 0; v < V; ++v)                                                 \
            ACC[i][v] += x * bv[v];                                                 \
    }                                                                               \
} while (0)

__attribute__((target("avx512f,fma"), always_inline))
static inline void tile(const int R, const int V, ptrdiff_t rows, __mmask8 last, ptrdiff_t k,
                        const double *a, ptrdiff_t ars, ptrdiff_t acs, const double *b,
                        ptrdiff_t ldb, double *c, ptrdiff_t ldc, int add)
{
    const int two = R * V <= 6;         /* two sums: even and odd p */
    v8d acc[12][3], acc2[12][3];
    const double *ap[12];
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) {
        ap[i] = a + (i < rows ? i : 0) * ars;
#pragma GCC unroll 3
        for (int v = 0; v < V; ++v)
            acc[i][v] = acc2[i][v] = (v8d){0};
    }
    ptrdiff_t p = 0;
    if (two)
        for (; p + 2 <= k; p += 2) {
            STEP(acc, p);
            STEP(acc2, p + 1);
        }
    for (; p < k; ++p)
        STEP(acc, p);
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) {      /* constant indices keep acc in registers */
        if (i >= rows)
            break;
#pragma GCC unroll 3
        for (int v = 0; v < V; ++v) {
            __mmask8 lanes = v < V - 1 ? (__mmask8)0xFF : last;
            v8d r = two ? acc[i][v] + acc2[i][v] : acc[i][v];
            if (add)
                r += (v8d)_mm512_maskz_loadu_pd(lanes, c + i * ldc + 8 * v);
            _mm512_mask_storeu_pd(c + i * ldc + 8 * v, lanes, (__m512d)r);
        }
    }
}

typedef void (*tile_fn)(ptrdiff_t, __mmask8, ptrdiff_t, const double *, ptrdiff_t, ptrdiff_t,
                        const double *, ptrdiff_t, double *, ptrdiff_t, int);

#define TILE(R, V)                                                                     \
__attribute__((target("avx512f,fma")))                                                 \
static void tile_##R##x##V(ptrdiff_t rows, __mmask8 last, ptrdiff_t k, const double *a, \
                           ptrdiff_t ars, ptrdiff_t acs, const double *b, ptrdiff_t ldb, \
                           double *c, ptrdiff_t ldc, int add)                          \
{                                                                                      \
    tile(R, V, rows, last, k, a, ars, acs, b, ldb, c, ldc, add);                      \
}
TILE(8, 1) TILE(8, 2) TILE(8, 3)
TILE(4, 1) TILE(4, 2) TILE(4, 3)
TILE(2, 1) TILE(2, 2) TILE(2, 3)
TILE(1, 1) TILE(1, 2) TILE(1, 3)
TILE(9, 1) TILE(9, 2) TILE(10, 1) TILE(10, 2) TILE(11, 1) TILE(11, 2) TILE(12, 1) TILE(12, 2)

/* [row class][vectors - 1]: 8 rows at a time, the last < 8 rows with the smallest tile that
 * holds them */
static const tile_fn TILES[4][3] = {
    {tile_8x1, tile_8x2, tile_8x3}, {tile_4x1, tile_4x2, tile_4x3},
    {tile_2x1, tile_2x2, tile_2x3}, {tile_1x1, tile_1x2, tile_1x3},
};

/* [rows - 9][vectors - 1]: products with 9-12 rows in all */
static const tile_fn TILES_9_12[4][2] = {
    {tile_9x1, tile_9x2}, {tile_10x1, tile_10x2}, {tile_11x1, tile_11x2}, {tile_12x1, tile_12x2},
};

static void strip(ptrdiff_t m, ptrdiff_t width, ptrdiff_t k, const double *a, ptrdiff_t ars,
                  ptrdiff_t acs, const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
{
    int vectors = (int)((width + 7) / 8);
    int tail = (int)(width - 8 * (vectors - 1));
    __mmask8 last = (__mmask8)((1u << tail) - 1u);
    for (ptrdiff_t i = 0; i < m; i += 8) {
        ptrdiff_t rows = m - i < 8 ? m - i : 8;
        int cls = rows > 4 ? 0 : rows > 2 ? 1 : rows == 2 ? 2 : 3;
        TILES[cls][vectors - 1](rows, last, k, a + i * ars, ars, acs, b, ldb, c + i * ldc, ldc,
                                0);
    }
}

/* Large products, blocked for the caches: k in chunks of KC, and for each chunk the rows of A
 * in blocks of MC, packed into 8-row panels (element (i, p) at p * 8 + i, rows past the end
 * zero) that stay in L2 while every 24-column strip of B's chunk goes past them, itself packed
 * (KC x 24, contiguous, in L1).  Unpacked, the 8 rows of a tile are 8 strided streams from L3
 * that the prefetchers do not keep up with once A outgrows L2, and a strip of B with rows a
 * power of two apart keeps evicting itself from L1 (half the speed at 500 x 500). */
enum { MC = 192, KC = 256 };

static void gemm_direct(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t ars,
                        ptrdiff_t acs, const double *b, ptrdiff_t ldb, double *c,
                        ptrdiff_t ldc);

static void gemm_blocked(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t ars,
                         ptrdiff_t acs, const double *b, ptrdiff_t brs, ptrdiff_t bcs,
                         double *c, ptrdiff_t ldc)
{
    /* packing buffers per thread, made on its first large product and kept (441 KiB) */
    static __thread double *pack;
    if (!pack && !(pack = aligned_alloc(64, sizeof(double) * (MC + 24) * KC)))
        abort();
    double *strip = pack + MC * KC;
    for (ptrdiff_t pc = 0; pc < k; pc += KC) {
        ptrdiff_t kc = k - pc < KC ? k - pc : KC;
        for (ptrdiff_t ic = 0; ic < m; ic += MC) {
            ptrdiff_t mc = m - ic < MC ? m - ic : MC;
            for (ptrdiff_t q = 0; q < mc; q += 8) {
                double *panel = pack + q * kc;
                for (ptrdiff_t i = 0; i < 8; ++i) {
                    const double *row = a + (ic + q + i) * ars + pc * acs;
                    if (q + i < mc)
                        for (ptrdiff_t p = 0; p < kc; ++p)
                            panel[p * 8 + i] = row[p * acs];
                    else
                        for (ptrdiff_t p = 0; p < kc; ++p)
                            panel[p * 8 + i] = 0;
                }
            }
            for (ptrdiff_t j = 0; j < n; j += 24) {
                ptrdiff_t width = n - j < 24 ? n - j : 24;
                int vectors = (int)((width + 7) / 8);
                __mmask8 last = (__mmask8)((1u << (width - 8 * (vectors - 1))) - 1u);
                const double *bj = b + pc * brs + j * bcs;
                if (bcs == 1)
                    for (ptrdiff_t p = 0; p < kc; ++p)
                        memcpy(strip + p * 24, bj + p * brs, sizeof(double) * width);
                else                     /* B column-major (W^T): read down its columns */
                    for (ptrdiff_t col = 0; col < width; ++col)
                        for (ptrdiff_t p = 0; p < kc; ++p)
                            strip[p * 24 + col] = bj[col * bcs + p * brs];
                for (ptrdiff_t q = 0; q < mc; q += 8)
                    TILES[0][vectors - 1](mc - q < 8 ? mc - q : 8, last, kc, pack + q * kc, 1,
                                          8, strip, 24, c + (ic + q) * ldc + j, ldc, pc > 0);
            }
        }
    }
}

int ga_gemm_blocked(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    return m >= 16 && k >= 64 && n >= 96 && (double)m * n * k >= 4e6;
}

void ga_gemm_strided_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t ars,
                       ptrdiff_t acs, const double *b, ptrdiff_t brs, ptrdiff_t bcs, double *c,
                       ptrdiff_t ldc)
{
    gemm_blocked(m, n, k, a, ars, acs, b, brs, bcs, c, ldc);
}

void ga_gemm_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t ars,
               ptrdiff_t acs, const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
{
    if (ga_gemm_blocked(m, n, k))
        gemm_blocked(m, n, k, a, ars, acs, b, ldb, 1, c, ldc);
    else
        gemm_direct(m, n, k, a, ars, acs, b, ldb, c, ldc);
}

/* Products that fit the caches: the tiles read A and B in place. */
static void gemm_direct(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t ars,
                        ptrdiff_t acs, const double *b, ptrdiff_t ldb, double *c,
                        ptrdiff_t ldc)
{
    if (m > 8 && m <= 12) {
        /* 9-12 rows (a block of ten cotangents): all in one pass over B, 16 columns at a
         * time, rather than 8 rows and then a short tile that reads B again */
        for (ptrdiff_t j = 0; j < n; j += 16) {
            ptrdiff_t width = n - j < 16 ? n - j : 16;
            int tail = (int)(width > 8 ? width - 8 : width);
            __mmask8 last = (__mmask8)((1u << tail) - 1u);
            TILES_9_12[m - 9][width > 8](m, last, k, a, ars, acs, b + j, ldb, c + j, ldc, 0);
        }
        return;
    }
    /* strips of B (k x 24) stay in cache while every 8-row block of A goes past them; the
     * last strip is narrower, its last vector under a mask that never touches memory past
     * the matrices' last column */
    for (ptrdiff_t j = 0; j < n; j += 24)
        strip(m, n - j < 24 ? n - j : 24, k, a, ars, acs, b + j, ldb, c + j, ldc);
}

/* C = A B^T for a few rows of A (m <= 4) and B n x k, both row-major: dot products along k,
 * so that every lane does useful work and B is read once at full width (the broadcast tiles
 * above would use m of 8 lanes).  Four rows of B at a time: 4m accumulators. */
__attribute__((target("avx512f,fma"), always_inline))
static inline void dots(const int M, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda,
                        const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
{
    __mmask8 tail = (__mmask8)((1u << (k % 8)) - 1u);
    ptrdiff_t k8 = k - k % 8;
    for (ptrdiff_t j = 0; j < n; j += 4) {
        const int J = n - j < 4 ? (int)(n - j) : 4;
        const double *bp[4];
        __m512d acc[4][4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
            bp[q] = b + (j + (q < J ? q : 0)) * ldb;
#pragma GCC unroll 4
            for (int i = 0; i < M; ++i)
                acc[i][q] = _mm512_setzero_pd();
        }
#define DOT_STEP(LANES)                                                             \
        do {                                                                        \
            __m512d av[4];                                                          \
            _Pragma("GCC unroll 4")                                                 \
            for (int i = 0; i < M; ++i)                                             \
                av[i] = _mm512_maskz_loadu_pd(LANES, a + i * lda + p);              \
            _Pragma("GCC unroll 4")                                                 \
            for (int q = 0; q < 4; ++q) {                                           \
                __m512d bv = _mm512_maskz_loadu_pd(LANES, bp[q] + p);               \
                _Pragma("GCC unroll 4")                                             \
                for (int i = 0; i < M; ++i)                                         \
                    acc[i][q] = _mm512_fmadd_pd(av[i], bv, acc[i][q]);              \
            }                                                                       \
        } while (0)
        ptrdiff_t p = 0;
        for (; p < k8; p += 8)
            DOT_STEP((__mmask8)0xFF);
        if (tail)
            DOT_STEP(tail);
#undef DOT_STEP
#pragma GCC unroll 4
        for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q)
                if (q < J)
                    c[i * ldc + j + q] = _mm512_reduce_add_pd(acc[i][q]);
    }
}

#define DOTS(M)                                                                         \
__attribute__((target("avx512f,fma")))                                                  \
static void dots_##M(ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda,         \
                     const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)         \
{                                                                                       \
    dots(M, n, k, a, lda, b, ldb, c, ldc);                                             \
}
DOTS(1) DOTS(2) DOTS(3) DOTS(4)

void ga_gemm_nt_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda,
                  const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
{
    static void (*const by_rows[4])(ptrdiff_t, ptrdiff_t, const double *, ptrdiff_t,
                                    const double *, ptrdiff_t, double *, ptrdiff_t) = {
        dots_1, dots_2, dots_3, dots_4};
    for (ptrdiff_t i = 0; i < m; i += 4) {
        ptrdiff_t rows = m - i < 4 ? m - i : 4;
        by_rows[rows - 1](n, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
    }
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
void ga_gemm_nt_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t lda,
                  const double *b, ptrdiff_t ldb, double *c, ptrdiff_t ldc)
{
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)c; (void)ldc;
}
int ga_gemm_blocked(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    (void)m; (void)n; (void)k;
    return 0;
}
void ga_gemm_strided_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const double *a, ptrdiff_t ars,
                       ptrdiff_t acs, const double *b, ptrdiff_t brs, ptrdiff_t bcs, double *c,
                       ptrdiff_t ldc)
{
    (void)m; (void)n; (void)k; (void)a; (void)ars; (void)acs; (void)b; (void)brs; (void)bcs;
    (void)c; (void)ldc;
}

#endif
