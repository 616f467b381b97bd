"""shard_map, pmap and one device give the same parameters for the same global batch."""

import chex
import jax
import numpy as np
import pytest

from jaxgen.families.autoencoder import (
    Autoencoder,
    AutoencoderConfig,
    AutoencoderLoss,
    AutoencoderModel,
)
from jaxgen.training import DataParallel, RetraceError, with_step_key
from jaxgen.training.collect import masked_sums, means_and_standard_errors, sum_over_batches
from jaxgen.training.optim import OptimizerConfig, make_optimizer


def tiny_vae_setup():
    family = Autoencoder(AutoencoderConfig(
        model=AutoencoderModel(latent_dim=3, hidden=(16,), init="lecun"),
        loss=AutoencoderLoss(gaussian_logvar=0.0, corruption="gaussian", corruption_level=0.1)),
        image_shape=(8, 8, 1))
    tx = make_optimizer(OptimizerConfig(learning_rate=1e-2), num_steps=3)
    state = family.init(jax.random.key(0), tx)
    images = np.random.default_rng(0).uniform(size=(3, 16, 8, 8, 1)).astype(np.float32)
    return state, family.train_body, images


def run(parallel, state, body, images, steps=3):
    step = parallel.compile(with_step_key(chex.assert_max_traces(body, n=1)))
    device_state = parallel.replicate(state)
    for i in range(steps):
        device_state, metrics = step(device_state, parallel.shard_batch({"image": images[i]}),
                                     jax.random.key(42))
    return parallel.fetch(device_state), parallel.fetch(metrics)


def test_shard_map_pmap_and_one_device_agree(num_devices):
    state, body, images = tiny_vae_setup()
    results = {}
    for name, parallel in {
        "one_device": DataParallel("shard_map", devices=jax.devices()[:1]),
        "shard_map": DataParallel("shard_map"),
        "pmap": DataParallel("pmap"),
    }.items():
        chex.clear_trace_counter()
        results[name] = run(parallel, state, body, images)
    assert DataParallel("shard_map").num_devices == num_devices == 4
    ref_state, ref_metrics = results["one_device"]
    assert int(ref_state.step) == 3
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), ref_state.params, state.params)
    assert max(jax.tree.leaves(moved)) > 1e-3  # the comparison is not between untouched params
    for name in ("shard_map", "pmap"):
        got_state, got_metrics = results[name]
        chex.assert_trees_all_close(got_state.params, ref_state.params, atol=1e-5, rtol=1e-5)
        chex.assert_trees_all_close(got_metrics, ref_metrics, atol=1e-4, rtol=1e-5)


def test_retracing_is_an_error():
    state, body, images = tiny_vae_setup()
    parallel = DataParallel("shard_map")
    step = parallel.compile(with_step_key(body))
    device_state = parallel.replicate(state)
    device_state, _ = step(device_state, parallel.shard_batch({"image": images[0]}),
                           jax.random.key(0))
    with pytest.raises(RetraceError, match="traced 2 times"):
        step(device_state, parallel.shard_batch({"image": images[0][:8]}), jax.random.key(0))


def test_batch_must_split_over_devices():
    with pytest.raises(ValueError, match="divisible by the number of local devices"):
        DataParallel("shard_map").shard_batch({"image": np.zeros((6, 2))})
    with pytest.raises(ValueError, match="unknown parallel mode"):
        DataParallel("vmap")


@pytest.mark.parametrize("mode", ["shard_map", "pmap"])
def test_eval_sums_give_the_mean_and_standard_error_of_the_real_examples(mode):
    """masked_sums over 4 devices and 2 padded batches, then means_and_standard_errors, equal
    the float64 mean and s/√n (s with n − 1) of the unpadded per-example values."""
    parallel = DataParallel(mode)
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, size=(2, 8))  # two global batches of 8
    mask = np.ones((2, 8), np.float32)
    mask[1, 5:] = 0.0  # the last batch is padded: 13 real examples
    values[1, 5:] = 1e6  # padding must not count

    def body(state, batch, key):
        return {"v": batch["v"], "twice": 2.0 * batch["v"]}

    step = parallel.compile(masked_sums(body), donate_state=False)
    batches = [{"v": values[i].astype(np.float32), "mask": mask[i]} for i in range(2)]
    total = sum_over_batches(step, parallel.replicate({}), batches, parallel, jax.random.key(0))
    means, ses, n = means_and_standard_errors(total)
    real = values[mask > 0]
    assert n == 13
    np.testing.assert_allclose(means["v"], real.mean(), rtol=1e-6)
    np.testing.assert_allclose(ses["v"], real.std(ddof=1) / np.sqrt(13), rtol=1e-4)
    np.testing.assert_allclose(ses["twice"], 2 * real.std(ddof=1) / np.sqrt(13), rtol=1e-4)
    one = {"sum": {"v": np.float32(2.0)}, "sum_sq": {"v": np.float32(4.0)}, "count": 1}
    assert means_and_standard_errors(one) == ({"v": 2.0}, {}, 1)  # no SE from one example


def test_a_body_that_forgets_its_pmean_is_an_error_not_a_number():
    """The sum of 0..7 over 4 devices is 28; without the psum each device holds a partial sum
    and an unchecked shard_map returned device 0's (1.0). Declared replicated, it must fail
    when traced."""
    parallel = DataParallel("shard_map")
    batch = parallel.shard_batch({"v": np.arange(8, dtype=np.float32)})

    def right(state, batch, key):
        return jax.lax.psum(batch["v"].sum(), "data")

    def forgot(state, batch, key):
        return batch["v"].sum()

    assert float(parallel.fetch(parallel.compile(right, donate_state=False)({}, batch,
                                                                           None))) == 28.0
    with pytest.raises(ValueError, match="replicat"):
        parallel.compile(forgot, donate_state=False)({}, batch, None)


@pytest.mark.parametrize("mode", ["shard_map", "pmap"])
def test_per_example_outputs_come_back_in_batch_order(mode):
    parallel = DataParallel(mode)
    step = parallel.compile(lambda state, batch, key: {"twice": 2 * batch["v"]},
                            donate_state=False, per_example=True)
    v = np.arange(8, dtype=np.float32)
    out = parallel.fetch_examples(step({}, parallel.shard_batch({"v": v}), None))
    np.testing.assert_array_equal(out["twice"], 2 * v)
