"""The training loop shared by every model family.

``fit`` resumes from the latest checkpoint, runs the compiled step, averages metrics over
logging windows, stops on a non-finite metric before it can reach a checkpoint, evaluates and
checkpoints periodically, and returns the final state on the host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from jaxgen.training.checkpoint import Checkpointer, all_finite
from jaxgen.training.parallel import DataParallel
from jaxgen.training.writer import MetricWriter
from jaxgen.validation import ConfigError

Batch = Mapping[str, np.ndarray]


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite metric; the last good checkpoint was left untouched."""


class TrainingInterrupted(Exception):  # noqa: N818 (not an error: a stop on request)
    """Training stopped on a signal: Ctrl-C (SIGINT; nothing saved beyond the last periodic
    checkpoint) or SIGTERM (preemption; a checkpoint was saved at the step boundary).

    Attributes:
      exit_code: the conventional status, 128 + the signal's number (130 or 143).
    """

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def preemption_notice() -> Iterator[Callable[[int], bool]]:
    """While active, ``preempted(step)`` says whether SIGTERM (how cloud machines, Kubernetes
    and Slurm preempt a job) has arrived, so the loop can save at that step boundary.

    One process: a SIGTERM handler (main thread only) sets a flag. Several processes: JAX's
    preemption sync point (``jax.distributed`` watches SIGTERM on every host and makes all
    processes answer True at the same step); ``preempted`` must then be called at every step
    by every process.
    """
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        def sync_point(step: int) -> bool:
            try:
                return multihost_utils.reached_preemption_sync_point(step)
            except RuntimeError:  # the preemption service is off: SIGTERM ends the job
                return False

        yield sync_point
        return
    if threading.current_thread() is not threading.main_thread():
        yield lambda step: False
        return
    received = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.set())
    try:
        yield lambda step: received.is_set()
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupt_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) that arrives inside the block is raised when the block ends.

    Around a checkpoint save: a KeyboardInterrupt raised while orbax schedules an asynchronous
    save can leave its writer thread unknown to ``wait_until_finished``, so the process exits
    under it and the thread dies with "cannot schedule new futures after shutdown" (seen under
    load). Deferred, the save is registered whole and the interrupt handler waits for it.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught.is_set():
        raise KeyboardInterrupt


def _stopped(checkpointer: Checkpointer) -> str:
    """The end of a non-finite error: where training can resume from, and what to change."""
    good = checkpointer.latest_step()
    where = (f"the last good checkpoint (step {good}) in {checkpointer.directory} is intact: "
             "lower the learning rate or enable gradient clipping (optimizer.grad_clip_norm) "
             "and rerun with --allow_config_change to resume from it" if good is not None else
             f"no good checkpoint is in {checkpointer.directory}: start afresh (a new workdir) "
             "with a lower learning rate or gradient clipping (optimizer.grad_clip_norm)")
    return f"training stopped; {where}."


def _window_means(window: list, parallel: DataParallel, done: int,
                  checkpointer: Checkpointer) -> dict[str, float]:
    """The means of a logging window's metrics (``train/*``), which ends at step `done`.

    Raises:
      NonFiniteLossError: one is not finite; names the first step that gave it, and moves
        aside the checkpoint of the state that gave it if it is the latest.
    """
    per_step = parallel.fetch(window)
    means = {f"train/{k}": float(np.mean([m[k] for m in per_step])) for k in per_step[0]}
    bad = sorted(k for k, v in means.items() if not math.isfinite(v))
    if bad:
        first = done - len(window) + 1 + next(
            i for i, m in enumerate(per_step)
            if not all(np.isfinite(float(v)) for v in m.values()))
        # The metrics of step `first` came from the state after step first − 1: a
        # checkpoint of that state is not good, however finite its numbers.
        aside = ""
        if checkpointer.latest_step() == first - 1:
            aside = (f" the checkpoint of the state that gave it (step {first - 1}) "
                     f"was moved to {checkpointer.reject(first - 1)};")
        raise NonFiniteLossError(
            f"non-finite {', '.join(bad)} at step {first};{aside} " + _stopped(checkpointer))
    return means


@dataclasses.dataclass(frozen=True)
class _Failed:
    error: Exception


def batches_of(batch_for_step: Callable[[int], Batch]) -> Callable[[int], Iterator[Batch]]:
    """:func:`fit`'s ``batches`` from a function of the step index (``step -> batch``)."""
    return lambda start: map(batch_for_step, itertools.count(start))


