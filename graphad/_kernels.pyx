# cython: language_level=3, cdivision=True
"""Array-level wrappers for the C kernels (csrc/ga_kernels.c) and for BLAS matmul.

Fast paths cover float64/float32 buffers that are contiguous and of one shape (or one operand of
size 1); everything else goes to the equivalent NumPy call, so results always match NumPy's.
"""
cimport cython
import math
import os
import weakref

import numpy as np
cimport numpy as cnp
from libc.string cimport memcpy
from cpython.ref cimport Py_INCREF, PyObject
from cpython.list cimport PyList_GET_ITEM
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv

cnp.import_array()
cnp.import_ufunc()

cdef extern from "ga_kernels.h" nogil:
    void ga_binary_d(int op, Py_ssize_t n, const double *a, Py_ssize_t sa,
                     const double *b, Py_ssize_t sb, double *out)
    void ga_binary_f(int op, Py_ssize_t n, const float *a, Py_ssize_t sa,
                     const float *b, Py_ssize_t sb, float *out)
    void ga_unary_d(int op, Py_ssize_t n, const double *x, double *out)
    void ga_unary_f(int op, Py_ssize_t n, const float *x, float *out)
    void ga_accumulate_d(Py_ssize_t n, double *acc, const double *x)
    void ga_accumulate_f(Py_ssize_t n, float *acc, const float *x)
    void ga_sum_rows_d(Py_ssize_t rows, Py_ssize_t cols, const double *x, double *out)
    void ga_sum_rows_f(Py_ssize_t rows, Py_ssize_t cols, const float *x, float *out)
    double ga_sum_d(Py_ssize_t n, const double *x)
    float ga_sum_f(Py_ssize_t n, const float *x)
    void ga_transpose_d(Py_ssize_t rows, Py_ssize_t cols, const double *x, Py_ssize_t ldx,
                        double *out)
    void ga_transpose_f(Py_ssize_t rows, Py_ssize_t cols, const float *x, Py_ssize_t ldx,
                        float *out)
    void ga_neg_abs_d(Py_ssize_t n, const double *x, double *out)
    void ga_neg_abs_f(Py_ssize_t n, const float *x, float *out)
    void ga_sigmoid_from_exp_d(Py_ssize_t n, const double *x, double *e)
    void ga_sigmoid_from_exp_f(Py_ssize_t n, const float *x, float *e)
    void ga_softplus_from_log1p_d(Py_ssize_t n, const double *x, double *l)
    void ga_softplus_from_log1p_f(Py_ssize_t n, const float *x, float *l)
    Py_ssize_t ga_xent_fwd_d(Py_ssize_t rows, Py_ssize_t cols, const double *x,
                             const long long *labels, double *loss, double *lse)
    Py_ssize_t ga_xent_fwd_f(Py_ssize_t rows, Py_ssize_t cols, const float *x,
                             const long long *labels, float *loss, float *lse)
    void ga_xent_vjp_d(Py_ssize_t rows, Py_ssize_t cols, const double *x,
                       const long long *labels, const double *lse, const double *g,
                       Py_ssize_t sg, double scale, double *out)
    void ga_xent_vjp_f(Py_ssize_t rows, Py_ssize_t cols, const float *x,
                       const long long *labels, const float *lse, const float *g,
                       Py_ssize_t sg, double scale, float *out)
    void ga_xent_shift_d(Py_ssize_t rows, Py_ssize_t cols, const double *x, double *e, double *m)
    void ga_xent_shift_f(Py_ssize_t rows, Py_ssize_t cols, const float *x, float *e, float *m)
    Py_ssize_t ga_xent_from_exp_d(Py_ssize_t rows, Py_ssize_t cols, const double *x,
                                  const long long *labels, const double *e, double *loss,
                                  double *lse)
    Py_ssize_t ga_xent_from_exp_f(Py_ssize_t rows, Py_ssize_t cols, const float *x,
                                  const long long *labels, const float *e, float *loss,
                                  float *lse)
    void ga_xent_vjp_shift_d(Py_ssize_t rows, Py_ssize_t cols, const double *x,
                             const double *lse, double *out)
    void ga_xent_vjp_shift_f(Py_ssize_t rows, Py_ssize_t cols, const float *x,
                             const float *lse, float *out)
    void ga_xent_vjp_from_exp_d(Py_ssize_t rows, Py_ssize_t cols, const long long *labels,
                                const double *g, Py_ssize_t sg, double scale, double *out)
    void ga_xent_vjp_from_exp_f(Py_ssize_t rows, Py_ssize_t cols, const long long *labels,
                                const float *g, Py_ssize_t sg, double scale, float *out)
    void ga_sgd_d(Py_ssize_t n, double *p, const double *g, double *buf, double lr,
                  double momentum, double dampening, double wd, int nesterov, int first)
    void ga_sgd_f(Py_ssize_t n, float *p, const float *g, float *buf, double lr,
                  double momentum, double dampening, double wd, int nesterov, int first)
    void ga_adam_d(Py_ssize_t n, double *p, const double *g, double *m, double *v, double lr,
                   double b1, double b2, double eps, double wd, int decoupled, double bc1,
                   double bc2)
    void ga_adam_f(Py_ssize_t n, float *p, const float *g, float *m, float *v, double lr,
                   double b1, double b2, double eps, double wd, int decoupled, double bc1,
                   double bc2)


# ---------------------------------------------------------------------------------------------
# Result buffers.  Large results come from a cache of freed blocks (keyed by exact byte size), so
# that a program that computes the same shapes step after step (a training loop) reuses its
# memory instead of asking malloc for fresh pages every time (glibc maps blocks of 128 KiB and
# more straight from the kernel and returns them on free: every step would page-fault them in
# again).  A cached array's base is a _Block, which hands the memory back when the array dies.

cdef extern from "stdlib.h" nogil:
    void *aligned_alloc(size_t alignment, size_t size)
    void free(void *ptr)

cdef Py_ssize_t _POOL_MIN = 1 << 15        # smaller blocks: malloc is fast enough
cdef Py_ssize_t _POOL_CAP = 1 << 28        # at most this many free bytes kept
cdef Py_ssize_t _pooled = 0
cdef dict _free_blocks = {}                # nbytes -> list of addresses


@cython.freelist(64)
cdef class _Block:
    cdef void *ptr
    cdef Py_ssize_t nbytes

    def __dealloc__(self):
        global _pooled
        if self.ptr == NULL:
            return
        if _free_blocks is not None and _pooled + self.nbytes <= _POOL_CAP:
            lst = _free_blocks.get(self.nbytes)
            if lst is None:
                lst = _free_blocks[self.nbytes] = []
            lst.append(<size_t>self.ptr)
            _pooled += self.nbytes
        else:
            free(self.ptr)


# 0-d results (a scalar graph makes two or three per operation, at about 600 instructions each
# to create and free through NumPy): the last _SCALARS made, per dtype, are kept, and one that
# nobody else references any more (reference count 1: this ring's) is handed out again instead
# of a new one.  Only an array exactly as made (0-d, this dtype, owning its data, writeable, no
# weak references) is reused: nobody can see it happen.
cdef extern from "numpy/ndarraytypes.h":
    ctypedef struct PyArrayObject_fields:
        PyObject *base
        PyObject *weakreflist

cdef enum:
    _SCALARS = 8
cdef list _scalar_ring = [None] * (2 * _SCALARS)    # float64 slots, then float32 slots
cdef Py_ssize_t _scalar_next[2]
_scalar_next[0] = _scalar_next[1] = 0


cdef cnp.ndarray _new_scalar(int typ):
    """An uninitialized 0-d float64 or float32 array, reused from the ring where one is free."""
    cdef int k = 0 if typ == cnp.NPY_DOUBLE else 1
    cdef Py_ssize_t slot = k * _SCALARS + _scalar_next[k]
    cdef PyObject *old = PyList_GET_ITEM(_scalar_ring, slot)
    cdef cnp.ndarray a
    _scalar_next[k] = (_scalar_next[k] + 1) % _SCALARS
    if old.ob_refcnt == 1 and (<object>old) is not None:
        a = <cnp.ndarray>old
        if cnp.PyArray_NDIM(a) == 0 and cnp.PyArray_TYPE(a) == typ and \
                cnp.PyArray_CHKFLAGS(a, cnp.NPY_ARRAY_OWNDATA | cnp.NPY_ARRAY_WRITEABLE) and \
                (<PyArrayObject_fields*>old).base == NULL and \
                (<PyArrayObject_fields*>old).weakreflist == NULL:
            return a
    a = cnp.PyArray_EMPTY(0, NULL, typ, 0)
    _scalar_ring[slot] = a
    return a


cdef cnp.ndarray new_array(int nd, cnp.npy_intp *dims, int typ):
    """An uninitialized C-contiguous array; large ones reuse a cached block, 0-d ones a free
    one of the ring above."""
    global _pooled
    cdef Py_ssize_t i, nbytes = 8 if typ == cnp.NPY_DOUBLE else (4 if typ == cnp.NPY_FLOAT else 0)
    cdef void *ptr
    if nbytes == 0:
        return cnp.PyArray_EMPTY(nd, dims, typ, 0)
    if nd == 0:
        return _new_scalar(typ)
    for i in range(nd):
        nbytes *= dims[i]
    if nbytes < _POOL_MIN:
        return cnp.PyArray_EMPTY(nd, dims, typ, 0)
    lst = _free_blocks.get(nbytes)
    if lst:
        ptr = <void*><size_t>lst.pop()
        _pooled -= nbytes
    else:
        ptr = aligned_alloc(64, (nbytes + 63) & ~(<Py_ssize_t>63))
        if ptr == NULL:
            raise MemoryError(f"cannot allocate {nbytes} bytes")
    cdef _Block block = _Block.__new__(_Block)
    block.ptr = ptr
    block.nbytes = nbytes
    cdef cnp.ndarray arr = cnp.PyArray_SimpleNewFromData(nd, dims, typ, ptr)
    cnp.set_array_base(arr, block)
    return arr


def empty_cache():
    """Free the cached result buffers (they are otherwise kept for reuse, up to 256 MiB)."""
    global _pooled
    for lst in _free_blocks.values():
        for addr in lst:
            free(<void*><size_t>addr)
    _free_blocks.clear()
    _pooled = 0


def _mul0(a, b):
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        return np.where(np.asarray(a) == 0, np.zeros((), np.result_type(a, b)), np.multiply(a, b))

def _tanh_grad(g, y):
    return _mul0(g, 1 - np.square(y))

def _sigmoid_grad(g, y):
    return _mul0(g, y * (1 - y))

def _div0(g, x):
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        return np.where(np.asarray(g) == 0, np.zeros((), np.result_type(g, x)),
                        np.true_divide(g, x))

def _relu_grad(g, y):
    g = np.asarray(g)
    return np.where(np.asarray(y) > 0, g, np.zeros((), np.result_type(g, y)))

# NumPy equivalents, indexed by the C op codes, for the cases the kernels do not take.
_NP_BINARY = (np.add, np.subtract, np.multiply, np.true_divide, np.power, np.maximum,
              np.minimum, _mul0, np.arctan2, np.hypot, np.logaddexp, np.logaddexp2, np.fmax,
              np.fmin, _tanh_grad, _sigmoid_grad, _relu_grad, _div0)
