"""DDPM on images: ``train_and_evaluate``, ``evaluate_checkpoint``, ``sample``.

Training minimises L_simple = E‖ε − ε_θ(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t)‖² (Ho et al. 2020,
arXiv:2006.11239) with t uniform; evaluation reports the variational bound in bits/dim on a test
subset and writes sample grids from ancestral DDPM (all T steps) and DDIM (a short step
subsequence, Song et al. 2021, arXiv:2010.02502), from the EMA parameters when kept.

Fashion-MNIST's 28×28 images are zero-padded to 32×32 (their background is already 0, so no
pixel is resampled) and scaled to [−1, 1]; bits/dim are per dimension of the padded image.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxgen.data import pipeline
from jaxgen.math import diffusion
from jaxgen.models.unet import UNet
from jaxgen.training import (
    TrainState,
    gradient_update,
    per_example_keys,
    split_named,
    with_step_key,
)

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
SAMPLERS = ("ddpm", "ddim")


def make_schedule(config: ml_collections.ConfigDict) -> diffusion.Schedule:
    d = config.diffusion
    return diffusion.make_schedule(
        d.schedule, num_timesteps=d.num_timesteps, beta_start=d.beta_start, beta_end=d.beta_end,
        cosine_s=d.cosine_s, max_beta=d.max_beta,
    )


def make_model(config: ml_collections.ConfigDict) -> UNet:
    m = config.model
    if m.dtype not in DTYPES:
        raise ValueError(f"unknown model.dtype {m.dtype!r}; choose one of {list(DTYPES)}.")
    return UNet(ch=m.ch, ch_mult=tuple(m.ch_mult), num_res_blocks=m.num_res_blocks,
                attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout,
                num_groups=m.num_groups, dtype=DTYPES[m.dtype])


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
    return (config.data.image_size, config.data.image_size, config.data.image_shape[-1])


def eval_params(state: TrainState):
    """The parameters used for evaluation and sampling: the EMA when kept."""
    return state.ema_params if state.ema_params is not None else state.params


def device_key(key: jax.Array) -> jax.Array:
    """A key distinct on each device (for draws whose shape is per device, e.g. dropout)."""
    return jax.random.fold_in(key, jax.lax.axis_index("data"))


def make_train_body(model: UNet, schedule: diffusion.Schedule, *, random_flip: bool = False):
    """Per-device step: t and ε per example (device-count invariant), L_simple, one update."""
    num_t = schedule.num_timesteps

    def train_step(state, batch, key):
        x0 = batch["image"]
        b = x0.shape[0]
        keys = split_named(key, ("t", "noise", "dropout", "flip"))
        if random_flip:  # horizontal flips, drawn per example like t and ε
            flip = jax.vmap(jax.random.bernoulli)(per_example_keys(keys["flip"], b))
            x0 = jnp.where(flip[:, None, None, None], x0[:, :, ::-1], x0)
        t = jax.vmap(lambda k: jax.random.randint(k, (), 0, num_t))(
            per_example_keys(keys["t"], b))
        noise = jax.vmap(lambda k: jax.random.normal(k, x0.shape[1:], x0.dtype))(
            per_example_keys(keys["noise"], b))
        x_t = diffusion.q_sample_from_noise(schedule, x0, t, noise)

        def loss_fn(params):
            eps = model.apply({"params": params}, x_t, t, train=True,
                              rngs={"dropout": device_key(keys["dropout"])})
            loss = diffusion.l_simple(noise, eps).mean()
            return loss, {"loss": loss}

        state, metrics, _ = gradient_update(state, loss_fn)
        return state, metrics

    return train_step


def make_bpd_body(model: UNet, schedule: diffusion.Schedule, config: ml_collections.ConfigDict):
    """Per-device eval body: masked sums of the bits/dim terms and the example count."""
    num_t = config.eval.bpd_timesteps or None

    def bpd_step(state, batch, key):
        params = eval_params(state)

        def eps_fn(x, t):
            return model.apply({"params": params}, x, t, train=False)

        terms = diffusion.bits_per_dim(
            eps_fn, schedule, batch["image"], device_key(key),
            variance=config.sampling.variance, num_timesteps_sampled=num_t,
        )
        mask = batch["mask"]
        sums = {k: jnp.sum(v * mask) for k, v in terms.items()}
        sums["count"] = jnp.sum(mask)
        return jax.lax.psum(sums, "data")

    return bpd_step


def make_sample_body(model: UNet, schedule: diffusion.Schedule,
                     sampling: ml_collections.ConfigDict, sampler: str):
    """Per-device body mapping noise ``batch["x_T"]`` to images; returns the global batch."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}.")

    def sample_step(state, batch, key):
        params = eval_params(state)

        def eps_fn(x, t):
            return model.apply({"params": params}, x, t, train=False)

        key = device_key(key)
        if sampler == "ddpm":
            x = diffusion.ddpm_sample(eps_fn, schedule, batch["x_T"], key,
                                      variance=sampling.variance, clip_x0=sampling.clip_x0)
        else:
            x = diffusion.ddim_sample(eps_fn, schedule, batch["x_T"], key,
                                      num_steps=sampling.ddim_steps, eta=sampling.ddim_eta,
                                      clip_x0=sampling.clip_x0)
        return jax.lax.all_gather(x, "data", tiled=True)

    sample_step.__name__ = f"sample_{sampler}"
    return sample_step


