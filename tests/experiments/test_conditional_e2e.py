"""A class-conditional DDPM end to end on a folder with class subfolders: train, grids with a
row per class, --mode=sample by class name with guidance; and the requests it refuses."""

import os

import numpy as np
import pytest
from PIL import Image

from jaxgen.data import generate
from tests.experiments.helpers import load_config, run_config, run_main

CLASSES = ("ant", "bee", "cat")
TINY = {
    "data.source": "folder", "data.image_size": 8, "data.channels": 1,
    "train.num_steps": 2, "train.batch_size": 8, "train.log_every": 1,
    "train.checkpoint_every": 2, "train.progress": False, "optimizer.warmup_steps": 1,
    "eval.num_images": 6, "eval.batch_size": 8, "eval.bpd_max_examples": 8,
    "eval.bpd_timesteps": 2, "model.ch": 8, "model.ch_mult": (1, 2),
    "model.attn_resolutions": (4,), "model.num_groups": 4, "diffusion.num_timesteps": 10,
    "sampling.ddim.steps": 3, "sampling.batch_size": 4, "sampling.num_samples": 5,
    "sampling.grid_samplers": ("ddim",), "model.class_conditional": True,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cond")
    generate.write_image_folder(str(root / "data"), num_images=60, size=8, channels=1,
                                classes=list(CLASSES), fmt="png")
    overrides = {**TINY, "data.path": str(root / "data")}
    workdir = str(root / "run")
    summary = run_config(load_config("ddpm_fmnist", overrides), workdir)
    return overrides, workdir, summary


def test_training_records_the_classes_and_draws_a_row_per_class(trained):
    _, workdir, summary = trained
    assert summary["step"] == 2 and summary["data"]["class_names"] == list(CLASSES)
    (grid,) = [g for g in os.listdir(os.path.join(workdir, "images"))
               if g.startswith("samples_ddim")]
    image = np.asarray(Image.open(os.path.join(workdir, "images", grid)))
    # 6 images, 3 classes: 3 rows of 2 (8×8 tiles with a 1-pixel border).
    assert image.shape[:2] == (3 * 9 + 1, 2 * 9 + 1)


def test_sampling_by_class_name_with_guidance_keeps_the_labels(trained):
    overrides, workdir, _ = trained
    config = load_config("ddpm_fmnist", {**overrides, "sampling.classes": ("cat", "0"),
                                         "sampling.guidance": 2.0, "sampling.write_png": True,
                                         "sampling.sampler": "dpm_solver",
                                         "sampling.dpm_solver.steps": 3})
    out = run_config(config, workdir, "sample")
    saved = np.load(out["npz"])
    assert saved["images"].shape == (5, 8, 8, 1)
    np.testing.assert_array_equal(saved["labels"], [2, 0, 2, 0, 2])
    assert sorted(os.listdir(out["png_dir"]))[:2] == ["000000_cat.png", "000001_ant.png"]


@pytest.mark.parametrize("overrides, message", [
    ({"sampling.classes": ("dog",)}, "sampling.classes: 'dog' is not a class of this data"),
    ({"sampling.guidance": -1.0}, "sampling.guidance=-1.0 is out of range"),
    ({"model.class_conditional": False, "sampling.guidance": 1.0},
     "needs a class-conditional model"),
])
def test_bad_requests_are_one_line_errors(trained, overrides, message):
    base, workdir, _ = trained
    result = run_main("ddpm_fmnist", workdir, {**base, **overrides}, "--mode=sample")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]


def test_a_conditional_model_on_unlabelled_data_is_refused(tmp_path):
    generate.write_image_folder(str(tmp_path / "flat"), num_images=12, size=8, channels=1,
                                fmt="png")  # no class subfolders: no labels
    result = run_main("ddpm_fmnist", str(tmp_path / "run"),
                      {**TINY, "data.path": str(tmp_path / "flat")})
    assert result.returncode == 2
    assert "needs labelled data" in result.stderr
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
