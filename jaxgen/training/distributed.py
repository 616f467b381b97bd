"""Multi-host start-up: ``jax.distributed.initialize`` from flags or the environment."""

from __future__ import annotations

import os

import jax

ENV = {
    "coordinator_address": "JAXGEN_COORDINATOR_ADDRESS",
    "num_processes": "JAXGEN_NUM_PROCESSES",
    "process_id": "JAXGEN_PROCESS_ID",
}


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Join a multi-process JAX job; return True if one was joined.

    Arguments left as None are read from ``JAXGEN_COORDINATOR_ADDRESS``,
    ``JAXGEN_NUM_PROCESSES`` and ``JAXGEN_PROCESS_ID``. With no coordinator and at most one
    process this is a single-process run and nothing happens. Call it before any other JAX
    call. On CPU the collectives go over gloo (localhost works for tests).
    """
    coordinator_address = coordinator_address or os.environ.get(ENV["coordinator_address"])
    if num_processes is None and ENV["num_processes"] in os.environ:
        num_processes = int(os.environ[ENV["num_processes"]])
    if process_id is None and ENV["process_id"] in os.environ:
        process_id = int(os.environ[ENV["process_id"]])
    if not coordinator_address and (num_processes or 1) <= 1:
        return False
    if not coordinator_address or num_processes is None or process_id is None:
        raise ValueError(
            "a multi-process run needs all of coordinator_address (host:port), num_processes "
            "and process_id, from flags or the JAXGEN_* environment variables; got "
            f"{coordinator_address!r}, {num_processes!r}, {process_id!r}."
        )
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes,
        process_id=process_id,
    )
    return True
