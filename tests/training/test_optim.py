"""The learning-rate schedules and the optimizer built from the step count."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen.training import TrainState, gradient_update
from jaxgen.training.optim import (
    OptimizerConfig,
    OptimizerOverrides,
    learning_rate_schedule,
    make_optimizer,
)
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


@pytest.mark.parametrize("k", [1, 2, 3])
def test_schedule_counts_steps_for_a_player_updated_k_times_a_step(k):
    """Every one of the k updates of step s applies schedule(s), the run's step."""
    cfg = OptimizerConfig(learning_rate=1.0, warmup_steps=2, schedule="linear_decay",
                          decay_fraction=0.5)
    tx = make_optimizer(cfg, num_steps=6, updates_per_step=k)
    params = {"w": jnp.ones(3)}
    opt_state, applied = tx.init(params), []
    for _ in range(6 * k):
        _, opt_state = tx.update({"w": jnp.ones(3)}, opt_state, params)
        applied.append(float(opt_state.hyperparams["learning_rate"]))
    per_step = [0.0, 0.5, 1.0, 1.0, 2 / 3, 1 / 3]  # warmup 2, decay over the last 3 of 6
    np.testing.assert_allclose(applied, np.repeat(per_step, k), rtol=1e-6, atol=1e-12)
    with pytest.raises(ConfigError, match="updates_per_step=0"):
        make_optimizer(cfg, num_steps=6, updates_per_step=0)


def test_overrides_replace_only_the_values_they_set():
    run = OptimizerConfig(learning_rate=1e-4, b1=0.5, schedule="linear_decay", ema_decay=0.9)
    mine = OptimizerOverrides(learning_rate=4e-4, b2=0.9).apply(run)
    assert mine == OptimizerConfig(learning_rate=4e-4, b1=0.5, b2=0.9, schedule="linear_decay",
                                   ema_decay=0.9)
    assert OptimizerOverrides().apply(run) == run
    assert not hasattr(OptimizerOverrides(), "ema_decay")  # only the run's player keeps an EMA


def test_overrides_are_validated_under_their_section_name():
    OptimizerOverrides(b1=0.0, warmup_steps=3, schedule="constant").check("d_optimizer")
    for bad, message in ((dict(learning_rate=0.0), "d_optimizer.learning_rate=0.0"),
                         (dict(b1=1.0), "d_optimizer.b1=1.0"),
                         (dict(warmup_steps=1.5), "d_optimizer.warmup_steps=1.5"),
                         (dict(schedule="cos"), "d_optimizer.schedule='cos'")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            OptimizerOverrides(**bad).check("d_optimizer")
    overlapping = OptimizerOverrides(warmup_steps=150).apply(
        OptimizerConfig(schedule="linear_decay"))
    with pytest.raises(ConfigError, match="d_optimizer.warmup_steps=150 overlaps"):
        make_optimizer(overlapping, num_steps=200, section="d_optimizer")
