/* graphad C kernels; see ga_kernels.h for the contract. */
#include "ga_kernels.h"
#include <math.h>

/* One loop per stride pattern, so that each has constant strides and vectorizes. */
#define BINARY_LOOP(EXPR)                                              \
    if (sa == 1 && sb == 1) {                                          \
        for (ptrdiff_t i = 0; i < n; ++i) {                           \
            T x = a[i], y = b[i];                                      \
            out[i] = (EXPR);                                          \
        }                                                              \
    } else if (sa == 1) {                                              \
        const T y = b[0];                                              \
        for (ptrdiff_t i = 0; i < n; ++i) {                           \
            T x = a[i];                                                \
            out[i] = (EXPR);                                          \
        }                                                              \
    } else if (sb == 1) {                                              \
        const T x = a[0];                                              \
        for (ptrdiff_t i = 0; i < n; ++i) {                           \
            T y = b[i];                                                \
            out[i] = (EXPR);                                          \
        }                                                              \
    } else {                                                           \
        for (ptrdiff_t i = 0; i < n; ++i) {                           \
            T x = a[i * sa], y = b[i * sb];                           \
            out[i] = (EXPR);                                          \
        }                                                              \
    }

/* log(e^x + e^y) as NumPy's npy_logaddexp: equal arguments (infinities included) give
 * x + log 2; otherwise the larger plus log1p(e^-|x-y|); NaN propagates.  LN2 = 1 for base e,
 * and the base-2 variant scales the log1p by 1/ln 2. */
#define LOGADDEXP(x, y, EXP, LOG1P, LOGE2, SCALE)                             \
    ((x) == (y) ? (x) + (LOGE2)                                              \
     : ((x) - (y) > 0 ? (x) + LOG1P(EXP(-((x) - (y)) * (SCALE))) / (SCALE)     \
     : ((x) - (y) <= 0 ? (y) + LOG1P(EXP(((x) - (y)) * (SCALE))) / (SCALE)     \
     : (x) - (y))))

/* NumPy's npy_logaddexp2 step for step (2^-d by exp2, log2(1 + u) as log1p(u) * log2(e)), so
   that results that cancel to near zero agree with NumPy's to the last bit, not only to an ulp
   of the operands */
#define LOGADDEXP2(x, y, EXP2, LOG1P, LOG2E)                                   \
    ((x) == (y) ? (x) + 1                                                      \
     : ((x) - (y) > 0 ? (x) + LOG1P(EXP2(-((x) - (y)))) * (LOG2E)              \
     : ((x) - (y) <= 0 ? (y) + LOG1P(EXP2((x) - (y))) * (LOG2E)                \
     : (x) - (y))))

#define DEFINE_BINARY(NAME, T, POW)                                    \
void NAME(int op, ptrdiff_t n, const T *a, ptrdiff_t sa,              \
          const T *b, ptrdiff_t sb, T *out)                            \
{                                                                      \
    switch (op) {                                                      \
    case GA_ADD: BINARY_LOOP(x + y) break;                             \
    case GA_SUB: BINARY_LOOP(x - y) break;                             \
    case GA_MUL: BINARY_LOOP(x * y) break;                             \
    case GA_DIV: BINARY_LOOP(x / y) break;                             \
    case GA_POW: BINARY_LOOP(POW(x, y)) break;                         \
    /* NaN propagates through maximum/minimum, as in NumPy */          \
    case GA_MAXIMUM: BINARY_LOOP((x >= y || x != x) ? x : y) break;    \
    case GA_MINIMUM: BINARY_LOOP((x <= y || x != x) ? x : y) break;    \
    case GA_MUL0: BINARY_LOOP(x == 0 ? (T)0 : x * y) break;            \
    case GA_ARCTAN2: BINARY_LOOP(ATAN2(x, y)) break;                   \
    case GA_HYPOT: BINARY_LOOP(HYPOT(x, y)) break;                     \
    case GA_LOGADDEXP:                                                 \
        BINARY_LOOP(LOGADDEXP(x, y, EXP, LOG1P, (T)0.693147180559945309417, (T)1)) break; \
    case GA_LOGADDEXP2:                                                \
        BINARY_LOOP(LOGADDEXP2(x, y, EXP2, LOG1P, (T)1.442695040888963407359924681001892137)) break; \
    case GA_FMAX: BINARY_LOOP(FMAX(x, y)) break;                       \
    case GA_FMIN: BINARY_LOOP(FMIN(x, y)) break;                       \
    case GA_TANH_GRAD: BINARY_LOOP(x == 0 ? (T)0 : x * (1 - y * y)) break; \
    case GA_SIGMOID_GRAD: BINARY_LOOP(x == 0 ? (T)0 : x * (y * (1 - y))) break; \
    case GA_RELU_GRAD: BINARY_LOOP(y > 0 ? x : (T)0) break;           \
    case GA_DIV0: BINARY_LOOP(x == 0 ? (T)0 : x / y) break;           \
    }                                                                  \
}

