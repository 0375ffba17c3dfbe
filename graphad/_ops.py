"""The public array functions, gathered from the topic modules that declare them with their
primitives (graphad/_elementwise.pyx, _shape.pyx, _reductions.pyx, _products.pyx, and the compositions of graphad/_array_api.py); `ga.<name>`
is `graphad._ops.<name>`.  The engine (graphad._core) reaches the functions and helpers it
needs (add, astype, reshape_, sum_, ...) through this module."""
# ruff: noqa: F401, F403  (a re-exporting namespace)
from graphad import _array_api, _elementwise, _products, _reductions, _shape
from graphad._elementwise import *
from graphad._elementwise import P_ADD, P_DIV, P_MAX, P_MIN, P_MUL, P_POW, P_SUB
from graphad._products import P_MATMUL
from graphad._products import *
from graphad._prims import stacked as _stacked
from graphad._reductions import *
from graphad._reductions import sum_
from graphad._shape import *
from graphad._shape import broadcast_to_, reshape_
from graphad._array_api import *

__all__ = (_elementwise.__all__ + _reductions.__all__ + _shape.__all__ + _products.__all__ +
           _array_api.__all__)
