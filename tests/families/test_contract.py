"""The family contract, checked the same way for every registered family.

Each family runs its tiny config (``experiments/configs/tiny/<family>.py``: a few steps on
synthetic data) through the one runner. A new family gets these tests by adding its tiny config.
"""

import os

import chex
import jax
import numpy as np
import pytest

from experiments import runner, settings
from jaxgen import families
from jaxgen.training import (
    Checkpointer,
    DataParallel,
    NonFiniteLossError,
    batches_of,
    fit,
    with_step_key,
)
from jaxgen.validation import ConfigError
from tests.experiments.helpers import load_config
from tests.jaxprs import matmul_input_dtypes

NAMES = families.names()


def make_runner(name, workdir, overrides=None, devices=None):
    run_settings, family_config = settings.from_config_dict(
        load_config(f"tiny/{name}", overrides or {}))
    r = runner.Runner(run_settings, family_config, str(workdir))
    if devices is not None:
        r.parallel = DataParallel("shard_map", devices=devices)
    return r


class Trained(dict):
    """``trained[name]``: ``(workdir, summary)`` of family `name` trained for its tiny budget
    (3 steps), trained when a test first asks for it, so that a run of one family's tests
    (``-k gan``) trains only that family."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, name):
        workdir = self.tmp_path_factory.mktemp(name)
        summary = runner.run(*settings.from_config_dict(load_config(f"tiny/{name}", {})),
                             str(workdir))
        self[name] = (workdir, summary)
        return self[name]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The families trained once per module (and per test process), each when first used."""
    return Trained(tmp_path_factory)


@pytest.mark.parametrize("name", NAMES)
def test_init_is_finite_and_shaped_as_traced(name, tmp_path):
    r = make_runner(name, tmp_path)
    state = r.initial_state(10)
    abstract = jax.eval_shape(lambda: r.initial_state(10))
    assert [(np.shape(x), jax.numpy.asarray(x).dtype) for x in jax.tree.leaves(state)] == [
        (x.shape, x.dtype) for x in jax.tree.leaves(abstract)]
    chex.assert_tree_all_finite(state)
    assert sum(np.size(x) for x in jax.tree.leaves(state)) > 0
    r.close()


def split_params(state):
    """(parameter-like leaves, the rest): params, optimizer moments and EMAs are told apart
    by their path in the state."""
    params, rest = [], []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        names = {getattr(k, "name", getattr(k, "key", None)) for k in path}
        (params if names & {"params", "opt_state", "ema_params"} else rest).append(leaf)
    return params, rest


@pytest.mark.parametrize("name", NAMES)
def test_steps_on_one_and_four_devices_agree(name, tmp_path, num_devices):
    """Two steps on 1 and on 4 devices with the same global batches: the same metrics, the same
    non-parameter state (batch statistics, pools, counters), and networks that compute the same
    evaluation metrics. (Parameters are compared through what they compute: a parameter with a
    gradient that is 0 up to rounding, like a conv bias in front of an instance norm, is moved
    arbitrarily by Adam without changing any output.)"""
    results = {}
    for n in (1, num_devices):
        r = make_runner(name, tmp_path / str(n), devices=jax.devices()[:n])
        loader = r.data.train_loader(8, r.parallel.num_local_devices)
        step = r.parallel.compile(with_step_key(chex.assert_max_traces(r.family.train_body,
                                                                       n=1)))
        initial = r.initial_state(10)
        state = r.parallel.replicate(initial)
        for i in range(2):
            state, metrics = step(state, r.parallel.shard_batch(loader.batch(i)),
                                  r.keys["train"])
        results[n] = (r.parallel.fetch(state), r.parallel.fetch(metrics), r.evaluate(state, 2))
        chex.clear_trace_counter()
        r.close()
    (one, m1, e1), (many, m4, e4) = results[1], results[num_devices]
    moved = [np.abs(np.asarray(a, np.float64) - b).max()
             for a, b in zip(split_params(one)[0], split_params(initial)[0], strict=True)]
    assert max(moved) > 1e-6  # the steps did change the parameters
    # Tolerances: reductions run in another order on 4 devices, and Adam turns gradients that
    # differ in rounding into moves of up to the learning rate (2e-4 here); a wrong pool,
    # key or statistic would differ by O(1).
    chex.assert_trees_all_close(split_params(one)[1], split_params(many)[1], atol=1e-3,
                                rtol=1e-3)
    norms = {k for k in m1 if k.endswith("grad_norm")}
    chex.assert_trees_all_close({k: v for k, v in m1.items() if k not in norms},
                                {k: v for k, v in m4.items() if k not in norms},
                                atol=1e-4, rtol=1e-3)
    # A gradient norm of the second step sums every squared gradient at parameters that the
    # first step's Adam update already moved apart by up to 2 × the learning rate where a
    # gradient was 0 up to rounding (CycleGAN's: 1.1e-3 apart after two steps, 7e-8 when both
    # step from the same state): a looser tolerance, still far below an O(1) error.
    chex.assert_trees_all_close({k: m1[k] for k in norms}, {k: m4[k] for k in norms},
                                rtol=1e-2)
    chex.assert_trees_all_close(e1, e4, atol=1e-3, rtol=1e-3)
    assert any(k.endswith("grad_norm") for k in m1)
    assert any(k.endswith("learning_rate") for k in m1)


