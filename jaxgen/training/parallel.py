"""Data parallelism: one per-device step body, compiled for every device.

A step body is written for one device's shard of the batch and averages across devices with
``jax.lax.pmean(..., "data")`` (gradients, metrics, batch statistics). :class:`DataParallel`
compiles it either with ``jax.jit(jax.shard_map(...))`` over a 1-D device :class:`Mesh` (the
default) or with ``jax.pmap`` (the front end the original request names), and moves states and
batches to the devices in the layout each mode expects. Both give the same numbers as one
device with the same global batch. Multi-host: the mesh spans every process's devices; each
process passes only its local part of the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgen.training.keys import AXIS, step_key

PARALLEL_MODES = ("shard_map", "pmap")


class RetraceError(RuntimeError):
    """A compiled step was traced more often than allowed (its input structure changed)."""


def with_step_key(body: Callable) -> Callable:
    """Turn ``body(state, batch, key)`` into ``fn(state, batch, train_key)``.

    The step key is ``fold_in(train_key, state.step)``: computed inside the compiled step, so
    the loop passes the same ``train_key`` every step and no key is ever reused.
    """

    def stepped(state, batch, train_key):
        return body(state, batch, step_key(train_key, state.step))

    stepped.__name__ = getattr(body, "__name__", "step")
    return stepped


class DataParallel:
    """Compile per-device bodies for all devices and place data for them.

    Args:
      mode: ``"shard_map"`` (``jax.jit`` of ``jax.shard_map`` over a mesh, the default) or
        ``"pmap"``.
      devices: devices to use; by default all devices (shard_map: every process's devices;
        pmap: this process's local devices, collectives still span all processes).
    """

    def __init__(self, mode: str = "shard_map", devices: Sequence[jax.Device] | None = None):
        if mode not in PARALLEL_MODES:
            raise ValueError(f"unknown parallel mode {mode!r}; choose one of {PARALLEL_MODES}.")
        self.mode = mode
        if mode == "shard_map":
            devices = list(devices) if devices is not None else jax.devices()
            self.mesh = Mesh(np.asarray(devices), (AXIS,))
            self._replicated = NamedSharding(self.mesh, P())
            self._sharded = NamedSharding(self.mesh, P(AXIS))
            self.local_devices = [d for d in devices if d.process_index == jax.process_index()]
            self.num_devices = len(devices)
        else:
            self.local_devices = list(devices) if devices is not None else jax.local_devices()
            self.num_devices = len(self.local_devices) * jax.process_count()

    @property
    def num_local_devices(self) -> int:
        return len(self.local_devices)

    def compile(
        self, body: Callable, *, donate_state: bool = True, max_traces: int = 1,
        per_example: bool = False,
    ) -> Callable:
        """Compile ``body(state, batch, key) -> out`` for all devices.

        The state and the key are replicated and the batch is split along its leading axis.
        Every output is either replicated (the default: the body makes it device-invariant,
        e.g. with ``pmean``) or, with ``per_example``, one row per example of the device's
        shard (images, codes), returned split over the devices like the batch
        (:meth:`fetch_examples` brings it to the host). Under shard_map JAX checks this when
        tracing: an output declared replicated that the body left device-dependent (a
        forgotten ``pmean``) is an error, not device 0's number. The state's buffers are
        donated when ``donate_state``. Tracing more than ``max_traces`` times raises
        :class:`RetraceError`.
        """
        traces = 0
        name = getattr(body, "__name__", "step")

        def counted(state, batch, key):
            nonlocal traces
            traces += 1
            if traces > max_traces:
                raise RetraceError(
                    f"{name} was traced {traces} times (allowed {max_traces}): the structure, "
                    "shapes or dtypes of its inputs changed between calls. Keep batch shapes "
                    "fixed (pad the last batch) and the state's structure constant."
                )
            return body(state, batch, key)

        donate = (0,) if donate_state else ()
        if self.mode == "pmap":
            return jax.pmap(
                counted, axis_name=AXIS, in_axes=(0, 0, None), donate_argnums=donate,
                devices=self.local_devices,
            )
        mapped = jax.shard_map(
            counted, mesh=self.mesh, in_specs=(P(), P(AXIS), P()),
            out_specs=P(AXIS) if per_example else P(),
        )
        return jax.jit(mapped, donate_argnums=donate)

    def replicate(self, tree: Any) -> Any:
        """Place a host pytree (identical on every process) on all devices."""
        if self.mode == "pmap":
            n = self.num_local_devices
            stacked = NamedSharding(Mesh(np.asarray(self.local_devices), (AXIS,)), P(AXIS))
            return jax.tree.map(
                lambda x: jax.device_put(jnp.broadcast_to(jnp.asarray(x), (n, *np.shape(x))),
                                         stacked),
                tree,
            )

        def put(x):
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, self._replicated, lambda idx: x[idx])

        return jax.tree.map(put, tree)

    def shard_batch(self, batch: Any) -> Any:
        """Place this process's part of the global batch, split over its devices."""
        n = self.num_local_devices

        def check(x):
            if np.shape(x)[0] % n:
                raise ValueError(
                    f"the per-process batch ({np.shape(x)[0]} examples) must be divisible by "
                    f"the number of local devices ({n}); change the batch size."
                )
            return x

        batch = jax.tree.map(check, batch)
        if self.mode == "pmap":
            return jax.tree.map(lambda x: np.reshape(x, (n, -1, *np.shape(x)[1:])), batch)
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(self._sharded, np.asarray(x)), batch
        )

    def batch_maker(self, make: Callable[..., Any]) -> Callable[..., Any]:
        """``make(key, *args) -> global batch`` (e.g. a sampler's noise and the labels asked
        for; `args` the same global arrays on every process), computed where the batch is
        used: under shard_map on the devices, each device keeping its part (nothing passes
        through the host); under pmap on the host, then this process's part placed."""
        if self.mode == "shard_map":
            return jax.jit(make, out_shardings=self._sharded)

        def host(key, *args):
            full = jax.device_get(make(key, *args))
            local = len(jax.tree.leaves(full)[0]) // jax.process_count()
            lo = jax.process_index() * local
            return self.shard_batch(jax.tree.map(lambda x: np.asarray(x[lo:lo + local]), full))

        return host

    def fetch(self, tree: Any) -> Any:
        """Bring a replicated device pytree back to the host as NumPy: one ``device_get`` for
        the whole tree, so the copies of its leaves overlap instead of blocking one by one."""
        if self.mode == "pmap":
            local = jax.tree.map(lambda x: x[0], tree)
        else:
            local = jax.tree.map(lambda x: x.addressable_data(0), tree)
        return jax.tree.map(np.asarray, jax.device_get(local))

    def fetch_examples(self, tree: Any) -> Any:
        """The global outputs of a ``per_example`` body on the host as NumPy, in the batch's
        order (every process gets all of them)."""
        if self.mode == "pmap":  # [local devices, b, ...] on each process
            local = jax.tree.map(
                lambda x: np.asarray(x).reshape(-1, *x.shape[2:]), jax.device_get(tree))
            if jax.process_count() == 1:
                return local
            from jax.experimental import multihost_utils

            return multihost_utils.process_allgather(local, tiled=True)
        if jax.process_count() == 1:
            return jax.tree.map(np.asarray, jax.device_get(tree))
        from jax.experimental import multihost_utils

        return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))

    def checkpointable(self, device_state: Any) -> Any:
        """What a checkpoint saves of a device state: the global arrays themselves under
        shard_map (orbax copies them off the devices), a host copy of pmap's stacked ones."""
        return self.fetch(device_state) if self.mode == "pmap" else device_state

    def restore_target(self, abstract: Any) -> Any:
        """Where a checkpoint restores to: `abstract`'s leaves (``jax.ShapeDtypeStruct``, e.g.
        from ``jax.eval_shape`` of the initial state) with the placement :meth:`placed` needs,
        so that the arrays are read straight onto the devices (shard_map: replicated over the
        mesh) without building the state first or a host round trip."""
        if self.mode == "pmap":
            sharding = jax.sharding.SingleDeviceSharding(self.local_devices[0])
        else:
            sharding = self._replicated
        return jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), abstract)

    def placed(self, restored: Any) -> Any:
        """A state restored into :meth:`restore_target`, laid out as :meth:`replicate` does
        (already so under shard_map; pmap stacks a copy per local device)."""
        return self.replicate(restored) if self.mode == "pmap" else restored
