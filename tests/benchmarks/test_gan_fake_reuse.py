"""benchmarks/gan_fake_reuse.py's reuse-the-fakes step: the G update it derives by pulling the
loss gradient back through the saved forward pass is the plain gradient through the updated D."""

import jax
import numpy as np
import optax
import pytest

pytest.importorskip("torch")  # gan_fake_reuse times the PyTorch peer too

from benchmarks import gan_fake_reuse  # noqa: E402
from jaxgen.families.gan import GAN, GANConfig, GANModel, latents  # noqa: E402
from jaxgen.math import adversarial  # noqa: E402
from jaxgen.training import AXIS, DataParallel, split_named, step_key, with_step_key  # noqa: E402


def test_reuse_step_updates_g_through_the_updated_d():
    family = GAN(GANConfig(model=GANModel(latent_dim=4, generator_features=4,
                                          discriminator_features=4)), image_shape=(16, 16, 1))
    # SGD: the update is the gradient itself (Adam's first step keeps little more than its sign).
    state = family.init(jax.random.key(0), optax.sgd(0.5))
    parallel = DataParallel("shard_map")
    images = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype(np.float32)
    batch = parallel.shard_batch({"image": images})
    train_key = jax.random.key(1)
    reuse = parallel.compile(with_step_key(gan_fake_reuse.make_reuse_body(family)),
                             donate_state=False)
    new, metrics = reuse(parallel.replicate(state), batch, train_key)
    new = parallel.fetch(new)
    assert int(new.step) == 1 and int(new.discriminator.step) == 1
    assert {"d_loss", "d_real", "d_fake", "g_loss", "d_grad_norm", "g_grad_norm"} <= set(metrics)
    _, g_loss_fn = adversarial.get_gan_losses(family.config.loss.kind)

    def reference(states, batch, key):
        g, d = states["g"], states["d"]  # G before the step, D after its update
        z = latents(split_named(key, ("z",))["z"], batch["image"].shape[0], 4)

        def loss(params):
            fake, _ = family.generator.apply({"params": params, **g.model_state}, z, train=True,
                                             mutable=["batch_stats"])
            logits, _ = family.discriminator.apply({"params": d.params, **d.model_state}, fake,
                                                   train=True, mutable=["batch_stats"])
            return g_loss_fn(logits).mean()

        grads = jax.lax.pmean(jax.grad(loss)(g.params), AXIS)
        return g.apply_gradients(grads=grads).params

    want = parallel.compile(reference, donate_state=False)(
        parallel.replicate({"g": state.generator, "d": new.discriminator}), batch,
        step_key(train_key, 0))
    got = new.generator.params
    assert not all(np.array_equal(a, b) for a, b in zip(
        jax.tree.leaves(got), jax.tree.leaves(state.generator.params), strict=True))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(parallel.fetch(want)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
