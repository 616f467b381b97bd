"""flax.linen models: autoencoders/VAEs, the DDPM UNet, DCGAN and CycleGAN networks."""

from jaxgen.models.autoencoders import VAE, Autoencoder, make_autoencoder
from jaxgen.models.classifier import Classifier
from jaxgen.models.cyclegan import PatchDiscriminator, ResnetGenerator
from jaxgen.models.dcgan import Discriminator, Generator
from jaxgen.models.unet import UNet

__all__ = [
    "VAE",
    "Autoencoder",
    "Classifier",
    "Discriminator",
    "Generator",
    "PatchDiscriminator",
    "ResnetGenerator",
    "UNet",
    "make_autoencoder",
]
