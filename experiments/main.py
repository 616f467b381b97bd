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

import os
import sys
import traceback

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
_ALLOW_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Resume a workdir although settings that change the run's meaning differ from its own.")
_DEBUG = flags.DEFINE_bool("debug", False, "Show the full traceback of an error.")
flags.mark_flags_as_required(["config", "workdir"])

# Errors whose message says what was wrong and what to do: printed as one line.
def _expected_errors() -> tuple[type[BaseException], ...]:
    from jaxgen.data.fashion_mnist import DatasetFileError, DatasetNotFoundError
    from jaxgen.data.image_io import ImageFileError
    from jaxgen.training import CheckpointError, NonFiniteLossError
    from jaxgen.training.checkpoint import WorkdirLockedError
    from jaxgen.validation import ConfigError

    return (ConfigError, CheckpointError, NonFiniteLossError, WorkdirLockedError,
            DatasetFileError, DatasetNotFoundError, ImageFileError, FloatingPointError)


def main(argv):
    del argv
    from jaxgen.training import distributed, xla_flags

    xla_flags.set_cpu_flags()  # before the first computation starts the CPU backend

    multi = distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    import jax

    from experiments import runner, settings

    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    try:
        run_settings, family_config = settings.from_config_dict(_CONFIG.value)
        summary = runner.run(run_settings, family_config, _WORKDIR.value, _MODE.value,
                             allow_config_change=_ALLOW_CHANGE.value)
    except _expected_errors() as e:
        if _DEBUG.value and not multi:
            raise
        if _DEBUG.value:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        print("(add --debug for the full traceback)", file=sys.stderr)
        _exit(2, multi)
    except BaseException:
        if not multi:
            raise
        traceback.print_exc()
        _exit(1, multi)
    if jax.process_index() == 0:
        for k in sorted(k for k in summary if k.startswith("eval/") and not k.endswith("_se")):
            se = summary.get(f"{k}_se")
            print(f"{k}: {summary[k]:.4f}" + (f" ± {se:.4f} (standard error)" if se else ""))
        for k in sorted(k for k in summary if isinstance(summary[k], str)
                        and not k.startswith(("eval/", "train/"))):
            print(f"{k}: {summary[k]}")
        print(f"outputs in {_WORKDIR.value}: checkpoints/, tensorboard/, images/, *.json")


def _exit(code: int, multi: bool) -> None:
    """Exit with `code`. In a multi-process job the process leaves at once, skipping JAX's
    shutdown barrier (which would wait for the other processes while they wait for this one
    in a collective): the others see the connection close and stop too."""
    if multi:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    app.run(main)
