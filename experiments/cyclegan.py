"""CycleGAN, unpaired translation X ↔ Y: ``train_and_evaluate``, ``evaluate_checkpoint``,
``translate``.

Zhu et al. 2017 (arXiv:1703.10593), with the paper's roles: X = photos, Y = Monet paintings;
G: X → Y, F: Y → X; D_Y tells real y from G(x), D_X tells real x from F(y). One compiled step
updates both generators (one Adam over G and F) on

    L_G = LS(D_Y(G(x)), 1) + LS(D_X(F(y)), 1) + λ·L_cyc + λ_id·λ·L_id,

then both discriminators (one Adam over D_X and D_Y) on ½[LS(D(real), 1) + LS(D(fake), 0)],
where the fakes come from a history pool of past generated images. Learning rate: constant,
then linearly to zero (``optimizer.schedule="linear_decay"``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from jaxgen.data import image_io, loaders, pipeline, unpaired
from jaxgen.math import adversarial, cycle
from jaxgen.models.cyclegan import PatchDiscriminator, ResnetGenerator
from jaxgen.training import (
    AXIS,
    TrainState,
    TwoPlayerState,
    gradient_update,
    split_named,
    with_step_key,
)
from jaxgen.training.history_pool import HistoryPool, query

DIRECTIONS = {"x2y": "G", "y2x": "F"}


def make_models(config: ml_collections.ConfigDict):
    m = config.model
    generator = ResnetGenerator(num_blocks=m.num_blocks, features=m.generator_features,
                                out_channels=config.data.channels)
    discriminator = PatchDiscriminator(features=m.discriminator_features,
                                       num_layers=m.discriminator_layers)
    return generator, discriminator


def pool_across_devices(pool: HistoryPool, images: jax.Array, key: jax.Array):
    """Query one pool shared by all devices with the *global* batch of generated images.

    Every device gathers the global batch and runs the same query with the same key, so the
    pool stays identical on all devices (as one device would hold it) and each device keeps
    its own slice of the answer.
    """
    b = images.shape[0]
    everyone = jax.lax.all_gather(images, AXIS, tiled=True)
    pool, out = query(pool, everyone, key)
    return pool, jax.lax.dynamic_slice_in_dim(out, jax.lax.axis_index(AXIS) * b, b)


def make_train_body(generator: ResnetGenerator, discriminator: PatchDiscriminator,
                    config: ml_collections.ConfigDict):
    """The per-device step ``(TwoPlayerState, {"x", "y"}, key) -> (state, metrics)``."""
    lam = config.loss.cycle_weight
    lam_id = config.loss.identity_weight * lam

    def gen(params, images):
        return generator.apply({"params": params}, images)

    def dis(params, images):
        return discriminator.apply({"params": params}, images)

    def train_step(state: TwoPlayerState, batch, key):
        x, y = batch["x"], batch["y"]
        keys = split_named(key, ("pool_x", "pool_y"))
        d_params = state.discriminator.params

        def g_loss(p):
            fake_y, fake_x = gen(p["G"], x), gen(p["F"], y)
            adv_g = adversarial.least_squares_generator_loss(dis(d_params["D_Y"], fake_y))
            adv_f = adversarial.least_squares_generator_loss(dis(d_params["D_X"], fake_x))
            cyc = cycle.cycle_consistency_loss(x, gen(p["F"], fake_y), y, gen(p["G"], fake_x))
            loss = adv_g + adv_f + lam * cyc
            aux = {"g_adv": adv_g.mean(), "f_adv": adv_f.mean(), "cycle_l1": cyc.mean()}
            if lam_id > 0:
                idt = cycle.identity_loss(x, gen(p["F"], x), y, gen(p["G"], y))
                loss = loss + lam_id * idt
                aux["identity_l1"] = idt.mean()
            aux["generator_loss"] = loss.mean()
            aux["outputs"] = {"x": fake_x, "y": fake_y}
            return loss.mean(), aux

        g_state, g_metrics, fakes = gradient_update(state.generator, g_loss)
        pool_x, fake_x = pool_across_devices(state.extras["x"], fakes["x"], keys["pool_x"])
        pool_y, fake_y = pool_across_devices(state.extras["y"], fakes["y"], keys["pool_y"])

        def d_loss(p):
            d_y = adversarial.least_squares_discriminator_loss(dis(p["D_Y"], y),
                                                               dis(p["D_Y"], fake_y))
            d_x = adversarial.least_squares_discriminator_loss(dis(p["D_X"], x),
                                                               dis(p["D_X"], fake_x))
            return (d_x + d_y).mean(), {"d_x_loss": d_x.mean(), "d_y_loss": d_y.mean()}

        d_state, d_metrics, _ = gradient_update(state.discriminator, d_loss)
        new = state.replace(step=state.step + 1, generator=g_state, discriminator=d_state,
                            extras={"x": pool_x, "y": pool_y})
        return new, {**g_metrics, **d_metrics}

    return train_step


def make_cycle_body(generator: ResnetGenerator, direction: str):
    """Per-device eval body for one domain: masked sum of the cycle L1 ‖back(there(a)) − a‖₁."""
    there, back = ("G", "F") if direction == "x2y" else ("F", "G")

    def cycle_step(state: TwoPlayerState, batch, key):
        del key
        p = state.generator.params
        a, mask = batch["image"], batch["mask"]
        rec = generator.apply({"params": p[back]}, generator.apply({"params": p[there]}, a))
        l1 = jnp.abs(rec - a).mean(axis=(1, 2, 3))
        return jax.lax.psum({"l1": jnp.sum(l1 * mask), "count": jnp.sum(mask)}, AXIS)

    return cycle_step


@dataclasses.dataclass
class Domains:
    """This process's shards of both domains (uint8 ``[N_s, H, W, C]`` each)."""

    x: list[np.ndarray]
    y: list[np.ndarray]
    shard_ids: list[int]
    num_shards: int

    def per_shard(self, global_batch: int, parallel, what: str) -> int:
        return common.split_batch(global_batch, num_shards=self.num_shards,
                                  local_shards=len(self.shard_ids), parallel=parallel, what=what)

    def longest(self, *domains: str) -> int:
        """The longest shard of `domains` over every process."""
        return common.global_min_max([len(s) for d in domains for s in getattr(self, d)])[1]


