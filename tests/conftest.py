"""Test setup: 4 fake CPU devices for the multi-device tests (before JAX initialises)."""

import os

import chex

chex.set_n_cpu_devices(4)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import pytest  # noqa: E402

# The experiment tests launch fresh Python processes; they inherit this repository root.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def num_devices() -> int:
    assert jax.device_count() == 4, "conftest must run before anything initialises JAX"
    return jax.device_count()
