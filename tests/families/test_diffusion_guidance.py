"""Class-conditional diffusion: classifier-free guidance, label dropout, the sampler registry
and the settings a conditional run refuses."""

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxgen.families import diffusion_samplers
from jaxgen.families.diffusion import (
    Diffusion,
    DiffusionConfig,
    DiffusionModel,
    DiffusionSampling,
    drop_labels,
)
from jaxgen.training import DataParallel
from jaxgen.validation import ConfigError

TINY = DiffusionModel(ch=8, ch_mult=(1, 2), attn_resolutions=(), num_groups=4)


def toy_eps_model(calls):
    """ε(x, t, y) = x·(y + 1) + t/10, recording each call's batch size."""
    def eps_model(x, t, y):
        calls.append(x.shape[0])
        return x * (y + 1.0)[:, None, None, None] + t[:, None, None, None] / 10.0
    return eps_model


def test_guidance_is_one_plus_w_conditional_minus_w_unconditional_in_one_call():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 2, 2, 1)), jnp.float32)
    t = jnp.asarray([0, 5, 9], jnp.int32)
    labels = jnp.asarray([0, 2, 1], jnp.int32)
    null, w = 4, 1.5
    calls = []
    guided = diffusion_samplers.guided_eps_fn(toy_eps_model(calls), labels, null, w)(x, t)
    assert calls == [6]  # one batched call for both terms
    reference = toy_eps_model([])
    want = (1 + w) * reference(x, t, labels) - w * reference(x, t, jnp.full((3,), null))
    np.testing.assert_allclose(guided, want, rtol=1e-6)
    # w = 0 is the conditional model alone (guidance scale s = 1 + w = 1), one plain call.
    calls.clear()
    plain = diffusion_samplers.guided_eps_fn(toy_eps_model(calls), labels, null, 0.0)(x, t)
    assert calls == [3]
    np.testing.assert_allclose(plain, reference(x, t, labels))


def on_one_device(fn):
    """`fn(key, labels, p, null_label=)` under shard_map on one device (per-example keys
    read the device's index)."""
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("data",))

    def run(labels, key, p, null):
        body = lambda y, k: fn(k, y, p, null_label=null)  # noqa: E731
        return jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P("data"), P()),
                                     out_specs=P("data")))(labels, key)
    return run


def test_label_dropout_replaces_the_share_p_uncond_by_the_null_class():
    """Monte Carlo, n = 20,000 labels: the share of ∅ is within 4 standard errors of p."""
    n, p, null = 20_000, 0.1, 10
    labels = jnp.asarray(np.arange(n) % 10, jnp.int32)
    dropped = np.asarray(on_one_device(drop_labels)(labels, jax.random.key(0), p, null))
    share = np.mean(dropped == null)
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n)
    kept = dropped != null
    np.testing.assert_array_equal(dropped[kept], np.asarray(labels)[kept])
    none = on_one_device(drop_labels)(labels, jax.random.key(1), 0.0, null)
    np.testing.assert_array_equal(np.asarray(none), np.asarray(labels))


def test_the_registry_holds_every_sampler_with_its_settings():
    assert diffusion_samplers.names() == ("ddim", "ddpm", "dpm_solver", "heun")
    s = DiffusionSampling()
    for name, registered in diffusion_samplers.REGISTRY.items():
        assert isinstance(getattr(s, name), registered.settings)
    with pytest.raises(ValueError, match="already registered"):
        diffusion_samplers.register("ddim", diffusion_samplers.DDIMSettings, lambda *a: None)
    with pytest.raises(ConfigError, match="sampling.sampler"):
        DiffusionSampling(sampler="euler")
    with pytest.raises(ConfigError, match="sampling.dpm_solver.steps"):
        DiffusionConfig(sampling=DiffusionSampling(
            dpm_solver=diffusion_samplers.DPMSolverSettings(steps=5000)))
    # A sampler that does not run (neither sampling.sampler nor in the grids) is not checked.
    DiffusionConfig(sampling=DiffusionSampling(
        grid_samplers=("ddim",), dpm_solver=diffusion_samplers.DPMSolverSettings(steps=5000)))


