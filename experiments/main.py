"""Run an experiment: ``python -m experiments.main --config CONFIG --workdir DIR``.

Modes (``--mode``): ``train`` (default; resumes from the workdir's latest checkpoint),
``evaluate`` (the latest checkpoint on the test split), ``sample`` (generate images),
``encode`` (write latent codes) and ``translate`` (map images to the other domain); each family
supports the modes that apply to it. Override any setting with ``--config.<key>=<value>``; an
unknown key is an error. The modes other than ``train`` only read the workdir: their files go
to ``--output_dir`` (default: the workdir). Multi-host: add ``--coordinator_address=HOST:PORT
--num_processes=N --process_id=I`` on each host (or set JAXGEN_COORDINATOR_ADDRESS /
JAXGEN_NUM_PROCESSES / JAXGEN_PROCESS_ID).

Exit status: 0 done; 2 an error the message explains (bad flag, config, path, data or
checkpoint; a non-finite loss); 130 interrupted (Ctrl-C); 143 preempted (SIGTERM: a checkpoint
was saved at the step boundary); 1 anything unexpected (with its traceback).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from experiments.errors import EXIT_ERROR, expected_errors, one_line, report
from experiments.runner import MODES

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, events, images.")
_MODE = flags.DEFINE_enum("mode", "train", list(MODES), "What to do.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Where the modes other than train write their files (default: the "
    "workdir); the workdir itself may then be read-only.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
_ALLOW_CHANGE = flags.DEFINE_bool(
    "allow_config_change", False,
    "Resume a workdir although settings that change the run's meaning differ from its own.")
_DEBUG = flags.DEFINE_bool("debug", False, "Show the full traceback of an error.")
flags.mark_flags_as_required(["config", "workdir"])

EXIT_INTERRUPTED = 130  # 128 + SIGINT; a preempted run exits 128 + SIGTERM = 143


def _fail(message: str) -> None:
    report(message)
    sys.exit(EXIT_ERROR)


def _config_path(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def flag_error(e: BaseException, argv: list[str]) -> str:
    """What was wrong with the command line, in one line, for an error raised while absl
    parsed it (the config file is loaded and its overrides applied then)."""
    root = e
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__
    path = _config_path(argv)
    text = str(e)
    if isinstance(root, SyntaxError):
        return (f"--config={path}: the config file does not parse: {root.msg} (line "
                f"{root.lineno}).")
    if "Configuration is not available" in text or (
            path and not os.path.exists(path.split(":", 1)[0])):
        here = os.path.dirname(os.path.abspath(__file__))
        names = sorted(n for n in os.listdir(os.path.join(here, "configs")) if n.endswith(".py")
                       and n not in ("base.py", "__init__.py"))
        return (f"--config={path}: no such config file; the experiments' configs are "
                f"experiments/configs/{{{','.join(n[:-3] for n in names)}}}.py.")
    if "has no attribute 'get_config'" in text:
        return f"--config={path}: the config file defines no get_config() function."
    if "Error whilst parsing config file" in text:
        return f"--config={path}: get_config() raised {type(root).__name__}: {root}"
    if isinstance(e, (AttributeError, KeyError)):
        # An override of a key the config does not have (ml_collections raises it while absl
        # applies the override; its text holds the key and, perhaps, a suggestion).
        message = e.args[0] if e.args else ""
        message = message.args[0] if isinstance(message, BaseException) else str(message)
        names = re.findall(r"'([^']+)'", message) + re.findall(r"lookup: (\S+)", message)
        hint = re.search(r"Did you mean (.+?) instead of", message)
        for name in names:
            for arg in (a for a in argv if a.startswith("--config.")):
                flag, keys = arg.split("=", 1)[0], arg.split("=", 1)[0].split(".")[1:]
                if name in keys or ".".join(keys).endswith(name):
                    key = ".".join(keys[:keys.index(name) + 1]) if name in keys else name
                    return (f"{flag}: the config {path} has no key {key!r}" + (
                        f"; did you mean {hint.group(1)}?" if hint else
                        "; check its spelling and section (the config file lists every key)."))
        return f"a --config.* override names a key the config {path} does not have: {message}"
    if isinstance(e, flags.Error):
        return " ".join(text.split())
    return f"{type(e).__name__}: {' '.join(text.split())}"


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, with its errors (a bad flag, a config file that is missing or raises, a
    misspelt override) as one line and exit status 2, like every other error."""
    try:
        return flags.FLAGS(argv)
    except Exception as e:
        if "--debug" in argv:
            raise
        _fail(flag_error(e, argv))
    return []  # unreachable


