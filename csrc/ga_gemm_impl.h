/* The body of graphad's AVX-512 GEMM for one element type, included by ga_gemm.c once for
 * double and once for float, with:
 *   T      the element type            VEC    its 64-byte vector (GCC vector extension)
 *   L      lanes in a vector (8, 16)   MASK   the lane-mask type, FULL all lanes
 *   SFX    the suffix of every name    LOADZ, STOREM, REDUCE   masked load / store, lane sum
 * Widths below are in vectors: a strip of B is 3 vectors wide (24 doubles, 48 floats).  The
 * parameters are undefined at the end. */

#define FN(x) FN_(x, SFX)
#define FN_(x, s) FN__(x, s)
#define FN__(x, s) x##_##s

/* One tile: R rows of A times a strip of B of V vectors, the last one under the lane mask
 * `last`, over all of k (R <= 8 with V <= 3, or R <= 12 with V <= 2).  The first `rows` rows
 * are real; missing ones re-read row 0 and are not stored.  The R*V accumulators stay in
 * registers (32 on AVX-512) and C is stored once.  R and V are
 * compile-time constants in each instance.  With few accumulators the FMA latency would bind,
 * so small tiles keep even and odd p in separate sums. */
#define STEP(ACC, P) do {                                                         \
    const T *bp = b + (P) * ldb;                                                  \
    VEC bv[3];                                                                    \
    _Pragma("GCC unroll 3")                                                       \
    for (int v = 0; v < V; ++v)                                                   \
        bv[v] = LOADZ(v < V - 1 ? FULL : last, bp + L * v);                       \
    _Pragma("GCC unroll 12")                                                      \
    for (int i = 0; i < R; ++i) {                                                 \
        T x = ap[i][(P) * acs];                                                   \
        _Pragma("GCC unroll 3")                                                   \
        for (int v = 0; v < V; ++v)                                               \
            ACC[i][v] += x * bv[v];                                               \
    }                                                                             \
} while (0)

__attribute__((target("avx512f,fma"), always_inline))
static inline void FN(tile)(const int R, const int V, ptrdiff_t rows, MASK last, ptrdiff_t k,
                            const T *a, ptrdiff_t ars, ptrdiff_t acs, const T *b, ptrdiff_t ldb,
                            T *c, ptrdiff_t ldc)
{
    const int two = R * V <= 6;         /* two sums: even and odd p */
    VEC acc[12][3], acc2[12][3];
    const T *ap[12];
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) {
        ap[i] = a + (i < rows ? i : 0) * ars;
#pragma GCC unroll 3
        for (int v = 0; v < V; ++v)
            acc[i][v] = acc2[i][v] = (VEC){0};
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
            MASK lanes = v < V - 1 ? FULL : last;
            VEC r = two ? acc[i][v] + acc2[i][v] : acc[i][v];
            STOREM(c + i * ldc + L * v, lanes, r);
        }
    }
}
#undef STEP

typedef void (*FN(tile_fn))(ptrdiff_t, MASK, ptrdiff_t, const T *, ptrdiff_t, ptrdiff_t,
                            const T *, ptrdiff_t, T *, ptrdiff_t);

#define TILE(R, V)                                                                       \
__attribute__((target("avx512f,fma")))                                                   \
static void FN(tile_##R##x##V)(ptrdiff_t rows, MASK last, ptrdiff_t k, const T *a,       \
                               ptrdiff_t ars, ptrdiff_t acs, const T *b, ptrdiff_t ldb,  \
                               T *c, ptrdiff_t ldc)                                      \
{                                                                                        \
    FN(tile)(R, V, rows, last, k, a, ars, acs, b, ldb, c, ldc);                         \
}
TILE(8, 1) TILE(8, 2) TILE(8, 3)
TILE(4, 1) TILE(4, 2) TILE(4, 3)
TILE(2, 1) TILE(2, 2) TILE(2, 3)
TILE(1, 1) TILE(1, 2) TILE(1, 3)
TILE(9, 1) TILE(9, 2) TILE(10, 1) TILE(10, 2) TILE(11, 1) TILE(11, 2) TILE(12, 1) TILE(12, 2)
#undef TILE

/* [row class][vectors - 1]: 8 rows at a time, the last < 8 rows with the smallest tile that
 * holds them */
static const FN(tile_fn) FN(TILES)[4][3] = {
    {FN(tile_8x1), FN(tile_8x2), FN(tile_8x3)}, {FN(tile_4x1), FN(tile_4x2), FN(tile_4x3)},
    {FN(tile_2x1), FN(tile_2x2), FN(tile_2x3)}, {FN(tile_1x1), FN(tile_1x2), FN(tile_1x3)},
};

/* [rows - 9][vectors - 1]: products with 9-12 rows in all */
static const FN(tile_fn) FN(TILES_9_12)[4][2] = {
    {FN(tile_9x1), FN(tile_9x2)}, {FN(tile_10x1), FN(tile_10x2)},
    {FN(tile_11x1), FN(tile_11x2)}, {FN(tile_12x1), FN(tile_12x2)},
};

