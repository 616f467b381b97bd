"""Test setup, before JAX initialises: 4 fake CPU devices for the multi-device tests, and one
fresh XLA compilation cache for the whole test run.

Most of the suite's time is XLA compiling the same tiny models again (every contract test of
a family compiles its init, step and evaluation; the experiment tests' subprocesses compile
them once more). The persistent compilation cache keeps each executable the first time it is
compiled in this run and serves it to later tests, to the other pytest-xdist worker and to
the subprocesses, which inherit ``JAX_COMPILATION_CACHE_DIR``. The cache starts empty on every
run, so each executable is still compiled (and so tested) once per run; the process that made
it removes it at the end. Set ``JAX_COMPILATION_CACHE_DIR`` yourself to use another one.
"""

import os
import shutil
import tempfile

_OWN_CACHE = None
if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):  # unset: the first process of the run
    _OWN_CACHE = tempfile.mkdtemp(prefix="jaxgen-tests-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # cache every compile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import chex  # noqa: E402  (imports jax, which reads the variables above)

chex.set_n_cpu_devices(4)

import jax  # noqa: E402
import pytest  # noqa: E402

# In case something imported jax before this file: the cache is read at the first compile.
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))

# The experiment tests launch fresh Python processes; they inherit this repository root.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def num_devices() -> int:
    assert jax.device_count() == 4, "conftest must run before anything initialises JAX"
    return jax.device_count()
