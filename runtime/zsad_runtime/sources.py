"""What the user passed as images, as one ``Source`` per image: paths, folders, PIL images, arrays, or a list.

Expansion only names the inputs; pixels are read later, batch by batch (``zsad_runtime.images.load_image``), so a
missing or bad file becomes an error result of its own, never a failed batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zsad_runtime.errors import ZsadError
from zsad_runtime.images import list_images


@dataclass
class Source:
    """One input: the object to load, the name results use, and the file path when there is one."""

    item: Any
    name: str
    path: str | None = None


def expand_sources(images) -> list[Source]:
    """Inputs -> one ``Source`` per image, in order.

    A single PIL image or array is one image (an array of shape N x H x W x C is N images; H x W x C with C in
    1, 3, 4 and H x W are one; N x H x W is N greyscale images; see ``_is_array_batch`` for channels-first
    arrays). Folders are expanded (sorted) and their images are named by their path relative
    to the folder (``good/000.png``, ``hole/000.png``), so names stay unique; files given directly keep their
    name. A missing or bad file becomes an error result later, not a failed batch.
    """
    if isinstance(images, (str, Path, Image.Image)):
        images = [images]
    elif isinstance(images, np.ndarray):
        images = list(images) if _is_array_batch(images) else [images]
    sources: list[Source] = []
    for position, item in enumerate(images):
        if isinstance(item, (str, Path)) and Path(item).is_dir():
            folder = Path(item)
            for path in list_images([folder]):
                sources.append(Source(path, _relative_name(path, folder), str(path)))
        elif isinstance(item, (str, Path)):
            sources.append(Source(Path(item), Path(item).name, str(item)))
        elif isinstance(item, Image.Image) and getattr(item, "filename", ""):
            sources.append(Source(item, Path(item.filename).name, str(item.filename)))
        else:
            sources.append(Source(item, f"image {position}"))
    return sources


def _is_array_batch(array: np.ndarray) -> bool:
    """Whether one array given alone holds several images. 4-D: a batch (N x H x W x C, or N x C x H x W: each
    item is one image). 3-D with 1, 3 or 4 channels last: one image. 1 x H x W: one greyscale image either way.
    3 x H x W and 4 x H x W are one channels-first image as often as 3 or 4 greyscale images (a torch tensor's
    layout): refused with both fixes rather than guessed. Any other N x H x W: N greyscale images. An array inside a
    list is always one image (``zsad.data.images`` reads channels-first ones)."""
    if array.ndim == 4:
        return True
    if array.ndim != 3 or array.shape[-1] in (1, 3, 4) or array.shape[0] == 1:
        return False
    if array.shape[0] in (3, 4):
        count = array.shape[0]
        raise ZsadError(f"array of shape {tuple(array.shape)} is either one channels-first image or {count} greyscale "
                        f"images; pass array.transpose(1, 2, 0) (or [array]) for one image, or list(array) for "
                        f"{count} greyscale images")
    return True


def _relative_name(path: Path, folder: Path) -> str:
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return Path(path).name


def check_inputs(paths) -> None:
    """Before any model is loaded: every path the user named exists (a broken link is named as such)."""
    from zsad_runtime.errors import ZsadError

    for path in paths or []:
        if not Path(path).exists():
            kind = "broken symbolic link" if Path(path).is_symlink() else "no such file or folder"
            raise ZsadError(f"{path}: {kind}; check the path")
