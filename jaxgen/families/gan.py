"""GANs (DCGAN) as a family, and the two-player step usable on its own.

Each training step updates the discriminator ``d_steps`` times, then the generator once, each
player with its own optimizer (Radford et al. 2016, arXiv:1511.06434). The losses come from
:mod:`jaxgen.math.adversarial` (``loss.kind``; the non-saturating generator loss by default),
optionally with the R1 penalty (Mescheder et al. 2018, arXiv:1801.04406). BatchNorm normalises
over the *global* batch (``axis_name="data"``), so any number of devices computes what one
device would. Images are in [−1, 1].
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxgen.families.base import EvalPass, Family, SamplingConfig, gather
from jaxgen.math import adversarial
from jaxgen.models.dcgan import Discriminator, Generator
from jaxgen.training import (
    AXIS,
    LossOutput,
    TrainState,
    TwoPlayerState,
    gradient_update,
    per_example_keys,
)
from jaxgen.training.keys import split_named
from jaxgen.validation import check_choice, check_number

# Losses whose discriminator output is a logit of P(real); the others output raw scores.
LOGIT_LOSSES = ("minimax", "non_saturating")


def latents(key: jax.Array, batch: int, latent_dim: int) -> jax.Array:
    """N(0, I) codes ``[batch, latent_dim]`` for this device's shard, one key per example
    (folded from its global index, so independent of the device count)."""
    return jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(per_example_keys(key, batch))


def make_dcgan_step(generator: Generator, discriminator: Discriminator, *,
                    loss_kind: str = "non_saturating", r1_weight: float = 0.0,
                    d_steps: int = 1):
    """The per-device two-player step ``(TwoPlayerState, {"image"}, key) -> (state, metrics)``.

    Usable without the runner: wrap it with ``DataParallel.compile(with_step_key(step))``.
    The networks must be built with ``axis_name="data"`` so BatchNorm's batch statistics span
    every device. Each D update draws fresh fakes (G in train mode, its running statistics
    updated as in the reference); the G update draws its own fakes and scores them with the
    updated D, whose running statistics it does not change.

    Args:
      generator, discriminator: the DCGAN networks.
      loss_kind: one of :data:`jaxgen.math.adversarial.GAN_LOSS_KINDS`.
      r1_weight: γ of the R1 penalty (γ/2)·‖∇D(x)‖² on real data; 0 disables it.
      d_steps: discriminator updates per generator update.
    """
    d_loss_fn, g_loss_fn = adversarial.get_gan_losses(loss_kind)
    score = jax.nn.sigmoid if loss_kind in LOGIT_LOSSES else (lambda s: s)

    def generate(g: TrainState, params, z):
        fake, updates = generator.apply({"params": params, **g.model_state}, z, train=True,
                                        mutable=["batch_stats"])
        return fake, updates

    def discriminate(params, model_state, x):
        logits, updates = discriminator.apply({"params": params, **model_state}, x, train=True,
                                              mutable=["batch_stats"])
        return logits, updates

    def step(state: TwoPlayerState, batch, key):
        real = batch["image"]
        b = real.shape[0]
        keys = split_named(key, ("d_z", "g_z"))
        g, d = state.generator, state.discriminator
        d_metrics = {}
        for i in range(d_steps):
            z = latents(jax.random.fold_in(keys["d_z"], i), b, generator.latent_dim)
            fake, g_updates = generate(g, g.params, z)
            fake = jax.lax.stop_gradient(fake)
            g = g.replace(model_state=g_updates)  # G ran in train mode, as in the reference

            def d_loss(params, d=d, fake=fake):
                # Real and fake pass separately, each normalised by its own batch statistics,
                # as in the DCGAN reference.
                real_logits, stats = discriminate(params, d.model_state, real)
                fake_logits, stats = discriminate(params, stats, fake)
                loss = d_loss_fn(real_logits, fake_logits)
                metrics = {"d_loss": loss.mean(), "d_real": score(real_logits).mean(),
                           "d_fake": score(fake_logits).mean()}
                if r1_weight > 0:
                    # Per-example input gradients need per-example outputs: use the running
                    # statistics, since batch statistics would couple the examples.
                    r1 = adversarial.r1_penalty(lambda x: discriminator.apply(
                        {"params": params, **d.model_state}, x, train=False), real)
                    metrics["r1"] = r1.mean()
                    loss = loss + 0.5 * r1_weight * r1
                return LossOutput(loss=loss.mean(), metrics=metrics, model_state=stats)

            d, d_metrics, _ = gradient_update(d, d_loss, name="d")

        def g_loss(params):
            fake, g_updates = generate(g, params, latents(keys["g_z"], b, generator.latent_dim))
            fake_logits, _ = discriminate(d.params, d.model_state, fake)  # D's stats unchanged
            loss = g_loss_fn(fake_logits).mean()
            return LossOutput(loss=loss, metrics={"g_loss": loss}, model_state=g_updates)

        g, g_metrics, _ = gradient_update(g, g_loss, name="g")
        new = state.replace(step=state.step + 1, generator=g, discriminator=d)
        return new, {**d_metrics, **g_metrics}

    return step


@dataclasses.dataclass(frozen=True)
class GANModel:
    latent_dim: int = 100
    generator_features: int = 64
    discriminator_features: int = 64

    def __post_init__(self):
        for name in ("latent_dim", "generator_features", "discriminator_features"):
            check_number(f"model.{name}", getattr(self, name), low=1, integer=True)


@dataclasses.dataclass(frozen=True)
class GANLoss:
    kind: str = "non_saturating"
    r1_weight: float = 0.0
    d_steps: int = 1  # discriminator updates per generator update

    def __post_init__(self):
        check_choice("loss.kind", self.kind, adversarial.GAN_LOSS_KINDS)
        check_number("loss.r1_weight", self.r1_weight, low=0.0)
        check_number("loss.d_steps", self.d_steps, low=1, integer=True)


@dataclasses.dataclass(frozen=True)
class GANConfig:
    model: GANModel = GANModel()
    loss: GANLoss = GANLoss()
    sampling: SamplingConfig = SamplingConfig()


class GAN(Family):
    """DCGAN; sampler ``"prior"`` (z ~ N(0, I), G in eval mode)."""

    name = "gan"
    Config = GANConfig
    samplers = ("prior",)

    def __init__(self, config: GANConfig, *, image_shape):
        super().__init__(config, image_shape=image_shape)
        size, _, channels = self.image_shape
        m = config.model
        self.generator = Generator(latent_dim=m.latent_dim, features=m.generator_features,
                                   channels=channels, image_size=size, axis_name=AXIS)
        self.discriminator = Discriminator(features=m.discriminator_features, image_size=size,
                                           axis_name=AXIS)
        self._step = make_dcgan_step(self.generator, self.discriminator,
                                     loss_kind=config.loss.kind,
                                     r1_weight=config.loss.r1_weight,
                                     d_steps=config.loss.d_steps)

    def init(self, key, tx, *, ema_decay=0.0):
        keys = split_named(key, ("g", "d"))
        # Init unmapped (axis_name None): the variables are the same, no collective is needed.
        g0 = self.generator.clone(axis_name=None)
        d0 = self.discriminator.clone(axis_name=None)
        z = jnp.zeros((2, self.config.model.latent_dim), jnp.float32)
        x = jnp.zeros((2, *self.image_shape), jnp.float32)
        g_vars = dict(jax.jit(lambda k: g0.init(k, z, train=False))(keys["g"]))
        d_vars = dict(jax.jit(lambda k: d0.init(k, x, train=False))(keys["d"]))
        player = lambda model, v, **kw: TrainState.create(  # noqa: E731
            apply_fn=model.apply, params=v.pop("params"), model_state=v, tx=tx, **kw)
        return TwoPlayerState.create(
            generator=player(self.generator, g_vars, ema_decay=ema_decay),
            discriminator=player(self.discriminator, d_vars))

    def train_body(self, state, batch, key):
        return self._step(state, batch, key)

    def _test(self, state, batch, key):
        """D on real test images and on as many fresh fakes (both players in eval mode)."""
        g, d = state.generator, state.discriminator
        real = batch["image"]
        z = latents(key, real.shape[0], self.config.model.latent_dim)
        fake = self.generator.apply({"params": g.eval_params, **g.model_state}, z, train=False)
        disc = lambda x: self.discriminator.apply(  # noqa: E731
            {"params": d.params, **d.model_state}, x, train=False)
        real_logits, fake_logits = disc(real), disc(fake)
        d_loss_fn, g_loss_fn = adversarial.get_gan_losses(self.config.loss.kind)
        score = jax.nn.sigmoid if self.config.loss.kind in LOGIT_LOSSES else (lambda s: s)
        return {"d_loss": d_loss_fn(real_logits, fake_logits), "g_loss": g_loss_fn(fake_logits),
                "d_real": score(real_logits), "d_fake": score(fake_logits)}

    def eval_passes(self):
        return {"test": EvalPass(self._test, ("d_loss", "g_loss", "d_real", "d_fake"))}

    def sample_inputs(self, key, num):
        return {"z": jax.random.normal(key, (num, self.config.model.latent_dim))}

    def sample_body(self, sampler):
        check_choice("sampler", sampler, self.samplers)

        def sample(state, batch, key):
            g = state.generator
            return gather(self.generator.apply({"params": g.eval_params, **g.model_state},
                                               batch["z"], train=False))

        return sample
