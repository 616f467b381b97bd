"""A small CNN classifier for 28×28 grey images, the feature extractor of the evaluation suite.

Trained on Fashion-MNIST, its penultimate activations play the role Inception-v3's pool
features play for FID on natural images: :mod:`jaxgen.evaluation` compares the feature
statistics of real and generated images, and its predicted labels measure class coverage.

Preprocessing, exactly: ``x = image_uint8.astype(float32) / 255`` with shape ``[B, 28, 28, 1]``,
nothing else (no mean/std normalisation; the first BatchNorm takes care of scale). Generated
images in [−1, 1] (tanh outputs, the diffusion models' range) must be mapped back first with
``(x + 1) / 2``, clipped to [0, 1].

The module holds BatchNorm and dropout, so it is applied like the DCGAN modules::

    variables = model.init(key, x, train=False)              # {"params", "batch_stats"}
    logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                  rngs={"dropout": dropout_key})
    logits = model.apply(variables, x, train=False)           # deterministic
    features = model.apply(variables, x, method=Classifier.features)   # [B, feature_dim]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgen import validation
from jaxgen.models.layers import ExampleDropout

__all__ = ["Classifier"]


class Classifier(nn.Module):
    """CNN: (conv3×3-BN-ReLU)×2 → maxpool → (conv3×3-BN-ReLU)×2 → maxpool → dense-BN-ReLU → logits.

    With the defaults (widths 32 and 64, ``feature_dim`` 128): 28×28×1 → 28×28×32 → 14×14×32
    → 14×14×64 → 7×7×64 → flatten (3,136) → 128 features → 10 logits; 468,138 parameters
    (no biases before BatchNorm) plus 640 BatchNorm running statistics. Dropout
    (``conv_dropout`` after each pooling, ``dense_dropout`` before the output layer) is active
    only when ``train=True``; its masks are drawn per example (:class:`ExampleDropout`), so
    they do not depend on the number of devices.

    Attributes:
      num_classes: number of output logits (10 for Fashion-MNIST).
      widths: channels of the two convolution stages; each stage halves the resolution, so
        height and width must be divisible by 2 ** len(widths).
      feature_dim: size of the penultimate layer, the features used for evaluation.
      conv_dropout: dropout rate after each pooling.
      dense_dropout: dropout rate between the features and the output layer.
      axis_name: the device axis to average batch statistics over (``"data"`` under data
        parallelism), or None when not mapped.
      dtype: computation dtype; parameters stay float32, logits and features are float32.
    """

    num_classes: int = 10
    widths: Sequence[int] = (32, 64)
    feature_dim: int = 128
    conv_dropout: float = 0.25
    dense_dropout: float = 0.5
    axis_name: str | None = None
    dtype: Any = jnp.float32

    def _batch_norm(self, train: bool) -> nn.BatchNorm:
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                            axis_name=self.axis_name, dtype=self.dtype)

    @nn.compact
    def __call__(
        self, x: jax.Array, *, train: bool, return_features: bool = False
    ) -> jax.Array | tuple[jax.Array, jax.Array]:
        """Classify images.

        Args:
          x: images ``[B, H, W, C]`` in [0, 1], floating (Fashion-MNIST: ``[B, 28, 28, 1]``,
            uint8 / 255).
          train: use and update batch statistics (apply with ``mutable=["batch_stats"]``) and
            apply dropout (needs ``rngs={"dropout": key}``) if True; else the running averages
            and no dropout, a deterministic function of ``x``.
          return_features: also return the penultimate activations.

        Returns:
          Logits ``[B, num_classes]`` (float32), or ``(logits, features)`` with features
          ``[B, feature_dim]`` (float32, after the ReLU, before dropout) if ``return_features``.
        """
        validation.check_rank("x", x, 4, "B, H, W, C")
        validation.check_floating("x", x)
        factor = 2 ** len(self.widths)
        if x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(
                f"Classifier needs height and width divisible by {factor}, got x of shape "
                f"{tuple(x.shape)}."
            )
        validation.check_range("x", x, 0.0, 1.0,
                               "Scale uint8 images by 1/255; map [-1, 1] samples by (x + 1) / 2.")

        h = x.astype(self.dtype)
        for width in self.widths:
            for _ in range(2):
                h = nn.Conv(width, (3, 3), padding="SAME", use_bias=False, dtype=self.dtype)(h)
                h = nn.relu(self._batch_norm(train)(h))
            h = nn.max_pool(h, (2, 2), strides=(2, 2))
            h = ExampleDropout(self.conv_dropout, self.axis_name)(h, deterministic=not train)
        h = h.reshape((h.shape[0], -1))
        h = nn.Dense(self.feature_dim, use_bias=False, dtype=self.dtype)(h)
        features = nn.relu(self._batch_norm(train)(h))
        h = ExampleDropout(self.dense_dropout, self.axis_name)(features, deterministic=not train)
        logits = nn.Dense(self.num_classes, dtype=self.dtype)(h).astype(jnp.float32)
        if return_features:
            return logits, features.astype(jnp.float32)
        return logits

    def features(self, x: jax.Array) -> jax.Array:
        """Penultimate activations ``[B, feature_dim]`` in eval mode (float32, deterministic).

        Args:
          x: images ``[B, H, W, C]`` in [0, 1], as for ``__call__``.
        """
        return self(x, train=False, return_features=True)[1]
