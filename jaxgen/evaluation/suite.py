"""The evaluation suite's scoring, for any dataset: sample quality in a classifier's features.

Samples (or translations, or real images) are compared with real images in the penultimate
features of a classifier trained on the *same* dataset (:class:`~jaxgen.evaluation.features
.FeatureExtractor`). The metrics carry that dataset's short name (:func:`dataset_name`):
``fd_<dataset>`` (the Fréchet distance of :func:`~jaxgen.evaluation.metrics
.frechet_distance_from_features`) and ``kid_<dataset>`` (KID ± its standard error), because a
number is comparable only with numbers measured in the same classifier's features. They are
not FID: the features are not Inception's, and the values are not comparable to published
FIDs. ``precision`` / ``recall`` (k = :data:`PR_K`) and ``label_entropy_nats`` come with them.

Samples of a class-conditional model carry the class each was asked for:
:func:`conditional_quality` adds ``class_accuracy`` (the share the classifier labels as that
class, :func:`class_accuracy`) and ``intra_fd_<dataset>``, the mean over classes of the FD
between that class's samples and that class's real images (:func:`intra_class_fd`), to the
metrics over all classes; :func:`balanced_labels` asks for equal numbers per class.

Everything here takes arrays (features, probabilities, uint8 images, codes) and names; reading
runs, checkpoints and data is the caller's job (``experiments/results.py``,
``experiments/features.py``). Each metric is a dict ``{"value", "num_samples", ...}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from jaxgen.evaluation import diversity, metrics, probe

PR_K = 3  # neighbours of improved precision / recall
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000
PROBE_L2 = 1e-4  # the linear probe's L2 weight on standardised codes
# The codes a linear probe reads, by preference: a VAE's posterior mean, an AE's code.
PROBE_CODES = ("mean", "z")
# Sample-quality metrics whose names do not depend on the dataset, in table order.
DATASET_FREE_METRICS = ("precision", "recall", "label_entropy_nats")
# A class-conditional model's own column, after those (table order).
CONDITIONAL_METRICS = ("class_accuracy",)
# Prefixes of the metrics named for the classifier's dataset, in table order.
DATASET_METRIC_PREFIXES = ("fd_", "kid_", "intra_fd_")
# Long TFDS names shortened in metric names (fd_fmnist, kid_fmnist as before).
SHORT_NAMES = {"fashion_mnist": "fmnist"}

Extractor = Callable[[np.ndarray, str], tuple[np.ndarray, np.ndarray]]


def dataset_name(data: Any) -> str:
    """The short name of the dataset that data settings read, as in ``fd_<name>``.

    * ``source="synthetic"``: ``"synthetic"``;
    * an image folder (``source="folder"``, ``data.path``; CycleGAN's ``source="folders"``,
      ``data.root``): the folder's basename, characters other than letters, digits, ``.``,
      ``_`` and ``-`` replaced by ``_``;
    * CycleGAN's Fashion-MNIST classes (``source="fashion_mnist"``): ``"fmnist"``;
    * otherwise (TFDS): ``data.name`` with ``/`` and ``:`` replaced by ``_`` and
      ``fashion_mnist`` shortened to ``fmnist`` (``"cycle_gan/monet2photo"`` →
      ``"cycle_gan_monet2photo"``, ``"fashion_mnist:3.0.1"`` → ``"fmnist_3.0.1"``).

    Args:
      data: data settings (an ``ImageDataConfig``, ``UnpairedDataConfig`` or anything with
        ``source`` and ``name`` / ``path`` / ``root`` attributes).

    Raises:
      ValueError: the settings name no dataset (a folder source without its path, no name).
    """
    source = getattr(data, "source", "tfds")
    if source == "synthetic":
        return "synthetic"
    if source in ("folder", "folders"):
        path = getattr(data, "path", "") or getattr(data, "root", "") or ""
        base = os.path.basename(os.path.normpath(path)) if path else ""
        if base in ("", ".", "..", os.sep):
            raise ValueError(f"data.source={source!r} with data path {path!r}: no folder name "
                             "to name the dataset by.")
        return re.sub(r"[^\w.-]", "_", base)
    if source == "fashion_mnist":
        return SHORT_NAMES["fashion_mnist"]
    name = getattr(data, "name", "") or ""
    if not name:
        raise ValueError(f"data.source={source!r} without data.name: no dataset to name.")
    name = name.replace("/", "_").replace(":", "_")
    for long, short in SHORT_NAMES.items():
        name = re.sub(rf"^{long}(?=_|$)", short, name)
    return name


def fd_name(dataset: str) -> str:
    """The Fréchet distance's metric name in the features of `dataset`'s classifier."""
    return f"fd_{dataset}"


def kid_name(dataset: str) -> str:
    """KID's metric name in the features of `dataset`'s classifier."""
    return f"kid_{dataset}"


def intra_fd_name(dataset: str) -> str:
    """The mean intra-class Fréchet distance's name in the features of `dataset`'s
    classifier."""
    return f"intra_fd_{dataset}"


def quality_metric_names(dataset: str) -> tuple[str, ...]:
    """Every metric :func:`sample_quality` returns, in table order."""
    return (fd_name(dataset), kid_name(dataset), *DATASET_FREE_METRICS)


def quality_columns(names: Iterable[str]) -> list[str]:
    """The sample-quality metrics among `names`, in table order: ``fd_*``, ``kid_*``,
    ``intra_fd_*`` (each sorted by dataset), then precision, recall, label entropy and (a
    conditional model) class accuracy."""
    names = set(names)
    out = []
    for prefix in DATASET_METRIC_PREFIXES:
        out += sorted(n for n in names if n.startswith(prefix))
    return out + [n for n in (*DATASET_FREE_METRICS, *CONDITIONAL_METRICS) if n in names]


def sample_quality(real_features, fake_features, fake_probs, *, dataset: str,
                   seed: int = 0) -> dict:
    """Samples against real images in one classifier's features.

    Args:
      real_features: ``[N_ref, D]`` features of the real (reference) images.
      fake_features: ``[N, D]`` features of the samples.
      fake_probs: ``[N, C]`` the classifier's class probabilities of the samples.
      dataset: the classifier's dataset (:func:`dataset_name`), naming FD and KID.
      seed: KID's subset draws.

    Returns:
      ``{name: {"value", "num_samples", "num_reference", ...}}`` for each of
      :func:`quality_metric_names`: KID adds ``"se"``, ``"subset_size"`` and
      ``"num_subsets"``, precision and recall ``"k"``.
    """
    n, n_ref = len(fake_features), len(real_features)
    out = {}

    def put(name, value, **extra):
        out[name] = {"value": float(value), "num_samples": n, "num_reference": n_ref, **extra}

    put(fd_name(dataset), metrics.frechet_distance_from_features(real_features, fake_features))
    kid, se = metrics.kid(real_features, fake_features, num_subsets=KID_SUBSETS,
                          subset_size=KID_SUBSET_SIZE, seed=seed)
    put(kid_name(dataset), kid, se=se, subset_size=min(KID_SUBSET_SIZE, n, n_ref),
        num_subsets=KID_SUBSETS)
    precision, recall = diversity.precision_recall(real_features, fake_features, k=PR_K)
    put("precision", precision, k=PR_K)
    put("recall", recall, k=PR_K)
    put("label_entropy_nats", diversity.label_entropy(fake_probs))
    return out


def balanced_labels(num_classes: int, num_samples: int) -> np.ndarray:
    """Class ids asking for equal numbers of samples per class: ``num_samples // num_classes``
    of each, the classes in turn (0, 1, …, C − 1, 0, 1, …), int32. The count is rounded down
    to a multiple of `num_classes` (so each record's ``num_samples`` states what was drawn).

    Raises:
      ValueError: fewer samples than classes, or no classes.
    """
    if num_classes < 1:
        raise ValueError(f"balanced_labels needs at least one class, got {num_classes}.")
    per_class = num_samples // num_classes
    if per_class < 1:
        raise ValueError(f"{num_samples} samples cannot be shared equally over {num_classes} "
                         f"classes; ask for at least {num_classes}.")
    return np.tile(np.arange(num_classes, dtype=np.int32), per_class)


def _labels(name: str, labels, n: int) -> np.ndarray:
    a = np.asarray(labels)
    if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integer class ids of shape [{n}], got {a.dtype} "
                         f"{a.shape}.")
    return a.astype(np.int64)


def _per_class_counts(labels: np.ndarray) -> dict[int, int]:
    ids, counts = np.unique(labels, return_counts=True)
    return {int(c): int(k) for c, k in zip(ids, counts, strict=True)}


def class_accuracy(probs, labels) -> dict:
    """The share of samples the classifier labels as the class each was asked for.

    Args:
      probs: ``[N, C]`` the classifier's class probabilities (or logits) of the samples.
      labels: ``[N]`` the class each sample was generated for.

    Returns:
      ``{"value", "num_samples", "samples_per_class": {class: n}, "per_class": {class:
      accuracy}}`` (classes as strings in JSON).
    """
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape [N, C], got {probs.shape}.")
    labels = _labels("labels", labels, len(probs))
    hit = np.argmax(probs, axis=1) == labels
    counts = _per_class_counts(labels)
    return {"value": float(np.mean(hit)), "num_samples": int(len(labels)),
            "samples_per_class": counts,
            "per_class": {c: float(np.mean(hit[labels == c])) for c in counts}}


def intra_class_fd(real_features, real_labels, fake_features, fake_labels, *,
                   min_per_class: int = 2) -> dict | None:
    """Mean over classes of the Fréchet distance between the samples generated for a class
    and the real images of that class (the same FD as :func:`sample_quality`'s, per class).

    Args:
      real_features, real_labels: ``[N_ref, D]`` features of the real images and their classes.
      fake_features, fake_labels: ``[N, D]`` features of the samples and the classes they were
        asked for.
      min_per_class: the fewest images a side needs for a class to be scored (a covariance
        needs 2); classes of the samples with fewer real or generated images are skipped and
        listed.

    Returns:
      ``{"value", "num_samples", "num_reference", "num_classes", "samples_per_class",
      "per_class": {class: fd}, "skipped_classes"}``; None when no class can be scored.
      ``value`` is the unweighted mean of ``per_class``; like any FD it is biased upwards at
      small per-class counts, so compare values at equal ``samples_per_class``.
    """
    real_features = np.asarray(real_features)
    fake_features = np.asarray(fake_features)
    real_labels = _labels("real_labels", real_labels, len(real_features))
    fake_labels = _labels("fake_labels", fake_labels, len(fake_features))
    counts = _per_class_counts(fake_labels)
    per_class, skipped = {}, []
    for c, n in counts.items():
        real = real_features[real_labels == c]
        if n < min_per_class or len(real) < min_per_class:
            skipped.append(c)
            continue
        per_class[c] = metrics.frechet_distance_from_features(real, fake_features[
            fake_labels == c])
    if not per_class:
        return None
    return {"value": float(np.mean(list(per_class.values()))),
            "num_samples": int(len(fake_labels)), "num_reference": int(len(real_labels)),
            "num_classes": len(per_class), "samples_per_class": counts,
            "per_class": per_class, "skipped_classes": skipped}


def conditional_quality(real_features, real_labels, fake_features, fake_probs, fake_labels,
                        *, dataset: str, seed: int = 0) -> dict:
    """:func:`sample_quality` over all classes, plus ``class_accuracy`` and
    ``intra_fd_<dataset>`` (omitted when no class has 2 images on each side): the metrics of a
    class-conditional model's samples, each asked for a class (`fake_labels`); `real_labels`
    None (real images without classes): no intra-class FD."""
    out = sample_quality(real_features, fake_features, fake_probs, dataset=dataset, seed=seed)
    out["class_accuracy"] = class_accuracy(fake_probs, fake_labels)
    intra = None if real_labels is None else intra_class_fd(real_features, real_labels,
                                                             fake_features, fake_labels)
    if intra is not None:
        out[intra_fd_name(dataset)] = intra
    return out


def sweep_quality(real_features, fake_features, *, dataset: str, real_labels=None,
                  fake_probs=None, fake_labels=None) -> dict:
    """The metrics of one point of a sampling sweep (many points: no KID or precision/recall):
    ``fd_<dataset>`` against all real images and, for samples asked for classes
    (`fake_labels` with `fake_probs` and `real_labels`), ``class_accuracy`` and
    ``intra_fd_<dataset>``; each ``{"value", "num_samples", ...}``."""
    n, n_ref = len(fake_features), len(real_features)
    out = {fd_name(dataset): {
        "value": float(metrics.frechet_distance_from_features(real_features, fake_features)),
        "num_samples": n, "num_reference": n_ref}}
    if fake_labels is not None:
        out["class_accuracy"] = class_accuracy(fake_probs, fake_labels)
        if real_labels is not None:
            intra = intra_class_fd(real_features, real_labels, fake_features, fake_labels)
            if intra is not None:
                out[intra_fd_name(dataset)] = intra
    return out


def real_features(extractor: Extractor, images) -> tuple[np.ndarray, np.ndarray]:
    """Features and class probabilities of real uint8 images ``[N, H, W, C]`` as stored."""
    return extractor(np.asarray(images).astype(np.float32) / 255.0, "unit")


def real_quality(extractor: Extractor, images, reference_features, *, dataset: str,
                 seed: int = 0) -> dict:
    """:func:`sample_quality` of real uint8 images (the reference row: a slice of the training
    split, never the test images themselves) against the reference features."""
    feats, probs = real_features(extractor, images)
    return sample_quality(reference_features, feats, probs, dataset=dataset, seed=seed)


def target_class_share(probs, target_class: int) -> dict:
    """The share of images (translations) the classifier puts in `target_class`."""
    probs = np.asarray(probs)
    return {"value": float(np.mean(np.argmax(probs, axis=1) == target_class)),
            "num_samples": len(probs), "target_class": int(target_class)}


def own_metrics(eval_passes: Mapping[str, Any], values: Mapping[str, Any]) -> dict:
    """A family's own evaluation (``eval/*`` means, their ``_se`` and per-pass example counts,
    as the runner returns them) as metrics ``{"value", "num_samples", "se"?}``.

    Args:
      eval_passes: the family's passes by name, each with ``.metrics`` (the names it writes).
      values: ``{"eval/<metric>", "eval/<metric>_se", "eval/<pass>_num_examples"}``.
    """
    out = {}
    for name, p in eval_passes.items():
        count = int(values[f"eval/{name}_num_examples"])
        for m in p.metrics:
            out[f"eval/{m}"] = {"value": values[f"eval/{m}"], "num_samples": count}
            if f"eval/{m}_se" in values:
                out[f"eval/{m}"]["se"] = values[f"eval/{m}_se"]
    return out


def linear_probe_metric(train_codes: Mapping[str, np.ndarray],
                        test_codes: Mapping[str, np.ndarray], *,
                        l2: float = PROBE_L2) -> dict | None:
    """Linear-probe accuracy of a model's codes: fit on the training codes, scored on the test
    codes (:func:`jaxgen.evaluation.probe.linear_probe_accuracy`).

    Args:
      train_codes, test_codes: ``{"label", <codes>}``; the codes probed are the first of
        :data:`PROBE_CODES` present (a VAE's posterior ``"mean"``, an AE's ``"z"``).
      l2: the probe's L2 weight.

    Returns:
      ``{"value", "num_samples", "num_train", "train_accuracy", "features", "l2"}``, or None
      when there are no codes to probe (e.g. a classifier's features and probabilities).
    """
    key = next((k for k in PROBE_CODES if k in train_codes), None)
    if key is None:
        return None
    out = probe.linear_probe_accuracy(train_codes[key], train_codes["label"], test_codes[key],
                                      test_codes["label"], l2=l2)
    return {"value": out["accuracy"], "num_samples": out["num_test"],
            "num_train": out["num_train"], "train_accuracy": out["train_accuracy"],
            "features": key, "l2": out["l2"]}
