"""What a user gets wrong, typed as a user types it: each ends in one line and exit status 2
(Ctrl-C: 130), loses nothing and locks nobody out of their own run."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.experiments.helpers import (
    REPO_ROOT,
    SMALL,
    clean_env,
    main_command,
    run_main,
)

CONFIG = os.path.join(REPO_ROOT, "experiments", "configs", "vae_mlp.py")
SHORT = {**SMALL, "train.num_steps": 4, "train.checkpoint_every": 2, "train.log_every": 2}


def run_cli(*args, timeout=120):
    return subprocess.run(
        [os.sys.executable, "-m", "experiments.main", *args], cwd=REPO_ROOT, env=clean_env(),
        capture_output=True, text=True, timeout=timeout)


def assert_one_line(result, message, code=2):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert len(lines) == 2 and lines[1].startswith("(add --debug"), result.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 4-step VAE run on synthetic data."""
    workdir = str(tmp_path_factory.mktemp("finished") / "run")
    result = run_main("vae_mlp", workdir, SHORT)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def files_of(folder):
    """Every file under `folder` with its size and modification time."""
    out = {}
    for root, _, names in os.walk(folder):
        for n in names:
            st = os.stat(os.path.join(root, n))
            out[os.path.join(root, n)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("args,message", [
    (["--config.train.num_stepz=3"],
     "--config.train.num_stepz: the config {config} has no key 'train.num_stepz'; did you "
     'mean "num_steps"?'),
    (["--config.trian.num_steps=3"], "has no key 'trian'; did you mean \"train\"?"),
    (["--config.data.swap_domains=True"], "has no key 'data.swap_domains'"),
    (["--config.train.num_steps=abc"], "--config.train.num_steps=abc: invalid literal"),
    (["--bogus=1"], "Unknown command line flag 'bogus'"),
    (["--config.seed=-1"], "seed=-1 is out of range"),
    (["--config.seed=99999999999999999999"], "seed=99999999999999999999 is out of range"),
])
def test_bad_command_lines_are_one_line(args, message, tmp_path):
    result = run_cli(f"--config={CONFIG}", f"--workdir={tmp_path / 'run'}",
                     "--config.data.source=synthetic", *args)
    assert_one_line(result, message.format(config=CONFIG))
    assert not os.path.exists(tmp_path / "run"), "a failed start left a workdir"


def test_bad_config_files_are_one_line(tmp_path):
    (tmp_path / "raises.py").write_text("def get_config():\n    raise ValueError('boom')\n")
    (tmp_path / "syntax.py").write_text("def get_config(:\n")
    (tmp_path / "empty.py").write_text("x = 1\n")
    cases = [("experiments/configs/vae_mlpp.py", "no such config file; the experiments' "
              "configs are experiments/configs/{ae_conv,"),
             (tmp_path / "raises.py", "get_config() raised ValueError: boom"),
             (tmp_path / "syntax.py", "the config file does not parse: invalid syntax (line 1)"),
             (tmp_path / "empty.py", "defines no get_config() function")]
    for config, message in cases:
        for form in ([f"--config={config}"], ["--config", str(config)]):
            assert_one_line(run_cli(*form, f"--workdir={tmp_path / 'run'}"), message)


def test_unusable_workdirs_are_one_line(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    flags = [f"--config={CONFIG}", "--config.data.source=synthetic"]
    assert_one_line(run_cli(*flags, f"--workdir={a_file}"), "is a file, not a folder")
    assert_one_line(run_cli(*flags, f"--workdir={a_file / 'run'}"),
                    "cannot be written: Not a directory")
    assert_one_line(run_cli(*flags, f"--workdir={tmp_path / 'nothing'}", "--mode=sample"),
                    "does not exist; train first")
    assert not os.path.exists(tmp_path / "nothing")


def test_readers_of_an_empty_workdir_create_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for mode in ("sample", "evaluate", "encode"):
        result = run_main("vae_mlp", str(empty), SHORT, f"--mode={mode}")
        assert_one_line(result, "no checkpoint in")
    assert os.listdir(empty) == []


def test_readers_write_nothing_in_the_run_and_work_on_a_read_only_copy(finished_run, tmp_path):
    before = files_of(finished_run)
    out = tmp_path / "out"
    sample = run_main("vae_mlp", finished_run, {**SHORT, "sampling.write_png": True},
                      "--mode=sample", f"--output_dir={out}")
    assert sample.returncode == 0, sample.stderr[-3000:]
    assert f"npz: {out}/samples/prior_step4.npz" in sample.stdout  # says where its files are
    assert f"png_dir: {out}/samples/prior_step4" in sample.stdout
    assert len(os.listdir(out / "samples" / "prior_step4")) > 0
    evaluate = run_main("vae_mlp", finished_run, SHORT, "--mode=evaluate",
                        f"--output_dir={out}")
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert os.path.exists(out / "eval_summary.json")
    assert files_of(finished_run) == before  # nothing written or touched in the run

    # A read-only run (immutable folder: read-only even for root), where chattr works.
    frozen = str(tmp_path / "frozen")
    shutil.copytree(finished_run, frozen)
    if subprocess.run(["chattr", "-R", "+i", frozen], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    try:
        result = run_main("vae_mlp", frozen, SHORT, "--mode=evaluate")
        assert_one_line(result, "cannot be written")
        assert "pass --output_dir" in result.stderr
        elsewhere = run_main("vae_mlp", frozen, SHORT, "--mode=evaluate",
                             f"--output_dir={tmp_path / 'out2'}")
        assert elsewhere.returncode == 0, elsewhere.stderr[-3000:]
    finally:
        subprocess.run(["chattr", "-R", "-i", frozen], check=True)


def test_a_failed_start_leaves_the_record_as_it_was(finished_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(finished_run, workdir)
    with open(os.path.join(workdir, "config.json")) as f:
        record = f.read()
    # A checkpoint of another model: the restore fails, quietly, and the record stays.
    other = run_main("vae_mlp", workdir, {**SHORT, "model.latent_dim": 5,
                                          "train.num_steps": 6}, "--allow_config_change")
    assert_one_line(other, "checkpoint 4 in")
    assert "Event loop is closed" not in other.stderr
    with open(os.path.join(workdir, "config.json")) as f:
        assert f.read() == record
    # Readers with another model's settings are told which settings differ.
    reader = run_main("vae_mlp", workdir, {**SHORT, "model.latent_dim": 5}, "--mode=evaluate")
    assert_one_line(reader, "model.latent_dim: 3 → 5")
    # The original settings still resume.
    again = run_main("vae_mlp", workdir, {**SHORT, "train.num_steps": 6})
    assert again.returncode == 0, again.stderr[-3000:]

    # A first start that fails (here: a bad seed) records nothing; the corrected rerun runs.
    fresh = str(tmp_path / "fresh")
    assert run_main("vae_mlp", fresh, {**SHORT, "seed": -1}).returncode == 2
    assert not os.path.exists(os.path.join(fresh, "config.json"))
    assert run_main("vae_mlp", fresh, SHORT).returncode == 0


def test_restoring_with_another_family_names_the_settings(finished_run):
    result = run_main("ae_mlp", finished_run, SHORT, "--mode=evaluate")
    assert_one_line(result, "these settings differ from those")
    assert "model.variational: True → False" in result.stderr
    assert "corrupt" not in result.stderr
    dcgan = run_main("dcgan_fmnist", finished_run, {"data.source": "synthetic"},
                     "--mode=evaluate")
    assert_one_line(dcgan, "family: 'autoencoder' → 'gan'")


def test_ctrl_c_during_training_is_one_line_and_resumable(tmp_path):
    workdir = str(tmp_path / "run")
    overrides = {**SMALL, "train.num_steps": 100000, "train.checkpoint_every": 50}
    proc = subprocess.Popen(main_command("vae_mlp", workdir, overrides), cwd=REPO_ROOT,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ckpt = os.path.join(workdir, "checkpoints")
    deadline = time.time() + 240
    while time.time() < deadline and not (
            os.path.isdir(ckpt) and any(d.isdigit() for d in os.listdir(ckpt))):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("interrupted (Ctrl-C) after step ") and "the last checkpoint is " \
        "step " in line and line.endswith("rerun the same command to resume."), stderr
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["seed"] == 0


def test_an_unknown_tfds_name_is_one_line_with_suggestions(tmp_path):
    result = run_cli(f"--config={CONFIG}", f"--workdir={tmp_path / 'run'}",
                     "--config.data.name=cifar_10", f"--config.data.data_dir={tmp_path}")
    # TensorFlow's C++ runtime logs a few lines of its own once TFDS imports it.
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    error, hint = result.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: data.name='cifar_10' is neither a TFDS dataset nor "
                            "prepared in") and "did you mean cifar10" in error, error
    assert hint.startswith("(add --debug")
    assert not os.path.exists(tmp_path / "run" / "config.json")