_NP_UNARY = (np.negative, np.exp, np.log, np.log1p, np.sin, np.cos, np.tan, np.tanh, np.sinh,
             np.cosh, np.sqrt, np.square, np.abs, np.sign,
             lambda x: np.maximum(x, 0), lambda x: 1 / (1 + np.exp(-x)),
             lambda x: np.logaddexp(x, 0), np.reciprocal, lambda x: (x > 0).astype(x.dtype),
             np.expm1, np.exp2, np.log2, np.log10, np.arcsin, np.arccos, np.arctan, np.arcsinh,
             np.arccosh, np.arctanh)


cdef inline bint _is_float_array(object x):
    """A float64/float32 array in the machine's byte order (the kernels read its memory as
    double/float: a byte-swapped one, '>f8' here, goes to NumPy)."""
    return cnp.PyArray_Check(x) and (cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_DOUBLE or
                                     cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT) and \
        cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>x)


cdef inline bint _is_pyscalar(object x):
    return type(x) is float or type(x) is int


cdef object _binary_scalar(int op, cnp.ndarray x, object v, bint x_first):
    """x (op) v, or v (op) x, for a float array x and a Python number v: the kernel reads v
    at one address (stride 0), from a C double or float here, with no array made for it (a
    rule's constants: g * 1.0001, y + 0.5); a non-contiguous x goes to NumPy."""
    cdef PyThreadState *ts
    cdef int typ = cnp.PyArray_TYPE(x)
    cdef double s
    cdef float sf
    if not cnp.PyArray_IS_C_CONTIGUOUS(x):
        # NumPy, with the number as a 0-d array of x's dtype (the composite fallbacks of the
        # fused rules would promote a float32 x against a bare Python float)
        v = np.full((), v, x.dtype)
        return _binary_numpy(op, x, v) if x_first else _binary_numpy(op, v, x)
    cdef cnp.ndarray out = new_array(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), typ)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(out)
    ts = _unlock(n >= _NOGIL_MIN)
    if typ == cnp.NPY_DOUBLE:
        s = <double>v
        if x_first:
            ga_binary_d(op, n, <double*>cnp.PyArray_DATA(x), 1, &s, 0,
                        <double*>cnp.PyArray_DATA(out))
        else:
            ga_binary_d(op, n, &s, 0, <double*>cnp.PyArray_DATA(x), 1,
                        <double*>cnp.PyArray_DATA(out))
    else:
        sf = <float>(<double>v)
        if x_first:
            ga_binary_f(op, n, <float*>cnp.PyArray_DATA(x), 1, &sf, 0,
                        <float*>cnp.PyArray_DATA(out))
        else:
            ga_binary_f(op, n, &sf, 0, <float*>cnp.PyArray_DATA(x), 1,
                        <float*>cnp.PyArray_DATA(out))
    _relock(ts)
    return out


cdef object _binary_numpy(int op, object a, object b):
    with np.errstate(all="ignore"):
        return _NP_BINARY[op](a, b)


cdef bint _is_suffix(cnp.ndarray small, cnp.ndarray big):
    """Whether small's shape, leading 1s dropped, is a proper trailing part of big's shape."""
    cdef int i, ns = cnp.PyArray_NDIM(small), nb = cnp.PyArray_NDIM(big), lead = 0
    while lead < ns and small.shape[lead] == 1:
        lead += 1
    if ns - lead >= nb or ns > nb:
        return False
    for i in range(lead, ns):
        if small.shape[i] != big.shape[nb - ns + i]:
            return False
    return cnp.PyArray_SIZE(small) > 0


# The kernels release the GIL only for enough work: on small arrays handing the GIL over (a
# mutex and a condition variable, some 400 instructions) costs more than the loop itself, and
# other threads gain nothing from so short a pause.  Between _unlock and _relock only C runs.
cdef extern from "Python.h":
    ctypedef struct PyThreadState:
        pass
    PyThreadState *PyEval_SaveThread()
    void PyEval_RestoreThread(PyThreadState *)

cdef Py_ssize_t _NOGIL_MIN = 1 << 14               # elements of an elementwise kernel
cdef double _NOGIL_MIN_FLOPS = <double>(1 << 17)   # m n k of a product


cdef inline PyThreadState *_unlock(bint release) noexcept:
    return PyEval_SaveThread() if release else NULL


cdef inline void _relock(PyThreadState *ts) noexcept:
    if ts != NULL:
        PyEval_RestoreThread(ts)


cdef object _binary_rows(int op, cnp.ndarray big, cnp.ndarray small, int typ, bint small_first):
    """big (op) small (or small (op) big) where small repeats along big's leading axes: the
    kernel once per row of big, both operands with unit stride (contiguous buffers)."""
    cdef PyThreadState *ts
    cdef cnp.ndarray out = new_array(cnp.PyArray_NDIM(big), cnp.PyArray_DIMS(big), typ)
    cdef Py_ssize_t cols = cnp.PyArray_SIZE(small)
    cdef Py_ssize_t rows = cnp.PyArray_SIZE(big) // cols if cols else 0
    cdef Py_ssize_t i
    cdef double *bd = <double*>cnp.PyArray_DATA(big)
    cdef double *sd = <double*>cnp.PyArray_DATA(small)
    cdef double *od = <double*>cnp.PyArray_DATA(out)
    cdef float *bf = <float*>cnp.PyArray_DATA(big)
    cdef float *sf = <float*>cnp.PyArray_DATA(small)
    cdef float *of = <float*>cnp.PyArray_DATA(out)
    ts = _unlock(cnp.PyArray_SIZE(big) >= _NOGIL_MIN)
    for i in range(rows):
        if typ == cnp.NPY_DOUBLE:
            if small_first:
                ga_binary_d(op, cols, sd, 1, bd + i * cols, 1, od + i * cols)
            else:
                ga_binary_d(op, cols, bd + i * cols, 1, sd, 1, od + i * cols)
        else:
            if small_first:
                ga_binary_f(op, cols, sf, 1, bf + i * cols, 1, of + i * cols)
            else:
                ga_binary_f(op, cols, bf + i * cols, 1, sf, 1, of + i * cols)
    _relock(ts)
    return out


cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyTypeObject:
        pass
    object _new_from_descr "PyArray_NewFromDescr" (
        PyTypeObject *subtype, cnp.PyArray_Descr *descr, int nd, cnp.npy_intp *dims,
        cnp.npy_intp *strides, void *data, int flags, void *obj)


cdef inline bint _is_repeated_value(cnp.ndarray x):
    """Every stride 0: one value seen at every index (a broadcast scalar)."""
    cdef int i
    for i in range(cnp.PyArray_NDIM(x)):
        if cnp.PyArray_STRIDES(x)[i] != 0 and cnp.PyArray_DIMS(x)[i] > 1:
            return False
    return True


cdef inline bint _broadcasts_into(cnp.ndarray small, cnp.ndarray big):
    """Whether small broadcasts against big to big's shape (no axis of small extends big)."""
    cdef int i, ns = cnp.PyArray_NDIM(small), nb = cnp.PyArray_NDIM(big)
    if ns > nb:
        return False
    for i in range(ns):
        if small.shape[i] != 1 and small.shape[i] != big.shape[nb - ns + i]:
            return False
    return True


cpdef object broadcast_to(object x, tuple shape):
    """np.broadcast_to (a read-only view with stride 0 along broadcast axes), built directly
    with the C API: NumPy's version costs microseconds, which a reduction's VJP pays per call."""
    cdef cnp.ndarray a, r
    cdef int i, j, nd = len(shape), xd
    cdef cnp.npy_intp dims[32]
    cdef cnp.npy_intp strides[32]
    if not cnp.PyArray_Check(x) or nd > 32:
        return np.broadcast_to(x, shape)
    a = <cnp.ndarray>x
    xd = cnp.PyArray_NDIM(a)
    if xd > nd:
        return np.broadcast_to(x, shape)          # raises NumPy's error
    for i in range(nd):
        dims[i] = shape[i]
        j = i - (nd - xd)
        if j < 0 or cnp.PyArray_DIMS(a)[j] == 1 and dims[i] != 1:
            strides[i] = 0
        elif cnp.PyArray_DIMS(a)[j] == dims[i]:
            strides[i] = cnp.PyArray_STRIDES(a)[j]
        else:
            return np.broadcast_to(x, shape)      # raises NumPy's error
    descr = cnp.PyArray_DESCR(a)
    Py_INCREF(<object>descr)                       # PyArray_NewFromDescr steals it
    r = _new_from_descr(<PyTypeObject*>np.ndarray, descr, nd, dims, strides,
                        cnp.PyArray_DATA(a), 0, NULL)
    cnp.set_array_base(r, a)
    return r


cdef inline bint _is_column(cnp.ndarray x):
    """An (m, 1) matrix."""
    return cnp.PyArray_NDIM(x) == 2 and cnp.PyArray_DIMS(x)[1] == 1


cdef inline bint _is_row(cnp.ndarray x):
    """An (n,) vector or a (1, n) matrix."""
    return cnp.PyArray_NDIM(x) == 1 or (cnp.PyArray_NDIM(x) == 2 and cnp.PyArray_DIMS(x)[0] == 1)


cdef object _binary_outer(int op, cnp.ndarray col, cnp.ndarray row, int typ, bint col_first):
    """col (op) row for an (m, 1) column and an (n,) or (1, n) row (both C-contiguous): the
    (m, n) outer table (a matmul's cotangent g b^T), one kernel call per row, without NumPy's
    broadcasting (and, for the chain-rule product, its errstate and where)."""
    cdef PyThreadState *ts
    cdef cnp.npy_intp dims[2]
    cdef Py_ssize_t i, m = cnp.PyArray_DIMS(col)[0], n = cnp.PyArray_SIZE(row)
    cdef cnp.ndarray out
    dims[0], dims[1] = m, n
    out = new_array(2, dims, typ)
    ts = _unlock(m * n >= _NOGIL_MIN)
    if typ == cnp.NPY_DOUBLE:
        for i in range(m):
            if col_first:
                ga_binary_d(op, n, <double*>cnp.PyArray_DATA(col) + i, 0,
                            <double*>cnp.PyArray_DATA(row), 1,
                            <double*>cnp.PyArray_DATA(out) + i * n)
            else:
                ga_binary_d(op, n, <double*>cnp.PyArray_DATA(row), 1,
                            <double*>cnp.PyArray_DATA(col) + i, 0,
                            <double*>cnp.PyArray_DATA(out) + i * n)
    else:
        for i in range(m):
            if col_first:
                ga_binary_f(op, n, <float*>cnp.PyArray_DATA(col) + i, 0,
                            <float*>cnp.PyArray_DATA(row), 1,
                            <float*>cnp.PyArray_DATA(out) + i * n)
            else:
                ga_binary_f(op, n, <float*>cnp.PyArray_DATA(row), 1,
                            <float*>cnp.PyArray_DATA(col) + i, 0,
                            <float*>cnp.PyArray_DATA(out) + i * n)
    _relock(ts)
    return out


