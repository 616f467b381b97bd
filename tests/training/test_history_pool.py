"""The image history pool: fill phase, swap semantics and rate, jit, determinism, pool_size 0.

Images are constant arrays whose value identifies them, so the pool's contents and outputs
can be replayed exactly against a Python model of the reference ``ImagePool``.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgen.training.history_pool import HistoryPool, query

SHAPE = (2, 2, 1)


def labelled(values) -> jnp.ndarray:
    """A batch of images [B, 2, 2, 1], image i filled with values[i]."""
    values = jnp.asarray(values, jnp.float32)
    return jnp.broadcast_to(values[:, None, None, None], (len(values), *SHAPE))


def labels(images) -> np.ndarray:
    images = np.asarray(images)
    assert np.all(images == images[:, :1, :1, :1]), "images must stay whole"
    return images[:, 0, 0, 0]


def test_fill_phase_returns_and_stores_inputs_in_order():
    pool = HistoryPool.create(pool_size=4, image_shape=SHAPE)
    assert pool.pool_size == 4 and int(pool.num_stored) == 0
    pool, out = query(pool, labelled([1, 2, 3]), jax.random.key(0))
    np.testing.assert_array_equal(labels(out), [1, 2, 3])
    np.testing.assert_array_equal(labels(pool.images), [1, 2, 3, 0])
    assert int(pool.num_stored) == 3 and pool.num_stored.dtype == jnp.int32
    # The 4th image fills the last slot and comes back unchanged; the pool is then full.
    pool, out = query(pool, labelled([4]), jax.random.key(1))
    np.testing.assert_array_equal(labels(out), [4])
    np.testing.assert_array_equal(labels(pool.images), [1, 2, 3, 4])
    assert int(pool.num_stored) == 4


def replay(stored, inputs, outputs):
    """Check a full pool's query against the reference semantics; return swaps and slots.

    Each output is either its input (pool unchanged) or an image stored at that moment,
    which the input then replaces in the same slot.
    """
    stored, slots = list(stored), []
    for image, out in zip(inputs, outputs, strict=True):
        if out != image:
            assert out in stored, f"output {out} was neither the input {image} nor stored"
            slot = stored.index(out)
            stored[slot] = image
            slots.append(slot)
    return stored, slots


def test_full_pool_swaps_half_the_time_with_uniform_slots():
    pool_size, batch, queries = 4, 100, 20
    step = jax.jit(chex.assert_max_traces(query, n=1))
    pool = HistoryPool.create(pool_size=pool_size, image_shape=SHAPE)
    pool, _ = step(pool, labelled(np.arange(batch)), jax.random.key(0))  # fills, then swaps
    slots = []
    for q in range(1, queries + 1):
        before = labels(pool.images)
        inputs = np.arange(q * batch, (q + 1) * batch)  # every image label is unique
        pool, out = step(pool, labelled(inputs), jax.random.fold_in(jax.random.key(0), q))
        after, swapped_slots = replay(before, inputs, labels(out))
        np.testing.assert_array_equal(labels(pool.images), after)
        slots += swapped_slots
        assert int(pool.num_stored) == pool_size
    # 2,000 fair coin flips: the swap rate's standard error is 0.011, the tolerance 4.5σ.
    assert abs(len(slots) / (batch * queries) - 0.5) < 0.05
    # ~1,000 swaps over 4 slots, ~250 each (σ ≈ 14): every slot within ±60.
    counts = np.bincount(slots, minlength=pool_size)
    assert np.all(np.abs(counts - len(slots) / pool_size) < 60), counts


def test_same_key_same_result_and_jit_matches_eager():
    pool = HistoryPool.create(pool_size=3, image_shape=SHAPE)
    pool, _ = query(pool, labelled([1, 2, 3]), jax.random.key(0))
    images, key = labelled(np.arange(10, 30)), jax.random.key(7)
    eager_pool, eager_out = query(pool, images, key)
    jit_pool, jit_out = jax.jit(query)(pool, images, key)
    chex.assert_trees_all_equal((eager_pool, eager_out), (jit_pool, jit_out))
    _, other_out = query(pool, images, jax.random.key(8))
    assert not np.array_equal(labels(eager_out), labels(other_out))


def test_outputs_carry_no_gradient():
    pool = HistoryPool.create(pool_size=2, image_shape=SHAPE)
    grad = jax.grad(lambda x: query(pool, x, jax.random.key(0))[1].sum())(labelled([1, 2, 3]))
    assert not np.any(np.asarray(grad))


def test_pool_size_zero_is_the_identity():
    pool = HistoryPool.create(pool_size=0, image_shape=SHAPE)
    images = labelled([5, 6, 7])
    new_pool, out = jax.jit(query)(pool, images, jax.random.key(0))
    np.testing.assert_array_equal(out, images)
    assert new_pool.images.shape == (0, *SHAPE) and int(new_pool.num_stored) == 0


def test_bad_inputs_get_clear_errors():
    pool = HistoryPool.create(pool_size=2, image_shape=SHAPE)
    with pytest.raises(ValueError, match=r"\[B, 2, 2, 1\]"):
        query(pool, jnp.zeros((3, 2, 2, 3)), jax.random.key(0))
    with pytest.raises(ValueError, match=r"\[B, 2, 2, 1\]"):
        query(pool, jnp.zeros(SHAPE), jax.random.key(0))
    with pytest.raises(TypeError, match="dtype"):
        query(pool, jnp.zeros((1, *SHAPE), jnp.bfloat16), jax.random.key(0))
    with pytest.raises(ValueError, match="pool_size"):
        HistoryPool.create(pool_size=-1, image_shape=SHAPE)
