"""The learning-rate schedules and the optimizer built from the step count."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen.training import TrainState, gradient_update
from jaxgen.training.optim import OptimizerConfig, learning_rate_schedule, make_optimizer
from jaxgen.validation import ConfigError


def test_linear_decay_schedule_values():
    cfg = OptimizerConfig(learning_rate=2e-4, schedule="linear_decay", decay_fraction=0.5)
    lr = learning_rate_schedule(cfg, 200)
    assert float(lr(0)) == pytest.approx(2e-4) and float(lr(99)) == pytest.approx(2e-4)
    assert float(lr(150)) == pytest.approx(1e-4) and float(lr(200)) == pytest.approx(0.0)
    lr = learning_rate_schedule(OptimizerConfig(learning_rate=2e-4, warmup_steps=10), 200)
    assert float(lr(5)) == pytest.approx(1e-4) and float(lr(50)) == pytest.approx(2e-4)
    with pytest.raises(ConfigError, match="optimizer.schedule='cos' is not allowed"):
        OptimizerConfig(schedule="cos")
    with pytest.raises(ConfigError, match="overlaps the decay phase"):
        learning_rate_schedule(OptimizerConfig(warmup_steps=150, schedule="linear_decay"), 200)


def test_applied_learning_rate_is_logged_and_follows_the_schedule():
    """gradient_update reports the rate of each update: the schedule at the update count
    (the bug this guards against: a decay schedule silently replaced by a constant)."""
    cfg = OptimizerConfig(learning_rate=1.0, schedule="linear_decay", decay_fraction=1.0)
    state = TrainState.create(apply_fn=None, params={"w": jnp.ones(3)},
                              tx=make_optimizer(cfg, num_steps=4))

    def step(state):
        return gradient_update(state, lambda p: _loss(p))[:2]

    rates, norms = [], []
    for _ in range(4):
        state, metrics = jax.vmap(step, axis_name="data")(
            jax.tree.map(lambda x: jnp.asarray(x)[None], state))
        state = jax.tree.map(lambda x: x[0], state)
        rates.append(float(metrics["learning_rate"][0]))
        norms.append(float(metrics["grad_norm"][0]))
    np.testing.assert_allclose(rates, [1.0, 0.75, 0.5, 0.25], rtol=1e-6)
    np.testing.assert_allclose(norms[0], 2 * np.sqrt(3), rtol=1e-6)  # ∇‖w‖² = 2w, w = 1


def _loss(p):
    from jaxgen.training import LossOutput

    loss = jnp.sum(p["w"] ** 2)
    return LossOutput(loss=loss, metrics={"loss": loss})


def test_ema_follows_its_formula():
    params = {"w": jnp.zeros(2)}
    state = TrainState.create(apply_fn=None, params=params, tx=optax.sgd(1.0), ema_decay=0.9)
    ema = np.zeros(2)
    for g in (1.0, 2.0, -1.0):
        state = state.apply_gradients(grads={"w": jnp.full(2, g)})
        ema = 0.9 * ema + 0.1 * np.asarray(state.params["w"])
        np.testing.assert_allclose(state.ema_params["w"], ema, rtol=1e-6)
    assert state.eval_params is state.ema_params
