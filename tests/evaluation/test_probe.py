"""The linear probe against an independent float64 fit, and on data whose answer is known."""

import numpy as np
import pytest
import scipy.optimize
import scipy.special

from jaxgen.evaluation import probe as probe_lib


def _noisy_data(seed, n=400, d=5, c=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    w = rng.normal(size=(d, c))
    logits = (x - x.mean(0)) / x.std(0) @ w
    y = np.array([rng.choice(c, p=p) for p in scipy.special.softmax(logits, axis=1)])
    return x, y


def test_fit_matches_a_float64_scipy_fit_of_the_same_objective():
    x, y = _noisy_data(0)
    l2, (n, d), c = 1e-2, x.shape, 3
    probe = probe_lib.fit_linear_probe(x, y, l2=l2)
    z = (x - x.mean(0)) / x.std(0)

    def fun(theta):  # the same objective, written out in float64
        w, b = theta[:d * c].reshape(d, c), theta[d * c:]
        logits = z @ w + b
        logp = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
        p = np.exp(logp)
        onehot = np.eye(c)[y]
        value = -np.mean(logp[np.arange(n), y]) + 0.5 * l2 * np.sum(w ** 2)
        gw = z.T @ (p - onehot) / n + l2 * w
        gb = (p - onehot).mean(0)
        return value, np.concatenate([gw.ravel(), gb])

    ref = scipy.optimize.minimize(fun, np.zeros(d * c + c), jac=True, method="L-BFGS-B",
                                  options={"gtol": 1e-10, "ftol": 1e-14, "maxiter": 10000})
    assert ref.success
    np.testing.assert_allclose(probe.objective, ref.fun, rtol=1e-5)
    # The logits are identified only up to a constant per example across classes: compare
    # the fitted class probabilities.
    p_ref = scipy.special.softmax(z @ ref.x[:d * c].reshape(d, c) + ref.x[d * c:], axis=1)
    p_fit = scipy.special.softmax(probe.logits(x), axis=1)
    np.testing.assert_allclose(p_fit, p_ref, atol=2e-3)


def test_separable_classes_are_probed_perfectly_and_random_labels_at_chance():
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(4, 8)) * 10.0

    def clusters(n):
        y = rng.integers(0, 4, size=n)
        return centers[y] + rng.normal(size=(n, 8)), y

    out = probe_lib.linear_probe_accuracy(*clusters(400), *clusters(400))
    assert out["accuracy"] == 1.0 and out["train_accuracy"] == 1.0
    assert (out["num_train"], out["num_test"]) == (400, 400)

    # Labels independent of the features: accuracy is Binomial(n, 1/4) / n on the test set.
    n = 2000
    x_tr, x_te = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
    y_tr, y_te = rng.integers(0, 4, size=n), rng.integers(0, 4, size=n)
    acc = probe_lib.linear_probe_accuracy(x_tr, y_tr, x_te, y_te)["accuracy"]
    assert abs(acc - 0.25) < 4 * np.sqrt(0.25 * 0.75 / n)


def test_bad_inputs_say_what_is_wrong():
    x, y = _noisy_data(2, n=20)
    with pytest.raises(ValueError, match="labels must be integers"):
        probe_lib.fit_linear_probe(x, y.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        probe_lib.fit_linear_probe(x[:, 0], y)
    with pytest.raises(ValueError, match="finite"):
        probe_lib.fit_linear_probe(np.full_like(x, np.nan), y)
    with pytest.raises(ValueError, match="dimensions"):
        probe_lib.linear_probe_accuracy(x, y, x[:, :2], y)
