"""ga.linalg: cholesky."""

__all__ = []
