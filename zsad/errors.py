"""Errors a user can act on.

Every expected problem (bad input file, weights that cannot be loaded, bad option) raises a ``ZsadError`` whose
message names the input and the fix. The CLI prints such errors as one line without a stack trace; anything else
is a bug and keeps its traceback. ``ZsadError``, ``ImageLoadError`` and ``DatasetError`` are defined once, in the
torch-free runtime (``zsad_runtime.errors``), which reads images with the same code.
"""
from zsad_runtime.errors import DatasetError, ImageLoadError, ZsadError

__all__ = ["DatasetError", "ImageLoadError", "WeightsUnavailableError", "ZsadError", "require"]


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
