"""Load the evaluation suite's feature classifier from its workdir.

The classifier is an ordinary run of the ``classifier`` family, trained on the dataset whose
samples it scores (``runs/classifier_<dataset>`` by default, :func:`default_workdir`); it is read
back through the same typed settings as any run (its ``config.json`` →
:func:`experiments.settings.from_config_dict` → :class:`experiments.runner.Runner` with
``read_only=True``), and wrapped as a :class:`jaxgen.evaluation.features.FeatureExtractor`
whose provenance names its dataset (:func:`jaxgen.evaluation.suite.dataset_name`).
"""

from __future__ import annotations

import json
import os
import shlex

import jax
import ml_collections

from experiments import runner as runner_lib
from experiments import settings as settings_lib
from experiments import workdir as workdir_lib
from jaxgen.evaluation import suite
from jaxgen.evaluation.features import PREPROCESSING, FeatureExtractor
from jaxgen.training import CheckpointError

CONFIG_FILE = "experiments/configs/classifier_fmnist.py"
# The classifier's config trains on this dataset unless flags say otherwise.
DEFAULT_DATASET = "fmnist"


def default_workdir(dataset: str = DEFAULT_DATASET) -> str:
    """Where the classifier of `dataset` (:func:`jaxgen.evaluation.suite.dataset_name`) is
    trained by default: ``runs/classifier_<dataset>``."""
    return f"runs/classifier_{dataset}"


def data_flags(data) -> list[str]:
    """The ``--config.data.*`` flags that train the classifier on the dataset of a run's data
    settings (single-domain images, or CycleGAN's Fashion-MNIST classes / synthetic domains),
    at the run's image size and channels (zero-padding excepted: the suite crops padded
    samples back to the stored size, so the classifier reads the images as stored)."""
    source = getattr(data, "source", "tfds")
    if source == "fashion_mnist":  # CycleGAN's classes: the Fashion-MNIST images as stored
        return ["--config.data.source=tfds", "--config.data.name=fashion_mnist"]
    if source == "folder":
        flags = ["--config.data.source=folder",
                 f"--config.data.path={shlex.quote(str(getattr(data, 'path', '')))}"]
    elif source == "synthetic":
        flags = ["--config.data.source=synthetic"]
    else:
        flags = ["--config.data.source=tfds",
                 f"--config.data.name={shlex.quote(str(getattr(data, 'name', '')))}"]
        if getattr(data, "data_dir", None):
            flags.append(f"--config.data.data_dir={shlex.quote(data.data_dir)}")
    return flags + _shape_flags(data, synthetic=source == "synthetic")


def _shape_flags(data, *, synthetic: bool) -> list[str]:
    if getattr(data, "crop_size", None):  # CycleGAN's synthetic domains
        size, channels, resize = data.crop_size, getattr(data, "channels", 0), "crop"
    else:
        size, channels = getattr(data, "image_size", 0), getattr(data, "channels", 0)
        resize = getattr(data, "resize", "crop")
    flags = []
    if size and (synthetic or resize != "pad"):
        flags.append(f"--config.data.image_size={size}")
        if not synthetic and resize != "crop":
            flags.append(f"--config.data.resize={resize}")
    if channels:
        flags.append(f"--config.data.channels={channels}")
    return flags


def train_command(workdir: str | None = None, data=None) -> str:
    """The command that trains the feature classifier into `workdir` (default: the workdir of
    the dataset of `data`), on the dataset of the data settings `data` (None: the config's
    own, Fashion-MNIST)."""
    if workdir is None:
        workdir = default_workdir(suite.dataset_name(data) if data is not None
                                  else DEFAULT_DATASET)
    flags = data_flags(data) if data is not None else []
    return " ".join(["python -m experiments.main", "--config", CONFIG_FILE, "--workdir",
                     shlex.quote(workdir), *flags])


class MissingClassifierError(CheckpointError):
    """The feature classifier has not been trained (no checkpoint in its workdir)."""


def read_settings(workdir: str):
    """``(RunSettings, family config, the raw config dict)`` a workdir was trained with."""
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        record = json.load(f)
    return (*settings_lib.from_config_dict(ml_collections.ConfigDict(record)), record)


def data_description(data) -> str:
    """``source:name`` of data settings (``folder:<path>`` for an image folder, ``synthetic``
    for toy images)."""
    source = getattr(data, "source", "")
    if source == "synthetic":
        return source
    if source in ("folder", "folders"):
        return f"{source}:{getattr(data, 'path', '') or getattr(data, 'root', '')}"
    return f"{source}:{getattr(data, 'name', '')}"


def load_classifier(workdir: str | None = None, *, data=None, batch_size: int = 500
                    ) -> FeatureExtractor:
    """The trained classifier of `workdir` (its latest checkpoint) as a feature extractor.

    Args:
      workdir: the classifier's run (default: :func:`default_workdir` of `data`'s dataset).
      data: the data settings of the runs it is to score; only for the command in the error
        message (None: the classifier config's own dataset).
      batch_size: images per compiled call.

    Raises:
      MissingClassifierError: `workdir` holds no trained classifier; the message gives the
        command that trains it.
    """
    if workdir is None:
        workdir = default_workdir(suite.dataset_name(data) if data is not None
                                  else DEFAULT_DATASET)
    ckpt = os.path.join(workdir, "checkpoints")
    steps = [d for d in os.listdir(ckpt) if d.isdigit()] if os.path.isdir(ckpt) else []
    if not steps or not os.path.exists(os.path.join(workdir, "config.json")):
        raise MissingClassifierError(
            f"no trained feature classifier in {workdir} (no checkpoint); train it first with "
            f"`{train_command(workdir, data)}`, or point --classifier_workdir at a finished "
            "run.")
    run_settings, family_config, record = read_settings(workdir)
    if run_settings.family != "classifier":
        raise MissingClassifierError(
            f"{workdir} holds a {run_settings.family!r} run, not a classifier; train one with "
            f"`{train_command(workdir, data)}`.")
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
        "data": data_description(run_settings.data),
        "dataset": suite.dataset_name(run_settings.data),
        "test_accuracy": summary.get("eval/accuracy"), "preprocessing": PREPROCESSING,
        "feature_dim": family_config.model.feature_dim,
    }
    return FeatureExtractor(model=r.family.model,
                            variables={"params": state.eval_params, **state.model_state},
                            image_shape=r.data.image_shape, provenance=provenance,
                            batch_size=batch_size)
