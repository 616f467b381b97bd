"""Typed settings of a run that are the same for every family: training loop and evaluation."""

from __future__ import annotations

import dataclasses

from jaxgen.training.parallel import PARALLEL_MODES
from jaxgen.validation import check_choice, check_number


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 128  # global, over all devices and processes
    num_epochs: int = 10
    num_steps: int = 0  # > 0 overrides num_epochs
    parallel: str = "shard_map"  # or "pmap"
    log_every: int = 100
    eval_every: int = 0  # steps; 0: at the end only
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    async_checkpoints: bool = True  # write checkpoint files in the background
    progress: bool = True

    def __post_init__(self):
        check_number("train.batch_size", self.batch_size, low=1, integer=True)
        check_number("train.num_epochs", self.num_epochs, low=0, integer=True)
        check_number("train.num_steps", self.num_steps, low=0, integer=True)
        check_choice("train.parallel", self.parallel, PARALLEL_MODES)
        check_number("train.log_every", self.log_every, low=1, integer=True)
        check_number("train.eval_every", self.eval_every, low=0, integer=True)
        check_number("train.checkpoint_every", self.checkpoint_every, low=1, integer=True)
        check_number("train.keep_checkpoints", self.keep_checkpoints, low=1, integer=True)
        if self.num_steps == 0 and self.num_epochs == 0:
            check_number("train.num_steps (or train.num_epochs)", 0, low=1, integer=True)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 500  # global
    max_examples: int = 0  # global, per pass and domain; 0: the whole test split
    num_images: int = 64  # images per grid

    def __post_init__(self):
        check_number("eval.batch_size", self.batch_size, low=1, integer=True)
        check_number("eval.max_examples", self.max_examples, low=0, integer=True)
        check_number("eval.num_images", self.num_images, low=0, integer=True)
