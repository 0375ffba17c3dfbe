# cython: language_level=3, binding=True
"""Products: matmul and einsum, their rules, and the public functions built on them (dot, outer,
trace, diagonal, diag, tril, triu, kron, vec, unvec); conventions: graphad/_prims.pyx."""
import functools

import numpy as np
cimport numpy as cnp
from graphad cimport _kernels as K
from graphad._kernels import matmul_fused
from graphad._core cimport Tensor, apply, call, arg, need
from graphad._prims cimport raw, shape_of, ndim_of, lead, axis_index, stacked
from graphad._prims import defprim
from graphad._elementwise cimport tsum, gmul_, mul_
from graphad._elementwise import multiply, where, P_WHERE
from graphad._shape cimport reshape_, transpose_
from graphad._shape import reshape, transpose, getitem, concatenate
from graphad._reductions import sum as _sum

cnp.import_array()

__all__ = ["matmul", "einsum", "dot", "outer", "trace", "diagonal", "diag", "tril", "triu",
           "kron", "vec", "unvec"]


# matmul: d(AB) = dA B + A dB.  1-D operands are promoted to matrices (as NumPy does) so that
# one formula covers every case, batch axes included:  gA = g B^T,  gB = A^T g.
def _swap(x):
    nd = ndim_of(x)
    return transpose_(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))

def _promote(n):
    a, b = arg(n, 0), arg(n, 1)
    a_vec, b_vec = ndim_of(a) == 1, ndim_of(b) == 1
    if a_vec:
        a = reshape_(a, (1,) + shape_of(a))
    if b_vec:
        b = reshape_(b, shape_of(b) + (1,))
    return a, b, a_vec, b_vec

def _lift(t, Py_ssize_t nlead, tuple xshape, Py_ssize_t out_nbatch, bint vec_row, bint vec_col):
    """A tangent of a matmul operand, as a matrix whose batch axes line up with the output's."""
    tshape = shape_of(t)
    core = tuple(xshape)
    if vec_row:
        core = (1,) + core
    if vec_col:
        core = core + (1,)
    pad = out_nbatch - (len(core) - 2)
    return reshape_(t, tuple(tshape[:nlead]) + (1,) * pad + core)

def matmul_vjp(n, g):
    a, b = arg(n, 0), arg(n, 1)
    cdef Py_ssize_t na = ndim_of(a), nb = ndim_of(b)
    if na <= 2 and nb <= 2:
        # vectors and matrices: the cotangent's batch axes ride on NumPy's broadcasting;
        # gA = g B^T (an outer product when B is a vector), gB = A^T g (g A when B is a vector)
        gshape = shape_of(g)
        ga = gb = None
        if na == 1 and nb == 1 and n.parents[0] is n.parents[1]:
            # x @ x (|x|^2): both cotangents are g x, so the one input gets 2 g x as one
            # product (2 (g x) = (2 g) x exactly), not two products and their sum
            if need(n, 0):
                ga = gmul_(reshape_(mul_(g, 2.0), gshape + (1,)), b)
            return (ga, None)
        if need(n, 0):
            if nb == 2:
                ga = matmul_(g, _swap(b))
            else:
                ga = gmul_(reshape_(g, gshape + (1,)), b)
        if need(n, 1):
            if na == 2 and nb == 2:
                gb = matmul_(_swap(a), g)
            elif na == 2:
                gb = matmul_(g, a)
            elif nb == 2:
                gb = gmul_(reshape_(g, gshape[:len(gshape) - 1] + (1,) + gshape[-1:]),
                           reshape_(a, shape_of(a) + (1,)))
            else:
                gb = gmul_(reshape_(g, gshape + (1,)), a)
        return (ga, gb)
    a, b, a_vec, b_vec = _promote(n)
    g1 = g
    if a_vec and b_vec:
        g1 = reshape_(g, shape_of(g) + (1, 1))
    elif a_vec:
        g1 = reshape_(g, shape_of(g)[:-1] + (1,) + shape_of(g)[-1:])
    elif b_vec:
        g1 = reshape_(g, shape_of(g) + (1,))
    ga = gb = None
    if need(n, 0):
        ga = matmul_(g1, _swap(b))
        if a_vec:
            ga = reshape_(ga, shape_of(ga)[:-2] + shape_of(ga)[-1:])
    if need(n, 1):
        gb = matmul_(_swap(a), g1)
        if b_vec:
            gb = reshape_(gb, shape_of(gb)[:-1])
    return (ga, gb)