class Experiment:
    """Everything one diffusion run needs, built from a config."""

    def __init__(self, config: ml_collections.ConfigDict, run: common.Run, num_steps: int = 0):
        self.config = config
        self.run = run
        self.schedule = make_schedule(config)
        self.model = make_model(config)
        self.shape = image_shape(config)
        keys = split_named(jax.random.key(config.seed), ("init", "train", "eval", "sample"))
        self.train_key, self.eval_key, self.sample_key = keys["train"], keys["eval"], keys["sample"]
        x = jnp.zeros((1, *self.shape), jnp.float32)
        t = jnp.zeros((1,), jnp.int32)
        params = jax.jit(functools.partial(self.model.init, train=False))(keys["init"], x, t)
        self.initial_state = TrainState.create(
            apply_fn=self.model.apply, params=params["params"],
            tx=common.make_optimizer(config.optimizer, num_steps),
            ema_decay=config.optimizer.ema_decay,
        )
        parallel = self.run.parallel
        self.train_step = parallel.compile(with_step_key(make_train_body(
            self.model, self.schedule, random_flip=config.data.random_flip)))
        self.bpd_step = parallel.compile(make_bpd_body(self.model, self.schedule, config),
                                         donate_state=False)
        self.sample_steps = {
            s: parallel.compile(make_sample_body(self.model, self.schedule, config.sampling, s),
                                donate_state=False)
            for s in SAMPLERS
        }
        self.preprocess = pipeline.padded_symmetric(config.data.image_size)

    @functools.cached_property
    def test_shards(self) -> common.Shards:
        return common.load_shards(self.config.data, "test", seed=self.config.seed)

    def generate(self, device_state, sampler: str, num_images: int, key: jax.Array
                 ) -> np.ndarray:
        """``num_images`` samples in [−1, 1] (NHWC).

        Noise comes in fixed-size global chunks (``sampling.batch_size``); every process draws
        the same global x_T from `key` and passes its own slice, so x_T does not depend on the
        number of devices or processes, nor does a deterministic sampler's output (DDIM, η = 0;
        tested). The per-step noise of DDPM and DDIM with η > 0 is drawn per device.
        """
        parallel = self.run.parallel
        chunk = self.config.sampling.batch_size
        if chunk % parallel.num_devices:
            raise ValueError(f"sampling.batch_size ({chunk}) must be divisible by the number "
                             f"of devices ({parallel.num_devices}).")
        local = chunk // jax.process_count()
        lo = jax.process_index() * local
        out = []
        for i in range(-(-num_images // chunk)):
            x_t = jax.random.normal(jax.random.fold_in(key, i), (chunk, *self.shape))
            batch = {"x_T": np.asarray(x_t)[lo:lo + local]}
            out.append(np.asarray(self.sample_steps[sampler](
                device_state, parallel.shard_batch(batch), jax.random.fold_in(key, i))))
        return np.concatenate(out)[:num_images]

    def load_eval_data(self) -> None:
        """Read the test split now (before training starts)."""
        if self.config.eval.bpd_max_examples != 0:
            _ = self.test_shards

    def evaluate(self, device_state, step: int) -> dict[str, float]:
        """Bits/dim on a test subset, and sample grids from both samplers; keys ``eval/*``."""
        cfg = self.config.eval
        metrics = {}
        if cfg.bpd_max_examples != 0:
            sums = common.masked_sums(
                self.bpd_step, device_state, self.test_shards, self.run.parallel,
                global_batch=cfg.batch_size, max_examples=cfg.bpd_max_examples,
                key=self.eval_key, preprocess=self.preprocess,
            )
            count = sums.pop("count")
            metrics = {f"eval/bpd_{k}" if k != "total" else "eval/bpd": float(v / count)
                       for k, v in sums.items()}
            metrics["eval/bpd_num_examples"] = float(count)
        n = cfg.num_images
        if n > 0:
            ddim = f"ddim{self.config.sampling.ddim_steps}"
            ddpm = f"ddpm{self.schedule.num_timesteps}"
            for name, sampler in ((ddim, "ddim"), (ddpm, "ddpm")):
                # The same x_T for both samplers, so the grids can be compared image by image.
                images = self.generate(device_state, sampler, n, self.sample_key)
                self.run.writer.write_grid(step, f"samples_{name}", (images + 1.0) / 2.0)
        return metrics


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train (resuming from ``workdir`` if it has checkpoints), evaluate, write the summary."""
    return common.train_on_images(config, workdir, Experiment, name="diffusion")


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Evaluate the latest checkpoint in ``workdir``; write ``eval_summary.json``."""
    return common.evaluate_latest(Experiment(config, common.make_run(config, workdir)), workdir)


def sample(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Generate ``sampling.num_samples`` images from the latest checkpoint.

    Writes ``<workdir>/samples/<sampler>_step<step>.npz`` (uint8 ``images`` [N, H, W, C]) and,
    with ``sampling.write_png``, one PNG per image in a folder of the same name.
    """
    cfg = config.sampling
    exp = Experiment(config, common.make_run(config, workdir))
    try:
        state = exp.run.checkpointer.restore(exp.initial_state)
        step = int(state.step)
        images = exp.generate(exp.run.parallel.replicate(state), cfg.sampler,
                                       cfg.num_samples, jax.random.fold_in(exp.sample_key, step))
        name = f"{cfg.sampler}{cfg.ddim_steps if cfg.sampler == 'ddim' else ''}_step{step}"
        result = common.save_samples(workdir, name, images,
                                     write_png=cfg.write_png)
        return result | {"step": step}
    finally:
        exp.run.close()
