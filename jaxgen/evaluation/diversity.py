"""Does a sample cover the data, and only the data? Precision and recall of the generated
distribution (Kynkäänniemi et al. 2019, k-NN manifolds) and the entropy of predicted labels.

Host-side NumPy in float64, on feature vectors ``[N, D]`` (see :mod:`jaxgen.evaluation.metrics`)
or a classifier's predicted labels / probabilities.
"""

from __future__ import annotations

import numpy as np

from jaxgen.evaluation.metrics import as_features

__all__ = ["label_entropy", "precision_recall"]


def _squared_distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """‖aᵢ − bⱼ‖² for all pairs, ``[M, D] × [K, D] → [M, K]``, clipped at 0 (round-off)."""
    a_sq = np.einsum("ij,ij->i", a, a)
    return np.maximum(a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T), 0.0)


def _knn_radii_sq(x: np.ndarray, k: int, batch_size: int) -> np.ndarray:
    """Squared distance from each row of ``x`` to its k-th nearest other row, ``[N]``."""
    n = x.shape[0]
    x_sq = np.einsum("ij,ij->i", x, x)
    radii = np.empty(n, np.float64)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        d2 = _squared_distances(x[start:stop], x, x_sq)
        # A point is at distance exactly 0 from itself; with it in position 0 of the sorted
        # row, position k is the k-th nearest neighbour among the other points.
        d2[np.arange(stop - start), np.arange(start, stop)] = 0.0
        radii[start:stop] = np.partition(d2, k, axis=1)[:, k]
    return radii


def precision_recall(
    real_features, fake_features, *, k: int = 3, batch_size: int = 1024
) -> tuple[float, float]:
    r"""Improved precision and recall of a generative model (k-NN manifolds).

    Kynkäänniemi, Karras, Laine, Lehtinen & Aila 2019, arXiv:1904.06991. Each set Φ estimates
    its manifold as the union of balls around its points, the ball of φ ∈ Φ having the radius
    of φ's k-th nearest neighbour in Φ (φ itself excluded):

    .. math::
        f(\phi, \Phi) = 1 \iff \exists\,\phi' \in \Phi:\ \lVert\phi-\phi'\rVert_2
          \le \lVert\phi' - \mathrm{NN}_k(\phi', \Phi)\rVert_2,

    precision = mean over fake φ_g of f(φ_g, Φ_real) (how many samples look real) and
    recall = mean over real φ_r of f(φ_r, Φ_fake) (how much of the data is covered).

    Distances are Euclidean in float64, formed ``batch_size`` rows at a time (memory
    ``batch_size · max(N_real, N_fake) · 8`` bytes, ~80 MB for 1024 × 10,000), so
    10k × 10k sets of 64–256 features fit comfortably.

    Args:
      real_features: ``[N_real, D]`` with N_real > k.
      fake_features: ``[N_fake, D]`` with N_fake > k, same D.
      k: the neighbour that sets each ball's radius (the paper uses 3).
      batch_size: rows per distance block.

    Returns:
      ``(precision, recall)``, floats in [0, 1].
    """
    if not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    real = as_features("real_features", real_features, min_samples=k + 1)
    fake = as_features("fake_features", fake_features, min_samples=k + 1)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real_features and fake_features must have the same feature dimension D, got "
            f"shapes {real.shape} and {fake.shape}."
        )
    real_radii = _knn_radii_sq(real, k, batch_size)
    fake_radii = _knn_radii_sq(fake, k, batch_size)

    real_sq = np.einsum("ij,ij->i", real, real)
    fake_in_real = np.zeros(fake.shape[0], bool)
    real_in_fake = np.zeros(real.shape[0], bool)
    # One pass over the fake × real distances serves both directions.
    for start in range(0, fake.shape[0], batch_size):
        stop = min(start + batch_size, fake.shape[0])
        d2 = _squared_distances(fake[start:stop], real, real_sq)  # [b, N_real]
        fake_in_real[start:stop] = np.any(d2 <= real_radii[None, :], axis=1)
        real_in_fake |= np.any(d2 <= fake_radii[start:stop, None], axis=0)
    return float(fake_in_real.mean()), float(real_in_fake.mean())


def label_entropy(probabilities_or_labels, num_classes: int | None = None) -> float:
    r"""Entropy, in nats, of the marginal distribution of predicted labels over a sample.

    .. math:: H(\bar p) = -\sum_c \bar p_c \log \bar p_c,\qquad
              \bar p = \frac1N \sum_{n=1}^N p(\cdot \mid x_n)

    with 0 log 0 = 0. A generator that covers all C classes evenly scores log C; mode collapse
    onto fewer classes lowers it (one class: 0). This is the "diversity" half of the Inception
    Score (Salimans et al. 2016, arXiv:1606.03498), on a classifier's predictions.

    Args:
      probabilities_or_labels: either integer labels ``[N]`` in ``[0, C)`` (the marginal is
        the histogram of labels, i.e. hard predictions), or floating class probabilities
        ``[N, C]`` with non-negative rows summing to 1 (soft predictions, e.g.
        ``softmax(logits)``). The dtype decides which: integer means labels, floating means
        probabilities.
      num_classes: C. Optional; for labels it only validates their range (empty classes add
        nothing to the entropy); for probabilities it must equal the number of columns.

    Returns:
      H(p̄) in nats, in [0, log C].
    """
    a = np.asarray(probabilities_or_labels)
    if num_classes is not None and (not isinstance(num_classes, int | np.integer)
                                    or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    if a.size == 0:
        raise ValueError("probabilities_or_labels is empty; need at least one sample.")
    if np.issubdtype(a.dtype, np.integer):
        if a.ndim != 1:
            raise ValueError(f"integer labels must have shape [N], got shape {a.shape}.")
        if a.min() < 0 or (num_classes is not None and a.max() >= num_classes):
            upper = "C" if num_classes is None else num_classes
            raise ValueError(
                f"labels must lie in [0, {upper}), got values in [{a.min()}, {a.max()}]."
            )
        marginal = np.bincount(a).astype(np.float64) / a.shape[0]
    elif np.issubdtype(a.dtype, np.floating):
        if a.ndim != 2:
            raise ValueError(
                f"probabilities must have shape [N, C], got shape {a.shape}; pass hard labels "
                f"as an integer array of shape [N]."
            )
        if num_classes is not None and a.shape[1] != num_classes:
            raise ValueError(
                f"probabilities have {a.shape[1]} columns but num_classes = {num_classes}."
            )
        p = a.astype(np.float64)
        if not np.all(np.isfinite(p)) or p.min() < 0:
            raise ValueError("probabilities must be finite and non-negative.")
        row_sums = p.sum(axis=1)
        # float32 softmax rows sum to 1 within ~1e-6.
        if np.abs(row_sums - 1.0).max() > 1e-4:
            raise ValueError(
                f"each row of probabilities must sum to 1 (apply softmax to logits), got row "
                f"sums in [{row_sums.min():.6g}, {row_sums.max():.6g}]."
            )
        marginal = (p / row_sums[:, None]).mean(axis=0)
    else:
        raise TypeError(
            f"probabilities_or_labels must be integer labels or floating probabilities, got "
            f"dtype {a.dtype}."
        )
    nonzero = marginal[marginal > 0]
    return float(-np.sum(nonzero * np.log(nonzero)))
