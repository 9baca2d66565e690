"""Differential privacy: secure discrete samplers, accuracy, DP aggregation.

``discrete_laplace`` and ``discrete_gaussian`` are pets' vectorised samplers fed by the
operating system's CSPRNG, within a proven total-variation distance of the exact
distributions (2^-53 and 2^-47; see :mod:`pets.dp.fast`). Releases add OpenDP's exact
samplers' noise (:mod:`pets.dp.samplers`).
"""

from .accuracy import laplace_half_width
from .fast import discrete_gaussian, discrete_laplace

__all__ = ["discrete_gaussian", "discrete_laplace", "laplace_half_width"]
