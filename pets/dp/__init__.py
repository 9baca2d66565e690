"""Differential privacy: secure discrete samplers, accuracy, DP aggregation.

``discrete_laplace`` and ``discrete_gaussian`` are pets' vectorised samplers fed by the
operating system's CSPRNG: the discrete Laplace one is exact, the discrete Gaussian
within a proven total-variation distance of 2^-47 of the exact distribution (see
:mod:`pets.dp.fast`). Releases add Laplace noise with it (or OpenDP's exact sampler for
a few cells at a new scale) and Gaussian noise with OpenDP's exact sampler
(:mod:`pets.dp.samplers`), or with it where a δ allowance covers its TV distance.
"""

from .accuracy import laplace_half_width
from .fast import discrete_gaussian, discrete_laplace

__all__ = ["discrete_gaussian", "discrete_laplace", "laplace_half_width"]
