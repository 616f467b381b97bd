"""DCGAN end to end for a few steps on TFDS mock data: train, resume, sample."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxgen.training import Checkpointer
from tests.experiments.helpers import load_config, run_config

GAN_TINY = {
    "train.num_steps": 3, "train.batch_size": 8, "train.log_every": 1,
    "train.checkpoint_every": 2, "train.progress": False, "train.eval_every": 0,
    "eval.num_images": 4, "model.generator_features": 8, "model.discriminator_features": 8,
    "model.latent_dim": 8, "sampling.num_samples": 5, "sampling.batch_size": 4,
    "sampling.write_png": True,
}


@pytest.mark.parametrize("kind,d_steps,r1", [("non_saturating", 1, 0.0), ("hinge", 2, 1.0)])
def test_train_resume_sample(kind, d_steps, r1, tmp_path):
    overrides = {**GAN_TINY, "loss.kind": kind, "loss.d_steps": d_steps, "loss.r1_weight": r1}
    workdir = str(tmp_path / "run")
    with tfds.testing.mock_data(num_examples=32, data_dir=str(tmp_path / "tfds")):
        summary = run_config(load_config("dcgan_fmnist", overrides), workdir)
        assert summary["step"] == 3
        for name in ("d_loss", "g_loss", "d_real", "d_fake"):
            assert np.isfinite(summary[f"train/{name}"])
        assert ("train/r1" in summary) == (r1 > 0)
        if kind == "non_saturating":  # D outputs probabilities here
            assert 0 < summary["train/d_real"] < 1 and 0 < summary["train/d_fake"] < 1
        assert any(n.startswith("samples") for n in os.listdir(os.path.join(workdir, "images")))

        if kind == "non_saturating":  # resume once: it does not depend on the loss
            resumed = run_config(
                load_config("dcgan_fmnist", {**overrides, "train.num_steps": 5}), workdir)
            assert resumed["step"] == 5
            assert Checkpointer(os.path.join(workdir, "checkpoints"), every_steps=2,
                                keep=3, read_only=True).latest_step() == 5

    out = run_config(load_config("dcgan_fmnist", overrides), workdir, "sample")
    images = np.load(out["npz"])["images"]
    assert images.shape == (5, 32, 32, 1) and images.dtype == np.uint8
    assert len(os.listdir(out["png_dir"])) == 5
