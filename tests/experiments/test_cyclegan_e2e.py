"""CycleGAN end to end for a few steps on each data source: train, resume, evaluate, translate."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tests.experiments.helpers import load_config, run_config, run_main

CG_TINY = {
    "train.num_steps": 2, "train.batch_size": 4, "train.log_every": 1,
    "train.checkpoint_every": 1, "train.progress": False, "train.eval_every": 0,
    "eval.num_images": 2, "eval.batch_size": 4, "eval.max_examples": 8,
    "model.generator_features": 4, "model.discriminator_features": 4, "model.num_blocks": 1,
    "loss.pool_size": 3, "translate.batch_size": 4,
}


def write_folders(root, size=40):
    rng = np.random.default_rng(0)
    for folder, n in (("trainA", 6), ("trainB", 5), ("testA", 3), ("testB", 4)):
        os.makedirs(root / folder)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{i}.png")


@pytest.mark.parametrize("source", ["fashion_mnist", "tfds", "folders"])
def test_train_resume_evaluate_translate(source, tmp_path):
    overrides = dict(CG_TINY)
    if source == "fashion_mnist":
        overrides["data.download"] = True  # a no-op under mock_data
    else:
        overrides.update({"data.source": source, "data.channels": 3, "data.load_size": 36,
                          "data.crop_size": 32})
    if source == "tfds":
        overrides["data.download"] = True
    if source == "folders":
        write_folders(tmp_path / "data")
        overrides["data.root"] = str(tmp_path / "data")
    workdir = str(tmp_path / "run")
    with tfds.testing.mock_data(num_examples=60, data_dir=str(tmp_path / "tfds")):
        summary = run_config(load_config("cyclegan_fmnist", overrides), workdir)
        assert summary["step"] == 2
        for name in ("cycle_l1", "identity_l1", "g_adv", "f_adv", "d_x_loss", "d_y_loss"):
            assert np.isfinite(summary[f"train/{name}"])
        # Cycle L1 of images in [−1, 1] lies in [0, 2].
        assert 0 < summary["eval/cycle_l1_x"] < 2 and 0 < summary["eval/cycle_l1_y"] < 2
        grids = os.listdir(os.path.join(workdir, "images"))
        assert any(g.startswith("translation_x") for g in grids)
        assert any(g.startswith("translation_y") for g in grids)
        config = load_config("cyclegan_fmnist", {**overrides, "train.num_steps": 3})
        if source == "fashion_mnist":  # resuming does not depend on the source
            assert run_config(config, workdir)["step"] == 3
        if source != "folders":
            out = run_config(config, workdir, "translate")  # the test split of domain X
            assert out["num_images"] > 0
    if source == "folders":
        config = load_config("cyclegan_fmnist", {
            **overrides, "translate.direction": "y2x",
            "translate.input_dir": str(tmp_path / "data" / "testB"),
            "translate.output_dir": str(tmp_path / "out")})
        out = run_config(config, workdir, "translate")
        assert sorted(os.listdir(tmp_path / "out")) == ["0.png", "1.png", "2.png", "3.png"]
        image = np.asarray(Image.open(tmp_path / "out" / "0.png"))
        assert image.shape == (32, 32, 3)
        translate_faults(overrides, workdir, tmp_path)


def translate_faults(overrides, workdir, tmp_path):
    """`--mode=translate` as a user types it, with the folders a user gets wrong: each is one
    line, exit status 2, and no input image is touched."""
    inputs = tmp_path / "data" / "testB"
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    (tmp_path / "link").symlink_to(inputs)  # the output folder: a link to the inputs
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "no_images").mkdir()
    (tmp_path / "no_images" / "notes.txt").write_text("x")
    cases = [
        ({"translate.input_dir": str(inputs), "translate.output_dir": str(tmp_path / "link"),
          "translate.overwrite": True}, "are the same folder or one holds the other"),
        ({"translate.input_dir": str(inputs), "translate.output_dir": str(inputs / "sub")},
         "are the same folder or one holds the other"),
        ({"translate.input_dir": str(inputs), "translate.output_dir": str(tmp_path / "a_file")},
         "is a file"),
        ({"translate.input_dir": str(tmp_path / "missing")}, "is not a folder"),
        ({"translate.input_dir": str(tmp_path / "no_images")}, "holds no"),
    ]
    for extra, message in cases:
        result = run_main("cyclegan_fmnist", workdir, {
            **overrides, "translate.direction": "y2x", **extra}, "--mode=translate")
        assert result.returncode == 2, (extra, result.stderr[-2000:])
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 2  # the error and the --debug hint
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before
