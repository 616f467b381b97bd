"""Convolutional autoencoder (strided convs 32-64, code 20), squared-error reconstruction.

Command:  python -m experiments.main --config experiments/configs/ae_conv.py --workdir runs/ae_conv
"""

from experiments.configs import ae_mlp


def get_config():
    c = ae_mlp.get_config()
    c.unlock()
    c.model.architecture = "conv"
    c.lock()
    return c