cpdef object binary(int op, object a, object b):
    """Elementwise a (op) b with NumPy broadcasting and type promotion."""
    cdef PyThreadState *ts
    cdef cnp.ndarray x, y, out
    cdef Py_ssize_t n, sa = 1, sb = 1
    cdef int typ
    if _is_pyscalar(a) and _is_pyscalar(b):
        # two Python numbers (a rule's constants): a Python number, which stays weak in NumPy's
        # promotion, so that a float32 tangent times it stays float32 (np.float64 would not);
        # .item() keeps NumPy's int / float choice
        return _binary_numpy(op, a, b).item()
    if _is_float_array(a):
        x = <cnp.ndarray>a
        typ = cnp.PyArray_TYPE(x)
        if _is_pyscalar(b):
            return _binary_scalar(op, x, b, True)
        elif _is_float_array(b) and cnp.PyArray_TYPE(<cnp.ndarray>b) == typ:
            y = <cnp.ndarray>b
        else:
            return _binary_numpy(op, a, b)
    elif _is_float_array(b) and _is_pyscalar(a):
        return _binary_scalar(op, <cnp.ndarray>b, a, False)
    else:
        return _binary_numpy(op, a, b)
    if not (cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_IS_C_CONTIGUOUS(y)):
        # one value broadcast to the other's shape (a reduction's cotangent): a stride-0 operand
        # (or to a shape that broadcasts into the other's: the seed's ones against a block of
        # tangents)
        if sa and sb:
            if _is_repeated_value(x) and cnp.PyArray_IS_C_CONTIGUOUS(y) and \
                    _broadcasts_into(x, y):
                sa = 0
            elif _is_repeated_value(y) and cnp.PyArray_IS_C_CONTIGUOUS(x) and \
                    _broadcasts_into(y, x):
                sb = 0
        # a stride-0 operand is read at one address; any other must be contiguous
        if (sa and not cnp.PyArray_IS_C_CONTIGUOUS(x)) or \
                (sb and not cnp.PyArray_IS_C_CONTIGUOUS(y)):
            return _binary_numpy(op, a, b)
    # Same shape, or one side a scalar broadcast against the other, or one side repeated along
    # leading axes (a row against a matrix, a block of tangents against a value); anything
    # else to NumPy.
    if sa and sb:
        if cnp.PyArray_SAMESHAPE(x, y):
            pass
        elif cnp.PyArray_SIZE(y) == 1 and cnp.PyArray_NDIM(y) <= cnp.PyArray_NDIM(x):
            sb = 0
        elif cnp.PyArray_SIZE(x) == 1 and cnp.PyArray_NDIM(x) <= cnp.PyArray_NDIM(y):
            sa = 0
        elif _is_suffix(y, x):
            return _binary_rows(op, x, y, typ, False)
        elif _is_suffix(x, y):
            return _binary_rows(op, y, x, typ, True)
        elif _is_column(x) and _is_row(y):
            return _binary_outer(op, x, y, typ, True)
        elif _is_column(y) and _is_row(x):
            return _binary_outer(op, y, x, typ, False)
        else:
            return _binary_numpy(op, a, b)
    if sa:
        out = new_array(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), typ)
    else:
        out = new_array(cnp.PyArray_NDIM(y), cnp.PyArray_DIMS(y), typ)
    n = cnp.PyArray_SIZE(out)
    if typ == cnp.NPY_DOUBLE:
        ts = _unlock(n >= _NOGIL_MIN)
        ga_binary_d(op, n, <double*>cnp.PyArray_DATA(x), sa,
                    <double*>cnp.PyArray_DATA(y), sb, <double*>cnp.PyArray_DATA(out))
        _relock(ts)
    else:
        ts = _unlock(n >= _NOGIL_MIN)
        ga_binary_f(op, n, <float*>cnp.PyArray_DATA(x), sa,
                    <float*>cnp.PyArray_DATA(y), sb, <float*>cnp.PyArray_DATA(out))
        _relock(ts)
    return out


# NumPy's own inner loops for the transcendental functions: on x86 they are SIMD (AVX2/AVX-512)
# and 3-20x faster than a loop over libm, and calling the loop directly skips the ufunc machinery
# (about a microsecond per call).  Found once, by dtype signature, in each ufunc's loop table.
# sigmoid and softplus are built from the exp and log1p loops (_logistic).
ctypedef void (*_ufunc_loop)(char **args, cnp.npy_intp *dims, cnp.npy_intp *steps,
                             void *data) noexcept nogil
cdef _ufunc_loop _loops[2][32]     # [0]: float64, [1]: float32; NULL where the C kernel runs
cdef void *_loop_data[2][32]


cdef void _register_loop(int op, cnp.ufunc uf):
    cdef int i, k
    cdef int types[2]
    types[0], types[1] = cnp.NPY_DOUBLE, cnp.NPY_FLOAT
    if uf.nin != 1 or uf.nout != 1:
        return
    for k in range(2):
        for i in range(uf.ntypes):
            if uf.types[2 * i] == types[k] and uf.types[2 * i + 1] == types[k]:
                if uf.functions[i] != NULL:
                    _loops[k][op] = <_ufunc_loop><void*>uf.functions[i]
                    _loop_data[k][op] = uf.data[i]
                break


_NP_LOOPS = ((GA_EXP, np.exp), (GA_LOG, np.log), (GA_LOG1P, np.log1p), (GA_SIN, np.sin),
             (GA_COS, np.cos), (GA_TAN, np.tan), (GA_TANH, np.tanh), (GA_SINH, np.sinh),
             (GA_COSH, np.cosh), (GA_EXPM1, np.expm1), (GA_EXP2, np.exp2), (GA_LOG2, np.log2),
             (GA_LOG10, np.log10), (GA_ARCSIN, np.arcsin), (GA_ARCCOS, np.arccos),
             (GA_ARCTAN, np.arctan), (GA_ARCSINH, np.arcsinh), (GA_ARCCOSH, np.arccosh),
             (GA_ARCTANH, np.arctanh))
for _op, _uf in _NP_LOOPS:
    _register_loop(_op, _uf)


cdef void _logistic(int op, int k, cnp.ndarray a, cnp.ndarray out, cnp.npy_intp n) noexcept:
    """sigmoid or softplus of a into out, with NumPy's exp (and log1p) loops in place on
    out = -|a|: sigmoid = (1 or e) / (1 + e), softplus = log1p(e) + max(a, 0), e = exp(-|a|)."""
    cdef PyThreadState *ts
    cdef char *args[2]
    cdef cnp.npy_intp steps[2]
    args[0] = args[1] = <char*>cnp.PyArray_DATA(out)
    steps[0] = steps[1] = cnp.PyArray_ITEMSIZE(a)
    ts = _unlock(n >= _NOGIL_MIN)
    if k == 0:
        ga_neg_abs_d(n, <double*>cnp.PyArray_DATA(a), <double*>args[0])
    else:
        ga_neg_abs_f(n, <float*>cnp.PyArray_DATA(a), <float*>args[0])
    _loops[k][<int>GA_EXP](args, &n, steps, _loop_data[k][<int>GA_EXP])
    if op == GA_SIGMOID:
        if k == 0:
            ga_sigmoid_from_exp_d(n, <double*>cnp.PyArray_DATA(a), <double*>args[0])
        else:
            ga_sigmoid_from_exp_f(n, <float*>cnp.PyArray_DATA(a), <float*>args[0])
    else:
        _loops[k][<int>GA_LOG1P](args, &n, steps, _loop_data[k][<int>GA_LOG1P])
        if k == 0:
            ga_softplus_from_log1p_d(n, <double*>cnp.PyArray_DATA(a), <double*>args[0])
        else:
            ga_softplus_from_log1p_f(n, <float*>cnp.PyArray_DATA(a), <float*>args[0])
    _relock(ts)


cpdef object unary(int op, object x):
    """Elementwise op(x); integer input is promoted to float64 as NumPy's ufuncs do."""
    cdef PyThreadState *ts
    cdef cnp.ndarray a, out
    cdef cnp.npy_intp n
    cdef int k
    cdef bint aligned
    cdef char *args[2]
    cdef cnp.npy_intp steps[2]
    if _is_pyscalar(x):                 # a Python number: a (weak) Python float, as binary
        return float(_NP_UNARY[op](np.float64(x)))
    if not _is_float_array(x):
        x = np.asarray(x)
        if x.dtype.kind in "biu":
            x = x.astype(np.float64)
        if not _is_float_array(x):
            with np.errstate(all="ignore"):
                return _NP_UNARY[op](x)
    a = <cnp.ndarray>x
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        a = np.ascontiguousarray(a)
    out = new_array(cnp.PyArray_NDIM(a), cnp.PyArray_DIMS(a), cnp.PyArray_TYPE(a))
    n = cnp.PyArray_SIZE(a)
    k = 0 if cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE else 1
    aligned = cnp.PyArray_ISALIGNED(a)
    if _loops[k][op] != NULL and aligned:
        args[0], args[1] = <char*>cnp.PyArray_DATA(a), <char*>cnp.PyArray_DATA(out)
        steps[0] = steps[1] = cnp.PyArray_ITEMSIZE(a)
        ts = _unlock(n >= _NOGIL_MIN)
        _loops[k][op](args, &n, steps, _loop_data[k][op])
        _relock(ts)
    elif (op == GA_SIGMOID or op == GA_SOFTPLUS) and aligned and \
            _loops[k][<int>GA_EXP] != NULL and _loops[k][<int>GA_LOG1P] != NULL:
        _logistic(op, k, a, out, n)
    elif k == 0:
        ts = _unlock(n >= _NOGIL_MIN)
        ga_unary_d(op, n, <double*>cnp.PyArray_DATA(a), <double*>cnp.PyArray_DATA(out))
        _relock(ts)
    else:
        ts = _unlock(n >= _NOGIL_MIN)
        ga_unary_f(op, n, <float*>cnp.PyArray_DATA(a), <float*>cnp.PyArray_DATA(out))
        _relock(ts)
    return out


# A NumPy whose table holds something else (a loop that needs the ufunc machinery's setup) must
# not be trusted blindly: each loop found is kept only if it reproduces the ufunc exactly.
for _op, _uf in _NP_LOOPS:
    for _k, _dt in enumerate((np.float64, np.float32)):
        if _loops[_k][_op] != NULL:
            _probe = np.linspace(0.125, 1.5, 37, dtype=_dt)
            with np.errstate(invalid="ignore"):     # arcsin, arccosh: NaN outside the domain
                _same = np.array_equal(unary(_op, _probe), _uf(_probe), equal_nan=True)
            if not _same:
                _loops[_k][_op] = NULL