def _quiet_orbax_noise() -> None:
    """Keep what orbax and TensorStore print for expected situations off the console: the
    warning every reader gets, and the 'Event loop is closed' callbacks that follow a failed
    restore (each repeats the error the restore raised)."""

    class _Drop(logging.Filter):
        def filter(self, record):
            return not str(record.msg).startswith("Given directory is read only")

    absl_logging.get_absl_logger().addFilter(_Drop())
    previous = sys.unraisablehook

    def hook(unraisable):
        text = str(unraisable.exc_value)
        if text == "Event loop is closed" or text.startswith("Encountered error while reading"):
            return
        previous(unraisable)

    sys.unraisablehook = hook


def main(argv):
    del argv
    from jaxgen.training import distributed, xla_flags

    xla_flags.set_cpu_flags()  # before the first computation starts the CPU backend
    _quiet_orbax_noise()
    from jaxgen.training.loop import TrainingInterrupted

    expected = expected_errors()
    try:
        multi = distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                                       _PROCESS_ID.value)
    except expected as e:
        _fail(one_line(e))
    import jax

    from experiments import runner, settings

    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    try:
        config = _CONFIG.value
        config.keys()  # a file that failed to load raises here, on first use
    except Exception as e:
        if _DEBUG.value:
            raise
        _fail(flag_error(e, sys.argv))
    try:
        run_settings, family_config = settings.from_config_dict(config)
        summary = runner.run(run_settings, family_config, _WORKDIR.value, _MODE.value,
                             allow_config_change=_ALLOW_CHANGE.value,
                             output_dir=_OUTPUT_DIR.value)
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr)
        _exit(e.exit_code, multi)
    except KeyboardInterrupt:  # before or after the training loop: nothing to save
        print("interrupted; nothing was lost (checkpoints are written whole or not at all)",
              file=sys.stderr)
        _exit(EXIT_INTERRUPTED, multi)
    except expected as e:
        if _DEBUG.value and not multi:
            raise
        if _DEBUG.value:
            traceback.print_exc()
        report(one_line(e))
        _exit(EXIT_ERROR, multi)
    except BaseException:
        if not multi:
            raise
        traceback.print_exc()
        _exit(1, multi)
    if jax.process_index() == 0:
        for k in sorted(k for k in summary if k.startswith("eval/") and not k.endswith("_se")):
            se = summary.get(f"{k}_se")
            print(f"{k}: {summary[k]:.4f}" + (f" ± {se:.4f} (standard error)" if se else ""))
        for k in sorted(k for k in summary if isinstance(summary[k], str)
                        and not k.startswith(("eval/", "train/"))):
            print(f"{k}: {summary[k]}")
        if _MODE.value == "train":
            print(f"outputs in {_WORKDIR.value}: checkpoints/, tensorboard/, images/, *.json")
        elif _MODE.value == "evaluate":
            out = _OUTPUT_DIR.value or _WORKDIR.value
            print(f"eval_summary: {os.path.join(out, 'eval_summary.json')}; grids in "
                  f"{os.path.join(out, 'images')}")


def _exit(code: int, multi: bool) -> None:
    """Exit with `code`. In a multi-process job the process leaves at once, skipping JAX's
    shutdown barrier (which would wait for the other processes while they wait for this one
    in a collective): the others see the connection close and stop too."""
    if multi:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