def fit(
    *,
    state: Any,
    train_step: Callable,
    batches: Callable[[int], Iterable[Batch]],
    parallel: DataParallel,
    train_key: jax.Array,
    num_steps: int,
    checkpointer: Checkpointer,
    writer: MetricWriter,
    log_every: int,
    eval_every: int = 0,
    evaluate: Callable[[Any, int], Mapping[str, float]] | None = None,
    progress: bool = True,
    on_start: Callable[[], None] | None = None,
) -> tuple[Any, dict[str, float], dict[str, float]]:
    """Train `state` up to `num_steps` updates, resuming from the latest checkpoint.

    Args:
      state: a freshly initialised host state, or only its shapes and dtypes (e.g. from
        ``jax.eval_shape``) when a checkpoint exists: the latest checkpoint replaces it,
        read straight onto the devices.
      train_step: ``parallel.compile(with_step_key(body))``: ``(state, batch, train_key)``.
      batches: ``batches(start)`` yields this process's part of the global batch of each
        step from `start` on (e.g. ``TrainBatches.iterate``). The next batch is read and
        copied to the devices while the current step runs.
      parallel: places states and batches on the devices.
      train_key: the run's training key; each step folds in its step number.
      num_steps: total number of updates of the run (not of this invocation).
      checkpointer: saves every ``checkpointer.every_steps`` and at the end.
      writer: receives ``train/*`` scalars (means over each logging window).
      log_every: length of the logging window in steps.
      eval_every: call ``evaluate(device_state, step)`` every that many steps and at the end
        (0: only at the end); its scalars are written too.
      progress: show a tqdm progress bar (process 0 only).
      on_start: called once the run has really started (the state restored or initialised,
        before the first step), e.g. to record the run's settings.

    Returns:
      ``(host_state, last_train_metrics, last_eval_metrics)``; the final evaluation runs at
      ``num_steps`` (also when resuming a finished run).

    Raises:
      NonFiniteLossError: a train metric became NaN/inf; no checkpoint after it was written.
      TrainingInterrupted: Ctrl-C (the last checkpoint is kept as it is) or SIGTERM (a
        checkpoint of the last finished step was saved first); rerunning resumes exactly.
    """
    start = checkpointer.latest_step() or 0
    if start > num_steps:
        raise ConfigError(
            f"the latest checkpoint in {checkpointer.directory} is at step {start}, beyond "
            f"num_steps={num_steps}; raise the step budget or use a fresh workdir.")
    if start:
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), state)
        device_state = parallel.placed(checkpointer.restore(parallel.restore_target(abstract)))
        if jax.process_index() == 0:
            tqdm.write(f"resumed from checkpoint step {start} in {checkpointer.directory}")
    else:
        device_state = parallel.replicate(state)
    if on_start is not None:
        on_start()
    window, window_steps, last, last_eval = [], 0, {}, {}
    bar = tqdm(total=num_steps, initial=start, disable=not progress or jax.process_index() != 0,
               dynamic_ncols=True, unit="step")
    window_start = time.perf_counter()
    done = start
    host_batches = iter(batches(start))

    def next_batch(step: int):
        """The batch of `step`, placed on the devices (the copy runs asynchronously); a
        failure to read it is kept and raised when the batch is needed, so the step that runs
        meanwhile still finishes and saves."""
        try:
            batch = next(host_batches, None)
            if batch is None:
                raise ValueError(f"the batches ended before step {step} of {num_steps}.")
            return parallel.shard_batch(batch)
        except Exception as e:  # noqa: BLE001 (re-raised below, at its step)
            return _Failed(e)

    try:
        with preemption_notice() as preempted:
            upcoming = next_batch(start) if start < num_steps else None
            for step in range(start, num_steps):
                if isinstance(upcoming, _Failed):
                    raise upcoming.error
                device_state, metrics = train_step(device_state, upcoming, train_key)
                # Dispatch is asynchronous: read and place the next batch while this step runs.
                upcoming = next_batch(step + 1) if step + 1 < num_steps else None
                window.append(metrics)  # device arrays: no host sync per step
                window_steps += 1
                done = step + 1
                stop = preempted(done)
                saving = checkpointer.should_save(done) or done == num_steps or stop
                if done % log_every == 0 or saving:
                    last = _window_means(window, parallel, done, checkpointer)
                    elapsed = time.perf_counter() - window_start
                    last["train/steps_per_s"] = window_steps / max(elapsed, 1e-9)
                    writer.write_scalars(done, last)
                    bar.set_postfix({k.split("/")[-1]: f"{v:.4g}" for k, v in last.items()})
                    window, window_steps, window_start = [], 0, time.perf_counter()
                if saving:
                    # The loss of a step is computed before its update: check the state the
                    # update produced, so that no checkpoint ever holds non-finite parameters.
                    if not all_finite(device_state):
                        raise NonFiniteLossError(
                            f"the state after step {done} has non-finite parameters or "
                            "optimizer state; " + _stopped(checkpointer))
                    with interrupt_deferred():
                        checkpointer.save(done, parallel.checkpointable(device_state),
                                          force=done == num_steps or stop)
                if stop:
                    checkpointer.wait()
                    raise TrainingInterrupted(
                        f"preempted (SIGTERM) after step {done}: saved checkpoint {done} in "
                        f"{checkpointer.directory}; rerun the same command to resume.", 143)
                # Evaluate after saving: an evaluation error never costs training steps.
                if evaluate is not None and (
                    done == num_steps or (eval_every and done % eval_every == 0)
                ):
                    last_eval = dict(evaluate(device_state, done))
                    writer.write_scalars(done, last_eval)
                bar.update(1)
    except KeyboardInterrupt:
        checkpointer.wait()
        latest = checkpointer.latest_step()
        kept = (f"the last checkpoint is step {latest} in {checkpointer.directory}"
                if latest is not None else "no checkpoint was saved yet")
        raise TrainingInterrupted(
            f"interrupted (Ctrl-C) after step {done}; {kept}; rerun the same command to "
            "resume.", 130) from None
    finally:
        bar.close()
        if hasattr(host_batches, "close"):  # stop a reader's threads or worker processes
            host_batches.close()
        checkpointer.wait()
    if evaluate is not None and start == num_steps:
        last_eval = dict(evaluate(device_state, num_steps))
    return parallel.fetch(device_state), last, last_eval