cdef object _times_vector_tangent(x, tv, bint x_first):
    """The product of a matrix-or-vector operand x with the tangent block tv of a VECTOR operand
    (lead + (k,)): x @ tv as x @ v for each v (x_first), or tv @ x.  One GEMM: for x a matrix,
    x @ v over a block is the block times x^T."""
    if x_first and ndim_of(x) == 2:
        return matmul_(tv, _swap(x))
    return matmul_(tv, x)

def matmul_jvp(n, t):
    a, b = arg(n, 0), arg(n, 1)
    cdef Py_ssize_t na = ndim_of(a), nb = ndim_of(b)
    if na <= 2 and nb <= 2:
        # vectors and matrices: NumPy's matmul broadcasting carries the tangents' batch axes,
        # d(ab) = da b + a db, each term one GEMM on the block
        r = None
        if na == 1 and nb == 1 and t[0] is not None and t[0] is t[1]:
            # x @ x: d(x.x) = 2 x.dx (dx.x and x.dx are the same dot product)
            return mul_(_times_vector_tangent(b, t[0], False), 2.0)
        if t[0] is not None:
            r = _times_vector_tangent(b, t[0], False) if na == 1 else matmul_(t[0], b)
        if t[1] is not None:
            r = tsum(r, _times_vector_tangent(a, t[1], True) if nb == 1 else matmul_(a, t[1]))
        return r
    a, b, a_vec, b_vec = _promote(n)
    out_nbatch = max(ndim_of(a), ndim_of(b)) - 2
    r = None
    if t[0] is not None:
        nl = ndim_of(t[0]) - ndim_of(arg(n, 0))
        r = matmul_(_lift(t[0], nl, shape_of(arg(n, 0)), out_nbatch, a_vec, False), b)
    if t[1] is not None:
        nl = ndim_of(t[1]) - ndim_of(arg(n, 1))
        r = tsum(r, matmul_(a, _lift(t[1], nl, shape_of(arg(n, 1)), out_nbatch,
                                      False, b_vec)))
    shape = shape_of(r)
    if a_vec and b_vec:
        return reshape_(r, shape[:-2])
    if a_vec:
        return reshape_(r, shape[:-2] + shape[-1:])
    if b_vec:
        return reshape_(r, shape[:-1])
    return r

def _matmul_fwd(params, a, b):
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        raise ValueError(f"matmul: operands must be at least 1-D, got shapes "
                         f"{np.shape(a)} and {np.shape(b)}")
    try:
        return K.matmul(a, b)
    except ValueError as e:
        raise ValueError(f"matmul: shapes {np.shape(a)} and {np.shape(b)} are not aligned "
                         f"for matrix multiplication") from None

# fused: in eager forward mode, value and tangent of x @ A in one product (a kernel)
P_MATMUL = defprim("matmul", _matmul_fwd, matmul_vjp, matmul_jvp, fused=matmul_fused, kernel=3)


# einsum: linear in each operand, so  d einsum(..., X_i, ...) = einsum(..., dX_i, ...)  and the
# VJP for X_i is an einsum of g with the other operands, written to X_i's subscripts.  Letters
# repeated within X_i (a diagonal) are renamed and tied with an identity matrix; letters that
# only X_i carries are summed, so its cotangent is broadcast along them by a ones vector.
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

def parse_einsum(spec, shapes):
    spec = spec.replace(" ", "")
    if "->" in spec:
        ins, outs = spec.split("->")
    else:
        ins, outs = spec, None
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: '{spec}' names {len(ins)} operands but {len(shapes)} were given")
    used = set(c for c in spec if c.isalpha())
    free = [c for c in _LETTERS if c not in used]
    ell_nd = max([len(s) - (len(sub) - 3) for sub, s in zip(ins, shapes) if "..." in sub] or [0])
    ell = "".join(free[:ell_nd])
    subs = []
    for sub, s in zip(ins, shapes):
        if "..." in sub:
            k = len(s) - (len(sub) - 3)
            sub = sub.replace("...", ell[ell_nd - k:])
        if len(sub) != len(s):
            raise ValueError(f"einsum: subscripts '{sub}' do not match an operand of shape {s}")
        subs.append(sub)
    if outs is None:
        counts = {}
        for sub in subs:
            for c in sub:
                counts[c] = counts.get(c, 0) + 1
        outs = ell + "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell))
    else:
        outs = outs.replace("...", ell)
    return tuple(subs), outs

def _einsum_fwd(params, *xs):
    subs, outs = params
    spec = ",".join(subs) + "->" + outs
    try:
        return np.asarray(np.einsum(spec, *xs, optimize=len(xs) > 2))
    except ValueError:
        raise ValueError(f"einsum: '{spec}' does not fit operands of shapes " +
                         ", ".join(str(np.shape(x)) for x in xs)) from None

