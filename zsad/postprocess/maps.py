"""Post-processing on tensors, for training: the Gaussian and the upsampling to the input size, in torch.

Results and the runtime compute full-size maps with ``MapPostprocess`` (``zsad_runtime.postprocess``, numpy, the one
implementation that ``AnomalyResult.anomaly_map`` runs, re-exported here). Training needs the same smoothing on
tensors (AnomalyCLIP's official map at input size, ``zsad.scoring.anomalyclip.full_resolution``), on the device and
inside a batch, so the tensor version stays here; ``tests/runtime/test_postprocess.py`` proves the two equal.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from zsad_runtime.postprocess import MapPostprocess

__all__ = ["MapPostprocess", "gaussian_blur", "smooth"]


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
