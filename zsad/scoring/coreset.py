"""Greedy coreset subsampling of a patch memory (PatchCore, Roth et al., CVPR 2022).

A memory of k reference images holds k * h * w patches per layer, most of them near-duplicates (background,
repeated texture). Greedy farthest-point selection keeps a subset whose covering radius (the largest distance
from any patch to its nearest kept patch) is within a factor 2 of the best possible subset of that size (exactly so in the projection below, approximately
in the original space), so the nearest-neighbour distance of a test patch grows by at most about that radius while
search gets ``1 / ratio`` times cheaper.

Decisions where the paper and its public implementations leave room:

- Distances are Euclidean in a seeded Gaussian random projection to ``projection_dim`` dimensions
  (Johnson-Lindenstrauss: pairwise distances are kept up to a small factor, and each selection step costs
  ``M * projection_dim`` instead of ``M * C``). Features that are already no wider than ``projection_dim`` are
  used as they are: projecting up would only add noise.
- The first point is the one farthest from the centroid, not a random one: the 2-approximation holds for any
  start, and a deterministic start means the result depends only on ``x`` and ``seed``. The seed only draws the
  projection.
- Ties (e.g. duplicate patches) go to the lowest index, and an already selected point is never selected again,
  so the result always has ``n`` distinct indices.
"""
from __future__ import annotations

import torch

from zsad.errors import ZsadError


def random_projection(x: torch.Tensor, projection_dim: int = 128, seed: int = 0) -> torch.Tensor:
    """``x`` [M, C] mapped to [M, min(C, projection_dim)] float32 by a seeded Gaussian matrix.

    Entries are N(0, 1 / projection_dim), so squared lengths are preserved in expectation. The matrix is drawn on
    the CPU from its own generator, so the projection is the same on every device and does not touch the global
    random state.
    """
    x = x.float()
    c = x.shape[1]
    if c <= projection_dim:
        return x
    gen = torch.Generator().manual_seed(seed)
    matrix = torch.randn(c, projection_dim, generator=gen) / projection_dim**0.5
    return x @ matrix.to(x.device)


def greedy_coreset(x: torch.Tensor, n: int, projection_dim: int = 128, seed: int = 0) -> torch.Tensor:
    """Indices [n] (int64, in selection order) of a greedy farthest-point subset of the rows of ``x`` [M, C].

    Each step adds the row farthest (Euclidean, in the random projection) from every row selected so far; the
    running minimum distance is updated by one matrix-vector product per step, so time is O(M * n * projection_dim) and
    extra memory O(M). ``n >= M`` returns all rows in their original order.
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise ZsadError(f"greedy_coreset needs a non-empty [M, C] feature matrix, got shape {tuple(x.shape)}")
    m = x.shape[0]
    if n < 1:
        raise ZsadError(f"greedy_coreset: n={n} must be at least 1; use a larger coreset_ratio")
    if n >= m:
        return torch.arange(m, device=x.device)

    z = random_projection(x, projection_dim, seed)
    # |z_i - c|^2 = |z_i|^2 - 2 z_i.c + |c|^2: one matrix-vector product per step, ~20x faster on a CPU than
    # forming z - c; the rounding (~1e-6 relative) only matters for near-ties, where either choice is as good.
    sq_norms = z.pow(2).sum(dim=1)
    selected = torch.empty(n, dtype=torch.long, device=z.device)
    # Indices stay 1-element tensors so the loop never waits on the device (no .item() per step on a GPU).
    nxt = torch.argmax((z - z.mean(dim=0, keepdim=True)).pow(2).sum(dim=1)).view(1)
    min_dist = torch.full((m,), float("inf"), device=z.device)
    for i in range(n):
        if i > 0:
            nxt = torch.argmax(min_dist).view(1)
        selected[i] = nxt[0]
        center = z.index_select(0, nxt)[0]
        dist = torch.addmv(sq_norms + center.dot(center), z, center, alpha=-2.0)
        torch.minimum(min_dist, dist, out=min_dist)
        min_dist.index_fill_(0, nxt, -1.0)  # never pick a selected row again, even if all others are at distance 0
    return selected
