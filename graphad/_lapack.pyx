# cython: boundscheck=False, wraparound=False, cdivision=True
"""LAPACK for one small matrix, called through scipy.linalg.cython_lapack.

SciPy's f2py wrappers (scipy.linalg.lapack.dsyevd and friends) parse keywords, check and copy
arrays and allocate workspaces: about 8,000 instructions a call, as much as the whole
eigen-decomposition of a 5x5 matrix.  At the sizes where that decides (ga.linalg at n = 10,
where JAX-jit's per-call cost is a few microseconds), these wrappers take the array as it is,
fuse the preparation the rule needs into one loop, and take their workspace in one malloc.
Larger matrices keep SciPy's wrappers, whose cost is then noise.
"""
import numpy as np

cimport numpy as cnp
from libc.math cimport fabs
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_blas cimport dgemm, sgemm
from scipy.linalg.cython_lapack cimport dsyevd, ssyevd

cnp.import_array()

# Up to this size, eigh's forward runs here (the workspace is then < 70 KB).
MAX_N = 64
# From this size on the GIL is released: below it, handing it over costs more than it frees.
cdef int NOGIL_N = 24

ctypedef fused real:
    float
    double


cdef inline void _syevd(char *jobz, char *uplo, int *n, real *a, int *lda, real *w, real *work,
                        int *lwork, int *iwork, int *liwork, int *info) noexcept nogil:
    if real is double:
        dsyevd(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info)
    else:
        ssyevd(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info)


cdef int _eigh_into(real *src, Py_ssize_t s0, Py_ssize_t s1, int n, real *v,
                    real *w) noexcept nogil:
    """S = (A + A^T) / 2 from src (strides in elements), its eigenvalues into w (ascending) and
    its eigenvectors into v as a C-ordered V (columns are eigenvectors).  Returns LAPACK's info,
    or -1000 when the workspace cannot be allocated."""
    cdef Py_ssize_t i, j
    cdef real t
    cdef int lwork = 1 + 6 * n + 2 * n * n, liwork = 3 + 5 * n, info = 0
    cdef char jobz = b'V', uplo = b'L'
    for i in range(n):                    # S is symmetric: its C order is its Fortran order
        for j in range(i + 1):
            t = (src[i * s0 + j * s1] + src[j * s0 + i * s1]) * <real>0.5
            v[i * n + j] = t
            v[j * n + i] = t
    cdef real *work = <real *>malloc(lwork * sizeof(real) + liwork * sizeof(int))
    if work == NULL:
        return -1000
    _syevd(&jobz, &uplo, &n, v, &n, w, work, &lwork, <int *>(work + lwork), &liwork, &info)
    free(work)
    for i in range(n):                    # LAPACK left V column-major, that is V^T in C order
        for j in range(i):
            t = v[i * n + j]
            v[i * n + j] = v[j * n + i]
            v[j * n + i] = t
    return info


cdef int _eigh_typed(int typ, char *a, Py_ssize_t s0, Py_ssize_t s1, int n, char *v,
                     char *w) noexcept nogil:
    if typ == cnp.NPY_DOUBLE:
        return _eigh_into(<double *>a, s0, s1, n, <double *>v, <double *>w)
    return _eigh_into(<float *>a, s0, s1, n, <float *>v, <float *>w)


def eigh_small(cnp.ndarray a):
    """(w, V) of the symmetric part of the square float32/float64 matrix a (n <= MAX_N), with V
    C-ordered; None when LAPACK did not converge (the caller raises, naming the shape)."""
    if not (cnp.PyArray_ISALIGNED(a) and cnp.PyArray_ISNOTSWAPPED(a)):
        # the loop reads the memory as native doubles/floats: a native, aligned copy first
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
    cdef int n = <int>cnp.PyArray_DIM(a, 0)
    cdef int typ = cnp.PyArray_TYPE(a)
    cdef cnp.npy_intp dims[2]
    dims[0] = dims[1] = n
    cdef cnp.ndarray v = cnp.PyArray_EMPTY(2, dims, typ, 0)
    cdef cnp.ndarray w = cnp.PyArray_EMPTY(1, dims, typ, 0)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a)
    cdef Py_ssize_t s0 = cnp.PyArray_STRIDE(a, 0) // item, s1 = cnp.PyArray_STRIDE(a, 1) // item
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pv = <char *>cnp.PyArray_DATA(v)
    cdef char *pw = <char *>cnp.PyArray_DATA(w)
    cdef int info
    if n >= NOGIL_N:
        with nogil:
            info = _eigh_typed(typ, pa, s0, s1, n, pv, pw)
    else:
        info = _eigh_typed(typ, pa, s0, s1, n, pv, pw)
    if info == -1000:
        raise MemoryError("eigh: cannot allocate LAPACK's workspace")
    return None if info else (w, v)


