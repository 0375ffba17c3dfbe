# The reduction rule helper (graphad/_reductions.pyx), for the other topic modules' rules.
cpdef sum_(x, axes, keepdims)
