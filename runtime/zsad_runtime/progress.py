"""Progress bars when tqdm is installed (zsad always has it), none otherwise: the runtime does not require it."""
from __future__ import annotations

from typing import Any


class _Silent:
    """What the callers use of a tqdm bar, doing nothing."""

    def __init__(self, iterable=None, **_: Any):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress(iterable=None, **options: Any):
    """``tqdm.auto.tqdm(iterable, **options)``, or a silent stand-in without tqdm."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _Silent(iterable)
    return tqdm(iterable, **options)
