"""One config drives every step of mutual scoring (as MuSc's single yaml does).

Defaults follow the official MuSc code (xrli-U/MuSc, configs/musc.yaml and models/musc.py): radii r = 1, 3, 5;
the interval of the lowest 0-30 % of the per-image minima; RsCIN windows k = 1, 2, 3 (MuSc's MVTec setting;
it uses 1, 8, 9 for VisA).

Output path: by default the image score is the max of the patch-grid map and RsCIN compares L2-normalised image
embeddings (cosines), with negative cosines clamped to 0. ``official_config`` (``output.py``) selects the official
MuSc output path instead: the image score is the max of the map bilinearly upsampled (align_corners=True) to the
input size, and RsCIN uses the image embeddings as the official code feeds them per backbone family.
"""
from __future__ import annotations

from dataclasses import dataclass

from zsad.config_fields import Alias, positive_int, setting
from zsad.errors import ZsadError
from zsad.scoring.configs import ScorerConfig

# RsCIN window lists of the official code per dataset kind (xrli-U/MuSc, models/musc.py lines 242-247:
# 'visa' -> [1, 8, 9], 'mvtec_ad' -> [1, 2, 3], anything else (btad) -> [1, 2, 3]).
RSCIN_K: dict[str, tuple[int, ...]] = {"mvtec": (1, 2, 3), "visa": (1, 8, 9), "btad": (1, 2, 3)}

IMAGE_SCORE_FROM = ("grid_max", "upsampled_max")
RSCIN_CLS = ("normalized", "raw", "auto")  # auto: by backbone family (the mutual scorer resolves it)


def rscin_k_for(dataset: str) -> tuple[int, ...]:
    """The official RsCIN k list of a dataset kind: "mvtec" (MVTec-like), "visa" (VisA-like) or "btad"."""
    key = dataset.lower().replace("_ad", "").replace("-ad", "")
    if key not in RSCIN_K:
        raise ZsadError(
            f"unknown RsCIN dataset kind {dataset!r}; use one of {', '.join(RSCIN_K)} "
            f"(or give the k list itself, e.g. rscin_k=(1, 2, 3))"
        )
    return RSCIN_K[key]