def _einsum_operand_cotangent(n, g, Py_ssize_t i):
    subs, outs = n.params
    nl = lead(g, n)
    used = set("".join(subs) + outs)
    free = [c for c in _LETTERS if c not in used]
    bl = "".join(free[:nl])
    free = free[nl:]
    terms = [bl + outs]
    ops = [g]
    for j, sub in enumerate(subs):
        if j != i:
            terms.append(sub)
            ops.append(arg(n, j))
    target = ""
    xshape = shape_of(arg(n, i))
    dt = n.data.dtype
    for k, c in enumerate(subs[i]):
        if c in target:                      # repeated: a fresh letter tied by an identity
            c2 = free.pop(0)
            terms.append(c + c2)
            ops.append(np.eye(xshape[k], dtype=dt))
            target += c2
        else:
            target += c
    have = set("".join(terms))
    for k, c in enumerate(target):
        if c not in have:                    # summed only inside X_i: broadcast by ones
            terms.append(c)
            ops.append(np.ones(xshape[k], dtype=dt))
    return call(P_EINSUM, tuple(ops), (tuple(terms), bl + target))

def einsum_vjp(n, g):
    return tuple(_einsum_operand_cotangent(n, g, i) if need(n, i) else None
                 for i in range(len(n.parents)))

def einsum_jvp(n, t):
    subs, outs = n.params
    r = None
    for i in range(len(t)):
        if t[i] is None:
            continue
        nl = ndim_of(t[i]) - ndim_of(arg(n, i))
        used = set("".join(subs) + outs)
        bl = "".join([c for c in _LETTERS if c not in used][:nl])
        terms = tuple((bl + s) if j == i else s for j, s in enumerate(subs))
        ops = tuple(t[i] if j == i else arg(n, j) for j in range(len(subs)))
        r = tsum(r, call(P_EINSUM, ops, (terms, bl + outs)))
    return r

P_EINSUM = defprim("einsum", _einsum_fwd, einsum_vjp, einsum_jvp)


# ==============================================================================================
# Public functions

def matmul(a, b):
    a, b = stacked(a), stacked(b)
    return apply(P_MATMUL, (a, b))


def einsum(spec, *operands):
    """Einstein summation (NumPy's notation, '...' included), differentiable in every operand."""
    operands = tuple([stacked(x) for x in operands])
    params = parse_einsum(spec, [shape_of(x) for x in operands])
    return apply(P_EINSUM, tuple(operands), params)


def dot(a, b):
    a, b = stacked(a), stacked(b)
    if ndim_of(a) == 0 or ndim_of(b) == 0:
        return multiply(a, b)
    if ndim_of(b) <= 2:
        return matmul(a, b)
    # N-D: sum over the last axis of a and the second-to-last of b (NumPy's dot)
    na, nb = ndim_of(a), ndim_of(b)
    letters = "abcdefghijklmnopqrstuvwxyz"
    sa = letters[:na - 1] + "Z"
    sb = letters[na - 1:na - 1 + nb - 2] + "Z" + letters[na - 1 + nb - 2]
    return einsum(f"{sa},{sb}->{sa[:-1]}{sb[:-2]}{sb[-1]}", a, b)


def outer(a, b):
    a, b = stacked(a), stacked(b)
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def diagonal(x, offset=0, axis1=0, axis2=1):
    """NumPy's diagonal: the entries x[i, i + offset] over axes axis1 and axis2, which are
    removed; the diagonal becomes the last axis."""
    x = stacked(x)
    nd = ndim_of(x)
    if nd < 2:
        raise ValueError(f"diagonal: needs at least 2 dimensions, got shape {shape_of(x)}")
    a1, a2 = axis_index(axis1, nd, "diagonal"), axis_index(axis2, nd, "diagonal")
    if a1 == a2:
        raise ValueError(f"diagonal: axis1 and axis2 must differ, got {axis1} and {axis2}")
    s, offset = shape_of(x), int(offset)
    perm = [k for k in range(nd) if k != a1 and k != a2] + [a1, a2]
    if perm != list(range(nd)):
        x = transpose(x, perm)
    stop = s[a1] if s[a1] < s[a2] - offset else s[a2] - offset   # (min is graphad's here)
    i = np.arange(0 if offset >= 0 else -offset, stop)
    return getitem(x, (slice(None),) * (nd - 2) + (i, i + offset))


