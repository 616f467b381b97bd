"""flax.linen models: autoencoders/VAEs, the DDPM UNet, DCGAN and CycleGAN networks, and the
Fashion-MNIST classifier whose features the evaluation metrics use."""

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
