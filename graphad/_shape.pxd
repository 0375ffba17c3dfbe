# The shape rule helpers (graphad/_shape.pyx), for the other topic modules' rules.
cpdef reshape_(x, shape)
cpdef transpose_(x, perm)
cpdef broadcast_to_(x, shape)
cpdef getitem_(x, idx)
cpdef scatter_(g, idx, shape, nlead)
