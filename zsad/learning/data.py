"""Training data for prompt learning: images with image labels and, where they exist, pixel masks.

Sources: every registered dataset layout (``zsad.data.layouts``), read at its training split: the *test* split
for the benchmarks, which is where MVTec/VisA keep their defects and masks, as the official AnomalyCLIP training
does, and the ``train`` split for ``datasets`` library data sets (``hf``: a ``save_to_disk`` folder, parquet
files, or a hub data set already in the local cache, with image, mask and label columns). Normal images get an
all-zero mask (they count in the pixel loss, as officially); anomalous images without a mask contribute only the
image loss (``has_mask`` False).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from zsad.errors import DatasetError, ZsadError


@dataclass
class TrainItem:
    image: Any  # path or PIL image
    label: int  # 0 normal, 1 anomalous
    mask: Any = None  # path, PIL image, array, or None
    category: str = "object"

    @property
    def has_mask(self) -> bool:
        return self.label == 0 or self.mask is not None


def layout_items(kind: str, root: str | Path, categories: Sequence[str] | None = None, split: str | None = None,
                 **options) -> list[TrainItem]:
    """The labelled images of a data set in a registered layout (``zsad.data.layouts``), from ``split`` or else the
    layout's declared ``training_split`` ("test" unless declared otherwise); ``options`` are the layout's."""
    from zsad.data.layouts import LAYOUTS, load_samples

    if split is None:
        split = LAYOUTS.entry(kind).info.get("training_split", "test") if kind in LAYOUTS else "test"
    sets = load_samples(kind, root, categories, split=split, **options)
    items = [TrainItem(s.path, int(s.label), s.mask_path, s.category) for samples in sets.values()
             for s in samples if s.label is not None]
    if not items:
        raise DatasetError(f"{root}: no labelled images for training (kind {kind}, categories {categories or 'all'})")
    return items


def hf_items(source: str | Path, split: str = "train", cache_dir: str | Path | None = None) -> list[TrainItem]:
    """Items from a ``datasets`` data set (the ``hf`` layout: a ``save_to_disk`` folder, parquet file(s), or a hub
    name in the local cache); embedded images are written once to ``cache_dir`` as that layout does."""
    return layout_items("hf", source, split=split, cache_dir=cache_dir)


def _open(value: Any, where: str) -> Image.Image:
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, np.ndarray):
        return Image.fromarray(value)
    if isinstance(value, dict) and value.get("bytes") is not None:  # datasets Image feature, undecoded
        import io

        return Image.open(io.BytesIO(value["bytes"]))
    if isinstance(value, dict) and value.get("path"):
        value = value["path"]
    try:
        return Image.open(value)
    except (OSError, ValueError) as error:
        raise ZsadError(f"{where}: cannot open {value!r} ({error})") from None


class TrainDataset(torch.utils.data.Dataset):
    """(image [3, S, S] normalised for the backbone, mask [S, S] in {0, 1}, has_mask, label).

    Images are resized to S x S bicubic (as zsad's inference and AnomalyCLIP's ``Resize((S, S), BICUBIC)``);
    masks bilinearly then thresholded at 0.5, as the official ``target_transform`` + ``gt > 0.5`` does.
    """

    def __init__(self, items: list[TrainItem], size: int, mean: Sequence[float], std: Sequence[float]):
        self.items = items
        self.size = size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        from zsad.data.images import to_rgb

        item = self.items[index]
        where = f"training image {index} ({item.image if not isinstance(item.image, Image.Image) else 'PIL'})"
        image = to_rgb(_open(item.image, where), where).resize((self.size, self.size), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255.0)
        x = (x - self.mean) / self.std
        if item.label == 0 or item.mask is None:
            mask = torch.zeros(self.size, self.size)
        else:
            pil = _open(item.mask, f"mask of {where}")
            grey = np.asarray(pil.convert("L"), dtype=np.float32) / 255.0
            grey = Image.fromarray(grey, mode="F").resize((self.size, self.size), Image.BILINEAR)
            mask = (torch.from_numpy(np.asarray(grey, dtype=np.float32).copy()) > 0.5).float()
        return x, mask, torch.tensor(item.has_mask), torch.tensor(item.label)
