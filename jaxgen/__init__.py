"""jaxgen: deep generative models in JAX.

The public API is the pure math: import it as ``import jaxgen`` and call e.g.
``jaxgen.gaussian_kl``. Models live in ``jaxgen.models``, the training core in
``jaxgen.training`` and data pipelines in ``jaxgen.data``.
"""

from jaxgen.math import (
    binary_cross_entropy,
    elbo,
    gaussian_kl,
    gaussian_log_prob,
    iwae_bound,
    reparameterize,
    squared_error,
    standard_normal_kl,
)

__version__ = "0.1.0"

__all__ = [
    "binary_cross_entropy",
    "elbo",
    "gaussian_kl",
    "gaussian_log_prob",
    "iwae_bound",
    "reparameterize",
    "squared_error",
    "standard_normal_kl",
]