cpdef object accumulate(object acc, object x):
    """acc += x in place when acc is a float buffer of x's shape; returns acc (or a new sum).
    x may also be one value broadcast to that shape (a sum's cotangent), read at one address.
    An x whose memory overlaps acc's (other than acc itself) goes to NumPy, which copies it:
    the loop would read entries it has already changed."""
    cdef PyThreadState *ts
    cdef cnp.ndarray a, b
    cdef Py_ssize_t n
    cdef bint repeated
    cdef char *pa
    cdef char *pb
    if _is_float_array(acc) and _is_float_array(x):
        a = <cnp.ndarray>acc
        b = <cnp.ndarray>x
        if cnp.PyArray_TYPE(a) == cnp.PyArray_TYPE(b) and cnp.PyArray_IS_C_CONTIGUOUS(a) and \
                cnp.PyArray_SAMESHAPE(a, b) and cnp.PyArray_ISWRITEABLE(a):
            n = cnp.PyArray_SIZE(a)
            repeated = not cnp.PyArray_IS_C_CONTIGUOUS(b)
            if repeated and not _is_repeated_value(b):
                n = -1                  # strided: NumPy
            pa, pb = <char*>cnp.PyArray_DATA(a), <char*>cnp.PyArray_DATA(b)
            if n > 0 and (pb == pa and not repeated or
                          pb >= pa + n * cnp.PyArray_ITEMSIZE(a) or
                          pa >= pb + (1 if repeated else n) * cnp.PyArray_ITEMSIZE(a)):
                ts = _unlock(n >= _NOGIL_MIN)
                if cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE:
                    if repeated:
                        ga_binary_d(GA_ADD, n, <double*>pa, 1, <double*>pb, 0, <double*>pa)
                    else:
                        ga_accumulate_d(n, <double*>pa, <double*>pb)
                else:
                    if repeated:
                        ga_binary_f(GA_ADD, n, <float*>pa, 1, <float*>pb, 0, <float*>pa)
                    else:
                        ga_accumulate_f(n, <float*>pa, <float*>pb)
                _relock(ts)
                return acc
    if isinstance(acc, np.ndarray) and acc.shape == np.shape(x) and \
            np.can_cast(np.result_type(acc, x), acc.dtype) and acc.flags.writeable:
        np.add(acc, x, out=acc)
        return acc
    return np.add(acc, x)


cpdef object ones(tuple shape, object dtype):
    """np.ones(shape, dtype) (a sweep's seed) without NumPy's Python-level ones and copyto
    (about 5,000 instructions for a 0-d seed)."""
    cdef cnp.dtype dt = dtype if isinstance(dtype, cnp.dtype) else np.dtype(dtype)
    cdef int typ = dt.type_num
    cdef cnp.npy_intp dims[32]
    cdef Py_ssize_t i, n = len(shape)
    if (typ != cnp.NPY_DOUBLE and typ != cnp.NPY_FLOAT) or n > 32:
        return np.ones(shape, dtype)
    for i in range(n):
        dims[i] = shape[i]
    cdef cnp.ndarray out = new_array(<int>n, dims, typ)
    cdef Py_ssize_t k, size = cnp.PyArray_SIZE(out)
    if typ == cnp.NPY_DOUBLE:
        for k in range(size):
            (<double*>cnp.PyArray_DATA(out))[k] = 1.0
    else:
        for k in range(size):
            (<float*>cnp.PyArray_DATA(out))[k] = 1.0
    return out


cpdef object sum_all(object x):
    """The sum of every entry of a C-contiguous float64 or float32 array, as a 0-d array, by
    NumPy's own pairwise summation (the same bits as np.add.reduce) without the ufunc's reduce
    machinery (about 7,000 instructions a call); None for any other array."""
    cdef PyThreadState *ts
    cdef cnp.ndarray a, out
    cdef int typ
    if not (_is_float_array(x) and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x)):
        return None
    a = <cnp.ndarray>x
    typ = cnp.PyArray_TYPE(a)
    out = new_array(0, NULL, typ)
    ts = _unlock(cnp.PyArray_SIZE(a) >= _NOGIL_MIN)
    if typ == cnp.NPY_DOUBLE:
        (<double*>cnp.PyArray_DATA(out))[0] = ga_sum_d(cnp.PyArray_SIZE(a),
                                                        <double*>cnp.PyArray_DATA(a))
    else:
        (<float*>cnp.PyArray_DATA(out))[0] = ga_sum_f(cnp.PyArray_SIZE(a),
                                                       <float*>cnp.PyArray_DATA(a))
    _relock(ts)
    return out


cpdef object sum_rows(object x):
    """x.sum(axis=0) for a 2-D array, by a C loop when x is a contiguous float buffer."""
    cdef PyThreadState *ts
    cdef cnp.ndarray a, out
    cdef cnp.npy_intp cols
    if not (_is_float_array(x) and cnp.PyArray_NDIM(<cnp.ndarray>x) == 2 and
            cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x)):
        return np.sum(x, axis=0)
    a = <cnp.ndarray>x
    cols = a.shape[1]
    out = cnp.PyArray_EMPTY(1, &cols, cnp.PyArray_TYPE(a), 0)
    if cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE:
        ts = _unlock(cnp.PyArray_SIZE(a) >= _NOGIL_MIN)
        ga_sum_rows_d(a.shape[0], cols, <double*>cnp.PyArray_DATA(a),
                      <double*>cnp.PyArray_DATA(out))
        _relock(ts)
    else:
        ts = _unlock(cnp.PyArray_SIZE(a) >= _NOGIL_MIN)
        ga_sum_rows_f(a.shape[0], cols, <float*>cnp.PyArray_DATA(a),
                      <float*>cnp.PyArray_DATA(out))
        _relock(ts)
    return out


cdef bint _is_column_major(cnp.ndarray x):
    """A 2-D float array whose transpose is row-major (unit stride along its rows)."""
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(x)
    return (_is_float_array(x) and cnp.PyArray_NDIM(x) == 2 and
            cnp.PyArray_STRIDES(x)[0] == item and cnp.PyArray_STRIDES(x)[1] % item == 0 and
            cnp.PyArray_STRIDES(x)[1] >= cnp.PyArray_DIMS(x)[0] * item)


cdef cnp.ndarray _from_column_major(cnp.ndarray x):
    """A C-contiguous copy of a column-major 2-D float array, by a tiled transpose (NumPy's
    strided copy runs at about a tenth of memory speed on this layout)."""
    cdef PyThreadState *ts
    cdef cnp.ndarray out = new_array(2, cnp.PyArray_DIMS(x), cnp.PyArray_TYPE(x))
    cdef Py_ssize_t rows = cnp.PyArray_DIMS(x)[1], cols = cnp.PyArray_DIMS(x)[0]
    cdef Py_ssize_t ld = cnp.PyArray_STRIDES(x)[1] // cnp.PyArray_ITEMSIZE(x)
    if cnp.PyArray_TYPE(x) == cnp.NPY_DOUBLE:
        ts = _unlock(rows * cols >= _NOGIL_MIN)
        ga_transpose_d(rows, cols, <double*>cnp.PyArray_DATA(x), ld,
                       <double*>cnp.PyArray_DATA(out))
        _relock(ts)
    else:
        ts = _unlock(rows * cols >= _NOGIL_MIN)
        ga_transpose_f(rows, cols, <float*>cnp.PyArray_DATA(x), ld,
                       <float*>cnp.PyArray_DATA(out))
        _relock(ts)
    return out


cpdef object contiguous(object x):
    """np.ascontiguousarray(x), with a fast path for transposed matrices."""
    if cnp.PyArray_Check(x):
        if cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x):
            return x
        if _is_column_major(<cnp.ndarray>x):
            return _from_column_major(<cnp.ndarray>x)
    return np.ascontiguousarray(x)


# ---------------------------------------------------------------------------------------------
# matmul through BLAS.  BLAS is column-major; a C-contiguous (m, k) matrix is, to BLAS, the
# column-major (k, m) matrix A^T.  So C = A B is computed as C^T = B^T A^T with the operands
# swapped, and a transposed view (F-ordered) is passed with the 'T' flag instead of being copied.

cdef inline bint _blas_layout(cnp.ndarray a, Py_ssize_t item, char *trans, int *ld):
    """For a 2-D matrix view: the flag and leading dimension that hand it to BLAS as its own
    transpose (row-major), or False when neither of its axes has unit stride."""
    cdef Py_ssize_t s0 = a.strides[0], s1 = a.strides[1]
    cdef Py_ssize_t r = a.shape[0], c = a.shape[1]
    # the stride of an axis of length 1 is never used (NumPy may report 0 there, e.g. after
    # broadcast_to), so such an axis takes the smallest leading dimension BLAS accepts
    if r <= 1:
        s0 = max(c, 1) * item
    if c <= 1:
        s1 = max(r, 1) * item
    if (s1 == item or c == 1) and s0 % item == 0 and s0 // item >= max(c, 1):
        trans[0] = b'N'
        ld[0] = <int>max(s0 // item, 1)
        return True
    if (s0 == item or r == 1) and s1 % item == 0 and s1 // item >= max(r, 1):
        trans[0] = b'T'
        ld[0] = <int>max(s1 // item, 1)
        return True
    return False


cdef void _gemv(int typ, char trans, int rows, int cols, char *pm, int ld, char *px, int incx,
                char *py) noexcept nogil:
    """y = op(M) x for the column-major rows x cols matrix M (ld), into contiguous y."""
    cdef double one = 1.0, zero = 0.0
    cdef float onef = 1.0, zerof = 0.0
    cdef int incy = 1
    if typ == cnp.NPY_DOUBLE:
        dgemv(&trans, &rows, &cols, &one, <double*>pm, &ld, <double*>px, &incx, &zero,
              <double*>py, &incy)
    else:
        sgemv(&trans, &rows, &cols, &onef, <float*>pm, &ld, <float*>px, &incx, &zerof,
              <float*>py, &incy)


cdef extern from "ga_gemm.h" nogil:
    int ga_gemm_available()
    void ga_gemm_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *a, Py_ssize_t ars,
                   Py_ssize_t acs, const double *b, Py_ssize_t ldb, double *c, Py_ssize_t ldc)
    void ga_gemm_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *a, Py_ssize_t ars,
                   Py_ssize_t acs, const float *b, Py_ssize_t ldb, float *c, Py_ssize_t ldc)
    void ga_gemm_nt_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double *a, Py_ssize_t lda,
                      const double *b, Py_ssize_t ldb, double *c, Py_ssize_t ldc)
    void ga_gemm_nt_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *a, Py_ssize_t lda,
                      const float *b, Py_ssize_t ldb, float *c, Py_ssize_t ldc)


# the own kernels for either float type, on raw buffers (_rm: B row-major)
cdef inline void _own_gemm_rm(int typ, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, char *a,
                           Py_ssize_t ars, Py_ssize_t acs, char *b, Py_ssize_t ldb, char *c,
                           Py_ssize_t ldc) noexcept nogil:
    if typ == cnp.NPY_DOUBLE:
        ga_gemm_d(m, n, k, <double*>a, ars, acs, <double*>b, ldb, <double*>c, ldc)
    else:
        ga_gemm_f(m, n, k, <float*>a, ars, acs, <float*>b, ldb, <float*>c, ldc)


cdef inline void _own_gemm_nt(int typ, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, char *a,
                              Py_ssize_t lda, char *b, Py_ssize_t ldb, char *c,
                              Py_ssize_t ldc) noexcept nogil:
    if typ == cnp.NPY_DOUBLE:
        ga_gemm_nt_d(m, n, k, <double*>a, lda, <double*>b, ldb, <double*>c, ldc)
    else:
        ga_gemm_nt_f(m, n, k, <float*>a, lda, <float*>b, ldb, <float*>c, ldc)


# float64 and float32 products use graphad's AVX-512 kernel (csrc/ga_gemm.c) where the CPU has
# AVX-512, SciPy's BLAS is OpenBLAS and the shape is one where the kernel was measured to win
# (_use_own_gemm); GRAPHAD_BLAS_ONLY=1 sends all to BLAS.  _own_mode: 0 never, 1 by those
# rules, 2 always (set_own_gemm(True, always=True): the tests of the kernel itself).
cdef int _own_mode = ga_gemm_available() == 1 and os.environ.get("GRAPHAD_BLAS_ONLY", "") != "1"
cdef double _BLAS_SERIAL = 2.6e5    # below this many, OpenBLAS runs a GEMM on one thread anyway
_blas = None                        # _find_blas(): (OpenBLAS?, () -> thread count, few rows fast?)


