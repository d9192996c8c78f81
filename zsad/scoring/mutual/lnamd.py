"""LNAMD: local neighbourhood aggregation with multiple degrees (MuSc, step 1).

A single ViT token sees a 14 or 16 pixel patch; a defect larger than that is better matched by tokens that
summarise their neighbourhood. LNAMD replaces each token by the mean of its r x r neighbourhood, for several r.

Decisions, checked against the official code (xrli-U/MuSc, models/modules/_LNAMD.py):

- LayerNorm runs over the whole token map of one image and one layer, i.e. over (C, h, w) together, with no
  affine parameters (MuSc builds a fresh ``nn.LayerNorm([C, h, w])``, whose weight is 1 and bias 0) and
  torch's default eps 1e-5. It removes the per-layer offset and scale so that layers can be compared.
- The neighbourhood mean counts the zero padding: MuSc unfolds r x r windows with zero padding (r - 1) / 2 and
  then average-pools the C * r * r values of each window into C values, which averages each channel over its r*r
  window entries, padded zeros included. Border tokens are therefore pulled towards 0 (the LayerNorm mean);
  this equals ``avg_pool2d(..., count_include_pad=True)``. Padding happens after LayerNorm, as in MuSc. With
  the unit normalisation below, the divisor (r*r or the number of in-image neighbours) is only a per-token scale
  and drops out; it matters only with ``l2_normalize=False``.
- After aggregation each token is unit-normalised (``features /= features.norm(dim=-1)`` in MuSc's
  ``models/musc.py``); ``l2_normalize=False`` skips it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zsad.errors import ZsadError

LAYER_NORM_EPS = 1e-5


def lnamd(
    tokens: torch.Tensor,
    r: int,
    *,
    l2_normalize: bool = True,
    out_dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    chunk: int = 16,
) -> torch.Tensor:
    """Aggregate token maps ``[..., h, w, C]`` with an r x r neighbourhood mean; returns the same shape.

    The leading dimensions (images, layers) are independent maps. Work is done in float32, ``chunk`` maps at a
    time, so a float16 input is never converted whole; the result is written in ``out_dtype`` (default float32)
    on ``device`` (default the input's).
    """
    if tokens.dim() < 3:
        raise ZsadError(f"LNAMD needs token maps [..., h, w, C], got shape {tuple(tokens.shape)}")
    if r < 1 or r % 2 == 0:
        raise ZsadError(f"LNAMD radius r={r} must be odd and positive (1, 3, 5, ...)")
    h, w, c = tokens.shape[-3:]
    maps = tokens.reshape(-1, h, w, c)
    device = tokens.device if device is None else torch.device(device)
    out = torch.empty(maps.shape, dtype=out_dtype or torch.float32, device=device)
    for start in range(0, maps.shape[0], max(1, chunk)):
        x = maps[start : start + chunk].to(device=device, dtype=torch.float32)
        out[start : start + chunk] = _aggregate(x, r, l2_normalize)
    return out.reshape(tokens.shape)


def _aggregate(x: torch.Tensor, r: int, l2_normalize: bool) -> torch.Tensor:
    """float32 maps [n, h, w, C] -> normalised, aggregated maps [n, h, w, C]."""
    x = F.layer_norm(x, x.shape[-3:], eps=LAYER_NORM_EPS)
    if r > 1:
        pooled = F.avg_pool2d(x.permute(0, 3, 1, 2), r, stride=1, padding=r // 2, count_include_pad=True)
        x = pooled.permute(0, 2, 3, 1)
    if l2_normalize:
        x = F.normalize(x, dim=-1)
    return x
