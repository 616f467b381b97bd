"""Sample-quality metrics on feature vectors: Fréchet distance and KID; and PSNR.

Host-side NumPy in float64. The inputs are feature vectors of real and generated images, e.g.
the penultimate activations of :class:`jaxgen.models.Classifier` (``[N, D]``), or a classifier's
predicted labels; computing the features is the caller's job (on the accelerator, in batches).
These functions only see arrays, so they can be tested against closed forms. Precision/recall
and label entropy: :mod:`jaxgen.evaluation.diversity`.

Shapes: ``features: [N, D]`` (N samples, D feature dimensions), ``mean: [D]``, ``cov: [D, D]``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_features",
    "kid",
    "psnr",
]

# Relative tolerances for accepting a covariance as symmetric positive semi-definite. Round-off
# in a float32 covariance leaves asymmetries and negative eigenvalues of ~1e-7 relative to the
# largest eigenvalue; anything beyond 1e-5 is a wrong input, not round-off.
_SYMMETRY_RTOL = 1e-5
_PSD_RTOL = 1e-5


def as_features(name: str, x, min_samples: int = 1) -> np.ndarray:
    """``x`` as a finite float64 ``[N, D]`` array with N ≥ ``min_samples``, or a ValueError."""
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(
            f"{name} must have shape [N, D] (N samples of D features), got shape {a.shape}; "
            f"flatten each sample's features first, e.g. `{name}.reshape(len({name}), -1)`."
        )
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}.")
    if a.shape[0] < min_samples:
        raise ValueError(
            f"{name} must have at least {min_samples} samples (rows), got shape {a.shape}."
        )
    if a.shape[1] < 1:
        raise ValueError(f"{name} must have at least one feature (column), got shape {a.shape}.")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return a


def _psd_eigh(name: str, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition of a symmetric PSD matrix, round-off eigenvalues set to exactly 0."""
    scale = max(float(np.abs(cov).max()), np.finfo(np.float64).tiny)
    if np.abs(cov - cov.T).max() > _SYMMETRY_RTOL * scale:
        raise ValueError(
            f"{name} must be a symmetric covariance matrix; max |{name} − {name}ᵀ| is "
            f"{np.abs(cov - cov.T).max():.3g} (largest entry {scale:.3g})."
        )
    eigvals, eigvecs = np.linalg.eigh(0.5 * (cov + cov.T))
    top = max(float(eigvals[-1]), 0.0)
    if eigvals[0] < -_PSD_RTOL * max(top, scale):
        raise ValueError(
            f"{name} must be positive semi-definite; its smallest eigenvalue is "
            f"{eigvals[0]:.3g} (largest {top:.3g})."
        )
    # Eigenvalues below λ_max · D · ε are round-off of a zero eigenvalue (as in a pseudo-
    # inverse's rcond); zeroing them matters because √ turns 1e-16 into a 1e-8 error.
    cutoff = top * cov.shape[0] * np.finfo(np.float64).eps
    return np.where(eigvals > cutoff, eigvals, 0.0), eigvecs