cdef inline void _gemm(char ta, char tb, int n, real *a, real *b, real *c) noexcept nogil:
    """C = op(A) op(B) for n x n column-major matrices."""
    cdef real one = 1, zero = 0
    if real is double:
        dgemm(&ta, &tb, &n, &n, &n, &one, a, &n, b, &n, &zero, c, &n)
    else:
        sgemm(&ta, &tb, &n, &n, &n, &one, a, &n, b, &n, &zero, c, &n)


cdef int _eigh_vjp_into(real *w, real *v, real *gv, real *gw, int n, real tol_factor,
                        real *out) noexcept nogil:
    """eigh's VJP for one matrix whose eigenvalues are all distinct:
    G = V K V^T, K_ij = (M_ji - M_ij) / (2 (w_i - w_j)) off the diagonal, K_ii = gw_i (or 0),
    M = V^T gV, which is sym(V (F o M + diag(gw)) V^T) of _spectral.py's formula.  All C-ordered.
    Returns 1 (nothing written) when two eigenvalues are within the cluster tolerance
    tol_factor * max|w| or not ascending (NaN included)."""
    cdef Py_ssize_t i, j
    cdef real d, tol = tol_factor * max(fabs(w[0]), fabs(w[n - 1]))
    for i in range(n - 1):
        if not w[i + 1] - w[i] > tol:
            return 1
    cdef real *m = <real *>malloc(2 * n * n * sizeof(real))
    if m == NULL:
        return -1
    cdef real *t = m + n * n
    # A C-ordered matrix read in column-major order is its transpose, so each product below is
    # written for the transposes: M^T = gV^T V, (V K)^T = K V^T (K symmetric), G^T = V (V K)^T.
    _gemm(c'N', c'T', n, gv, v, m)
    for i in range(n):
        for j in range(i):
            d = (m[j * n + i] - m[i * n + j]) / (2 * (w[i] - w[j]))
            t[i * n + j] = d
            t[j * n + i] = d
        t[i * n + i] = gw[i] if gw != NULL else 0
    _gemm(c'N', c'N', n, t, v, m)
    _gemm(c'T', c'N', n, v, m, out)
    free(m)
    return 0


cdef int _eigh_vjp_typed(int typ, char *w, char *v, char *gv, char *gw, int n, double tol_factor,
                         char *out) noexcept nogil:
    if typ == cnp.NPY_DOUBLE:
        return _eigh_vjp_into(<double *>w, <double *>v, <double *>gv, <double *>gw, n,
                              tol_factor, <double *>out)
    return _eigh_vjp_into(<float *>w, <float *>v, <float *>gv, <float *>gw, n,
                          <float>tol_factor, <float *>out)


def eigh_vjp_small(cnp.ndarray w, cnp.ndarray v, cnp.ndarray gv, object gw, double tol_factor):
    """eigh's VJP G for one n x n matrix (1 <= n <= MAX_N) with all eigenvalues more than
    tol_factor * max|w| apart, or None when they are not (the caller then runs the general,
    cluster-aware form).  w, V, gV (and gw unless None): C-contiguous, of one float dtype."""
    for x in (w, v, gv, gw):            # the loops read the memory as native, C-ordered
        if x is not None and not (cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x) and
                                  cnp.PyArray_ISALIGNED(<cnp.ndarray>x) and
                                  cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>x) and
                                  cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.PyArray_TYPE(v)):
            raise ValueError("eigh_vjp_small: w, V, gV and gw must be native, aligned, "
                             "C-contiguous arrays of one float dtype")
    cdef int n = <int>cnp.PyArray_DIM(v, 0)
    cdef int typ = cnp.PyArray_TYPE(v)
    cdef cnp.npy_intp dims[2]
    dims[0] = dims[1] = n
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, typ, 0)
    cdef char *pgw = NULL if gw is None else <char *>cnp.PyArray_DATA(<cnp.ndarray>gw)
    cdef char *pw = <char *>cnp.PyArray_DATA(w)
    cdef char *pv = <char *>cnp.PyArray_DATA(v)
    cdef char *pg = <char *>cnp.PyArray_DATA(gv)
    cdef char *po = <char *>cnp.PyArray_DATA(out)
    cdef int r
    if n >= NOGIL_N:
        with nogil:
            r = _eigh_vjp_typed(typ, pw, pv, pg, pgw, n, tol_factor, po)
    else:
        r = _eigh_vjp_typed(typ, pw, pv, pg, pgw, n, tol_factor, po)
    if r < 0:
        raise MemoryError("eigh: cannot allocate the VJP's workspace")
    return None if r else out
