"""Resize + normalise for a backbone: the numpy batch of the torch-free runtime (``zsad_runtime.preprocess``, one
implementation, so a bundle's graph sees bitwise what the eager backbone sees) as a torch tensor."""
from __future__ import annotations

import torch
from PIL import Image
from zsad_runtime.preprocess import RESAMPLING, normalized_batch

__all__ = ["RESAMPLING", "to_batch"]


def to_batch(images: list[Image.Image], size: int, mean: tuple[float, ...], std: tuple[float, ...],
             resample: str = "bicubic") -> torch.Tensor:
    """[B, 3, size, size] float32 tensor from RGB PIL images (``zsad_runtime.preprocess.normalized_batch``)."""
    return torch.from_numpy(normalized_batch(images, size, mean, std, resample))
