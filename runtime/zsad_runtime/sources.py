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
    1, 3, 4 and H x W are one). Folders are expanded (sorted) and their images are named by their path relative
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
    if array.ndim == 4:
        return True
    return array.ndim == 3 and array.shape[-1] not in (1, 3, 4)


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
