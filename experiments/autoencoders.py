"""Autoencoders and VAEs on Fashion-MNIST: ``train_and_evaluate``, ``evaluate``, ``encode``.

Losses per example (summed over pixels / latent dimensions, in nats):
  AE:  reconstruction error of the clean image from the (optionally corrupted) input.
  VAE: −ELBO = −log p(x|z) + β·KL(q(z|x) ‖ N(0, I)), z = μ + σ ⊙ ε on an explicit key;
       evaluation adds the k-sample IWAE bound, whose negation estimates the NLL.
"""

from __future__ import annotations

import functools
import logging
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import jaxgen
from experiments import common
from jaxgen.data import pipeline
from jaxgen.models.autoencoders import VAE, make_autoencoder
from jaxgen.training import (
    TrainState,
    gradient_update,
    per_example_keys,
    split_named,
    with_step_key,
)

PIXEL_AXES = (-3, -2, -1)


def corrupt(key: jax.Array, x: jax.Array, kind: str, level: float) -> jax.Array:
    """Corrupt one image for denoising: additive Gaussian noise (clipped) or pixel masking."""
    if kind == "none" or level == 0:
        return x
    if kind == "gaussian":
        return jnp.clip(x + level * jax.random.normal(key, x.shape, x.dtype), 0.0, 1.0)
    if kind == "mask":
        return x * jax.random.bernoulli(key, 1.0 - level, x.shape).astype(x.dtype)
    raise ValueError(f"unknown corruption {kind!r}; choose 'none', 'gaussian' or 'mask'.")


def reconstruction_log_likelihood(outputs, x, loss: ml_collections.ConfigDict) -> jax.Array:
    """log p(x | outputs) summed over pixels: Bernoulli (BCE) or Gaussian with fixed variance."""
    x = jnp.broadcast_to(x, outputs.shape)
    if loss.reconstruction == "bce":
        return -jaxgen.binary_cross_entropy(outputs, x).sum(PIXEL_AXES)
    if loss.reconstruction == "mse":
        return jaxgen.gaussian_log_prob(x, outputs, jnp.float32(loss.gaussian_logvar)).sum(
            PIXEL_AXES
        )
    raise ValueError(f"unknown reconstruction {loss.reconstruction!r}; choose 'bce' or 'mse'.")


def reconstruction_error(outputs, x, loss: ml_collections.ConfigDict) -> jax.Array:
    """The AE loss per example: BCE or squared error summed over pixels."""
    if loss.reconstruction == "bce":
        return jaxgen.binary_cross_entropy(outputs, x).sum(PIXEL_AXES)
    if loss.reconstruction == "mse":
        return jaxgen.squared_error(outputs, x).sum(PIXEL_AXES)
    raise ValueError(f"unknown reconstruction {loss.reconstruction!r}; choose 'bce' or 'mse'.")


def to_image(outputs, loss: ml_collections.ConfigDict) -> jax.Array:
    """Decoder outputs → displayable images in [0, 1]."""
    return jax.nn.sigmoid(outputs) if loss.reconstruction == "bce" else jnp.clip(outputs, 0, 1)


def make_terms(model, config: ml_collections.ConfigDict):
    """``terms(params, x, key) -> dict of per-example arrays [B]``, with ``"loss"``."""
    loss_cfg = config.loss
    variational = isinstance(model, VAE)
    if loss_cfg.reconstruction not in ("bce", "mse"):
        raise ValueError(f"unknown reconstruction {loss_cfg.reconstruction!r}; "
                         "choose 'bce' or 'mse'.")
    if loss_cfg.corruption not in ("none", "gaussian", "mask"):
        raise ValueError(f"unknown corruption {loss_cfg.corruption!r}; "
                         "choose 'none', 'gaussian' or 'mask'.")

    def terms(params, x, key):
        b = x.shape[0]
        keys = split_named(key, ("corruption", "z"))
        x_in = jax.vmap(corrupt, in_axes=(0, 0, None, None))(
            per_example_keys(keys["corruption"], b), x, loss_cfg.corruption,
            loss_cfg.corruption_level,
        )
        variables = {"params": params}
        if not variational:
            out = model.apply(variables, x_in)
            err = reconstruction_error(out, x, loss_cfg)
            sq = jaxgen.squared_error(out if loss_cfg.reconstruction == "mse" else
                                      jax.nn.sigmoid(out), x).mean(PIXEL_AXES)
            return {"loss": err, "reconstruction": err, "mse_per_pixel": sq}
        mean, logvar = model.apply(variables, x_in, method=VAE.encode)
        z = jax.vmap(jaxgen.reparameterize)(per_example_keys(keys["z"], b), mean, logvar)
        out = model.apply(variables, z, method=VAE.decode)
        log_lik = reconstruction_log_likelihood(out, x, loss_cfg)
        kl = jaxgen.standard_normal_kl(mean, logvar).sum(-1)
        return {
            "loss": -jaxgen.elbo(log_lik, kl, beta=loss_cfg.beta),
            "neg_elbo": -jaxgen.elbo(log_lik, kl),
            "reconstruction": -log_lik,
            "kl": kl,
        }

    return terms


