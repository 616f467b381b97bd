"""What a workdir records and checks across runs and processes.

``config.json`` holds the settings a workdir was trained with: resuming with settings that change
the run's meaning is an error (:func:`check_config_drift`). In a multi-process job every process
must be started with the same settings (:func:`check_same_settings`). JSON files are written
atomically (:func:`jaxgen.training.writer.write_json`), so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile

import jax
import numpy as np

from jaxgen.training.writer import write_json
from jaxgen.validation import ConfigError

# Settings that may change between the runs of one workdir without changing what it trains.
MAY_CHANGE = ("train.num_steps", "train.num_epochs", "train.log_every", "train.eval_every",
              "train.checkpoint_every", "train.keep_checkpoints", "train.async_checkpoints",
              "train.progress",
              "train.parallel", "eval.", "sampling.", "translate.", "data.data_dir",
              "data.local_dir", "data.download", "data.root", "data.path", "data.workers",
              "data.threads", "data.max_bad_fraction")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _flat_record(record: dict) -> dict:
    """`record` as ``{"section.key": value}``, with values as JSON gives them back (tuples
    become lists), so that it compares equal to a saved ``config.json``."""
    return _flatten(json.loads(json.dumps(record)))


# Settings that may differ between the processes of one job (paths on each host, the bar).
HOST_LOCAL = ("data.data_dir", "data.local_dir", "data.root", "data.path", "data.workers",
              "data.threads", "train.progress")


def check_same_settings(record: dict) -> None:
    """In a multi-process job, stop every process with the same error when they were started
    with different settings (anything but `HOST_LOCAL`): they would train different models
    in lockstep, or wait forever for each other."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    shared = {k: v for k, v in _flat_record(record).items() if not k.startswith(HOST_LOCAL)}
    digest = hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).digest()[:8]
    mine = np.frombuffer(digest, np.uint32)
    everyone = np.asarray(multihost_utils.process_allgather(mine)).reshape(-1, mine.size)
    differ = [i for i, d in enumerate(everyone) if not np.array_equal(d, everyone[0])]
    if differ:
        raise ConfigError(
            f"the processes of this job were started with different settings (processes "
            f"{differ} differ from process 0); start every process with the same --config "
            f"and overrides (only {', '.join(HOST_LOCAL)} may differ).")


# Settings that decide what a checkpoint holds (the arrays of the model and its optimizer).
STATE_KEYS = ("family", "model.", "optimizer.", "d_optimizer.")


# Settings added after runs were trained, with the value such a run had without naming it: a
# ``config.json`` that lacks the key holds that value (a float32 run from before ``model.dtype``
# existed still resumes and is still read).
IMPLIED_BEFORE = {"model.dtype": "float32", "model.class_conditional": False}


def config_differences(saved: dict, record: dict, only: tuple[str, ...] = ("",)) -> list[str]:
    """The settings (under the prefixes `only`) that change a run's meaning and differ
    between a saved ``config.json`` and `record`, as ``"key: old → new"``."""
    old, new = _flatten(saved), _flat_record(record)
    old = {**{k: v for k, v in IMPLIED_BEFORE.items() if k in new}, **old}
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)
                     and k.startswith(only) and not k.startswith(MAY_CHANGE))
    return [f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in changed]


def check_config_drift(workdir: str, record: dict, *, allow: bool) -> bool:
    """Compare the settings with those the workdir was trained with (``config.json``).

    Returns:
      Whether :func:`write_config` should record `record` once the run has started (a new
      run, or a change allowed on purpose). Nothing is written here: a start that fails
      leaves the workdir's record as it was.

    Raises:
      ConfigError: a setting that changes the run's meaning (seed, model, loss, batch, ...)
        differs, unless `allow`; the message lists every such key with both values.
    """
    saved = read_json(workdir, "config.json")
    if saved is not None:
        changed = config_differences(saved, record)
        if changed and not allow:
            raise ConfigError(
                f"{workdir} was trained with other settings ({'; '.join(changed)}); resuming "
                "would mix two runs. Use a new --workdir, or pass --allow_config_change to "
                "continue on purpose.")
    return saved is None or allow


def check_reader_config(workdir: str, record: dict, *, allow: bool) -> None:
    """A reader (evaluate, sample, ...) must build the model the workdir's checkpoints hold.

    Raises:
      ConfigError: the settings differ from the run's ``config.json`` in a key that decides
        what its checkpoints hold (`STATE_KEYS`), unless `allow`; the message lists them.
    """
    saved = read_json(workdir, "config.json")
    changed = [] if saved is None or allow else config_differences(saved, record, STATE_KEYS)
    if changed:
        raise ConfigError(
            f"these settings differ from those {workdir} was trained with "
            f"({'; '.join(changed)}), so its checkpoints do not hold this model. Use the "
            "training run's --config and overrides (its config.json lists them).")


def write_config(workdir: str, record: dict) -> None:
    """Record the settings a workdir trains with (process 0; atomically)."""
    if jax.process_index() == 0:
        write_json(os.path.join(workdir, "config.json"), record)


def check_finite(metrics: dict, what: str) -> None:
    bad = sorted(k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v))
    if bad:
        raise FloatingPointError(f"the {what} gave non-finite {', '.join(bad)}; the checkpoint "
                                 "it used is not usable (see the Failure behaviour section).")


def read_json(workdir: str, filename: str) -> dict | None:
    path = os.path.join(workdir, filename)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def ensure_writable(folder: str, setting: str, hint: str = "") -> str:
    """Create `folder` if needed and check that files can be written in it (a probe file is
    written and removed: permissions, a read-only file system or an immutable folder all
    show up here, before anything is computed). Returns `folder`.

    Raises:
      ConfigError: naming `setting`, the folder and the reason (and `hint`).
    """
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError(f"{setting}={folder} is a file, not a folder; choose a folder.")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".jaxgen-write-check-"):
            pass
    except OSError as e:
        reason = e.strerror or str(e)
        where = f" ({e.filename})" if e.filename and os.path.abspath(e.filename) != \
            os.path.abspath(folder) else ""
        raise ConfigError(f"{setting}={folder} cannot be written: {reason}{where}; choose a "
                          f"folder you can write to{hint}.") from None
    return folder