def load_domains(config: ml_collections.ConfigDict, split: str, load_size: int) -> Domains:
    """This process's shards of both domains of `split`, stored at ``load_size`` square."""
    d = config.data
    num_shards = d.num_shards or jax.process_count()
    shard_ids = pipeline.shards_of_process(num_shards, jax.process_index(), jax.process_count())
    shards = unpaired.load_unpaired_shards(
        source=d.source, split=split, num_shards=num_shards, shard_ids=shard_ids,
        load_size=load_size, channels=d.channels, swap_domains=d.swap_domains, name=d.name,
        data_dir=d.data_dir, download=d.download, root=d.root, class_x=d.class_x,
        class_y=d.class_y, local_dir=d.local_dir,
    )
    return Domains(shards["x"], shards["y"], shard_ids, num_shards)


class Experiment:
    """Everything one CycleGAN run needs, built from a config."""

    def __init__(self, config: ml_collections.ConfigDict, run: common.Run, num_steps: int = 0):
        self.config = config
        self.run = run
        self.generator, self.discriminator = make_models(config)
        self.models = (self.generator, self.discriminator)
        names = ("G", "F", "D_X", "D_Y", "train", "eval")
        keys = split_named(jax.random.key(config.seed), names)
        self.train_key, self.eval_key = keys["train"], keys["eval"]
        size, c = config.data.crop_size, config.data.channels
        x = jnp.zeros((1, size, size, c), jnp.float32)
        g_init = jax.jit(self.generator.init)
        d_init = jax.jit(self.discriminator.init)
        g_params = {n: g_init(keys[n], x)["params"] for n in ("G", "F")}
        d_params = {n: d_init(keys[n], x)["params"] for n in ("D_X", "D_Y")}
        tx = common.make_optimizer(config.optimizer, num_steps)
        pool = HistoryPool.create(pool_size=config.loss.pool_size, image_shape=(size, size, c),
                                  dtype=jnp.float32)
        self.initial_state = TwoPlayerState.create(
            generator=TrainState.create(apply_fn=self.generator.apply, params=g_params, tx=tx),
            discriminator=TrainState.create(apply_fn=self.discriminator.apply,
                                            params=d_params, tx=tx),
            extras={"x": pool, "y": pool},
        )
        parallel = run.parallel
        self.train_step = parallel.compile(
            with_step_key(make_train_body(self.generator, self.discriminator, config)))
        self.cycle_steps = {
            d: parallel.compile(make_cycle_body(self.generator, d), donate_state=False)
            for d in DIRECTIONS
        }
        self.translate_fn = jax.jit(
            lambda params, images: self.generator.apply({"params": params}, images))

    @functools.cached_property
    def test(self) -> Domains:
        return load_domains(self.config, "test", self.config.data.crop_size)

    def load_eval_data(self) -> None:
        """Read the test split now (before training starts)."""
        _ = self.test

    def evaluate(self, device_state, step: int) -> dict[str, float]:
        """Test-set cycle L1 per direction, and the translation grids; keys ``eval/*``."""
        cfg = self.config.eval
        test, parallel = self.test, self.run.parallel
        per_shard = test.per_shard(cfg.batch_size, parallel, "eval.batch_size")
        metrics = {}
        for direction, domain in (("x2y", "x"), ("y2x", "y")):
            arrays = [s[: cfg.max_examples or None] for s in getattr(test, domain)]
            longest = common.global_min_max([len(a) for a in arrays])[1]
            batches = loaders.iterate_domain(arrays, batch_per_shard=per_shard,
                                             num_steps=-(-longest // per_shard))
            total = common.sum_over_batches(self.cycle_steps[direction], device_state, batches,
                                            parallel, self.eval_key)
            metrics[f"eval/cycle_l1_{domain}"] = float(total["l1"] / total["count"])
        self.write_grids(parallel.fetch(device_state.generator.params), step)
        return metrics

    def write_grids(self, params, step: int) -> None:
        """Rows of (x, G(x), F(G(x))) and of (y, F(y), G(F(y))) for the first test images."""
        if not self.run.writer.enabled:
            return
        n = self.config.eval.num_images
        for domain, (there, back) in (("x", ("G", "F")), ("y", ("F", "G"))):
            a = pipeline.to_signed_unit(getattr(self.test, domain)[0][:n])
            b = self.translate_fn(params[there], a)
            c = self.translate_fn(params[back], b)
            triples = np.stack([a, np.asarray(b), np.asarray(c)], axis=1)
            self.run.writer.write_grid(step, f"translation_{domain}",
                                       (triples.reshape((-1, *a.shape[1:])) + 1.0) / 2.0,
                                       columns=6)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train (resuming from ``workdir`` if it has checkpoints), evaluate, write the summary."""
    started = time.perf_counter()
    run = common.make_run(config, workdir)
    d = config.data
    train = load_domains(config, "train", d.load_size)
    loader = loaders.UnpairedLoader(
        x=train.x, y=train.y, shard_ids=train.shard_ids,
        batch_per_shard=train.per_shard(config.train.batch_size, run.parallel, "batch_size"),
        seed=config.seed, load_size=d.load_size, crop_size=d.crop_size, flip=d.flip,
        longest_shard=train.longest("x", "y"),
    )
    exp = Experiment(config, run, common.num_train_steps(config, loader.steps_per_epoch))
    return common.train_and_summarize(
        exp, config, workdir, name="cyclegan", batch_for_step=loader.batch,
        steps_per_epoch=loader.steps_per_epoch, started=started,
    )


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Evaluate the latest checkpoint in ``workdir``; write ``eval_summary.json``."""
    return common.evaluate_latest(Experiment(config, common.make_run(config, workdir)), workdir)


def translate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Translate images with the latest checkpoint and write PNGs.

    ``translate.direction`` is ``"x2y"`` (G) or ``"y2x"`` (F). The images come from
    ``translate.input_dir`` (any folder of images) or, when it is empty, from the configured
    data source's test split of the source domain. Output: ``translate.output_dir`` (default
    ``<workdir>/translated_<direction>``), one PNG per input, named after it.
    """
    t = config.translate
    if t.direction not in DIRECTIONS:
        raise ValueError(f"unknown translate.direction {t.direction!r}; choose one of "
                         f"{list(DIRECTIONS)}.")
    exp = Experiment(config, common.make_run(config, workdir))
    size = config.data.crop_size
    try:
        state = exp.run.checkpointer.restore(exp.initial_state)
        params = state.generator.params[DIRECTIONS[t.direction]]
        if t.input_dir:
            images, names = image_io.load_image_folder(t.input_dir, size=size,
                                                       channels=config.data.channels)
        else:
            domain = t.direction[0]
            images = np.concatenate(getattr(exp.test, domain))
            names = [f"{domain}_{i:06d}" for i in range(len(images))]
        out_dir = t.output_dir or os.path.join(workdir, f"translated_{t.direction}")
        outputs = [np.asarray(exp.translate_fn(params, pipeline.to_signed_unit(
            images[i:i + t.batch_size]))) for i in range(0, len(images), t.batch_size)]
        paths = []
        if jax.process_index() == 0:
            paths = image_io.save_images(np.concatenate(outputs), out_dir, names)
        return {"output_dir": out_dir, "num_images": len(paths), "step": int(state.step)}
    finally:
        exp.run.close()

