"""The errors a user can cause, and how the command-line tools print them: one line saying
what was wrong and what to do, exit status 2 (``--debug`` shows the traceback)."""

from __future__ import annotations

import sys

EXIT_ERROR = 2
DEBUG_HINT = "(add --debug for the full traceback)"


def expected_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message explains the fault and its fix."""
    from jaxgen.data.fashion_mnist import DatasetFileError, DatasetNotFoundError
    from jaxgen.data.image_io import ImageFileError
    from jaxgen.data.loaders import TooManyBadRecords
    from jaxgen.training import CheckpointError, NonFiniteLossError
    from jaxgen.training.checkpoint import WorkdirLockedError
    from jaxgen.validation import ConfigError

    # OSError: a path the user named (a workdir under a file, a read-only folder, a missing
    # image folder); its message names the path.
    return (ConfigError, CheckpointError, NonFiniteLossError, WorkdirLockedError,
            DatasetFileError, DatasetNotFoundError, ImageFileError, TooManyBadRecords,
            FloatingPointError, OSError)


def one_line(e: BaseException) -> str:
    """An expected error as one line (an OS error as '<reason>: <path>')."""
    if isinstance(e, OSError) and e.strerror and e.filename:
        return f"{e.strerror}: {e.filename}"
    return " ".join(str(e).split())


def report(message: str, *, hint: bool = True) -> None:
    """Print an error line (and the --debug hint) to stderr."""
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(DEBUG_HINT, file=sys.stderr)
