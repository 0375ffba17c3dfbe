/* graphad's own GEMM (csrc/ga_gemm.c, compiled in) against OpenBLAS (SciPy's and NumPy's
 * bundled builds), MKL (libmkl_rt) and BLIS (the `blis` wheel's extension), all dlopen'ed,
 * timed in C, one thread.  C = A B with the three layouts graphad's _gemm hands over:
 *   NN: A m x k row-major, B k x n row-major              (forward x @ W)
 *   NT: A m x k row-major, B = W^T with W n x k row-major  (backward g @ W^T, Jacobian blocks)
 *   TN: A = X^T with X k x m row-major, B k x n row-major  (backward X^T @ g)
 * The own contender replays _kernels.pyx's dispatch for an `own` product, copies included.
 *
 * README's table was measured before the kernel's cache-blocked path was removed: its products of
 * >= 4e6 multiply-adds with n >= 96 (all of which go to BLAS now) ran blocked then.
 * usage: gemm_vendors SHAPEFILE  (lines: m k n layout); prints TSV; ONLY=own,mkl,... */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ga_gemm.h"
#include "ga_kernels.h"

typedef void (*fgemm_d)(const char *, const char *, const int *, const int *, const int *,
                        const double *, const double *, const int *, const double *, const int *,
                        const double *, double *, const int *);
typedef void (*fgemm_s)(const char *, const char *, const int *, const int *, const int *,
                        const float *, const float *, const int *, const float *, const int *,
                        const float *, float *, const int *);
typedef void (*fgemm64_d)(const char *, const char *, const int64_t *, const int64_t *,
                          const int64_t *, const double *, const double *, const int64_t *,
                          const double *, const int64_t *, const double *, double *,
                          const int64_t *);
typedef void (*fgemm64_s)(const char *, const char *, const int64_t *, const int64_t *,
                          const int64_t *, const float *, const float *, const int64_t *,
                          const float *, const int64_t *, const float *, float *,
                          const int64_t *);
/* BLIS typed API: trans_t (0 = no transpose), dim_t / inc_t are int64 */
typedef void (*bli_d)(int, int, int64_t, int64_t, int64_t, const double *, const double *,
                      int64_t, int64_t, const double *, int64_t, int64_t, const double *,
                      double *, int64_t, int64_t);
typedef void (*bli_s)(int, int, int64_t, int64_t, int64_t, const float *, const float *,
                      int64_t, int64_t, const float *, int64_t, int64_t, const float *, float *,
                      int64_t, int64_t);

enum { OWN, OB_SCIPY, OB_NUMPY, MKL, BLIS, NC };
static const char *NAMES[NC] = {"own", "openblas_scipy", "openblas_numpy", "mkl", "blis"};
static int have[NC];
static fgemm_d f_d[NC];
static fgemm_s f_s[NC];
static fgemm64_d f64_d;
static fgemm64_s f64_s;
static bli_d b_d;
static bli_s b_s;

static void *sym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "missing %s\n", name);
        exit(2);
    }
    return p;
}

static void load(void)
{
    char buf[512] = {0};
    void *h;
    const char *p;
    have[OWN] = ga_gemm_available();
    const char *only = getenv("ONLY");    /* a comma list of contenders, else all */
#define WANT(w) (!only || strstr(only, NAMES[w]))
    if (!WANT(OWN))
        have[OWN] = 0;
    if (WANT(OB_SCIPY) && (p = getenv("OB_SCIPY")) && (h = dlopen(p, RTLD_NOW | RTLD_LOCAL))) {
        f_d[OB_SCIPY] = sym(h, "scipy_dgemm_");
        f_s[OB_SCIPY] = sym(h, "scipy_sgemm_");
        ((void (*)(int))sym(h, "scipy_openblas_set_num_threads"))(1);
        fprintf(stderr, "# openblas_scipy: %s | %s\n",
                ((char *(*)(void))sym(h, "scipy_openblas_get_config"))(),
                ((char *(*)(void))sym(h, "scipy_openblas_get_corename"))());
        have[OB_SCIPY] = 1;
    }
    if (WANT(OB_NUMPY) && (p = getenv("OB_NUMPY")) && (h = dlopen(p, RTLD_NOW | RTLD_LOCAL))) {
        f64_d = sym(h, "scipy_dgemm_64_");
        f64_s = sym(h, "scipy_sgemm_64_");
        ((void (*)(int))sym(h, "scipy_openblas_set_num_threads64_"))(1);
        fprintf(stderr, "# openblas_numpy: %s | %s\n",
                ((char *(*)(void))sym(h, "scipy_openblas_get_config64_"))(),
                ((char *(*)(void))sym(h, "scipy_openblas_get_corename64_"))());
        have[OB_NUMPY] = 1;
    }
    if (WANT(MKL) && (p = getenv("MKL_RT")) && (h = dlopen(p, RTLD_NOW | RTLD_LOCAL))) {
        f_d[MKL] = sym(h, "dgemm_");
        f_s[MKL] = sym(h, "sgemm_");
        ((void (*)(int))sym(h, "MKL_Set_Num_Threads"))(1);
        ((void (*)(char *, int))sym(h, "mkl_get_version_string"))(buf, sizeof buf);
        buf[200] = 0; fprintf(stderr, "# mkl: %.120s\n", buf);
        have[MKL] = 1;
    }
    if (WANT(BLIS) && (p = getenv("BLIS_SO"))) {
        h = dlopen(p, RTLD_NOW | RTLD_GLOBAL);
        if (!h) {
            fprintf(stderr, "blis: %s\n", dlerror());
        } else {
            b_d = sym(h, "bli_dgemm");
            b_s = sym(h, "bli_sgemm");
            ((void (*)(void))sym(h, "bli_init"))();
            ((void (*)(int64_t))sym(h, "bli_thread_set_num_threads"))(1);
            int id = ((int (*)(void))sym(h, "bli_arch_query_id"))();
            fprintf(stderr, "# blis: %s, arch %s\n",
                    ((char *(*)(void))sym(h, "bli_info_get_version_str"))(),
                    ((char *(*)(int))sym(h, "bli_arch_string"))(id));
            have[BLIS] = 1;
        }
    }
}

