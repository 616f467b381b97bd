"""The suite's class-conditional metrics against independent references: class accuracy on a
known-answer toy, and the mean intra-class FD against per-class FDs computed in NumPy float64
from the closed form ‖μ₁ − μ₂‖² + tr(C₁ + C₂ − 2 (C₁C₂)^½) with SciPy's sqrtm."""

import numpy as np
import pytest
import scipy.linalg

from jaxgen.evaluation import suite


def one_hot(ids, c=3):
    return np.eye(c)[np.asarray(ids)]


def test_class_accuracy_known_answer():
    asked = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    said = np.array([0, 1, 1, 1, 2, 0, 2, 0])  # 6 of 8 right: class 0 2/3, 1 2/2, 2 2/3
    out = suite.class_accuracy(one_hot(said) * 0.8 + 0.05, asked)
    assert out["value"] == 0.75 and out["num_samples"] == 8
    assert out["samples_per_class"] == {0: 3, 1: 2, 2: 3}
    assert out["per_class"] == pytest.approx({0: 2 / 3, 1: 1.0, 2: 2 / 3})
    with pytest.raises(ValueError, match="integer class ids"):
        suite.class_accuracy(one_hot(said), asked.astype(float))
    with pytest.raises(ValueError, match=r"shape \[8\]"):
        suite.class_accuracy(one_hot(said), asked[:5])


def test_balanced_labels():
    labels = suite.balanced_labels(3, 11)  # rounded down to 3 of each
    np.testing.assert_array_equal(labels, [0, 1, 2] * 3)
    assert labels.dtype == np.int32
    with pytest.raises(ValueError, match="at least 4"):
        suite.balanced_labels(4, 3)


def closed_form_fd(a, b):
    """FD of the Gaussians fitted to two feature sets, float64, independent of metrics.py."""
    m1, m2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    root = scipy.linalg.sqrtm(c1 @ c2).real
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2.0 * root))


def gaussian_classes(rng, counts, d, shift):
    """Features per class: N(μ_c + shift, A_c A_cᵀ) with a random A_c per class."""
    feats, labels = [], []
    for c, n in enumerate(counts):
        mix = rng.normal(size=(d, d)) * 0.5 + np.eye(d)
        feats.append(rng.normal(size=(n, d)) @ mix.T + 3.0 * c + shift)
        labels += [c] * n
    return np.concatenate(feats), np.asarray(labels)


def test_intra_class_fd_is_the_mean_of_per_class_closed_form_fds():
    rng = np.random.default_rng(0)
    real, real_y = gaussian_classes(rng, (60, 80, 70), d=5, shift=0.0)
    fake, fake_y = gaussian_classes(rng, (40, 40, 40), d=5, shift=0.3)
    order = rng.permutation(len(fake))  # interleaved classes, as balanced_labels asks
    fake, fake_y = fake[order], fake_y[order]
    out = suite.intra_class_fd(real, real_y, fake, fake_y)
    want = [closed_form_fd(real[real_y == c], fake[fake_y == c]) for c in range(3)]
    assert out["per_class"] == pytest.approx(dict(enumerate(want)), rel=1e-9)
    assert out["value"] == pytest.approx(np.mean(want), rel=1e-9)
    assert (out["num_samples"], out["num_reference"], out["num_classes"]) == (120, 210, 3)
    assert out["samples_per_class"] == {0: 40, 1: 40, 2: 40} and out["skipped_classes"] == []
    # Within classes the distance is far smaller than over all classes mixed with the wrong
    # class's images (a check that classes are matched, not shuffled).
    assert out["value"] < closed_form_fd(real[real_y == 0], fake[fake_y == 2])


def test_intra_class_fd_skips_classes_it_cannot_score():
    rng = np.random.default_rng(1)
    real, real_y = gaussian_classes(rng, (10, 1, 10), d=2, shift=0.0)  # class 1: one image
    fake, fake_y = gaussian_classes(rng, (5, 5, 5), d=2, shift=0.0)
    out = suite.intra_class_fd(real, real_y, fake, fake_y)
    assert out["skipped_classes"] == [1] and sorted(out["per_class"]) == [0, 2]
    assert out["value"] == pytest.approx(np.mean([out["per_class"][0], out["per_class"][2]]))
    assert suite.intra_class_fd(real[:1], real_y[:1], fake, fake_y) is None


def test_conditional_quality_adds_the_class_metrics_to_the_overall_ones():
    rng = np.random.default_rng(2)
    real, real_y = gaussian_classes(rng, (30, 30, 30), d=4, shift=0.0)
    fake, fake_y = gaussian_classes(rng, (20, 20, 20), d=4, shift=0.1)
    probs = one_hot(fake_y) * 0.91 + 0.03  # rows sum to 1
    out = suite.conditional_quality(real, real_y, fake, probs, fake_y, dataset="toy")
    overall = suite.sample_quality(real, fake, probs, dataset="toy")
    assert {k: out[k] for k in overall} == overall
    assert out["class_accuracy"]["value"] == 1.0
    assert out["intra_fd_toy"] == suite.intra_class_fd(real, real_y, fake, fake_y)
    assert suite.quality_columns(out) == ["fd_toy", "kid_toy", "intra_fd_toy", "precision",
                                          "recall", "label_entropy_nats", "class_accuracy"]


def test_sweep_quality_is_fd_and_the_class_metrics():
    rng = np.random.default_rng(3)
    real, real_y = gaussian_classes(rng, (30, 30, 30), d=4, shift=0.0)
    fake, fake_y = gaussian_classes(rng, (20, 20, 20), d=4, shift=0.1)
    probs = one_hot(fake_y) * 0.91 + 0.03
    full = suite.conditional_quality(real, real_y, fake, probs, fake_y, dataset="toy")
    point = suite.sweep_quality(real, fake, dataset="toy", real_labels=real_y, fake_probs=probs,
                                fake_labels=fake_y)
    assert set(point) == {"fd_toy", "class_accuracy", "intra_fd_toy"}
    assert point["fd_toy"] == {k: full["fd_toy"][k] for k in ("value", "num_samples",
                                                              "num_reference")}
    assert point["class_accuracy"] == full["class_accuracy"]
    assert point["intra_fd_toy"] == full["intra_fd_toy"]
    assert set(suite.sweep_quality(real, fake, dataset="toy")) == {"fd_toy"}  # unconditional
