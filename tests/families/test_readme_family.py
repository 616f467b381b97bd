"""The "Adding a model family" example (docs/adding_a_family.md), run as written through the one
runner."""

import os
import re

import ml_collections

from experiments import runner, settings
from experiments.configs import base
from jaxgen import families

RECIPE = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "adding_a_family.md")


def readme_family():
    with open(RECIPE) as f:
        text = f.read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    exec(compile(code, "docs/adding_a_family.md", "exec"), namespace)  # noqa: S102
    return namespace["LinearAE"]


def test_readme_linear_autoencoder_trains_and_evaluates_through_the_runner(tmp_path, monkeypatch):
    linear_ae = readme_family()
    monkeypatch.setitem(families.REGISTRY, linear_ae.name, linear_ae)
    c = base.get_image_config()
    base.make_tiny(c)
    c.family = "linear_ae"
    c.latent_dim = 4
    c.train.num_steps = 40
    c.optimizer.learning_rate = 1e-2
    c.eval.num_images = 0
    run_settings, family_config = settings.from_config_dict(ml_collections.ConfigDict(c))
    assert family_config == linear_ae.Config(latent_dim=4)

    summary = runner.run(run_settings, family_config, str(tmp_path))
    assert summary["eval/test_num_examples"] == 16

    # Training lowered the test error below the untrained model's (the runner's same eval pass
    # on the same test examples).
    r = runner.Runner(run_settings, family_config, str(tmp_path / "untrained"))
    initial = r.evaluate(r.parallel.replicate(r.initial_state(1)), 0)["eval/squared_error"]
    r.close()
    assert summary["eval/squared_error"] < 0.8 * initial, (summary, initial)
    assert runner.supported_modes(r.family) == ["train", "evaluate"]
