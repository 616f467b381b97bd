"""The results command end to end on synthetic data, with a classifier trained for 2 steps."""

import json
import os

import numpy as np
import pytest

from experiments import features, results
from jaxgen.data import pipeline
from jaxgen.evaluation.features import to_classifier_input
from tests.experiments.helpers import load_config, run_config

NUM_SAMPLES = 12


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    cls_dir = tmp_path_factory.mktemp("classifier")
    run_config(load_config("tiny/classifier", {"train.num_steps": 2}), cls_dir)
    vae_dir = tmp_path_factory.mktemp("vae")
    run_config(load_config("tiny/autoencoder", {"train.num_steps": 2}), vae_dir)
    cyclegan_dir = tmp_path_factory.mktemp("cyclegan")
    run_config(load_config("tiny/cyclegan", {"train.num_steps": 2}), cyclegan_dir)
    return cls_dir, vae_dir, cyclegan_dir


def test_results_writes_every_metric_with_its_sample_count(workdirs, tmp_path):
    cls_dir, vae_dir, cyclegan_dir = workdirs
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.README_START}\nold\n{results.README_END}\noutro\n")
    out = tmp_path / "out"
    code = results.main(["--workdirs", str(vae_dir), str(cyclegan_dir),
                         "--classifier_workdir", str(cls_dir), "--num_samples", str(NUM_SAMPLES),
                         "--eval_examples", "20", "--output_dir", str(out),
                         "--readme", str(readme)])
    assert code == 0
    report = json.loads((out / "results.json").read_text())
    table = (out / "results.md").read_text()
    reference, vae, x2y, y2x = report["rows"]
    assert reference["family"] == "data" and vae["family"] == "autoencoder"
    assert vae["step"] == 2 and vae["sampler"] == "prior"
    quality = {"fd_fmnist", "kid_fmnist", "precision", "recall", "label_entropy_nats"}
    for row in (reference, vae):
        assert quality <= set(row["metrics"])
        for name in quality:
            m = row["metrics"][name]
            assert m["num_samples"] == NUM_SAMPLES and m["num_reference"] == 48
            assert np.isfinite(m["value"])
        assert 0.0 <= row["metrics"]["precision"]["value"] <= 1.0
        assert np.isfinite(row["metrics"]["kid_fmnist"]["se"])
    own = {k: v for k, v in vae["metrics"].items() if k.startswith("eval/")}
    assert {"eval/neg_elbo_nats", "eval/kl_nats", "eval/iwae3_nll_nats"} <= set(own)
    for m in own.values():  # --eval_examples overrides every pass's own count
        assert m["num_samples"] == 20 and m["se"] > 0
    assert "iwae3_nll_nats" in table and " ± " in table
    probe = vae["metrics"]["linear_probe_accuracy"]  # the posterior mean, probed
    assert probe["features"] == "mean" and probe["num_train"] == probe["num_samples"] == 48
    assert 0.0 <= probe["value"] <= 1.0
    # CycleGAN: one row per direction, translations against the target domain's test images.
    assert x2y["family"] == y2x["family"] == "cyclegan"
    assert (x2y["sampler"], y2x["sampler"]) == ("x2y", "y2x") and x2y["step"] == 2
    for row in (x2y, y2x):
        assert quality <= set(row["metrics"]) and row["name"] in table
        assert row["metrics"]["fd_fmnist"]["num_samples"] == 48  # every test image
        assert "target_class_share" not in row["metrics"]  # synthetic domains: no classes
    assert x2y["metrics"]["fd_fmnist"]["value"] != y2x["metrics"]["fd_fmnist"]["value"]
    assert x2y["metrics"]["eval/cycle_l1_x"]["num_samples"] == 20
    f = report["features"]
    assert f["step"] == 2 and f["seed"] == 0 and f["config"] == features.CONFIG_FILE
    assert "center-cropped" in f["preprocessing"]
    assert report["hardware"] and vae["train_wall_time_s"] > 0
    assert vae["name"] in table and "real data" in table and "fd_fmnist" in table
    text = readme.read_text()
    assert "old" not in text and vae["name"] in text and text.endswith("outro\n")
    assert not os.path.exists(os.path.join(vae_dir, "eval_summary.json"))  # read only


