"""ga.linalg, matrix functions and norms: expm, matrix_power, norm."""

__all__ = []
