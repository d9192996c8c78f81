"""From patch-grid maps to per-image maps at the original resolution.

Smoothing happens at the backbone's input resolution (sigma 4 px there, the setting of WinCLIP, APRIL-GAN and
AnomalyCLIP), so the amount of smoothing relative to the object does not depend on how large the user's files are;
the smoothed map is then resized onto each image's original frame.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur


def smooth(maps: torch.Tensor, input_size: int, sigma: float = 4.0) -> torch.Tensor:
    """[B, h, w] patch maps -> [B, S, S] bilinearly upsampled to the input size and Gaussian-smoothed."""
    up = F.interpolate(maps.float().unsqueeze(1), size=(input_size, input_size), mode="bilinear", align_corners=False)
    if sigma > 0:
        radius = int(4 * sigma + 0.5)  # the usual 4-sigma truncation, as scipy's gaussian_filter
        up = gaussian_blur(up, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])
    return up.squeeze(1)


def to_original_sizes(maps: torch.Tensor, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """[B, S, S] -> one float32 array (height, width) per image, for sizes given as (width, height)."""
    out = []
    for anomaly_map, (width, height) in zip(maps, sizes):
        resized = F.interpolate(anomaly_map[None, None], size=(height, width), mode="bilinear", align_corners=False)
        out.append(resized[0, 0].cpu().numpy().astype(np.float32, copy=False))
    return out
