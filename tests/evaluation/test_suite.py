"""The evaluation suite's scoring (jaxgen.evaluation.suite): dataset names and metric records.

The formulas themselves (FD, KID, precision/recall, label entropy, the probe) are checked
against float64 references in test_metrics.py and test_probe.py; here: that the suite composes
them under the dataset's names, with their counts.
"""

import types

import numpy as np
import pytest

from jaxgen.data.datasets import ImageDataConfig, UnpairedDataConfig
from jaxgen.evaluation import diversity, metrics, probe, suite


def data(**kw):
    return types.SimpleNamespace(**kw)


@pytest.mark.parametrize("settings, name", [
    (ImageDataConfig(), "fmnist"),  # the default: TFDS fashion_mnist, as fd_fmnist before
    (ImageDataConfig(source="tfds", name="mnist"), "mnist"),
    (ImageDataConfig(source="tfds", name="fashion_mnist:3.0.1"), "fmnist_3.0.1"),
    (ImageDataConfig(source="tfds", name="cifar10"), "cifar10"),
    (ImageDataConfig(source="synthetic"), "synthetic"),
    (data(source="tfds", name="celeb_a/64x64"), "celeb_a_64x64"),
    (data(source="tfds", name="fashion_mnistish"), "fashion_mnistish"),  # only the whole name
    (data(source="folder", path="/data/pets/", name="fashion_mnist"), "pets"),
    (data(source="folder", path="images/my cats"), "my_cats"),
    (UnpairedDataConfig(), "fmnist"),  # CycleGAN's Fashion-MNIST classes
    (UnpairedDataConfig(source="tfds", name="cycle_gan/monet2photo"), "cycle_gan_monet2photo"),
    (UnpairedDataConfig(source="folders", root="/data/horse2zebra"), "horse2zebra"),
    (UnpairedDataConfig(source="synthetic"), "synthetic"),
])
def test_dataset_name(settings, name):
    assert suite.dataset_name(settings) == name
    assert suite.fd_name(name) == f"fd_{name}" and suite.kid_name(name) == f"kid_{name}"


def test_dataset_name_needs_a_name_or_a_folder():
    with pytest.raises(ValueError, match="no folder name"):
        suite.dataset_name(data(source="folder", path=""))
    with pytest.raises(ValueError, match="no folder name"):
        suite.dataset_name(data(source="folder"))
    with pytest.raises(ValueError, match="without data.name"):
        suite.dataset_name(data(source="tfds", name=""))


def features(seed, n, d=4, shift=0.0):
    return np.random.default_rng(seed).normal(shift, 1.0, (n, d))


def test_sample_quality_names_the_metrics_for_the_dataset_and_counts_them():
    real, fake = features(0, 30), features(1, 20, shift=0.5)
    probs = np.random.default_rng(2).dirichlet(np.ones(3), 20)
    out = suite.sample_quality(real, fake, probs, dataset="pets", seed=5)
    assert tuple(out) == suite.quality_metric_names("pets") == (
        "fd_pets", "kid_pets", "precision", "recall", "label_entropy_nats")
    for m in out.values():
        assert m["num_samples"] == 20 and m["num_reference"] == 30
        assert isinstance(m["value"], float)
    # The suite composes the metrics: the same numbers as calling them directly.
    assert out["fd_pets"]["value"] == metrics.frechet_distance_from_features(real, fake)
    kid, se = metrics.kid(real, fake, num_subsets=suite.KID_SUBSETS,
                          subset_size=suite.KID_SUBSET_SIZE, seed=5)
    assert (out["kid_pets"]["value"], out["kid_pets"]["se"]) == (kid, se)
    assert out["kid_pets"]["subset_size"] == 20  # capped by the smaller set
    assert out["kid_pets"]["num_subsets"] == suite.KID_SUBSETS
    precision, recall = diversity.precision_recall(real, fake, k=suite.PR_K)
    assert (out["precision"]["value"], out["recall"]["value"]) == (precision, recall)
    assert out["precision"]["k"] == out["recall"]["k"] == suite.PR_K
    assert out["label_entropy_nats"]["value"] == diversity.label_entropy(probs)


def test_quality_columns_follow_the_names_present():
    names = {"eval/bpd", "recall", "kid_pets", "fd_pets", "label_entropy_nats",
             "target_class_share"}
    assert suite.quality_columns(names) == ["fd_pets", "kid_pets", "recall",
                                            "label_entropy_nats"]
    assert suite.quality_columns(suite.quality_metric_names("fmnist")) == [
        "fd_fmnist", "kid_fmnist", "precision", "recall", "label_entropy_nats"]
    assert suite.quality_columns({"eval/psnr_db"}) == []


def test_real_images_are_scored_as_unit_range_images():
    calls = []

    def extractor(images, input_range):  # features: the mean pixel per channel and more
        calls.append((images.dtype, input_range, float(images.max())))
        flat = images.reshape(len(images), -1)
        return flat[:, :3].astype(np.float64), np.full((len(images), 2), 0.5)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 2, 2, 1)).astype(np.uint8)
    images[0, 0, 0, 0] = 255
    feats, _ = suite.real_features(extractor, images)
    assert calls[-1] == (np.float32, "unit", 1.0)
    np.testing.assert_allclose(feats, images.reshape(12, -1)[:, :3] / 255.0, rtol=1e-6)
    reference = features(3, 10, d=3)
    out = suite.real_quality(extractor, images, reference, dataset="toy")
    assert out == suite.sample_quality(reference, feats, np.full((12, 2), 0.5), dataset="toy")


def test_target_class_share():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    assert suite.target_class_share(probs, 1) == {"value": 0.5, "num_samples": 4,
                                                  "target_class": 1}


def test_own_metrics_keep_each_pass_count_and_standard_error():
    passes = {"test": types.SimpleNamespace(metrics=("loss", "psnr_db")),
              "iwae": types.SimpleNamespace(metrics=("iwae_nll",))}
    values = {"eval/loss": 1.5, "eval/loss_se": 0.1, "eval/psnr_db": 20.0,
              "eval/test_num_examples": 100.0, "eval/iwae_nll": 3.0, "eval/iwae_nll_se": 0.2,
              "eval/iwae_num_examples": 8}
    assert suite.own_metrics(passes, values) == {
        "eval/loss": {"value": 1.5, "num_samples": 100, "se": 0.1},
        "eval/psnr_db": {"value": 20.0, "num_samples": 100},
        "eval/iwae_nll": {"value": 3.0, "num_samples": 8, "se": 0.2},
    }


def test_linear_probe_metric_reads_the_preferred_codes():
    rng = np.random.default_rng(0)

    def codes(n):
        label = rng.integers(0, 3, n)
        mean = np.eye(3)[label] * 4 + rng.normal(0, 0.1, (n, 3))
        return {"label": label, "mean": mean, "z": rng.normal(size=(n, 3))}

    train, test = codes(60), codes(30)
    out = suite.linear_probe_metric(train, test)
    direct = probe.linear_probe_accuracy(train["mean"], train["label"], test["mean"],
                                         test["label"], l2=suite.PROBE_L2)
    assert out == {"value": direct["accuracy"], "num_samples": 30, "num_train": 60,
                   "train_accuracy": direct["train_accuracy"], "features": "mean",
                   "l2": suite.PROBE_L2}
    assert out["value"] == 1.0  # separable
    assert suite.linear_probe_metric({k: train[k] for k in ("label", "z")},
                                     {k: test[k] for k in ("label", "z")})["features"] == "z"
    assert suite.linear_probe_metric({"label": train["label"], "features": train["mean"]},
                                     test) is None
