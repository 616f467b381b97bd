"""Checkpoints with orbax-checkpoint: periodic, keep the last N, atomic, exact resume.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint as the latest one. Saves are asynchronous by
default: ``save`` returns once the state is copied off the devices, and the files are written
by a background thread while training goes on (the next save, a listing and ``close`` wait for
it). A checkpoint holds the whole
training state (step, params, optimizer state, EMA, model state); with the step-keyed
randomness and step-indexed data pipeline that is everything needed to resume exactly.

One process trains in a checkpoint directory at a time: a *writer* takes an exclusive lock
(``fcntl.flock`` on ``<directory>/.lock``, released by the kernel when the process ends, even
on ``kill -9``) that names its PID and host. *Readers* (evaluate, sample, ...) take no lock,
delete nothing, and restore the newest complete checkpoint, moving to the next newest if one
disappears under them (the trainer's keep-N clean-up).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import numpy as np
import orbax.checkpoint as ocp

LOCK_NAME = ".lock"
# How often a reader lists again when a step vanishes under it (the trainer's keep-N clean-up
# removes at most one or two folders per save, so a few tries always find a stable listing).
_LIST_ATTEMPTS = 20

T = TypeVar("T")


class CheckpointError(RuntimeError):
    """A checkpoint could not be read: corrupt, truncated, or from another model/config."""


class WorkdirLockedError(RuntimeError):
    """Another process is training in this checkpoint directory."""


@jax.jit
def _finite(leaves: list[jax.Array]) -> jax.Array:
    return jax.numpy.all(jax.numpy.stack([jax.numpy.all(jax.numpy.isfinite(x)) for x in leaves]))


def all_finite(tree: Any) -> bool:
    """True when every floating leaf of `tree` is finite (one reduction on the device,
    compiled once per tree structure)."""
    leaves = [x for x in jax.tree.leaves(tree)
              if hasattr(x, "dtype") and np.issubdtype(x.dtype, np.inexact)]
    return True if not leaves else bool(_finite(leaves))


def _abstract(x: Any) -> Any:
    return x if isinstance(x, jax.ShapeDtypeStruct) else ocp.utils.to_shape_dtype_struct(x)


def _chain(e: BaseException | None):
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def describe_error(e: BaseException) -> str:
    """One line for an exception from orbax/TensorStore: the informative messages of its chain
    (TensorStore's own text), without the ``<bound method ...>`` that some wrappers print in
    place of the details."""
    parts, seen = [], e
    while seen is not None and len(parts) < 3:
        text = " ".join(str(seen).split())
        text = re.sub(r"\s*(See full TensorStore details: )?<bound method.*$", "", text)
        if text and text not in parts:
            parts.append(f"{type(seen).__name__}: {text[:300]}")
        seen = seen.__cause__ or seen.__context__
    return "; ".join(parts) if parts else type(e).__name__


class Checkpointer:
    """Save and restore training states under a directory.

    Args:
      directory: where the numbered checkpoint folders go.
      every_steps: save when ``step % every_steps == 0`` (and whenever ``force=True``).
      keep: how many of the most recent checkpoints to keep.
      read_only: a reader: no lock, no clean-up, no saves.
      asynchronous: write checkpoint files in the background (orbax's async checkpointing).
    """

    def __init__(self, directory: str, *, every_steps: int, keep: int, read_only: bool = False,
                 asynchronous: bool = True):
        if every_steps < 1 or keep < 1:
            raise ValueError(
                f"checkpoint every_steps and keep must be >= 1, got {every_steps} and {keep}."
            )
        self.directory = os.path.abspath(directory)
        self.every_steps = every_steps
        self.read_only = read_only
        self._lock = None
        self._options = ocp.CheckpointManagerOptions(
            # A reader neither saves nor deletes (orbax warns unless told so).
            max_to_keep=None if read_only else keep,
            save_interval_steps=0 if read_only else every_steps, create=not read_only,
            read_only=read_only,
            # Done synchronously below: orbax would start a background thread for it that can
            # race with other file-system users (e.g. TFDS's mocked file system).
            cleanup_tmp_directories=False,
            # A save is renamed into place only once all its files are written, in the
            # background or not, so kill -9 at any moment leaves complete checkpoints only.
            enable_async_checkpointing=asynchronous and not read_only,
        )
        self._manager = None
        if not read_only:
            os.makedirs(self.directory, exist_ok=True)
            self._acquire_lock()
            self._remove_unfinished_saves()
            self._manager = ocp.CheckpointManager(self.directory, options=self._options)

    def _listed(self, read: Callable[[], T]) -> T:
        """`read()` (a listing of the directory), again if a checkpoint vanishes under it.

        Listing stats every step folder; a trainer's keep-N clean-up can delete one between
        the directory read and the stat (``FileNotFoundError``). The next listing no longer
        has it, so a reader retries rather than failing because a trainer did its work.
        """
        for attempt in range(_LIST_ATTEMPTS):
            try:
                return read()
            except FileNotFoundError:
                if attempt + 1 == _LIST_ATTEMPTS:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _reload(self) -> None:
        """Re-read the directory (a reader opens orbax's manager on the first call, so that a
        reader of a missing directory creates nothing)."""
        if self._manager is None:
            if not os.path.isdir(self.directory):
                return
            self._manager = self._listed(
                lambda: ocp.CheckpointManager(self.directory, options=self._options))
        self._listed(self._manager.reload)

    def _acquire_lock(self) -> None:
        if jax.process_index() != 0:
            return
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, LOCK_NAME)
        f = open(path, "a+")  # noqa: SIM115 (held open for the life of the trainer)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "an unknown process"
            f.close()
            raise WorkdirLockedError(
                f"{self.directory} is in use by another training process ({holder}); wait for "
                "it to finish or stop it, or train in another --workdir. Evaluating or "
                "sampling from this workdir while it trains is fine.") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        f.flush()
        self._lock = f

    def _remove_unfinished_saves(self) -> None:
        """Delete the temporary folders of saves a crash interrupted (the lock holder only)."""
        if jax.process_index() != 0 or not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if ".orbax-checkpoint-tmp" in name:
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    def all_steps(self) -> list[int]:
        """The complete checkpoints on disk, oldest first (re-read every call, after any
        save in flight is finished)."""
        self.wait()
        self._reload()
        return sorted(self._manager.all_steps()) if self._manager is not None else []

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def should_save(self, step: int) -> bool:
        return step % self.every_steps == 0

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Save `state` (a host or device pytree) as checkpoint `step`; with asynchronous
        saves, return once it is copied off the devices (its buffers may then be donated)."""
        if self.read_only:
            raise RuntimeError("a read-only Checkpointer cannot save.")
        return self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, target: Any, step: int | None = None) -> Any:
        """Restore checkpoint `step` (default: the newest complete one) into the structure of
        `target` (arrays, or ``jax.ShapeDtypeStruct`` leaves, with shardings where the result
        should be placed on devices). Without a `step`, a checkpoint deleted while it is
        listed or read (a trainer's keep-N clean-up) is skipped for the next newest, and the
        directory is listed again when every listed one has gone.

        Raises:
          CheckpointError: when there is none, or the files are corrupt or do not match
            `target`.
        """
        abstract = jax.tree.map(_abstract, target)
        for _ in range(_LIST_ATTEMPTS):
            steps = [step] if step is not None else self.all_steps()[::-1]
            if not steps:
                raise CheckpointError(f"no checkpoint in {self.directory}; train first with "
                                      "the same --workdir (--mode=train).")
            for s in steps:
                try:
                    return self._manager.restore(s, args=ocp.args.StandardRestore(abstract))
                except Exception as e:  # orbax raises many types; name the file and the remedy
                    if step is None and self._vanishing(s, e):
                        continue  # removed by the trainer's clean-up while we read it
                    raise CheckpointError(
                        f"checkpoint {s} in {self.directory} could not be restored "
                        f"({describe_error(e)}). It is corrupt or does not hold this model's "
                        "state. Move that step's folder away to fall back to an earlier one, or "
                        "start afresh in a new workdir.") from e
        raise CheckpointError(f"no checkpoint in {self.directory} stayed in place long enough "
                              "to be read; is a trainer saving and deleting every step?")

    def _vanishing(self, step: int, error: BaseException) -> bool:
        """Whether checkpoint `step` failed to restore because a trainer is deleting it. The
        clean-up removes a folder's files before the folder itself, so a restore that missed
        a file (``FileNotFoundError`` in the chain) waits up to a second for the folder to
        go; a folder that stays is a real error (a damaged checkpoint)."""
        folder = os.path.join(self.directory, str(step))
        missing = any(isinstance(x, FileNotFoundError) for x in _chain(error))
        for _ in range(20 if missing else 1):
            if not os.path.isdir(folder):
                return True
            if missing:
                time.sleep(0.05)
        return False

    def reject(self, step: int) -> str:
        """Move checkpoint `step` out of the way (to ``<directory>_rejected/<step>``), so that
        resuming starts from the one before; returns where it went. Nothing is deleted."""
        self.wait()
        target = os.path.join(f"{self.directory}_rejected", str(step))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.rename(os.path.join(self.directory, str(step)), target)
        self._reload()
        return target

    def wait(self) -> None:
        """Block until any asynchronous save has finished."""
        if self._manager is not None:
            self._manager.wait_until_finished()

    def close(self) -> None:
        if self._manager is not None:
            self._manager.wait_until_finished()
            self._manager.close()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