# OpenBLAS kernels that run a product of a few rows (m <= 16) at GEMV speed.  The AVX2 ones
# (Haswell, which Zen uses too) have no small-matrix path: 2x500 @ 500x200 took 45.8 us there
# against 11.9 us with the SkylakeX kernel, and two GEMVs 18.8 us (one thread, float64).
_FEW_ROWS_FAST = ("skylakex", "cooperlake", "sapphirerapids")


def _find_blas():
    """(whether the BLAS behind scipy.linalg.cython_blas is OpenBLAS, a getter for its thread
    count or None, whether it runs products of a few rows fast: _FEW_ROWS_FAST or MKL), from
    threadpoolctl, else from SciPy's build record."""
    try:
        from threadpoolctl import ThreadpoolController
        libs = [lib for lib in ThreadpoolController().lib_controllers
                if lib.user_api == "blas"]
    except Exception:                 # no threadpoolctl, or a BLAS it cannot drive
        libs = []
    scipy_libs = [lib for lib in libs if "scipy" in lib.filepath.rsplit("/", 2)[-2]]
    chosen = scipy_libs or libs
    if len(chosen) == 1:
        lib = chosen[0]
        arch = str(getattr(lib, "architecture", "") or "").lower()
        _bind_thread_count(lib)
        return (lib.internal_api == "openblas", lib.get_num_threads,
                lib.internal_api == "mkl" or lib.internal_api == "openblas" and
                arch in _FEW_ROWS_FAST)
    try:
        import scipy
        name = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:
        name = ""
    return "openblas" in str(name).lower(), None, False


ctypedef int (*_int_fn)() noexcept nogil
cdef _int_fn _thread_count = NULL     # the BLAS's own thread-count function, called directly


def _bind_thread_count(lib):
    """Point _thread_count at the C function behind threadpoolctl's lib.get_num_threads (1.5 us
    a call through threadpoolctl's Python layer, four times in a small training step): found
    as threadpoolctl finds it, and kept only if it answers as threadpoolctl does."""
    global _thread_count
    import ctypes
    _thread_count = NULL
    try:
        name = ("omp_get_max_threads" if getattr(lib, "threading_layer", None) == "openmp"
                else "openblas_get_num_threads")
        fn = lib._get_symbol(name)
        addr = ctypes.cast(fn, ctypes.c_void_p).value if fn is not None else None
    except Exception:                 # another threadpoolctl: its Python getter serves
        return
    if addr:
        _thread_count = <_int_fn><size_t>addr
        if _thread_count() != lib.get_num_threads():
            _thread_count = NULL


cdef bint _use_own_gemm(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, bint a_t,
                        bint b_t) except -1:
    """Whether C = A @ B (A m x k, B k x n; a_t: A is a transposed view X^T, b_t: B is W^T)
    should use graphad's kernel.  The rules are where it won by at least 1.2x against OpenBLAS
    (0.3.30 SciPy's and 0.3.31 NumPy's, SkylakeX kernels, one thread, float64 and float32; C
    harness, README Performance), on an Intel SkylakeX (AVX-512):
      A @ B:    m, n <= 16 (10x256x10: 1.5-1.9x); 4 < m <= 16 from 2e5 (10x256x100, jacrev's
                block of 10 cotangents: 1.24x); 1e6 <= macs < 4e6 (128^3: 1.3x, 128x64x128:
                1.4-1.5x, 4x256x1000: 2-2.8x); n <= 32 and macs >= 1e6 (512x1024x10: 1.7-2.2x,
                3000x3000x24: 1.5-2.9x).  Lost or tied: 32x32x10 0.9-1.1x, 2x256x100 0.86x,
                96^3 0.93x, 128x256x128 0.88-0.96x, 256x512x512 and up 0.8-1.0x.
      X^T @ G:  1e6 <= macs < 4e6 with n >= 64 (64x128x128: 1.3-1.6x).  Lost: n = 10
                (128x128x10: 0.5-0.8x, 1024x512x10 0.7-1.1x), 64x256x512 0.9-1.1x.
      A @ W^T:  k <= 16 below 1e6 (128x10x128: 1.7x); m <= 4 from 2.5e5 (2x256x1000: 3.4-6.7x);
                min(m, n) <= 16 from 1e6 (10x256x1000: 1.4-1.9x); all below 4e6.  Lost:
                10x256x10 0.2-0.3x, 2x256x10 0.85x, 256x10x512 0.45x, 100x256x100 0.9-1.25x.
    Against MKL 2026.2 and BLIS 0.7 it wins far less (README), so with any BLAS but OpenBLAS
    everything goes to BLAS.  It is single-threaded, so above OpenBLAS's own serial threshold it
    is used only while BLAS runs on one thread too (threadpool_limits(1),
    OPENBLAS_NUM_THREADS=1)."""
    global _blas
    cdef double macs = <double>m * n * k
    cdef bint fits
    if _own_mode != 1:
        return _own_mode == 2
    if b_t:
        fits = (k <= 16 and macs < 1e6 or macs < 4e6 and (m <= 4 and macs >= 2.5e5
                or min(m, n) <= 16 and macs >= 1e6))
    elif a_t:
        fits = 1e6 <= macs < 4e6 and n >= 64
    else:
        fits = (m <= 16 and (n <= 16 or m > 4 and macs >= 2e5) or
                macs >= 1e6 and (macs < 4e6 or n <= 32))
    if not fits:
        return False
    if _blas is None:
        _blas = _find_blas()
    if not _blas[0]:
        return False
    if macs <= _BLAS_SERIAL:
        return True
    if _thread_count != NULL:
        return _thread_count() == 1
    return _blas[1] is not None and _blas[1]() == 1


def own_gemm_rule(Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, bint a_t=False, bint b_t=False):
    """Whether matmul would run an m x k times k x n float product (A a transposed view: a_t,
    B one: b_t) with graphad's own GEMM now (see _use_own_gemm)."""
    return _use_own_gemm(m, k, n, a_t, b_t)


def own_gemm_available():
    """Whether this CPU can run graphad's own GEMM, float64 and float32 (it has AVX-512F)."""
    return ga_gemm_available() == 1


def own_gemm_enabled():
    """Whether float products may use graphad's AVX-512 kernel instead of BLAS."""
    return _own_mode != 0


def set_own_gemm(enabled, bint always=False):
    """Allow (on CPUs with AVX-512, for the shapes where it wins: _use_own_gemm) or forbid
    graphad's own GEMM; always=True (tests) sends every product it can take to it.  Returns the
    previous setting (False, True, or "always").  BLAS is used for everything else."""
    global _own_mode
    prev = (False, True, "always")[_own_mode]
    if enabled == "always":
        always = True
    _own_mode = (2 if always else 1) if enabled and ga_gemm_available() == 1 else 0
    return prev


cdef void _gemm2d(int typ, char ta, int lda, char *pa, char tb, int ldb, char *pb,
                  int m, int n, int k, char *pc, bint own=False) noexcept nogil:
    cdef double one = 1.0, zero = 0.0
    cdef float onef = 1.0, zerof = 0.0
    cdef int ldc = n if n > 0 else 1
    # A matrix times a vector goes to GEMV (GEMM with one column is several times slower).
    # To BLAS, A's buffer is the column-major A^T (flag 'N') or A (flag 'T'); likewise B.
    if n == 1:
        # c = A b with b the (k, 1) column: its stride is ldb when B is row-major, else 1
        if ta == b'N':
            _gemv(typ, b'T', k, m, pa, lda, pb, ldb if tb == b'N' else 1, pc)
        else:
            _gemv(typ, b'N', m, k, pa, lda, pb, ldb if tb == b'N' else 1, pc)
        return
    if m == 1:
        # c^T = B^T a^T with a the (1, k) row: its stride is 1 when A is row-major, else lda
        if tb == b'N':
            _gemv(typ, b'N', n, k, pb, ldb, pa, 1 if ta == b'N' else lda, pc)
        else:
            _gemv(typ, b'T', k, n, pb, ldb, pa, 1 if ta == b'N' else lda, pc)
        return
    if own and tb == b'N' and n >= 8:
        # B row-major: graphad's AVX-512 kernel (csrc/ga_gemm.c); A may be either layout
        if ta == b'N':
            _own_gemm_rm(typ, m, n, k, pa, lda, 1, pb, ldb, pc, ldc)
        else:
            _own_gemm_rm(typ, m, n, k, pa, 1, lda, pb, ldb, pc, ldc)
        return
    if typ == cnp.NPY_DOUBLE:
        dgemm(&tb, &ta, &n, &m, &k, &one, <double*>pb, &ldb, <double*>pa, &lda,
              &zero, <double*>pc, &ldc)
    else:
        sgemm(&tb, &ta, &n, &m, &k, &onef, <float*>pb, &ldb, <float*>pa, &lda,
              &zerof, <float*>pc, &ldc)


# A few long rows times a wide matrix (a small block of cotangents times a weight matrix): some
# OpenBLAS kernel families (Haswell, Zen) run up to twice as fast with the short side as BLAS's
# M, others (SkylakeX) slower.  The first such product times both layouts once and keeps the
# faster: -1 not yet measured, 0 as is, 1 computed as C^T = B^T A^T and transposed.
cdef int _thin_flip = -1


cdef int _measure_thin_flip(object a, object b):
    import time
    cdef double t_as_is = 1e300, t_flip = 1e300
    for _ in range(3):
        t0 = time.perf_counter()
        _gemm(a, b, False)
        t1 = time.perf_counter()
        np.ascontiguousarray(_gemm(b.T, a.T, False).T)
        t2 = time.perf_counter()
        t_as_is = min(t_as_is, t1 - t0)
        t_flip = min(t_flip, t2 - t1)
    return 1 if t_flip < 0.8 * t_as_is else 0


