"""Faults injected as a user would meet them, with real processes where it takes processes:
a second process on a workdir, a diverging run, a rerun of a finished run, changed settings,
bad settings, an existing output folder."""

import json
import os
import subprocess
import time

import pytest

from tests.experiments.helpers import REPO_ROOT, SMALL, clean_env, main_command, run_main


def checkpoint_steps(workdir):
    folder = os.path.join(workdir, "checkpoints")
    return sorted(int(d) for d in os.listdir(folder) if d.isdigit()) if os.path.isdir(
        folder) else []


def test_second_trainer_is_refused_and_readers_do_not_disturb_the_trainer(tmp_path):
    """A trainer saving every step and keeping one checkpoint deletes a step folder at every
    step: readers started back to back beside it (for a bounded time) must all succeed,
    whenever the clean-up hits their listing or restore."""
    workdir = str(tmp_path / "run")
    overrides = {**SMALL, "train.num_steps": 3000, "train.checkpoint_every": 1,
                 "train.keep_checkpoints": 1}
    trainer = subprocess.Popen(main_command("vae_mlp", workdir, overrides), cwd=REPO_ROOT,
                               env=clean_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not checkpoint_steps(workdir) and time.time() < deadline:
        time.sleep(0.2)
    assert checkpoint_steps(workdir), "the trainer wrote no checkpoint"
    second = run_main("vae_mlp", workdir, overrides)
    assert second.returncode == 2
    assert "in use by another training process (pid" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 2  # the error and the --debug hint
    readers, stop = 0, time.time() + 40
    while readers < 3 or time.time() < stop:  # at least 3 readers, then until 40 s passed
        reader = run_main("vae_mlp", workdir, overrides, "--mode=evaluate")
        assert reader.returncode == 0, reader.stderr[-2000:]
        readers += 1
        assert trainer.poll() is None, "the trainer stopped while the readers ran"
    trainer.kill()  # kill -9: the kernel releases the lock
    trainer.wait()
    resumed = run_main("vae_mlp", workdir, {**overrides, "train.num_steps":
                                            checkpoint_steps(workdir)[-1] + 20})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(checkpoint_steps(workdir)) <= 1
    assert not [d for d in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in d]


def test_divergence_never_leaves_a_poisoned_checkpoint(tmp_path):
    """A learning rate of 1e30 blows the parameters up in its first update; the loss of that
    update is still finite. No checkpoint may keep such a state, the error names what to
    resume from, and a rerun with a sane rate trains."""
    workdir = str(tmp_path / "run")
    good = {**SMALL, "train.num_steps": 4, "train.checkpoint_every": 2, "train.log_every": 1}
    assert run_main("vae_mlp", workdir, good).returncode == 0
    bad = {**good, "train.num_steps": 8, "optimizer.learning_rate": 1e30}
    result = run_main("vae_mlp", workdir, bad, "--allow_config_change")
    assert result.returncode == 2
    assert "non-finite" in result.stderr and "last good checkpoint (step 4)" in result.stderr
    assert checkpoint_steps(workdir) == [2, 4]
    sane = {**good, "train.num_steps": 8}
    resumed = run_main("vae_mlp", workdir, sane, "--allow_config_change")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from checkpoint step 4" in resumed.stdout + resumed.stderr
    assert checkpoint_steps(workdir)[-1] == 8


def test_a_one_step_divergent_run_fails_and_names_no_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "run")
    overrides = {**SMALL, "train.num_steps": 3, "train.checkpoint_every": 1,
                 "train.log_every": 1, "optimizer.learning_rate": 1e30}
    result = run_main("vae_mlp", workdir, overrides)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "no good checkpoint" in result.stderr or "last good checkpoint" in result.stderr
    for step in checkpoint_steps(workdir):  # what is left resumes to finite numbers
        assert step < 3


def test_rerunning_a_finished_run_keeps_its_training_record(tmp_path):
    workdir = str(tmp_path / "run")
    overrides = {**SMALL, "train.num_steps": 4, "train.checkpoint_every": 2,
                 "train.log_every": 2}
    assert run_main("vae_mlp", workdir, overrides).returncode == 0
    with open(os.path.join(workdir, "summary.json")) as f:
        first = json.load(f)
    again = run_main("vae_mlp", workdir, overrides)
    assert again.returncode == 0 and "has finished" in again.stdout
    with open(os.path.join(workdir, "summary.json")) as f:
        second = json.load(f)
    assert second["train/loss"] == first["train/loss"]
    assert second["wall_time_s"] == first["wall_time_s"]


def test_changed_settings_are_refused_on_resume(tmp_path):
    workdir = str(tmp_path / "run")
    overrides = {**SMALL, "train.num_steps": 2, "train.checkpoint_every": 2}
    assert run_main("vae_mlp", workdir, overrides).returncode == 0
    changed = {**overrides, "train.num_steps": 4, "seed": 1, "train.batch_size": 16}
    result = run_main("vae_mlp", workdir, changed)
    assert result.returncode == 2
    assert "seed: 0 → 1" in result.stderr and "train.batch_size: 8 → 16" in result.stderr
    longer = run_main("vae_mlp", workdir, {**overrides, "train.num_steps": 4})
    assert longer.returncode == 0, longer.stderr[-2000:]  # a longer budget is the same run
    forced = run_main("vae_mlp", workdir, {**changed, "train.num_steps": 6},
                      "--allow_config_change")
    assert forced.returncode == 0, forced.stderr[-2000:]


@pytest.mark.parametrize("key,value,message", [
    ("train.batch_size", 0, "train.batch_size=0 is out of range"),
    ("train.log_every", 0, "train.log_every=0 is out of range"),
    ("train.num_steps", -1, "train.num_steps=-1 is out of range"),
    ("loss.corruption_level", 1.5, "loss.corruption_level=1.5 is out of range"),
    ("eval.iwae_samples", -1, "eval.iwae_samples=-1 is out of range"),
    ("loss.reconstruction", "l2", "loss.reconstruction='l2' is not allowed"),
    ("optimizer.b1", 1.0, "optimizer.b1=1.0 is out of range"),
])
def test_bad_settings_are_named_before_anything_runs(key, value, message, tmp_path):
    result = run_main("vae_mlp", str(tmp_path / "run"), {**SMALL, key: value})
    assert result.returncode == 2
    assert message in result.stderr, result.stderr[-2000:]
    assert not checkpoint_steps(str(tmp_path / "run"))
