"""Checkpoints with orbax-checkpoint: periodic, keep the last N, atomic, exact resume.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint as the latest one. A checkpoint holds the whole
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
import shutil
import socket
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

LOCK_NAME = ".lock"


class CheckpointError(RuntimeError):
    """A checkpoint could not be read: corrupt, truncated, or from another model/config."""


class WorkdirLockedError(RuntimeError):
    """Another process is training in this checkpoint directory."""


def all_finite(tree: Any) -> bool:
    """True when every floating leaf of `tree` is finite (one reduction on the device)."""
    leaves = [x for x in jax.tree.leaves(tree)
              if hasattr(x, "dtype") and np.issubdtype(x.dtype, np.inexact)]
    if not leaves:
        return True
    return bool(jax.jit(lambda ls: jax.numpy.all(jax.numpy.stack(
        [jax.numpy.all(jax.numpy.isfinite(x)) for x in ls])))(leaves))


class Checkpointer:
    """Save and restore training states under a directory.

    Args:
      directory: where the numbered checkpoint folders go.
      every_steps: save when ``step % every_steps == 0`` (and whenever ``force=True``).
      keep: how many of the most recent checkpoints to keep.
      read_only: a reader: no lock, no clean-up, no saves.
    """

    def __init__(self, directory: str, *, every_steps: int, keep: int, read_only: bool = False):
        if every_steps < 1 or keep < 1:
            raise ValueError(
                f"checkpoint every_steps and keep must be >= 1, got {every_steps} and {keep}."
            )
        self.directory = os.path.abspath(directory)
        self.every_steps = every_steps
        self.read_only = read_only
        self._lock = None
        os.makedirs(self.directory, exist_ok=True)
        if not read_only:
            self._acquire_lock()
            self._remove_unfinished_saves()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, save_interval_steps=every_steps, create=not read_only,
                read_only=read_only,
                # Done synchronously above: orbax would start a background thread for it that
                # can race with other file-system users (e.g. TFDS's mocked file system).
                cleanup_tmp_directories=False,
                # Synchronous saves: a save is complete (and renamed into place) when save()
                # returns, which keeps kill-and-resume semantics simple.
                enable_async_checkpointing=False,
            ),
        )

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
        """The complete checkpoints on disk, oldest first (re-read every call)."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def should_save(self, step: int) -> bool:
        return step % self.every_steps == 0

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Save `state` (a host or device pytree) as checkpoint `step`."""
        if self.read_only:
            raise RuntimeError("a read-only Checkpointer cannot save.")
        return self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, target: Any, step: int | None = None) -> Any:
        """Restore checkpoint `step` (default: the newest complete one) into the structure of
        `target`. Without a `step`, a checkpoint deleted while it is read (a trainer's keep-N
        clean-up) is skipped for the next newest.

        Raises:
          CheckpointError: when there is none, or the files are corrupt or do not match
            `target`.
        """
        steps = [step] if step is not None else self.all_steps()[::-1]
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}; train first with the "
                                  "same --workdir (--mode=train).")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        for i, s in enumerate(steps):
            try:
                return self._manager.restore(s, args=ocp.args.StandardRestore(abstract))
            except Exception as e:  # orbax raises many types; name the file and the remedy.
                gone = not os.path.isdir(os.path.join(self.directory, str(s)))
                if gone and step is None and i + 1 < len(steps):
                    continue  # removed by the trainer's clean-up while we read it
                raise CheckpointError(
                    f"checkpoint {s} in {self.directory} could not be restored "
                    f"({type(e).__name__}: {str(e).splitlines()[0][:200]}). It is corrupt or "
                    "was written by a different model/config. Move that step's folder away "
                    "to fall back to an earlier one, or start afresh in a new workdir."
                ) from e
        raise CheckpointError(f"no checkpoint in {self.directory} could be read.")

    def reject(self, step: int) -> str:
        """Move checkpoint `step` out of the way (to ``<directory>_rejected/<step>``), so that
        resuming starts from the one before; returns where it went. Nothing is deleted."""
        target = os.path.join(f"{self.directory}_rejected", str(step))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.exists(target):
            shutil.rmtree(target)
        os.rename(os.path.join(self.directory, str(step)), target)
        self._manager.reload()
        return target

    def wait(self) -> None:
        """Block until any asynchronous save has finished."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None
