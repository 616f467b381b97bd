"""Checkpoints (round trip, keep-last-K, corrupt files) and the loop's non-finite guard."""

import os
import shutil
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgen.training import (
    Checkpointer,
    CheckpointError,
    DataParallel,
    MetricWriter,
    NonFiniteLossError,
    TrainState,
    batches_of,
    fit,
    with_step_key,
)


def toy_state():
    return TrainState.create(apply_fn=None, params={"w": jnp.ones((4,)), "b": jnp.zeros(())},
                             tx=optax.adam(0.1), ema_decay=0.9)


def toy_body(state, batch, key):
    """A step whose loss turns to NaN once batch["poison"] is set."""
    def loss_fn(p):
        pred = batch["x"] @ p["w"] + p["b"]
        return jnp.mean((pred - batch["y"]) ** 2) * jnp.where(batch["poison"][0] > 0, jnp.nan, 1.0)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    grads = jax.lax.pmean(grads, "data")
    return state.apply_gradients(grads=grads), {"loss": jax.lax.pmean(loss, "data")}


def batches(poison_from=None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 4)).astype(np.float32)
    y = rng.normal(size=(64, 8)).astype(np.float32)

    def batch_for_step(step):
        poison = float(poison_from is not None and step >= poison_from)
        return {"x": x[step], "y": y[step], "poison": np.full((8,), poison, np.float32)}

    return batch_for_step


def train(workdir, num_steps, poison_from=None, every=2):
    parallel = DataParallel("shard_map")
    ckpt = Checkpointer(os.path.join(workdir, "ckpt"), every_steps=every, keep=2)
    writer = MetricWriter(workdir)
    try:
        return fit(state=toy_state(), train_step=parallel.compile(with_step_key(toy_body)),
                   batches=batches_of(batches(poison_from)), parallel=parallel,
                   train_key=jax.random.key(0), num_steps=num_steps, checkpointer=ckpt,
                   writer=writer, log_every=1, progress=False)
    finally:
        ckpt.close()
        writer.close()


def test_round_trip_and_keep_last(tmp_path):
    state, _, _ = train(str(tmp_path), num_steps=6)
    ckpt = Checkpointer(str(tmp_path / "ckpt"), every_steps=2, keep=2, read_only=True)
    assert sorted(int(s) for s in os.listdir(tmp_path / "ckpt") if s.isdigit()) == [4, 6]
    restored = ckpt.restore(toy_state())
    assert int(restored.step) == 6
    jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)
    jax.tree.map(np.testing.assert_array_equal, restored.ema_params, state.ema_params)
    jax.tree.map(np.testing.assert_array_equal, restored.opt_state, state.opt_state)


def test_resume_continues_exactly(tmp_path):
    straight, _, _ = train(str(tmp_path / "a"), num_steps=8)
    train(str(tmp_path / "b"), num_steps=4)
    resumed, _, _ = train(str(tmp_path / "b"), num_steps=8)
    jax.tree.map(np.testing.assert_array_equal, resumed.params, straight.params)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"non-finite train/loss.*step 4\)"):
        train(str(tmp_path), num_steps=10, poison_from=5)
    ckpt = Checkpointer(str(tmp_path / "ckpt"), every_steps=2, keep=2, read_only=True)
    assert ckpt.latest_step() == 4
    good = ckpt.restore(toy_state())
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(good))
    reference, _, _ = train(str(tmp_path / "ref"), num_steps=4)
    jax.tree.map(np.testing.assert_array_equal, good.params, reference.params)
    # The run resumes from it once the cause is fixed.
    resumed, _, _ = train(str(tmp_path), num_steps=6)
    assert int(resumed.step) == 6


def test_corrupt_checkpoint_gives_clear_error(tmp_path):
    train(str(tmp_path), num_steps=2)
    step_dir = tmp_path / "ckpt" / "2"
    for root, _, files in os.walk(step_dir):
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        Checkpointer(str(tmp_path / "ckpt"), every_steps=2, keep=2,
                     read_only=True).restore(toy_state())


def test_unfinished_saves_are_removed(tmp_path):
    """A crash mid-save leaves orbax's temporary folder; the next run deletes it and resumes
    from the last complete checkpoint."""
    train(str(tmp_path), num_steps=4)
    leftover = tmp_path / "ckpt" / "6.orbax-checkpoint-tmp-1234"
    leftover.mkdir()
    (leftover / "partial").write_text("x")
    ckpt = Checkpointer(str(tmp_path / "ckpt"), every_steps=2, keep=3)
    assert not leftover.exists() and ckpt.latest_step() == 4