def make_train_body(terms):
    """The per-device step body: ``(state, batch, key) -> (state, metrics)``."""

    def train_step(state, batch, key):
        def loss_fn(params):
            means = {k: v.mean() for k, v in terms(params, batch["image"], key).items()}
            return means["loss"], means

        state, metrics, _ = gradient_update(state, loss_fn)
        return state, metrics

    return train_step


def make_eval_body(terms):
    """Per-device eval body: masked sums of every term, and the example count."""

    def eval_step(state, batch, key):
        mask = batch["mask"]
        t = terms(state.params, batch["image"], key)
        sums = {k: jnp.sum(v * mask) for k, v in t.items()}
        sums["count"] = jnp.sum(mask)
        return jax.lax.psum(sums, "data")

    return eval_step


def make_iwae_body(model, config: ml_collections.ConfigDict):
    """Per-device body summing −L_k (the IWAE NLL estimate) over the masked examples."""
    k = config.eval.iwae_samples

    def iwae_step(state, batch, key):
        x, mask = batch["image"], batch["mask"]
        variables = {"params": state.params}
        mean, logvar = model.apply(variables, x, method=VAE.encode)  # [b, D] each
        keys = per_example_keys(key, x.shape[0])
        z = jax.vmap(functools.partial(jaxgen.reparameterize, num_samples=k))(keys, mean, logvar)
        z = jnp.swapaxes(z, 0, 1)  # [K, b, D]
        out = model.apply(variables, z, method=VAE.decode)  # [K, b, H, W, C]
        log_lik = reconstruction_log_likelihood(out, x[None], config.loss)
        zero = jnp.zeros((), z.dtype)
        log_prior = jaxgen.gaussian_log_prob(z, zero, zero).sum(-1)
        log_post = jaxgen.gaussian_log_prob(z, mean[None], logvar[None]).sum(-1)
        nll = -jaxgen.iwae_bound(log_lik, log_prior, log_post)
        return jax.lax.psum({"iwae_nll": jnp.sum(nll * mask), "count": jnp.sum(mask)}, "data")

    return iwae_step


