# Declarations shared by the Cython modules: the primitive descriptor, the Tensor (which is also
# the graph node that produced it), and the entry point that applies a primitive.

cdef class Prim:
    cdef readonly str name
    cdef public object fwd      # fwd(params, *inputs) -> out, or (out, saved) when `saves`
    cdef public object vjp      # vjp(node, g) -> tuple of input cotangents (None means zero)
    cdef public object jvp      # jvp(node, tangents) -> output tangent (None means zero)
    cdef public object fused    # fused(params, raw, tangents) -> (out, tangent), or None
    cdef public bint saves
    cdef public bint multiple   # fwd returns a tuple of outputs; vjp gets and jvp returns tuples
    cdef public bint broadcasts # elementwise with NumPy broadcasting: the engine aligns tangents
    cdef public int kernel      # 1 / 2: fwd is the unary / binary C kernel `code` (a fast path)
    cdef public int code
    cdef public bint pure       # fwd reads only its inputs and parameters (no state, no draw):
                                # a compiled program may skip it when nothing reads its value


cdef class Tensor:
    cdef public object data     # the value: an ndarray
    cdef public object grad     # accumulated gradient of a leaf
    cdef public Prim prim       # the primitive that made this tensor; None for leaves/constants
    cdef public tuple parents   # the primitive's inputs, as given (Tensors and constants)
    cdef public object params   # static parameters of the primitive (axis, shape, ...)
    cdef public object saved    # residuals the forward kept for the rules
    # sweep scratch: accumulated cotangent or tangent, and marks stamped by the sweep that last
    # visited this node
    cdef object _ct
    cdef long _seen
    cdef long _need
    cdef long _src
    # eager forward mode: the tangent computed with the value, valid when _tan_at is the
    # stamp of the forward evaluation in progress
    cdef object _tan
    cdef long _tan_at
    cdef object __weakref__
    # flags last, one byte each: the object fits pymalloc's 128-byte class (144 as bints)
    cdef unsigned char _requires_grad
    cdef unsigned char _ct_owned    # whether the sweep owns the buffer in _ct
    cdef unsigned char _freed


cdef tuple unwrap_args(tuple args)
cdef object forward(Prim p, object params, tuple raw)
cpdef object apply(Prim p, tuple args, object params=*)
cpdef object call(Prim p, tuple args, object params=*)
cpdef object arg(Tensor node, Py_ssize_t i)
cpdef object out(Tensor node)
cpdef bint need(Tensor node, Py_ssize_t i)
cdef Tensor wrap(object data)
cdef tuple as_outputs(object res)
cpdef tuple outs(Tensor node)
cpdef bint recording()
cpdef object native(object a)
cpdef bint flat()
