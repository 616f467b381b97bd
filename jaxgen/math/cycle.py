r"""CycleGAN's cycle-consistency and identity losses, per example (never reduced over B).

Zhu, Park, Isola & Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", 2017 (arXiv:1703.10593). Convention (docs/math.md, CycleGAN): X = photos,
Y = Monet paintings; G: X → Y (photo → Monet), F: Y → X (Monet → photo).

The ‖·‖₁ terms are the mean absolute error over each example's pixels and channels, as the
reference implementation's ``torch.nn.L1Loss`` computes (averaged over the batch by the
caller, not here). The weights are the caller's: the paper's objective is
``L_GAN(G, D_Y) + L_GAN(F, D_X) + λ L_cyc + 0.5 λ L_identity`` with λ = 10.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgen import validation


def _check_pair(name: str, target: jax.Array, name_hat: str, estimate: jax.Array) -> None:
    validation.check_floating(name, target)
    validation.check_floating(name_hat, estimate)
    validation.check_same_shape(**{name: target, name_hat: estimate})
    if jnp.ndim(target) < 2:
        raise ValueError(
            f"{name} must have a leading batch axis and at least one more, e.g. [B, H, W, C]; "
            f"got shape {jnp.shape(target)}."
        )


def _check_batches(x_name: str, x: jax.Array, y_name: str, y: jax.Array) -> None:
    if jnp.shape(x)[0] != jnp.shape(y)[0]:
        raise ValueError(
            f"the two domains' terms are summed per example, so {x_name} and {y_name} need the "
            f"same batch size; got {jnp.shape(x)[0]} and {jnp.shape(y)[0]}."
        )


def mean_absolute_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    r"""Per-example mean absolute error ``(1/N) Σᵢ |ŷᵢ − yᵢ|`` over all non-batch axes.

    The per-example form of ``torch.nn.L1Loss`` (which also averages over the batch).

    Args:
      predictions: ŷ, ``[B, ...]``, floating.
      targets: y, same shape as ``predictions``.

    Returns:
      ``[B]``, the mean of ``|ŷ − y|`` over the N non-batch elements of each example.
    """
    _check_pair("targets", targets, "predictions", predictions)
    diff = jnp.abs(predictions - targets)
    return jnp.mean(diff.reshape((diff.shape[0], -1)), axis=1)


def cycle_consistency_loss(x: jax.Array, x_cycled: jax.Array, y: jax.Array,
                           y_cycled: jax.Array) -> jax.Array:
    r"""Cycle-consistency loss ``L_cyc = ‖F(G(x)) − x‖₁ + ‖G(F(y)) − y‖₁`` per example.

    Zhu et al. 2017 (arXiv:1703.10593), eq. 2, with each ‖·‖₁ the per-example mean absolute
    error. Gradients reach both generators through each term (G and F both appear in
    ``x_cycled`` and in ``y_cycled``). Multiply by λ (10 in the paper) in the caller.

    Args:
      x: real photos ``[B, H, W, C_X]`` in [-1, 1].
      x_cycled: F(G(x)), the photos translated to Monet and back, shape of ``x``.
      y: real Monet paintings ``[B, H', W', C_Y]`` in [-1, 1] (same B as ``x``).
      y_cycled: G(F(y)), the paintings translated to photos and back, shape of ``y``.

    Returns:
      ``[B]``, the forward-cycle plus backward-cycle error of each example pair.
    """
    _check_pair("x", x, "x_cycled", x_cycled)
    _check_pair("y", y, "y_cycled", y_cycled)
    _check_batches("x", x, "y", y)
    return mean_absolute_error(x_cycled, x) + mean_absolute_error(y_cycled, y)


def identity_loss(x: jax.Array, f_of_x: jax.Array, y: jax.Array,
                  g_of_y: jax.Array) -> jax.Array:
    r"""Identity loss ``L_identity = ‖G(y) − y‖₁ + ‖F(x) − x‖₁`` per example.

    Zhu et al. 2017 (arXiv:1703.10593), section 5.2 (after Taigman et al. 2017): each
    generator should leave an image already in its target domain unchanged, which keeps
    the colour composition of photo ↔ painting translations. Needs G and F to map between
    images of the same shape. Multiply by 0.5 λ (5 in the paper) in the caller.

    Args:
      x: real photos ``[B, H, W, C]`` in [-1, 1].
      f_of_x: F(x), the photo-generator F applied to a photo, shape of ``x``.
      y: real Monet paintings ``[B, H, W, C]`` in [-1, 1] (same B as ``x``).
      g_of_y: G(y), the Monet-generator G applied to a painting, shape of ``y``.

    Returns:
      ``[B]``, the sum of both generators' identity errors for each example pair.
    """
    _check_pair("x", x, "f_of_x", f_of_x)
    _check_pair("y", y, "g_of_y", g_of_y)
    _check_batches("x", x, "y", y)
    return mean_absolute_error(g_of_y, y) + mean_absolute_error(f_of_x, x)
