"""CycleGAN (unpaired translation X ↔ Y) as a family, and its step usable on its own.

Zhu et al. 2017 (arXiv:1703.10593), with the paper's roles: X = photos, Y = Monet paintings;
G: X → Y, F: Y → X; D_Y tells real y from G(x), D_X tells real x from F(y). One step updates
both generators (one optimizer over G and F) on

    L_G = LS(D_Y(G(x)), 1) + LS(D_X(F(y)), 1) + λ·L_cyc + λ_id·λ·L_id,

then both discriminators (one optimizer over D_X and D_Y) on ½[LS(D(real), 1) + LS(D(fake), 0)],
where the fakes come from a history pool of past generated images shared by all devices.
The generators optimise with the run's ``optimizer`` section, the discriminators with it as
the ``d_optimizer`` section overrides it. Images are in [−1, 1].
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxgen.families.base import (
    EvalPass,
    Family,
    Preview,
    TranslateConfig,
    check_dtype,
    compute_dtype,
    gather_replicated,
    init_variables,
    mean_over_pixels,
    player_optimizer,
    two_player_optimizers,
)
from jaxgen.math import adversarial, cycle
from jaxgen.models.cyclegan import PatchDiscriminator, ResnetGenerator
from jaxgen.training import AXIS, LossOutput, TrainState, TwoPlayerState, gradient_update
from jaxgen.training.history_pool import HistoryPool, query
from jaxgen.training.keys import split_named
from jaxgen.training.optim import OptimizerOverrides
from jaxgen.validation import check_choice, check_number

# direction -> (the generator that maps it, the one that maps back)
DIRECTIONS = {"x2y": ("G", "F"), "y2x": ("F", "G")}


def pool_across_devices(pool: HistoryPool, images: jax.Array, key: jax.Array):
    """Query one pool shared by all devices with the *global* batch of generated images.

    Every device gathers the global batch and runs the same query with the same key, so the
    pool stays identical on all devices (as one device would hold it) and each device keeps
    its own slice of the answer.
    """
    b = images.shape[0]
    pool, out = query(pool, gather_replicated(images), key)
    return pool, jax.lax.dynamic_slice_in_dim(out, jax.lax.axis_index(AXIS) * b, b)


def make_cyclegan_step(generator: ResnetGenerator, discriminator: PatchDiscriminator, *,
                       cycle_weight: float = 10.0, identity_weight: float = 0.5):
    """The per-device step ``(TwoPlayerState, {"x", "y"}, key) -> (state, metrics)``.

    The state's generator player holds ``{"G", "F"}``, its discriminator player
    ``{"D_X", "D_Y"}``, and its extras the pools ``{"x", "y"}`` (:class:`HistoryPool`).

    Args:
      generator, discriminator: the networks (one definition, two parameter sets each).
      cycle_weight: λ of the cycle-consistency L1.
      identity_weight: the identity loss's weight as a fraction of λ (0 disables it).
    """
    lam, lam_id = cycle_weight, identity_weight * cycle_weight

    def gen(params, images):  # float32 images whatever the networks' compute dtype
        return generator.apply({"params": params}, images).astype(jnp.float32)

    def dis(params, images):  # float32 scores: the losses are computed in full precision
        return discriminator.apply({"params": params}, images).astype(jnp.float32)

    def step(state: TwoPlayerState, batch, key):
        x, y = batch["x"], batch["y"]
        keys = split_named(key, ("pool_x", "pool_y"))
        d_params = state.discriminator.params

        def g_loss(p):
            fake_y, fake_x = gen(p["G"], x), gen(p["F"], y)
            adv_g = adversarial.least_squares_generator_loss(dis(d_params["D_Y"], fake_y))
            adv_f = adversarial.least_squares_generator_loss(dis(d_params["D_X"], fake_x))
            cyc = cycle.cycle_consistency_loss(x, gen(p["F"], fake_y), y, gen(p["G"], fake_x))
            loss = adv_g + adv_f + lam * cyc
            metrics = {"g_adv": adv_g.mean(), "f_adv": adv_f.mean(), "cycle_l1": cyc.mean()}
            if lam_id > 0:
                idt = cycle.identity_loss(x, gen(p["F"], x), y, gen(p["G"], y))
                loss = loss + lam_id * idt
                metrics["identity_l1"] = idt.mean()
            metrics["generator_loss"] = loss.mean()
            return LossOutput(loss=loss.mean(), metrics=metrics,
                              outputs={"x": fake_x, "y": fake_y})

        g_state, g_metrics, fakes = gradient_update(state.generator, g_loss, name="g")
        pool_x, fake_x = pool_across_devices(state.extras["x"], fakes["x"], keys["pool_x"])
        pool_y, fake_y = pool_across_devices(state.extras["y"], fakes["y"], keys["pool_y"])

        def d_loss(p):
            d_y = adversarial.least_squares_discriminator_loss(dis(p["D_Y"], y),
                                                               dis(p["D_Y"], fake_y))
            d_x = adversarial.least_squares_discriminator_loss(dis(p["D_X"], x),
                                                               dis(p["D_X"], fake_x))
            return LossOutput(loss=(d_x + d_y).mean(),
                              metrics={"d_x_loss": d_x.mean(), "d_y_loss": d_y.mean()})

        d_state, d_metrics, _ = gradient_update(state.discriminator, d_loss, name="d")
        new = state.replace(step=state.step + 1, generator=g_state, discriminator=d_state,
                            extras={"x": pool_x, "y": pool_y})
        return new, {**g_metrics, **d_metrics}

    return step


@dataclasses.dataclass(frozen=True)
class CycleGANModel:
    num_blocks: int = 9
    generator_features: int = 64
    discriminator_features: int = 64
    discriminator_layers: int = 3
    dtype: str = "float32"  # compute dtype ("bfloat16": mixed precision); params stay float32

    def __post_init__(self):
        for name in ("num_blocks", "generator_features", "discriminator_features",
                     "discriminator_layers"):
            check_number(f"model.{name}", getattr(self, name), low=1, integer=True)
        check_dtype("model.dtype", self.dtype)


@dataclasses.dataclass(frozen=True)
class CycleGANLoss:
    cycle_weight: float = 10.0  # λ
    identity_weight: float = 0.5  # × λ; 0 disables the identity loss
    pool_size: int = 50  # generated images kept per domain; 0 disables the pool

    def __post_init__(self):
        check_number("loss.cycle_weight", self.cycle_weight, low=0.0)
        check_number("loss.identity_weight", self.identity_weight, low=0.0)
        check_number("loss.pool_size", self.pool_size, low=0, integer=True)


@dataclasses.dataclass(frozen=True)
class CycleGANConfig:
    model: CycleGANModel = CycleGANModel()
    loss: CycleGANLoss = CycleGANLoss()
    translate: TranslateConfig = TranslateConfig()
    d_optimizer: OptimizerOverrides = OptimizerOverrides()  # D's departures from `optimizer`

    def __post_init__(self):
        check_choice("translate.direction", self.translate.direction, tuple(DIRECTIONS))
        self.d_optimizer.check("d_optimizer")


class CycleGAN(Family):
    """CycleGAN; directions ``"x2y"`` (G) and ``"y2x"`` (F)."""

    name = "cyclegan"
    Config = CycleGANConfig
    data_kind = "unpaired"
    directions = tuple(DIRECTIONS)

    def __init__(self, config: CycleGANConfig, *, image_shape, num_classes: int = 0):
        super().__init__(config, image_shape=image_shape, num_classes=num_classes)
        m = config.model
        dtype = compute_dtype(m.dtype)
        self.generator = ResnetGenerator(num_blocks=m.num_blocks, features=m.generator_features,
                                         out_channels=self.image_shape[-1], dtype=dtype)
        self.discriminator = PatchDiscriminator(features=m.discriminator_features,
                                                num_layers=m.discriminator_layers, dtype=dtype)
        self._step = make_cyclegan_step(self.generator, self.discriminator,
                                        cycle_weight=config.loss.cycle_weight,
                                        identity_weight=config.loss.identity_weight)

    def make_optimizers(self, optimizer, num_steps):
        return two_player_optimizers(optimizer, self.config.d_optimizer, num_steps)

    def init(self, key, tx, *, ema_decay=0.0):
        keys = split_named(key, ("G", "F", "D_X", "D_Y"))
        x = jnp.zeros((1, *self.image_shape), jnp.float32)
        g_params = {n: init_variables(self.generator, keys[n], x)["params"] for n in ("G", "F")}
        d_params = {n: init_variables(self.discriminator, keys[n], x)["params"]
                    for n in ("D_X", "D_Y")}
        pool = HistoryPool.create(pool_size=self.config.loss.pool_size,
                                  image_shape=self.image_shape, dtype=jnp.float32)
        return TwoPlayerState.create(
            generator=TrainState.create(apply_fn=self.generator.apply, params=g_params,
                                        tx=player_optimizer(tx, "generator"),
                                        ema_decay=ema_decay),
            discriminator=TrainState.create(apply_fn=self.discriminator.apply,
                                            params=d_params,
                                            tx=player_optimizer(tx, "discriminator")),
            extras={"x": pool, "y": pool})

    def train_body(self, state, batch, key):
        return self._step(state, batch, key)

    def _there_and_back(self, state, direction, a):
        p = state.generator.eval_params
        there, back = DIRECTIONS[direction]
        b = self.generator.apply({"params": p[there]}, a).astype(jnp.float32)
        return b, self.generator.apply({"params": p[back]}, b).astype(jnp.float32)

    def _cycle_pass(self, direction):
        def cycle_l1(state, batch, key):
            a = batch["image"]
            _, rec = self._there_and_back(state, direction, a)
            return {f"cycle_l1_{direction[0]}": mean_over_pixels(jnp.abs(rec - a))}

        return cycle_l1

    def eval_passes(self):
        return {f"cycle_{d[0]}": EvalPass(self._cycle_pass(d), (f"cycle_l1_{d[0]}",),
                                          domain=d[0])
                for d in self.directions}

    def _preview(self, direction):
        def rows(state, batch, key):
            a = batch["image"]
            b, c = self._there_and_back(state, direction, a)
            return jnp.stack([a, b, c], axis=1)  # (a, there(a), back(there(a)))

        return rows

    def previews(self):
        return {f"translation_{d[0]}": Preview(self._preview(d), domain=d[0])
                for d in self.directions}

    def translate_body(self, direction):
        there, _ = DIRECTIONS[direction]

        def translate(state, batch, key):
            p = state.generator.eval_params[there]
            return self.generator.apply({"params": p}, batch["image"]).astype(jnp.float32)

        return translate
