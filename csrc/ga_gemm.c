/* graphad's AVX-512 GEMM for float64 and float32 (the body, once per type, is ga_gemm_impl.h);
 * see ga_gemm.h for the contract. */
#include "ga_gemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

typedef double v8d __attribute__((vector_size(64), aligned(8)));
typedef float v16f __attribute__((vector_size(64), aligned(4)));

#define T double
#define VEC v8d
#define L 8
#define MASK __mmask8
#define FULL ((__mmask8)0xFF)
#define SFX d
#define LOADZ(m, p) ((v8d)_mm512_maskz_loadu_pd((m), (p)))
#define STOREM(p, m, v) _mm512_mask_storeu_pd((p), (m), (__m512d)(v))
#define REDUCE(v) _mm512_reduce_add_pd((__m512d)(v))
#include "ga_gemm_impl.h"

#define T float
#define VEC v16f
#define L 16
#define MASK __mmask16
#define FULL ((__mmask16)0xFFFF)
#define SFX f
#define LOADZ(m, p) ((v16f)_mm512_maskz_loadu_ps((m), (p)))
#define STOREM(p, m, v) _mm512_mask_storeu_ps((p), (m), (__m512)(v))
#define REDUCE(v) _mm512_reduce_add_ps((__m512)(v))
#include "ga_gemm_impl.h"

int ga_gemm_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
}

#else

int ga_gemm_available(void) { return 0; }
/* never called: ga_gemm_available() says so */
#define STUBS(T, S)                                                                      \
void ga_gemm_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *a, ptrdiff_t ars,      \
                 ptrdiff_t acs, const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc)         \
{ (void)m; (void)n; (void)k; (void)a; (void)ars; (void)acs; (void)b; (void)ldb; (void)c; \
  (void)ldc; }                                                                           \
void ga_gemm_nt_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *a, ptrdiff_t lda,   \
                    const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc)                      \
{ (void)m; (void)n; (void)k; (void)a; (void)lda; (void)b; (void)ldb; (void)c; (void)ldc; }
STUBS(double, d)
STUBS(float, f)

#endif
