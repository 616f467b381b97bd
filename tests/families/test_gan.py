"""The DCGAN step used from a researcher's own code, and each player's optimizer."""

import jax
import numpy as np
import optax
import pytest

from jaxgen.families.gan import GAN, GANConfig, GANLoss, GANModel, make_dcgan_step
from jaxgen.training import DataParallel, OptimizerConfig, OptimizerOverrides, with_step_key

TINY = GANModel(latent_dim=4, generator_features=4, discriminator_features=4)


def images(n=8):
    return np.random.default_rng(0).uniform(-1, 1, (n, 16, 16, 1)).astype(np.float32)


def test_dcgan_step_without_the_runner():
    family = GAN(GANConfig(model=TINY, loss=GANLoss(d_steps=2)), image_shape=(16, 16, 1))
    state = family.init(jax.random.key(0), optax.adam(2e-4, b1=0.5))
    step = make_dcgan_step(family.generator, family.discriminator, d_steps=2)
    parallel = DataParallel("shard_map")
    compiled = parallel.compile(with_step_key(step))
    device_state = parallel.replicate(state)
    for _ in range(2):
        device_state, metrics = compiled(device_state, parallel.shard_batch({"image": images()}),
                                         jax.random.key(1))
    out = parallel.fetch(device_state)
    assert int(out.step) == 2 and int(out.discriminator.step) == 4  # k = 2 D updates a step
    assert int(out.generator.step) == 2
    assert 0 < float(metrics["d_real"]) < 1 and np.isfinite(float(metrics["g_loss"]))


def scheduled_rate(s, *, lr, warmup, num_steps, decay_steps):
    """The closed form of the run's schedule at step s: linear warmup from 0 over `warmup`
    steps, constant, then linear decay to 0 over the last `decay_steps` steps."""
    decay_start = num_steps - decay_steps
    if s < warmup:
        return lr * s / warmup
    if s < decay_start:
        return lr
    return lr * (1 - (s - decay_start) / decay_steps)


@pytest.mark.parametrize("d_steps", [1, 3])
def test_each_player_rate_follows_its_schedule_in_run_steps(d_steps):
    """G on the run's `optimizer`, D on its `d_optimizer` overrides (two time-scale rates, its
    own β₁), both schedules in run steps: after real steps, the rate each player's last update
    applied (read from its optimizer state) is its schedule at that step, whatever d_steps is
    (the bug: D's schedule advanced d_steps times per step and reached 0 at num_steps/d_steps).
    """
    num_steps, warmup, decay_steps = 8, 2, 4
    family = GAN(GANConfig(model=TINY, loss=GANLoss(d_steps=d_steps),
                           d_optimizer=OptimizerOverrides(learning_rate=4e-4, b1=0.0)),
                 image_shape=(16, 16, 1))
    run_optimizer = OptimizerConfig(learning_rate=1e-4, b1=0.5, warmup_steps=warmup,
                                    schedule="linear_decay", decay_fraction=0.5)
    state = family.init(jax.random.key(0), family.make_optimizers(run_optimizer, num_steps))
    parallel = DataParallel("shard_map")
    step = parallel.compile(with_step_key(family.train_body))
    device_state, batch = parallel.replicate(state), parallel.shard_batch({"image": images()})
    rates = {"generator": [], "discriminator": []}
    for _ in range(num_steps):
        device_state, metrics = step(device_state, batch, jax.random.key(1))
        host = parallel.fetch(device_state)
        for player in rates:
            hyperparams = getattr(host, player).opt_state.hyperparams
            rates[player].append(float(hyperparams["learning_rate"]))
        assert float(metrics["d_learning_rate"]) == rates["discriminator"][-1]
    assert int(host.discriminator.step) == d_steps * num_steps
    assert float(host.generator.opt_state.hyperparams["b1"]) == 0.5
    assert float(host.discriminator.opt_state.hyperparams["b1"]) == 0.0
    for player, lr in (("generator", 1e-4), ("discriminator", 4e-4)):
        want = [scheduled_rate(s, lr=lr, warmup=warmup, num_steps=num_steps,
                               decay_steps=decay_steps) for s in range(num_steps)]
        first, middle, last = 0, num_steps // 2, num_steps - 1
        for s in (first, middle, last):
            assert rates[player][s] == pytest.approx(want[s], rel=1e-6, abs=1e-12), (player, s)
        assert rates[player][last] == pytest.approx(lr / decay_steps, rel=1e-6)  # not 0 yet
        np.testing.assert_allclose(rates[player], want, rtol=1e-6, atol=1e-12)
