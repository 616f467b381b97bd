"""Convolutional VAE (2 strided convs 32-64, latent 20), Bernoulli decoder.

Command:
  python -m experiments.main --config experiments/configs/vae_conv.py --workdir runs/vae_conv
Budget:   10 epochs, batch 128, Adam 1e-3 (4,690 steps).
Measured: the training step, 1,089 images/s on the 2-core CPU (`python -m benchmarks.steps
          --models vae_conv`, README's Benchmarks), so ≈ 9 min of steps for the budget; the 10-epoch
          test figures are not measured yet.
"""

from experiments.configs import vae_mlp


def get_config():
    c = vae_mlp.get_config()
    c.unlock()
    c.model.architecture = "conv"
    c.lock()
    return c
