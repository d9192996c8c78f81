"""Errors a user can act on.

Every expected problem (bad input file, weights that cannot be loaded, bad option) raises a ``ZsadError`` whose
message names the input and the fix. The command-line faces run through ``run_command``, which prints such errors
as one line without a stack trace (exit 2) and zsad's own warnings as ``zsad: warning: ...``; anything else is a
bug and keeps its traceback. ``ZsadError``, ``ImageLoadError``, ``DatasetError`` and the command runner are defined
once, in the torch-free runtime (``zsad_runtime.errors``), which reads images with the same code.
"""
from __future__ import annotations

from pathlib import Path

from zsad_runtime.errors import DatasetError, ImageLoadError, ZsadError, run_command

__all__ = ["DatasetError", "ImageLoadError", "WeightsUnavailableError", "ZSAD_CODE", "ZsadError", "require",
           "run_command"]

# zsad's own code: its warnings print as ``zsad: warning: ...`` (``run_command(command, "zsad", own=ZSAD_CODE)``).
ZSAD_CODE = (str(Path(__file__).parent),)


class WeightsUnavailableError(ZsadError):
    """Model weights could not be found locally and could not be downloaded."""


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
