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
    fit,
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
            t = terms(params, batch["image"], key)
            return t["loss"].mean(), t

        (_, t), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        grads = jax.lax.pmean(grads, "data")
        metrics = jax.lax.pmean({k: v.mean() for k, v in t.items()}, "data")
        return state.apply_gradients(grads=grads), metrics

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
        self._test = None

    @property
    def test_shards(self) -> common.Shards:
        if self._test is None:
            self._test = common.load_shards(self.config.data, "test", seed=self.config.seed)
        return self._test

    def _sum_over(self, step_fn, device_state, global_batch, max_examples, key):
        shards = self.test_shards
        per_shard = common.per_shard_batch(global_batch, shards, self.run.parallel, "eval batch")
        arrays, n_steps = common.eval_steps(shards, per_shard, max_examples)
        total = None
        batches = pipeline.eval_batches(arrays, batch_per_shard=per_shard, num_steps=n_steps,
                                        preprocess=pipeline.scale_to_unit)
        for i, batch in enumerate(batches):
            out = step_fn(device_state, self.run.parallel.shard_batch(batch),
                          jax.random.fold_in(key, i))
            total = out if total is None else jax.tree.map(lambda a, b: a + b, total, out)
        return self.run.parallel.fetch(total)

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
        self.write_images(self.run.parallel.fetch(device_state).params, step)
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
    t0 = time.perf_counter()
    exp = Experiment(config, workdir)
    run = exp.run
    train = common.load_shards(config.data, "train", seed=config.seed)
    per_shard = common.per_shard_batch(config.train.batch_size, train, run.parallel, "batch_size")
    steps_per_epoch = train.min_len // per_shard
    loader = pipeline.TrainLoader(
        shards=train.arrays, shard_ids=train.shard_ids, batch_per_shard=per_shard,
        steps_per_epoch=steps_per_epoch, seed=config.seed, preprocess=pipeline.scale_to_unit,
    )
    num_steps = common.num_train_steps(config, steps_per_epoch)
    try:
        state, train_metrics, final = fit(
            state=exp.initial_state, train_step=exp.train_step, batch_for_step=loader.batch,
            parallel=run.parallel, train_key=exp.train_key, num_steps=num_steps,
            checkpointer=run.checkpointer, writer=run.writer, log_every=config.train.log_every,
            eval_every=config.train.eval_every, evaluate=exp.evaluate,
            progress=config.train.progress,
        )
        summary = {
            "experiment": "vae" if exp.variational else "autoencoder",
            "workdir": os.path.abspath(workdir),
            "step": int(state.step),
            "steps_per_epoch": steps_per_epoch,
            "wall_time_s": time.perf_counter() - t0,
            "devices": run.parallel.num_devices,
            "processes": jax.process_count(),
            **train_metrics,
            **final,
            "config": config.to_dict(),
        }
        run.writer.write_summary(summary)
    finally:
        run.close()
    return summary


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Evaluate the latest checkpoint in ``workdir``; write ``eval_summary.json``."""
    exp = Experiment(config, workdir)
    try:
        state = exp.run.checkpointer.restore(exp.initial_state)
        metrics = exp.evaluate(exp.run.parallel.replicate(state), int(state.step))
        metrics["step"] = int(state.step)
        if exp.run.writer.enabled:
            import json

            with open(os.path.join(workdir, "eval_summary.json"), "w") as f:
                json.dump(metrics, f, indent=2, sort_keys=True)
    finally:
        exp.run.close()
    return metrics


def encode_split(config: ml_collections.ConfigDict, workdir: str, split: str = "test") -> str:
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
    return path
