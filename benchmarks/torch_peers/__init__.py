"""PyTorch peers of jaxgen's convolutional training steps, for CPU speed comparisons.

From-scratch PyTorch rewrites of the same architectures (same layers, widths, paddings and
parameter counts) with the same optimizer settings, whose ``step()`` does the same work per
training step as the jaxgen step it is compared with (the same forward and backward passes, the
same losses, optimizer updates, clipping and EMA; see each module's docstring). Run eagerly,
on a fixed synthetic batch, by ``benchmarks/cpu_vs_pytorch.py``.

torch is not a jaxgen dependency: this package is imported only by the benchmark and by the
tests under ``tests/benchmarks/`` that skip when torch is missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import nn


@dataclasses.dataclass
class Peer:
    """One PyTorch training step, ready to call on its fixed batch.

    Attributes:
      step: runs one full training step (forward, backward, optimizer updates) in place.
      models: the networks by the names jaxgen gives them, for parameter counts.
      batch_size: images per step.
    """

    step: Callable[[], None]
    models: dict[str, nn.Module]
    batch_size: int


def num_params(module: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters())
