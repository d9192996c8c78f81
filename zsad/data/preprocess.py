"""Resize + normalise for a backbone.

Images are resized to a square ``size`` x ``size`` without cropping: a defect at the border must stay visible, and
the anomaly map is later resized back onto the full original frame (the published protocols resize MVTec/VisA
images the same way).
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


RESAMPLING = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def to_batch(images: list[Image.Image], size: int, mean: tuple[float, ...], std: tuple[float, ...],
             resample: str = "bicubic") -> torch.Tensor:
    """[B, 3, size, size] float32 tensor from RGB PIL images.

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
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return batch.sub_(mean_t).div_(std_t)