#define T double
#define ATAN2 atan2
#define HYPOT hypot
#define EXP exp
#define EXP2 exp2
#define LOG1P log1p
#define FMAX fmax
#define FMIN fmin
DEFINE_BINARY(ga_binary_d, double, pow)
#undef T
#undef ATAN2
#undef HYPOT
#undef EXP
#undef EXP2
#undef LOG1P
#undef FMAX
#undef FMIN
#define T float
#define ATAN2 atan2f
#define HYPOT hypotf
#define EXP expf
#define EXP2 exp2f
#define LOG1P log1pf
#define FMAX fmaxf
#define FMIN fminf
DEFINE_BINARY(ga_binary_f, float, powf)
#undef T
#undef ATAN2
#undef HYPOT
#undef EXP
#undef EXP2
#undef LOG1P
#undef FMAX
#undef FMIN

#define UNARY_LOOP(EXPR)                                               \
    for (ptrdiff_t i = 0; i < n; ++i) {                               \
        T v = x[i];                                                    \
        out[i] = (EXPR);                                              \
    }

/* softplus(v) = log(1 + e^v), computed without overflow for large v */
#define SOFTPLUS(v, EXP, LOG1P) ((v) > 0 ? (v) + LOG1P(EXP(-(v))) : LOG1P(EXP(v)))
/* sigmoid(v) = 1 / (1 + e^-v), with e^-|v| so that nothing overflows */
#define SIGMOID(v, EXP) ((v) >= 0 ? 1 / (1 + EXP(-(v))) : EXP(v) / (1 + EXP(v)))

