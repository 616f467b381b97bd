"""A tiny DCGAN on 16×16 synthetic images, for the family contract tests."""

from experiments.configs import base, dcgan_fmnist


def get_config():
    c = dcgan_fmnist.get_config()
    c.unlock()
    base.make_tiny(c)
    c.data.image_size = 16
    c.model.update(dict(latent_dim=8, generator_features=4, discriminator_features=4))
    c.loss.d_steps = 2
    c.sampling.update(dict(num_samples=5, batch_size=4, write_png=True))
    c.lock()
    return c
