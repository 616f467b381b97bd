"""The results command end to end on synthetic data, with a classifier trained for 2 steps."""

import json
import os
import types

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
    # Named for the classifier's dataset: synthetic images here, fd_fmnist on Fashion-MNIST.
    quality = {"fd_synthetic", "kid_synthetic", "precision", "recall", "label_entropy_nats"}
    for row in (reference, vae):
        assert quality <= set(row["metrics"])
        for name in quality:
            m = row["metrics"][name]
            assert m["num_samples"] == NUM_SAMPLES and m["num_reference"] == 48
            assert np.isfinite(m["value"])
        assert 0.0 <= row["metrics"]["precision"]["value"] <= 1.0
        assert np.isfinite(row["metrics"]["kid_synthetic"]["se"])
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
        assert row["metrics"]["fd_synthetic"]["num_samples"] == 48  # every test image
        assert "target_class_share" not in row["metrics"]  # synthetic domains: no classes
    assert x2y["metrics"]["fd_synthetic"]["value"] != y2x["metrics"]["fd_synthetic"]["value"]
    assert x2y["metrics"]["eval/cycle_l1_x"]["num_samples"] == 20
    f = report["features"]
    assert f["step"] == 2 and f["seed"] == 0 and f["config"] == features.CONFIG_FILE
    assert f["dataset"] == "synthetic" and f["data"] == "synthetic"
    assert "center-cropped" in f["preprocessing"]
    assert report["hardware"] and vae["train_wall_time_s"] > 0
    assert vae["name"] in table and "real data" in table and "fd_fmnist" not in table
    header = table.splitlines()[0]  # the columns follow the metrics' names
    assert "| fd_synthetic | kid_synthetic | precision | recall | label_entropy_nats |" in header
    assert "not FID" in table
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


def test_missing_classifier_names_the_command_that_trains_it(workdirs, tmp_path, capsys):
    with pytest.raises(features.MissingClassifierError) as e:
        features.load_classifier(str(tmp_path / "classifier"))
    assert features.train_command(str(tmp_path / "classifier")) in str(e.value)
    assert "python -m experiments.main --config experiments/configs/classifier_fmnist.py" in (
        str(e.value))
    assert features.default_workdir() == "runs/classifier_fmnist"  # as before the suite moved
    code = results.main(["--workdirs", str(workdirs[1]), "--output_dir", str(tmp_path / "out"),
                         "--classifier_workdir", str(tmp_path / "classifier")])
    assert code == 2
    err = capsys.readouterr().err
    # ... on the runs' dataset: synthetic 16x16 grey images here.
    assert (f"experiments/configs/classifier_fmnist.py --workdir {tmp_path / 'classifier'} "
            "--config.data.source=synthetic --config.data.image_") in err
    assert "--config.data.image_size=16 --config.data.channels=1" in err
    assert not (tmp_path / "out").exists()


def fake_run(template: str, workdir, **data) -> str:
    """A workdir holding only the config.json of `template` with other data settings (enough
    for the checks made before anything is scored)."""
    with open(os.path.join(template, "config.json")) as f:
        record = json.load(f)
    record["data"].update(data)
    os.makedirs(workdir)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(record, f)
    return str(workdir)


def test_the_default_classifier_is_the_one_of_the_runs_dataset(workdirs, tmp_path,
                                                                  monkeypatch, capsys):
    mnist = fake_run(workdirs[1], tmp_path / "vae_mnist", source="tfds", name="mnist")
    monkeypatch.chdir(tmp_path)
    assert results.main(["--workdirs", mnist, "--output_dir", "out"]) == 2
    err = capsys.readouterr().err
    assert "no trained feature classifier in runs/classifier_mnist" in err
    assert ("--workdir runs/classifier_mnist --config.data.source=tfds --config.data.name=mnist"
            in err)
    # Runs of two datasets share no classifier.
    assert results.main(["--workdirs", mnist, str(workdirs[1]), "--output_dir", "out"]) == 2
    err = capsys.readouterr().err
    assert "different datasets" in err and "mnist" in err and "synthetic" in err
    assert not (tmp_path / "out").exists()


