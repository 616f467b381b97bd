"""Run an experiment: ``python -m experiments.main --config CONFIG --workdir DIR``.

Modes: ``train`` (default; resumes from the workdir's latest checkpoint), ``evaluate`` (the
latest checkpoint on the test split) and ``encode`` (write latent codes, AE/VAE).
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
_MODE = flags.DEFINE_enum("mode", "train", ["train", "evaluate", "encode"], "What to do.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
flags.mark_flags_as_required(["config", "workdir"])

TRAINERS = {"autoencoder": "experiments.autoencoders"}


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
    if _MODE.value == "train":
        summary = trainer.train_and_evaluate(config, _WORKDIR.value)
    elif _MODE.value == "evaluate":
        summary = trainer.evaluate_checkpoint(config, _WORKDIR.value)
    else:
        summary = {"codes": trainer.encode_split(config, _WORKDIR.value)}
    if jax.process_index() == 0:
        eval_keys = sorted(k for k in summary if k.startswith("eval/"))
        for k in eval_keys:
            print(f"{k}: {summary[k]:.4f}")
        print(f"outputs in {_WORKDIR.value}: checkpoints/, tensorboard/, images/, *.json",
              file=sys.stdout)


if __name__ == "__main__":
    app.run(main)
