"""Pure math: losses, divergences and bounds (no Flax, no config, no I/O)."""

from jaxgen.math.elbo import elbo, iwae_bound
from jaxgen.math.gaussian import gaussian_kl, gaussian_log_prob, reparameterize, standard_normal_kl
from jaxgen.math.reconstruction import binary_cross_entropy, squared_error

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
