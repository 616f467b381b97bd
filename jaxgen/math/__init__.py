"""Pure math: losses, divergences, bounds and diffusion processes (no Flax, no config, no I/O).

Submodules: ``gaussian``, ``elbo``, ``reconstruction`` (AE/VAE), ``diffusion`` (DDPM/DDIM),
``adversarial`` (GAN losses) and ``cycle`` (CycleGAN's L1 terms).
"""

from jaxgen.math import diffusion
from jaxgen.math.adversarial import (
    GAN_LOSS_KINDS,
    get_gan_losses,
    hinge_discriminator_loss,
    hinge_generator_loss,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    minimax_discriminator_loss,
    minimax_generator_loss,
    non_saturating_generator_loss,
    r1_penalty,
)
from jaxgen.math.cycle import cycle_consistency_loss, identity_loss, mean_absolute_error
from jaxgen.math.elbo import elbo, iwae_bound
from jaxgen.math.gaussian import gaussian_kl, gaussian_log_prob, reparameterize, standard_normal_kl
from jaxgen.math.reconstruction import binary_cross_entropy, squared_error

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
