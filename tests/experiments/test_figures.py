"""experiments.figures on tiny runs: a sample grid, CycleGAN strips, reconstructions; the
workdirs are only read."""

import os

import numpy as np
import pytest
from PIL import Image

from experiments import figures
from tests.experiments.helpers import load_config, run_config


def listing(root) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    dirs = {}
    for name, config, extra in (("vae", "tiny/autoencoder", {}),
                                ("ae", "tiny/autoencoder", {"model.variational": False}),
                                ("cyclegan", "tiny/cyclegan", {})):
        dirs[name] = tmp_path_factory.mktemp(name)
        run_config(load_config(config, {"train.num_steps": 2, **extra}), dirs[name])
    return dirs


def test_figures_of_each_family_from_the_latest_checkpoint(workdirs, tmp_path):
    before = {k: listing(w) for k, w in workdirs.items()}
    out = tmp_path / "images"
    code = figures.main(["--workdirs", *map(str, workdirs.values()), "--out", str(out),
                         "--num_images", "6", "--columns", "3"])
    assert code == 0
    vae, ae, cg = (os.path.basename(str(workdirs[k])) for k in ("vae", "ae", "cyclegan"))
    assert sorted(os.listdir(out)) == sorted([f"{vae}_samples.png", f"{ae}_reconstructions.png",
                                              f"{cg}_x2y.png", f"{cg}_y2x.png"])
    # 16×16 images with a 1-pixel border: 6 samples in 2 rows of 3; a strip is 3 rows
    # (x, G(x), F(G(x))) of 3 test images; reconstructions: 3 (image, reconstruction) pairs.
    shapes = {f: np.asarray(Image.open(out / f)).shape[:2] for f in os.listdir(out)}
    assert shapes[f"{vae}_samples.png"] == (2 * 17 + 1, 3 * 17 + 1)
    assert shapes[f"{cg}_x2y.png"] == (3 * 17 + 1, 3 * 17 + 1)
    assert shapes[f"{ae}_reconstructions.png"][1] == 2 * 17 + 1
    assert {k: listing(w) for k, w in workdirs.items()} == before  # nothing written there

    # The same checkpoint gives the same picture.
    again = tmp_path / "again"
    assert figures.main(["--workdirs", str(workdirs["vae"]), "--out", str(again),
                         "--num_images", "6", "--columns", "3"]) == 0
    assert (again / f"{vae}_samples.png").read_bytes() == (out / f"{vae}_samples.png").read_bytes()


def test_a_workdir_without_a_run_is_a_one_line_error(tmp_path, capsys):
    assert figures.main(["--workdirs", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "holds no run" in capsys.readouterr().err


def test_guidance_on_a_run_without_guidance_is_a_one_line_error(workdirs, tmp_path, capsys):
    code = figures.main(["--workdirs", str(workdirs["vae"]), "--out", str(tmp_path / "g"),
                         "--guidance", "1"])
    assert code == 2
    assert "only a class-conditional diffusion run" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()
