"""Evaluation metrics against closed forms, brute-force float64 references and Monte Carlo."""

import math

import numpy as np
import pytest

from jaxgen import evaluation


def random_spd(rng, d, min_eig=0.1):
    """A random symmetric positive-definite [d, d] matrix with eigenvalues ≥ min_eig."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * rng.uniform(min_eig, 3.0, size=d)) @ q.T


def trace_sqrt_product_reference(c1, c2):
    """tr (C₁^{1/2} C₂ C₁^{1/2})^{1/2} = Σ √λ(C₁C₂): C₁C₂ is similar to that PSD matrix."""
    eig = np.linalg.eigvals(c1 @ c2)
    assert np.abs(eig.imag).max() < 1e-9
    return float(np.sum(np.sqrt(np.clip(eig.real, 0.0, None))))


def fd_reference(m1, c1, m2, c2):
    return float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2)
                 - 2 * trace_sqrt_product_reference(c1, c2))


# ----------------------------------------------------------------------------- Fréchet distance


def test_fd_diagonal_covariances_match_sum_of_squared_root_differences():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=7), rng.normal(size=7)
    a, b = rng.uniform(0.01, 4.0, size=7), rng.uniform(0.01, 4.0, size=7)
    want = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = evaluation.frechet_distance(m1, np.diag(a), m2, np.diag(b))
    assert isinstance(got, float)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_fd_non_commuting_2x2_matches_closed_form_matrix_square_root():
    # For 2×2 PSD M, √M = (M + √det M · I)/√(tr M + 2√det M), so tr √M = √(tr M + 2√det M);
    # with M = C₁^{1/2} C₂ C₁^{1/2}: tr M = tr(C₁C₂) and det M = det C₁ det C₂.
    c1 = np.array([[2.0, 0.9], [0.9, 1.0]])
    c2 = np.array([[0.5, -0.3], [-0.3, 3.0]])
    assert np.abs(c1 @ c2 - c2 @ c1).max() > 0.5  # the case is genuinely non-commuting
    m1, m2 = np.array([0.3, -1.0]), np.array([1.0, 0.5])
    trace_sqrt = math.sqrt(np.trace(c1 @ c2) + 2 * math.sqrt(np.linalg.det(c1) * np.linalg.det(c2)))
    want = np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * trace_sqrt
    np.testing.assert_allclose(evaluation.frechet_distance(m1, c1, m2, c2), want, rtol=1e-12)


def test_fd_non_commuting_higher_dimension_matches_eigenvalues_of_product():
    rng = np.random.default_rng(1)
    c1, c2 = random_spd(rng, 6), random_spd(rng, 6)
    assert np.abs(c1 @ c2 - c2 @ c1).max() > 0.1
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    np.testing.assert_allclose(evaluation.frechet_distance(m1, c1, m2, c2),
                               fd_reference(m1, c1, m2, c2), rtol=1e-10)


def test_fd_rank_deficient_covariances_match_closed_form():
    # Rank-1 C₁ = vvᵀ, C₂ = wwᵀ: C₁^{1/2} = vvᵀ/‖v‖, so tr(C₁^{1/2}C₂C₁^{1/2})^{1/2} = |v·w| and
    # FD = ‖μ₁−μ₂‖² + ‖v‖² + ‖w‖² − 2|v·w| (the W₂² between two degenerate Gaussians).
    v, w = np.array([1.0, 2.0, -0.5]), np.array([-0.3, 1.0, 2.0])
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.0, -1.0])
    want = np.sum((m1 - m2) ** 2) + v @ v + w @ w - 2 * abs(v @ w)
    got = evaluation.frechet_distance(m1, np.outer(v, v), m2, np.outer(w, w))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # Singular C₁ against a full-rank C₂, and the zero covariance (point masses).
    c2 = random_spd(np.random.default_rng(2), 3)
    np.testing.assert_allclose(evaluation.frechet_distance(m1, np.outer(v, v), m2, c2),
                               fd_reference(m1, np.outer(v, v), m2, c2), rtol=1e-8)
    zeros = np.zeros((3, 3))
    np.testing.assert_allclose(evaluation.frechet_distance(m1, zeros, m2, zeros),
                               np.sum((m1 - m2) ** 2), rtol=1e-12)


def test_fd_from_fewer_samples_than_dimensions_is_real_and_finite():
    # 5 samples in 20 dimensions: both covariances have rank ≤ 4.
    rng = np.random.default_rng(3)
    f1, f2 = rng.normal(size=(5, 20)), rng.normal(size=(5, 20)) + 1.0
    got = evaluation.frechet_distance_from_features(f1, f2)
    m1, c1 = evaluation.feature_statistics(f1)
    m2, c2 = evaluation.feature_statistics(f2)
    assert isinstance(got, float) and got > 0
    np.testing.assert_allclose(got, fd_reference(m1, c1, m2, c2), rtol=1e-8)


def test_fd_of_identical_statistics_is_zero_and_fd_is_symmetric():
    rng = np.random.default_rng(4)
    m, c = rng.normal(size=16), random_spd(rng, 16, min_eig=1e-3)
    # Round-off only: the terms are O(10), the result must be 0 to ~1e-12 of that.
    assert abs(evaluation.frechet_distance(m, c, m, c)) <= 1e-10
    m2, c2 = rng.normal(size=16), random_spd(rng, 16)
    np.testing.assert_allclose(evaluation.frechet_distance(m, c, m2, c2),
                               evaluation.frechet_distance(m2, c2, m, c), rtol=1e-10)


def test_feature_statistics_match_numpy_mean_and_unbiased_covariance():
    x = np.random.default_rng(5).normal(size=(50, 4)).astype(np.float32)
    mean, cov = evaluation.feature_statistics(x)
    assert mean.dtype == cov.dtype == np.float64 and cov.shape == (4, 4)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-12)


def test_fd_from_features_matches_closed_form_by_monte_carlo():
    # N = 200,000 samples per Gaussian in D = 4. Over 20 other seeds the plug-in estimate had
    # s.d. 0.013 around the true FD ≈ 3.12 (bias +0.003); the tolerance 0.065 is 5 s.d.
    rng = np.random.default_rng(6)
    d, n = 4, 200_000
    c1, c2 = random_spd(rng, d), random_spd(rng, d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    f1 = rng.multivariate_normal(m1, c1, size=n)
    f2 = rng.multivariate_normal(m2, c2, size=n)
    want = fd_reference(m1, c1, m2, c2)
    np.testing.assert_allclose(evaluation.frechet_distance_from_features(f1, f2), want, atol=0.065)


def test_fd_input_errors_name_the_argument_and_expected_shape():
    m, c = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match=r"mean1 must have shape \[D\]"):
        evaluation.frechet_distance(np.zeros((3, 1)), c, m, c)
    with pytest.raises(ValueError, match=r"cov2 must have shape \[3, 3\]"):
        evaluation.frechet_distance(m, c, m, np.eye(4))
    with pytest.raises(ValueError, match=r"mean2 must have shape \[3\]"):
        evaluation.frechet_distance(m, c, np.zeros(2), c)
    with pytest.raises(ValueError, match="cov1 must be positive semi-definite"):
        evaluation.frechet_distance(m, -c, m, c)
    with pytest.raises(ValueError, match="cov2 must be a symmetric"):
        evaluation.frechet_distance(m, c, m, np.triu(np.ones((3, 3))))
    with pytest.raises(ValueError, match="at least 2 samples"):
        evaluation.feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"features must have shape \[N, D\]"):
        evaluation.feature_statistics(np.zeros(3))
    with pytest.raises(ValueError, match="same feature dimension"):
        evaluation.frechet_distance_from_features(np.zeros((4, 3)), np.zeros((4, 2)))


# -------------------------------------------------------------------------------------- KID


def kernel(x, y):
    return (float(np.dot(x, y)) / len(x) + 1.0) ** 3


def mmd2_unbiased_brute_force(xs, ys):
    """Gretton et al.'s unbiased MMD², written out pair by pair (float64 Python loops)."""
    m, n = len(xs), len(ys)
    xx = sum(kernel(xs[i], xs[j]) for i in range(m) for j in range(m) if i != j)
    yy = sum(kernel(ys[i], ys[j]) for i in range(n) for j in range(n) if i != j)
    xy = sum(kernel(xs[i], ys[j]) for i in range(m) for j in range(n))
    return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)


