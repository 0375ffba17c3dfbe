/* graphad C kernels: elementwise maps and reductions on raw buffers.
 *
 * Contract shared by every kernel here:
 *   - n is the number of output elements; buffers are contiguous.
 *   - an input stride is 1 (a full operand) or 0 (a size-1 operand broadcast to n);
 *   - out may alias an input of stride 1 (in-place update) but never a stride-0 input;
 *   - no kernel allocates, takes the GIL or touches Python objects, so callers run them nogil.
 * Each kernel exists for double (_d) and float (_f); the body is written once as a macro.
 */
#ifndef GA_KERNELS_H
#define GA_KERNELS_H
#include <stddef.h>

enum ga_binary_op {
    GA_ADD, GA_SUB, GA_MUL, GA_DIV, GA_POW, GA_MAXIMUM, GA_MINIMUM,
    GA_MUL0,           /* a*b, but exactly 0 wherever a == 0: the chain-rule product g*f'(x) */
    GA_ARCTAN2, GA_HYPOT,
    GA_LOGADDEXP,      /* log(e^a + e^b) and log2(2^a + 2^b), computed as NumPy does (no overflow) */
    GA_LOGADDEXP2,
    GA_FMAX, GA_FMIN,  /* maximum/minimum that ignore a NaN operand (C99 fmax/fmin, NumPy's) */
    GA_TANH_GRAD,      /* g (1 - y^2) and g y (1 - y), 0 wherever g == 0: the chain-rule products */
    GA_SIGMOID_GRAD,   /* of tanh and sigmoid from their outputs y, in one pass */
    GA_RELU_GRAD,      /* g where y > 0, else 0: relu's, from its output y */
    GA_DIV0            /* g / x, but 0 wherever g == 0: log's chain-rule product */
};

enum ga_unary_op {
    GA_NEG, GA_EXP, GA_LOG, GA_LOG1P, GA_SIN, GA_COS, GA_TAN, GA_TANH, GA_SINH, GA_COSH,
    GA_SQRT, GA_SQUARE, GA_ABS, GA_SIGN, GA_RELU, GA_SIGMOID, GA_SOFTPLUS, GA_RECIPROCAL,
    GA_STEP,           /* 1 where x > 0 else 0: the derivative of relu */
    GA_EXPM1, GA_EXP2, GA_LOG2, GA_LOG10,
    GA_ARCSIN, GA_ARCCOS, GA_ARCTAN, GA_ARCSINH, GA_ARCCOSH, GA_ARCTANH
};

/* out[i] = a[i*sa] (op) b[i*sb] */
void ga_binary_d(int op, ptrdiff_t n, const double *a, ptrdiff_t sa,
                 const double *b, ptrdiff_t sb, double *out);
void ga_binary_f(int op, ptrdiff_t n, const float *a, ptrdiff_t sa,
                 const float *b, ptrdiff_t sb, float *out);

/* out[i] = op(x[i]) */
void ga_unary_d(int op, ptrdiff_t n, const double *x, double *out);
void ga_unary_f(int op, ptrdiff_t n, const float *x, float *out);

/* acc[i] += x[i]: gradient accumulation into a buffer the sweep owns */
void ga_accumulate_d(ptrdiff_t n, double *acc, const double *x);
void ga_accumulate_f(ptrdiff_t n, float *acc, const float *x);

/* out[j] = sum_i x[i*cols + j] for a C-contiguous (rows, cols) x: the bias-gradient reduction */
void ga_sum_rows_d(ptrdiff_t rows, ptrdiff_t cols, const double *x, double *out);
void ga_sum_rows_f(ptrdiff_t rows, ptrdiff_t cols, const float *x, float *out);

/* the passes of sigmoid / softplus around exp(-|x|) (and log1p) computed in place by the
 * caller: out = -|x|; then e -> sigmoid(x), or log1p(e) -> softplus(x), in place */
void ga_neg_abs_d(ptrdiff_t n, const double *x, double *out);
void ga_neg_abs_f(ptrdiff_t n, const float *x, float *out);
void ga_sigmoid_from_exp_d(ptrdiff_t n, const double *x, double *e);
void ga_sigmoid_from_exp_f(ptrdiff_t n, const float *x, float *e);
void ga_softplus_from_log1p_d(ptrdiff_t n, const double *x, double *l);
void ga_softplus_from_log1p_f(ptrdiff_t n, const float *x, float *l);

/* out = x^T, C-contiguous (cols, rows), for a (rows, cols) x with row stride ldx */
void ga_transpose_d(ptrdiff_t rows, ptrdiff_t cols, const double *x, ptrdiff_t ldx, double *out);
void ga_transpose_f(ptrdiff_t rows, ptrdiff_t cols, const float *x, ptrdiff_t ldx, float *out);

/* sum of n contiguous values: NumPy's pairwise summation (eight accumulators in blocks of 128,
 * halves above that, accumulated in the input's type), so the same bits as np.add.reduce */
