# The registry's shared utilities, for the topic modules that declare primitives
# (_elementwise, _shape, _reductions, _products, _nn): C-level calls, no Python lookups.
from graphad._core cimport Tensor

cdef object raw(object x)
cdef tuple shape_of(object x)
cdef Py_ssize_t ndim_of(object x)
cdef Py_ssize_t lead(object g, Tensor n)
cdef tuple arg_shape(Tensor n)
cpdef tuple norm_axes(object axis, Py_ssize_t ndim, str name)
cpdef Py_ssize_t axis_index(object axis, Py_ssize_t ndim, str name) except -1
cpdef object stacked(object x)
