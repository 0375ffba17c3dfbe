# Array-level wrappers around the C kernels in csrc/ and BLAS: each takes ndarrays (or Python
# scalars), allocates its result, and releases the GIL around the loop.  They fall back to NumPy
# for the cases the kernels do not cover (mixed dtypes, integer data, general broadcasting).

cdef extern from "ga_kernels.h":
    enum ga_binary_op:
        GA_ADD, GA_SUB, GA_MUL, GA_DIV, GA_POW, GA_MAXIMUM, GA_MINIMUM, GA_MUL0,
        GA_ARCTAN2, GA_HYPOT, GA_LOGADDEXP, GA_LOGADDEXP2, GA_FMAX, GA_FMIN, GA_TANH_GRAD,
        GA_SIGMOID_GRAD, GA_RELU_GRAD, GA_DIV0
    enum ga_unary_op:
        GA_NEG, GA_EXP, GA_LOG, GA_LOG1P, GA_SIN, GA_COS, GA_TAN, GA_TANH, GA_SINH, GA_COSH,
        GA_SQRT, GA_SQUARE, GA_ABS, GA_SIGN, GA_RELU, GA_SIGMOID, GA_SOFTPLUS, GA_RECIPROCAL,
        GA_STEP, GA_EXPM1, GA_EXP2, GA_LOG2, GA_LOG10, GA_ARCSIN, GA_ARCCOS, GA_ARCTAN,
        GA_ARCSINH, GA_ARCCOSH, GA_ARCTANH

cpdef object binary(int op, object a, object b)
cpdef object unary(int op, object x)
cpdef object broadcast_to(object x, tuple shape)
cpdef object contiguous(object x)
cpdef object matmul(object a, object b)
cpdef object matmul_fused(object params, tuple raw, object tangents)
cpdef bint stacking_pays(object A, Py_ssize_t rows, bint transposed) except -1
cpdef tuple matvecs(object A, bint transposed, object u, object v)
cpdef object accumulate(object acc, object x)
cpdef object sum_rows(object x)
cpdef object sum_all(object x)
cpdef object ones(tuple shape, object dtype)
cpdef tuple xent_fwd(object x, object labels)
cpdef object xent_vjp(object x, object labels, object lse, object g, double scale)
cpdef sgd_update(object p, object g, object buf, double lr, double momentum, double dampening,
                 double weight_decay, bint nesterov, bint first)
cpdef adam_update(object p, object g, object m, object v, double lr, double beta1, double beta2,
                  double eps, double weight_decay, bint decoupled, double bc1, double bc2)
cimport numpy as cnp
cdef cnp.ndarray new_array(int nd, cnp.npy_intp *dims, int typ)
