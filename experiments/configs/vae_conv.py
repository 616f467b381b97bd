"""Convolutional VAE (2 strided convs 32-64, latent 20), Bernoulli decoder.

Command:
  python -m experiments.main --config experiments/configs/vae_conv.py --workdir runs/vae_conv
"""

from experiments.configs import vae_mlp


def get_config():
    c = vae_mlp.get_config()
    c.unlock()
    c.model.architecture = "conv"
    c.lock()
    return c
