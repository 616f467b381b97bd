"""The Fashion-MNIST feature classifier as a family: trained by the runner like any model.

:class:`jaxgen.models.Classifier` (BatchNorm + dropout) on images in [0, 1], trained with the
softmax cross-entropy of its logits against the integer labels (``optax``). Its penultimate
activations are the features of the evaluation suite (:mod:`jaxgen.evaluation.features`);
a run of this family is what that module loads.

BatchNorm normalises over the *global* batch (``axis_name="data"``) and dropout masks are drawn
per example from its global index, so any number of devices computes what one device would.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from jaxgen.families.base import EvalPass, Family, check_dtype, compute_dtype, init_variables
from jaxgen.models.classifier import Classifier as ClassifierModule
from jaxgen.training import AXIS, LossOutput, TrainState, gradient_update
from jaxgen.training.keys import split_named
from jaxgen.validation import ConfigError, check_number


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """−log softmax(logits)[label] per example, nats.

    Args:
      logits: ``[B, C]``.
      labels: integer ``[B]`` in [0, C).

    Returns:
      ``[B]``.
    """
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels)


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """1.0 where the arg-max class is the label, else 0.0, per example ``[B]``."""
    return (jnp.argmax(logits, -1) == labels).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class ClassifierModel:
    num_classes: int = 0  # 0: the data's classes
    widths: tuple[int, ...] = (32, 64)
    feature_dim: int = 128
    conv_dropout: float = 0.25
    dense_dropout: float = 0.5
    dtype: str = "float32"  # compute dtype ("bfloat16": mixed precision); params stay float32

    def __post_init__(self):
        if self.num_classes:
            check_number("model.num_classes", self.num_classes, low=2, integer=True)
        check_number("model.feature_dim", self.feature_dim, low=1, integer=True)
        if not self.widths:
            check_number("len(model.widths)", 0, low=1, integer=True)
        for i, w in enumerate(self.widths):
            check_number(f"model.widths[{i}]", w, low=1, integer=True)
        for name in ("conv_dropout", "dense_dropout"):
            check_number(f"model.{name}", getattr(self, name), low=0.0, high=1.0,
                         high_open=True)
        check_dtype("model.dtype", self.dtype)


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    model: ClassifierModel = ClassifierModel()


class Classifier(Family):
    """A CNN classifier of single-domain labelled images (``{"image", "label"}``) in [0, 1]."""

    name = "classifier"
    Config = ClassifierConfig
    input_range = "unit"

    def __init__(self, config: ClassifierConfig, *, image_shape, num_classes: int = 0):
        super().__init__(config, image_shape=image_shape, num_classes=num_classes)
        m = config.model
        factor = 2 ** len(m.widths)
        if self.image_shape[0] % factor or self.image_shape[1] % factor:
            raise ConfigError(f"images of {self.image_shape[0]}×{self.image_shape[1]} do not fit "
                              f"a classifier with {len(m.widths)} pooling stages: height and "
                              f"width must be divisible by {factor}.")
        classes = m.num_classes or num_classes
        if classes < 2:
            raise ConfigError("the classifier needs labelled data with at least 2 classes (a "
                              "TFDS dataset with a ClassLabel feature, or a folder with one "
                              f"subfolder per class); this data has {classes}.")
        if m.num_classes and num_classes and m.num_classes < num_classes:
            raise ConfigError(f"model.num_classes={m.num_classes} is fewer than the data's "
                              f"{num_classes} classes; set it to 0 to take the data's.")
        self.model = ClassifierModule(num_classes=classes, widths=m.widths,
                                      feature_dim=m.feature_dim, conv_dropout=m.conv_dropout,
                                      dense_dropout=m.dense_dropout, axis_name=AXIS,
                                      dtype=compute_dtype(m.dtype))

    def init(self, key, tx, *, ema_decay=0.0):
        x = jnp.zeros((2, *self.image_shape), jnp.float32)
        # Init unmapped (axis_name None): the variables are the same, no collective is needed.
        variables = init_variables(self.model.clone(axis_name=None), key, x, train=False)
        return TrainState.create(apply_fn=self.model.apply, params=variables.pop("params"),
                                 model_state=variables, tx=tx, ema_decay=ema_decay)

    def train_body(self, state, batch, key):
        """Cross-entropy with dropout and batch statistics over the global batch."""
        keys = split_named(key, ("dropout",))
        labels = batch["label"]

        def loss_fn(params):
            logits, updates = self.model.apply(
                state.variables(params), batch["image"], train=True,
                mutable=["batch_stats"], rngs={"dropout": keys["dropout"]})
            ce = cross_entropy(logits, labels).mean()
            return LossOutput(loss=ce, metrics={"loss": ce,
                                                "accuracy": accuracy(logits, labels).mean()},
                              model_state=updates)

        state, metrics, _ = gradient_update(state, loss_fn)
        return state, metrics

    def apply_eval(self, state, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(logits [b, C], features [b, feature_dim])`` in eval mode (running statistics,
        no dropout)."""
        return self.model.apply(state.variables(state.eval_params), images, train=False,
                                return_features=True)

    def _test(self, state, batch, key):
        logits, _ = self.apply_eval(state, batch["image"])
        return {"accuracy": accuracy(logits, batch["label"]),
                "cross_entropy_nats": cross_entropy(logits, batch["label"])}

    def eval_passes(self):
        return {"test": EvalPass(self._test, ("accuracy", "cross_entropy_nats"))}

    def encode_body(self, state, batch, key):
        """The penultimate ``features`` and the class ``probabilities`` of each image."""
        logits, features = self.apply_eval(state, batch["image"])
        return {"features": features, "probabilities": jax.nn.softmax(logits)}
