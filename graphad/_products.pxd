# The product rule helper (graphad/_products.pyx), for the other modules' rules.
cpdef matmul_(a, b)
