"""Differential privacy: secure discrete samplers, accuracy, DP aggregation."""

from .accuracy import laplace_half_width
from .samplers import discrete_laplace

__all__ = ["discrete_laplace", "laplace_half_width"]
