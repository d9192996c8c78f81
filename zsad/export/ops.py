"""Export-friendly equivalents of the few eager steps that a graph exporter cannot take as they are.

Everything else the graphs compute is the eager code itself (``score_text``, ``anomalyclip_scores``,
``reference.image_scores``, the backbones' forward). Two eager steps are written for bounded memory on an unbounded
number of images, with Python loops whose trip count depends on the batch size; an exported graph has a symbolic
batch size, so such a loop cannot be traced (and an unrolled trace would be wrong for every other batch size). A
third exports as written but badly. Each replacement below computes the same numbers, and
``tests/export/test_ops.py`` proves it against the eager function:

- ``window_embeddings``: ``CLIPBackbone.window_embeddings`` walks the windows of all images in chunks of
  ``window_batch`` sequences. Here all windows of the batch are gathered at once (one [B * n_windows, k*k + 1, W]
  tensor per window size), which is one batched pass through the same blocks. Memory grows with the batch:
  ``n_windows * (k*k + 1)`` tokens per image and size, 2,670 for ViT-B-16-plus-240 at 240 px (k = 2, 3), i.e.
  ~10 MB of fp32 activations per image at a block's input and 4x that inside its MLP.
- ``nearest_distances``: ``zsad.scoring.reference.nearest_distances`` walks queries *and* memory in blocks. Here the
  queries of a batch are one block (their number is symbolic) and the memory is walked in blocks of ``chunk_size``
  rows when its size is a constant (baked memory: a loop over constants, unrolled at export); a memory given as a
  graph input has a symbolic size and is one block. The key whose minimum picks the neighbour, the running minimum
  and, for L2, the direct recomputation of ``||q - m||`` are the eager ones. Peak extra memory is one
  [B * h * w, chunk_size] block (64 MB for 8 images of 32 x 32 patches at 2048), or [B * h * w, N] for a memory
  given as an input.
- ``harmonic_aggregation``: WinCLIP's eager aggregation adds each window's reciprocal score into the k x k patches
  it covers with in-place slice additions, which export as ScatterND with its index arithmetic: about 50 nodes per
  addition, 1,459 nodes for a 4-block WinCLIP graph, against 700 with the padded sums here (export 2x faster).
  The same additions in the same order; adding a padded 0 is exact, so the result is bitwise the eager one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zsad.errors import ZsadError
from zsad.scoring.reference import METRICS


def window_embeddings(backbone, embedded: torch.Tensor, grid: tuple[int, int], size: int) -> torch.Tensor:
    """[B, h - size + 1, w - size + 1, D] WinCLIP window embeddings of ``CLIPBackbone.window_embeddings``, all
    windows of the batch in one pass (see the module docstring)."""
    from zsad.backbones.clip import window_patch_index

    visual = backbone.model.visual
    b, _, width = embedded.shape
    index = window_patch_index(grid, size) + 1  # +1: skip the CLS position
    n_windows = index.shape[0]
    sequence_index = torch.cat([index.new_zeros(n_windows, 1), index], dim=1).to(embedded.device)
    x = embedded[:, sequence_index].reshape(-1, size * size + 1, width)  # [B * n_windows, k*k + 1, W]
    x = visual.ln_pre(x)
    for block in visual.transformer.resblocks:
        x = block(x)
    hk, wk = grid[0] - size + 1, grid[1] - size + 1
    return backbone.project(x[:, 0]).reshape(b, hk, wk, -1)


def clip_window_features(backbone, images: torch.Tensor, sizes: tuple[int, ...]):
    """What WinCLIP reads from ``CLIPBackbone.forward``: (image embedding [B, D], final-layer patch tokens after
    ln_post [B, h, w, W], {k: window embeddings [B, h - k + 1, w - k + 1, D]}).

    The full pass is the backbone's own (``_embed``, ln_pre, its blocks, ``image_embedding``, ln_post), without the
    layer collection and the V-V path, which WinCLIP does not read (V-V never changes the residual stream).
    """
    visual = backbone.model.visual
    embedded, grid = backbone._embed(images)
    x = visual.ln_pre(embedded)
    for block in visual.transformer.resblocks:
        x = block(x)
    b, _, width = x.shape
    patches = visual.ln_post(x[:, 1:]).reshape(b, grid[0], grid[1], width)
    windows = {k: window_embeddings(backbone, embedded, grid, k) for k in sizes}
    return backbone.image_embedding(x[:, 0]), patches, windows


def nearest_distances(queries: torch.Tensor, memory: torch.Tensor, metric: str,
                      chunk_size: int | None = 2048) -> torch.Tensor:
    """Distance [Q] from each row of ``queries`` [Q, C] to its nearest row of ``memory`` [N, C]: the numbers of
    ``zsad.scoring.reference.nearest_distances`` (cosine: memory rows must be unit length; queries are normalised
    here). ``chunk_size`` blocks a constant-size memory; None (or a symbolic memory size) searches it at once."""
    if metric not in METRICS:
        raise ZsadError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    q = queries.float()
    if metric == "cosine":
        q = F.normalize(q, dim=1)
    n = memory.shape[0]
    step = n if chunk_size is None or not isinstance(n, int) else chunk_size
    best = best_idx = None
    for start in range(0, n, step) if isinstance(n, int) else [0]:
        m = memory[start : start + step] if isinstance(n, int) else memory
        if metric == "cosine":
            key = -(q @ m.T)
        else:
            key = torch.addmm(m.pow(2).sum(dim=1).unsqueeze(0), q, m.T, alpha=-2.0)
        val, idx = key.min(dim=1)
        if best is None:
            best, best_idx = val, idx + start
        else:
            better = val < best
            best = torch.where(better, val, best)
            best_idx = torch.where(better, idx + start, best_idx)
    if metric == "cosine":
        return (1.0 + best).clamp(0.0, 2.0)
    return (q - memory[best_idx]).pow(2).sum(dim=1).sqrt()



def window_layout_sum(values: torch.Tensor, size: int) -> torch.Tensor:
    """[B, h, w]: for each patch, the sum of ``values`` [B, h - size + 1, w - size + 1] over the size x size
    windows that cover it, added in the order of ``zsad.scoring.winclip.harmonic_aggregation`` (adding a padded 0
    is exact, so the sums are bitwise the eager ones)."""
    total = None
    for dy in range(size):
        for dx in range(size):
            shifted = F.pad(values, (dx, size - 1 - dx, dy, size - 1 - dy))
            total = shifted if total is None else total + shifted
    return total


def harmonic_aggregation(window_scores: torch.Tensor, size: int) -> torch.Tensor:
    """``zsad.scoring.winclip.harmonic_aggregation`` with padded sums instead of in-place slice additions: [B, h, w]
    harmonic mean, per patch, of the scores of the windows covering it (0 where a covering score is 0)."""
    _, hk, wk = window_scores.shape
    ones = torch.ones(1, hk, wk, dtype=window_scores.dtype, device=window_scores.device)
    return window_layout_sum(ones, size) / window_layout_sum(window_scores.reciprocal(), size)
