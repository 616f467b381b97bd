"""Linear-probe accuracy: how linearly separable the classes are in a model's features.

Vanilla autoencoders are for compression and feature extraction; the probe measures the
features. It fits multinomial logistic regression (softmax over ``W f + b``) to standardised
training features by full-batch L-BFGS (:func:`optax.lbfgs`, compiled) on the convex objective

    mean_i −log softmax(W f_i + b)[y_i]  +  (l2 / 2) ‖W‖²

(the bias is not penalised), and reports the accuracy of its argmax on held-out features.
Standardisation (each feature to zero mean and unit variance over the training set, constant
features left at scale 1) makes one ``l2`` mean the same for every model's features.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class LinearProbe:
    """A fitted probe: ``logits = ((f − mean) / scale) @ weights + bias``."""

    weights: np.ndarray  # [D, C]
    bias: np.ndarray  # [C]
    mean: np.ndarray  # [D]
    scale: np.ndarray  # [D]
    objective: float  # the regularised objective at the fit
    num_iterations: int

    def logits(self, features) -> np.ndarray:
        f = (np.asarray(features, np.float64) - self.mean) / self.scale
        return f @ self.weights + self.bias

    def accuracy(self, features, labels) -> float:
        return float(np.mean(np.argmax(self.logits(features), axis=1) == np.asarray(labels)))


def _check(features, labels, num_classes: int | None, what: str):
    f = np.asarray(features)
    y = np.asarray(labels)
    if f.ndim != 2 or y.shape != (len(f),):
        raise ValueError(f"{what}: features must be [N, D] and labels [N]; got shapes "
                         f"{f.shape} and {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what}: labels must be integers (class indices), got {y.dtype}.")
    if len(f) == 0 or not np.all(np.isfinite(f)):
        raise ValueError(f"{what}: features must be non-empty and finite.")
    if num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{what}: labels must lie in [0, {num_classes}), got "
                         f"[{y.min()}, {y.max()}].")
    return f, y


def objective(params, features, labels, l2: float):
    """The probe's regularised mean cross-entropy at ``params`` ``{"weights", "bias"}``."""
    logits = features @ params["weights"] + params["bias"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return ce + 0.5 * l2 * jnp.sum(params["weights"] ** 2)


def fit_linear_probe(features, labels, *, num_classes: int | None = None, l2: float = 1e-4,
                     max_iterations: int = 500, tolerance: float = 1e-5) -> LinearProbe:
    """Fit the probe to ``features`` ``[N, D]`` and integer ``labels`` ``[N]``.

    Stops when the gradient's norm falls below `tolerance` or after `max_iterations` L-BFGS
    steps. `num_classes` defaults to ``max(labels) + 1``.
    """
    f, y = _check(features, labels, num_classes, "fit_linear_probe")
    if l2 < 0:
        raise ValueError(f"l2={l2} must be >= 0.")
    num_classes = int(num_classes or y.max() + 1)
    mean = f.astype(np.float64).mean(axis=0)
    scale = f.astype(np.float64).std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    x = jnp.asarray((f - mean) / scale, jnp.float32)
    yj = jnp.asarray(y, jnp.int32)
    params, value, count = _lbfgs(x, yj, num_classes, l2, max_iterations, tolerance)
    return LinearProbe(weights=np.asarray(params["weights"], np.float64),
                       bias=np.asarray(params["bias"], np.float64), mean=mean, scale=scale,
                       objective=float(value), num_iterations=int(count))


@functools.partial(jax.jit, static_argnames=("num_classes", "max_iterations"))
def _lbfgs(x, y, num_classes, l2, max_iterations, tolerance):
    def loss(p):
        return objective(p, x, y, l2)

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)
    params = {"weights": jnp.zeros((x.shape[1], num_classes), x.dtype),
              "bias": jnp.zeros((num_classes,), x.dtype)}

    def step(carry):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=loss)
        return optax.apply_updates(p, updates), state

    def go_on(carry):
        _, state = carry
        count = optax.tree_utils.tree_get(state, "count")
        grad = optax.tree_utils.tree_get(state, "grad")
        return (count == 0) | ((count < max_iterations)
                               & (optax.tree_utils.tree_norm(grad) >= tolerance))

    params, state = jax.lax.while_loop(go_on, step, (params, opt.init(params)))
    return params, loss(params), optax.tree_utils.tree_get(state, "count")


def linear_probe_accuracy(train_features, train_labels, test_features, test_labels, *,
                          l2: float = 1e-4, max_iterations: int = 500) -> dict:
    """Fit on the training features, score on the test features.

    Returns ``{"accuracy", "train_accuracy", "num_train", "num_test", "l2",
    "num_iterations"}``.
    """
    _, y_train = _check(train_features, train_labels, None, "train")
    num_classes = int(max(np.max(y_train), np.max(test_labels)) + 1)
    _check(test_features, test_labels, num_classes, "test")
    if np.shape(test_features)[1] != np.shape(train_features)[1]:
        raise ValueError(f"train features have {np.shape(train_features)[1]} dimensions, "
                         f"test features {np.shape(test_features)[1]}.")
    probe = fit_linear_probe(train_features, train_labels, num_classes=num_classes, l2=l2,
                             max_iterations=max_iterations)
    return {"accuracy": probe.accuracy(test_features, test_labels),
            "train_accuracy": probe.accuracy(train_features, train_labels),
            "num_train": len(train_labels), "num_test": len(test_labels), "l2": l2,
            "num_iterations": probe.num_iterations}