def test_a_conditional_model_predicts_differently_per_class():
    config = DiffusionConfig(model=dataclasses.replace(TINY, class_conditional=True))
    family = Diffusion(config, image_shape=(8, 8, 1), num_classes=3)
    state = family.init(jax.random.key(0), optax.adam(1e-3))
    # The class embedding is a table of K + 1 rows (the last is ∅); perturb it so the
    # classes differ at initialisation (the UNet's output conv starts at zero).
    params = jax.tree.map(lambda v: v + 0.1 * jnp.ones_like(v), state.params)
    x = jnp.ones((3, 8, 8, 1))
    t = jnp.asarray([3, 3, 3], jnp.int32)
    eps = family.eps_fn(params, jnp.asarray([0, 1, 3], jnp.int32))(x, t)
    assert not np.allclose(eps[0], eps[1]) and not np.allclose(eps[1], eps[2])
    unconditional = family.eps_fn(params)(x, t)  # no labels: ε(x, t, ∅)
    np.testing.assert_allclose(unconditional[2], eps[2], rtol=1e-5, atol=1e-6)


def test_settings_a_conditional_run_refuses():
    with pytest.raises(ConfigError, match="needs a class-conditional model"):
        DiffusionConfig(model=TINY, sampling=DiffusionSampling(guidance=2.0))
    with pytest.raises(ConfigError, match="sampling.guidance"):
        DiffusionConfig(model=dataclasses.replace(TINY, class_conditional=True),
                        sampling=DiffusionSampling(guidance=-1.0))
    with pytest.raises(ConfigError, match="sampling.guidance"):
        DiffusionSampling(guidance=float("nan"))
    config = DiffusionConfig(model=dataclasses.replace(TINY, class_conditional=True))
    with pytest.raises(ConfigError, match="needs labelled data"):
        Diffusion(config, image_shape=(8, 8, 1), num_classes=0)


@pytest.mark.parametrize("conditional", [False, True])
def test_a_training_step_with_dropout_is_the_same_on_one_and_four_devices(conditional,
                                                                          num_devices):
    """Dropout masks (and t, ε, label dropout) are drawn per example from its global index,
    so one step with dropout 0.5 gives the same loss and parameters on 1 and 4 devices. The
    parameters are perturbed first: the zero-initialised conv after each dropout would
    otherwise hide the masks, and the check that dropout changes the loss shows they are
    seen."""
    model = dataclasses.replace(TINY, dropout=0.5, class_conditional=conditional)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.uniform(-1, 1, (8, 8, 8, 1)), jnp.float32),
             "label": jnp.asarray(np.arange(8) % 3, jnp.int32)}
    key = jax.random.key(7)
    results = {}
    for dropout, n in ((0.5, 1), (0.5, num_devices), (0.0, 1)):
        family = Diffusion(DiffusionConfig(model=dataclasses.replace(model, dropout=dropout)),
                           image_shape=(8, 8, 1), num_classes=3)
        state = family.init(jax.random.key(0), optax.sgd(1e-2))
        state = state.replace(params=jax.tree.map(lambda v: v + 0.05, state.params))
        parallel = DataParallel("shard_map", devices=jax.devices()[:n])
        step = parallel.compile(family.train_body, donate_state=False)
        new, metrics = step(parallel.replicate(state), parallel.shard_batch(batch), key)
        results[dropout, n] = (float(parallel.fetch(metrics)["loss"]),
                               parallel.fetch(new.params))
    (loss1, params1), (loss4, params4) = results[0.5, 1], results[0.5, num_devices]
    np.testing.assert_allclose(loss1, loss4, rtol=1e-5)
    chex.assert_trees_all_close(params1, params4, atol=1e-6, rtol=1e-5)
    assert abs(loss1 - results[0.0, 1][0]) > 1e-3 * abs(loss1)  # the masks matter
