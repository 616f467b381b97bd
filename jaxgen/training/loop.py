"""The training loop shared by every model family.

``fit`` resumes from the latest checkpoint, runs the compiled step, averages metrics over
logging windows, stops on a non-finite metric before it can reach a checkpoint, evaluates and
checkpoints periodically, and returns the final state on the host.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from jaxgen.training.checkpoint import Checkpointer
from jaxgen.training.metrics import MetricWriter
from jaxgen.training.parallel import DataParallel

Batch = Mapping[str, np.ndarray]


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite metric; the last good checkpoint was left untouched."""


def _add(a, b):
    return a + b  # stays on the device: no host sync per step


def fit(
    *,
    state: Any,
    train_step: Callable,
    batch_for_step: Callable[[int], Batch],
    parallel: DataParallel,
    train_key: jax.Array,
    num_steps: int,
    checkpointer: Checkpointer,
    writer: MetricWriter,
    log_every: int,
    eval_every: int = 0,
    evaluate: Callable[[Any, int], Mapping[str, float]] | None = None,
    progress: bool = True,
) -> tuple[Any, dict[str, float], dict[str, float]]:
    """Train `state` up to `num_steps` updates, resuming from the latest checkpoint.

    Args:
      state: a freshly initialised host state; replaced by the latest checkpoint if one exists.
      train_step: ``parallel.compile(with_step_key(body))``: ``(state, batch, train_key)``.
      batch_for_step: returns this process's part of the global batch for a step index.
      parallel: places states and batches on the devices.
      train_key: the run's training key; each step folds in its step number.
      num_steps: total number of updates of the run (not of this invocation).
      checkpointer: saves every ``checkpointer.every_steps`` and at the end.
      writer: receives ``train/*`` scalars (means over each logging window).
      log_every: length of the logging window in steps.
      eval_every: call ``evaluate(device_state, step)`` every that many steps and at the end
        (0: only at the end); its scalars are written too.
      progress: show a tqdm progress bar (process 0 only).

    Returns:
      ``(host_state, last_train_metrics, last_eval_metrics)``; the final evaluation runs at
      ``num_steps`` (also when resuming a finished run).

    Raises:
      NonFiniteLossError: a train metric became NaN/inf; no checkpoint after it was written.
    """
    start = checkpointer.latest_step() or 0
    if start:
        state = checkpointer.restore(state)
        if jax.process_index() == 0:
            tqdm.write(f"resumed from checkpoint step {start} in {checkpointer.directory}")
    if start > num_steps:
        raise ValueError(
            f"the latest checkpoint is at step {start}, beyond num_steps={num_steps}; "
            "raise the step budget or use a fresh workdir."
        )
    device_state = parallel.replicate(state)
    window, window_steps, last, last_eval = None, 0, {}, {}
    bar = tqdm(total=num_steps, initial=start, disable=not progress or jax.process_index() != 0,
               dynamic_ncols=True, unit="step")
    window_start = time.perf_counter()
    try:
        for step in range(start, num_steps):
            batch = parallel.shard_batch(batch_for_step(step))
            device_state, metrics = train_step(device_state, batch, train_key)
            window = metrics if window is None else jax.tree.map(_add, window, metrics)
            window_steps += 1
            done = step + 1
            saving = checkpointer.should_save(done) or done == num_steps
            if done % log_every == 0 or saving:
                sums = parallel.fetch(window)
                last = {f"train/{k}": float(v) / window_steps for k, v in sums.items()}
                bad = sorted(k for k, v in last.items() if not math.isfinite(v))
                if bad:
                    raise NonFiniteLossError(
                        f"non-finite {', '.join(bad)} between steps {done - window_steps + 1} "
                        f"and {done}; training stopped and the last good checkpoint (step "
                        f"{checkpointer.latest_step()}) in {checkpointer.directory} is intact. "
                        "Lower the learning rate or enable gradient clipping, then rerun the "
                        "same command to resume from it."
                    )
                elapsed = time.perf_counter() - window_start
                last["train/steps_per_s"] = window_steps / max(elapsed, 1e-9)
                writer.write_scalars(done, last)
                bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in last.items()})
                window, window_steps, window_start = None, 0, time.perf_counter()
            if evaluate is not None and (
                done == num_steps or (eval_every and done % eval_every == 0)
            ):
                last_eval = dict(evaluate(device_state, done))
                writer.write_scalars(done, last_eval)
            if saving:
                checkpointer.save(done, parallel.fetch(device_state), force=done == num_steps)
            bar.update(1)
    finally:
        bar.close()
        checkpointer.wait()
    if evaluate is not None and start == num_steps:
        last_eval = dict(evaluate(device_state, num_steps))
    return parallel.fetch(device_state), last, last_eval