cdef object _gemm(object A, object B, bint may_flip=True):
    """C = A @ B for 2-D float arrays of one dtype; transposed views go to BLAS uncopied (the
    own kernel reads them in place or packs the smaller operand)."""
    cdef PyThreadState *ts
    global _thin_flip
    cdef cnp.ndarray a = <cnp.ndarray>A, b = <cnp.ndarray>B, c, at
    cdef char ta = b"N", tb = b"N"
    cdef int lda = 1, ldb = 1, m, n, k
    cdef bint own
    cdef int typ = cnp.PyArray_TYPE(a)
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a)
    if not _blas_layout(a, item, &ta, &lda):
        a = np.ascontiguousarray(a)
        _blas_layout(a, item, &ta, &lda)
    if not _blas_layout(b, item, &tb, &ldb):
        b = np.ascontiguousarray(b)
        _blas_layout(b, item, &tb, &ldb)
    m = a.shape[0]
    k = a.shape[1]
    n = b.shape[1]
    cdef cnp.npy_intp dims[2]
    dims[0] = m
    dims[1] = n
    if k == 0 or m == 0 or n == 0:
        return cnp.PyArray_ZEROS(2, dims, typ, 0)
    own = _use_own_gemm(m, k, n, ta == b'T', tb == b'T')
    if own and tb == b'T' and ta == b'N' and m > 1 and n > 1:
        # B column-major (a transposed weight, W^T), which graphad's kernel does not read.
        # A few rows (a value and its tangents times a weight): dot products, B read once.
        # Otherwise pack the smaller operand with a tiled transpose: either B itself (k n
        # copies), or A^T for C^T = B^T A^T, whose result is transposed back.
        if m <= 4:
            c = new_array(2, dims, typ)
            ts = _unlock(<double>m * n * k >= _NOGIL_MIN_FLOPS)
            _own_gemm_nt(typ, m, n, k, <char*>cnp.PyArray_DATA(a), lda,
                         <char*>cnp.PyArray_DATA(b), ldb, <char*>cnp.PyArray_DATA(c), n)
            _relock(ts)
            return c
        if n > m:
            at = _from_column_major(a.T)
            dims[0] = n
            dims[1] = m
            c = new_array(2, dims, typ)
            ts = _unlock(<double>m * n * k >= _NOGIL_MIN_FLOPS)
            _own_gemm_rm(typ, n, m, k, <char*>cnp.PyArray_DATA(b), ldb, 1,
                         <char*>cnp.PyArray_DATA(at), m, <char*>cnp.PyArray_DATA(c), m)
            _relock(ts)
            return _from_column_major(c.T)
        b = _from_column_major(b)
        _blas_layout(b, item, &tb, &ldb)
    if may_flip and not own and 1 < m <= 64 and 4 * m <= n and k * n >= 8192:
        if _thin_flip < 0:
            _thin_flip = _measure_thin_flip(a, b)
        if _thin_flip == 1:
            return np.ascontiguousarray(_gemm(b.T, a.T, False).T)
    c = new_array(2, dims, typ)
    ts = _unlock(<double>m * n * k >= _NOGIL_MIN_FLOPS)
    _gemm2d(typ, ta, lda, <char*>cnp.PyArray_DATA(a), tb, ldb, <char*>cnp.PyArray_DATA(b),
            m, n, k, <char*>cnp.PyArray_DATA(c), own)
    _relock(ts)
    return c


cdef object _gemm_batched(object A, object B):
    """Batched C = A @ B over broadcast batch axes: one GEMM per matrix, at byte offsets
    computed in bulk, with no copies unless a matrix has no unit-stride axis."""
    cdef cnp.ndarray a, b, c
    cdef char ta = b"N", tb = b"N"
    cdef int lda = 1, ldb = 1, m, n, k, typ
    cdef Py_ssize_t i, nb, item
    cdef bint own
    cdef cnp.int64_t[::1] oa, ob
    cdef char *pa
    cdef char *pb
    cdef char *pc
    batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    if 0 in batch:                  # an empty batch: no matrix to read (A[first] is not there)
        return np.zeros(batch + (A.shape[-2], B.shape[-1]), dtype=A.dtype)
    A = np.broadcast_to(A, batch + A.shape[-2:])
    B = np.broadcast_to(B, batch + B.shape[-2:])
    first = (0,) * len(batch)
    a = <cnp.ndarray>A
    b = <cnp.ndarray>B
    item = cnp.PyArray_ITEMSIZE(a)
    typ = cnp.PyArray_TYPE(a)
    if not _blas_layout(A[first], item, &ta, &lda):
        A = np.ascontiguousarray(A)
        a = <cnp.ndarray>A
        _blas_layout(A[first], item, &ta, &lda)
    if not _blas_layout(B[first], item, &tb, &ldb):
        B = np.ascontiguousarray(B)
        b = <cnp.ndarray>B
        _blas_layout(B[first], item, &tb, &ldb)
    m, k, n = A.shape[-2], A.shape[-1], B.shape[-1]
    idx = np.indices(batch).reshape(len(batch), -1).T
    oa = np.ascontiguousarray(idx @ np.array(A.strides[:len(batch)], dtype=np.int64))
    ob = np.ascontiguousarray(idx @ np.array(B.strides[:len(batch)], dtype=np.int64))
    nb = oa.shape[0]
    if m == 0 or n == 0 or k == 0:
        return np.zeros(batch + (m, n), dtype=A.dtype)
    C = np.empty(batch + (m, n), dtype=A.dtype)
    c = <cnp.ndarray>C
    own = _use_own_gemm(m, k, n, ta == b'T', tb == b'T')
    pa = <char*>cnp.PyArray_DATA(a)
    pb = <char*>cnp.PyArray_DATA(b)
    pc = <char*>cnp.PyArray_DATA(c)
    with nogil:
        for i in range(nb):
            _gemm2d(typ, ta, lda, pa + oa[i], tb, ldb, pb + ob[i], m, n, k,
                    pc + i * m * n * item, own)
    return C


# ---------------------------------------------------------------------------------------------
# identity blocks.  The seed of jacfwd / jacrev is the identity, carried as a block of tangents
# or cotangents (rows start..start+k of it); the first matmul it meets would multiply by it.
# Blocks made by unit_block are registered here (weakly, by id), and matmul copies the matching
# rows of the other operand instead: one GEMM saved per Jacobian, invisible to the rules.
# Blocks are read-only and the last few are kept, so repeated Jacobians of one shape reuse them.

cdef dict _UNIT = {}
cdef dict _UNIT_CACHE = {}


def _forget_unit(key):
    _UNIT.pop(key, None)


def unit_block(shape, Py_ssize_t start, Py_ssize_t k, dtype):
    """Rows start..start+k of the identity on a space of the given shape: a read-only array of
    shape (k,) + shape whose j-th entry is the (start + j)-th basis element."""
    shape = tuple(shape)
    dtype = np.dtype(dtype)
    ckey = (shape, start, k, dtype)
    block = _UNIT_CACHE.get(ckey)
    if block is not None:
        return block
    size = math.prod(shape)
    flat = np.zeros((k, size), dtype)
    flat[np.arange(k), start + np.arange(k)] = 1
    block = flat.reshape((k,) + shape)
    block.flags.writeable = False
    key = id(block)
    _UNIT[key] = (weakref.ref(block, lambda r, key=key: _forget_unit(key)), start)
    if len(_UNIT_CACHE) >= 8 or block.nbytes > (16 << 20):
        _UNIT_CACHE.clear()
    if block.nbytes <= (16 << 20):
        _UNIT_CACHE[ckey] = block
    return block


cdef object _unit_start(object x):
    """start when x is a registered identity block, else None."""
    e = _UNIT.get(id(x))
    if e is not None and e[0]() is x:
        return e[1]
    return None


cdef Py_ssize_t _FUSE_MIN = 1 << 15     # entries of A (256 KiB in float64)


cpdef bint stacking_pays(object A, Py_ssize_t rows, bint transposed) except -1:
    """Whether `rows` vectors stacked as the rows of one matrix, times A (A^T where transposed),
    run faster as ONE product than one product each: A must be large (a small one stays in
    cache, and a second pass over it is cheap), and a few rows in all must run at GEMV speed
    (the own kernel, or a BLAS kernel with a small-matrix path: _FEW_ROWS_FAST)."""
    global _blas
    if not cnp.PyArray_Check(A) or cnp.PyArray_SIZE(<cnp.ndarray>A) < _FUSE_MIN or \
            cnp.PyArray_NDIM(<cnp.ndarray>A) != 2:
        return False
    cdef Py_ssize_t n = A.shape[1] if transposed else A.shape[0]
    if rows <= 16 and not _use_own_gemm(rows, n, A.shape[0] if transposed else A.shape[1],
                                        False, transposed):
        if _blas is None:
            _blas = _find_blas()
        if not _blas[2]:
            return False
    return True


cpdef tuple matvecs(object A, bint transposed, object u, object v):
    """(u @ B, v @ B) for the vectors u and v, B = A^T where transposed, else A: ONE product
    of the rows [u; v] that reads B once (two GEMVs read it twice); the results are the rows
    of one (2, m) array."""
    r = matmul(_two_rows(u, v), cnp.PyArray_Transpose(<cnp.ndarray>A, NULL) if transposed else A)
    return r[0], r[1]


cdef cnp.ndarray _two_rows(object u, object v):
    """The (2, n) array [u; v] of two vectors of one float dtype: copied row by row with memcpy
    where both are contiguous (NumPy's slice assignment costs ~1 us a row), else by NumPy."""
    cdef cnp.npy_intp dims[2]
    cdef cnp.ndarray a = <cnp.ndarray>u, b = <cnp.ndarray>v, out
    cdef size_t nbytes
    dims[0], dims[1] = 2, cnp.PyArray_DIMS(a)[0]
    out = new_array(2, dims, cnp.PyArray_TYPE(a))
    if cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_IS_C_CONTIGUOUS(b) and \
            cnp.PyArray_TYPE(a) == cnp.PyArray_TYPE(b):
        nbytes = dims[1] * cnp.PyArray_ITEMSIZE(a)
        memcpy(cnp.PyArray_DATA(out), cnp.PyArray_DATA(a), nbytes)
        memcpy(<char*>cnp.PyArray_DATA(out) + nbytes, cnp.PyArray_DATA(b), nbytes)
    else:
        out[0] = u
        out[1] = v
    return out


