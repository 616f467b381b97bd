"""Run an experiment: ``python -m experiments.main --config CONFIG --workdir DIR``.

Modes: ``train`` (default; resumes from the workdir's latest checkpoint), ``evaluate`` (the
latest checkpoint on the test split), ``encode`` (write latent codes: AE/VAE), ``sample``
(generate images from the latest checkpoint: diffusion, GAN) and ``translate`` (map a folder of
images to the other domain: CycleGAN).
Override any setting with ``--config.<key>=<value>``; an unknown key is an error.
Multi-host: add ``--coordinator_address=HOST:PORT --num_processes=N --process_id=I`` on each
host (or set JAXGEN_COORDINATOR_ADDRESS / JAXGEN_NUM_PROCESSES / JAXGEN_PROCESS_ID).
"""

from __future__ import annotations

import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, events, images.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "evaluate", "encode", "sample", "translate"],
                          "What to do.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
flags.mark_flags_as_required(["config", "workdir"])

TRAINERS = {
    "autoencoder": "experiments.autoencoders",
    "diffusion": "experiments.diffusion",
    "gan": "experiments.gan",
    "cyclegan": "experiments.cyclegan",
}
# mode -> the trainer-module function ``fn(config, workdir) -> dict`` that implements it
MODES = {
    "train": "train_and_evaluate",
    "evaluate": "evaluate_checkpoint",
    "encode": "encode_split",
    "sample": "sample",
    "translate": "translate",
}


def main(argv):
    del argv
    from jaxgen.training import distributed

    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    import importlib

    import jax

    config = _CONFIG.value
    if config.experiment not in TRAINERS:
        raise ValueError(f"config.experiment={config.experiment!r} is not one of {list(TRAINERS)}")
    trainer = importlib.import_module(TRAINERS[config.experiment])
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    mode = getattr(trainer, MODES[_MODE.value], None)
    if mode is None:
        supported = [m for m, fn in MODES.items() if hasattr(trainer, fn)]
        raise ValueError(f"--mode={_MODE.value} is not available for config.experiment="
                         f"{config.experiment!r}; it supports {supported}.")
    summary = mode(config, _WORKDIR.value)
    if jax.process_index() == 0:
        for k in sorted(k for k in summary if k.startswith("eval/")):
            print(f"{k}: {summary[k]:.4f}")
        for k in sorted(k for k in summary if not k.startswith(("eval/", "train/", "config"))
                        and isinstance(summary[k], str)):
            print(f"{k}: {summary[k]}")
        print(f"outputs in {_WORKDIR.value}: checkpoints/, tensorboard/, images/, *.json",
              file=sys.stdout)


if __name__ == "__main__":
    app.run(main)
