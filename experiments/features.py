"""Load the evaluation suite's feature classifier from its workdir.

The classifier is an ordinary run of the ``classifier`` family; it is read back through the
same typed settings as any run (its ``config.json`` → :func:`experiments.settings
.from_config_dict` → :class:`experiments.runner.Runner` with ``read_only=True``), and wrapped
as a :class:`jaxgen.evaluation.features.FeatureExtractor`.
"""

from __future__ import annotations

import json
import os

import jax
import ml_collections

from experiments import runner as runner_lib
from experiments import settings as settings_lib
from experiments import workdir as workdir_lib
from jaxgen.evaluation.features import PREPROCESSING, FeatureExtractor
from jaxgen.training import CheckpointError

DEFAULT_WORKDIR = "runs/classifier_fmnist"
CONFIG_FILE = "experiments/configs/classifier_fmnist.py"


def train_command(workdir: str = DEFAULT_WORKDIR) -> str:
    return f"python -m experiments.main --config {CONFIG_FILE} --workdir {workdir}"


class MissingClassifierError(CheckpointError):
    """The feature classifier has not been trained (no checkpoint in its workdir)."""


def read_settings(workdir: str):
    """``(RunSettings, family config, the raw config dict)`` a workdir was trained with."""
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        record = json.load(f)
    return (*settings_lib.from_config_dict(ml_collections.ConfigDict(record)), record)


def load_classifier(workdir: str = DEFAULT_WORKDIR, *, batch_size: int = 500
                    ) -> FeatureExtractor:
    """The trained classifier of `workdir` (its latest checkpoint) as a feature extractor.

    Raises:
      MissingClassifierError: `workdir` holds no trained classifier; the message gives the
        command that trains it.
    """
    ckpt = os.path.join(workdir, "checkpoints")
    steps = [d for d in os.listdir(ckpt) if d.isdigit()] if os.path.isdir(ckpt) else []
    if not steps or not os.path.exists(os.path.join(workdir, "config.json")):
        raise MissingClassifierError(
            f"no trained feature classifier in {workdir} (no checkpoint); train it first with "
            f"`{train_command(workdir)}`, or point --classifier_workdir at a finished run.")
    run_settings, family_config, record = read_settings(workdir)
    if run_settings.family != "classifier":
        raise MissingClassifierError(
            f"{workdir} holds a {run_settings.family!r} run, not a classifier; train one with "
            f"`{train_command(workdir)}`.")
    r = runner_lib.Runner(run_settings, family_config, workdir, read_only=True)
    try:
        state = r.checkpointer.restore(r.initial_state())
    finally:
        r.close()
    state = jax.device_get(state)
    summary = workdir_lib.read_json(workdir, "summary.json") or {}
    provenance = {
        "workdir": os.path.abspath(workdir), "config": CONFIG_FILE,
        "seed": run_settings.seed, "step": int(state.step),
        "data": f"{run_settings.data.source}:{run_settings.data.name}",
        "test_accuracy": summary.get("eval/accuracy"), "preprocessing": PREPROCESSING,
        "feature_dim": family_config.model.feature_dim,
    }
    return FeatureExtractor(model=r.family.model,
                            variables={"params": state.eval_params, **state.model_state},
                            image_shape=r.data.image_shape, provenance=provenance,
                            batch_size=batch_size)
