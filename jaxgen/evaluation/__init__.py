"""Evaluation metrics for every model family, computed on the host in float64 NumPy.

Sample quality on feature vectors (``[N, D]``, e.g. the penultimate activations of
:class:`jaxgen.models.Classifier`): :func:`frechet_distance` and its helpers, :func:`kid`,
:func:`precision_recall`; diversity of predicted labels: :func:`label_entropy`; reconstruction
quality: :func:`psnr`; how linearly separable the classes are in a model's features:
:func:`linear_probe_accuracy`. Features of images from any family: :class:`FeatureExtractor` and its
pinned preprocessing :func:`to_classifier_input` (:mod:`jaxgen.evaluation.features`). The
evaluation suite's records of these metrics, named for the classifier's dataset
(``fd_<dataset>``, :func:`dataset_name`): :mod:`jaxgen.evaluation.suite`.
"""

from jaxgen.evaluation.diversity import label_entropy, precision_recall
from jaxgen.evaluation.features import FeatureExtractor, to_classifier_input
from jaxgen.evaluation.metrics import (
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    kid,
    psnr,
)
from jaxgen.evaluation.probe import fit_linear_probe, linear_probe_accuracy
from jaxgen.evaluation.suite import dataset_name, sample_quality

__all__ = [
    "FeatureExtractor",
    "dataset_name",
    "feature_statistics",
    "fit_linear_probe",
    "frechet_distance",
    "frechet_distance_from_features",
    "kid",
    "label_entropy",
    "linear_probe_accuracy",
    "precision_recall",
    "psnr",
    "sample_quality",
    "to_classifier_input",
]
