"""The DCGAN step used from a researcher's own code, without the runner."""

import jax
import numpy as np
import optax

from jaxgen.families.gan import GAN, GANConfig, GANLoss, GANModel, make_dcgan_step
from jaxgen.training import DataParallel, with_step_key


def test_dcgan_step_without_the_runner():
    family = GAN(GANConfig(model=GANModel(latent_dim=4, generator_features=4,
                                          discriminator_features=4),
                           loss=GANLoss(d_steps=2)), image_shape=(16, 16, 1))
    state = family.init(jax.random.key(0), optax.adam(2e-4, b1=0.5))
    step = make_dcgan_step(family.generator, family.discriminator, d_steps=2)
    parallel = DataParallel("shard_map")
    compiled = parallel.compile(with_step_key(step))
    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype(np.float32)
    device_state = parallel.replicate(state)
    for _ in range(2):
        device_state, metrics = compiled(device_state, parallel.shard_batch({"image": images}),
                                         jax.random.key(1))
    out = parallel.fetch(device_state)
    assert int(out.step) == 2 and int(out.discriminator.step) == 4  # k = 2 D updates a step
    assert int(out.generator.step) == 2
    assert 0 < float(metrics["d_real"]) < 1 and np.isfinite(float(metrics["g_loss"]))
