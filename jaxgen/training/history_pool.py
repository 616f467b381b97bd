"""A history of generated images for the discriminators, as a pure jit-compatible pytree.

Shrivastava et al. 2017 (arXiv:1612.07828), used by CycleGAN (Zhu et al. 2017,
arXiv:1703.10593, section 4) with 50 images: each discriminator is updated on a mix of the
latest fakes and older ones, which damps oscillation between generator and discriminator.
The semantics are those of the reference ``util/image_pool.py``
(junyanz/pytorch-CycleGAN-and-pix2pix), with its Python ``random`` calls replaced by draws
from an explicit key.

Usage inside a step (one pool per discriminator, carried in the training state)::

    pool_key_x, pool_key_y = jax.random.split(pool_key)
    pool_y, fake_y_for_d = history_pool.query(pool_y, fake_y, pool_key_y)  # for D_Y
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class HistoryPool:
    """Up to ``pool_size`` previously generated images and how many slots are filled.

    Attributes:
      images: ``[pool_size, H, W, C]``; slots ``num_stored`` and beyond hold zeros.
      num_stored: int32 scalar in [0, pool_size], the number of filled slots.
    """

    images: jax.Array
    num_stored: jax.Array

    @property
    def pool_size(self) -> int:
        """Capacity of the pool (static; 0 means the pool is disabled)."""
        return self.images.shape[0]

    @classmethod
    def create(cls, *, pool_size: int, image_shape: Sequence[int],
               dtype=jnp.float32) -> HistoryPool:
        """An empty pool of ``pool_size`` images of shape ``image_shape`` (H, W, C).

        ``pool_size=0`` gives a disabled pool whose :func:`query` returns its inputs.
        """
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0 (0 disables the pool), got {pool_size}.")
        return cls(images=jnp.zeros((pool_size, *image_shape), dtype),
                   num_stored=jnp.zeros((), jnp.int32))


def query(pool: HistoryPool, images: jax.Array, key: jax.Array
          ) -> tuple[HistoryPool, jax.Array]:
    """Mix a batch of new images with the pool's history, updating the pool.

    The images are taken in batch order. While the pool is not full, each image is stored
    in the next free slot and returned. Once it is full, each image is, with probability
    ½, swapped for a uniformly chosen stored image (that image is returned and the new one
    takes its slot) and otherwise returned itself, leaving the pool as it was.

    Stored and returned images carry no gradient (``stop_gradient``), as in the reference,
    which stores ``image.data``: the pool only feeds the discriminators' update.

    Args:
      pool: the current :class:`HistoryPool`.
      images: the latest generated images ``[B, H, W, C]``, shape and dtype of the pool's.
      key: a ``jax.random.key`` used for this query only (not consumed when the pool is
        disabled).

    Returns:
      ``(new_pool, out_images)`` with ``out_images: [B, H, W, C]``; a disabled pool returns
      ``(pool, images)`` unchanged.
    """
    stored_shape = tuple(pool.images.shape[1:])
    if jnp.ndim(images) != 1 + len(stored_shape) or tuple(jnp.shape(images)[1:]) != stored_shape:
        raise ValueError(
            f"images must have shape [B, {', '.join(map(str, stored_shape))}] to match the "
            f"pool, got {tuple(jnp.shape(images))}."
        )
    if images.dtype != pool.images.dtype:
        raise TypeError(
            f"images have dtype {images.dtype} but the pool stores {pool.images.dtype}; "
            "create the pool with the generator's output dtype."
        )
    if pool.pool_size == 0:
        return pool, images

    def step(carry, inputs):
        stored, num_stored = carry
        image, image_key = inputs
        coin_key, slot_key = jax.random.split(image_key)
        full = num_stored >= pool.pool_size
        swap = full & jax.random.bernoulli(coin_key, 0.5)
        # Filling writes the next free slot; a swap overwrites a uniformly chosen one.
        slot = jnp.where(full, jax.random.randint(slot_key, (), 0, pool.pool_size), num_stored)
        previous = stored[slot]
        out = jnp.where(swap, previous, image)
        stored = stored.at[slot].set(jnp.where(full & ~swap, previous, image))
        return (stored, num_stored + (~full).astype(jnp.int32)), out

    images = jax.lax.stop_gradient(images)
    keys = jax.random.split(key, images.shape[0])
    (stored, num_stored), out = jax.lax.scan(step, (pool.images, pool.num_stored),
                                             (images, keys))
    return pool.replace(images=stored, num_stored=num_stored), out
