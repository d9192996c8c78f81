"""Resize + normalise for a backbone, in numpy: what zsad feeds its backbone and a bundle's graph alike.

Images are resized to a square ``size`` x ``size`` without cropping: a defect at the border must stay visible, and
the anomaly map is later resized back onto the full original frame (the published protocols resize MVTec/VisA
images the same way). zsad's ``zsad.data.preprocess.to_batch`` is this array as a torch tensor, so the runtime's
graph sees bitwise the input the eager backbone sees.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

RESAMPLING = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def normalized_batch(images: list[Image.Image], size: int, mean: tuple[float, ...], std: tuple[float, ...],
                     resample: str = "bicubic") -> np.ndarray:
    """[B, 3, size, size] float32 array from RGB PIL images: resized, scaled to [0, 1], minus mean, over std.

    resample: "bicubic" (CLIP's preprocessing, the default) or "bilinear" (torchvision's ``Resize`` default, which
    the official MuSc code uses for DINO backbones).
    """
    if resample not in RESAMPLING:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLING)}, got {resample!r}")
    arrays = [
        np.asarray(image if image.size == (size, size) else image.resize((size, size), RESAMPLING[resample]),
                   dtype=np.uint8)
        for image in images
    ]
    batch = np.stack(arrays).transpose(0, 3, 1, 2).astype(np.float32, order="C") / np.float32(255.0)
    batch -= np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    batch /= np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    return batch


@dataclass(frozen=True)
class Preprocess:
    """A bundle's preprocessing: input size, resize rule and the backbone's normalisation."""

    input_size: int
    resize: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.resize not in RESAMPLING:
            raise ValueError(f"resize must be one of {', '.join(RESAMPLING)}, got {self.resize!r}")

    def batch(self, images: list[Image.Image]) -> np.ndarray:
        return normalized_batch(images, self.input_size, self.mean, self.std, self.resize)