enum { NN, NT, TN };

typedef struct {
    int m, k, n, lay, dbl;
    void *a, *b, *c, *s1, *s2;    /* a: A or X; b: B or W; s1, s2: scratch of the own path */
} prob;

/* one call of contender `who` on problem p */
static void call(int who, prob *p)
{
    int m = p->m, k = p->k, n = p->n;
    int64_t m6 = m, k6 = k, n6 = n;
    double one = 1, zero = 0;
    float onef = 1, zerof = 0;
    if (who == OWN) {
        /* _kernels.pyx: _gemm with own=True (m, n > 1) */
        if (p->lay == NN || p->lay == TN) {
            ptrdiff_t ars = p->lay == NN ? k : 1, acs = p->lay == NN ? 1 : m;
            if (p->dbl)
                ga_gemm_d(m, n, k, p->a, ars, acs, p->b, n, p->c, n);
            else
                ga_gemm_f(m, n, k, p->a, ars, acs, p->b, n, p->c, n);
            return;
        }
        if (m <= 4) {
            if (p->dbl)
                ga_gemm_nt_d(m, n, k, p->a, k, p->b, k, p->c, n);
            else
                ga_gemm_nt_f(m, n, k, p->a, k, p->b, k, p->c, n);
        } else if (n > m) {    /* C^T = W A^T: A^T copied, the result transposed back */
            if (p->dbl) {
                ga_transpose_d(m, k, p->a, k, p->s1);
                ga_gemm_d(n, m, k, p->b, k, 1, p->s1, m, p->s2, m);
                ga_transpose_d(n, m, p->s2, m, p->c);
            } else {
                ga_transpose_f(m, k, p->a, k, p->s1);
                ga_gemm_f(n, m, k, p->b, k, 1, p->s1, m, p->s2, m);
                ga_transpose_f(n, m, p->s2, m, p->c);
            }
        } else {                /* W^T copied row-major */
            if (p->dbl) {
                ga_transpose_d(n, k, p->b, k, p->s1);
                ga_gemm_d(m, n, k, p->a, k, 1, p->s1, n, p->c, n);
            } else {
                ga_transpose_f(n, k, p->b, k, p->s1);
                ga_gemm_f(m, n, k, p->a, k, 1, p->s1, n, p->c, n);
            }
        }
        return;
    }
    if (who == BLIS) {
        int64_t rsa = k, csa = 1, rsb = n, csb = 1;
        if (p->lay == NT) { rsb = 1; csb = k; }
        if (p->lay == TN) { rsa = 1; csa = m; }
        if (p->dbl)
            b_d(0, 0, m6, n6, k6, &one, p->a, rsa, csa, p->b, rsb, csb, &zero, p->c, n6, 1);
        else
            b_s(0, 0, m6, n6, k6, &onef, p->a, rsa, csa, p->b, rsb, csb, &zerof, p->c, n6, 1);
        return;
    }
    /* Fortran BLAS, column-major: C^T = op(B)^T op(A)^T, as _gemm2d calls it */
    const char *tb = p->lay == NT ? "T" : "N", *ta = p->lay == TN ? "T" : "N";
    int ldb = p->lay == NT ? k : n, lda = p->lay == TN ? m : k, ldc = n;
    int64_t ldb6 = ldb, lda6 = lda, ldc6 = ldc;
    if (who == OB_NUMPY) {
        if (p->dbl)
            f64_d(tb, ta, &n6, &m6, &k6, &one, p->b, &ldb6, p->a, &lda6, &zero, p->c, &ldc6);
        else
            f64_s(tb, ta, &n6, &m6, &k6, &onef, p->b, &ldb6, p->a, &lda6, &zerof, p->c, &ldc6);
        return;
    }
    if (p->dbl)
        f_d[who](tb, ta, &n, &m, &k, &one, p->b, &ldb, p->a, &lda, &zero, p->c, &ldc);
    else
        f_s[who](tb, ta, &n, &m, &k, &onef, p->b, &ldb, p->a, &lda, &zerof, p->c, &ldc);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void *fill(size_t count, int dbl, unsigned *seed)
{
    size_t bytes = (count ? count : 1) * (dbl ? 8 : 4);
    void *x = aligned_alloc(64, (bytes + 63) / 64 * 64);
    for (size_t i = 0; i < count; ++i) {
        double v = (double)rand_r(seed) / RAND_MAX - 0.5;
        if (dbl)
            ((double *)x)[i] = v;
        else
            ((float *)x)[i] = (float)v;
    }
    return x;
}

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* the exact product in double, for the check */
static void reference(prob *p, double *ref)
{
    int m = p->m, k = p->k, n = p->n;
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double s = 0;
            for (int q = 0; q < k; ++q) {
                size_t ai = p->lay == TN ? (size_t)q * m + i : (size_t)i * k + q;
                size_t bi = p->lay == NT ? (size_t)j * k + q : (size_t)q * n + j;
                double av = p->dbl ? ((double *)p->a)[ai] : ((float *)p->a)[ai];
                double bv = p->dbl ? ((double *)p->b)[bi] : ((float *)p->b)[bi];
                s += av * bv;
            }
            ref[(size_t)i * n + j] = s;
        }
}

