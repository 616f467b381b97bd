"""Real processes: kill -9 and resume, two hosts on localhost, config errors from the CLI.

Each run is a fresh ``python -m experiments.main`` with one CPU device on synthetic data.
Final parameters are read back from the runs' last checkpoints.
"""

import os
import signal
import socket
import subprocess
import time

import jax
import numpy as np
import pytest

from jaxgen.data import generate
from jaxgen.families.autoencoder import Autoencoder, AutoencoderConfig, AutoencoderModel
from jaxgen.training import Checkpointer
from jaxgen.training.optim import OptimizerConfig, make_optimizer
from tests.experiments.helpers import REPO_ROOT, SMALL, clean_env, main_command, run_main


def final_params(workdir):
    family = Autoencoder(AutoencoderConfig(model=AutoencoderModel(latent_dim=3, hidden=(16,))),
                         image_shape=(28, 28, 1))
    target = family.init(jax.random.key(0), make_optimizer(OptimizerConfig(), num_steps=1))
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), every_steps=1, keep=1,
                        read_only=True)
    state = ckpt.restore(target)
    return int(state.step), state.params


def assert_same_params(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6), a, b)


LONG = {**SMALL, "train.num_steps": 1200, "train.checkpoint_every": 100}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The uninterrupted run the interrupted ones must end equal to: (step, params)."""
    workdir = str(tmp_path_factory.mktemp("straight") / "run")
    straight = run_main("vae_mlp", workdir, LONG)
    assert straight.returncode == 0, straight.stderr[-3000:]
    return final_params(workdir)


def start_and_wait(workdir, ready):
    """Start a `LONG` run; return its process once `ready(checkpoint steps)` holds."""
    proc = subprocess.Popen(main_command("vae_mlp", workdir, LONG), cwd=REPO_ROOT,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    deadline = time.time() + 240
    while time.time() < deadline:
        done = [int(d) for d in os.listdir(ckpt_dir) if d.isdigit()] if os.path.isdir(
            ckpt_dir) else []
        if ready(done):
            break
        time.sleep(0.05)
    return proc


def checkpoints(workdir):
    return sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints"))
                  if d.isdigit())


def assert_resumes_to(straight_run, workdir, step):
    """Rerunning `workdir` resumes from checkpoint `step` and ends on the straight run's
    parameters."""
    resumed = run_main("vae_mlp", workdir, LONG)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from checkpoint step {step}" in resumed.stdout + resumed.stderr
    step_b, params_b = final_params(workdir)
    assert straight_run[0] == step_b == 1200
    assert_same_params(straight_run[1], params_b)


def test_killed_run_resumes_to_the_same_parameters(straight_run, tmp_path):
    workdir = str(tmp_path / "killed")
    proc = start_and_wait(workdir, lambda done: done and max(done) >= 200)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = checkpoints(workdir)[-1]
    assert 200 <= killed_at < 1200

    assert_resumes_to(straight_run, workdir, killed_at)


def test_preempted_run_saves_its_step_and_resumes_to_the_same_parameters(straight_run,
                                                                           tmp_path):
    """SIGTERM, as a cloud machine, Kubernetes or Slurm preempts a job: the run saves the
    step it reached (not only the last multiple of checkpoint_every), says so in one line,
    exits 143, and the rerun resumes from it exactly."""
    workdir = str(tmp_path / "preempted")
    proc = start_and_wait(workdir, lambda done: bool(done))
    time.sleep(0.5)  # between two periodic checkpoints
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    line = stderr.strip().splitlines()[-1]
    saved = checkpoints(workdir)[-1]  # the step it reached (a multiple of 100 by chance only)
    assert line == (f"preempted (SIGTERM) after step {saved}: saved checkpoint {saved} in "
                    f"{os.path.join(workdir, 'checkpoints')}; rerun the same command to "
                    "resume."), stderr[-3000:]
    assert_resumes_to(straight_run, workdir, saved)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_job(tmp_path, processes, timeout=300):
    """Start one process per ``(workdir, overrides)`` in `processes` as a multi-process job on
    localhost; return their (returncode, stdout, stderr). Output goes to files (a full pipe
    would block a process mid-collective); a job still running at `timeout` is killed."""
    address = f"127.0.0.1:{free_port()}"
    n = len(processes)
    procs, logs = [], []
    for i, (workdir, overrides) in enumerate(processes):
        out, err = (open(tmp_path / f"process{i}.{s}", "w+") for s in ("out", "err"))  # noqa: SIM115
        logs.append((out, err))
        procs.append(subprocess.Popen(
            main_command("vae_mlp", workdir, overrides, f"--coordinator_address={address}",
                         f"--num_processes={n}", f"--process_id={i}"),
            cwd=REPO_ROOT, env=clean_env(), stdout=out, stderr=err))
    deadline = time.time() + timeout
    while time.time() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.2)
    hung = [p.poll() is None for p in procs]
    for p in procs:
        p.kill()
        p.wait()
    results = []
    for p, (out, err) in zip(procs, logs, strict=True):
        out.seek(0)
        err.seek(0)
        results.append((p.returncode, out.read(), err.read()))
        out.close()
        err.close()
    assert not any(hung), f"the job did not end within {timeout} s: " + " | ".join(
        f"process {i}: {e[-2000:]}" for i, (_, _, e) in enumerate(results))
    return results


@pytest.mark.parametrize("source", ["synthetic", "folder"])
def test_two_processes_match_one_process_reading_both_shards(tmp_path, source):
    """Each process reads only its shard of each batch (a folder: its range of the file
    list), and the job ends where one process reading both shards does."""
    overrides = {**SMALL, "train.num_steps": 4, "train.checkpoint_every": 2,
                 "data.num_shards": 2}
    if source == "folder":
        generate.write_image_folder(str(tmp_path / "images"), num_images=120, size=28,
                                    channels=1, classes=["a", "b", "c"], fmt="png")
        overrides.update({"data.source": "folder", "data.path": str(tmp_path / "images")})
    single = run_main("vae_mlp", str(tmp_path / "single"), overrides)
    assert single.returncode == 0, single.stderr[-3000:]

    workdir = str(tmp_path / "multi")
    results = run_job(tmp_path, [(workdir, overrides)] * 2)
    for code, _, err in results:
        assert code == 0, err[-3000:]
    assert "eval/neg_elbo_nats" in results[0][1]  # process 0 reports; process 1 stays quiet
    assert "eval/neg_elbo_nats" not in results[1][1]
    step_a, params_a = final_params(str(tmp_path / "single"))
    step_b, params_b = final_params(workdir)
    assert step_a == step_b == 4
    assert_same_params(params_a, params_b)


def test_processes_started_with_different_settings_all_stop_with_the_reason(tmp_path):
    overrides = {**SMALL, "train.num_steps": 4, "data.num_shards": 2}
    workdir = str(tmp_path / "multi")
    results = run_job(tmp_path, [(workdir, overrides),
                                 (workdir, {**overrides, "train.batch_size": 4})], timeout=120)
    for code, _, err in results:
        assert code == 2 and "started with different settings" in err, err[-2000:]


def test_an_error_in_one_process_ends_the_whole_job(tmp_path):
    # Process 1's workdir cannot be created: it stops after joining the job, while process 0
    # goes on to its first collective. Neither may hang.
    overrides = {**SMALL, "train.num_steps": 4, "data.num_shards": 2}
    not_a_dir = tmp_path / "a_file"
    not_a_dir.write_text("")
    results = run_job(tmp_path, [(str(tmp_path / "multi"), overrides),
                                 (str(not_a_dir), overrides)], timeout=120)
    # One line naming the path, exit status 2, as in a single process.
    assert results[1][0] == 2 and "error: Not a directory:" in results[1][2] and "a_file" in \
        results[1][2], results[1][2][-2000:]
    assert results[0][0] != 0, "process 0 finished although process 1 failed"


def test_unknown_config_key_is_an_error_that_names_it(tmp_path):
    result = run_main("vae_mlp", str(tmp_path / "x"), {"train.batch_sise": 64})
    assert result.returncode != 0
    assert "batch_sise" in result.stderr


def test_sigterm_to_one_process_stops_the_job_at_one_step_with_a_checkpoint(tmp_path):
    """Preemption of one host of a two-process job: JAX's preemption sync point makes both
    processes save the same step and exit 143; the job resumes from it."""
    workdir = str(tmp_path / "multi")
    overrides = {**SMALL, "train.num_steps": 100000, "train.checkpoint_every": 1000,
                 "data.num_shards": 2}
    address = f"127.0.0.1:{free_port()}"
    procs = []
    for i in range(2):
        err = open(tmp_path / f"err{i}", "w+")  # noqa: SIM115 (read after the process ends)
        procs.append((subprocess.Popen(
            main_command("vae_mlp", workdir, overrides, f"--coordinator_address={address}",
                         "--num_processes=2", f"--process_id={i}"),
            cwd=REPO_ROOT, env=clean_env(), stdout=subprocess.DEVNULL, stderr=err), err))
    deadline = time.time() + 240
    while time.time() < deadline and not os.path.isdir(os.path.join(workdir, "tensorboard")):
        time.sleep(0.2)  # the first logging window is written: both processes are stepping
    procs[1][0].send_signal(signal.SIGTERM)
    lines = []
    for proc, err in procs:
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        err.seek(0)
        text = err.read()
        err.close()
        assert proc.returncode == 143, text[-2000:]
        lines.append(text.strip().splitlines()[-1])
    saved = checkpoints(workdir)
    assert len(saved) == 1 and saved[0] % 1000, saved
    expected = (f"preempted (SIGTERM) after step {saved[0]}: saved checkpoint {saved[0]} in "
                f"{os.path.join(workdir, 'checkpoints')}; rerun the same command to resume.")
    assert lines == [expected, expected]
    resumed = run_job(tmp_path, [(workdir, {**overrides,
                                            "train.num_steps": saved[0] + 4})] * 2)
    for code, _, err in resumed:
        assert code == 0, err[-2000:]
    assert f"resumed from checkpoint step {saved[0]}" in resumed[0][1] + resumed[0][2]
    assert checkpoints(workdir)[-1] == saved[0] + 4
