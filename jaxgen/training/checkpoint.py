"""Checkpoints with orbax-checkpoint: periodic, keep the last N, atomic, exact resume.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint as the latest one. A checkpoint holds the whole
training state (step, params, optimizer state, EMA, batch statistics); with the step-keyed
randomness and step-indexed data pipeline that is everything needed to resume exactly.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint could not be read: corrupt, truncated, or from another model/config."""


class Checkpointer:
    """Save and restore training states under ``<workdir>/checkpoints``.

    Args:
      directory: where the numbered checkpoint folders go.
      every_steps: save when ``step % every_steps == 0`` (and whenever ``force=True``).
      keep: how many of the most recent checkpoints to keep.
    """

    def __init__(self, directory: str, *, every_steps: int, keep: int):
        if every_steps < 1 or keep < 1:
            raise ValueError(
                f"checkpoint every_steps and keep must be >= 1, got {every_steps} and {keep}."
            )
        self.directory = os.path.abspath(directory)
        self.every_steps = every_steps
        self._remove_unfinished_saves()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, save_interval_steps=every_steps, create=True,
                # Done synchronously above: orbax would start a background thread for it that
                # can race with other file-system users (e.g. TFDS's mocked file system).
                cleanup_tmp_directories=False,
                # Synchronous saves: a save is complete (and renamed into place) when save()
                # returns, which keeps kill-and-resume semantics simple.
                enable_async_checkpointing=False,
            ),
        )

    def _remove_unfinished_saves(self) -> None:
        """Delete the temporary folders of saves a crash interrupted (process 0 only)."""
        if jax.process_index() != 0 or not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if ".orbax-checkpoint-tmp" in name:
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def should_save(self, step: int) -> bool:
        return step % self.every_steps == 0

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Save `state` (a host or device pytree) as checkpoint `step`."""
        return self._manager.save(step, args=ocp.args.StandardSave(state), force=force)

    def restore(self, target: Any, step: int | None = None) -> Any:
        """Restore checkpoint `step` (default: latest) into the structure of `target`.

        Raises:
          CheckpointError: when the files are missing, corrupt or do not match `target`.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}; train first with the "
                                  "same --workdir (--mode=train).")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        try:
            return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # orbax raises many types; name the file and the remedy.
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} could not be restored "
                f"({type(e).__name__}: {e}). It is corrupt or was written by a different "
                "model/config. Delete that step's folder to fall back to an earlier one, or "
                "start afresh in a new workdir."
            ) from e

    def wait(self) -> None:
        """Block until any asynchronous save has finished."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