cpdef object matmul_fused(object params, tuple raw, object tangents):
    """Value and tangent of a @ b in eager forward mode, as ONE product that reads the matrix
    once, where only x carries tangents T: x @ A (x a vector or matrix) or A @ x (x a vector)
    is the rows [x; T] times A (or A^T), the value the first row(s).  None (the plain product
    and the JVP rule run) otherwise: also for an identity block T (its product copies rows of
    A), when stacking T would cost more than a second pass over A, and for a small A
    (cache-resident, a second pass is cheap)."""
    a, b = raw
    ta, tb = tangents
    if ta is not None and tb is None:
        x, tx, A, transposed = a, ta, b, False
    elif tb is not None and ta is None and cnp.PyArray_Check(b) and \
            cnp.PyArray_NDIM(<cnp.ndarray>b) == 1:
        x, tx, A, transposed = b, tb, a, True
    else:
        return None
    # the cheap refusals first (a small A is the common one), from the array headers
    if not (type(x) is np.ndarray and type(tx) is np.ndarray and type(A) is np.ndarray) or \
            cnp.PyArray_SIZE(<cnp.ndarray>A) < _FUSE_MIN or \
            A.ndim != 2 or not 1 <= x.ndim <= 2 or not x.dtype == tx.dtype == A.dtype or \
            A.dtype.kind != "f" or _unit_start(tx) is not None:
        return None
    cdef Py_ssize_t n = A.shape[1] if transposed else A.shape[0]
    if x.shape[x.ndim - 1] != n or tx.size + x.size > A.size // 2 or A.size < _FUSE_MIN:
        return None
    cdef Py_ssize_t rows = x.size // n if n else 0
    if rows == 0:
        return None
    if not stacking_pays(<cnp.ndarray>A, rows + tx.size // n, transposed):
        return None
    if rows == 1 and x.ndim == 1 and tx.ndim == 1:      # a value and one tangent (hvp)
        r = matmul(_two_rows(x, tx), cnp.PyArray_Transpose(<cnp.ndarray>A, NULL)
                   if transposed else A)
        return r[0], r[1]
    stacked = np.empty((rows + tx.size // n, n), x.dtype)
    stacked[:rows] = x.reshape(rows, n)
    stacked[rows:] = tx.reshape(-1, n)
    r = matmul(stacked, A.T if transposed else A)
    lead = tx.shape[:tx.ndim - x.ndim]
    m = r.shape[1]
    return r[:rows].reshape(x.shape[:x.ndim - 1] + (m,)), \
        r[rows:].reshape(lead + x.shape[:x.ndim - 1] + (m,))


cdef object _matvec(cnp.ndarray a, cnp.ndarray b):
    """A matrix times a vector or a vector times a matrix (a gradient's and a tangent's usual
    products) as one GEMV, straight from the array headers: the same BLAS call as the general
    path below, without its reshapes.  None where that path must decide (another dtype, a
    stride BLAS cannot take, an empty or misaligned operand)."""
    cdef cnp.ndarray M, x, y
    cdef bint mat_first = cnp.PyArray_NDIM(a) == 2
    cdef int typ = cnp.PyArray_TYPE(a), ld = 1, incx
    cdef char t = b"N"
    cdef Py_ssize_t rows, cols, xs, item
    cdef cnp.npy_intp dims[1]
    cdef PyThreadState *ts
    if (typ != cnp.NPY_DOUBLE and typ != cnp.NPY_FLOAT) or cnp.PyArray_TYPE(b) != typ or \
            not (cnp.PyArray_ISNOTSWAPPED(a) and cnp.PyArray_ISNOTSWAPPED(b)):
        return None
    M, x = (a, b) if mat_first else (b, a)
    rows, cols = M.shape[0], M.shape[1]
    if rows == 0 or cols == 0 or x.shape[0] != (cols if mat_first else rows):
        return None
    item = cnp.PyArray_ITEMSIZE(M)
    xs = x.strides[0]
    if xs <= 0 or xs % item != 0 or not _blas_layout(M, item, &t, &ld):
        return None
    incx = <int>(xs // item)
    dims[0] = rows if mat_first else cols
    y = new_array(1, dims, typ)
    ts = _unlock(<double>rows * cols >= _NOGIL_MIN_FLOPS)
    # M's buffer is, to BLAS, the column-major M^T (t 'N') or M (t 'T')
    if mat_first:
        if t == b'N':
            _gemv(typ, b'T', <int>cols, <int>rows, <char*>cnp.PyArray_DATA(M), ld,
                  <char*>cnp.PyArray_DATA(x), incx, <char*>cnp.PyArray_DATA(y))
        else:
            _gemv(typ, b'N', <int>rows, <int>cols, <char*>cnp.PyArray_DATA(M), ld,
                  <char*>cnp.PyArray_DATA(x), incx, <char*>cnp.PyArray_DATA(y))
    elif t == b'N':
        _gemv(typ, b'N', <int>cols, <int>rows, <char*>cnp.PyArray_DATA(M), ld,
              <char*>cnp.PyArray_DATA(x), incx, <char*>cnp.PyArray_DATA(y))
    else:
        _gemv(typ, b'T', <int>rows, <int>cols, <char*>cnp.PyArray_DATA(M), ld,
              <char*>cnp.PyArray_DATA(x), incx, <char*>cnp.PyArray_DATA(y))
    _relock(ts)
    return y


cpdef object matmul(object a, object b):
    """NumPy's matmul semantics (1-D promotion, broadcast batch axes), computed with BLAS for
    float64/float32 operands of one dtype; anything else goes to np.matmul.  An identity block
    (unit_block) on the left selects rows of b instead."""
    if _UNIT and cnp.PyArray_Check(a) and cnp.PyArray_NDIM(<cnp.ndarray>a) == 2 and \
            cnp.PyArray_Check(b) and 1 <= cnp.PyArray_NDIM(<cnp.ndarray>b) <= 2:
        start = _unit_start(a)
        if start is not None and a.shape[1] == b.shape[0]:
            rows = b[start:start + a.shape[0]]
            if cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.PyArray_TYPE(<cnp.ndarray>b):
                return contiguous(rows)
            return rows.astype(np.result_type(a.dtype, b.dtype))
    if cnp.PyArray_Check(a) and cnp.PyArray_Check(b) and \
            cnp.PyArray_NDIM(<cnp.ndarray>a) + cnp.PyArray_NDIM(<cnp.ndarray>b) == 3:
        r = _matvec(<cnp.ndarray>a, <cnp.ndarray>b)
        if r is not None:
            return r
    if not (_is_float_array(a) and _is_float_array(b)) or \
            cnp.PyArray_TYPE(<cnp.ndarray>a) != cnp.PyArray_TYPE(<cnp.ndarray>b) or \
            a.ndim == 0 or b.ndim == 0:
        return np.matmul(a, b)
    a_vec, b_vec = a.ndim == 1, b.ndim == 1
    A = a.reshape(1, -1) if a_vec else a
    B = b.reshape(-1, 1) if b_vec else b
    if A.shape[-1] != B.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned")
    if A.ndim == 2 and B.ndim == 2:
        C = _gemm(A, B)
    elif B.ndim == 2 and A.flags.c_contiguous:
        # a contiguous stack of matrices times one matrix: a single GEMM on (M*m, k)
        # (rows counted explicitly: reshape(-1, 0) is ambiguous when k is 0)
        C = _gemm(A.reshape(math.prod(A.shape[:-1]), A.shape[-1]), B).reshape(
            A.shape[:-1] + (B.shape[1],))
    elif A.ndim == 2 and B.shape[-1] == 1 and B.flags.c_contiguous:
        # one matrix times a stack of column vectors (a block of tangents): a single GEMM,
        # the stack as rows times A^T (a transposed view, not a copy)
        C = _gemm(B.reshape(math.prod(B.shape[:-2]), B.shape[-2]), A.T).reshape(
            B.shape[:-2] + (A.shape[0], 1))
    else:
        C = _gemm_batched(A, B)
    if a_vec and b_vec:
        return C.reshape(C.shape[:-2])
    if a_vec:
        return C.reshape(C.shape[:-2] + C.shape[-1:])
    if b_vec:
        return C.reshape(C.shape[:-1])
    return C


# ---------------------------------------------------------------------------------------------
# cross-entropy from logits (ga_xent_*): the fused loss primitive's forward and VJP

cdef cnp.ndarray _labels64(object labels, Py_ssize_t rows):
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: labels must be integers, got dtype {y.dtype}")
    if y.shape != (rows,):
        raise ValueError(f"cross_entropy: logits of shape ({rows}, classes) need labels of "
                         f"shape ({rows},), got {y.shape}")
    return np.ascontiguousarray(y, dtype=np.int64)


cdef inline void _exp_in_place(int k, char *data, cnp.npy_intp n,
                               cnp.npy_intp item) noexcept nogil:
    """data[:n] = exp(data[:n]) by NumPy's SIMD loop (k: 0 float64, 1 float32)."""
    cdef char *args[2]
    cdef cnp.npy_intp steps[2]
    args[0] = args[1] = data
    steps[0] = steps[1] = item
    _loops[k][<int>GA_EXP](args, &n, steps, _loop_data[k][<int>GA_EXP])


cpdef tuple xent_fwd(object x, object labels):
    """(loss, lse) per row of a (rows, cols) float array of logits and integer labels."""
    cdef cnp.ndarray a = np.ascontiguousarray(x)
    if not _is_float_array(a) or a.ndim != 2:
        raise TypeError(f"cross_entropy: logits must be a 2-D float array, got "
                        f"{a.dtype} of shape {np.shape(a)}")
    cdef Py_ssize_t rows = a.shape[0], cols = a.shape[1], bad
    cdef cnp.ndarray y = _labels64(labels, rows)
    cdef cnp.npy_intp n = rows
    cdef cnp.ndarray loss = cnp.PyArray_EMPTY(1, &n, cnp.PyArray_TYPE(a), 0)
    cdef cnp.ndarray lse = cnp.PyArray_EMPTY(1, &n, cnp.PyArray_TYPE(a), 0)
    if cols == 0:
        raise ValueError("cross_entropy: logits have no classes (shape "
                         f"{np.shape(a)})")
    cdef int k = 0 if cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE else 1
    cdef cnp.ndarray e
    cdef cnp.npy_intp size = rows * cols, item = cnp.PyArray_ITEMSIZE(a)
    if _loops[k][<int>GA_EXP] != NULL:
        # the exponentials by NumPy's SIMD loop, in place on the shifted logits, between two C
        # passes (libm's exp, one value at a time, was a tenth of a small training step)
        e = new_array(2, cnp.PyArray_DIMS(a), cnp.PyArray_TYPE(a))
        with nogil:
            if k == 0:
                ga_xent_shift_d(rows, cols, <double*>cnp.PyArray_DATA(a),
                                <double*>cnp.PyArray_DATA(e), <double*>cnp.PyArray_DATA(lse))
            else:
                ga_xent_shift_f(rows, cols, <float*>cnp.PyArray_DATA(a),
                                <float*>cnp.PyArray_DATA(e), <float*>cnp.PyArray_DATA(lse))
            _exp_in_place(k, <char*>cnp.PyArray_DATA(e), size, item)
            if k == 0:
                bad = ga_xent_from_exp_d(rows, cols, <double*>cnp.PyArray_DATA(a),
                                         <long long*>cnp.PyArray_DATA(y),
                                         <double*>cnp.PyArray_DATA(e),
                                         <double*>cnp.PyArray_DATA(loss),
                                         <double*>cnp.PyArray_DATA(lse))
            else:
                bad = ga_xent_from_exp_f(rows, cols, <float*>cnp.PyArray_DATA(a),
                                         <long long*>cnp.PyArray_DATA(y),
                                         <float*>cnp.PyArray_DATA(e),
                                         <float*>cnp.PyArray_DATA(loss),
                                         <float*>cnp.PyArray_DATA(lse))
    elif k == 0:
        with nogil:
            bad = ga_xent_fwd_d(rows, cols, <double*>cnp.PyArray_DATA(a),
                                <long long*>cnp.PyArray_DATA(y), <double*>cnp.PyArray_DATA(loss),
                                <double*>cnp.PyArray_DATA(lse))
    else:
        with nogil:
            bad = ga_xent_fwd_f(rows, cols, <float*>cnp.PyArray_DATA(a),
                                <long long*>cnp.PyArray_DATA(y), <float*>cnp.PyArray_DATA(loss),
                                <float*>cnp.PyArray_DATA(lse))
    if bad >= 0:
        raise ValueError(f"cross_entropy: label {y[bad]} of row {bad} is outside [0, {cols})")
    return loss, lse


cpdef object xent_vjp(object x, object labels, object lse, object g, double scale):
    """(softmax(x) - onehot(labels)) * scale * g, with g one value per row or one for all."""
    cdef cnp.ndarray a = np.ascontiguousarray(x)
    cdef int typ = cnp.PyArray_TYPE(a)
    cdef Py_ssize_t rows = a.shape[0], cols = a.shape[1]
    cdef cnp.ndarray y = _labels64(labels, rows)
    cdef cnp.ndarray l = np.ascontiguousarray(lse, dtype=a.dtype)
    cdef cnp.ndarray gg = np.ascontiguousarray(g, dtype=a.dtype)
    cdef Py_ssize_t sg = 0 if cnp.PyArray_SIZE(gg) == 1 else 1
    if sg and cnp.PyArray_SIZE(gg) != rows:
        raise ValueError(f"cross_entropy: cotangent of shape {np.shape(g)} for {rows} rows")
    cdef cnp.ndarray out = new_array(2, cnp.PyArray_DIMS(a), typ)
    cdef int k = 0 if typ == cnp.NPY_DOUBLE else 1
    cdef cnp.npy_intp size = rows * cols, item = cnp.PyArray_ITEMSIZE(a)
    if _loops[k][<int>GA_EXP] != NULL:         # the exponentials by NumPy's SIMD loop, as above
        with nogil:
            if k == 0:
                ga_xent_vjp_shift_d(rows, cols, <double*>cnp.PyArray_DATA(a),
                                    <double*>cnp.PyArray_DATA(l), <double*>cnp.PyArray_DATA(out))
            else:
                ga_xent_vjp_shift_f(rows, cols, <float*>cnp.PyArray_DATA(a),
                                    <float*>cnp.PyArray_DATA(l), <float*>cnp.PyArray_DATA(out))
            _exp_in_place(k, <char*>cnp.PyArray_DATA(out), size, item)
            if k == 0:
                ga_xent_vjp_from_exp_d(rows, cols, <long long*>cnp.PyArray_DATA(y),
                                       <double*>cnp.PyArray_DATA(gg), sg, scale,
                                       <double*>cnp.PyArray_DATA(out))
            else:
                ga_xent_vjp_from_exp_f(rows, cols, <long long*>cnp.PyArray_DATA(y),
                                       <float*>cnp.PyArray_DATA(gg), sg, scale,
                                       <float*>cnp.PyArray_DATA(out))
    elif typ == cnp.NPY_DOUBLE:
        with nogil:
            ga_xent_vjp_d(rows, cols, <double*>cnp.PyArray_DATA(a),
                          <long long*>cnp.PyArray_DATA(y), <double*>cnp.PyArray_DATA(l),
                          <double*>cnp.PyArray_DATA(gg), sg, scale,
                          <double*>cnp.PyArray_DATA(out))
    else:
        with nogil:
            ga_xent_vjp_f(rows, cols, <float*>cnp.PyArray_DATA(a),
                          <long long*>cnp.PyArray_DATA(y), <float*>cnp.PyArray_DATA(l),
                          <float*>cnp.PyArray_DATA(gg), sg, scale,
                          <float*>cnp.PyArray_DATA(out))
    return out


# ---------------------------------------------------------------------------------------------
# optimizer updates (ga_sgd_*, ga_adam_*): in place on a parameter and its state buffers

cdef void _check_update(str name, cnp.ndarray p, list others) except *:
    if not (_is_float_array(p) and cnp.PyArray_IS_C_CONTIGUOUS(p) and cnp.PyArray_ISWRITEABLE(p)):
        raise ValueError(f"{name}: the parameter must be a writable contiguous float64/float32 "
                         f"array, got {p.dtype} of shape {np.shape(p)}")
    for o in others:
        if o is None:
            continue
        if not (_is_float_array(o) and cnp.PyArray_TYPE(<cnp.ndarray>o) == cnp.PyArray_TYPE(p)
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>o)
                and cnp.PyArray_SIZE(<cnp.ndarray>o) == cnp.PyArray_SIZE(p)):
            raise ValueError(f"{name}: a gradient or state buffer of shape {np.shape(o)} and "
                             f"dtype {getattr(o, 'dtype', type(o))} does not match the "
                             f"parameter ({np.shape(p)}, {p.dtype})")


def update_operands(object g, object p):
    """(g as a C-contiguous array of p's dtype, whether p can be updated in place: a writable
    C-contiguous array): an optimizer's per-parameter checks, from the array headers."""
    cdef bint ok = cnp.PyArray_Check(p) and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>p) and \
        cnp.PyArray_ISWRITEABLE(<cnp.ndarray>p)
    if not (cnp.PyArray_Check(g) and cnp.PyArray_Check(p) and
            cnp.PyArray_TYPE(<cnp.ndarray>g) == cnp.PyArray_TYPE(<cnp.ndarray>p) and
            cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>g)):
        g = np.ascontiguousarray(g, dtype=np.asarray(p).dtype)
    return g, ok


cpdef sgd_update(object p, object g, object buf, double lr, double momentum, double dampening,
                 double weight_decay, bint nesterov, bint first):
    """One SGD step on p in place (buf: the momentum buffer, or None without momentum)."""
    cdef cnp.ndarray pa = <cnp.ndarray?>p
    _check_update("SGD", pa, [g, buf])
    cdef cnp.ndarray ga = <cnp.ndarray>g
    cdef void *pb = NULL if buf is None else cnp.PyArray_DATA(<cnp.ndarray>buf)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(pa)
    if cnp.PyArray_TYPE(pa) == cnp.NPY_DOUBLE:
        with nogil:
            ga_sgd_d(n, <double*>cnp.PyArray_DATA(pa), <double*>cnp.PyArray_DATA(ga),
                     <double*>pb, lr, momentum, dampening, weight_decay, nesterov, first)
    else:
        with nogil:
            ga_sgd_f(n, <float*>cnp.PyArray_DATA(pa), <float*>cnp.PyArray_DATA(ga),
                     <float*>pb, lr, momentum, dampening, weight_decay, nesterov, first)


cpdef adam_update(object p, object g, object m, object v, double lr, double beta1, double beta2,
                  double eps, double weight_decay, bint decoupled, double bc1, double bc2):
    """One Adam (decoupled=False) or AdamW step on p and its moments m, v, in place."""
    cdef cnp.ndarray pa = <cnp.ndarray?>p
    _check_update("Adam", pa, [g, m, v])
    if m is None or v is None:
        raise ValueError("Adam: the moment buffers are required")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(pa)
    cdef void *pg = cnp.PyArray_DATA(<cnp.ndarray>g)
    cdef void *pm = cnp.PyArray_DATA(<cnp.ndarray>m)
    cdef void *pv = cnp.PyArray_DATA(<cnp.ndarray>v)
    if cnp.PyArray_TYPE(pa) == cnp.NPY_DOUBLE:
        with nogil:
            ga_adam_d(n, <double*>cnp.PyArray_DATA(pa), <double*>pg, <double*>pm, <double*>pv,
                      lr, beta1, beta2, eps, weight_decay, decoupled, bc1, bc2)
    else:
        with nogil:
            ga_adam_f(n, <float*>cnp.PyArray_DATA(pa), <float*>pg, <float*>pm, <float*>pv,
                      lr, beta1, beta2, eps, weight_decay, decoupled, bc1, bc2)


# ----------------------------------------------------------------------------------------------
# moments: the mean and variance of small arrays in one call (graphad._array_api's var).  NumPy
# spends ~12k instructions setting up each reduction; an 8x8 var takes two reductions and four
# ufunc calls.  Two passes over the data (the mean, then the squared deviations from it), both
# accumulated in double precision.

ctypedef fused _real:
    float
    double


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _moments(const _real *x, Py_ssize_t outer, Py_ssize_t n, Py_ssize_t inner,
                   double scale, double *acc, double *sq, _real *mean,
                   _real *var) noexcept nogil:
    cdef Py_ssize_t o, r, b
    cdef const _real *row
    cdef double d, inv = 1.0 / n
    for o in range(outer):
        for b in range(inner):
            acc[b] = 0.0
            sq[b] = 0.0
        for r in range(n):
            row = x + (o * n + r) * inner
            for b in range(inner):
                acc[b] += row[b]
        for b in range(inner):
            acc[b] *= inv
        for r in range(n):
            row = x + (o * n + r) * inner
            for b in range(inner):
                d = row[b] - acc[b]
                sq[b] += d * d
        for b in range(inner):
            mean[o * inner + b] = <_real>acc[b]
            var[o * inner + b] = <_real>(sq[b] * scale)


def moments(object x, Py_ssize_t outer, Py_ssize_t n, Py_ssize_t inner, double scale):
    """For x (a C-contiguous float64/float32 array) viewed as (outer, n, inner): (scale times
    the sums of squared deviations from the means over the middle axis, the means), both flat
    arrays of outer * inner entries in x's dtype; None for any other x."""
    cdef cnp.ndarray a, mean, var
    cdef cnp.npy_intp m = outer * inner
    cdef double *buf
    if not (_is_float_array(x) and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x)) or n <= 0 \
            or cnp.PyArray_SIZE(<cnp.ndarray>x) != m * n:
        return None
    a = <cnp.ndarray>x
    mean = new_array(1, &m, cnp.PyArray_TYPE(a))
    var = new_array(1, &m, cnp.PyArray_TYPE(a))
    buf = <double*>PyMem_Malloc(2 * max(inner, 1) * sizeof(double))
    if buf == NULL:
        raise MemoryError()
    if cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE:
        _moments(<double*>cnp.PyArray_DATA(a), outer, n, inner, scale, buf, buf + inner,
                 <double*>cnp.PyArray_DATA(mean), <double*>cnp.PyArray_DATA(var))
    else:
        _moments(<float*>cnp.PyArray_DATA(a), outer, n, inner, scale, buf, buf + inner,
                 <float*>cnp.PyArray_DATA(mean), <float*>cnp.PyArray_DATA(var))
    PyMem_Free(buf)
    return var, mean


