"""Conversion and validation of metric inputs.

Policy for degenerate inputs (the same for every metric in this package):

- shape mismatch between a map and its mask, different numbers of maps and masks, wrong number of dimensions,
  labels/masks that are not binary, NaN scores, or no samples at all -> ``MetricInputError`` (a ``ValueError``
  and a ``ZsadError``). These are caller bugs: silently dropping NaN pixels or broadcasting a mask would give a
  number that means something else than the table says. scikit-learn also raises on NaN.
- only one class present (no anomalous image / no anomalous pixel / no normal pixel) -> the metric is NaN and an
  ``UndefinedMetricWarning`` is issued. A benchmark over many categories then still finishes and its table still
  renders (NaN shows as "n/a"), and the warning says which input was one-class.
- infinite scores are accepted: they are ordered like any other value and only ranks matter.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from zsad.errors import ZsadError


class MetricInputError(ZsadError, ValueError):
    """Scores, labels or masks that cannot be evaluated (shape mismatch, NaN, non-binary labels, empty input)."""


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for this input (only one class present) and was returned as NaN."""


def to_numpy(x: Any) -> np.ndarray:
    """A numpy view of an array-like; torch tensors are detached and moved to the CPU.

    bf16/fp16 tensors become float32 (numpy has no bf16; widening is exact and keeps the ranking).
    """
    # Only look for torch if it is already imported: a tensor cannot exist otherwise, and importing torch just
    # to rule it out would cost seconds on the first call of a numpy-only evaluation.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def as_scores(x: Any, name: str) -> np.ndarray:
    """Scores as a floating array without copying float32/float64 input.

    Integer or boolean scores become float64 so that no two distinct integers collapse into a tie.
    """
    a = to_numpy(x)
    if a.dtype == np.float16:
        a = a.astype(np.float32)
    elif not np.issubdtype(a.dtype, np.floating):
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise MetricInputError(f"{name} has dtype {a.dtype}; pass numeric anomaly scores (float32 or float64)")
        a = a.astype(np.float64)
    return a


def as_binary(x: Any, name: str, fix: str) -> np.ndarray:
    """Labels/masks as a bool array; anything other than {0, 1}/bool is refused rather than thresholded.

    A soft mask (e.g. after bilinear resizing) or a 0/255 PNG mask would otherwise be binarised at a threshold
    the caller never chose.
    """
    a = to_numpy(x)
    if a.dtype == np.bool_:
        return a
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise MetricInputError(f"{name} has dtype {a.dtype}; pass 0/1 or bool values")
    if not ((a == 0) | (a == 1)).all():
        bad = a[(a != 0) & (a != 1)].ravel()[0]
        raise MetricInputError(f"{name} contains the value {bad!r}, expected only 0/1 or bool; {fix}")
    return a == 1


def check_no_nan(scores: np.ndarray, name: str) -> None:
    n_nan = int(np.count_nonzero(np.isnan(scores)))
    if n_nan:
        raise MetricInputError(
            f"{name} contains {n_nan} NaN value(s) out of {scores.size}; NaN has no rank, fix the scorer or replace "
            "them (e.g. np.nan_to_num) before evaluating"
        )


def image_inputs(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated 1-D scores and bool labels of equal length."""
    s = as_scores(scores, "scores")
    y = as_binary(labels, "labels", "use 1 for anomalous and 0 for normal images")
    if s.ndim != 1 or y.ndim != 1:
        raise MetricInputError(
            f"scores and labels must be 1-D, got scores shape {s.shape} and labels shape {y.shape}; "
            "pass one score and one label per image"
        )
    if s.shape != y.shape:
        raise MetricInputError(
            f"scores shape {s.shape} does not match labels shape {y.shape}; pass one label per score"
        )
    if s.size == 0:
        raise MetricInputError("scores and labels are empty; pass at least one scored image")
    check_no_nan(s, "scores")
    return s, y


def _as_list(x: Any, name: str) -> list[Any]:
    """A [N, H, W] array/tensor or a sequence of [H, W] arrays as a list of per-image arrays."""
    if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
        return list(x)
    a = to_numpy(x)
    if a.ndim != 3:
        raise MetricInputError(
            f"{name} has shape {a.shape}, expected [N, H, W] (or a list of [H, W] arrays); "
            "squeeze a channel axis or add a batch axis"
        )
    return list(a)


def pixel_inputs(maps: Any, masks: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validated per-image score maps and bool masks with identical shapes."""
    stacked = not isinstance(maps, Sequence) and not isinstance(masks, Sequence)
    if stacked:
        m_arr, k_arr = as_scores(maps, "maps"), as_binary(masks, "masks", "binarise it, e.g. mask > 127 for 0/255 PNGs")
        if m_arr.shape != k_arr.shape:
            raise MetricInputError(f"maps shape {m_arr.shape} does not match masks shape {k_arr.shape}")
        map_list, mask_list = _as_list(m_arr, "maps"), _as_list(k_arr, "masks")
    else:
        raw_maps, raw_masks = _as_list(maps, "maps"), _as_list(masks, "masks")
        if len(raw_maps) != len(raw_masks):
            raise MetricInputError(f"got {len(raw_maps)} maps but {len(raw_masks)} masks; pass one mask per map")
        map_list, mask_list = [], []
        for i, (m, k) in enumerate(zip(raw_maps, raw_masks)):
            m = as_scores(m, f"maps[{i}]")
            k = as_binary(k, f"masks[{i}]", "binarise it, e.g. mask > 127 for 0/255 PNGs")
            if m.shape != k.shape:
                raise MetricInputError(f"maps[{i}] shape {m.shape} does not match masks[{i}] shape {k.shape}")
            if m.ndim != 2:
                raise MetricInputError(f"maps[{i}] has shape {m.shape}, expected [H, W]; squeeze a channel axis")
            map_list.append(m)
            mask_list.append(k)
        if len({m.dtype for m in map_list}) > 1:
            # Mixed precisions would be compared after an implicit upcast; make it explicit once.
            map_list = [m.astype(np.float64) for m in map_list]
    if not map_list or sum(m.size for m in map_list) == 0:
        raise MetricInputError("maps are empty; pass at least one non-empty anomaly map")
    for i, m in enumerate(map_list):
        check_no_nan(m, f"maps[{i}]")
    return map_list, mask_list
