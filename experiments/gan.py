"""DCGAN on images: ``train_and_evaluate``, ``evaluate_checkpoint``, ``sample``.

Each training step updates the discriminator ``train.d_steps`` times, then the generator once,
each with its own Adam (Radford et al. 2016, arXiv:1511.06434). The losses come from
:mod:`jaxgen.math.adversarial` (``loss.kind``; the non-saturating generator loss by default).
BatchNorm normalises over the *global* batch (``axis_name="data"``), so any number of devices
computes what one device would.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxgen.math import adversarial
from jaxgen.models.dcgan import Discriminator, Generator
from jaxgen.training import (
    AXIS,
    TrainState,
    TwoPlayerState,
    gradient_update,
    per_example_keys,
    split_named,
    with_step_key,
)

# Losses whose discriminator output is a logit of P(real); the others output raw scores.
_LOGIT_LOSSES = ("minimax", "non_saturating")


def make_models(config: ml_collections.ConfigDict, axis_name: str | None = AXIS):
    m = config.model
    generator = Generator(latent_dim=m.latent_dim, features=m.generator_features,
                          channels=config.data.image_shape[-1], image_size=config.data.image_size,
                          axis_name=axis_name)
    discriminator = Discriminator(features=m.discriminator_features,
                                  image_size=config.data.image_size, axis_name=axis_name)
    return generator, discriminator


def make_train_body(generator: Generator, discriminator: Discriminator,
                    config: ml_collections.ConfigDict):
    """The per-device two-player step ``(TwoPlayerState, batch, key) -> (state, metrics)``."""
    d_loss_fn, g_loss_fn = adversarial.get_gan_losses(config.loss.kind)
    score = jax.nn.sigmoid if config.loss.kind in _LOGIT_LOSSES else (lambda s: s)
    r1_weight = config.loss.r1_weight
    latent_dim = config.model.latent_dim

    def latents(key, b):
        return jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(per_example_keys(key, b))

    def generate(g: TrainState, params, z):
        fake, updates = generator.apply({"params": params, "batch_stats": g.batch_stats}, z,
                                        train=True, mutable=["batch_stats"])
        return fake, updates["batch_stats"]

    def discriminate(params, batch_stats, x):
        logits, updates = discriminator.apply({"params": params, "batch_stats": batch_stats}, x,
                                              train=True, mutable=["batch_stats"])
        return logits, updates["batch_stats"]

    def train_step(state: TwoPlayerState, batch, key):
        real = batch["image"]
        b = real.shape[0]
        keys = split_named(key, ("d_z", "g_z"))
        g, d = state.generator, state.discriminator
        d_metrics = {}
        for i in range(config.train.d_steps):
            fake, g_stats = generate(g, g.params, latents(jax.random.fold_in(keys["d_z"], i), b))
            fake = jax.lax.stop_gradient(fake)
            g = g.replace(batch_stats=g_stats)  # G ran in train mode, as in the reference

            def d_loss(params, d=d, fake=fake):
                # Real and fake pass separately, each normalised by its own batch statistics,
                # as in the DCGAN reference.
                real_logits, stats = discriminate(params, d.batch_stats, real)
                fake_logits, stats = discriminate(params, stats, fake)
                loss = d_loss_fn(real_logits, fake_logits)
                aux = {"d_loss": loss.mean(), "d_real": score(real_logits).mean(),
                       "d_fake": score(fake_logits).mean(), "batch_stats": stats}
                if r1_weight > 0:
                    # Per-example input gradients need per-example outputs: use the running
                    # statistics, since batch statistics would couple the examples.
                    r1 = adversarial.r1_penalty(lambda x: discriminator.apply(
                        {"params": params, "batch_stats": d.batch_stats}, x, train=False), real)
                    aux["r1"] = r1.mean()
                    loss = loss + 0.5 * r1_weight * r1
                return loss.mean(), aux

            d, d_metrics, _ = gradient_update(d, d_loss)

        def g_loss(params):
            fake, stats = generate(g, params, latents(keys["g_z"], b))
            # D's running statistics are not updated by the generator's pass.
            fake_logits, _ = discriminate(d.params, d.batch_stats, fake)
            loss = g_loss_fn(fake_logits).mean()
            return loss, {"g_loss": loss, "batch_stats": stats}

        g, g_metrics, _ = gradient_update(g, g_loss)
        new = state.replace(step=state.step + 1, generator=g, discriminator=d)
        return new, {**d_metrics, **g_metrics}

    return train_step


def make_sample_body(generator: Generator):
    """Per-device body mapping ``batch["z"]`` to images in eval mode; returns the global batch."""

    def sample_step(state: TwoPlayerState, batch, key):
        del key
        g = state.generator
        images = generator.apply({"params": g.params, "batch_stats": g.batch_stats}, batch["z"],
                                 train=False)
        return jax.lax.all_gather(images, "data", tiled=True)

    return sample_step


class Experiment:
    """Everything one GAN run needs, built from a config."""

    def __init__(self, config: ml_collections.ConfigDict, run: common.Run, num_steps: int = 0):
        self.config = config
        self.run = run
        self.generator, self.discriminator = make_models(config)
        self.models = (self.generator, self.discriminator)
        keys = split_named(jax.random.key(config.seed), ("g_init", "d_init", "train", "fixed_z",
                                                            "sample"))
        self.train_key, self.sample_key = keys["train"], keys["sample"]
        size = config.data.image_size
        # Init unmapped (axis_name None): the variables are the same, no collective is needed.
        g0, d0 = make_models(config, axis_name=None)
        z = jnp.zeros((2, config.model.latent_dim), jnp.float32)
        x = jnp.zeros((2, size, size, config.data.image_shape[-1]), jnp.float32)
        g_vars = jax.jit(functools.partial(g0.init, train=False))(keys["g_init"], z)
        d_vars = jax.jit(functools.partial(d0.init, train=False))(keys["d_init"], x)
        self.initial_state = TwoPlayerState.create(
            generator=TrainState.create(
                apply_fn=self.generator.apply, params=g_vars["params"],
                batch_stats=g_vars["batch_stats"],
                tx=common.make_optimizer(config.optimizer, num_steps)),
            discriminator=TrainState.create(
                apply_fn=self.discriminator.apply, params=d_vars["params"],
                batch_stats=d_vars["batch_stats"],
                tx=common.make_optimizer(config.optimizer, num_steps)),
        )
        parallel = run.parallel
        self.train_step = parallel.compile(
            with_step_key(make_train_body(self.generator, self.discriminator, config)))
        self.sample_step = parallel.compile(make_sample_body(self.generator), donate_state=False)
        # The grid's latents are fixed for the whole run, so the grids show training progress.
        self.fixed_z = np.asarray(jax.random.normal(
            keys["fixed_z"], (config.eval.num_images, config.model.latent_dim)))

    def generate(self, device_state, z: np.ndarray) -> np.ndarray:
        """Images in [−1, 1] for global latents `z` (every process passes the same `z`)."""
        parallel = self.run.parallel
        n = len(z)
        if n % parallel.num_devices:
            raise ValueError(f"the number of images ({n}) must be divisible by the number of "
                             f"devices ({parallel.num_devices}).")
        local = n // jax.process_count()
        lo = jax.process_index() * local
        batch = parallel.shard_batch({"z": z[lo:lo + local]})
        return np.asarray(self.sample_step(device_state, batch, jax.random.key(0)))

    def load_eval_data(self) -> None:
        """GAN evaluation reads no data."""

    def evaluate(self, device_state, step: int) -> dict[str, float]:
        """A grid of samples from the fixed latents; GAN training has no test-set metric here."""
        images = self.generate(device_state, self.fixed_z)
        self.run.writer.write_grid(step, "samples", (images + 1.0) / 2.0)
        return {"eval/sample_mean": float(images.mean()), "eval/sample_std": float(images.std())}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train (resuming from ``workdir`` if it has checkpoints), evaluate, write the summary."""
    return common.train_on_images(config, workdir, Experiment, name="gan")


def sample(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Generate ``sampling.num_samples`` images from the latest checkpoint into
    ``<workdir>/samples/gan_step<step>.npz`` (uint8 ``images`` [N, H, W, C])."""
    exp = Experiment(config, common.make_run(config, workdir))
    try:
        state = exp.run.checkpointer.restore(exp.initial_state)
        step = int(state.step)
        n = config.sampling.num_samples
        chunk = config.sampling.batch_size
        key = jax.random.fold_in(exp.sample_key, step)
        device_state = exp.run.parallel.replicate(state)
        parts = [exp.generate(device_state, np.asarray(jax.random.normal(
            jax.random.fold_in(key, i), (chunk, config.model.latent_dim))))
            for i in range(-(-n // chunk))]
        images = np.concatenate(parts)[:n]
        return common.save_samples(workdir, f"gan_step{step}", images,
                                   write_png=config.sampling.write_png) | {"step": step}
    finally:
        exp.run.close()
