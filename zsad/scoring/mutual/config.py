"""One config drives every step of mutual scoring (as MuSc's single yaml does).

Defaults follow the official MuSc code (xrli-U/MuSc, configs/musc.yaml and models/musc.py): radii r = 1, 3, 5;
the interval of the lowest 0-30 % of the per-image minima; RsCIN windows k = 1, 2, 3 (MuSc's MVTec setting;
it uses 1, 8, 9 for VisA).
"""
from __future__ import annotations

from dataclasses import dataclass

from zsad.errors import ZsadError


@dataclass(frozen=True)
class MutualConfig:
    """How a batch of unlabeled images is scored against itself.

    radii: LNAMD aggregation degrees; each odd r averages the r x r neighbourhood of every patch (r = 1 is the
        identity). Maps of all (layer, r) pairs are averaged with equal weight.
    interval: (lo, hi) fractions of the sorted per-image minimum distances that are averaged into a patch score.
    rscin_k: RsCIN window sizes (number of most similar images kept per row, the image itself included);
        None disables re-scoring and the image score is the raw max of the map.
    query_chunk, ref_chunk: images per query block / per reference block of the distance computation; None
        derives both from ``memory_mb`` and the batch shape (see ``msm.auto_chunks``).
    memory_mb: budget for the working buffers of the distance computation (not counting the input features and
        the one aggregated copy of them that is held per (layer, r)).
    max_refs: compare every image with only this many other images (a seeded random cyclic window, see
        ``plan.py``), making the cost O(N * max_refs) instead of O(N^2). None compares with all others.
    groups: split the batch at random (seeded) into this many groups that are scored independently, as MuSc's
        ``divide_num``; RsCIN still runs over the whole batch. Each group needs at least two images.
    seed: seeds the random permutations of ``groups`` and ``max_refs``; nothing else is random.
    l2_normalize: unit-normalise every aggregated feature before distances, as MuSc does after LNAMD.
    device: where the aggregated features live and distances are computed ("cuda", "cpu", ...); None uses the
        device of the input tokens.
    """

    radii: tuple[int, ...] = (1, 3, 5)
    interval: tuple[float, float] = (0.0, 0.3)
    rscin_k: tuple[int, ...] | None = (1, 2, 3)
    query_chunk: int | None = None
    ref_chunk: int | None = None
    memory_mb: float = 2048.0
    max_refs: int | None = None
    groups: int = 1
    seed: int = 0
    l2_normalize: bool = True
    device: str | None = None

    def __post_init__(self) -> None:
        if not self.radii or any(int(r) != r or r < 1 or r % 2 == 0 for r in self.radii):
            raise ZsadError(f"radii={self.radii} must be a non-empty list of odd positive integers such as (1, 3, 5)")
        lo, hi = self.interval
        if not 0.0 <= lo < hi <= 1.0:
            raise ZsadError(f"interval={self.interval} must be fractions (lo, hi) with 0 <= lo < hi <= 1, e.g. (0.0, 0.3)")
        if self.rscin_k is not None and (not self.rscin_k or any(int(k) != k or k < 1 for k in self.rscin_k)):
            raise ZsadError(f"rscin_k={self.rscin_k} must be positive integers such as (1, 2, 3), or None to disable RsCIN")
        for name in ("query_chunk", "ref_chunk", "max_refs"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 1):
                raise ZsadError(f"{name}={value} must be a positive number of images, or None")
        if self.memory_mb <= 0:
            raise ZsadError(f"memory_mb={self.memory_mb} must be a positive budget in MB")
        if int(self.groups) != self.groups or self.groups < 1:
            raise ZsadError(f"groups={self.groups} must be a positive integer (1 scores the whole batch together)")
