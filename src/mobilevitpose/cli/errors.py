"""How the console scripts report a user's mistake: one line that names the problem and the
fix, and a non-zero exit, without a traceback (programming errors keep theirs).

A bad file, a missing path, or a value out of range reaches the scripts as an OSError or a
ValueError raised, with its message, where the input is read; `--debug` (or, for the Hydra
scripts, HYDRA_FULL_ERROR=1) shows the traceback as well.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf.errors import OmegaConfBaseException

# ModuleNotFoundError: an optional extra (e.g. [deploy]) that is not installed, named as such.
USER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    ModuleNotFoundError,
    OmegaConfBaseException,
)
EXIT_CODE = 2


@contextmanager
def reported_as_user_errors(prog: str, debug: bool = False) -> Iterator[None]:
    """Turn a user error raised inside the block into `prog: error: ...` and exit 2."""
    try:
        yield
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"{prog}: error: {_message(err)}", file=sys.stderr)
        raise SystemExit(EXIT_CODE) from None


def _message(err: BaseException) -> str:
    # An error in a DataLoader worker arrives with the worker's traceback in its message; its
    # last line is the original error.
    lines = [line for line in str(err).splitlines() if line.strip()]
    if "Original Traceback" in str(err) and lines:
        return lines[-1]
    return str(err)


def hydra_debug() -> bool:
    """Whether the user asked Hydra for full tracebacks."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"
