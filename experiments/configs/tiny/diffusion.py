"""A tiny DDPM on 16×16 synthetic images, for the family contract tests."""

from experiments.configs import base, ddpm_fmnist


def get_config():
    c = ddpm_fmnist.get_config()
    c.unlock()
    base.make_tiny(c)
    c.data.image_size = 16
    c.diffusion.num_timesteps = 20
    c.model.update(dict(ch=8, ch_mult=(1, 2), attn_resolutions=(8,), num_groups=4))
    c.sampling.update(dict(num_samples=5, batch_size=4, write_png=True))
    c.sampling.ddim.steps = 4
    c.sampling.dpm_solver.steps = 4
    c.sampling.heun.steps = 3
    c.eval.update(dict(bpd_max_examples=8, bpd_timesteps=3))
    c.lock()
    return c
