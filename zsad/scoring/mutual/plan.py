"""Which images each query image is compared with, walked in blocks of query images.

Mutual scoring compares every image with the other images of its batch, O(N^2) work. Two documented ways
bound it for large batches; both are defined here, once, so that chunking and the split between processes
never change which pairs are compared (and hence never change the result):

- ``groups`` (MuSc's ``divide_num``): a seeded random permutation splits the batch into ``groups`` parts whose
  sizes differ by at most one; each part is scored as an independent batch. Cost O(N^2 / groups).
- ``max_refs = M``: within a group of G images, a seeded random cyclic order is drawn and each image is
  compared with the M images that follow it in that order (wrapping around). Every image is thus compared with
  exactly M others *and* serves as a reference for exactly M others, so no image weighs more than another.
  Cost O(N * M). Consecutive queries share most of their window, so a block of q queries needs only q - 1 + M
  candidate images: the work wasted on masked pairs is (q - 1) / M. With M >= G - 1 this is the full comparison.

The interval average of MSM is then taken over the n_refs = M (or G - 1) distances of each patch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from zsad.errors import ZsadError


@dataclass(frozen=True)
class QueryBlock:
    """One block of query images and the reference images they are compared with.

    queries: [q] image indices; candidates: [R] image indices (the union of the queries' references);
    valid: [q, R] True where query a is compared with candidate j; every row has exactly ``n_refs`` True.
    """

    queries: torch.Tensor
    candidates: torch.Tensor
    valid: torch.Tensor
    n_refs: int


def split_groups(n_images: int, groups: int, seed: int) -> list[torch.Tensor]:
    """Sorted image indices of each group; one group is the whole batch, in order."""
    if groups == 1:
        return [torch.arange(n_images)]
    if n_images < 2 * groups:
        raise ZsadError(
            f"groups={groups} would leave a group with fewer than 2 of the {n_images} images; "
            f"use at most {n_images // 2} groups"
        )
    perm = torch.randperm(n_images, generator=torch.Generator().manual_seed(seed))
    return [part.sort().values for part in torch.tensor_split(perm, groups)]


def plan_blocks(
    n_images: int, *, query_chunk: int, max_refs: int | None = None, groups: int = 1, seed: int = 0
) -> list[QueryBlock]:
    """All query blocks of a batch; scoring every block once scores every image once."""
    if n_images < 2:
        raise ZsadError(
            f"mutual scoring needs at least 2 images in a batch, got {n_images}; "
            "score more images together or use the text/few-shot scorer"
        )
    generator = torch.Generator().manual_seed(seed + 1)
    blocks: list[QueryBlock] = []
    for members in split_groups(n_images, groups, seed):
        g = len(members)
        n_refs = g - 1 if max_refs is None else min(max_refs, g - 1)
        order = members if n_refs == g - 1 else members[torch.randperm(g, generator=generator)]
        for start in range(0, g, query_chunk):
            q_pos = torch.arange(start, min(start + query_chunk, g))
            span = len(q_pos) - 1 + n_refs
            c_pos = torch.arange(g) if span >= g else (torch.arange(start + 1, start + 1 + span) % g)
            offset = (c_pos[None, :] - q_pos[:, None]) % g
            valid = (offset >= 1) & (offset <= n_refs)
            blocks.append(QueryBlock(order[q_pos], order[c_pos], valid, n_refs))
    return blocks


def reference_sets(
    n_images: int, *, max_refs: int | None = None, groups: int = 1, seed: int = 0, query_chunk: int = 1
) -> list[set[int]]:
    """For each image, the set of images it is compared with (for inspection and tests)."""
    refs: list[set[int]] = [set() for _ in range(n_images)]
    for block in plan_blocks(n_images, query_chunk=query_chunk, max_refs=max_refs, groups=groups, seed=seed):
        for a, i in enumerate(block.queries.tolist()):
            refs[i] = set(block.candidates[block.valid[a]].tolist())
    return refs
