"""MuSc's output path: from the mean patch map to the pixel map and the image score fed to RsCIN.

What the official code does (xrli-U/MuSc, models/musc.py, ``make_category_data``):

- the mean of the MSM maps over layers and radii (float64) is upsampled bilinearly to the input size with
  ``align_corners=True`` and no smoothing (lines 223-226); that upsampled map is the pixel-level prediction
  (``pr_px``, line 254), compared with masks resized to the same input size;
- the image score is the max of the *upsampled* map (line 240), re-scored by RsCIN (line 248) with the k list of
  the dataset kind (lines 242-247) and the image embeddings as each backbone family gives them (lines 163-176).

The max of an ``align_corners=True`` bilinear upsampling is at most the grid max: output pixels fall between grid
points unless (S - 1) / (h - 1) is an integer (518 px over a 37-token grid: 517 / 36 is not), so the two image
scores differ by the interpolation between neighbouring tokens. ``upsampled_max`` computes the official one
without keeping the upsampled maps (a few images at a time).

``official_config`` and ``official_postprocess`` name the official settings in one place, so that a preset or a
user can select them: maps then equal the official ``pr_px`` after ``official_postprocess(input_size)`` at the
input size, and image scores equal the official ``scores_cls``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zsad.errors import ZsadError
from zsad.scoring.mutual.config import MutualConfig, rscin_k_for
from zsad.postprocess.maps import MapPostprocess

# Backbone families whose image embeddings the official code L2-normalises before RsCIN (CLIP, line 175); every
# DINO family (dino, dinov2) feeds the raw final-LayerNorm CLS token (lines 163-172).
NORMALIZED_CLS_FAMILIES = ("clip",)


def upsampled_max(
    maps: torch.Tensor, size: int, *, align_corners: bool = True, chunk: int = 16
) -> torch.Tensor:
    """Max of each map [N, h, w] after bilinear upsampling to size x size; [N] in the maps' float dtype.

    Works ``chunk`` maps at a time (float64 maps at 518 px: 2.1 MB per map), so memory does not grow with N.
    """
    if maps.dim() != 3:
        raise ZsadError(f"upsampled_max needs maps [N, h, w], got {tuple(maps.shape)}")
    dtype = maps.dtype if maps.is_floating_point() else torch.float32
    out = torch.empty(maps.shape[0], dtype=dtype, device=maps.device)
    for start in range(0, maps.shape[0], max(1, chunk)):
        block = maps[start : start + chunk].to(dtype).unsqueeze(1)
        up = F.interpolate(block, size=(size, size), mode="bilinear", align_corners=align_corners)
        out[start : start + chunk] = up.flatten(1).amax(dim=1)
    return out


def rscin_cls_mode(family: str) -> str:
    """How the official code hands image embeddings of a backbone family to RsCIN: "normalized" or "raw"."""
    family = family.lower()
    if family in NORMALIZED_CLS_FAMILIES:
        return "normalized"
    if "dino" in family:
        return "raw"
    raise ZsadError(
        f"no official MuSc CLS handling is known for backbone family {family!r}; the official code covers "
        f"CLIP (normalised embeddings) and DINO/DINOv2 (raw CLS tokens)"
    )


def official_config(
    input_size: int, *, family: str = "clip", dataset: str = "mvtec", **overrides
) -> MutualConfig:
    """The ``MutualConfig`` of the official MuSc code for a backbone family and a dataset kind.

    input_size: the backbone's input size (518 for the paper's ViT-L-14-336 setting); the image score is the max
        of the map upsampled to it. family: the backbone's family ("clip", "dinov2", "dino"). dataset: the dataset
        kind whose RsCIN k list to use ("mvtec", "visa", "btad"). ``overrides`` replace any other field
        (memory_mb, groups, max_refs, device, ...).
    """
    settings = dict(
        radii=(1, 3, 5),  # configs/musc.yaml line 12: r_list: [1, 3, 5]
        interval=(0.0, 0.3),  # models/musc.py line 211: MSM(..., topmin_min=0, topmin_max=0.3)
        rscin_k=rscin_k_for(dataset),  # models/musc.py lines 242-247
        image_score_from="upsampled_max",  # models/musc.py lines 225-226 and 240
        upsample_size=int(input_size),
        upsample_align_corners=True,
        rscin_cls=rscin_cls_mode(family),  # models/musc.py lines 163-176
        rscin_clamp_negative=False,  # models/modules/_RsCIN.py: MMO keeps negative entries
    )
    settings.update(overrides)
    return MutualConfig(**settings)


def official_postprocess(input_size: int) -> MapPostprocess:
    """Map post-processing of the official code: bilinear, align_corners=True, to the input size; no Gaussian.

    The official pixel maps live at the input size (its masks are resized to it); a resize onto the original
    image frame, which ``MapPostprocess.apply`` does when asked for another size, is zsad's addition.
    """
    return MapPostprocess(input_size=int(input_size), sigma=0.0, align_corners=True)
