"""Convolutional VAE (2 strided convs 32-64, latent 20), Bernoulli decoder.

Command:
  python -m experiments.main --config experiments/configs/vae_conv.py --workdir runs/vae_conv
Budget:   10 epochs, batch 128, Adam 1e-3 (4,690 steps).
Measured (2026-11-25, 2-core CPU): 256 s including the evaluation on the whole test split;
          test −ELBO 243.3 ± 0.8 nats, IWAE-100 NLL 239.8 ± 0.8 nats, KL 18.7 nats (the MLP
          VAE: 244.3 and 241.8). Training step: docs/benchmarks.md, CPU against PyTorch.
"""

from experiments.configs import vae_mlp


def get_config():
    c = vae_mlp.get_config()
    c.unlock()
    c.model.architecture = "conv"
    c.sampling = dict(num_samples=64, batch_size=64, write_png=False,  # --mode=sample
                      classes=())  # a conditional model: class ids or names, in turn; (): all
    c.lock()
    return c
