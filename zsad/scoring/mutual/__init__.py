"""Mutual scoring of an unlabeled batch (MuSc, Li et al., ICLR 2024): zero-shot and training-free.

Each image's patches are compared with the patches of the *other* images of the batch; anomalies are rare, so a
normal patch finds close matches elsewhere and a defective one does not. One file per step, as in MuSc:

- ``lnamd.py``: LayerNorm + r x r neighbourhood means of the token maps (r = 1, 3, 5).
- ``plan.py``: which images each image is compared with (all others, or bounded by ``max_refs`` / ``groups``).
- ``msm.py``: chunked nearest-patch distances and the interval average of the lowest 0-30 %.
- ``rscin.py``: image scores smoothed over the most similar images (by CLS embedding).
- ``output.py``: the official output path (image score = max of the upsampled map, CLS handling per backbone
  family, official k lists) named by ``official_config`` / ``official_postprocess``.
- ``cost.py``: what a batch will cost (flops, seconds) and the default bound for large batches.
- ``distributed.py``: the query blocks split between accelerate processes.
- ``pipeline.py``: ``mutual_scores`` ties them together, driven by one ``MutualConfig``.
"""
from zsad.scoring.mutual.cost import (
    CPU_MSM_GFLOPS,
    DEFAULT_MAX_GROUP,
    MutualPlan,
    default_groups,
    estimate_mutual_cost,
    measure_gflops,
    plan_mutual,
)
from zsad.scoring.mutual.config import RSCIN_K, MutualConfig, rscin_k_for
from zsad.scoring.mutual.lnamd import lnamd
from zsad.scoring.mutual.msm import auto_chunks, interval_bounds, msm
from zsad.scoring.mutual.pipeline import mutual_scores
from zsad.scoring.mutual.plan import plan_blocks, reference_sets
from zsad.scoring.mutual.output import official_config, official_postprocess, rscin_cls_mode, upsampled_max
from zsad.scoring.mutual.rscin import rscin

__all__ = [
    "CPU_MSM_GFLOPS",
    "DEFAULT_MAX_GROUP",
    "RSCIN_K",
    "MutualPlan",
    "MutualConfig",
    "auto_chunks",
    "default_groups",
    "estimate_mutual_cost",
    "interval_bounds",
    "lnamd",
    "measure_gflops",
    "msm",
    "mutual_scores",
    "official_config",
    "official_postprocess",
    "plan_mutual",
    "plan_blocks",
    "reference_sets",
    "rscin",
    "rscin_cls_mode",
    "rscin_k_for",
    "upsampled_max",
]