int main(int argc, char **argv)
{
    load();
    FILE *f = fopen(argv[1], "r");
    int rounds = getenv("ROUNDS") ? atoi(getenv("ROUNDS")) : 5;
    int samples = getenv("SAMPLES") ? atoi(getenv("SAMPLES")) : 5;
    double target = getenv("TARGET_S") ? atof(getenv("TARGET_S")) : 2e-3;
    char lay[8];
    int m, k, n;
    unsigned seed = 1;
    printf("dtype\tm\tk\tn\tlayout\tcontender\tmin_med_us\tmax_med_us\n");
    while (fscanf(f, "%d %d %d %7s", &m, &k, &n, lay) == 4) {
        for (int dbl = 1; dbl >= 0; --dbl) {
            prob p = {m, k, n, !strcmp(lay, "NT") ? NT : !strcmp(lay, "TN") ? TN : NN, dbl};
            p.a = fill((size_t)m * k, dbl, &seed);
            p.b = fill((size_t)k * n, dbl, &seed);
            p.c = fill((size_t)m * n, dbl, &seed);
            p.s1 = fill((size_t)k * (m > n ? m : n), dbl, &seed);
            p.s2 = fill((size_t)m * n, dbl, &seed);
            double *ref = malloc(sizeof(double) * m * n);
            reference(&p, ref);
            for (int w = 0; w < NC; ++w) {
                if (!have[w])
                    continue;
                memset(p.c, 0, (size_t)m * n * (dbl ? 8 : 4));
                call(w, &p);
                double err = 0, tol = (dbl ? 1e-12 : 1e-5) * (k + 1);
                for (size_t i = 0; i < (size_t)m * n; ++i) {
                    double v = dbl ? ((double *)p.c)[i] : ((float *)p.c)[i];
                    double e = v > ref[i] ? v - ref[i] : ref[i] - v;
                    err = e > err ? e : err;
                }
                if (err > tol) {
                    fprintf(stderr, "WRONG %s %dx%dx%d %s %s err %g\n", NAMES[w], m, k, n, lay,
                            dbl ? "f64" : "f32", err);
                    return 1;
                }
            }
            /* calls per sample: enough for `target` seconds with the first BLAS */
            int calib = have[OB_SCIPY] ? OB_SCIPY : have[OWN] ? OWN : BLIS;
            double t0 = now();
            int calls = 0;
            while (now() - t0 < 0.2 * target)
                call(calib, &p), ++calls;
            calls = calls * 5 < 1 ? 1 : calls * 5;
            double med[NC][64], ts[64];
            for (int r = 0; r < rounds; ++r)
                for (int o = 0; o < NC; ++o) {
                    int w = (o + r) % NC;   /* rotate the order between rounds */
                    if (!have[w])
                        continue;
                    call(w, &p);            /* warm */
                    for (int s = 0; s < samples; ++s) {
                        double t = now();
                        for (int c = 0; c < calls; ++c)
                            call(w, &p);
                        ts[s] = (now() - t) / calls;
                    }
                    qsort(ts, samples, sizeof(double), cmp);
                    med[w][r] = ts[samples / 2];
                }
            for (int w = 0; w < NC; ++w) {
                if (!have[w])
                    continue;
                qsort(med[w], rounds, sizeof(double), cmp);
                printf("%s\t%d\t%d\t%d\t%s\t%s\t%.3f\t%.3f\n", dbl ? "float64" : "float32", m, k,
                       n, lay, NAMES[w], 1e6 * med[w][0], 1e6 * med[w][rounds - 1]);
            }
            fflush(stdout);
            free(p.a); free(p.b); free(p.c); free(p.s1); free(p.s2); free(ref);
        }
    }
    return 0;
}
