"""Run an experiment: ``python -m experiments.main --config CONFIG --workdir DIR``.

Modes (``--mode``): ``train`` (default; resumes from the workdir's latest checkpoint),
``evaluate`` (the latest checkpoint on the test split), ``sample`` (generate images),
``encode`` (write latent codes) and ``translate`` (map images to the other domain); each family
supports the modes that apply to it. Override any setting with ``--config.<key>=<value>``; an
unknown key is an error. Multi-host: add ``--coordinator_address=HOST:PORT --num_processes=N
--process_id=I`` on each host (or set JAXGEN_COORDINATOR_ADDRESS / JAXGEN_NUM_PROCESSES /
JAXGEN_PROCESS_ID).
"""

from __future__ import annotations

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from experiments.runner import MODES

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, events, images.")
_MODE = flags.DEFINE_enum("mode", "train", list(MODES), "What to do.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    from jaxgen.training import distributed

    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    import jax

    from experiments import runner, settings

    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    run_settings, family_config = settings.from_config_dict(_CONFIG.value)
    summary = runner.run(run_settings, family_config, _WORKDIR.value, _MODE.value)
    if jax.process_index() == 0:
        for k in sorted(k for k in summary if k.startswith("eval/")):
            print(f"{k}: {summary[k]:.4f}")
        for k in sorted(k for k in summary if isinstance(summary[k], str)
                        and not k.startswith(("eval/", "train/"))):
            print(f"{k}: {summary[k]}")
        print(f"outputs in {_WORKDIR.value}: checkpoints/, tensorboard/, images/, *.json")


if __name__ == "__main__":
    app.run(main)