#define DEFINE_UNARY(NAME, T, SFX)                                     \
void NAME(int op, ptrdiff_t n, const T *x, T *out)                    \
{                                                                      \
    switch (op) {                                                      \
    case GA_NEG: UNARY_LOOP(-v) break;                                 \
    case GA_EXP: UNARY_LOOP(exp##SFX(v)) break;                        \
    case GA_LOG: UNARY_LOOP(log##SFX(v)) break;                        \
    case GA_LOG1P: UNARY_LOOP(log1p##SFX(v)) break;                    \
    case GA_SIN: UNARY_LOOP(sin##SFX(v)) break;                        \
    case GA_COS: UNARY_LOOP(cos##SFX(v)) break;                        \
    case GA_TAN: UNARY_LOOP(tan##SFX(v)) break;                        \
    case GA_TANH: UNARY_LOOP(tanh##SFX(v)) break;                      \
    case GA_SINH: UNARY_LOOP(sinh##SFX(v)) break;                      \
    case GA_COSH: UNARY_LOOP(cosh##SFX(v)) break;                      \
    case GA_SQRT: UNARY_LOOP(sqrt##SFX(v)) break;                      \
    case GA_SQUARE: UNARY_LOOP(v * v) break;                           \
    case GA_ABS: UNARY_LOOP(fabs##SFX(v)) break;                       \
    case GA_SIGN: UNARY_LOOP(v > 0 ? (T)1 : (v < 0 ? (T)-1 : v)) break; \
    case GA_RELU: UNARY_LOOP((v > 0 || v != v) ? v : (T)0) break;      \
    case GA_SIGMOID: UNARY_LOOP(SIGMOID(v, exp##SFX)) break;           \
    case GA_SOFTPLUS: UNARY_LOOP(SOFTPLUS(v, exp##SFX, log1p##SFX)) break; \
    case GA_RECIPROCAL: UNARY_LOOP((T)1 / v) break;                    \
    case GA_STEP: UNARY_LOOP(v > 0 ? (T)1 : (T)0) break;               \
    case GA_EXPM1: UNARY_LOOP(expm1##SFX(v)) break;                    \
    case GA_EXP2: UNARY_LOOP(exp2##SFX(v)) break;                      \
    case GA_LOG2: UNARY_LOOP(log2##SFX(v)) break;                      \
    case GA_LOG10: UNARY_LOOP(log10##SFX(v)) break;                    \
    case GA_ARCSIN: UNARY_LOOP(asin##SFX(v)) break;                    \
    case GA_ARCCOS: UNARY_LOOP(acos##SFX(v)) break;                    \
    case GA_ARCTAN: UNARY_LOOP(atan##SFX(v)) break;                    \
    case GA_ARCSINH: UNARY_LOOP(asinh##SFX(v)) break;                  \
    case GA_ARCCOSH: UNARY_LOOP(acosh##SFX(v)) break;                  \
    case GA_ARCTANH: UNARY_LOOP(atanh##SFX(v)) break;                  \
    }                                                                  \
}

#define T double
DEFINE_UNARY(ga_unary_d, double, )
#undef T
#define T float
DEFINE_UNARY(ga_unary_f, float, f)
#undef T

/* Transposes go tile by tile, so that the rows read and the rows written both stay in L1. */
#define GA_TILE 16

#define DEFINE_REST(SFX, T)                                            \
void ga_accumulate_##SFX(ptrdiff_t n, T *acc, const T *x)             \
{                                                                      \
    for (ptrdiff_t i = 0; i < n; ++i) acc[i] += x[i];                 \
}                                                                      \
void ga_sum_rows_##SFX(ptrdiff_t rows, ptrdiff_t cols, const T *x, T *out) \
{                                                                      \
    for (ptrdiff_t j = 0; j < cols; ++j) out[j] = 0;                  \
    for (ptrdiff_t i = 0; i < rows; ++i) {                            \
        const T *row = x + i * cols;                                   \
        for (ptrdiff_t j = 0; j < cols; ++j) out[j] += row[j];        \
    }                                                                  \
}                                                                      \
static T pairwise_##SFX(ptrdiff_t n, const T *x)                      \
{                                                                      \
    if (n < 8) {                                                       \
        T s = 0;                                                       \
        for (ptrdiff_t i = 0; i < n; ++i) s += x[i];                  \
        return s;                                                      \
    }                                                                  \
    if (n <= 128) {                                                    \
        T r0 = x[0], r1 = x[1], r2 = x[2], r3 = x[3];                  \
        T r4 = x[4], r5 = x[5], r6 = x[6], r7 = x[7];                  \
        ptrdiff_t i = 8;                                               \
        for (; i < n - n % 8; i += 8) {                                \
            r0 += x[i]; r1 += x[i + 1]; r2 += x[i + 2]; r3 += x[i + 3]; \
            r4 += x[i + 4]; r5 += x[i + 5]; r6 += x[i + 6]; r7 += x[i + 7]; \
        }                                                              \
        T s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));       \
        for (; i < n; ++i) s += x[i];                                  \
        return s;                                                      \
    }                                                                  \
    ptrdiff_t half = n / 2;                                            \
    half -= half % 8;                                                  \
    return pairwise_##SFX(half, x) + pairwise_##SFX(n - half, x + half); \
}                                                                      \
T ga_sum_##SFX(ptrdiff_t n, const T *x) { return (T)0 + pairwise_##SFX(n, x); } \
void ga_transpose_##SFX(ptrdiff_t rows, ptrdiff_t cols, const T *x,   \
                        ptrdiff_t ldx, T *out)                         \
{                                                                      \
    for (ptrdiff_t i0 = 0; i0 < rows; i0 += GA_TILE)                   \
        for (ptrdiff_t j0 = 0; j0 < cols; j0 += GA_TILE) {             \
            ptrdiff_t i1 = i0 + GA_TILE < rows ? i0 + GA_TILE : rows;  \
            ptrdiff_t j1 = j0 + GA_TILE < cols ? j0 + GA_TILE : cols;  \
            for (ptrdiff_t j = j0; j < j1; ++j)                        \
                for (ptrdiff_t i = i0; i < i1; ++i)                    \
                    out[j * rows + i] = x[i * ldx + j];                \
        }                                                              \
}

DEFINE_REST(d, double)
DEFINE_REST(f, float)


/* sigmoid and softplus in passes around an exp (and log1p) that the caller runs in place with
 * NumPy's SIMD loops: e = exp(-|x|) lies in (0, 1], so nothing overflows */
#define DEFINE_LOGISTIC(SFX, T)                                            \
void ga_neg_abs_##SFX(ptrdiff_t n, const T *x, T *out)                    \
{                                                                          \
    for (ptrdiff_t i = 0; i < n; ++i) out[i] = x[i] < 0 ? x[i] : -x[i];  \
}                                                                          \
void ga_sigmoid_from_exp_##SFX(ptrdiff_t n, const T *x, T *e)             \
{                                                                          \
    for (ptrdiff_t i = 0; i < n; ++i)                                     \
        e[i] = (x[i] >= 0 ? (T)1 : e[i]) / (1 + e[i]);                     \
}                                                                          \
void ga_softplus_from_log1p_##SFX(ptrdiff_t n, const T *x, T *l)          \
{                                                                          \
    for (ptrdiff_t i = 0; i < n; ++i) l[i] += x[i] > 0 ? x[i] : (T)0;    \
}

DEFINE_LOGISTIC(d, double)
DEFINE_LOGISTIC(f, float)


/* ---- losses ---------------------------------------------------------------------------- */
#define DEFINE_XENT(SFX, T)                                                \
ptrdiff_t ga_xent_fwd_##SFX(ptrdiff_t rows, ptrdiff_t cols, const T *x,    \
                            const long long *labels, T *loss, T *lse)      \
{                                                                          \
    for (ptrdiff_t i = 0; i < rows; ++i) {                                 \
        const T *row = x + i * cols;                                       \
        long long y = labels[i];                                           \
        if (y < 0 || y >= cols) return i;                                  \
        T m = row[0];                                                      \
        for (ptrdiff_t j = 1; j < cols; ++j) if (row[j] > m) m = row[j];   \
        if (!(m - m == 0)) m = 0;   /* +-inf or NaN: no shift */           \
        T s = 0;                                                           \
        for (ptrdiff_t j = 0; j < cols; ++j) s += exp_##SFX(row[j] - m);   \
        T l = log_##SFX(s) + m;                                            \
        lse[i] = l;                                                        \
        loss[i] = l - row[y];                                              \
    }                                                                      \
    return -1;                                                             \
}                                                                          \
void ga_xent_vjp_##SFX(ptrdiff_t rows, ptrdiff_t cols, const T *x,         \
                       const long long *labels, const T *lse, const T *g,  \
                       ptrdiff_t sg, double scale, T *out)                 \
{                                                                          \
    for (ptrdiff_t i = 0; i < rows; ++i) {                                 \
        const T *row = x + i * cols;                                       \
        T *o = out + i * cols;                                             \
        T c = (T)(scale * g[i * sg]), l = lse[i];                          \
        for (ptrdiff_t j = 0; j < cols; ++j) o[j] = exp_##SFX(row[j] - l) * c; \
        o[labels[i]] -= c;                                                 \
    }                                                                      \
}                                                                          \
void ga_xent_shift_##SFX(ptrdiff_t rows, ptrdiff_t cols, const T *x, T *e, T *m) \
{                                                                          \
    for (ptrdiff_t i = 0; i < rows; ++i) {                                 \
        const T *row = x + i * cols;                                       \
        T mx = row[0];                                                     \
        for (ptrdiff_t j = 1; j < cols; ++j) if (row[j] > mx) mx = row[j]; \
        if (!(mx - mx == 0)) mx = 0;                                       \
        m[i] = mx;                                                         \
        for (ptrdiff_t j = 0; j < cols; ++j) e[i * cols + j] = row[j] - mx; \
    }                                                                      \
}                                                                          \
ptrdiff_t ga_xent_from_exp_##SFX(ptrdiff_t rows, ptrdiff_t cols, const T *x, \
                                 const long long *labels, const T *e,      \
                                 T *loss, T *lse)                          \
{                                                                          \
    for (ptrdiff_t i = 0; i < rows; ++i) {                                 \
        long long y = labels[i];                                           \
        if (y < 0 || y >= cols) return i;                                  \
        T s = 0;                                                           \
        for (ptrdiff_t j = 0; j < cols; ++j) s += e[i * cols + j];        \
        T l = log_##SFX(s) + lse[i];                                       \
        lse[i] = l;                                                        \
        loss[i] = l - x[i * cols + y];                                     \
    }                                                                      \
    return -1;                                                             \
}                                                                          \
void ga_xent_vjp_shift_##SFX(ptrdiff_t rows, ptrdiff_t cols, const T *x,   \
                             const T *lse, T *out)                         \
{                                                                          \
    for (ptrdiff_t i = 0; i < rows; ++i)                                   \
        for (ptrdiff_t j = 0; j < cols; ++j)                               \
            out[i * cols + j] = x[i * cols + j] - lse[i];                  \
}                                                                          \
void ga_xent_vjp_from_exp_##SFX(ptrdiff_t rows, ptrdiff_t cols,            \
                                const long long *labels, const T *g,       \
                                ptrdiff_t sg, double scale, T *out)        \
{                                                                          \
    for (ptrdiff_t i = 0; i < rows; ++i) {                                 \
        T *o = out + i * cols;                                             \
        T c = (T)(scale * g[i * sg]);                                      \
        for (ptrdiff_t j = 0; j < cols; ++j) o[j] *= c;                   \
        o[labels[i]] -= c;                                                 \
    }                                                                      \
}

static inline double exp_d(double v) { return exp(v); }
static inline double log_d(double v) { return log(v); }
static inline float exp_f(float v) { return expf(v); }
static inline float log_f(float v) { return logf(v); }
DEFINE_XENT(d, double)
DEFINE_XENT(f, float)

/* ---- optimizer updates ------------------------------------------------------------------ */
#define DEFINE_OPTIM(SFX, T, SQRT)                                         \
void ga_sgd_##SFX(ptrdiff_t n, T *p, const T *g, T *buf, double lr,        \
                  double momentum, double dampening, double wd,            \
                  int nesterov, int first)                                 \
{                                                                          \
    const T lr_ = (T)lr, mu = (T)momentum, damp = (T)(1 - dampening);      \
    const T wd_ = (T)wd;                                                   \
    if (buf == NULL) {                                                     \
        for (ptrdiff_t i = 0; i < n; ++i) p[i] -= lr_ * (g[i] + wd_ * p[i]); \
        return;                                                            \
    }                                                                      \
    for (ptrdiff_t i = 0; i < n; ++i) {                                    \
        T d = g[i] + wd_ * p[i];                                           \
        T b = first ? d : mu * buf[i] + damp * d;                          \
        buf[i] = b;                                                        \
        p[i] -= lr_ * (nesterov ? d + mu * b : b);                         \
    }                                                                      \
}                                                                          \
void ga_adam_##SFX(ptrdiff_t n, T *p, const T *g, T *m, T *v, double lr,   \
                   double b1, double b2, double eps, double wd,            \
                   int decoupled, double bc1, double bc2)                  \
{                                                                          \
    const T b1_ = (T)b1, b2_ = (T)b2, c1 = (T)(1 - b1), c2 = (T)(1 - b2);  \
    const T step = (T)(lr / bc1), rbc2 = (T)(1 / sqrt(bc2)), eps_ = (T)eps; \
    const T wd_ = decoupled ? 0 : (T)wd, decay = (T)(1 - lr * wd);        \
    for (ptrdiff_t i = 0; i < n; ++i) {                                    \
        T x = p[i];                                                        \
        if (decoupled) x *= decay;                                         \
        T d = g[i] + wd_ * x;                                              \
        T mi = b1_ * m[i] + c1 * d;                                        \
        T vi = b2_ * v[i] + c2 * d * d;                                    \
        m[i] = mi;                                                         \
        v[i] = vi;                                                         \
        p[i] = x - step * mi / (SQRT(vi) * rbc2 + eps_);                   \
    }                                                                      \
}

DEFINE_OPTIM(d, double, sqrt)
DEFINE_OPTIM(f, float, sqrtf)
