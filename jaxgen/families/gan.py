"""GANs (DCGAN) as a family, and the two-player step usable on its own.

Each training step updates the discriminator ``d_steps`` times, then the generator once, each
player with its own optimizer (Radford et al. 2016, arXiv:1511.06434): the run's ``optimizer``
section, which the ``d_optimizer`` section overrides for D (e.g. the two time-scale rates of
Heusel et al. 2017, arXiv:1706.08500). Both schedules count the run's steps, so D's rate at
step ``s`` is its schedule at ``s`` whatever ``d_steps`` is. The losses come from
:mod:`jaxgen.math.adversarial` (``loss.kind``; the non-saturating generator loss by default),
optionally with the R1 penalty (Mescheder et al. 2018, arXiv:1801.04406). BatchNorm normalises
over the *global* batch (``axis_name="data"``), so any number of devices computes what one
device would. Images are in [−1, 1].
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from jaxgen.families.base import (
    EvalPass,
    Family,
    SamplingConfig,
    check_dtype,
    compute_dtype,
    init_variables,
    player_optimizer,
    two_player_optimizers,
)
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
from jaxgen.training.optim import OptimizerOverrides
from jaxgen.validation import check_choice, check_number

# Losses whose discriminator output is a logit of P(real); the others output raw scores.
LOGIT_LOSSES = ("minimax", "non_saturating")


def latents(key: jax.Array, batch: int, latent_dim: int) -> jax.Array:
    """N(0, I) codes ``[batch, latent_dim]`` for this device's shard, one key per example
    (folded from its global index, so independent of the device count)."""
    return jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(per_example_keys(key, batch))


def discriminator_score(loss_kind: str, outputs: jax.Array) -> jax.Array:
    """What D's outputs say about its inputs, for the metrics: P(real) = σ(logit) under the
    logit losses (:data:`LOGIT_LOSSES`), the raw score under the others."""
    return jax.nn.sigmoid(outputs) if loss_kind in LOGIT_LOSSES else outputs


def labels_kwargs(batch, conditional: bool) -> dict:
    """The networks' label argument: ``{"y": batch["label"]}`` for class-conditional networks,
    nothing otherwise (the unconditional calls are unchanged)."""
    return {"y": batch["label"]} if conditional else {}


def make_dcgan_step(generator: Generator, discriminator: Discriminator, *,
                    loss_kind: str = "non_saturating", r1_weight: float = 0.0,
                    d_steps: int = 1):
    """The per-device two-player step ``(TwoPlayerState, {"image"}, key) -> (state, metrics)``.

    Class-conditional networks (built with ``num_classes > 0``, both the same) need the
    batch's labels, ``{"image", "label"}``: D scores the real images with their labels, and
    every fake is generated for the label of a real example of the batch (the fakes' classes
    follow the data's) and scored with it; R1 is taken on the real images with their labels.

    Usable without the runner: wrap it with ``DataParallel.compile(with_step_key(step))``.
    The networks must be built with ``axis_name="data"`` so BatchNorm's batch statistics span
    every device. Each D update draws fresh fakes (G in train mode, its running statistics
    updated as in the reference); the G update draws its own fakes and scores them with the
    updated D, whose running statistics it does not change. Several D updates are one
    ``lax.scan`` (compiled once, whatever ``d_steps``); D's metrics are its last update's.

    Args:
      generator, discriminator: the DCGAN networks.
      loss_kind: one of :data:`jaxgen.math.adversarial.GAN_LOSS_KINDS`.
      r1_weight: γ of the R1 penalty (γ/2)·‖∇D(x)‖² on real data; 0 disables it.
      d_steps: discriminator updates per generator update (give D's optimizer
        ``updates_per_step=d_steps`` so that its schedule counts steps, as
        :func:`jaxgen.families.base.two_player_optimizers` does).
    """
    d_loss_fn, g_loss_fn = adversarial.get_gan_losses(loss_kind)
    num_classes = getattr(generator, "num_classes", 0)
    if getattr(discriminator, "num_classes", 0) != num_classes:
        raise ValueError(f"the generator has num_classes={num_classes} but the discriminator "
                         f"{discriminator.num_classes}; build both with the same.")
    conditional = num_classes > 0

    def generate(g: TrainState, params, z, y):
        """G in train mode: ``(float32 images, G's updated batch statistics)``."""
        fake, stats = generator.apply(g.variables(params), z, **y, train=True,
                                      mutable=["batch_stats"])
        return fake.astype(jnp.float32), stats

    def discriminate(d: TrainState, params, x, y):
        """D in train mode: ``(outputs, D's updated batch statistics)``."""
        return discriminator.apply(d.variables(params), x, **y, train=True,
                                   mutable=["batch_stats"])

    def d_loss(d: TrainState, real, fake, y):
        def loss_fn(params):
            # Real and fake pass separately, each normalised by its own batch statistics, as
            # in the DCGAN reference; the running statistics go through both passes.
            real_out, stats = discriminate(d, params, real, y)
            fake_out, stats = discriminate(d.replace(model_state=stats), params, fake, y)
            loss = d_loss_fn(real_out, fake_out)
            metrics = {"d_loss": loss.mean(),
                       "d_real": discriminator_score(loss_kind, real_out).mean(),
                       "d_fake": discriminator_score(loss_kind, fake_out).mean()}
            if r1_weight > 0:
                # Per-example input gradients need per-example outputs: use the running
                # statistics, since batch statistics would couple the examples.
                r1 = adversarial.r1_penalty(
                    lambda x: discriminator.apply(d.variables(params), x, **y, train=False),
                    real)
                metrics["r1"] = r1.mean()
                loss = loss + 0.5 * r1_weight * r1
            return LossOutput(loss=loss.mean(), metrics=metrics, model_state=stats)

        return loss_fn

    def g_loss(g: TrainState, d: TrainState, z, y):
        def loss_fn(params):
            fake, g_stats = generate(g, params, z, y)
            fake_out, _ = discriminate(d, d.params, fake, y)  # D's running statistics unchanged
            loss = g_loss_fn(fake_out).mean()
            return LossOutput(loss=loss, metrics={"g_loss": loss}, model_state=g_stats)

        return loss_fn

    def step(state: TwoPlayerState, batch, key):
        real = batch["image"]
        b = real.shape[0]
        y = labels_kwargs(batch, conditional)  # the fakes take the real batch's labels
        keys = split_named(key, ("d_z", "g_z"))

        def d_update(players, i):
            """The i-th D update on fresh fakes; G ran in train mode, as in the reference."""
            g, d = players
            z = latents(jax.random.fold_in(keys["d_z"], i), b, generator.latent_dim)
            fake, g_stats = generate(g, g.params, z, y)
            d, metrics, _ = gradient_update(d, d_loss(d, real, jax.lax.stop_gradient(fake), y),
                                            name="d")
            return (g.replace(model_state=g_stats), d), metrics

        players = (state.generator, state.discriminator)
        if d_steps == 1:  # no loop in the common case: XLA fuses across the whole step
            (g, d), d_metrics = d_update(players, 0)
        else:  # one compiled update, looped
            (g, d), d_metrics = jax.lax.scan(d_update, players, jnp.arange(d_steps))
            d_metrics = jax.tree.map(lambda m: m[-1], d_metrics)
        z = latents(keys["g_z"], b, generator.latent_dim)
        g, g_metrics, _ = gradient_update(g, g_loss(g, d, z, y), name="g")
        new = state.replace(step=state.step + 1, generator=g, discriminator=d)
        return new, {**d_metrics, **g_metrics}

    return step


@dataclasses.dataclass(frozen=True)
class GANModel:
    latent_dim: int = 100
    generator_features: int = 64
    discriminator_features: int = 64
    # Condition on the data's classes: a conditional-BatchNorm G and a projection D, the
    # fakes drawn for the real batch's labels; sampling reads the labels asked for.
    class_conditional: bool = False
    dtype: str = "float32"  # compute dtype ("bfloat16": mixed precision); params stay float32

    def __post_init__(self):
        for name in ("latent_dim", "generator_features", "discriminator_features"):
            check_number(f"model.{name}", getattr(self, name), low=1, integer=True)
        check_dtype("model.dtype", self.dtype)


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
    d_optimizer: OptimizerOverrides = OptimizerOverrides()  # D's departures from `optimizer`

    def __post_init__(self):
        self.d_optimizer.check("d_optimizer")


@functools.partial(jax.jit, static_argnums=0)
def init_with_labels(module, key: jax.Array, x: jax.Array, y: jax.Array) -> dict:
    """A conditional network's variables, ``module.init(key, x, y=y, train=False)``, compiled
    once per module and shapes (as :func:`jaxgen.families.base.init_variables`, whose inputs
    are positional: the DCGAN networks take their labels by keyword)."""
    return dict(module.init(key, x, y=y, train=False))


class GAN(Family):
    """DCGAN, optionally class-conditional (``model.class_conditional``); sampler ``"prior"``
    (z ~ N(0, I), G in eval mode, for ``batch["label"]`` when conditional)."""

    name = "gan"
    Config = GANConfig
    samplers = ("prior",)

    def __init__(self, config: GANConfig, *, image_shape, num_classes: int = 0):
        super().__init__(config, image_shape=image_shape, num_classes=num_classes)
        size, _, channels = self.image_shape
        m = config.model
        self.condition_on_classes(m.class_conditional)
        k = self.num_classes if self.conditional else 0
        dtype = compute_dtype(m.dtype)
        self.generator = Generator(latent_dim=m.latent_dim, features=m.generator_features,
                                   channels=channels, image_size=size, axis_name=AXIS,
                                   num_classes=k, dtype=dtype)
        self.discriminator = Discriminator(features=m.discriminator_features, image_size=size,
                                           axis_name=AXIS, num_classes=k, dtype=dtype)
        self._step = make_dcgan_step(self.generator, self.discriminator,
                                     loss_kind=config.loss.kind,
                                     r1_weight=config.loss.r1_weight,
                                     d_steps=config.loss.d_steps)

    def make_optimizers(self, optimizer, num_steps):
        return two_player_optimizers(optimizer, self.config.d_optimizer, num_steps,
                                     d_updates_per_step=self.config.loss.d_steps)

    def init(self, key, tx, *, ema_decay=0.0):
        keys = split_named(key, ("g", "d"))
        z = jnp.zeros((2, self.config.model.latent_dim), jnp.float32)
        x = jnp.zeros((2, *self.image_shape), jnp.float32)
        # Init unmapped (axis_name None): the variables are the same, no collective is needed.
        g_net = self.generator.clone(axis_name=None)
        d_net = self.discriminator.clone(axis_name=None)
        if self.conditional:
            y = jnp.zeros((2,), jnp.int32)
            g_vars = init_with_labels(g_net, keys["g"], z, y)
            d_vars = init_with_labels(d_net, keys["d"], x, y)
        else:
            g_vars = init_variables(g_net, keys["g"], z, train=False)
            d_vars = init_variables(d_net, keys["d"], x, train=False)

        def player(name, model, variables, **kwargs):
            return TrainState.create(apply_fn=model.apply, params=variables.pop("params"),
                                     model_state=variables, tx=player_optimizer(tx, name),
                                     **kwargs)

        return TwoPlayerState.create(
            generator=player("generator", self.generator, g_vars, ema_decay=ema_decay),
            discriminator=player("discriminator", self.discriminator, d_vars))

    def train_body(self, state, batch, key):
        return self._step(state, batch, key)

    def _test(self, state, batch, key):
        """D on real test images and on as many fresh fakes (both players in eval mode); a
        conditional GAN generates the fakes for the real images' labels and D scores both
        with them."""
        g, d = state.generator, state.discriminator
        kind = self.config.loss.kind
        real = batch["image"]
        y = labels_kwargs(batch, self.conditional)
        z = latents(key, real.shape[0], self.config.model.latent_dim)
        fake = self.generator.apply(g.variables(g.eval_params), z, **y, train=False
                                    ).astype(jnp.float32)

        def discriminate(x):
            return self.discriminator.apply(d.variables(), x, **y, train=False)

        real_out, fake_out = discriminate(real), discriminate(fake)
        d_loss_fn, g_loss_fn = adversarial.get_gan_losses(kind)
        return {"d_loss": d_loss_fn(real_out, fake_out), "g_loss": g_loss_fn(fake_out),
                "d_real": discriminator_score(kind, real_out),
                "d_fake": discriminator_score(kind, fake_out)}

    def eval_passes(self):
        return {"test": EvalPass(self._test, ("d_loss", "g_loss", "d_real", "d_fake"))}

    def sample_inputs(self, key, num):
        return {"z": jax.random.normal(key, (num, self.config.model.latent_dim))}

    def sample_body(self, sampler):
        check_choice("sampler", sampler, self.samplers)

        def sample(state, batch, key):
            g = state.generator
            return self.generator.apply(g.variables(g.eval_params), batch["z"],
                                        **labels_kwargs(batch, self.conditional), train=False
                                        ).astype(jnp.float32)

        return sample