def test_kid_single_subset_matches_brute_force_formula():
    # subset_size = N: the one subset is the whole set (in some order; MMD² ignores order).
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(20, 5)), rng.normal(size=(20, 5)) * 1.5 + 0.3
    mean, se = evaluation.kid(x, y, num_subsets=1, subset_size=20)
    np.testing.assert_allclose(mean, mmd2_unbiased_brute_force(x, y), rtol=1e-12)
    assert math.isnan(se)


def test_kid_is_unbiased_for_two_samples_of_one_distribution():
    # 400 independent pairs of samples (m = 50, D = 8) from N(0, I): the mean of the estimates
    # must be within 4 standard errors of 0. The biased V-statistic (i = j terms kept) on the
    # same draws is far from 0, so this check can tell the two estimators apart.
    rng = np.random.default_rng(8)
    unbiased, biased = [], []
    for _ in range(400):
        x, y = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
        unbiased.append(evaluation.kid(x, y, num_subsets=1, subset_size=50)[0])
        kxx, kyy = (x @ x.T / 8 + 1) ** 3, (y @ y.T / 8 + 1) ** 3
        kxy = (x @ y.T / 8 + 1) ** 3
        biased.append(kxx.mean() + kyy.mean() - 2 * kxy.mean())
    unbiased, biased = np.array(unbiased), np.array(biased)
    se = unbiased.std(ddof=1) / math.sqrt(len(unbiased))
    assert abs(unbiased.mean()) < 4 * se
    assert biased.mean() > 20 * se


