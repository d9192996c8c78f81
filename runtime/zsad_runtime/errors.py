"""Errors a user can act on, shared by zsad and its runtime.

Every expected problem (an unreadable image, a bad bundle, a bad option) raises a ``ZsadError`` whose message names
the input and the fix; the command lines print it as one line (``zsad: error: ...``, ``zsad-runtime: error: ...``)
without a stack trace, anything else is a bug and keeps its traceback. The classes live here, in the torch-free
runtime, and ``zsad.errors`` re-exports them: an image error raised by the shared loader is the same class whether
zsad or the runtime called it.
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


class DatasetError(ZsadError):
    """A dataset root, split file or manifest is missing or malformed."""


class BundleError(ZsadError):
    """A deployment bundle is missing, incomplete or of another format version."""


def run_command(command: Callable[[], int], prog: str = "zsad", own: tuple[str, ...] = ()) -> int:
    """Run one command-line command: its exit code; a ``ZsadError`` -> one line ``PROG: error: ...`` and exit 2;
    Ctrl-C -> exit 130. Warnings raised by the runtime's code or under the ``own`` folders read as ``PROG: warning:
    ...`` without a source location; other libraries' warnings keep theirs."""
    folders = (str(Path(__file__).parent), *own)

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, UserWarning) and filename.startswith(folders):
            print(f"{prog}: warning: {message}", file=sys.stderr)
        else:
            print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return command()
    except ZsadError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
