"""The two-player families' own optimizer settings: the `d_optimizer` config section."""

import jax
import numpy as np
import pytest

from experiments import settings
from jaxgen.families.cyclegan import CycleGAN
from jaxgen.training import DataParallel, OptimizerConfig, OptimizerOverrides, with_step_key
from jaxgen.validation import ConfigError
from tests.experiments.helpers import load_config


@pytest.mark.parametrize("config", ["dcgan_fmnist", "cyclegan_fmnist"])
def test_d_optimizer_section_overrides_the_run_optimizer_for_d_only(config):
    run, family = settings.from_config_dict(load_config(config, {
        "d_optimizer.learning_rate": 4e-4, "d_optimizer.b1": 0.0}))
    assert family.d_optimizer == OptimizerOverrides(learning_rate=4e-4, b1=0.0)
    d = family.d_optimizer.apply(run.optimizer)
    assert (d.learning_rate, d.b1, d.b2) == (4e-4, 0.0, run.optimizer.b2)
    assert (run.optimizer.learning_rate, run.optimizer.b1) == (2e-4, 0.5)  # G's, unchanged
    run, family = settings.from_config_dict(load_config(config, {}))
    assert family.d_optimizer.apply(run.optimizer) == run.optimizer  # unset: D as G


@pytest.mark.parametrize("config", ["dcgan_fmnist", "cyclegan_fmnist"])
def test_d_optimizer_values_are_validated_when_the_config_is_read(config):
    with pytest.raises(ConfigError, match=r"d_optimizer\.b1=1\.5 is out of range"):
        settings.from_config_dict(load_config(config, {"d_optimizer.b1": 1.5}))
    with pytest.raises(ConfigError, match=r"d_optimizer\.schedule='cos' is not allowed"):
        settings.from_config_dict(load_config(config, {"d_optimizer.schedule": "cos"}))


def test_a_misspelt_or_misplaced_d_optimizer_key_is_an_error():
    config = load_config("dcgan_fmnist", {})
    with pytest.raises(AttributeError, match="learning_rte"):  # locked: no new keys
        config.d_optimizer.learning_rte = 1e-4
    config.unlock()
    config.d_optimizer.ema_decay = 0.9  # only the run's `optimizer` keeps an EMA (G's)
    with pytest.raises(ConfigError, match=r"not used by the gan family: d_optimizer\.ema_decay"):
        settings.from_config_dict(config)
    single = load_config("tiny/autoencoder", {})  # one player: no section of D's
    single.unlock()
    single.d_optimizer = {"learning_rate": 1e-4}
    with pytest.raises(ConfigError, match=r"not used by the autoencoder family: "
                                          r"d_optimizer\.learning_rate"):
        settings.from_config_dict(single)


def test_cyclegan_generators_and_discriminators_each_take_their_own_settings():
    """After a real step, the generators' optimizer state holds the run's rate and β₁, the
    discriminators' those of `d_optimizer` (with their own schedule, at step 0 of 4)."""
    _, config = settings.from_config_dict(load_config("tiny/cyclegan", {
        "d_optimizer.learning_rate": 1e-4, "d_optimizer.b1": 0.25,
        "d_optimizer.schedule": "linear_decay", "d_optimizer.decay_fraction": 1.0}))
    family = CycleGAN(config, image_shape=(16, 16, 1))
    run_optimizer = OptimizerConfig(learning_rate=2e-4, b1=0.5)
    state = family.init(jax.random.key(0), family.make_optimizers(run_optimizer, 4))
    parallel = DataParallel("shard_map")
    rng = np.random.default_rng(0)
    batch = {k: rng.uniform(-1, 1, (4, 16, 16, 1)).astype(np.float32) for k in ("x", "y")}
    step = parallel.compile(with_step_key(family.train_body))
    rates = []
    device_state = parallel.replicate(state)
    for _ in range(2):
        device_state, _ = step(device_state, parallel.shard_batch(batch), jax.random.key(1))
        host = parallel.fetch(device_state)
        rates.append({p: {k: float(v) for k, v in getattr(host, p).opt_state.hyperparams.items()}
                      for p in ("generator", "discriminator")})
    for s, (lr_g, lr_d) in enumerate([(2e-4, 1e-4), (2e-4, 0.75e-4)]):
        assert rates[s]["generator"]["learning_rate"] == pytest.approx(lr_g, rel=1e-6)
        assert rates[s]["discriminator"]["learning_rate"] == pytest.approx(lr_d, rel=1e-6)
        assert (rates[s]["generator"]["b1"], rates[s]["discriminator"]["b1"]) == (0.5, 0.25)
