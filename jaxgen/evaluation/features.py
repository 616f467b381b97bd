"""Classifier features of images from any family: the inputs of the sample-quality metrics.

The feature extractor is a trained :class:`jaxgen.models.Classifier` (the ``classifier``
family, ``experiments/configs/classifier_fmnist.py``, trained on the dataset whose samples it
scores); its 128-d penultimate activations play the role of Inception features, its softmax the
role of Inception's class probabilities (the metrics are not FID: :mod:`jaxgen.evaluation.suite`).
Loading a run of it from a workdir is the experiments' job (``experiments/features.py``); this
module maps images to features once the variables are in hand.

Preprocessing (pinned, :func:`to_classifier_input`), the same for real and generated images:

1. ``"symmetric"`` images ([−1, 1]) → ``(x + 1) / 2``; ``"unit"`` images as they are;
2. clip to [0, 1] (samplers may overshoot);
3. images larger than the classifier's input (32×32 Fashion-MNIST zero-padded by the
   diffusion and GAN configs) are center-cropped back to it (28×28): the exact inverse of
   :func:`jaxgen.data.pipeline.pad_images`; smaller ones are an error (no resampling).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgen.models.classifier import Classifier

INPUT_RANGES = ("unit", "symmetric")
PREPROCESSING = ("symmetric [-1, 1] -> (x + 1) / 2; clip to [0, 1]; larger images (32x32 "
                 "zero-padded) center-cropped to the classifier's input size (28x28)")


def to_classifier_input(images, input_range: str, size: tuple[int, int]) -> np.ndarray:
    """Images of any family → the classifier's input, float32 ``[N, h, w, C]`` in [0, 1].

    Args:
      images: ``[N, H, W, C]`` floating images in `input_range` (a family's outputs).
      input_range: ``"unit"`` ([0, 1]) or ``"symmetric"`` ([−1, 1]).
      size: the classifier's ``(h, w)``; ``H ≥ h`` and ``W ≥ w``.
    """
    x = np.asarray(images, np.float32)
    if x.ndim != 4:
        raise ValueError(f"images must have shape [N, H, W, C], got shape {x.shape}.")
    if input_range not in INPUT_RANGES:
        raise ValueError(f"input_range={input_range!r} must be one of {INPUT_RANGES}.")
    if input_range == "symmetric":
        x = (x + 1.0) / 2.0
    x = np.clip(x, 0.0, 1.0)
    h, w = size
    if x.shape[1] < h or x.shape[2] < w:
        raise ValueError(f"images of {x.shape[1]}×{x.shape[2]} are smaller than the "
                         f"classifier's {h}×{w} input; they are cropped, never resized.")
    top, left = (x.shape[1] - h) // 2, (x.shape[2] - w) // 2
    return x[:, top:top + h, left:left + w]


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
    """A trained classifier as a function of images: ``(features [N, D], probabilities
    [N, C])``, computed on one device in fixed-size batches (one compilation).

    Attributes:
      model: the classifier module (any ``axis_name``; it is applied unmapped).
      variables: ``{"params", "batch_stats"}`` of the trained classifier.
      image_shape: its input ``(h, w, C)``.
      provenance: where it came from (workdir, config, seed, step, ...), copied into reports.
      batch_size: images per compiled call.
    """

    model: Classifier
    variables: Mapping[str, Any]
    image_shape: tuple[int, int, int]
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    batch_size: int = 500

    def __post_init__(self):
        model = self.model.clone(axis_name=None)

        def apply(variables, x):  # x: [b, h, w, C] in [0, 1]
            logits, features = model.apply(variables, x, train=False, return_features=True)
            return features, jax.nn.softmax(logits)

        object.__setattr__(self, "_apply", jax.jit(apply))

    def __call__(self, images, input_range: str) -> tuple[np.ndarray, np.ndarray]:
        """Features and class probabilities of `images` (a family's outputs in
        `input_range`), preprocessed by :func:`to_classifier_input`."""
        x = to_classifier_input(images, input_range, self.image_shape[:2])
        if x.shape[-1] != self.image_shape[-1]:
            raise ValueError(f"images have {x.shape[-1]} channels; the classifier takes "
                             f"{self.image_shape[-1]}.")
        feats, probs = [], []
        for start in range(0, len(x), self.batch_size):
            part = x[start:start + self.batch_size]
            n = len(part)
            if n < self.batch_size:  # pad: every call has one shape
                part = np.concatenate([part, np.zeros((self.batch_size - n, *part.shape[1:]),
                                                      part.dtype)])
            f, p = self._apply(self.variables, jnp.asarray(part))
            feats.append(np.asarray(f)[:n])
            probs.append(np.asarray(p)[:n])
        if not feats:
            raise ValueError("no images to compute features of.")
        return np.concatenate(feats), np.concatenate(probs)
