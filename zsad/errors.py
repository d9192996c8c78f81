"""Errors a user can act on.

Every expected problem (bad input file, weights that cannot be loaded, bad option) raises a ``ZsadError`` whose
message names the input and the fix. The CLI prints such errors as one line without a stack trace; anything else
is a bug and keeps its traceback.
"""


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
