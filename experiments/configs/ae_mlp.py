"""Plain autoencoder, MLP 784-400-20; set loss.reconstruction to "bce" or "mse".

Command:  python -m experiments.main --config experiments/configs/ae_mlp.py --workdir runs/ae_mlp
Denoising: add --config.loss.corruption=gaussian --config.loss.corruption_level=0.3
(or corruption=mask, level = fraction of pixels zeroed); the target stays the clean image.
"""

from experiments.configs import vae_mlp


def get_config():
    c = vae_mlp.get_config()
    c.unlock()
    c.model.variational = False
    c.loss.reconstruction = "mse"
    c.lock()
    return c
