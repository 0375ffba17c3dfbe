"""What the ga.linalg modules share: input checks, LAPACK error messages, sym()."""
import numpy as np

from graphad._core import Tensor
from graphad._elementwise import add_, mul_
from graphad._products import _swap


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _square(name, a):
    """a as an array or Tensor of float dtype, checked to be a (batch of) square matrices."""
    return _matrix(name, a, square=True)


def _matrix(name, a, square=False):
    """a as an array or Tensor of float dtype, checked to be a (batch of) matrices (square
    ones if asked)."""
    a = a if isinstance(a, Tensor) else np.asarray(a)
    shape = np.shape(_raw(a))
    if len(shape) < 2 or (square and shape[-1] != shape[-2]):
        raise ValueError(f"{name}: needs a {'square ' if square else ''}matrix (or a batch of "
                         f"them) in the last two axes, got shape {shape}")
    dt = np.asarray(_raw(a)).dtype
    if dt.kind == "c":
        raise TypeError(f"{name}: complex dtypes are not supported yet (got {dt})")
    if dt.kind != "f":
        a = a.astype(np.float64)
    return a


def _lapack(name, fn, a):
    try:
        return fn(a)
    except np.linalg.LinAlgError as e:
        raise np.linalg.LinAlgError(f"{name}: {e} (input shape {np.shape(a)})") from None


def _sym(m):
    """(M + M^T) / 2 over the last two axes."""
    return mul_(add_(m, _swap(m)), 0.5)