def test_one_writer_per_directory_and_readers_do_not_lock(tmp_path):
    from jaxgen.training.checkpoint import WorkdirLockedError

    first = Checkpointer(str(tmp_path / "ckpt"), every_steps=1, keep=1)
    with pytest.raises(WorkdirLockedError, match=f"pid {os.getpid()} on host"):
        Checkpointer(str(tmp_path / "ckpt"), every_steps=1, keep=1)
    first.save(1, toy_state(), force=True)
    first.wait()  # an asynchronous save is visible to readers once it is written
    reader = Checkpointer(str(tmp_path / "ckpt"), every_steps=1, keep=1, read_only=True)
    assert int(reader.restore(toy_state()).step) == 0 and reader.latest_step() == 1
    with pytest.raises(RuntimeError, match="read-only"):
        reader.save(2, toy_state())
    first.close()
    Checkpointer(str(tmp_path / "ckpt"), every_steps=1, keep=1).close()  # released


def test_a_checkpoint_whose_state_diverged_is_set_aside(tmp_path):
    """The step after checkpoint 4 gives a NaN loss: checkpoint 4 was saved from a state with
    finite numbers (the loss of step 4 came before its update), yet it is what diverged. It is
    moved aside, so that the error and a rerun point at checkpoint 2."""
    with pytest.raises(NonFiniteLossError, match="non-finite train/loss at step 5.*step 2\\)"):
        train(str(tmp_path), num_steps=10, poison_from=4)
    ckpt = Checkpointer(str(tmp_path / "ckpt"), every_steps=2, keep=2, read_only=True)
    assert ckpt.latest_step() == 2
    assert os.listdir(tmp_path / "ckpt_rejected") == ["4"]


class VanishingListing:
    """Orbax's step-name format, made to delete the newest step folder right after it lists
    the directory and before it reads the steps' metadata: the trainer's keep-N clean-up at
    the worst moment for a reader, made deterministic."""

    def __init__(self, real, directory, times=1):
        self.real, self.directory, self.times = real, directory, times

    def __getattr__(self, name):
        return getattr(self.real, name)

    def find_all(self, base_path):
        found = list(self.real.find_all(base_path))
        if self.times:
            self.times -= 1
            newest = max(int(d) for d in os.listdir(self.directory) if d.isdigit())
            shutil.rmtree(os.path.join(self.directory, str(newest)))
        return found


def test_a_step_that_vanishes_while_a_reader_lists_is_skipped(tmp_path):
    train(str(tmp_path), num_steps=6)  # keeps 4 and 6
    directory = str(tmp_path / "ckpt")
    reader = Checkpointer(directory, every_steps=2, keep=2, read_only=True)
    assert reader.latest_step() == 6
    manager = reader._manager
    manager._step_name_format = VanishingListing(manager._step_name_format, directory)
    # The listing stats step 6 after it vanished: the reader lists again and takes 4.
    restored = reader.restore(toy_state())
    assert int(restored.step) == 4 and reader.all_steps() == [4]
    manager._step_name_format = VanishingListing(manager._step_name_format, directory)
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        reader.restore(toy_state())  # the last one vanishes too: one clear error
    # Without the retry the same injection is the FileNotFoundError readers used to die of.
    train(str(tmp_path / "again"), num_steps=6)
    raw = Checkpointer(str(tmp_path / "again" / "ckpt"), every_steps=2, keep=2, read_only=True)
    raw.all_steps()
    raw._manager._step_name_format = VanishingListing(raw._manager._step_name_format,
                                                      str(tmp_path / "again" / "ckpt"))
    with pytest.raises(FileNotFoundError):
        raw._manager.reload()


