"""A tiny CycleGAN on two domains of 16×16 synthetic images, for the family contract tests."""

from experiments.configs import base, cyclegan_fmnist


def get_config():
    c = cyclegan_fmnist.get_config()
    c.unlock()
    base.make_tiny(c)
    c.data.update(dict(load_size=16, crop_size=16))
    c.model.update(dict(num_blocks=1, generator_features=4, discriminator_features=4))
    c.loss.pool_size = 6
    c.translate.batch_size = 4
    c.lock()
    return c
