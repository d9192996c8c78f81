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
- several processes: ``pipeline.py`` splits the query blocks between accelerate processes (each holds all
  features, computes its share of queries, one all-reduce sum gives every process the maps; ``zsad.parallel``).
- ``pipeline.py``: ``mutual_scores`` ties them together, driven by one ``MutualConfig``.

Importing this package loads no torch: each name below loads its module on first use, so ``--help`` can read
the config alone.
"""
from zsad.registry import lazy_exports

__all__ = lazy_exports(__name__, {
    "cost": ('CPU_MSM_GFLOPS', 'DEFAULT_MAX_GROUP', 'MutualPlan', 'default_groups', 'estimate_mutual_cost', 'measure_gflops', 'plan_mutual'),
    "config": ('RSCIN_K', 'MutualConfig', 'rscin_k_for'),
    "lnamd": ('lnamd',),
    "msm": ('auto_chunks', 'interval_bounds', 'msm'),
    "pipeline": ('mutual_scores',),
    "plan": ('plan_blocks', 'reference_sets'),
    "output": ('official_config', 'official_postprocess', 'rscin_cls_mode', 'upsampled_max'),
    "rscin": ('rscin',),
})