def test_a_missing_run_names_the_command_that_trains_it(workdirs, tmp_path, capsys):
    code = results.main(["--workdirs", str(tmp_path / "vae_mlp"), "--classifier_workdir",
                         str(workdirs[0]), "--output_dir", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "no run" in err and "--config experiments/configs/vae_mlp.py" in err
    assert results.DEFAULT_WORKDIRS[0] == "runs/vae_mlp"


def test_missing_classifier_names_the_command_that_trains_it(tmp_path, capsys):
    with pytest.raises(features.MissingClassifierError) as e:
        features.load_classifier(str(tmp_path / "classifier"))
    assert features.train_command(str(tmp_path / "classifier")) in str(e.value)
    assert "python -m experiments.main --config experiments/configs/classifier_fmnist.py" in (
        str(e.value))
    code = results.main(["--workdirs", str(tmp_path), "--output_dir", str(tmp_path / "out"),
                         "--classifier_workdir", str(tmp_path / "classifier")])
    assert code == 2
    assert "experiments/configs/classifier_fmnist.py" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_padded_images_are_cropped_back_and_rescaled():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)
    unit = images.astype(np.float32) / 255.0
    padded = pipeline.pad_images(images, 32).astype(np.float32) / 127.5 - 1.0  # [-1, 1]
    np.testing.assert_allclose(to_classifier_input(padded, "symmetric", (28, 28)), unit,
                               atol=1e-6)
    np.testing.assert_array_equal(to_classifier_input(unit, "unit", (28, 28)), unit)
    assert to_classifier_input(unit * 3 - 1, "unit", (28, 28)).min() == 0.0  # clipped
    with pytest.raises(ValueError, match="never resized"):
        to_classifier_input(unit, "unit", (32, 32))


def test_merge_rescores_only_the_given_runs(workdirs, tmp_path, capsys):
    cls_dir, vae_dir, cyclegan_dir = workdirs
    common = ["--classifier_workdir", str(cls_dir), "--num_samples", str(NUM_SAMPLES),
              "--eval_examples", "8", "--output_dir", str(tmp_path)]
    assert results.main(["--workdirs", str(vae_dir), str(cyclegan_dir), *common]) == 0
    first = json.loads((tmp_path / "results.json").read_text())
    assert results.main(["--workdirs", str(cyclegan_dir), "--merge", *common]) == 0
    merged = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in merged["rows"]] == [r["name"] for r in first["rows"]]
    assert merged["rows"][:2] == first["rows"][:2]  # the reference and the VAE: kept as they were
    assert merged["rows"][2]["results_wall_time_s"] != first["rows"][2]["results_wall_time_s"]
    assert merged["wall_time_s"] > first["wall_time_s"]
    # Other sample counts cannot be merged into this table.
    assert results.main(["--workdirs", str(cyclegan_dir), "--merge",
                         *common[:2], "--num_samples", "5", *common[4:]]) == 2
    assert "run the whole table again" in capsys.readouterr().err


def test_a_classifier_run_is_scored_without_a_probe(workdirs, tmp_path):
    """The classifier encodes to features and probabilities, not codes: its row has its own
    metrics and no linear probe (it used to fail with KeyError: 'z')."""
    cls_dir = workdirs[0]
    out = tmp_path / "out"
    code = results.main(["--workdirs", str(cls_dir), "--classifier_workdir", str(cls_dir),
                         "--num_samples", str(NUM_SAMPLES), "--eval_examples", "20",
                         "--output_dir", str(out)])
    assert code == 0
    _, row = json.loads((out / "results.json").read_text())["rows"]
    assert row["family"] == "classifier" and "linear_probe_accuracy" not in row["metrics"]
    assert any(k.startswith("eval/") for k in row["metrics"])
