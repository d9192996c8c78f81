"""The mutual scorer: LNAMD -> MSM per (layer, r) -> mean map -> max -> RsCIN.

Memory plan (the brief's large case: N = 1000 images, ViT-L-14 at 518 px, 37 x 37 = 1369 tokens, 4 layers x
1024 dims; sizes in GB = 1e9 bytes):

- input tokens, held once by the caller: 1000 * 1369 * 1024 * 4 layers * 2 bytes = 11.2 GB in float16
  (22.4 GB in float32 would not fit a 24 GB machine; pass float16 or bfloat16).
- aggregated features of one (layer, r) at a time, kept in the input dtype: 2.8 GB in float16.
- squared norms, [N, P] float32: 5.5 MB; accumulated maps [N, P] float64: 11 MB.
- LNAMD works 16 images at a time in float32: ~0.1 GB per temporary.
- MSM buffers, bounded by ``memory_mb`` (default 2048 MB): auto_chunks gives q = 32 query images (within half
  the budget: minima 32 * 1369 * 1000 * 4 = 175 MB, top-k values + indices 32 * 1369 * 300 * 12 = 158 MB, float32
  query copy 179 MB) and ref_chunk = 2 images (within a quarter: product buffer 32 * 1369 * 2 * 1369 * 4 = 480 MB,
  float32 reference copy 11 MB); ~1 GB in all.
Total ~ 11.2 + 2.8 + ~1.2 = 15.2 GB. For fixed chunks only the minima (linear in N) grow with N, never N^2.
Checked on the 2-core CPU with one layer of that shape (N = 1000, float16, r = 3): peak RSS 6.1 GB after LNAMD
(2.8 GB tokens + 2.8 GB aggregated + ~0.5 GB interpreter), 6.6 GB after scoring a query block.

The work is 2 * N^2 * P^2 * C flops per (layer, r): 3.8 PFLOP here, 46 PFLOP for 4 layers x 3 radii, i.e. days on
a ~100 GFLOP/s CPU and minutes on a GPU; ``max_refs`` / ``groups`` (plan.py) bound it.

Image score before RsCIN: by default the max of the mean map on the patch grid, which keeps this scorer
independent of the output size. The official code takes the max after bilinear upsampling to the input size with
align_corners=True (values are convex combinations of grid values, so it is at most the grid max);
``image_score_from="upsampled_max"`` does that, from the float64 mean map as the official code (``output.py``).

Several processes (``state``, ``zsad.parallel``): every process holds all features (each query is compared with
every other image) and computes the same aggregated features; the query blocks of ``plan.plan_blocks`` are split
between processes (contiguous shares). Each process returns a full [N, P] score tensor that is zero outside its own
queries; one all-reduce sum gives every process the complete maps. Adding zeros is exact, so the result equals the
single-process one up to the float32 rounding of differently shaped matrix products.
"""
from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from zsad.errors import ZsadError
from zsad.parallel import my_share, sum_across_processes
from zsad.scoring.base import AnomalyMaps
from zsad.scoring.mutual.config import MutualConfig
from zsad.scoring.mutual.lnamd import lnamd
from zsad.scoring.mutual.msm import default_query_chunk, msm_blocks
from zsad.scoring.mutual.output import upsampled_max
from zsad.scoring.mutual.plan import plan_blocks
from zsad.scoring.mutual.rscin import rscin

_STORAGE_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def mutual_scores(
    patch_tokens: torch.Tensor,
    cls: torch.Tensor | None = None,
    config: MutualConfig | None = None,
    *,
    state: Any | None = None,
    progress: bool = False,
) -> AnomalyMaps:
    """Score a batch of unlabeled images against each other.

    patch_tokens: [N, L, h, w, C] from one backbone pass (any float dtype; float16 halves the memory).
    cls: [N, D] image embeddings for RsCIN, or None to keep the raw max-of-map scores.
    progress: a progress bar over (layer, radius, query block) steps, for long runs.
    state: an accelerate ``PartialState``/``Accelerator`` to split the work between processes; every process
        must pass the same tokens and gets the same result.
    Returns maps [N, h, w] on the patch grid (float32) and scores [N], on the tokens' device.
    """
    config = config or MutualConfig()
    _check_inputs(patch_tokens, cls)
    n_images, n_layers, h, w, dim = patch_tokens.shape
    n_patches = h * w
    if config.device is not None:
        device = torch.device(config.device)
    elif state is not None:
        device = torch.device(state.device)
    else:
        device = patch_tokens.device
    store = patch_tokens.dtype if patch_tokens.dtype in _STORAGE_DTYPES else torch.float32

    query_chunk = config.query_chunk or default_query_chunk(
        n_images, n_patches, dim, config.interval, config.memory_mb, config.max_refs, config.groups or 1
    )
    blocks = plan_blocks(
        n_images, query_chunk=query_chunk, max_refs=config.max_refs, groups=config.groups or 1, seed=config.seed
    )
    mine = my_share(blocks, state)

    total = torch.zeros(n_images, n_patches, dtype=torch.float64, device=device)
    bar = tqdm(total=n_layers * len(config.radii) * len(mine), desc="mutual scoring", unit="block",
               disable=not progress)
    for layer in range(n_layers):
        for r in config.radii:
            z = lnamd(patch_tokens[:, layer], r, l2_normalize=config.l2_normalize, out_dtype=store, device=device)
            total += msm_blocks(
                z.view(n_images, n_patches, dim), mine, config.interval,
                ref_chunk=config.ref_chunk, memory_mb=config.memory_mb, on_block=lambda: bar.update(1),
            )
            del z
    bar.close()
    total = sum_across_processes(total, state) / (n_layers * len(config.radii))

    grid = total.view(n_images, h, w)
    maps = grid.float()
    if config.image_score_from == "upsampled_max":
        if config.upsample_size is None:
            raise ZsadError("image_score_from='upsampled_max' needs upsample_size (the backbone's input size, e.g. "
                            "518); the mutual scorer fills it in from the backbone")
        scores = upsampled_max(grid, config.upsample_size, align_corners=config.upsample_align_corners).float()
    else:
        scores = maps.flatten(1).amax(dim=1)
    if cls is not None and config.rscin_k is not None:
        scores = rscin(
            scores, cls.to(device), config.rscin_k,
            cls_mode=config.rscin_cls, clamp_negative=config.rscin_clamp_negative,
        )
    return AnomalyMaps(maps=maps.to(patch_tokens.device), scores=scores.to(patch_tokens.device), source="mutual")


def _check_inputs(patch_tokens: torch.Tensor, cls: torch.Tensor | None) -> None:
    if patch_tokens.dim() != 5 or not patch_tokens.is_floating_point():
        raise ZsadError(
            f"mutual scoring needs float patch tokens [N, L, h, w, C], got {patch_tokens.dtype} "
            f"{tuple(patch_tokens.shape)}; pass Features.patch_tokens"
        )
    if patch_tokens.shape[0] < 2:
        raise ZsadError(
            f"mutual scoring needs at least 2 images in a batch, got {patch_tokens.shape[0]}; "
            "score more images together or use the text/few-shot scorer"
        )
    if cls is not None and (cls.dim() != 2 or cls.shape[0] != patch_tokens.shape[0]):
        raise ZsadError(
            f"image embeddings must be [N, D] with N = {patch_tokens.shape[0]} images, got {tuple(cls.shape)}"
        )
