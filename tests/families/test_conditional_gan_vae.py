"""Class-conditional GAN and VAE (``model.class_conditional=True``) through the runner, on
the tiny configs' synthetic labelled data (10 classes): training, sampling with the labels
carried out, labels that change the samples, 1 and 4 devices alike, and the refusal of
unlabelled data."""

import chex
import jax
import numpy as np
import pytest

from experiments import runner, settings
from jaxgen.data import generate as data_generate
from jaxgen.training import DataParallel, with_step_key
from tests.experiments.helpers import load_config, run_main

NAMES = ("gan", "autoencoder")
CONDITIONAL = {"model.class_conditional": True}


def make_runner(name, workdir, devices=None, overrides=None):
    run_settings, family_config = settings.from_config_dict(
        load_config(f"tiny/{name}", {**CONDITIONAL, **(overrides or {})}))
    r = runner.Runner(run_settings, family_config, str(workdir))
    if devices is not None:
        r.parallel = DataParallel("shard_map", devices=devices)
    return r


class Trained(dict):
    """Each conditional family trained for its tiny budget (3 steps) when first asked for."""

    def __init__(self, tmp_path_factory):
        super().__init__()
        self.tmp_path_factory = tmp_path_factory

    def __missing__(self, name):
        workdir = self.tmp_path_factory.mktemp(f"cond_{name}")
        summary = runner.run(*settings.from_config_dict(load_config(f"tiny/{name}",
                                                                     CONDITIONAL)),
                             str(workdir))
        self[name] = (workdir, summary)
        return self[name]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return Trained(tmp_path_factory)


@pytest.mark.parametrize("name", NAMES)
def test_trains_evaluates_and_samples_with_the_labels_carried_out(name, trained):
    workdir, summary = trained[name]
    assert summary["step"] == 3
    evals = {k: v for k, v in summary.items() if k.startswith("eval/")}
    assert evals and all(np.isfinite(v) for v in evals.values())
    config = load_config(f"tiny/{name}", {**CONDITIONAL, "sampling.classes": ("3", "7")})
    out = runner.run(*settings.from_config_dict(config), str(workdir), "sample")
    saved = np.load(out["npz"])
    assert saved["images"].shape == (5, 16, 16, 1)
    np.testing.assert_array_equal(saved["labels"], [3, 7, 3, 7, 3])


@pytest.mark.parametrize("name", NAMES)
def test_the_label_changes_the_sample_of_the_same_noise(name, trained):
    workdir, _ = trained[name]
    r = make_runner(name, workdir)
    assert r.family.conditional and r.family.num_classes == 10
    state, _ = r.restore()
    key = jax.random.key(3)
    images = {}
    for y in (0, 1, 0):
        out, labels = r.generate(state, "prior", 4, key, labels=np.full(4, y))
        np.testing.assert_array_equal(labels, np.full(4, y))
        images.setdefault(y, []).append(out)
    r.close()
    np.testing.assert_array_equal(images[0][0], images[0][1])  # deterministic
    differs = np.abs(images[0][0] - images[1][0]).reshape(4, -1).max(axis=1)
    assert (differs > 1e-4).all(), differs


@pytest.mark.parametrize("name", NAMES)
def test_one_and_four_devices_train_and_sample_alike(name, tmp_path, trained, num_devices):
    workdir, _ = trained[name]
    labels = np.arange(8) % 10
    results = {}
    for n in (1, num_devices):
        r = make_runner(name, tmp_path / str(n), devices=jax.devices()[:n])
        loader = r.data.train_loader(8, r.parallel.num_local_devices)
        assert "label" in loader.batch(0)
        step = r.parallel.compile(with_step_key(r.family.train_body))
        state = r.parallel.replicate(r.initial_state(10))
        for i in range(2):
            state, metrics = step(state, r.parallel.shard_batch(loader.batch(i)),
                                  r.keys["train"])
        metrics = {k: v for k, v in r.parallel.fetch(metrics).items()
                   if not k.endswith("grad_norm")}
        evaluation = r.evaluate(state, 2)
        r.close()
        trained_runner = make_runner(name, workdir, devices=jax.devices()[:n])
        restored, _ = trained_runner.restore()
        samples, _ = trained_runner.generate(restored, "prior", 8, jax.random.key(5),
                                             labels=labels)
        trained_runner.close()
        results[n] = (metrics, evaluation, samples)
    (m1, e1, s1), (m4, e4, s4) = results[1], results[num_devices]
    chex.assert_trees_all_close(m1, m4, atol=1e-4, rtol=1e-3)
    chex.assert_trees_all_close(e1, e4, atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(s1, s4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_a_conditional_model_on_unlabelled_data_is_a_one_line_error(name, tmp_path):
    data_generate.write_image_folder(str(tmp_path / "flat"), num_images=12, size=16,
                                     channels=1, fmt="png")  # no class subfolders: no labels
    result = run_main(f"tiny/{name}", str(tmp_path / "run"),
                      {**CONDITIONAL, "data.source": "folder",
                       "data.path": str(tmp_path / "flat")})
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "needs labelled data" in errors[0], result.stderr[-2000:]


@pytest.mark.parametrize("name, overrides", [
    ("gan", {}), ("autoencoder", {}), ("autoencoder", {"model.variational": False})])
def test_training_and_codes_read_the_labels(name, overrides, tmp_path):
    """One step from the same state on the same images: other labels, other losses (the
    fakes and D's scores, or the encoder and decoder, see them); and the codes too."""
    r = make_runner(name, tmp_path, overrides=overrides)
    batch = r.data.train_loader(8, r.parallel.num_local_devices).batch(0)
    step = r.parallel.compile(with_step_key(r.family.train_body), donate_state=False)
    state = r.parallel.replicate(r.initial_state(10))
    metrics = {}
    for shift in (0, 1):
        shifted = {**batch, "label": (batch["label"] + shift) % 10}
        _, m = step(state, r.parallel.shard_batch(shifted), r.keys["train"])
        metrics[shift] = r.parallel.fetch(m)
    loss = "d_loss" if name == "gan" else "loss"
    assert abs(float(metrics[0][loss]) - float(metrics[1][loss])) > 1e-6
    if r.family.encode_body is not None:
        codes = {shift: r.parallel.fetch_examples(
            r.compiled("encode", r.family.encode_body, per_example=True)(
                state, r.parallel.shard_batch({**batch, "label": (batch["label"] + shift) % 10}),
                r.keys["eval"])) for shift in (0, 1)}
        first = next(iter(codes[0]))
        assert not np.allclose(codes[0][first], codes[1][first])
    r.close()


def test_networks_built_for_different_classes_are_refused():
    from jaxgen.families.gan import make_dcgan_step
    from jaxgen.models.dcgan import Discriminator, Generator

    with pytest.raises(ValueError, match="num_classes"):
        make_dcgan_step(Generator(num_classes=10), Discriminator(num_classes=0))
