"""Bad sampling requests: each a one-line error before anything compiles (issue 25).

An unknown class id or name, a guidance weight that is negative or non-finite, a guided or
class request of an unconditional model, and a conditional model on unlabelled data. The runs
are in process on the tiny configs; "before anything compiles" is checked where it could
fail: the runner has compiled nothing, and a sample request is refused on a workdir with no
checkpoint (read later, so its absence would be the error otherwise).
"""

import os

import pytest

from experiments import runner, settings
from jaxgen.validation import ConfigError
from tests.experiments.helpers import load_config

CONDITIONAL = {"model.class_conditional": True}


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


def make_runner(name, workdir, overrides, **kwargs):
    return runner.Runner(*settings.from_config_dict(load_config(f"tiny/{name}", overrides)),
                         str(workdir), **kwargs)


@pytest.mark.parametrize("name, overrides, message", [
    ("gan", {**CONDITIONAL, "sampling.classes": ("3", "10")},
     "sampling.classes: '10' is not a class of this data (ids 0–9"),
    ("gan", {**CONDITIONAL, "sampling.classes": ("-1",)}, "'-1' is not a class of this data"),
    ("autoencoder", {**CONDITIONAL, "sampling.classes": ("dog",)},
     "'dog' is not a class of this data"),
    ("gan", {"sampling.classes": ("3",)},
     "sampling.classes=('3',) asks for samples of chosen classes, but this gan model is "
     "unconditional"),
    ("diffusion", {"sampling.classes": ("0", "1")}, "this diffusion model is unconditional"),
])
def test_bad_classes_are_refused_before_training_or_sampling_compiles(name, overrides,
                                                                       message, tmp_path):
    trainer = make_runner(name, tmp_path / "run", overrides)
    with pytest.raises(ConfigError) as error:
        trainer.train()
    assert message in one_line(error)
    assert trainer._compiled == {}  # noqa: SLF001  (nothing compiled)
    assert trainer.checkpointer.latest_step() is None
    trainer.close()
    assert not os.path.exists(tmp_path / "run" / "config.json")  # the run did not start
    for mode in ("sample", "evaluate"):  # a reader: refused before the checkpoint is read
        with pytest.raises(ConfigError) as error:
            runner.run(*settings.from_config_dict(load_config(f"tiny/{name}", overrides)),
                       str(tmp_path / "run"), mode)
        assert message in one_line(error)


@pytest.mark.parametrize("overrides, message", [
    ({**CONDITIONAL, "sampling.guidance": -0.5}, "sampling.guidance=-0.5 is out of range"),
    ({**CONDITIONAL, "sampling.guidance": float("inf")}, "sampling.guidance=inf is out of range"),
    ({**CONDITIONAL, "sampling.guidance": float("nan")}, "sampling.guidance=nan is out of range"),
    ({"sampling.guidance": 1.0}, "needs a class-conditional model"),
])
def test_bad_guidance_is_a_one_line_error_when_the_settings_are_read(overrides, message):
    with pytest.raises(ConfigError) as error:
        settings.from_config_dict(load_config("tiny/diffusion", overrides))
    assert message in one_line(error)


@pytest.mark.parametrize("name", ["diffusion", "gan", "autoencoder"])
def test_a_conditional_model_on_unlabelled_data_is_refused_when_the_runner_is_built(
        name, tmp_path, monkeypatch):
    """The data has no labels (as a folder without class subfolders): refused in building the
    family, before the workdir is created or anything compiles."""
    from jaxgen.data import datasets

    monkeypatch.setattr(datasets.ImageData, "num_classes", property(lambda self: 0))
    with pytest.raises(ConfigError) as error:
        make_runner(name, tmp_path / "run", CONDITIONAL)
    assert "needs labelled data" in one_line(error)
    assert not os.path.exists(tmp_path / "run")
