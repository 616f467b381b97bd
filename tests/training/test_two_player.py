"""The two-player steps (DCGAN with BatchNorm, CycleGAN with history pools) give the same
parameters, batch statistics and pools on 4 devices as on 1 device with the same global batch."""

import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from experiments import cyclegan, gan
from experiments.configs.base import get_base_config
from jaxgen.training import DataParallel
from tests.experiments.helpers import load_config


def run_steps(exp_module, config, batches, devices, tmp_path):
    run = exp_module.common.make_run(config, str(tmp_path))
    run.parallel = DataParallel("shard_map", devices=devices)
    exp = exp_module.Experiment(config, run)
    step = run.parallel.compile(
        exp_module.with_step_key(exp_module.make_train_body(*exp.models, config)))
    state = run.parallel.replicate(exp.initial_state)
    for batch in batches:
        state, metrics = step(state, run.parallel.shard_batch(batch), jax.random.key(7))
    run.close()
    return run.parallel.fetch(state), run.parallel.fetch(metrics)


def assert_same(one, many, initial):
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), one, initial)
    assert max(jax.tree.leaves(moved)) > 1e-4  # the runs did change the state
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-4), one, many)


def test_dcgan_step_is_device_count_invariant(tmp_path, num_devices):
    d_steps = 2  # k discriminator updates per generator update (k = 1 runs in the e2e tests)
    config = load_config("dcgan_fmnist", {
        "model.generator_features": 4, "model.discriminator_features": 4,
        "model.latent_dim": 6, "train.d_steps": d_steps, "data.image_size": 16})
    rng = np.random.default_rng(0)
    batches = [{"image": rng.uniform(-1, 1, (8, 16, 16, 1)).astype(np.float32)}
               for _ in range(3)]
    one, m1 = run_steps(gan, config, batches, jax.devices()[:1], tmp_path / "one")
    many, m4 = run_steps(gan, config, batches, jax.devices(), tmp_path / "many")
    initial = gan.Experiment(config, gan.common.make_run(config, str(tmp_path / "i")))
    assert int(one.step) == 3 and int(one.discriminator.step) == 3 * d_steps
    assert_same(one.generator.batch_stats, many.generator.batch_stats,
                initial.initial_state.generator.batch_stats)
    assert_same(one.generator.params, many.generator.params,
                initial.initial_state.generator.params)
    assert_same(one.discriminator.params, many.discriminator.params,
                initial.initial_state.discriminator.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), m1, m4)


def test_cyclegan_step_is_device_count_invariant(tmp_path, num_devices):
    config = load_config("cyclegan_fmnist", {
        "model.generator_features": 4, "model.discriminator_features": 4,
        "model.num_blocks": 1, "loss.pool_size": 6, "data.crop_size": 16, "data.load_size": 16})
    rng = np.random.default_rng(1)
    batches = [{d: rng.uniform(-1, 1, (4, 16, 16, 1)).astype(np.float32) for d in "xy"}
               for _ in range(3)]
    one, _ = run_steps(cyclegan, config, batches, jax.devices()[:1], tmp_path / "one")
    many, _ = run_steps(cyclegan, config, batches, jax.devices(), tmp_path / "many")
    initial = cyclegan.Experiment(config, cyclegan.common.make_run(config, str(tmp_path / "i")))
    # 12 generated images per domain went through a pool of 6: it is full, and identical.
    assert int(one.extras["x"].num_stored) == 6
    assert_same(one.extras, many.extras, initial.initial_state.extras)
    # Compare what the networks compute, not every parameter: the conv biases in front of an
    # instance norm (kept to match the reference's parameter count) get gradients that are 0
    # up to rounding, which Adam rescales into arbitrary moves that change no output.
    probe = np.random.default_rng(2).uniform(-1, 1, (2, 16, 16, 1)).astype(np.float32)
    gen, dis = initial.models

    def outputs(state):
        return {**{n: gen.apply({"params": state.generator.params[n]}, probe) for n in "GF"},
                **{n: dis.apply({"params": state.discriminator.params[n]}, probe)
                   for n in ("D_X", "D_Y")}}

    assert_same(outputs(one), outputs(many), outputs(initial.initial_state))


def test_linear_decay_schedule():
    opt = get_base_config().optimizer
    opt.schedule, opt.decay_fraction, opt.learning_rate = "linear_decay", 0.5, 2e-4
    lr = gan.common.learning_rate_schedule(opt, 200)
    assert float(lr(0)) == pytest.approx(2e-4) and float(lr(99)) == pytest.approx(2e-4)
    assert float(lr(150)) == pytest.approx(1e-4) and float(lr(200)) == pytest.approx(0.0)
    opt.warmup_steps, opt.schedule = 10, "constant"
    lr = gan.common.learning_rate_schedule(opt, 200)
    assert float(lr(5)) == pytest.approx(1e-4) and float(lr(50)) == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="unknown optimizer.schedule"):
        gan.common.learning_rate_schedule(ConfigDict({**opt.to_dict(), "schedule": "cos"}), 5)
