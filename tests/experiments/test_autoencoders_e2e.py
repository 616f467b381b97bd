"""Every AE/VAE experiment end to end for a few steps on TFDS mock data."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgen.training import Checkpointer
from tests.experiments.helpers import TINY, VAE_TINY, load_config, run_config

CONFIGS = ["ae_mlp", "ae_conv", "vae_mlp", "vae_conv"]


@pytest.fixture
def mock_fashion_mnist(tmp_path):
    with tfds.testing.mock_data(num_examples=32, data_dir=str(tmp_path / "tfds")):
        yield


@pytest.mark.parametrize("name", CONFIGS)
def test_train_resume_evaluate_encode(name, tmp_path, mock_fashion_mnist):
    overrides = {**TINY, **(VAE_TINY if name.startswith("vae") else {})}
    config = load_config(name, overrides)
    workdir = str(tmp_path / name)
    summary = run_config(config, workdir)
    assert summary["step"] == 3
    evals = {k: v for k, v in summary.items() if k.startswith("eval/")}
    assert evals and all(np.isfinite(v) for v in evals.values())
    assert summary["eval/test_num_examples"] == 16
    if name.startswith("vae"):
        # The IWAE NLL estimate is tighter than (at most) the single-sample −ELBO on average;
        # with 3 samples on random mock images it must at least be finite and positive.
        assert summary["eval/iwae3_nll_nats"] > 0
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f)["step"] == 3
    images = os.listdir(os.path.join(workdir, "images"))
    assert any(n.startswith("reconstructions") for n in images)
    assert any(n.startswith("samples") for n in images) == name.startswith("vae")
    assert os.listdir(os.path.join(workdir, "tensorboard"))

    # Resume: a larger budget continues from the checkpoint at step 3.
    config = load_config(name, {**overrides, "train.num_steps": 5})
    assert run_config(config, workdir)["step"] == 5
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), every_steps=2, keep=3, read_only=True)
    assert ckpt.latest_step() == 5

    metrics = run_config(config, workdir, "evaluate")
    assert metrics["step"] == 5 and metrics["eval/test_num_examples"] == 16
    path = run_config(config, workdir, "encode")["codes"]
    codes = np.load(path)
    key = "mean" if name.startswith("vae") else "z"
    assert codes[key].shape == (32, 3) and codes["label"].shape == (32,)


def test_unknown_corruption_is_an_error(tmp_path, mock_fashion_mnist):
    config = load_config("ae_mlp", {**TINY, "loss.corruption": "blur"})
    with pytest.raises(ValueError, match="loss.corruption='blur' is not allowed"):
        run_config(config, str(tmp_path / "bad"))
