"""Shared helpers for experiment tests: tiny configs and subprocess runs."""

import os
import subprocess
import sys

from ml_collections import config_flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY = {
    "train.num_steps": 3, "train.batch_size": 8, "train.log_every": 1,
    "train.checkpoint_every": 2, "train.progress": False,
    "eval.batch_size": 8, "eval.max_examples": 16, "eval.num_images": 4,
    "model.hidden": (16,), "model.channels": (4, 8), "model.latent_dim": 3,
}
# A small VAE run on synthetic data, for the tests that start real processes.
SMALL = {
    "data.source": "synthetic", "data.synthetic_examples": 256, "train.batch_size": 8,
    "train.log_every": 10, "train.progress": False, "model.hidden": (16,),
    "model.latent_dim": 3, "eval.max_examples": 16, "eval.iwae_samples": 2,
    "eval.iwae_max_examples": 8, "eval.iwae_batch_size": 4, "eval.num_images": 4,
}
VAE_TINY = {"eval.iwae_samples": 3, "eval.iwae_max_examples": 8, "eval.iwae_batch_size": 4}


def load_config(name: str, overrides: dict):
    config = config_flags.config_flags._LoadConfigModule(  # noqa: SLF001
        name, os.path.join(REPO_ROOT, "experiments", "configs", f"{name}.py")).get_config()
    for dotted, value in overrides.items():
        node = config
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def cli_args(overrides: dict) -> list[str]:
    def fmt(v):
        return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)

    return [f"--config.{k}={fmt(v)}" for k, v in overrides.items()]


def clean_env(**extra) -> dict:
    """Environment for a child process: one CPU device, quiet TF, repo on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env.update(PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu", **extra)
    return env


def main_command(config: str, workdir: str, overrides: dict, *extra: str) -> list[str]:
    return [sys.executable, "-m", "experiments.main",
            f"--config={os.path.join(REPO_ROOT, 'experiments', 'configs', config + '.py')}",
            f"--workdir={workdir}", *cli_args(overrides), *extra]


def run_main(config: str, workdir: str, overrides: dict, *extra: str, env=None, timeout=300):
    return subprocess.run(main_command(config, workdir, overrides, *extra), cwd=REPO_ROOT,
                          env=env or clean_env(), capture_output=True, text=True, timeout=timeout)


def run_config(config, workdir: str, mode: str = "train") -> dict:
    """Run `mode` of an experiment config in this process, as ``experiments.main`` does."""
    from experiments import runner, settings

    return runner.run(*settings.from_config_dict(config), str(workdir), mode)
