"""The arithmetic of post-processing: patch-grid maps to per-image maps at the original resolution.

Default (WinCLIP, APRIL-GAN, AnomalyCLIP): bilinear upsampling to the backbone's input size, Gaussian smoothing
there (sigma 4 px, so the amount of smoothing relative to the object does not depend on how large the user's
files are), then a resize onto each image's original frame. MuSc's official code instead upsamples with
``align_corners=True`` and no Gaussian; AnomalyDINO's (``dists2map``) upsamples the grid straight to the original
frame and smooths there (``smooth_at="original"``, scipy's border: ``padding="symmetric"``). ``MapPostprocess``
holds these choices so a preset can name them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from zsad.postprocess import SMOOTH_AT, PostprocessConfig


def gaussian_blur(maps: torch.Tensor, sigma: float, padding: str = "mirror") -> torch.Tensor:
    """Separable Gaussian blur of [B, 1, H, W] with the usual 4-sigma truncation.

    padding: "mirror" (``d c b | a b c d``: torch's reflect, scipy's ``mode='mirror'``) or "symmetric" (``c b a | a b
    c d``: scipy's default ``mode='reflect'``, which AnomalyCLIP's ``gaussian_filter`` uses). They differ only
    within 4 sigma of the border.
    Two 1-D passes cost 2 * (8 sigma + 1) operations per pixel instead of (8 sigma + 1)^2 for a 2-D kernel
    (66 vs 1089 at sigma 4), which keeps post-processing far below the backbone's cost.
    """
    radius = int(4 * sigma + 0.5)
    if radius == 0:
        return maps
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=maps.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(maps.dtype)
    if padding == "mirror":
        padded = F.pad(maps, (radius, radius, radius, radius), mode="reflect")
    elif padding == "symmetric":
        padded = _symmetric_pad(_symmetric_pad(maps, radius, 2), radius, 3)
    else:
        raise ValueError(f"padding must be 'mirror' or 'symmetric', got {padding!r}")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(rows, kernel.view(1, 1, -1, 1))


def _symmetric_pad(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    if radius > n:
        raise ValueError(f"Gaussian radius {radius} exceeds the map size {n}; use a smaller sigma")
    return torch.cat([x.narrow(dim, 0, radius).flip(dim), x, x.narrow(dim, n - radius, radius).flip(dim)], dim)


def smooth(maps: torch.Tensor, input_size: int, sigma: float = 4.0, align_corners: bool = False,
           padding: str = "mirror") -> torch.Tensor:
    """[B, h, w] patch maps -> [B, S, S] bilinearly upsampled to the input size and Gaussian-smoothed."""
    up = F.interpolate(maps.float().unsqueeze(1), size=(input_size, input_size), mode="bilinear",
                       align_corners=align_corners)
    if sigma > 0:
        up = gaussian_blur(up, sigma, padding)
    return up.squeeze(1)


def to_original_sizes(maps: torch.Tensor, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """[B, S, S] -> one float32 array (height, width) per image, for sizes given as (width, height)."""
    out = []
    for anomaly_map, (width, height) in zip(maps, sizes):
        resized = F.interpolate(anomaly_map[None, None], size=(height, width), mode="bilinear", align_corners=False)
        out.append(resized[0, 0].cpu().numpy().astype(np.float32, copy=False))
    return out


def smooth_original(maps: torch.Tensor, size: tuple[int, int], sigma: float = 4.0, align_corners: bool = False,
                    padding: str = "mirror") -> torch.Tensor:
    """[B, h, w] patch maps -> [B, height, width] for ``size`` = (width, height): bilinear straight to the original
    frame, Gaussian with ``sigma`` px of that frame (AnomalyDINO's ``dists2map``)."""
    width, height = size
    up = F.interpolate(maps.float().unsqueeze(1), size=(height, width), mode="bilinear", align_corners=align_corners)
    if sigma > 0:
        up = gaussian_blur(up, sigma, padding)
    return up.squeeze(1)


@dataclass(frozen=True)
class MapPostprocess:
    """How a patch-grid map becomes an image map: upsample to ``input_size`` (bilinear, ``align_corners``),
    Gaussian with ``sigma`` px there (0 = none; ``padding`` at the border, see ``gaussian_blur``), then bilinear
    resize to the requested size. ``smooth_at="original"`` instead upsamples straight to the requested size and
    smooths there (sigma in pixels of that size), as AnomalyDINO's official code does."""

    input_size: int
    sigma: float = 4.0
    align_corners: bool = False
    padding: str = "mirror"
    smooth_at: str = "input"

    def __post_init__(self) -> None:
        if self.smooth_at not in SMOOTH_AT:
            raise ValueError(f"smooth_at must be one of {', '.join(SMOOTH_AT)}, got {self.smooth_at!r}")

    @classmethod
    def of(cls, config: PostprocessConfig, input_size: int) -> "MapPostprocess":
        """The post-processing of a resolved ``PostprocessConfig`` (every field set) at a backbone's input size."""
        return cls(int(input_size), float(config.sigma), bool(config.align_corners), config.padding, config.smooth_at)

    def apply(self, grid_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        grid = torch.from_numpy(np.asarray(grid_map, dtype=np.float32))[None]
        if self.smooth_at == "original":
            return smooth_original(grid, size, self.sigma, self.align_corners, self.padding)[0].numpy()
        up = smooth(grid, self.input_size, self.sigma, self.align_corners, self.padding)
        if (size[1], size[0]) == tuple(up.shape[1:]):
            return up[0].numpy()
        return to_original_sizes(up, [size])[0]
