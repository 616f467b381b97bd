"""One driver for every family and mode: train, evaluate, sample, encode, translate.

Nothing here is specific to a family: the family object (``jaxgen.families``) provides the
state and the per-device bodies, the data object (``jaxgen.data.datasets``) the batches, and
this module compiles the bodies for all devices, runs the loop, checkpoints, evaluates and
writes files. Keys: one root key per run (``seed``), split into one key per purpose.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import jax
import numpy as np

from experiments.settings import RunSettings, as_dict
from experiments.workdir import (
    check_config_drift,
    check_finite,
    check_reader_config,
    check_same_settings,
    ensure_writable,
    read_json,
    write_config,
)
from jaxgen import families
from jaxgen.data import image_io
from jaxgen.data.datasets import KINDS
from jaxgen.families.base import to_unit
from jaxgen.training import Checkpointer, DataParallel, MetricWriter, fit, split_named
from jaxgen.training.collect import (
    map_in_chunks,
    masked_sums,
    means_and_standard_errors,
    sum_over_batches,
)
from jaxgen.training.parallel import with_step_key
from jaxgen.training.writer import write_json
from jaxgen.validation import ConfigError, check_choice

MODES = ("train", "evaluate", "sample", "encode", "translate")
KEY_PURPOSES = ("init", "train", "eval", "sample_inputs", "sample_noise", "preview")


class Runner:
    """A family, its data and a workdir, with everything compiled lazily and once.

    A trainer (``read_only=False``) owns the workdir: it creates it and takes its lock. A
    reader only reads the workdir's checkpoints and writes what its mode makes to
    `output_dir` (default: the workdir), so it works on a read-only copy of a finished run.
    """

    def __init__(self, settings: RunSettings, family_config: Any, workdir: str, *,
                 read_only: bool = False, output_dir: str | None = None,
                 allow_config_change: bool = False):
        self.settings = settings
        self.workdir = workdir
        self.read_only = read_only
        self.output_dir = output_dir or workdir
        if read_only and not os.path.isdir(workdir):
            raise ConfigError(f"--workdir={workdir} does not exist; train first with that "
                              "--workdir (--mode=train), or check the path.")
        family_cls = families.get(settings.family)
        data_cls = KINDS[family_cls.data_kind][1]
        self.data = data_cls(settings.data, input_range=family_cls.input_range,
                             seed=settings.seed)
        self.family = family_cls(family_config, image_shape=self.data.image_shape,
                                 num_classes=self.data.num_classes)
        check_same_settings(as_dict(settings, family_config))
        self.parallel = DataParallel(settings.train.parallel)
        self.keys = split_named(jax.random.key(settings.seed), KEY_PURPOSES)
        if read_only:
            check_reader_config(workdir, as_dict(settings, family_config),
                                allow=allow_config_change)
        elif jax.process_index() == 0:
            ensure_writable(workdir, "--workdir")
        self.writer = MetricWriter(self.output_dir, enabled=jax.process_index() == 0,
                                   tensorboard=not read_only)
        t = settings.train
        self.checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                                         every_steps=t.checkpoint_every, keep=t.keep_checkpoints,
                                         read_only=read_only, asynchronous=t.async_checkpoints)
        self._compiled: dict[str, Any] = {}
        self._input_makers: dict[int, Any] = {}

    def close(self) -> None:
        self.checkpointer.close()
        self.writer.close()

    # --- building blocks ---------------------------------------------------------------

    def compiled(self, name: str, body, *, donate: bool = False, per_example: bool = False):
        """`body` compiled for all devices, once per run: later calls with the same `name`
        return the first compilation (bodies are rebuilt by the family on every call, so the
        name is the key). A name given another function is an error, not a stale body."""
        code = _function_identity(body)
        if name not in self._compiled:
            self._compiled[name] = (code, self.parallel.compile(
                body, donate_state=donate, per_example=per_example))
        elif self._compiled[name][0] != code:
            raise ValueError(f"compiled({name!r}) was called with two different bodies.")
        return self._compiled[name][1]

    def initial_state(self, num_steps: int = 0):
        """The family's initial state, its optimizers built for a run of `num_steps`."""
        o = self.settings.optimizer
        return self.family.init(self.keys["init"], self.family.make_optimizers(o, num_steps),
                                ema_decay=o.ema_decay)

    def abstract_state(self, num_steps: int = 0):
        """The shapes and dtypes of :meth:`initial_state`, computed without building it (a
        checkpoint's restore target)."""
        return jax.eval_shape(lambda: self.initial_state(num_steps))

    def restore(self):
        """The latest checkpoint, read straight onto the devices, and its step."""
        target = self.parallel.restore_target(self.abstract_state())
        state = self.parallel.placed(self.checkpointer.restore(target))
        return state, int(jax.device_get(self.parallel.fetch(state.step)))

    def restore_for_output(self):
        """:meth:`restore`, then check that a reader's mode can write its files (after the
        checkpoint is found: a reader of an empty workdir creates nothing)."""
        restored = self.restore()
        if jax.process_index() == 0:
            default = self.output_dir == self.workdir
            ensure_writable(self.output_dir, "--workdir" if default else "--output_dir",
                            " (a read-only run: pass --output_dir=DIR for this mode's files)"
                            if default else "")
        return restored

    def evaluate(self, device_state, step: int, *,
                 max_examples: int | None = None) -> dict[str, float]:
        """Every eval pass's means (``eval/*``), their standard errors (``eval/*_se``) and
        example counts. `max_examples` overrides every pass's own (0: the whole test
        split)."""
        e, metrics = self.settings.eval, {}
        for i, (name, p) in enumerate(sorted(self.family.eval_passes().items())):
            batches, _ = self.data.eval_batches(
                p.domain, global_batch=p.batch_size or e.batch_size,
                max_examples=(p.max_examples or e.max_examples) if max_examples is None
                else max_examples,
                num_local_devices=self.parallel.num_local_devices, what=f"eval batch ({name})")
            total = sum_over_batches(self.compiled(f"eval_{name}", masked_sums(p.body)),
                                     device_state, batches, self.parallel,
                                     jax.random.fold_in(self.keys["eval"], i))
            means, ses, count = means_and_standard_errors(total)
            metrics.update({f"eval/{k}": v for k, v in means.items()})
            metrics.update({f"eval/{k}_se": v for k, v in ses.items()})
            metrics[f"eval/{name}_num_examples"] = float(count)
        return metrics

    def evaluate_and_write_grids(self, device_state, step: int) -> dict[str, float]:
        """:meth:`evaluate`, then the image grids (what a run does at each evaluation)."""
        metrics = self.evaluate(device_state, step)
        self.write_grids(device_state, step)
        return metrics

    def class_ids(self, classes) -> np.ndarray:
        """Class ids from ids or the data's class names (``sampling.classes``); empty: every
        class. An unknown one is a ConfigError listing the classes."""
        names = list(getattr(self.data, "class_names", ()) or ())
        n = self.family.num_classes
        if not classes:
            return np.arange(n, dtype=np.int32)
        ids = []
        for c in classes:
            text = str(c)
            if text in names:
                ids.append(names.index(text))
            elif text.lstrip("-").isdigit() and 0 <= int(text) < n:
                ids.append(int(text))
            else:
                shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
                raise ConfigError(f"sampling.classes: {text!r} is not a class of this data "
                                  f"(ids 0–{n - 1}: {shown}).")
        return np.asarray(ids, np.int32)

    def generate(self, device_state, sampler: str, num: int, key, labels=None):
        """`num` images in the family's input range, and the class each was asked for (None
        for an unconditional family). The noise of image i depends only on `key`, i and
        ``sampling.batch_size``, not on the device or process count; each chunk's inputs are
        drawn on the devices that sample from them. `labels` (a conditional family): int
        [num]; None: ``sampling.classes`` in turn."""
        chunk = self.family.sampling_config.batch_size
        keys = split_named(key, ("inputs", "noise"))
        step = self.compiled(f"sample_{sampler}", self.family.sample_body(sampler),
                             per_example=True)
        chunks = -(-num // chunk)
        conditional = self.family.conditional
        if conditional:
            if labels is None:
                ids = self.class_ids(self.family.sampling_config.classes)
                labels = ids[np.arange(num) % len(ids)]
            labels = np.asarray(labels, np.int32)
            padded = np.resize(labels, chunks * chunk)  # the last chunk repeats from the start
        if chunk not in self._input_makers:
            if conditional:
                def make(k, y):
                    return {**self.family.sample_inputs(k, chunk), "label": y}
            else:
                def make(k):
                    return self.family.sample_inputs(k, chunk)
            self._input_makers[chunk] = self.parallel.batch_maker(make)
        make_inputs = self._input_makers[chunk]
        outs = []
        for i in range(chunks):
            extra = (padded[i * chunk:(i + 1) * chunk],) if conditional else ()
            inputs = make_inputs(jax.random.fold_in(keys["inputs"], i), *extra)
            outs.append(self.parallel.fetch_examples(step(
                device_state, inputs, jax.random.fold_in(keys["noise"], i))))
        return np.concatenate(outs)[:num], (labels if conditional else None)

    def write_grids(self, device_state, step: int) -> None:
        n = self.settings.eval.num_images
        if n == 0:
            return
        rng = self.family.input_range
        labels, columns = None, None
        if self.family.conditional:  # one row per class (at most 10 rows)
            ids = self.class_ids(self.family.sampling_config.classes)[:10]
            columns = max(1, n // len(ids))
            labels = np.repeat(ids, columns)
        chosen = self.family.samplers and (self.family.sampling_config.grid_samplers
                                           or self.family.samplers)
        for sampler in chosen:  # the same noise for every sampler
            images, _ = self.generate(device_state, sampler, len(labels) if labels is not None
                                      else n, self.keys["preview"], labels=labels)
            self.writer.write_grid(step, f"samples_{sampler}", to_unit(images, rng),
                                   columns=columns)
        for name, p in self.family.previews().items():
            x = self.data.examples(p.domain, n)
            chunk = self.parallel.num_devices * -(-len(x) // self.parallel.num_devices)
            rows = map_in_chunks(self.compiled(f"preview_{name}", p.body, per_example=True),
                                 device_state,
                                 {"image": x}, chunk=chunk, parallel=self.parallel,
                                 key=self.keys["preview"])
            k = rows.shape[1]
            rows = rows[:max(1, n // k)]  # n images in all, k per test image
            self.writer.write_grid(step, name, to_unit(rows.reshape(-1, *rows.shape[2:]), rng),
                                   columns=k * max(1, 8 // k))

    # --- modes ---------------------------------------------------------------------------

    def check_eval_settings(self) -> None:
        """Fail on evaluation settings before training rather than after it, and read the
        test split now."""
        e = self.settings.eval
        for name, p in self.family.eval_passes().items():
            self.data.per_shard(p.batch_size or e.batch_size, self.parallel.num_local_devices,
                                f"eval batch ({name})")
            self.data.num_examples("test", p.domain)
        for p in self.family.previews().values():
            self.data.num_examples("test", p.domain)
        self.check_sampling_settings()

    def check_sampling_settings(self) -> None:
        """Fail on the ``sampling`` settings before anything compiles: a batch the devices
        do not divide, a sampler the family lacks, classes asked of an unconditional model,
        and classes the data lacks."""
        if not self.family.samplers:
            return
        s = self.family.sampling_config
        if s.batch_size % self.parallel.num_devices:
            raise ConfigError(f"sampling.batch_size={s.batch_size} must be divisible "
                              f"by the number of devices ({self.parallel.num_devices}).")
        for key, names in (("sampling.sampler", (s.sampler,) if s.sampler else ()),
                           ("sampling.grid_samplers", s.grid_samplers)):
            for name in names:
                check_choice(key, name, self.family.samplers)
        if self.family.conditional:
            self.class_ids(s.classes)
        elif s.classes:
            raise ConfigError(
                f"sampling.classes={tuple(s.classes)!r} asks for samples of chosen classes, "
                f"but this {self.family.name} model is unconditional; train one with "
                "model.class_conditional=True on labelled data, or leave sampling.classes "
                "empty.")

    def train(self, *, allow_config_change: bool = False) -> dict:
        started = time.perf_counter()
        t = self.settings.train
        record = as_dict(self.settings, self.family.config)
        record_on_start = check_config_drift(self.workdir, record, allow=allow_config_change)
        loader = self.data.train_loader(t.batch_size, self.parallel.num_local_devices)
        num_steps = t.num_steps or t.num_epochs * loader.steps_per_epoch
        self.check_eval_settings()
        previous = read_json(self.workdir, "summary.json")
        latest = self.checkpointer.latest_step()  # stays so: this trainer holds the lock
        finished = latest == num_steps
        step = self.compiled("train", with_step_key(self.family.train_body), donate=True)
        resuming = latest is not None
        state, train_metrics, final = fit(
            state=self.abstract_state(num_steps) if resuming else self.initial_state(num_steps),
            train_step=step, batches=lambda start: loader.iterate(start, num_steps),
            parallel=self.parallel, train_key=self.keys["train"], num_steps=num_steps,
            checkpointer=self.checkpointer, writer=self.writer, log_every=t.log_every,
            eval_every=t.eval_every, evaluate=self.evaluate_and_write_grids, progress=t.progress,
            # Recorded once the state is restored or initialised: a start that fails (bad
            # settings, a checkpoint of another model) leaves the workdir's record as it was.
            on_start=lambda: self._on_start(record if record_on_start else None))
        if finished and previous:  # a rerun of a finished run keeps the record of its training
            print(f"the run in {self.workdir} has finished (step {num_steps}); re-evaluated "
                  "its last checkpoint")
            summary = {**previous, **final}
        else:
            summary = {
                "family": self.settings.family, "workdir": os.path.abspath(self.workdir),
                "step": int(state.step), "steps_per_epoch": loader.steps_per_epoch,
                "wall_time_s": time.perf_counter() - started,
                "devices": self.parallel.num_devices, "processes": jax.process_count(),
                **train_metrics, **final, "config": record, "data": self.data.describe(),
            }
        summary["bad_records"] = loader.bad_records.report()
        self.writer.write_summary(summary)
        check_finite(final, "final evaluation")
        return summary

    def _on_start(self, record: dict | None) -> None:
        """Once the run has really started: record its settings (when they are new) and what
        its data holds (shape, classes, sizes), and say so."""
        if record is not None:
            write_config(self.workdir, record)
        described = self.data.describe()
        if jax.process_index() == 0:
            write_json(os.path.join(self.workdir, "dataset.json"), described)
            print(f"data: {described['source']}, images {tuple(described['image_shape'])}"
                  + (f", {len(described['class_names'])} classes"
                     if described.get("class_names") else ""))

    def evaluate_latest(self) -> dict:
        self.check_sampling_settings()  # the grids' settings, before the checkpoint is read
        device_state, step = self.restore_for_output()
        metrics = {**self.evaluate_and_write_grids(device_state, step), "step": step}
        self.write_json("eval_summary.json", metrics)
        check_finite(metrics, "evaluation")
        return metrics

    def sample(self) -> dict:
        s = self.family.sampling_config
        sampler = s.sampler or self.family.samplers[0]
        self.check_sampling_settings()  # e.g. an unknown class, before the checkpoint is read
        device_state, step = self.restore_for_output()
        images, labels = self.generate(device_state, sampler, s.num_samples,
                                       jax.random.fold_in(self.keys["sample_inputs"], step))
        images = to_unit(images, self.family.input_range)
        name = f"{sampler}_step{step}"
        out = {"step": step, "num_samples": len(images)}
        arrays = {"images": image_io.unit_to_uint8(images)}
        names = [f"{i:06d}" for i in range(len(images))]
        if labels is not None:  # the class each sample was asked for, in the npz and PNG names
            arrays["labels"] = labels
            class_names = list(getattr(self.data, "class_names", ()) or ())
            names = [f"{n}_{class_names[y] if class_names else y}"
                     for n, y in zip(names, labels.tolist(), strict=True)]
        folder = os.path.join(self.output_dir, "samples")
        out["npz"] = os.path.join(folder, f"{name}.npz")
        if s.write_png:
            out["png_dir"] = os.path.join(folder, name)
        if jax.process_index() == 0:
            os.makedirs(folder, exist_ok=True)
            np.savez_compressed(out["npz"], **arrays)
            if s.write_png:
                paths = image_io.output_paths(names, out["png_dir"], overwrite=True)
                image_io.save_images(images, paths)
        return out

    def encode(self, split: str = "test") -> dict:
        """The codes of every example of `split` (with labels) in ``codes_<split>.npz``."""
        device_state, step = self.restore_for_output()
        codes = self.codes(device_state, split)
        path = os.path.join(self.output_dir, f"codes_{split}.npz")
        if jax.process_index() == 0:
            np.savez(path, **codes)
        return {"codes": path, "step": step, "num_examples": len(codes[next(iter(codes))])}

    def codes(self, device_state, split: str) -> dict[str, np.ndarray]:
        """The family's ``encode_body`` outputs for every example of `split`, plus
        ``"label"`` where the data has labels."""
        body = self.family.encode_body

        def encode_step(state, batch, key):
            extra = {k: batch[k] for k in ("mask", "label") if k in batch}
            return {**body(state, batch, key), **extra}

        batches, _ = self.data.eval_batches(
            "image", split=split, global_batch=self.settings.eval.batch_size, max_examples=0,
            num_local_devices=self.parallel.num_local_devices, what="eval.batch_size")
        parts = []
        for batch in batches:
            out = self.parallel.fetch_examples(self.compiled("encode", encode_step,
                                                             per_example=True)(
                device_state, self.parallel.shard_batch(batch), self.keys["eval"]))
            keep = np.asarray(out.pop("mask")) > 0
            parts.append({k: np.asarray(v)[keep] for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def translate(self) -> dict:
        """Translate a folder (or the source domain's test split) with the latest checkpoint:
        one PNG per input, named after it, in a new or empty folder."""
        t = self.family.translate_config
        check_choice("translate.direction", t.direction, self.family.directions)
        out_dir = os.path.abspath(t.output_dir or os.path.join(
            self.output_dir, f"translated_{t.direction}"))
        if t.input_dir:
            check_separate_folders(t.input_dir, out_dir)
            size = self.data.image_shape
            images, names = image_io.load_image_folder(t.input_dir, size=size[0],
                                                       channels=size[-1])
            images = self.data.preprocess(images)
        else:
            domain = t.direction[0]
            images = self.data.images("test", domain)["image"]
            names = [f"{domain}_{i:06d}" for i in range(len(images))]
            images = self.data.preprocess(images)
        outputs = image_io.output_paths(names, out_dir, overwrite=t.overwrite)
        device_state, step = self.restore_for_output()
        translated = self.translate_images(device_state, t.direction, images)
        if jax.process_index() == 0:
            image_io.save_images(to_unit(translated, self.family.input_range), outputs)
        return {"output_dir": out_dir, "num_images": len(outputs), "step": step}

    def translate_images(self, device_state, direction: str, images: np.ndarray) -> np.ndarray:
        """`images` (model inputs of the source domain) translated in `direction`."""
        size = self.family.translate_config.batch_size
        chunk = self.parallel.num_devices * -(-size // self.parallel.num_devices)
        return map_in_chunks(
            self.compiled(f"translate_{direction}", self.family.translate_body(direction),
                          per_example=True),
            device_state, {"image": images}, chunk=chunk, parallel=self.parallel,
            key=self.keys["eval"])

    def write_json(self, filename: str, payload: dict) -> str | None:
        """Write a reader's JSON output in the output folder (process 0); return its path."""
        if jax.process_index() == 0:
            return write_json(os.path.join(self.output_dir, filename), payload)
        return None


def check_separate_folders(input_dir: str, output_dir: str) -> None:
    """Refuse an output folder that could overwrite inputs: the input folder itself, or one
    inside or around it, compared as real paths (symbolic links resolved).

    Raises:
      ConfigError: naming both folders (and where a link led).
    """
    if not os.path.isdir(input_dir):
        raise ConfigError(f"translate.input_dir={input_dir} is not a folder; name a folder of "
                          "images.")
    src, dst = os.path.realpath(input_dir), os.path.realpath(output_dir)
    resolved = "" if (src, dst) == (os.path.abspath(input_dir), os.path.abspath(output_dir)) \
        else f" (after following links: {src} and {dst})"
    if src == dst or dst.startswith(src + os.sep) or src.startswith(dst + os.sep):
        raise ConfigError(
            f"translate.output_dir={output_dir} and translate.input_dir={input_dir} are the "
            f"same folder or one holds the other{resolved}; choose an output folder outside "
            "the input folder (inputs are never overwritten).")


def _function_identity(fn, depth: int = 3):
    """What makes a body the same function across rebuilds: its code and, recursively, the
    code of the functions it closes over (wrappers such as ``with_step_key`` share theirs)."""
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None) or ()
    inner = tuple(_function_identity(c.cell_contents, depth - 1) for c in cells
                  if depth > 0 and callable(c.cell_contents))
    return (code, inner)


def supported_modes(family) -> list[str]:
    """The modes a family supports."""
    return [m for m, ok in (("train", True), ("evaluate", True),
                            ("sample", bool(family.samplers)),
                            ("encode", family.encode_body is not None),
                            ("translate", bool(family.directions))) if ok]


def run(settings: RunSettings, family_config, workdir: str, mode: str = "train", *,
        allow_config_change: bool = False, output_dir: str | None = None) -> dict:
    """Run `mode` on `workdir`; the returned dict is what the mode reports. Only ``train``
    writes in the workdir (checkpoints, events, its lock); the other modes only read it and
    write their files to `output_dir` (default: the workdir)."""
    runner = Runner(settings, family_config, workdir, read_only=mode != "train",
                    output_dir=output_dir, allow_config_change=allow_config_change)
    try:
        if mode not in supported_modes(runner.family):
            raise ConfigError(f"--mode={mode} is not available for the {settings.family} "
                              f"family; it supports {', '.join(supported_modes(runner.family))}.")
        logging.info("%s: %s on %d device(s)", settings.family, mode, runner.parallel.num_devices)
        return {"train": lambda: runner.train(allow_config_change=allow_config_change),
                "evaluate": runner.evaluate_latest,
                "sample": runner.sample, "encode": runner.encode,
                "translate": runner.translate}[mode]()
    finally:
        runner.close()