def test_kid_is_clearly_positive_for_shifted_distributions():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(600, 16))
    same = rng.normal(size=(600, 16))
    shifted = rng.normal(size=(600, 16)) + 0.5
    m_same, se_same = evaluation.kid(x, same, num_subsets=20, subset_size=300)
    m_shift, se_shift = evaluation.kid(x, shifted, num_subsets=20, subset_size=300)
    assert se_same > 0 and se_shift > 0
    # The subset s.e. ignores the noise of the 600 samples themselves: over 30 seeds m_same
    # had s.d. 0.0042, so 0.021 is 5 s.d.; the shift gives MMD² ≈ 1.07.
    assert abs(m_same) < 0.021
    assert m_shift > 0.5 and m_shift > 20 * se_shift


def test_kid_caps_subset_size_and_is_deterministic_given_seed():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(45, 4)) + 0.2
    a = evaluation.kid(x, y, num_subsets=5, subset_size=1000, seed=3)
    assert a == evaluation.kid(x, y, num_subsets=5, subset_size=1000, seed=3)
    assert a != evaluation.kid(x, y, num_subsets=5, subset_size=1000, seed=4)
    # Capped at min(N1, N2) = 30: the x subset is all of x, and with N2 = 30 as well the
    # estimate is the exact full-set value whatever the subsets' order.
    full = evaluation.kid(x, y[:30], num_subsets=3, subset_size=1000)
    np.testing.assert_allclose(full[0], mmd2_unbiased_brute_force(x, y[:30]), rtol=1e-12)
    assert full[1] < 1e-12
    with pytest.raises(ValueError, match="subset_size"):
        evaluation.kid(x, y, subset_size=1)
    with pytest.raises(ValueError, match="num_subsets"):
        evaluation.kid(x, y, num_subsets=0)


# ------------------------------------------------------------------------- precision / recall


