"""Plain autoencoder, MLP 784-400-20; set loss.reconstruction to "bce" or "mse".

Command:  python -m experiments.main --config experiments/configs/ae_mlp.py --workdir runs/ae_mlp
Budget:   10 epochs, batch 128, Adam 1e-3 (4,690 steps), as vae_mlp.
Measured (2026-11-24, 2-core CPU shared with other work): 275 s with the evaluation; test
          squared error 9.22 per image (0.0114 per pixel), PSNR 20.3 dB (mean over images).
Denoising: add --config.loss.corruption=gaussian --config.loss.corruption_level=0.3
(or corruption=mask, level = fraction of pixels zeroed); the target stays the clean image.
"""

from experiments.configs import vae_mlp


def get_config():
    c = vae_mlp.get_config()
    c.unlock()
    c.model.variational = False  # model.class_conditional=True: a class-conditional AE
    c.loss.reconstruction = "mse"
    c.lock()
    return c
