"""The results command on a class-conditional DDPM (issue 25): conditional rows, guidance and
steps sweeps, their plots and tables, training curves; on an 8×8 folder of three classes with
a feature classifier trained for 2 steps."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from experiments import figures, plots, results, sweeps
from experiments import runner as runner_lib
from jaxgen.data import generate
from tests.experiments.helpers import load_config, run_config

CLASSES = ("ant", "bee", "cat")
# A class-conditional DDPM small enough to compile fast (one resolution, no attention).
DIFFUSION = {
    "data.source": "folder", "data.image_size": 8, "data.channels": 1,
    "train.num_steps": 2, "train.batch_size": 8, "train.log_every": 1,
    "train.checkpoint_every": 2, "train.progress": False, "optimizer.warmup_steps": 1,
    "eval.num_images": 0, "eval.batch_size": 8, "eval.bpd_max_examples": 8,
    "eval.bpd_timesteps": 2, "model.ch": 8, "model.ch_mult": (1,),
    "model.attn_resolutions": (), "model.num_groups": 4, "diffusion.num_timesteps": 10,
    "sampling.ddim.steps": 3, "sampling.batch_size": 4, "sampling.num_samples": 5,
    "sampling.grid_samplers": ("ddim",), "model.class_conditional": True,
}
CLASSIFIER = {
    "data.source": "folder", "data.image_size": 8, "data.channels": 1,
    "train.num_steps": 2, "train.batch_size": 8, "train.log_every": 1,
    "train.checkpoint_every": 2, "train.progress": False, "optimizer.warmup_steps": 0,
    "eval.batch_size": 8, "eval.max_examples": 16, "model.widths": (4, 8),
    "model.feature_dim": 8,
}
NUM_SAMPLES, SWEEP_SAMPLES = 13, 7  # rounded down to 12 and 6: equal numbers per class


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cond_results")
    data = str(root / "toys")
    generate.write_image_folder(data, num_images=150, size=8, channels=1, classes=list(CLASSES),
                                fmt="png")
    classifier = root / "classifier"
    run_config(load_config("classifier_fmnist", {**CLASSIFIER, "data.path": data}), classifier)
    ddpm = root / "ddpm_cond"
    run_config(load_config("ddpm_fmnist", {**DIFFUSION, "data.path": data}), ddpm)
    return str(classifier), str(ddpm)


def test_conditional_row_guidance_and_steps_sweeps_and_plots(runs, tmp_path, capsys):
    classifier, ddpm = runs
    out, figures = tmp_path / "out", tmp_path / "figures"
    doc = tmp_path / "docs" / "evaluation.md"
    doc.parent.mkdir()
    doc.write_text(f"intro\n{sweeps.DOC_START}\nold\n{sweeps.DOC_END}\noutro\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"{results.README_START}\n{results.README_END}\n")
    code = results.main([
        "--workdirs", ddpm, "--classifier_workdir", classifier,
        "--num_samples", str(NUM_SAMPLES), "--eval_examples", "8", "--output_dir", str(out),
        "--sweep", "guidance=0,2", "--sweep", "steps=ddim:2,3;dpm_solver:2",
        "--sweep_samples", str(SWEEP_SAMPLES), "--figures_dir", str(figures),
        "--readme", str(readme), "--sweeps_doc", str(doc)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "results.json").read_text())
    _, row = report["rows"]
    m = row["metrics"]
    # The conditional row: 4 samples of each of the 3 classes, labels carried out.
    assert row["samples_per_class"] == 4 and row["guidance"] == 0.0
    assert row["name"].endswith("(w=0)")
    assert 0.0 <= m["class_accuracy"]["value"] <= 1.0
    assert m["class_accuracy"]["samples_per_class"] == {"0": 4, "1": 4, "2": 4}
    intra = m["intra_fd_toys"]
    assert np.isfinite(intra["value"]) and intra["value"] >= 0 and intra["num_samples"] == 12
    assert intra["value"] == pytest.approx(np.mean([intra["per_class"][c] for c in
                                                    intra["per_class"]]))
    for name in ("fd_toys", "kid_toys", "precision", "recall", "label_entropy_nats"):
        assert m[name]["num_samples"] == 12  # over all classes
    table = (out / "results.md").read_text()
    assert "| intra_fd_toys |" in table and "| class_accuracy |" in table
    assert "12 (4 per class)" in table and "## Sweeps" in table
    # Sweeps: every point the same sample count (6 = 2 per class) and its settings.
    guidance, steps = report["sweeps"]
    assert (guidance["kind"], steps["kind"]) == ("guidance", "steps")
    assert [p["guidance"] for p in guidance["points"]] == [0.0, 2.0]
    assert {p["sampler"] for p in guidance["points"]} == {"ddim"}
    assert [p["steps"] for p in guidance["points"]] == [3, 3]  # the run's own ddim.steps
    assert [(p["sampler"], p["steps"], p["nfe"]) for p in steps["points"]] == [
        ("ddim", 2, 2), ("ddim", 3, 3), ("dpm_solver", 2, 2)]
    for s in (guidance, steps):
        assert s["num_samples"] == 6 and s["samples_per_class"] == 2
        for p in s["points"]:
            assert p["num_samples"] == 6
            assert {k: v["num_samples"] for k, v in p["metrics"].items()} == {
                "fd_toys": 6, "class_accuracy": 6, "intra_fd_toys": 6}
            assert 0.0 <= p["metrics"]["class_accuracy"]["value"] <= 1.0
            assert np.isfinite(p["metrics"]["fd_toys"]["value"])
    # The same noise and labels in every point: w = 0 at 3 DDIM steps samples what the steps
    # sweep's ddim:3 point samples (the run's own w is 0), so every metric is equal.
    g0 = guidance["points"][0]["metrics"]
    assert g0 == steps["points"][1]["metrics"]
    # Plots: the sweeps and the training curves, all PNG files Pillow opens.
    names = sorted(p.name for p in figures.iterdir())
    assert names == ["curves_ddpm_cond.png", "sweep_guidance_ddpm_cond_ddim-3.png",
                     "sweep_steps_ddpm_cond_w0.png"]
    for name in names:
        with Image.open(figures / name) as image:
            assert image.format == "PNG" and image.size[0] > 100
    assert guidance["figure"] == str(figures / "sweep_guidance_ddpm_cond_ddim-3.png")
    # --readme: the table in the README, the sweep table between the docs page's markers.
    assert "intra_fd_toys" in readme.read_text()
    text = doc.read_text()
    assert "old" not in text and text.startswith("intro\n") and text.endswith("outro\n")
    assert "| ddpm_cond | guidance | ddim | 3 | 3 | 2 | 6 |" in text
    assert "ddpm_cond guidance (ddim-3): 6 (2 per class)" in text
    assert "ddpm_cond steps (w0): 6 (2 per class)" in text
    assert "sweep_guidance" not in text  # figures outside docs/: not linked


def test_sweeps_only_keeps_the_table_and_links_figures_under_the_doc(runs, tmp_path, capsys):
    classifier, ddpm = runs
    out = tmp_path / "out"
    common = ["--workdirs", ddpm, "--classifier_workdir", classifier, "--output_dir", str(out)]
    assert results.main([*common, "--num_samples", "6", "--eval_examples", "8"]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    doc = tmp_path / "docs" / "evaluation.md"
    missing = results.main([*common, "--sweeps_only", "--sweep", "guidance=2",
                            "--sweep_samples", "6", "--readme", str(tmp_path / "R.md"),
                            "--sweeps_doc", str(doc), "--figures_dir", str(tmp_path / "figs")])
    assert missing == 0
    assert "does not exist or has no <!-- sweeps:start -->" in capsys.readouterr().out
    assert not doc.exists() and not (tmp_path / "R.md").exists()  # nothing created
    report = json.loads((out / "results.json").read_text())
    assert report["rows"] == rows and len(report["sweeps"]) == 1
    doc.parent.mkdir()
    doc.write_text(f"{sweeps.DOC_START}\n{sweeps.DOC_END}\n")
    assert results.main([*common, "--sweeps_only", "--sweep", "steps=ddim:2",
                         "--sweep_guidance", "2", "--sweep_samples", "6", "--readme",
                         "--sweeps_doc", str(doc),
                         "--figures_dir", str(doc.parent / "images")]) == 0
    report = json.loads((out / "results.json").read_text())
    assert report["rows"] == rows
    assert [s["kind"] for s in report["sweeps"]] == ["guidance", "steps"]  # both kept
    assert report["sweeps"][1]["points"][0]["guidance"] == 2.0
    text = doc.read_text()
    assert "](images/sweep_steps_ddpm_cond_w2.png)" in text
    assert "](images/curves_ddpm_cond.png)" in text
    # A steps sweep at another w is kept beside the first, and so is its plot; the same
    # sweep again replaces its own record.
    for _ in range(2):
        assert results.main([*common, "--sweeps_only", "--sweep", "steps=ddim:2",
                             "--sweep_guidance", "1", "--sweep_samples", "6", "--readme",
                             "--sweeps_doc", str(doc),
                             "--figures_dir", str(doc.parent / "images")]) == 0
    report = json.loads((out / "results.json").read_text())
    assert [(s["kind"], s["points"][0]["guidance"]) for s in report["sweeps"]] == [
        ("guidance", 2.0), ("steps", 2.0), ("steps", 1.0)]
    text = doc.read_text()
    assert "](images/sweep_steps_ddpm_cond_w2.png)" in text
    assert "](images/sweep_steps_ddpm_cond_w1.png)" in text
    assert "| ddpm_cond | steps | ddim | 2 | 2 | 1 | 6 |" in text
    assert "| ddpm_cond | steps | ddim | 2 | 2 | 2 | 6 |" in text


@pytest.mark.parametrize("flags, message", [
    (["--sweep", "guidance=0,-1"], "must be a finite number ≥ 0"),
    (["--sweep", "guidance=nan"], "must be a finite number ≥ 0"),
    (["--sweep", "steps=ddim:0"], "must be a positive integer"),
    (["--sweep", "speed=1"], "write KIND=VALUES"),
    (["--sweep", "steps=ddim:50"], "sampling.ddim.steps=50 is out of range"),
    (["--sweep", "steps=euler:5"], "'euler' is not a sampler"),
    (["--sweep", "steps=ddpm:5"], "ddpm has no steps setting"),
    (["--sweeps_only"], "--sweeps_only needs at least one --sweep"),
])
def test_bad_sweeps_are_one_line_errors_before_anything_runs(runs, tmp_path, capsys, flags,
                                                             message):
    classifier, ddpm = runs
    code = results.main(["--workdirs", ddpm, "--classifier_workdir", classifier,
                         "--output_dir", str(tmp_path / "out"), *flags])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_guidance_sweep_of_an_unconditional_run_is_refused(runs, tmp_path):
    classifier, ddpm = runs
    with open(f"{ddpm}/config.json") as f:
        record = json.load(f)
    record["model"]["class_conditional"] = False
    fake = tmp_path / "uncond"
    fake.mkdir()
    (fake / "config.json").write_text(json.dumps(record))
    with pytest.raises(sweeps.SweepError, match="is unconditional, and guidance needs"):
        sweeps.check(str(fake), [sweeps.parse("guidance=0,1")])
    sweeps.check(str(fake), [sweeps.parse("steps=ddim:2;ddpm")])  # no error


def test_parse_and_network_evaluations():
    s = sweeps.parse("steps=ddim:10,20;dpm_solver:10 ; heun:3;ddpm")
    assert s.values == (("ddim", 10), ("ddim", 20), ("dpm_solver", 10), ("heun", 3),
                        ("ddpm", None))
    assert sweeps.parse("guidance=0, 0.5,1,1").values == (0.0, 0.5, 1.0)
    assert sweeps.parse_sampler("dpm_solver:20") == ("dpm_solver", 20)
    assert sweeps.parse_sampler("ddim") == ("ddim", None)

    class Steps:
        steps = 7

    assert sweeps.network_evaluations("heun", Steps, 1000) == 13
    assert sweeps.network_evaluations("ddim", Steps, 1000) == 7
    assert sweeps.network_evaluations("ddpm", object(), 1000) == 1000


def test_training_curves_read_the_runs_event_files(runs, tmp_path):
    _, ddpm = runs
    scalars = plots.read_scalars(ddpm)
    assert [s for s, _ in scalars["train/loss"]] == [1, 2]
    assert "eval/bpd" in scalars and "eval/bpd_se" in scalars
    panels = plots.curve_panels(scalars)
    assert panels[0] != "steps_per_s" and "loss" in panels and "bpd" in panels
    assert "bpd_se" not in panels and "learning_rate" not in panels
    gan = plots.curve_panels({f"train/{k}": [(1, 1.0)] for k in (
        "d_loss", "g_loss", "d_learning_rate", "g_learning_rate", "steps_per_s")})
    assert gan == ["d_loss", "g_loss"]  # per-player learning rates are settings, not curves
    path = plots.curves_plot(ddpm, str(tmp_path / "c.png"))
    with Image.open(path) as image:
        assert image.format == "PNG"
    assert plots.curves_plot(str(tmp_path), str(tmp_path / "none.png")) is None


def test_training_time_sums_the_logged_windows_across_resumes(runs):
    # Windows of 50, 50 and 100 steps at 2, 5 and 4 steps/s: 25 + 10 + 25 s. A window
    # replayed after a resume (step 100 logged again) holds one value per step.
    scalars = {"train/steps_per_s": [(50, 2.0), (100, 5.0), (200, 4.0)]}
    assert plots.training_seconds(scalars) == pytest.approx(60.0)
    assert plots.training_seconds(scalars, up_to_step=100) == pytest.approx(35.0)
    assert plots.training_seconds({"train/loss": [(1, 0.5)]}) is None
    _, ddpm = runs  # a real run's log: two one-step windows
    rates = dict(plots.read_scalars(ddpm)["train/steps_per_s"])
    assert plots.training_seconds(plots.read_scalars(ddpm)) == pytest.approx(
        1 / rates[1] + 1 / rates[2])


def test_figures_of_a_conditional_ddpm_with_guidance(runs, tmp_path, monkeypatch):
    _, ddpm = runs
    name = os.path.basename(ddpm)
    out = tmp_path / "images"
    seen = []  # the guidance weight each picture was sampled with
    generate = runner_lib.Runner.generate

    def spy(self, *args, **kwargs):
        seen.append(self.family.sampling_config.guidance)
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(runner_lib.Runner, "generate", spy)
    for extra in ([], ["--guidance", "2"]):
        assert figures.main(["--workdirs", ddpm, "--out", str(out), "--num_images", "6",
                             *extra]) == 0
    assert seen == [0.0, 2.0]
    plain, guided = (np.asarray(Image.open(out / f"{name}_{suffix}.png"))
                     for suffix in ("samples", "samples_w2"))
    assert plain.shape == guided.shape == (3 * 9 + 1, 2 * 9 + 1)  # a row per class, 8×8


def test_sampler_error_compares_samplers_from_one_x_t(runs, tmp_path):
    from benchmarks import sampler_error
    _, ddpm = runs
    out = tmp_path / "error.json"
    assert sampler_error.main(["--workdir", ddpm, "--samplers", "ddim:2,10;dpm_solver:2",
                               "--reference", "ddim:10", "--num_samples", "7",
                               "--guidance", "1", "--no_clip_x0", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["num_samples"] == 6  # rounded down to equal numbers per class
    rows = {(r["sampler"], r["steps"]): r for r in report["rows"]}
    assert set(rows) == {("ddim", 2), ("ddim", 10), ("dpm_solver", 2)}
    assert rows["ddim", 10]["rms_to_reference"] == 0.0  # the reference itself: the same x_T
    assert rows["ddim", 2]["rms_to_reference"] > 0.0
    assert rows["dpm_solver", 2]["rms_to_reference"] > 0.0
    assert all(r["guidance"] == 1.0 for r in report["rows"]) and report["clip_x0"] is False


def test_sweep_plots_of_an_unconditional_run_draw_fd_only(tmp_path):
    def point(sampler, nfe, fd):
        return {"sampler": sampler, "nfe": nfe, "guidance": 0.0, "steps": nfe, "num_samples": 6,
                "metrics": {"fd_toys": {"value": fd, "num_samples": 6}}}

    points = [point("ddim", 10, 3.0), point("ddim", 20, 2.0), point("heun", 19, 1.5)]
    path = plots.steps_plot(points, str(tmp_path / "s.png"), fd="fd_toys", title="t")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] < 700  # one panel: no class accuracy
    table = sweeps.to_markdown([{"name": "ddpm", "kind": "steps", "num_samples": 6,
                                 "samples_per_class": None, "points": points}], "toys")
    assert "| ddpm | steps | heun | 19 | 19 | 0 | 6 | 1.5 | — | — |" in table