# ----------------------------------------------------------------------------------------------
# lincomb: sum_i c_i x_i in one pass (graphad._lincomb; a Runge-Kutta stage or update is one)

@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _lincomb(Py_ssize_t m, Py_ssize_t n, const double *c, _real **xs,
                   _real *out) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef _real ci
    cdef const _real *x = xs[0]
    ci = <_real>c[0]
    if ci == 1:
        for j in range(n):
            out[j] = x[j]
    else:
        for j in range(n):
            out[j] = ci * x[j]
    for i in range(1, m):
        x = xs[i]
        ci = <_real>c[i]
        for j in range(n):
            out[j] = out[j] + ci * x[j]


def lincomb(tuple coeffs, tuple xs):
    """sum_i coeffs[i] * xs[i] for C-contiguous float64/float32 arrays of one shape and dtype
    (each product rounded in that dtype, then added in order, as NumPy would); None for any
    other operands."""
    cdef Py_ssize_t i, m = len(xs), n
    cdef cnp.ndarray a, first
    cdef int typ, nd
    cdef double *c
    cdef void **ptrs
    cdef PyThreadState *ts
    if m == 0 or len(coeffs) != m or not _is_float_array(xs[0]):
        return None
    first = <cnp.ndarray>xs[0]
    typ, nd = cnp.PyArray_TYPE(first), cnp.PyArray_NDIM(first)
    for i in range(m):
        x = xs[i]
        if not (_is_float_array(x) and cnp.PyArray_TYPE(<cnp.ndarray>x) == typ and
                cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x) and
                cnp.PyArray_SAMESHAPE(<cnp.ndarray>x, first)):
            return None
    out = new_array(nd, cnp.PyArray_DIMS(first), typ)
    n = cnp.PyArray_SIZE(first)
    c = <double*>PyMem_Malloc(m * (sizeof(double) + sizeof(void*)))
    if c == NULL:
        raise MemoryError()
    ptrs = <void**>(c + m)
    for i in range(m):
        c[i] = coeffs[i]
        ptrs[i] = cnp.PyArray_DATA(<cnp.ndarray>xs[i])
    ts = _unlock(n * m >= _NOGIL_MIN)
    if typ == cnp.NPY_DOUBLE:
        _lincomb(m, n, c, <double**>ptrs, <double*>cnp.PyArray_DATA(out))
    else:
        _lincomb(m, n, c, <float**>ptrs, <float*>cnp.PyArray_DATA(out))
    _relock(ts)
    PyMem_Free(c)
    return out
