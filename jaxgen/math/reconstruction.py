"""Reconstruction losses for autoencoders, per element (never reduced).

Reuses optax's implementations and adds the checks a researcher needs at the boundary:
binary cross-entropy is a valid likelihood only for targets in [0, 1].
"""

from __future__ import annotations

import jax
import optax

from jaxgen import validation


def binary_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    r"""Binary cross-entropy from logits, per element.

    ``BCE(ℓ, x) = −x log σ(ℓ) − (1 − x) log(1 − σ(ℓ))``, computed stably from the logits ℓ
    (``optax.losses.sigmoid_binary_cross_entropy``). Summed over pixels it is the negative
    log-likelihood of a Bernoulli decoder; targets may be grey levels in [0, 1].

    Args:
      logits: ℓ, decoder outputs before the sigmoid, any shape, floating.
      targets: x, same shape as ``logits``, values in [0, 1].

    Returns:
      Elementwise BCE in nats, shape of ``logits``.
    """
    validation.check_floating("logits", logits)
    validation.check_floating("targets", targets)
    validation.check_same_shape(logits=logits, targets=targets)
    validation.check_range(
        "targets", targets, 0.0, 1.0,
        hint="Binary cross-entropy needs data in [0, 1]; rescale it or use squared_error.",
    )
    return optax.losses.sigmoid_binary_cross_entropy(logits, targets)


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    r"""Squared error ``(ŷ − y)²`` per element (``optax.losses.squared_error``).

    Args:
      predictions: ŷ, any shape, floating.
      targets: y, same shape as ``predictions``.

    Returns:
      Elementwise squared error, shape of ``predictions``.
    """
    validation.check_floating("predictions", predictions)
    validation.check_floating("targets", targets)
    validation.check_same_shape(predictions=predictions, targets=targets)
    return optax.losses.squared_error(predictions, targets)