def _psd_sqrt(name: str, cov: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root ``V diag(√λ) Vᵀ`` (real, unlike a generic ``sqrtm``)."""
    eigvals, eigvecs = _psd_eigh(name, cov)
    return (eigvecs * np.sqrt(eigvals)) @ eigvecs.T


def frechet_distance(mean1, cov1, mean2, cov2) -> float:
    r"""Fréchet distance between two Gaussians: the squared 2-Wasserstein distance.

    .. math::
        d^2 = \lVert\mu_1-\mu_2\rVert^2
              + \operatorname{tr}\bigl(C_1 + C_2 - 2\,(C_1^{1/2} C_2 C_1^{1/2})^{1/2}\bigr)

    (Dowson & Landau 1982; as the FID of Heusel et al. 2017, arXiv:1706.08500, when the
    statistics are those of Inception features.) The trace term is computed from the
    eigenvalues of the symmetric PSD matrix ``C₁^{1/2} C₂ C₁^{1/2}``, itself built with the
    eigendecomposition square root of C₁, so the result is real and stable for singular
    (rank-deficient) covariances, where a generic ``scipy.linalg.sqrtm`` of ``C₁C₂`` may
    return complex values. Eigenvalues within round-off of 0 (below ``λ_max · D · ε``, including
    slightly negative ones) are set to 0, and a final value within round-off below 0 is
    returned as 0.

    Args:
      mean1: μ₁ ``[D]``, mean of the first set of features.
      cov1: C₁ ``[D, D]``, its covariance (symmetric PSD).
      mean2: μ₂ ``[D]``.
      cov2: C₂ ``[D, D]``.

    Returns:
      The distance d² ≥ 0 as a Python float (float64 arithmetic), in squared feature units.

    Raises:
      ValueError: on shapes other than ``[D]`` / ``[D, D]`` with one D, non-finite values, or a
        covariance that is not symmetric PSD up to round-off.
    """
    mean1, mean2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mean1.ndim != 1 or mean1.shape[0] < 1:
        raise ValueError(f"mean1 must have shape [D], got shape {mean1.shape}.")
    d = mean1.shape[0]
    for name, arr, want in (
        ("mean2", mean2, (d,)),
        ("cov1", cov1, (d, d)),
        ("cov2", cov2, (d, d)),
    ):
        if arr.shape != want:
            raise ValueError(
                f"{name} must have shape {list(want)} (D = {d} from mean1), got shape "
                f"{arr.shape}."
            )
    for name, arr in (("mean1", mean1), ("cov1", cov1), ("mean2", mean2), ("cov2", cov2)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values.")

    sqrt1 = _psd_sqrt("cov1", cov1)
    _psd_eigh("cov2", cov2)  # validates C₂
    middle = sqrt1 @ (0.5 * (cov2 + cov2.T)) @ sqrt1
    # C₁^{1/2} C₂ C₁^{1/2} is PSD; tr of its square root is Σ √λᵢ.
    eig_middle, _ = _psd_eigh("C1^(1/2) C2 C1^(1/2)", 0.5 * (middle + middle.T))
    trace_sqrt = float(np.sum(np.sqrt(eig_middle)))

    diff = mean1 - mean2
    value = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt)
    scale = float(diff @ diff + abs(np.trace(cov1)) + abs(np.trace(cov2)))
    if value < 0.0:
        # d² ≥ 0 exactly; a negative result beyond round-off would be a bug, not noise.
        if value < -1e-8 * max(scale, 1.0):
            raise FloatingPointError(f"frechet_distance came out negative: {value!r}.")
        value = 0.0
    return value


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (``ddof = 1``) of a set of feature vectors, in float64.

    Args:
      features: ``[N, D]``, N ≥ 2 samples.

    Returns:
      ``(mean [D], cov [D, D])`` as float64 NumPy arrays, the inputs of
      :func:`frechet_distance`.
    """
    x = as_features("features", features, min_samples=2)
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / (x.shape[0] - 1)
    return mean, cov


def _feature_pair(features1, features2) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets as float64 ``[N, D]`` with N ≥ 2 and one D."""
    f1 = as_features("features1", features1, min_samples=2)
    f2 = as_features("features2", features2, min_samples=2)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(
            f"features1 and features2 must have the same feature dimension D, got shapes "
            f"{f1.shape} and {f2.shape}."
        )
    return f1, f2


def frechet_distance_from_features(features1, features2) -> float:
    """:func:`frechet_distance` between Gaussians fitted to two sets of features.

    Args:
      features1: ``[N1, D]``, N1 ≥ 2 (e.g. real images' features).
      features2: ``[N2, D]``, N2 ≥ 2 (e.g. generated images' features); same D.

    Returns:
      The Fréchet distance (float). It is biased upwards for small N (Chong & Forsyth 2020,
      arXiv:1911.07023): compare values only at equal sample sizes, typically 10,000.
    """
    f1, f2 = _feature_pair(features1, features2)
    return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (xᵀy / d + 1)³ for all pairs: ``[M, D] × [K, D] → [M, K]``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of one pair of subsets ``[m, D]``, ``[n, D]`` with the cubic kernel."""
    m, n = x.shape[0], y.shape[0]
    kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    sum_xx = kxx.sum() - np.trace(kxx)
    sum_yy = kyy.sum() - np.trace(kyy)
    return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * kxy.sum() / (m * n))


def kid(
    features1, features2, *, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    r"""Kernel distance (KID) between two feature sets: unbiased MMD² with a cubic kernel.

    Bińkowski, Sutherland, Arbel & Gretton 2018, "Demystifying MMD GANs", arXiv:1801.01401.
    With the polynomial kernel :math:`k(x, y) = (x^\top y / d + 1)^3` (d = feature dimension)
    and subsets :math:`X = \{x_i\}_{i=1}^m`, :math:`Y = \{y_j\}_{j=1}^m`,

    .. math::
        \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)}\sum_{i\ne j} k(x_i,x_j)
          + \frac{1}{m(m-1)}\sum_{i\ne j} k(y_i,y_j) - \frac{2}{m^2}\sum_{i,j} k(x_i,y_j),

    an unbiased estimate of MMD² (it can be negative when the distributions are equal). The
    estimate is averaged over ``num_subsets`` pairs of subsets, each drawn without replacement
    from its set (subsets overlap across draws, as in the reference implementation).

    Args:
      features1: ``[N1, D]`` (e.g. real images' features).
      features2: ``[N2, D]``, same D.
      num_subsets: number of subset pairs averaged (≥ 1).
      subset_size: m, capped at ``min(N1, N2)``; must end up ≥ 2.
      seed: seed of the NumPy generator that draws the subsets (results are deterministic).

    Returns:
      ``(mean, standard_error)``: the average MMD² over subsets and ``std / √num_subsets``
      (sample std, ``ddof = 1``; NaN for a single subset). Because subsets overlap, the
      standard error describes the subset noise of this estimate, not the spread across
      independent sample sets.
    """
    f1, f2 = _feature_pair(features1, features2)
    if not isinstance(num_subsets, int | np.integer) or num_subsets < 1:
        raise ValueError(f"num_subsets must be a positive integer, got {num_subsets!r}.")
    if not isinstance(subset_size, int | np.integer) or subset_size < 2:
        raise ValueError(f"subset_size must be an integer ≥ 2, got {subset_size!r}.")
    m = min(int(subset_size), f1.shape[0], f2.shape[0])
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets, np.float64)
    for s in range(num_subsets):
        x = f1[rng.choice(f1.shape[0], m, replace=False)]
        y = f2[rng.choice(f2.shape[0], m, replace=False)]
        estimates[s] = _mmd2_unbiased(x, y)
    mean = float(estimates.mean())
    if num_subsets == 1:
        return mean, math.nan
    return mean, float(estimates.std(ddof=1) / math.sqrt(num_subsets))


def psnr(mse_per_pixel, data_range):
    r"""Peak signal-to-noise ratio in dB from a mean squared error per pixel.

    .. math:: \mathrm{PSNR} = 10 \log_{10}\frac{R^2}{\mathrm{MSE}}

    Pass one MSE per image to get one PSNR per image (then average those, the usual report);
    the PSNR of a dataset-mean MSE is a different, larger-or-equal number (Jensen).

    Args:
      mse_per_pixel: MSE averaged over pixels and channels, a scalar or any-shaped array
        (e.g. ``[B]``), ≥ 0.
      data_range: R, the peak-to-peak range of the pixel values (1.0 for [0, 1], 2.0 for
        [−1, 1], 255 for uint8), > 0.

    Returns:
      PSNR in dB, float64, with the shape of ``mse_per_pixel`` (a Python float for a scalar);
      +inf where the MSE is 0.
    """
    mse = np.asarray(mse_per_pixel, np.float64)
    if not np.all(np.isfinite(mse)) or (mse.size and mse.min() < 0):
        raise ValueError("mse_per_pixel must be finite and non-negative.")
    if not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be positive and finite, got {data_range!r}.")
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(float(data_range) ** 2 / mse)
    return float(out) if out.ndim == 0 else out
