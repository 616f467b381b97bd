"""jaxgen: deep generative models in JAX.

The public API is the pure math: import it as ``import jaxgen`` and call e.g.
``jaxgen.gaussian_kl`` or ``jaxgen.diffusion.q_sample``. Models live in ``jaxgen.models``, the
training core in ``jaxgen.training`` and data pipelines in ``jaxgen.data``.
"""

from jaxgen.math import (
    GAN_LOSS_KINDS,
    binary_cross_entropy,
    cycle_consistency_loss,
    diffusion,
    elbo,
    gaussian_kl,
    gaussian_log_prob,
    get_gan_losses,
    hinge_discriminator_loss,
    hinge_generator_loss,
    identity_loss,
    iwae_bound,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    mean_absolute_error,
    minimax_discriminator_loss,
    minimax_generator_loss,
    non_saturating_generator_loss,
    r1_penalty,
    reparameterize,
    squared_error,
    standard_normal_kl,
)

__version__ = "0.1.0"

__all__ = [
    "GAN_LOSS_KINDS",
    "binary_cross_entropy",
    "cycle_consistency_loss",
    "diffusion",
    "elbo",
    "gaussian_kl",
    "gaussian_log_prob",
    "get_gan_losses",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "identity_loss",
    "iwae_bound",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "mean_absolute_error",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "r1_penalty",
    "reparameterize",
    "squared_error",
    "standard_normal_kl",
]
