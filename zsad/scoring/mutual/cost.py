"""What mutual scoring of a batch will cost, and the default bound for large batches.

Cost model. For each (layer, r) every compared (query, reference) image pair costs one [P, C] x [C, P] product,
2 * P^2 * C flops; the minima, top-k and LNAMD add less than 1 % for C >= 64 (P^2 comparisons per pair against
2 * P^2 * C flops). So

    flops = n_layers * len(radii) * pairs * 2 * P^2 * C,   pairs = sum over groups of g * min(max_refs, g - 1).

With ``max_refs`` the block plan also computes (q - 1) masked pairs per block of q queries (plan.py); that waste,
(q - 1) / max_refs, is not counted. Seconds = flops / throughput: measure the throughput on the device that will
run (``measure_gflops``) or use ``CPU_MSM_GFLOPS``.

Measured on the 2-core CPU of this project (shared with other jobs, torch 2.x float32, 2 threads): the MSM
product alone at block shapes of ViT-L at 518 (P = 1369, C = 1024) runs at 76-89 GFLOP/s; ``msm`` end to end
(products + minima + top-k, N = 8..32, P = 256..1369) at 63-71 GFLOP/s effective. ``CPU_MSM_GFLOPS`` = 65.
Example: the paper's setting (ViT-L-14-336 at 518, 4 layers, r = 1, 3, 5) on 200 images is 1.8 PFLOP, about 8
hours on this CPU; a GPU doing ~50 TFLOP/s in the products takes under a minute.

Default bound (issue 7, item 4). The official code scores each category's test set as one batch
(``divide_num: 1`` in configs/musc.yaml line 6 and every published script), and its README ("Inference Time")
states that the default number of images in mutual scoring is 200; MVTec AD and VisA categories have at most
~200 test images. zsad therefore scores batches of up to ``DEFAULT_MAX_GROUP = 200`` images whole (the published
protocol) and splits larger batches at random into ``ceil(N / 200)`` groups scored independently, as the official
``divide_num`` does (RsCIN still runs over the whole batch); ``groups=1`` (or ``max_group=None``) is the full
O(N^2) computation. The official ``divide_num`` splits each defect-type folder evenly across subsets (it reads
the labels from the folder names, datasets/mvtec.py ``sub_datasets``); zsad's split is label-free.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from zsad.errors import ZsadError

# The published batch size of mutual scoring (MuSc README, "Inference Time": 200 images).
DEFAULT_MAX_GROUP = 200
# Effective float32 throughput of ``msm`` measured on this project's 2-core CPU (see the module docstring).
CPU_MSM_GFLOPS = 65.0


def default_groups(n_images: int, max_group: int | None = DEFAULT_MAX_GROUP) -> int:
    """Groups of the default policy: 1 up to ``max_group`` images, else ceil(N / max_group) (None: always 1)."""
    if max_group is None or n_images <= max_group:
        return 1
    if max_group < 2:
        raise ZsadError(f"max_group={max_group} must be at least 2 images")
    return math.ceil(n_images / max_group)


def compared_pairs(n_images: int, max_refs: int | None = None, groups: int = 1) -> int:
    """Number of (query, reference) image pairs compared per (layer, r), as ``plan.plan_blocks`` compares them."""
    if groups < 1 or n_images < 2 * groups:
        raise ZsadError(f"{n_images} images cannot be split into {groups} groups of at least 2")
    base, extra = divmod(n_images, groups)
    sizes = [base + 1] * extra + [base] * (groups - extra)
    return sum(g * (g - 1 if max_refs is None else min(max_refs, g - 1)) for g in sizes)


def estimate_mutual_cost(
    n_images: int,
    n_patches: int,
    dim: int,
    n_layers: int,
    radii: Sequence[int] = (1, 3, 5),
    max_refs: int | None = None,
    groups: int = 1,
) -> float:
    """Floating-point operations of the MSM products of one mutual-scoring run (see the cost model above)."""
    pairs = compared_pairs(n_images, max_refs, groups)
    return float(n_layers * len(radii) * pairs * 2 * n_patches * n_patches * dim)


@dataclass(frozen=True)
class MutualPlan:
    """What mutual scoring will run: for the caller to print before a long run and to record in results."""

    n_images: int
    groups: int
    max_refs: int | None
    pairs: int
    flops: float
    gflops: float
    seconds: float
    bounded: bool  # True when the default policy split the batch (the full computation was not asked for)

    def describe(self) -> str:
        how = "all images against each other" if self.groups == 1 and self.max_refs is None else (
            f"{self.groups} random groups of ~{math.ceil(self.n_images / self.groups)} images"
            + (f", each image against {self.max_refs} others" if self.max_refs is not None else "")
        )
        text = (
            f"mutual scoring of {self.n_images} images: {how}; {self.flops / 1e12:.1f} TFLOP, "
            f"about {_duration(self.seconds)} at {self.gflops:.0f} GFLOP/s"
        )
        if self.bounded:
            text += " (bounded by default as MuSc's divide_num; groups=1 runs the full comparison)"
        return text


def plan_mutual(
    n_images: int,
    n_patches: int,
    dim: int,
    n_layers: int,
    radii: Sequence[int] = (1, 3, 5),
    *,
    max_refs: int | None = None,
    groups: int | None = None,
    max_group: int | None = DEFAULT_MAX_GROUP,
    gflops: float = CPU_MSM_GFLOPS,
) -> MutualPlan:
    """The plan for a batch: ``groups=None`` applies the default policy (``default_groups``), an explicit value
    (1 = the full comparison) is kept as given."""
    bounded = groups is None and default_groups(n_images, max_group) > 1
    groups = default_groups(n_images, max_group) if groups is None else groups
    flops = estimate_mutual_cost(n_images, n_patches, dim, n_layers, radii, max_refs, groups)
    return MutualPlan(
        n_images=n_images, groups=groups, max_refs=max_refs, pairs=compared_pairs(n_images, max_refs, groups),
        flops=flops, gflops=gflops, seconds=flops / (gflops * 1e9), bounded=bounded,
    )


def measure_gflops(
    n_patches: int, dim: int, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
    block_images: int = 2, repeats: int = 3,
) -> float:
    """Throughput of the MSM product on ``device``: a [b*P, C] x [C, b*P] matrix product, best of ``repeats``.

    Takes well under a second on a CPU for b = 2, P = 1369, C = 1024 (15 GFLOP per product); the effective
    ``msm`` throughput is ~80 % of it on the CPU (minima and top-k).
    """
    device = torch.device(device)
    a = torch.randn(block_images * n_patches, dim, device=device, dtype=dtype)
    b = torch.randn(block_images * n_patches, dim, device=device, dtype=dtype)
    best = math.inf
    for _ in range(repeats + 1):  # the first run warms up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        a @ b.T
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * a.shape[0] * b.shape[0] * dim / best / 1e9


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
