"""The training core shared by every model family."""

from jaxgen.training.checkpoint import Checkpointer, CheckpointError
from jaxgen.training.history_pool import HistoryPool
from jaxgen.training.keys import AXIS, device_key, per_example_keys, split_named, step_key
from jaxgen.training.loop import NonFiniteLossError, batches_of, fit
from jaxgen.training.optim import OptimizerConfig, OptimizerOverrides, make_optimizer
from jaxgen.training.parallel import PARALLEL_MODES, DataParallel, RetraceError, with_step_key
from jaxgen.training.state import TrainState, TwoPlayerState
from jaxgen.training.step import LossOutput, gradient_update
from jaxgen.training.writer import MetricWriter, image_grid

__all__ = [
    "AXIS",
    "PARALLEL_MODES",
    "CheckpointError",
    "Checkpointer",
    "DataParallel",
    "HistoryPool",
    "LossOutput",
    "MetricWriter",
    "NonFiniteLossError",
    "OptimizerConfig",
    "OptimizerOverrides",
    "RetraceError",
    "TrainState",
    "TwoPlayerState",
    "device_key",
    "batches_of",
    "fit",
    "gradient_update",
    "image_grid",
    "make_optimizer",
    "per_example_keys",
    "split_named",
    "step_key",
    "with_step_key",
]
