"""Errors a user can act on.

Every expected problem (bad input file, weights that cannot be loaded, bad option) raises a ``ZsadError`` whose
message names the input and the fix. The command-line faces run through ``run_command``, which prints such errors
as one line without a stack trace (exit 2) and zsad's own warnings as ``zsad: warning: ...``; anything else is a
bug and keeps its traceback.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Callable


class ZsadError(Exception):
    """Base class for problems caused by input or environment, not by a bug in zsad."""


class ImageLoadError(ZsadError):
    """An image could not be read or is unusable (missing, corrupt, truncated, too small, too large)."""


class WeightsUnavailableError(ZsadError):
    """Model weights could not be found locally and could not be downloaded."""


class DatasetError(ZsadError):
    """A dataset root, split file or manifest is missing or malformed."""


def require(module: str, extra: str):
    """Import an optional dependency, or say which extra installs it (``pip install 'zsad[demo]'``)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ZsadError(
            f"this feature needs the Python package {module.split('.')[0]!r}; install it with: "
            f"pip install 'zsad[{extra}]'"
        ) from None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings raised by zsad itself read as messages on the command line, without a source location."""
    if issubclass(category, UserWarning) and filename.startswith(str(Path(__file__).parent)):
        print(f"zsad: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)


def run_command(command: Callable[[], int]) -> int:
    """Run one command-line command: its exit code; a ``ZsadError`` -> one line and exit 2; Ctrl-C -> exit 130."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return command()
    except ZsadError as error:
        print(f"zsad: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zsad: interrupted", file=sys.stderr)
        return 130
