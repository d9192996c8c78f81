"""Pixel-level metrics of a category: AUROC, AP, F1-max over all pixels, and AUPRO.

All pixels of all test images of a category are pooled (normal images included), as in the MVTec AD protocol;
a per-image average would weight small images and images without defects differently.

AUPRO ("per-region overlap", Bergmann et al., IJCV 2021, the MVTec AD journal paper)
-----------------------------------------------------------------------------------
- Regions are the 8-connected components of each image's ground-truth mask (``scipy.ndimage.label`` with a 3x3
  structure), so two defect pixels touching only at a corner belong to the same region. Normal images (empty
  masks) add only negative pixels.
- At threshold ``t`` (a pixel is anomalous when its score is ``>= t``): PRO(t) = mean over *all regions of all
  images* of the fraction of the region's pixels with score ``>= t``; FPR(t) = fraction of *all* negative pixels
  of all images with score ``>= t``.
- Every distinct score is a threshold (exact, no sampling). The curve PRO(FPR) starts at (0, 0), is integrated
  with the trapezoid rule up to FPR = ``fpr_limit`` (0.3), where it is interpolated linearly to end exactly at
  the limit, and the area is divided by ``fpr_limit``, so a perfect map scores 1.0. The FPR axis is not rescaled.
  This is the definition of the MVTec AD paper and of its official evaluation script.

The 200-thresholds variant found in several research repositories (``cal_pro_score`` of AnomalyCLIP,
APRIL-GAN/VAND and others, derived from CFlow-AD) differs and is biased:

1. thresholds are 200 equally spaced values between the map minimum and maximum (``score > t``), so the part of
   the curve below FPR 0.3 is sampled only by the few thresholds whose FPR happens to land there; a single
   outlier score stretches the range and leaves even fewer. Trapezoids over few samples of a (typically concave) curve
   underestimate it, and a dense band of scores narrower than one step is jumped over entirely;
2. it keeps the sampled points with FPR < 0.3 and min-max rescales their FPRs to [0, 1] before ``auc``. The
   result is the mean PRO over [smallest sampled FPR, largest sampled FPR below 0.3], not over [0, 0.3]: it
   divides by that largest sampled FPR (say 0.22) instead of 0.3 and drops the curve between it and 0.3, where
   PRO is highest (PRO never decreases with FPR), which biases down; dropping the low start biases up. The net
   error depends on where the coarse samples fall (``tests/metrics/test_aupro.py`` builds a map scoring 0.617
   exactly and 0.436 with the variant), so numbers from the two definitions are not comparable.

``pixel_metrics`` shares one sort per class between the four metrics (see ``zsad.metrics.curves``).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import ndimage

from zsad.metrics import curves
from zsad.metrics._inputs import MetricInputError, UndefinedMetricWarning, pixel_inputs

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
PIXEL_KEYS = ("p_auroc", "p_ap", "p_f1_max", "aupro")


def _check_limit(fpr_limit: float) -> float:
    fpr_limit = float(fpr_limit)
    if not 0.0 < fpr_limit <= 1.0:
        raise MetricInputError(f"fpr_limit={fpr_limit} is outside (0, 1]; the usual value is 0.3")
    return fpr_limit


def _pool(maps: Any, masks: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positive scores, their region weights 1/(region size), and negative scores of all images."""
    map_list, mask_list = pixel_inputs(maps, masks)
    dtype = map_list[0].dtype
    n_pos = [int(np.count_nonzero(k)) for k in mask_list]
    pos = np.empty(sum(n_pos), dtype=dtype)
    weights = np.empty(sum(n_pos), dtype=np.float64)
    neg = np.empty(sum(k.size for k in mask_list) - sum(n_pos), dtype=dtype)
    p_at = n_at = 0
    for m, k, npos in zip(map_list, mask_list, n_pos):
        flat_m, flat_k = m.ravel(), k.ravel()
        nneg = flat_k.size - npos
        # np.compress with out= writes straight into the pooled arrays: no per-image temporaries to concatenate.
        np.compress(~flat_k, flat_m, out=neg[n_at : n_at + nneg])
        n_at += nneg
        if npos:
            np.compress(flat_k, flat_m, out=pos[p_at : p_at + npos])
            regions, _ = ndimage.label(k, structure=_EIGHT_CONNECTED)
            region_of_pixel = regions.ravel()[flat_k]
            sizes = np.bincount(region_of_pixel)
            weights[p_at : p_at + npos] = 1.0 / sizes[region_of_pixel]
            p_at += npos
    return pos, weights, neg


def _one_class_message(n_pos: int, n_neg: int) -> str | None:
    if n_pos == 0:
        return "masks contain no anomalous pixel"
    if n_neg == 0:
        return "masks contain no normal pixel"
    return None


def pixel_metrics(maps: Any, masks: Any, fpr_limit: float = 0.3) -> dict[str, float]:
    """Pixel AUROC, AP, F1-max and AUPRO of one category (fractions in [0, 1]).

    maps: [N, H, W] array/tensor or a list of [H_i, W_i] arrays (higher = more anomalous), float32 preferred.
    masks: the same shapes, bool or 0/1. Returns keys "p_auroc", "p_ap", "p_f1_max", "aupro"; all NaN with an
    ``UndefinedMetricWarning`` when the masks hold only one class.
    """
    fpr_limit = _check_limit(fpr_limit)
    pos, weights, neg = _pool(maps, masks)
    problem = _one_class_message(pos.size, neg.size)
    if problem:
        warnings.warn(f"{problem}; pixel metrics are NaN", UndefinedMetricWarning, stacklevel=2)
        return dict.fromkeys(PIXEL_KEYS, float("nan"))
    curve = curves.ranking_curve(pos, neg, weights)
    return {
        "p_auroc": curves.auroc(curve),
        "p_ap": curves.average_precision(curve),
        "p_f1_max": curves.best_f1(curve)[0],
        "aupro": curves.pro_area(curve, fpr_limit),
    }


def aupro(maps: Any, masks: Any, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap curve up to ``fpr_limit`` (see the module docstring)."""
    fpr_limit = _check_limit(fpr_limit)
    pos, weights, neg = _pool(maps, masks)
    problem = _one_class_message(pos.size, neg.size)
    if problem:
        warnings.warn(f"{problem}; AUPRO is NaN", UndefinedMetricWarning, stacklevel=2)
        return float("nan")
    return curves.pro_area(curves.ranking_curve(pos, neg, weights), fpr_limit)