def test_sigterm_saves_at_the_step_boundary_and_resumes_exactly(tmp_path):
    """Preemption: SIGTERM (sent here by the step itself, at step 3) makes the loop save the
    state after that step, though checkpoints are due only every 100 steps, and stop; the
    rerun resumes from it to the same parameters as an uninterrupted run."""
    from jaxgen.training.loop import TrainingInterrupted

    straight, _, _ = train(str(tmp_path / "straight"), num_steps=8, every=100)
    plain = batches()

    def preempting(step):
        if step == 3:  # the fourth batch, read ahead while the third step runs
            os.kill(os.getpid(), signal.SIGTERM)
        return plain(step)

    parallel = DataParallel("shard_map")
    workdir = str(tmp_path / "preempted")
    ckpt = Checkpointer(os.path.join(workdir, "ckpt"), every_steps=100, keep=2)
    try:
        with pytest.raises(TrainingInterrupted, match=r"preempted \(SIGTERM\) after step 3: "
                                                      r"saved checkpoint 3") as info:
            fit(state=toy_state(), train_step=parallel.compile(with_step_key(toy_body)),
                batches=batches_of(preempting), parallel=parallel, train_key=jax.random.key(0),
                num_steps=8, checkpointer=ckpt, writer=MetricWriter(workdir), log_every=1,
                progress=False)
        assert info.value.exit_code == 143
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is removed
    finally:
        ckpt.close()
    assert sorted(int(s) for s in os.listdir(os.path.join(workdir, "ckpt")) if s.isdigit()) \
        == [3]
    resumed, _, _ = train(workdir, num_steps=8, every=100)
    jax.tree.map(np.testing.assert_array_equal, resumed.params, straight.params)


def test_restore_errors_show_tensorstore_text_not_a_bound_method():
    from jaxgen.training.checkpoint import describe_error

    try:
        try:
            raise ValueError('NOT_FOUND: Error opening "zarr" driver: file x/.zarray missing')
        except ValueError as inner:
            raise Exception("Encountered error while reading array index: (). See full "
                            "TensorStore details: <bound method pybind11_detail_function_"
                            "record_v1 of <Foo object at 0x7f>>.") from inner
    except Exception as e:  # noqa: BLE001
        text = describe_error(e)
    assert "bound method" not in text
    assert text == ("Exception: Encountered error while reading array index: ().; ValueError: "
                    'NOT_FOUND: Error opening "zarr" driver: file x/.zarray missing')


def test_a_step_deleted_while_it_is_restored_is_skipped(tmp_path):
    """The clean-up removes a step's files before its folder: a restore can miss a file while
    the folder still exists. The reader waits for the folder to go and takes the next one."""
    import threading

    train(str(tmp_path), num_steps=6)  # keeps 4 and 6
    directory = str(tmp_path / "ckpt")
    reader = Checkpointer(directory, every_steps=2, keep=2, read_only=True)
    assert reader.all_steps() == [4, 6]  # opens orbax's manager
    real = reader._manager.restore
    calls = []

    def restore(step, **kwargs):
        calls.append(step)
        if step == 6:  # files already gone, the folder goes a moment later
            threading.Timer(0.2, shutil.rmtree, (os.path.join(directory, "6"),)).start()
            raise FileNotFoundError(2, "No such file or directory",
                                    os.path.join(directory, "6", "default", "_METADATA"))
        return real(step, **kwargs)

    reader._manager.restore = restore
    assert int(reader.restore(toy_state()).step) == 4 and calls == [6, 4]
    # A damaged checkpoint whose folder stays is an error, not a silent fall-back.
    train(str(tmp_path / "b"), num_steps=6)
    broken = Checkpointer(str(tmp_path / "b" / "ckpt"), every_steps=2, keep=2, read_only=True)
    os.remove(next(os.path.join(r, f) for r, _, fs in os.walk(tmp_path / "b" / "ckpt" / "6")
                   for f in fs if f == "_METADATA"))
    with pytest.raises(CheckpointError, match="checkpoint 6 .* could not be restored"):
        broken.restore(toy_state())


def test_ctrl_c_inside_a_checkpoint_save_is_raised_after_it():
    """SIGINT inside `interrupt_deferred` (fit wraps each save in it) does not cut the block
    short: the block finishes, then KeyboardInterrupt is raised and the handler restored."""
    import os
    import signal

    from jaxgen.training.loop import interrupt_deferred

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        finished = []
        with pytest.raises(KeyboardInterrupt):
            with interrupt_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                finished.append(True)  # still runs: the interrupt waits for the block's end
        assert finished == [True]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        with interrupt_deferred():  # no signal: nothing raised
            pass
    finally:
        signal.signal(signal.SIGINT, previous)
