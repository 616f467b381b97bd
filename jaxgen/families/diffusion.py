"""Denoising diffusion (DDPM training, DDPM and DDIM sampling, bits/dim) as a family.

Training minimises L_simple = E‖ε − ε_θ(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t)‖² (Ho et al. 2020,
arXiv:2006.11239) with t uniform; evaluation reports the variational bound in bits/dim;
sampling runs ancestral DDPM (all T steps) or DDIM (a step subsequence, Song et al. 2021,
arXiv:2010.02502) from the EMA parameters when they are kept. Images are in [−1, 1].
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxgen.families import diffusion_samplers as samplers_lib
from jaxgen.families.base import (
    EvalPass,
    Family,
    SamplingConfig,
    check_dtype,
    compute_dtype,
    init_variables,
)
from jaxgen.math import diffusion
from jaxgen.math.diffusion.reverse import VARIANCE_KINDS
from jaxgen.math.diffusion.schedules import SCHEDULE_KINDS
from jaxgen.models.unet import UNet
from jaxgen.training import LossOutput, TrainState, gradient_update, per_example_keys
from jaxgen.training.keys import AXIS, split_named
from jaxgen.validation import ConfigError, check_choice, check_number


@dataclasses.dataclass(frozen=True)
class DiffusionProcess:
    schedule: str = "linear"
    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    cosine_s: float = 0.008
    max_beta: float = 0.999

    def __post_init__(self):
        check_choice("diffusion.schedule", self.schedule, SCHEDULE_KINDS)
        check_number("diffusion.num_timesteps", self.num_timesteps, low=1, integer=True)
        check_number("diffusion.beta_start", self.beta_start, low=0.0, high=1.0, low_open=True,
                     high_open=True)
        check_number("diffusion.beta_end", self.beta_end, low=self.beta_start, high=1.0,
                     high_open=True)
        check_number("diffusion.cosine_s", self.cosine_s, low=0.0)
        check_number("diffusion.max_beta", self.max_beta, low=0.0, high=1.0, low_open=True,
                     high_open=True)


@dataclasses.dataclass(frozen=True)
class DiffusionModel:
    ch: int = 32
    ch_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = (8,)
    dropout: float = 0.1
    num_groups: int = 8
    dtype: str = "float32"
    class_conditional: bool = False  # a class embedding (+ a null class) in the UNet

    def __post_init__(self):
        check_number("model.ch", self.ch, low=1, integer=True)
        check_number("model.num_res_blocks", self.num_res_blocks, low=1, integer=True)
        check_number("model.dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        check_number("model.num_groups", self.num_groups, low=1, integer=True)
        check_dtype("model.dtype", self.dtype)
        if not self.ch_mult:
            check_choice("model.ch_mult", self.ch_mult, ["a non-empty tuple"])


@dataclasses.dataclass(frozen=True)
class DiffusionSampling(SamplingConfig):
    sampler: str = "ddim"  # --mode=sample: a registered sampler (diffusion_samplers.names())
    batch_size: int = 16
    clip_x0: bool = True  # clip the predicted x₀ to [−1, 1] at every step (DDPM, DDIM)
    # Classifier-free guidance weight w ≥ 0 (a conditional model): ε̃ = (1+w)·ε(c) − w·ε(∅);
    # the "guidance scale" of other codebases is s = 1 + w (diffusion_samplers docstring).
    guidance: float = 0.0
    # Each registered sampler's own settings (a new sampler adds its section here).
    ddim: samplers_lib.DDIMSettings = samplers_lib.DDIMSettings()
    ddpm: samplers_lib.DDPMSettings = samplers_lib.DDPMSettings()
    dpm_solver: samplers_lib.DPMSolverSettings = samplers_lib.DPMSolverSettings()
    heun: samplers_lib.HeunSettings = samplers_lib.HeunSettings()

    def __post_init__(self):
        super().__post_init__()
        check_choice("sampling.sampler", self.sampler, samplers_lib.names())
        for name in self.grid_samplers:
            check_choice("sampling.grid_samplers", name, samplers_lib.names())
        check_number("sampling.guidance", self.guidance, low=0.0)


@dataclasses.dataclass(frozen=True)
class DiffusionLoss:
    # Label dropout of a conditional model: the share of training examples whose label is
    # replaced by the null class ∅, so one network learns ε(x, t, c) and ε(x, t, ∅).
    p_uncond: float = 0.1

    def __post_init__(self):
        check_number("loss.p_uncond", self.p_uncond, low=0.0, high=1.0)


@dataclasses.dataclass(frozen=True)
class DiffusionEval:
    bpd_max_examples: int = 200  # global; 0: the whole test split
    bpd_timesteps: int = 50  # Monte Carlo over t (unbiased); 0: all T terms (exact sum)
    bpd_variance: str = "small"  # the reverse variance the bound is computed with (β̃_t or β_t)

    def __post_init__(self):
        check_number("eval.bpd_max_examples", self.bpd_max_examples, low=0, integer=True)
        check_number("eval.bpd_timesteps", self.bpd_timesteps, low=0, integer=True)
        check_choice("eval.bpd_variance", self.bpd_variance, VARIANCE_KINDS)


@dataclasses.dataclass(frozen=True)
class DiffusionData:
    random_flip: bool = False  # horizontal flips in training


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    diffusion: DiffusionProcess = DiffusionProcess()
    model: DiffusionModel = DiffusionModel()
    sampling: DiffusionSampling = DiffusionSampling()
    eval: DiffusionEval = DiffusionEval()
    data: DiffusionData = DiffusionData()
    loss: DiffusionLoss = DiffusionLoss()

    def __post_init__(self):
        used = {self.sampling.sampler, *(self.sampling.grid_samplers or
                                          samplers_lib.names())}
        for name in sorted(used & {"ddim", "dpm_solver", "heun"}):  # the samplers that run
            steps = getattr(self.sampling, name).steps
            if steps > self.diffusion.num_timesteps:
                check_number(f"sampling.{name}.steps", steps, low=1,
                             high=self.diffusion.num_timesteps, integer=True)
        if self.sampling.guidance and not self.model.class_conditional:
            raise ConfigError(f"sampling.guidance={self.sampling.guidance} needs a class-"
                              "conditional model (model.class_conditional=True); this one is "
                              "unconditional.")
        if self.eval.bpd_timesteps > self.diffusion.num_timesteps:
            check_number("eval.bpd_timesteps", self.eval.bpd_timesteps, low=0,
                         high=self.diffusion.num_timesteps, integer=True)


def drop_labels(key: jax.Array, labels: jax.Array, p: float, *, null_label: int) -> jax.Array:
    """Classifier-free guidance's label dropout: each label becomes the null class ∅
    (`null_label`) with probability `p`, drawn per example (from the example's global index,
    so independent of the device count); int32 ``[b]``."""
    drop = jax.vmap(lambda k: jax.random.bernoulli(k, p))(per_example_keys(key, labels.shape[0]))
    return jnp.where(drop, null_label, labels.astype(jnp.int32))


class Diffusion(Family):
    """DDPM with the paper's UNet, optionally class-conditional with classifier-free guidance;
    every registered sampler (:mod:`jaxgen.families.diffusion_samplers`)."""

    name = "diffusion"
    Config = DiffusionConfig
    samplers = samplers_lib.names()

    def __init__(self, config: DiffusionConfig, *, image_shape, num_classes: int = 0):
        super().__init__(config, image_shape=image_shape, num_classes=num_classes)
        d, m = config.diffusion, config.model
        self.schedule = diffusion.make_schedule(
            d.schedule, num_timesteps=d.num_timesteps, beta_start=d.beta_start,
            beta_end=d.beta_end, cosine_s=d.cosine_s, max_beta=d.max_beta)
        self.condition_on_classes(m.class_conditional)
        self.model = UNet(ch=m.ch, ch_mult=m.ch_mult, num_res_blocks=m.num_res_blocks,
                          attn_resolutions=m.attn_resolutions, dropout=m.dropout,
                          num_groups=m.num_groups, dtype=compute_dtype(m.dtype),
                          num_classes=self.num_classes if self.conditional else 0,
                          axis_name=AXIS)

    def init(self, key, tx, *, ema_decay=0.0):
        x = jnp.zeros((1, *self.image_shape), jnp.float32)
        t = jnp.zeros((1,), jnp.int32)
        y = jnp.zeros((1,), jnp.int32) if self.conditional else None
        params = init_variables(self.model, key, x, t, y, train=False)["params"]
        return TrainState.create(apply_fn=self.model.apply, params=params, tx=tx,
                                 ema_decay=ema_decay)

    def train_body(self, state, batch, key):
        """t, ε, flips, label dropout and the dropout masks per example (from each example's
        global index: 1 and N devices take the same step), L_simple, one update."""
        x0 = batch["image"]
        b = x0.shape[0]
        keys = split_named(key, ("t", "noise", "dropout", "flip", "uncond"))
        y = None
        if self.conditional:
            y = drop_labels(keys["uncond"], batch["label"], self.config.loss.p_uncond,
                            null_label=self.num_classes)
        if self.config.data.random_flip:
            flip = jax.vmap(jax.random.bernoulli)(per_example_keys(keys["flip"], b))
            x0 = jnp.where(flip[:, None, None, None], x0[:, :, ::-1], x0)
        num_t = self.schedule.num_timesteps
        t = jax.vmap(lambda k: jax.random.randint(k, (), 0, num_t))(
            per_example_keys(keys["t"], b))
        noise = jax.vmap(lambda k: jax.random.normal(k, x0.shape[1:], x0.dtype))(
            per_example_keys(keys["noise"], b))
        x_t = diffusion.q_sample_from_noise(self.schedule, x0, t, noise)

        def loss_fn(params):
            eps = self.model.apply({"params": params}, x_t, t, y, train=True,
                                   rngs={"dropout": keys["dropout"]})
            loss = diffusion.l_simple(noise, eps).mean()
            return LossOutput(loss=loss, metrics={"loss": loss})

        state, metrics, _ = gradient_update(state, loss_fn)
        return state, metrics

    def eps_fn(self, params, labels=None, guidance: float = 0.0):
        """``(x_t, t) -> ε_θ(x_t, t[, c])`` in evaluation mode: unconditional, conditional on
        `labels` (int [B]; a conditional model without labels predicts ε(x, t, ∅)), or guided
        with weight `guidance` (:func:`diffusion_samplers.guided_eps_fn`)."""
        def eps_model(x, t, y):
            return self.model.apply({"params": params}, x, t, y, train=False)

        if self.conditional and labels is None:  # ε(x, t, ∅)
            return lambda x, t: eps_model(x, t, jnp.full((x.shape[0],), self.num_classes,
                                                         jnp.int32))
        return samplers_lib.guided_eps_fn(eps_model, labels, self.num_classes, guidance)

    def _bpd(self, state, batch, key):
        """Bits/dim per example; each example's noise and timesteps come from its own key (its
        global index), so the estimate does not depend on the device count. A conditional
        model is scored with the null class (its unconditional ε(x, t, ∅))."""
        eps_fn = self.eps_fn(state.eval_params)

        def one(x, k):  # vmapped: eps_fn still sees the whole shard at once
            terms = diffusion.bits_per_dim(
                eps_fn, self.schedule, x[None], k, variance=self.config.eval.bpd_variance,
                num_timesteps_sampled=self.config.eval.bpd_timesteps or None)
            return {n: v[0] for n, v in terms.items()}

        x = batch["image"]
        terms = jax.vmap(one)(x, per_example_keys(key, x.shape[0]))
        return {("bpd" if k == "total" else f"bpd_{k}"): v for k, v in terms.items()}

    def eval_passes(self):
        names = ("bpd", "bpd_prior", "bpd_decoder", "bpd_diffusion")
        return {"bpd": EvalPass(self._bpd, names, max_examples=self.config.eval.bpd_max_examples)}

    def sample_inputs(self, key, num):
        return {"x_T": jax.random.normal(key, (num, *self.image_shape))}

    def sample_body(self, sampler):
        """x_T (and the labels of a conditional model) → images. x_T and every example's
        sampler noise come from keys per example, so the images do not depend on the device
        count, for every sampler."""
        check_choice("sampler", sampler, samplers_lib.names())
        s = self.config.sampling
        run = samplers_lib.REGISTRY[sampler].run
        settings = getattr(s, sampler)

        def sample(state, batch, key):
            labels = batch.get("label") if self.conditional else None
            eps_fn = self.eps_fn(state.eval_params, labels, s.guidance)
            x_T = batch["x_T"]
            return run(eps_fn, self.schedule, x_T, per_example_keys(key, x_T.shape[0]),
                       settings, s.clip_x0)

        sample.__name__ = f"sample_{sampler}"
        return sample