def trace(x, offset=0, axis1=0, axis2=1):
    """NumPy's trace: the sum of diagonal(x, offset, axis1, axis2) (axes 0 and 1 by default,
    as NumPy; a stack of matrices in the last two axes needs axis1=-2, axis2=-1)."""
    x = stacked(x)
    nd = ndim_of(x)
    if nd < 2:
        raise ValueError(f"trace: needs a matrix, got shape {shape_of(x)}")
    a1, a2 = axis_index(axis1, nd, "trace"), axis_index(axis2, nd, "trace")
    s = shape_of(x)
    if int(offset) == 0 and a1 != a2 and s[a1] == s[a2]:
        # the main diagonal of square axes: one einsum with the two axes' letters tied
        letters = list(_LETTERS[:nd])
        letters[a2] = letters[a1]
        kept = "".join(c for k, c in enumerate(letters) if k != a1 and k != a2)
        return einsum("".join(letters) + "->" + kept, x)
    return _sum(diagonal(x, offset, a1, a2), axis=-1)


def diag(x, k=0):
    """NumPy's diag: the k-th diagonal of a matrix, or the matrix with a vector on its k-th
    diagonal."""
    x = stacked(x)
    nd = ndim_of(x)
    k = int(k)
    if nd == 1:
        n = shape_of(x)[0]
        d = einsum("i,ij->ij", x, np.eye(n, dtype=np.result_type(raw(x), 1.0)))
        if k == 0:
            return d
        # pad with |k| zero columns before (k > 0) or after, and |k| zero rows after or before
        m = k if k > 0 else -k
        dt = d.dtype
        zc, zr = np.zeros((n, m), dt), np.zeros((m, n + m), dt)
        d = concatenate([zc, d] if k > 0 else [d, zc], axis=1)
        return concatenate([d, zr] if k > 0 else [zr, d], axis=0)
    if nd == 2:
        s = shape_of(x)
        if k == 0 and s[0] == s[1]:
            return einsum("ii->i", x)
        return diagonal(x, k)
    raise ValueError(f"diag: needs a vector or a matrix, got shape {shape_of(x)}")


@functools.lru_cache(maxsize=256)
def _tri_mask(Py_ssize_t n, Py_ssize_t m, Py_ssize_t k, bint lower):
    """np.tri(n, m, k) (lower) or its complement below k (upper), made once per shape and
    kept read-only (np.tri costs microseconds a call)."""
    mask = np.tri(n, m, k, dtype=bool) if lower else ~np.tri(n, m, k - 1, dtype=bool)
    mask.flags.writeable = False
    return mask


def tril(x, k=0):
    """x with the entries above its k-th diagonal (of the last two axes) set to 0."""
    x = stacked(x)
    s = shape_of(x)
    if len(s) < 2:
        raise ValueError(f"tril: needs at least 2 dimensions, got shape {s}")
    return apply(P_WHERE, (x, np.zeros((), _dtype_of(x))), _tri_mask(s[-2], s[-1], int(k), True))


def triu(x, k=0):
    """x with the entries below its k-th diagonal (of the last two axes) set to 0."""
    x = stacked(x)
    s = shape_of(x)
    if len(s) < 2:
        raise ValueError(f"triu: needs at least 2 dimensions, got shape {s}")
    return apply(P_WHERE, (x, np.zeros((), _dtype_of(x))), _tri_mask(s[-2], s[-1], int(k), False))


cdef object _dtype_of(x):
    return (<Tensor>x).data.dtype if type(x) is Tensor else np.result_type(x)


def kron(a, b):
    """Kronecker product: block (i, j) of kron(A, B) is A[i, j] * B."""
    a, b = stacked(a), stacked(b)
    nd = ndim_of(a) if ndim_of(a) > ndim_of(b) else ndim_of(b)
    sa = (1,) * (nd - ndim_of(a)) + shape_of(a)
    sb = (1,) * (nd - ndim_of(b)) + shape_of(b)
    ea, eb, final = [], [], []
    for i in range(nd):
        ea += [sa[i], 1]
        eb += [1, sb[i]]
        final.append(sa[i] * sb[i])
    return reshape(multiply(reshape(a, ea), reshape(b, eb)), final)


def vec(x):
    """Stack the columns of x into one vector (column-major), as in the course: vec(AXB) =
    (B^T kron A) vec(X)."""
    x = stacked(x)
    return reshape(transpose(x), (-1,))


def unvec(v, shape):
    """Inverse of vec: fill a matrix of the given shape column by column."""
    shape = tuple(shape)
    return transpose(reshape(v, shape[::-1]))



# ==============================================================================================
# Helpers for the rules

cpdef matmul_(a, b): return call(P_MATMUL, (a, b))
