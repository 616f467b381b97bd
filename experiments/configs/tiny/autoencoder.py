"""A tiny VAE on 16×16 synthetic images, for the family contract tests (seconds on a CPU)."""

from experiments.configs import base, vae_mlp


def get_config():
    c = vae_mlp.get_config()
    c.unlock()
    base.make_tiny(c)
    c.model.update(dict(hidden=(16,), channels=(4, 8), latent_dim=3))
    c.eval.update(dict(iwae_samples=3, iwae_max_examples=8, iwae_batch_size=4))
    c.sampling = dict(num_samples=5, batch_size=4, write_png=True, classes=())
    c.lock()
    return c
