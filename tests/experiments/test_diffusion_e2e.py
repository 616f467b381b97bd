"""DDPM end to end for a few steps on TFDS mock data: train, resume, evaluate, sample."""

import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import runner, settings
from jaxgen.training import DataParallel
from tests.experiments.helpers import load_config, run_config

DIFFUSION_TINY = {
    "train.num_steps": 3, "train.batch_size": 8, "train.log_every": 1,
    "train.checkpoint_every": 2, "train.progress": False, "optimizer.warmup_steps": 2,
    "eval.num_images": 4, "eval.batch_size": 8, "eval.bpd_max_examples": 8,
    "eval.bpd_timesteps": 2, "model.ch": 8, "model.ch_mult": (1, 2),
    "model.attn_resolutions": (16,), "model.num_groups": 4, "diffusion.num_timesteps": 20,
    "sampling.ddim.steps": 5, "sampling.batch_size": 4, "sampling.num_samples": 5,
    "sampling.write_png": True,
}


def test_train_resume_evaluate_sample(tmp_path):
    workdir = str(tmp_path / "run")
    with tfds.testing.mock_data(num_examples=32, data_dir=str(tmp_path / "tfds")):
        summary = run_config(load_config("ddpm_fmnist", DIFFUSION_TINY), workdir)
        assert summary["step"] == 3 and np.isfinite(summary["train/loss"])
        # bits/dim = prior + decoder + diffusion terms, all non-negative and finite.
        parts = [summary[f"eval/bpd_{k}"] for k in ("prior", "decoder", "diffusion")]
        assert all(np.isfinite(p) and p >= 0 for p in parts)
        np.testing.assert_allclose(summary["eval/bpd"], sum(parts), rtol=1e-5)
        assert summary["eval/bpd_num_examples"] == 8
        grids = os.listdir(os.path.join(workdir, "images"))
        assert any(g.startswith("samples_ddim") for g in grids)
        assert any(g.startswith("samples_ddpm") for g in grids)

        # Resume to a larger budget; evaluation only at the end, without sample grids.
        config = load_config("ddpm_fmnist", {**DIFFUSION_TINY, "train.num_steps": 4,
                                             "eval.num_images": 0})
        summary = run_config(config, workdir)
        assert summary["step"] == 4 and np.isfinite(summary["eval/bpd"])

    config = load_config("ddpm_fmnist", {**DIFFUSION_TINY, "sampling.sampler": "ddpm"})
    out = run_config(config, workdir, "sample")
    images = np.load(out["npz"])["images"]
    assert images.shape == (5, 32, 32, 1) and images.dtype == np.uint8
    assert len(os.listdir(out["png_dir"])) == 5


@pytest.mark.parametrize("conditional", [False, True])
def test_sampling_does_not_depend_on_the_device_count(tmp_path, conditional):
    """Every registered sampler (stochastic DDPM and DDIM with η > 0 included: their noise is
    drawn per example) gives the same images from the same keys on 1 and 4 devices; with a
    class-conditional model and guidance too."""
    overrides = {**DIFFUSION_TINY, "data.source": "synthetic", "sampling.ddim.eta": 0.5,
                 "sampling.dpm_solver.steps": 4, "sampling.heun.steps": 3}
    if conditional:
        overrides.update({"model.class_conditional": True, "sampling.guidance": 1.5})
    config = load_config("ddpm_fmnist", overrides)
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
        r = runner.Runner(*settings.from_config_dict(config), str(tmp_path))
        r.parallel = DataParallel("shard_map", devices=devices)
        state = r.parallel.replicate(r.initial_state())
        results.append({name: r.generate(state, name, 8, jax.random.key(3))
                        for name in r.family.samplers})
        r.close()
    assert set(results[0]) == {"ddim", "ddpm", "dpm_solver", "heun"}
    for name, (images, labels) in results[0].items():
        np.testing.assert_allclose(images, results[1][name][0], atol=1e-5, err_msg=name)
        assert images.shape == (8, 32, 32, 1)
        if conditional:  # every class in turn, carried out with the samples
            np.testing.assert_array_equal(labels, np.arange(8) % 10)
            np.testing.assert_array_equal(labels, results[1][name][1])
        else:
            assert labels is None
