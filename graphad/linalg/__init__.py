"""ga.linalg: matrix functions with exact derivatives in both modes (the course's det/inverse
and eigenproblem derivatives).

Each function is a primitive of the registry (graphad._prims.defprim), declared with its
forward, VJP and JVP under one banner; the rules compute with the registry's helpers, so they
serve a plain sweep, a block of cotangents or tangents (jacrev / jacfwd) and a recorded sweep
that is differentiated again (hessian, hvp).  Matrices are the last two axes; leading axes are
a batch, as in NumPy.  Formulas in the course's notation, df = f'(A)[dA]; the source for most is
M. Giles, "An extended collection of matrix derivative results for forward and reverse mode
algorithmic differentiation" (2008).

One module per topic:
    _factor.py     the LU family: inv det slogdet solve lu, sharing one factorization
    _spectral.py   eigh eigvalsh svd
    _cholesky.py   cholesky
    _functions.py  expm matrix_power norm
"""
# ruff: noqa: F401,F403  (this package re-exports its modules' public functions)
from graphad.linalg import _cholesky, _factor, _functions, _spectral
from graphad.linalg._cholesky import *
from graphad.linalg._factor import *
from graphad.linalg._functions import *
from graphad.linalg._spectral import *
from graphad.linalg._spectral import NonDifferentiableError   # a name, not in __all__ (functions)

__all__ = _factor.__all__ + _spectral.__all__ + _cholesky.__all__ + _functions.__all__
