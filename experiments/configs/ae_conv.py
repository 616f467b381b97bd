"""Convolutional autoencoder (strided convs 32-64, code 20), squared-error reconstruction.

Command:  python -m experiments.main --config experiments/configs/ae_conv.py --workdir runs/ae_conv
Budget:   10 epochs, batch 128, Adam 1e-3 (4,690 steps).
Measured: the training step, 1,098 images/s on the 2-core CPU (`python -m benchmarks.steps
          --models ae_conv`, README's Benchmarks), so ≈ 9 min of steps for the budget; the 10-epoch
          test figures are not measured yet.
"""

from experiments.configs import ae_mlp


def get_config():
    c = ae_mlp.get_config()
    c.unlock()
    c.model.architecture = "conv"
    c.lock()
    return c
