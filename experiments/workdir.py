"""What a workdir records and checks across runs and processes.

``config.json`` holds the settings a workdir was trained with: resuming with settings that change
the run's meaning is an error (:func:`check_config_drift`). In a multi-process job every process
must be started with the same settings (:func:`check_same_settings`). JSON files are written
atomically (:func:`jaxgen.training.metrics.write_json`), so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os

import jax
import numpy as np

from jaxgen.training.metrics import write_json
from jaxgen.validation import ConfigError

# Settings that may change between the runs of one workdir without changing what it trains.
MAY_CHANGE = ("train.num_steps", "train.num_epochs", "train.log_every", "train.eval_every",
              "train.checkpoint_every", "train.keep_checkpoints", "train.progress",
              "train.parallel", "eval.", "sampling.", "translate.", "data.data_dir",
              "data.local_dir", "data.download", "data.root")


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
HOST_LOCAL = ("data.data_dir", "data.local_dir", "data.root", "train.progress")


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


def check_config_drift(workdir: str, record: dict, *, allow: bool) -> None:
    """Compare the settings with those the workdir was trained with (``config.json``).

    Raises:
      ConfigError: a setting that changes the run's meaning (seed, model, loss, batch, ...)
        differs, unless `allow`; the message lists every such key with both values.
    """
    saved = read_json(workdir, "config.json")
    if saved is not None:
        old, new = _flatten(saved), _flat_record(record)
        changed = sorted(k for k in old.keys() | new.keys()
                         if old.get(k) != new.get(k) and not k.startswith(MAY_CHANGE))
        if changed and not allow:
            listing = "; ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in changed)
            raise ConfigError(
                f"{workdir} was trained with other settings ({listing}); resuming would mix "
                "two runs. Use a new --workdir, or pass --allow_config_change to continue on "
                "purpose.")
    if jax.process_index() == 0 and (saved is None or allow):
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