@dataclass(frozen=True)
class MutualConfig(ScorerConfig):
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
        ``divide_num``; RsCIN still runs over the whole batch. Each group needs at least two images. None: 1 when
        ``mutual_scores`` is called directly; the mutual scorer applies the default bound (``cost.default_groups``:
        groups of at most 200 images) and says so before it runs.
    seed: seeds the random permutations of ``groups`` and ``max_refs``; nothing else is random.
    l2_normalize: unit-normalise every aggregated feature before distances, as MuSc does after LNAMD.
    device: where the aggregated features live and distances are computed ("cuda", "cpu", ...); None uses the
        device of the input tokens.
    image_score_from: "grid_max" (default) takes the image score before RsCIN as the max of the patch-grid map;
        "upsampled_max" takes the max of the map bilinearly upsampled to ``upsample_size`` x ``upsample_size``
        (as the official code, models/musc.py lines 225-226 and 240), which needs ``upsample_size`` (the mutual
        scorer uses the backbone's input size when it is None).
    upsample_size, upsample_align_corners: the upsampling used by "upsampled_max" (the official code: the input
        size, align_corners=True). Maps returned by ``mutual_scores`` stay on the patch grid either way; the
        matching map post-processing is ``output.official_postprocess(input_size)``.
    rscin_cls: how RsCIN compares image embeddings: "normalized" (default) L2-normalises them (cosines, as the
        official code does for CLIP, models/musc.py line 175); "raw" uses the dot products of the embeddings as
        given (the official code for DINO/DINOv2, whose CLS tokens are not normalised, lines 163-172).
    min_batch: the smallest batch for which ``--method auto`` chooses mutual scoring (a named ``--method mutual``
        runs from 3 images on).
    rscin_clamp_negative: clamp negative similarities to 0 before RsCIN's row normalisation (default, zsad's
        guard). False keeps them, as the official code does; a row whose kept similarities sum to <= 0 (where the
        official code divides by zero or flips signs) is then still clamped.
    """

    radii: tuple[int, ...] = setting((1, 3, 5), help="LNAMD aggregation degrees r (odd; r x r neighbourhood means)")
    interval: tuple[float, float] = setting((0.0, 0.3), help="fractions (lo, hi) of the sorted per-image minimum "
                                                              "distances averaged into a patch score (MSM)")
    rscin_k: tuple[int, ...] | None = setting(
        (1, 2, 3), help="RsCIN window sizes (most similar images kept per row); none disables re-scoring",
        aliases=(
            Alias("rscin", lambda on: {"rscin_k": (1, 2, 3) if on is True else None if on is False else tuple(on)},
                  help="RsCIN re-scoring of mutual image scores (--no-rscin disables it)", type=bool),
            Alias("rscin_dataset", lambda kind: {"rscin_k": rscin_k_for(str(kind))}, choices=tuple(RSCIN_K),
                  help="MuSc's RsCIN window sizes for this kind of data (mvtec: 1 2 3, visa: 1 8 9)"),
        ))
    query_chunk: int | None = setting(None, cli=False, run_time_only=True,
                                      help="images per query block of the distance computation (default: from "
                                           "memory_mb and the batch shape)")
    ref_chunk: int | None = setting(None, cli=False, run_time_only=True,
                                    help="images per reference block (default: as query_chunk)")
    memory_mb: float = setting(2048.0, run_time_only=True,
                               help="memory budget in MB for the distance computation's working buffers")
    max_refs: int | None = setting(None, parse=positive_int, help="compare each image with at most this many others (bounds mutual "
                                              "scoring's O(N^2))")
    groups: int | None = setting(None, parse=positive_int, help="score the batch in this many random groups (MuSc's divide_num; "
                                            "default: 1 up to 200 images, then groups of at most 200; 1 forces the "
                                            "full comparison)")
    seed: int = setting(0, cli=False, help="seed of the random groups and reference windows")
    l2_normalize: bool = setting(True, cli=False, help="unit-normalise aggregated features before distances (MuSc)")
    device: str | None = setting(None, cli=False, run_time_only=True,
                                 help="where distances are computed (default: the tokens' device)")
    image_score_from: str = setting("grid_max", choices=IMAGE_SCORE_FROM,
                                    help="image score before RsCIN: max of the patch grid, or of the map upsampled "
                                         "to the input size (MuSc's official code)")
    upsample_size: int | None = setting(None, cli=False, help="size of the upsampled_max map (default: the "
                                                              "backbone's input size)")
    upsample_align_corners: bool = setting(True, cli=False, help="align_corners of the upsampled_max map")
    rscin_cls: str = setting("normalized", choices=RSCIN_CLS,
                             help="RsCIN image embeddings: L2-normalised, raw (official DINO path), or auto (by "
                                  "backbone family, as the official code)")
    rscin_clamp_negative: bool = setting(True, help="clamp negative RsCIN similarities to 0 (zsad's guard; the "
                                                    "official code keeps them)")
    min_batch: int = setting(8, option="min_mutual_batch", parse=positive_int,
                             help="--method auto uses mutual scoring from this many test images on")

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
        if self.groups is not None and (int(self.groups) != self.groups or self.groups < 1):
            raise ZsadError(f"groups={self.groups} must be a positive integer (1 scores the whole batch together)")
        if self.image_score_from not in IMAGE_SCORE_FROM:
            raise ZsadError(
                f"image_score_from={self.image_score_from!r} must be one of {', '.join(IMAGE_SCORE_FROM)}"
            )
        if self.upsample_size is not None and (int(self.upsample_size) != self.upsample_size or self.upsample_size < 1):
            raise ZsadError(f"upsample_size={self.upsample_size} must be a positive number of pixels, or None")
        if self.min_batch < 2:
            raise ZsadError(f"min_mutual_batch={self.min_batch} must be at least 2")
        if self.rscin_cls not in RSCIN_CLS:
            raise ZsadError(f"rscin_cls={self.rscin_cls!r} must be one of {', '.join(RSCIN_CLS)}")