class Experiment:
    """Everything one AE/VAE run needs, built from a config."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str):
        self.config = config
        self.run = common.make_run(config, workdir)
        self.model = make_autoencoder(
            architecture=config.model.architecture, image_shape=tuple(config.data.image_shape),
            latent_dim=config.model.latent_dim, variational=config.model.variational,
            hidden=tuple(config.model.hidden), channels=tuple(config.model.channels),
            init=config.model.init,
        )
        self.variational = config.model.variational
        root = jax.random.key(config.seed)
        keys = split_named(root, ("init", "train", "eval", "iwae", "images"))
        self.train_key, self.eval_key, self.iwae_key = keys["train"], keys["eval"], keys["iwae"]
        self.images_key = keys["images"]
        x0 = jnp.zeros((1, *config.data.image_shape), jnp.float32)
        init_args = (x0, keys["init"]) if self.variational else (x0,)
        params = jax.jit(self.model.init)(keys["init"], *init_args)["params"]
        self.initial_state = TrainState.create(
            apply_fn=self.model.apply, params=params, tx=common.make_optimizer(config.optimizer)
        )
        terms = make_terms(self.model, config)
        parallel = self.run.parallel
        self.train_step = parallel.compile(with_step_key(make_train_body(terms)))
        self.eval_step = parallel.compile(make_eval_body(terms), donate_state=False)
        self.iwae_step = (
            parallel.compile(make_iwae_body(self.model, config), donate_state=False)
            if self.variational and config.eval.iwae_samples > 0 else None
        )

    @functools.cached_property
    def test_shards(self) -> common.Shards:
        return common.load_shards(self.config.data, "test", seed=self.config.seed)

    def _sum_over(self, step_fn, device_state, global_batch, max_examples, key):
        return common.masked_sums(
            step_fn, device_state, self.test_shards, self.run.parallel, global_batch=global_batch,
            max_examples=max_examples, key=key, preprocess=pipeline.scale_to_unit,
        )

    def load_eval_data(self) -> None:
        """Read the test split now (before training starts)."""
        _ = self.test_shards

    def evaluate(self, device_state, step: int) -> dict[str, float]:
        """Test-set metrics in nats per example (plus PNG grids); keys ``eval/*``."""
        cfg = self.config.eval
        sums = self._sum_over(self.eval_step, device_state, cfg.batch_size, cfg.max_examples,
                              self.eval_key)
        count = sums.pop("count")
        metrics = {f"eval/{k}_nats" if k != "mse_per_pixel" else f"eval/{k}": float(v / count)
                   for k, v in sums.items()}
        metrics.pop("eval/loss_nats", None)
        metrics["eval/num_examples"] = float(count)
        if self.iwae_step is not None:
            iw = self._sum_over(self.iwae_step, device_state, cfg.iwae_batch_size,
                                cfg.iwae_max_examples, self.iwae_key)
            metrics[f"eval/iwae{cfg.iwae_samples}_nll_nats"] = float(iw["iwae_nll"] / iw["count"])
            metrics["eval/iwae_num_examples"] = float(iw["count"])
        self.write_images(self.run.parallel.fetch(device_state.params), step)
        return metrics

    def write_images(self, params, step: int) -> None:
        if not self.run.writer.enabled:
            return
        n = self.config.eval.num_images
        x = pipeline.scale_to_unit(self.test_shards.arrays[0])["image"][: n // 2]
        variables = {"params": params}
        if self.variational:
            mean, _ = self.model.apply(variables, jnp.asarray(x), method=VAE.encode)
            recon = self.model.apply(variables, mean, method=VAE.decode)  # decode the mean
            z = jax.random.normal(self.images_key, (n, self.config.model.latent_dim))
            samples = to_image(self.model.apply(variables, z, method=VAE.decode), self.config.loss)
            self.run.writer.write_grid(step, "samples", np.asarray(samples))
        else:
            recon = self.model.apply(variables, jnp.asarray(x))
        recon = np.asarray(to_image(recon, self.config.loss))
        pairs = np.stack([x, recon], axis=1).reshape((-1, *x.shape[1:]))  # original, recon
        self.run.writer.write_grid(step, "reconstructions", pairs, columns=8)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train (resuming from ``workdir`` if it has checkpoints), evaluate, write the summary."""
    started = time.perf_counter()
    exp = Experiment(config, workdir)
    loader, steps_per_epoch = common.image_train_loader(config, exp.run.parallel,
                                                        pipeline.scale_to_unit)
    return common.train_and_summarize(
        exp, config, workdir, name="vae" if exp.variational else "autoencoder",
        batch_for_step=loader.batch, steps_per_epoch=steps_per_epoch, started=started,
    )


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Evaluate the latest checkpoint in ``workdir``; write ``eval_summary.json``."""
    return common.evaluate_latest(Experiment(config, workdir), workdir)


def encode_split(config: ml_collections.ConfigDict, workdir: str, split: str = "test") -> dict:
    """Write the codes (AE: z; VAE: posterior means and log-variances) of this process's
    shards of `split` to ``<workdir>/codes_<split>_p<process>.npz``, with the labels."""
    exp = Experiment(config, workdir)
    try:
        state = exp.run.checkpointer.restore(exp.initial_state)
        shards = common.load_shards(config.data, split, seed=config.seed)
        variables = {"params": state.params}
        method = VAE.encode if exp.variational else type(exp.model).encode
        encode = jax.jit(lambda v, x: exp.model.apply(v, x, method=method))
        codes, labels = [], []
        for arrays in shards.arrays:
            for start in range(0, len(arrays["image"]), 1000):
                x = pipeline.scale_to_unit({"image": arrays["image"][start:start + 1000]})
                codes.append(jax.tree.map(np.asarray, encode(variables, x["image"])))
                labels.append(arrays["label"][start:start + 1000])
        path = os.path.join(workdir, f"codes_{split}_p{jax.process_index()}.npz")
        if exp.variational:
            np.savez(path, mean=np.concatenate([c[0] for c in codes]),
                     logvar=np.concatenate([c[1] for c in codes]), label=np.concatenate(labels))
        else:
            np.savez(path, z=np.concatenate(codes), label=np.concatenate(labels))
        logging.info("wrote %s", path)
    finally:
        exp.run.close()
    return {"codes": path}
