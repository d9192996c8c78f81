"""MSM: mutual scoring of the patches of an unlabeled batch (MuSc, step 2).

For one (layer, r) and a patch p of image i: d_ij(p) = min_q ||f_i(p) - f_j(q)|| for each reference image j,
and the patch score is the mean of the sorted d_ij(p) from rank k_min to k_max - 1. Normal patches find a close
match in most other images; a defect finds none, so even its closest images are far.

Decisions:

- Interval: for n reference images, k_min = int(n * lo), k_max = int(n * hi), exactly as the official
  ``compute_scores_fast`` (which takes the k_max smallest values, then the k_max - k_min largest of those). The
  official code averages an empty set (NaN) when n * hi < 1; here at least one value is kept:
  k_min <= n - 1 and k_max >= k_min + 1.
- Distances are computed as ||a||^2 + ||b||^2 - 2 a.b with one matrix product per (query block, reference block),
  the minimum over the reference image's patches is taken on the squared distance (||a||^2 is added after the
  minimum, since it does not depend on b), clamped at 0, and the square root is taken only on the k_max kept
  minima. On unit-normalised features the cancellation error of this form is ~1e-7 in d^2; it shows in d
  (up to ~3e-4) only for near-duplicate patches, whose score is ~0 anyway (torch.cdist uses the same form).
- Memory: features are held once in their storage dtype (float16 stays float16); each block is converted to
  float32 when used. A query block of q images keeps its [q, P, R] minima (R candidate images) and a
  [q*P, rc*P] product buffer; ``auto_chunks`` sizes q and rc to ``memory_mb``. No buffer grows with N^2 (the minima grow
  with q * N; q >= 1, so beyond ~10^5 images a single query's minima alone exceed a 1 GB budget).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from zsad.errors import ZsadError
from zsad.scoring.mutual.plan import QueryBlock, plan_blocks

# Caps of the automatic chunk sizes: beyond these the matrix products are already efficient, and larger query
# blocks only worsen the balance between processes and the waste of max_refs windows.
MAX_QUERY_CHUNK = 32
MAX_REF_CHUNK = 256


def interval_bounds(n_refs: int, interval: tuple[float, float]) -> tuple[int, int]:
    """(k_min, k_max): ranks [k_min, k_max) of the sorted distances that are averaged."""
    lo, hi = interval
    k_min = min(int(n_refs * lo), n_refs - 1)
    k_max = min(max(int(n_refs * hi), k_min + 1), n_refs)
    return k_min, k_max


def auto_chunks(
    n_patches: int, dim: int, n_candidates: int, interval: tuple[float, float], memory_mb: float,
    max_refs: int | None = None,
) -> tuple[int, int]:
    """(query_chunk, ref_chunk) whose buffers fit ``memory_mb``.

    Half of the budget goes to the query block: per query image its float32 copy (P*C*4 bytes), its minima
    (P*R*4) and the top-k values and int64 indices (P*k_max*12). A quarter goes to the product buffer
    (q*P x rc*P float32) plus the float32 copy of the reference block (rc*P*C*4).
    """
    budget = memory_mb * 2**20
    k_max = math.ceil(n_candidates * interval[1])
    per_query = n_patches * (4 * dim + 4 * n_candidates + 12 * k_max)
    cap = MAX_QUERY_CHUNK if max_refs is None else max(1, min(MAX_QUERY_CHUNK, max_refs // 8))
    q = int(max(1, min(cap, budget * 0.5 // per_query)))
    return q, min(n_candidates, ref_chunk_for(q, n_patches, dim, memory_mb))


def default_query_chunk(
    n_images: int, n_patches: int, dim: int, interval: tuple[float, float], memory_mb: float,
    max_refs: int | None = None, groups: int = 1,
) -> int:
    """The automatic query chunk for a batch: sized for the largest candidate set a block can have."""
    group_size = -(-n_images // groups)
    n_cand = group_size if max_refs is None else min(group_size, max_refs + MAX_QUERY_CHUNK)
    return auto_chunks(n_patches, dim, n_cand, interval, memory_mb, max_refs)[0]


def ref_chunk_for(query_chunk: int, n_patches: int, dim: int, memory_mb: float) -> int:
    """Reference chunk whose product buffer and float32 reference copy fit a quarter of the budget."""
    per_ref = 4 * query_chunk * n_patches * n_patches + 4 * n_patches * dim
    return int(max(1, min(MAX_REF_CHUNK, memory_mb * 2**20 * 0.25 // per_ref)))


def squared_norms(z: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """||z||^2 over the last dim in float32, without a float32 copy of all of z."""
    out = torch.empty(z.shape[:-1], dtype=torch.float32, device=z.device)
    for start in range(0, z.shape[0], chunk):
        part = z[start : start + chunk].float()
        out[start : start + chunk] = (part * part).sum(-1)
    return out


def _rows(z: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """z[index] as a view when the indices are a contiguous ascending range (the common, unbounded case)."""
    first = int(index[0])
    if int(index[-1]) - first + 1 == len(index) and bool((index.diff() == 1).all()):
        return z[first : first + len(index)]
    return z.index_select(0, index.to(z.device))


def score_block(
    z: torch.Tensor, sq_norms: torch.Tensor, block: QueryBlock, interval: tuple[float, float], ref_chunk: int
) -> torch.Tensor:
    """Patch scores [q, P] of one query block; z is [N, P, C] (any float dtype), sq_norms [N, P] float32."""
    _, n_patches, dim = z.shape
    q, n_cand = len(block.queries), len(block.candidates)
    zq = _rows(z, block.queries).reshape(q * n_patches, dim).float()
    minima = torch.empty(q * n_patches, n_cand, dtype=torch.float32, device=z.device)
    rc_max = min(ref_chunk, n_cand)
    product = torch.empty(q * n_patches * rc_max * n_patches, dtype=torch.float32, device=z.device)
    for start in range(0, n_cand, rc_max):
        idx = block.candidates[start : start + rc_max]
        rc = len(idx)
        zr = _rows(z, idx).reshape(rc * n_patches, dim).float()
        bias = _rows(sq_norms, idx).reshape(1, rc * n_patches)
        out = product[: q * n_patches * rc * n_patches].view(q * n_patches, rc * n_patches)
        torch.addmm(bias, zq, zr.T, beta=1, alpha=-2, out=out)  # ||b||^2 - 2 a.b
        minima[:, start : start + rc] = out.view(q * n_patches, rc, n_patches).amin(dim=-1)
    del product
    minima = minima.view(q, n_patches, n_cand)
    minima += _rows(sq_norms, block.queries).unsqueeze(-1)
    minima.clamp_(min=0.0)
    minima.masked_fill_(~block.valid.to(z.device).unsqueeze(1), math.inf)
    k_min, k_max = interval_bounds(block.n_refs, interval)
    lowest = torch.topk(minima, k_max, dim=-1, largest=False, sorted=True).values
    return lowest[..., k_min:].sqrt_().mean(dim=-1)


def msm_blocks(
    z: torch.Tensor,
    blocks: Sequence[QueryBlock],
    interval: tuple[float, float] = (0.0, 0.3),
    *,
    ref_chunk: int | None = None,
    memory_mb: float = 2048.0,
    on_block=None,
) -> torch.Tensor:
    """Patch scores [N, P] (float32) for the queries of ``blocks``; rows of images in no block are 0.
    ``on_block()`` is called after each query block (progress reporting).

    Rows are independent, so scoring disjoint sets of blocks (on different processes) and summing the results
    gives exactly the result of scoring all blocks at once.
    """
    z = z.reshape(z.shape[0], -1, z.shape[-1])
    n_images, n_patches, dim = z.shape
    scores = torch.zeros(n_images, n_patches, dtype=torch.float32, device=z.device)
    if not blocks:
        return scores
    sq_norms = squared_norms(z)
    for block in blocks:
        rc = ref_chunk or ref_chunk_for(len(block.queries), n_patches, dim, memory_mb)
        scores[block.queries.to(z.device)] = score_block(z, sq_norms, block, interval, rc)
        if on_block is not None:
            on_block()
    return scores


def msm(
    z: torch.Tensor,
    interval: tuple[float, float] = (0.0, 0.3),
    *,
    query_chunk: int | None = None,
    ref_chunk: int | None = None,
    max_refs: int | None = None,
    groups: int = 1,
    seed: int = 0,
    memory_mb: float = 2048.0,
) -> torch.Tensor:
    """Mutual patch scores of aggregated features of one (layer, r): [N, h, w, C] -> [N, h, w] (or [N, P, C] -> [N, P])."""
    if z.dim() not in (3, 4) or z.shape[0] < 2:
        raise ZsadError(f"MSM needs features [N, P, C] or [N, h, w, C] of at least 2 images, got {tuple(z.shape)}")
    flat = z.reshape(z.shape[0], -1, z.shape[-1])
    n_images, n_patches, dim = flat.shape
    if query_chunk is None:
        query_chunk = default_query_chunk(n_images, n_patches, dim, interval, memory_mb, max_refs, groups)
    blocks = plan_blocks(n_images, query_chunk=query_chunk, max_refs=max_refs, groups=groups, seed=seed)
    scores = msm_blocks(flat, blocks, interval, ref_chunk=ref_chunk, memory_mb=memory_mb)
    return scores.reshape(z.shape[:-1])