def test_a_run_on_another_dataset_than_the_classifiers_is_one_line_error(workdirs, tmp_path,
                                                                          capsys):
    pets = fake_run(workdirs[1], tmp_path / "vae_pets", source="tfds", name="oxford_iiit_pet:4")
    code = results.main(["--workdirs", pets, "--classifier_workdir", str(workdirs[0]),
                         "--output_dir", str(tmp_path / "out")])
    assert code == 2
    line = capsys.readouterr().err.splitlines()[0]
    assert f"{pets} is a run on 'oxford_iiit_pet_4'" in line
    assert "trained on 'synthetic'" in line
    assert ("python -m experiments.main --config experiments/configs/classifier_fmnist.py "
            "--workdir runs/classifier_oxford_iiit_pet_4 --config.data.source=tfds "
            "--config.data.name=oxford_iiit_pet:4") in line
    assert "--classifier_workdir runs/classifier_oxford_iiit_pet_4" in line
    assert not (tmp_path / "out").exists()


def test_which_classifier_scores_a_cyclegan_run(workdirs, tmp_path):
    """CycleGAN on Fashion-MNIST classes is scored by the Fashion-MNIST classifier (as before);
    on data no classifier knows (Monet's paintings) by none: its own metrics only."""
    cyclegan = workdirs[2]
    classes = fake_run(cyclegan, tmp_path / "classes", source="fashion_mnist", class_x=7,
                       class_y=9, load_size=32)
    monet = fake_run(cyclegan, tmp_path / "monet", source="tfds", name="cycle_gan/monet2photo")
    settings = {w: features.read_settings(w)[0] for w in (classes, monet, str(cyclegan))}
    assert results.scored_dataset(settings[classes]) == "fmnist"
    assert results.scored_dataset(settings[monet]) is None
    assert results.scored_dataset(settings[str(cyclegan)]) == "synthetic"
    both = {w: settings[w] for w in (classes, monet)}
    assert results.default_classifier_workdir(both) == "runs/classifier_fmnist"
    assert features.data_flags(settings[classes].data) == [
        "--config.data.source=tfds", "--config.data.name=fashion_mnist"]
    fmnist_classifier = types.SimpleNamespace(provenance={"dataset": "fmnist",
                                                          "workdir": str(tmp_path)})
    results.check_datasets(both, fmnist_classifier)  # no error
    assert results.classifier_knows(settings[classes], fmnist_classifier)
    assert not results.classifier_knows(settings[monet], fmnist_classifier)
    with pytest.raises(results.DatasetMismatchError, match="runs/classifier_synthetic"):
        results.check_datasets({str(cyclegan): settings[str(cyclegan)]}, fmnist_classifier)


def test_train_command_for_a_folder_dataset():
    data = types.SimpleNamespace(source="folder", path="/data/my pets/", name="fashion_mnist",
                                 image_size=64, resize="crop", channels=3)
    assert features.train_command(data=data) == (
        "python -m experiments.main --config experiments/configs/classifier_fmnist.py "
        "--workdir runs/classifier_my_pets --config.data.source=folder "
        "--config.data.path='/data/my pets/' --config.data.image_size=64 "
        "--config.data.channels=3")
    # Zero-padded Fashion-MNIST (DDPM, DCGAN) is scored by the classifier of the stored images.
    padded = types.SimpleNamespace(source="tfds", name="fashion_mnist", image_size=32,
                                   resize="pad", channels=0, data_dir=None)
    assert features.train_command(data=padded) == (
        "python -m experiments.main --config experiments/configs/classifier_fmnist.py "
        "--workdir runs/classifier_fmnist --config.data.source=tfds "
        "--config.data.name=fashion_mnist")


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