/* the mask of the last vector of a strip `width` wide, and its number of vectors */
static inline MASK FN(last_lanes)(ptrdiff_t width, int *vectors)
{
    *vectors = (int)((width + L - 1) / L);
    return (MASK)((1u << (width - L * (*vectors - 1))) - 1u);
}

/* The tiles read A and B in place (the products it is used for fit the caches).  Strips of B (k x 3 vectors)
 * stay in cache while every 8-row block of A goes past them; the last strip is narrower, its
 * last vector under a mask that never touches memory past the matrices' last column. */
void FN(ga_gemm)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *a, ptrdiff_t ars,
                 ptrdiff_t acs, const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc)
{
    int vectors;
    if (m > 8 && m <= 12) {
        /* 9-12 rows (a block of ten cotangents): all in one pass over B, 2 vectors at a
         * time, rather than 8 rows and then a short tile that reads B again */
        for (ptrdiff_t j = 0; j < n; j += 2 * L) {
            MASK last = FN(last_lanes)(n - j < 2 * L ? n - j : 2 * L, &vectors);
            FN(TILES_9_12)[m - 9][vectors - 1](m, last, k, a, ars, acs, b + j, ldb, c + j, ldc);
        }
        return;
    }
    for (ptrdiff_t j = 0; j < n; j += 3 * L) {
        MASK last = FN(last_lanes)(n - j < 3 * L ? n - j : 3 * L, &vectors);
        for (ptrdiff_t i = 0; i < m; i += 8) {
            ptrdiff_t rows = m - i < 8 ? m - i : 8;
            int cls = rows > 4 ? 0 : rows > 2 ? 1 : rows == 2 ? 2 : 3;
            FN(TILES)[cls][vectors - 1](rows, last, k, a + i * ars, ars, acs, b + j, ldb,
                                        c + i * ldc + j, ldc);
        }
    }
}

/* C = A B^T for a few rows of A (m <= 4) and B n x k, both row-major: dot products along k,
 * so that every lane does useful work and B is read once at full width (the broadcast tiles
 * above would use m of L lanes).  Four rows of B at a time: 4m accumulators. */
#define DOT_STEP(LANES) do {                                                      \
    VEC av[4];                                                                    \
    _Pragma("GCC unroll 4")                                                       \
    for (int i = 0; i < M; ++i)                                                   \
        av[i] = LOADZ(LANES, a + i * lda + p);                                    \
    _Pragma("GCC unroll 4")                                                       \
    for (int q = 0; q < 4; ++q) {                                                 \
        VEC bv = LOADZ(LANES, bp[q] + p);                                         \
        _Pragma("GCC unroll 4")                                                   \
        for (int i = 0; i < M; ++i)                                               \
            acc[i][q] += av[i] * bv;                                              \
    }                                                                             \
} while (0)

__attribute__((target("avx512f,fma"), always_inline))
static inline void FN(dots)(const int M, ptrdiff_t n, ptrdiff_t k, const T *a, ptrdiff_t lda,
                            const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc)
{
    MASK tail = (MASK)((1u << (k % L)) - 1u);
    ptrdiff_t kl = k - k % L;
    for (ptrdiff_t j = 0; j < n; j += 4) {
        const int J = n - j < 4 ? (int)(n - j) : 4;
        const T *bp[4];
        VEC acc[4][4];
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) {
            bp[q] = b + (j + (q < J ? q : 0)) * ldb;
#pragma GCC unroll 4
            for (int i = 0; i < M; ++i)
                acc[i][q] = (VEC){0};
        }
        ptrdiff_t p = 0;
        for (; p < kl; p += L)
            DOT_STEP(FULL);
        if (tail)
            DOT_STEP(tail);
#pragma GCC unroll 4
        for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q)
                if (q < J)
                    c[i * ldc + j + q] = REDUCE(acc[i][q]);
    }
}
#undef DOT_STEP

#define DOTS(M)                                                                         \
__attribute__((target("avx512f,fma")))                                                  \
static void FN(dots_##M)(ptrdiff_t n, ptrdiff_t k, const T *a, ptrdiff_t lda,          \
                         const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc)               \
{                                                                                       \
    FN(dots)(M, n, k, a, lda, b, ldb, c, ldc);                                         \
}
DOTS(1) DOTS(2) DOTS(3) DOTS(4)
#undef DOTS

void FN(ga_gemm_nt)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *a, ptrdiff_t lda,
                    const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc)
{
    static void (*const by_rows[4])(ptrdiff_t, ptrdiff_t, const T *, ptrdiff_t, const T *,
                                    ptrdiff_t, T *, ptrdiff_t) = {
        FN(dots_1), FN(dots_2), FN(dots_3), FN(dots_4)};
    for (ptrdiff_t i = 0; i < m; i += 4) {
        ptrdiff_t rows = m - i < 4 ? m - i : 4;
        by_rows[rows - 1](n, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
    }
}

#undef FN
#undef FN_
#undef FN__
/* the parameters, so that the next inclusion can define them again */
#undef T
#undef VEC
#undef L
#undef MASK
#undef FULL
#undef SFX
#undef LOADZ
#undef STOREM
#undef REDUCE