@pytest.mark.parametrize("name", NAMES)
def test_resume_after_a_crash_is_exact(name, tmp_path, trained):
    straight_dir, summary = trained[name]
    assert summary["step"] == 3
    r = make_runner(name, tmp_path)
    loader = r.data.train_loader(8, r.parallel.num_local_devices)

    def crash_at_2(step):
        if step == 2:
            raise RuntimeError("simulated crash")
        return loader.batch(step)

    step = r.compiled("train", with_step_key(r.family.train_body), donate=True)
    common = dict(train_step=step, parallel=r.parallel, train_key=r.keys["train"], num_steps=3,
                  checkpointer=r.checkpointer, writer=r.writer, log_every=1, progress=False)
    initial = r.initial_state(3)  # one state: its optimizer is part of the step's signature
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(state=initial, batches=batches_of(crash_at_2), **common)
    assert r.checkpointer.latest_step() == 2
    resumed, _, _ = fit(state=initial, batches=batches_of(loader.batch), **common)
    r.close()
    ref = Checkpointer(os.path.join(straight_dir, "checkpoints"), every_steps=2, keep=3,
                       read_only=True)
    straight = ref.restore(initial)
    chex.assert_trees_all_close(jax.tree.leaves(resumed), jax.tree.leaves(straight), atol=1e-6,
                                rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_loss_stops_without_a_checkpoint(name, tmp_path):
    r = make_runner(name, tmp_path)
    loader = r.data.train_loader(8, r.parallel.num_local_devices)

    def poisoned(step):
        batch = loader.batch(step)
        if step < 1:
            return batch
        return {k: np.full_like(v, np.nan) if np.issubdtype(v.dtype, np.floating) else v
                for k, v in batch.items()}

    with pytest.raises(NonFiniteLossError, match="non-finite"):
        fit(state=r.initial_state(3),
            train_step=r.compiled("train", with_step_key(r.family.train_body), donate=True),
            batches=batches_of(poisoned), parallel=r.parallel, train_key=r.keys["train"],
            num_steps=3, checkpointer=r.checkpointer, writer=r.writer, log_every=1,
            progress=False)
    assert r.checkpointer.latest_step() is None  # step 2 would have been the first save
    r.close()


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_reports_the_documented_metrics(name, trained):
    workdir, summary = trained[name]
    metrics = runner.run(*settings.from_config_dict(load_config(f"tiny/{name}", {})),
                         str(workdir), "evaluate")
    r = make_runner(name, workdir)
    expected = {f"eval/{m}{se}" for p in r.family.eval_passes().values() for m in p.metrics
                for se in ("", "_se")}  # each mean with its standard error
    expected |= {f"eval/{p}_num_examples" for p in r.family.eval_passes()}
    r.close()
    assert set(metrics) - {"step"} == expected
    assert {k for k in summary if k.startswith("eval/")} == expected
    assert all(np.isfinite(metrics[k]) for k in expected)
    assert metrics["step"] == 3
    assert os.path.exists(os.path.join(workdir, "eval_summary.json"))
    if r.family.samplers or r.family.previews():  # the grids of what the family draws
        assert os.listdir(os.path.join(workdir, "images"))


@pytest.mark.parametrize("name", NAMES)
def test_generate_encode_translate_where_supported(name, trained):
    workdir, _ = trained[name]
    r = make_runner(name, workdir)
    modes = runner.supported_modes(r.family)
    shape = r.data.image_shape
    cfg = settings.from_config_dict(load_config(f"tiny/{name}", {}))
    r.close()
    if r.family.samplers:
        out = runner.run(*cfg, str(workdir), "sample")
        images = np.load(out["npz"])["images"]
        n = r.family.config.sampling.num_samples
        assert images.shape == (n, *shape) and images.dtype == np.uint8
        assert len(os.listdir(out["png_dir"])) == n
    if r.family.encode_body is not None:
        out = runner.run(*cfg, str(workdir), "encode")
        codes = np.load(out["codes"])
        assert all(len(v) == out["num_examples"] for v in codes.values())
        assert "label" in codes
    if r.family.directions:
        for direction in r.family.directions:
            cfg_d = settings.from_config_dict(load_config(
                f"tiny/{name}", {"translate.direction": direction}))
            out = runner.run(*cfg_d, str(workdir), "translate")
            assert len(os.listdir(out["output_dir"])) == out["num_images"] > 0
    unsupported = set(runner.MODES) - set(modes)
    for mode in unsupported:
        with pytest.raises(ValueError, match=f"--mode={mode} is not available"):
            runner.run(*cfg, str(workdir), mode)


@pytest.mark.parametrize("name", NAMES)
def test_model_dtype_is_checked_and_computes_in_it(name, tmp_path):
    """``model.dtype``: float32 by default; bfloat16 computes the networks' products in
    bfloat16 while the parameters, metrics and returned images stay float32 (traced, not
    run); anything else is a one-line error."""
    assert families.get(name).Config().model.dtype == "float32"
    with pytest.raises(ConfigError, match="model.dtype='float16' is not a compute dtype") as e:
        settings.from_config_dict(load_config(f"tiny/{name}", {"model.dtype": "float16"}))
    assert "\n" not in str(e.value)
    r = make_runner(name, tmp_path, {"model.dtype": "bfloat16"}, devices=jax.devices()[:1])
    state = r.abstract_state(10)
    assert "bfloat16" not in {str(x.dtype) for x in jax.tree.leaves(state)}
    batch = r.data.train_loader(8, 1).batch(0)
    key = r.keys["train"]
    train = jax.make_jaxpr(r.parallel.compile(with_step_key(r.family.train_body)))(
        state, batch, key)
    assert "bfloat16" in matmul_input_dtypes(train.jaxpr)
    _, metrics = jax.eval_shape(r.parallel.compile(with_step_key(r.family.train_body)),
                                state, batch, key)
    assert {m.dtype for m in metrics.values()} == {jax.numpy.dtype("float32")}
    image = batch if "image" in batch else {"image": batch["x"]}  # with labels, if any
    bodies = [(p.body, image) for p in r.family.eval_passes().values()]
    bodies += [(r.family.sample_body(s), r.family.sample_inputs(key, 4))
               for s in r.family.samplers]
    bodies += [(r.family.translate_body(d), image) for d in r.family.directions]
    for body, inputs in bodies:
        out = jax.eval_shape(r.parallel.compile(body, per_example=True), state, inputs, key)
        assert {x.dtype for x in jax.tree.leaves(out)} == {jax.numpy.dtype("float32")}, body
    r.close()