def precision_recall_brute_force(real, fake, k):
    """Direct transcription of Kynkäänniemi et al.'s definition with full distance matrices."""
    def radii(s):
        d = np.linalg.norm(s[:, None] - s[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def inside(queries, s):
        d = np.linalg.norm(queries[:, None] - s[None], axis=-1)
        return (d <= radii(s)[None]).any(axis=1)

    return inside(fake, real).mean(), inside(real, fake).mean()


def test_precision_recall_hand_checked_example():
    # 1-D points, k = 1. Real radii (nearest other real point): 0→2, 2→2, 4→2, 20→16.
    # Fake radii: 1→2, 3→2, 36→1, 37→1, 38→1.
    # Precision: 1, 3 (within 1 of a real point), 36 (exactly 16 from 20, on the boundary:
    # inside) are in; 37, 38 are not → 3/5. Recall: 0, 2, 4 lie within 1 of a fake ball of
    # radius 2; 20 is 16 from 36 whose radius is 1 → 3/4.
    real = np.array([[0.0], [2.0], [4.0], [20.0]])
    fake = np.array([[1.0], [3.0], [36.0], [37.0], [38.0]])
    precision, recall = evaluation.precision_recall(real, fake, k=1)
    assert (precision, recall) == (0.6, 0.75)
    assert precision_recall_brute_force(real, fake, 1) == (0.6, 0.75)


def test_precision_recall_identical_sets_are_one_and_far_apart_sets_are_zero():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(200, 8))
    assert evaluation.precision_recall(x, x.copy(), k=3) == (1.0, 1.0)
    assert evaluation.precision_recall(x, rng.normal(size=(150, 8)) + 100.0, k=3) == (0.0, 0.0)


def test_precision_recall_matches_brute_force_for_every_batch_size():
    rng = np.random.default_rng(12)
    real = rng.normal(size=(60, 5))
    fake = rng.normal(size=(50, 5)) * 0.7 + 0.4
    want = precision_recall_brute_force(real, fake, 3)
    assert 0 < want[0] < 1 and 0 < want[1] < 1  # a case with both kinds of points
    for batch_size in (1, 7, 64, 1024):
        got = evaluation.precision_recall(real, fake, k=3, batch_size=batch_size)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_precision_recall_input_errors():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="at least 4 samples"):
        evaluation.precision_recall(x, np.ones((10, 2)), k=3)
    with pytest.raises(ValueError, match="same feature dimension"):
        evaluation.precision_recall(np.ones((10, 2)), np.ones((10, 3)), k=3)
    with pytest.raises(ValueError, match="k must be"):
        evaluation.precision_recall(np.ones((10, 2)), np.ones((10, 2)), k=0)


# ----------------------------------------------------------------------- label entropy, PSNR


def test_label_entropy_of_one_class_is_zero_and_of_uniform_labels_is_log_c():
    assert evaluation.label_entropy(np.full(100, 3)) == 0.0
    labels = np.tile(np.arange(10), 7)
    np.testing.assert_allclose(evaluation.label_entropy(labels, num_classes=10), math.log(10),
                               rtol=1e-14)
    # Soft predictions: uniform rows and one-hot rows of the same uniform labels.
    np.testing.assert_allclose(evaluation.label_entropy(np.full((5, 10), 0.1, np.float32)),
                               math.log(10), rtol=1e-6)
    one_hot = np.eye(10)[labels]
    np.testing.assert_allclose(evaluation.label_entropy(one_hot), math.log(10), rtol=1e-14)
    assert evaluation.label_entropy(np.eye(4)[np.zeros(9, int)]) == 0.0


def test_label_entropy_hand_example_and_errors():
    # Marginal (½, ¼, ¼): H = ½ log 2 + 2 · ¼ log 4 = 1.5 log 2.
    np.testing.assert_allclose(evaluation.label_entropy(np.array([0, 0, 1, 2])),
                               1.5 * math.log(2), rtol=1e-14)
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    np.testing.assert_allclose(evaluation.label_entropy(probs), 1.5 * math.log(2), rtol=1e-14)
    with pytest.raises(ValueError, match=r"shape \[N, C\]"):
        evaluation.label_entropy(np.array([0.2, 0.8]))
    with pytest.raises(ValueError, match="sum to 1"):
        evaluation.label_entropy(np.array([[0.2, 0.2]]))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        evaluation.label_entropy(np.array([0, 10]), num_classes=10)


def test_psnr():
    assert evaluation.psnr(0.01, 1.0) == pytest.approx(20.0, abs=1e-12)
    np.testing.assert_allclose(evaluation.psnr(np.array([1.0, 4.0, 0.0]), 2.0),
                               [10 * math.log10(4.0), 0.0, np.inf], rtol=1e-14)
    assert evaluation.psnr(1.0, 255) == pytest.approx(20 * math.log10(255), abs=1e-12)
    with pytest.raises(ValueError, match="data_range"):
        evaluation.psnr(0.1, 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        evaluation.psnr(-0.1, 1.0)
