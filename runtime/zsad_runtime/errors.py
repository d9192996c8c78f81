"""Errors a user can act on, shared by zsad and its runtime.

Every expected problem (an unreadable image, a bad bundle, a bad option) raises a ``ZsadError`` whose message names
the input and the fix; the command lines print it as one line (``zsad: error: ...``, ``zsad-runtime: error: ...``)
without a stack trace, anything else is a bug and keeps its traceback. The classes live here, in the torch-free
runtime, and ``zsad.errors`` re-exports them: an image error raised by the shared loader is the same class whether
zsad or the runtime called it.
"""
from __future__ import annotations


class ZsadError(Exception):
    """Base class for problems caused by input or environment, not by a bug in zsad."""


class ImageLoadError(ZsadError):
    """An image could not be read or is unusable (missing, corrupt, truncated, too small, too large)."""


class DatasetError(ZsadError):
    """A dataset root, split file or manifest is missing or malformed."""


class BundleError(ZsadError):
    """A deployment bundle is missing, incomplete or of another format version."""