double ga_sum_d(ptrdiff_t n, const double *x);
float ga_sum_f(ptrdiff_t n, const float *x);

/* ---- losses ------------------------------------------------------------------------------
 * Cross-entropy from logits, row by row, for a C-contiguous (rows, cols) x and int64 labels:
 *   lse[i]  = log sum_j exp(x[i,j])   (shifted by the row maximum: finite for any finite x),
 *   loss[i] = lse[i] - x[i, labels[i]].
 * Returns -1, or the first row whose label lies outside [0, cols) (outputs then undefined). */
ptrdiff_t ga_xent_fwd_d(ptrdiff_t rows, ptrdiff_t cols, const double *x, const long long *labels,
                        double *loss, double *lse);
ptrdiff_t ga_xent_fwd_f(ptrdiff_t rows, ptrdiff_t cols, const float *x, const long long *labels,
                        float *loss, float *lse);

/* Its VJP: out[i,j] = (exp(x[i,j] - lse[i]) - [j == labels[i]]) * scale * g[i*sg]  (softmax
 * minus one-hot, scaled).  sg is 1 (a cotangent per row) or 0 (one for all rows); labels must
 * have passed the forward's check; out may alias x. */
void ga_xent_vjp_d(ptrdiff_t rows, ptrdiff_t cols, const double *x, const long long *labels,
                   const double *lse, const double *g, ptrdiff_t sg, double scale, double *out);
void ga_xent_vjp_f(ptrdiff_t rows, ptrdiff_t cols, const float *x, const long long *labels,
                   const float *lse, const float *g, ptrdiff_t sg, double scale, float *out);

/* Both again with the exponentials left to the caller (a vectorized exp, in place on e / out):
 *   ga_xent_shift:       e[i,j] = x[i,j] - m_i, lse[i] = m_i (the row maximum; 0 if not finite);
 *   ga_xent_from_exp:    given e = exp(e), lse[i] = log(sum_j e[i,j]) + m_i and the losses (the
 *                        label check as above);
 *   ga_xent_vjp_shift:   out[i,j] = x[i,j] - lse[i];
 *   ga_xent_vjp_from_exp: given out = exp(out), scales it and subtracts the one-hot. */
void ga_xent_shift_d(ptrdiff_t rows, ptrdiff_t cols, const double *x, double *e, double *m);
void ga_xent_shift_f(ptrdiff_t rows, ptrdiff_t cols, const float *x, float *e, float *m);
ptrdiff_t ga_xent_from_exp_d(ptrdiff_t rows, ptrdiff_t cols, const double *x,
                             const long long *labels, const double *e, double *loss, double *lse);
ptrdiff_t ga_xent_from_exp_f(ptrdiff_t rows, ptrdiff_t cols, const float *x,
                             const long long *labels, const float *e, float *loss, float *lse);
void ga_xent_vjp_shift_d(ptrdiff_t rows, ptrdiff_t cols, const double *x, const double *lse,
                         double *out);
void ga_xent_vjp_shift_f(ptrdiff_t rows, ptrdiff_t cols, const float *x, const float *lse,
                         float *out);
void ga_xent_vjp_from_exp_d(ptrdiff_t rows, ptrdiff_t cols, const long long *labels,
                            const double *g, ptrdiff_t sg, double scale, double *out);
void ga_xent_vjp_from_exp_f(ptrdiff_t rows, ptrdiff_t cols, const long long *labels,
                            const float *g, ptrdiff_t sg, double scale, float *out);

/* ---- optimizer updates, in place on n contiguous values (p, g, and the state buffers) -------
 * SGD (PyTorch's convention):  d = g + wd p;
 *   with momentum (buf != NULL): buf = d on the first step, else momentum buf + (1 - dampening) d;
 *                                d = nesterov ? d + momentum buf : buf;
 *   p -= lr d.   g is never written. */
void ga_sgd_d(ptrdiff_t n, double *p, const double *g, double *buf, double lr, double momentum,
              double dampening, double wd, int nesterov, int first);
void ga_sgd_f(ptrdiff_t n, float *p, const float *g, float *buf, double lr, double momentum,
              double dampening, double wd, int nesterov, int first);

/* Adam / AdamW:  with decoupled (AdamW) p *= 1 - lr wd, else d = g + wd p;
 *   m = b1 m + (1 - b1) d;  v = b2 v + (1 - b2) d^2;
 *   p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc_k = 1 - b_k^t the bias corrections. */
void ga_adam_d(ptrdiff_t n, double *p, const double *g, double *m, double *v, double lr,
               double b1, double b2, double eps, double wd, int decoupled, double bc1, double bc2);
void ga_adam_f(ptrdiff_t n, float *p, const float *g, float *m, float *v, double lr,
               double b1, double b2, double eps, double wd, int decoupled, double bc1, double bc2);

#endif
