"""Metrics of decisions: verdicts (F1, false-alarm and miss rates), binary masks (IoU, pixel F1, the oracle IoU)
and severity (Spearman's rho), for ``zsad report`` and ``eval/bench_decisions.py``.

Definitions:
- verdict metrics compare yes/no verdicts with 0/1 labels; a ratio with nothing to count is NaN (F1 of a batch
  with no defect where nothing is flagged, the false-alarm rate of a batch with no normal image).
- mask IoU pools every pixel of every image of the run, normal images included (their false positives count in
  the union), as the pixel metrics do (``zsad.metrics.pixel``).
- ``iou_max`` is the oracle: the best pooled IoU of ``map >= t`` over every distinct map value t, with the t that
  reaches it (the highest such t on ties), computed exactly from one sort.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from zsad.metrics._inputs import MetricInputError


def verdict_metrics(verdicts: Any, labels: Any) -> dict[str, float]:
    """F1, precision, recall, false-alarm rate (flagged normal / normal) and miss rate (unflagged defective /
    defective) of boolean verdicts [N] against labels [N] (1 = anomalous). Undefined ratios are NaN."""
    v = np.asarray(verdicts, dtype=bool).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if v.shape != y.shape:
        raise MetricInputError(f"{v.size} verdicts for {y.size} labels; pass one verdict per labelled image")
    tp, fp = int((v & y).sum()), int((v & ~y).sum())
    fn, tn = int((~v & y).sum()), int((~v & ~y).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {"f1": ratio(2 * tp, 2 * tp + fp + fn), "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "false_alarm_rate": ratio(fp, fp + tn), "miss_rate": ratio(fn, fn + tp),
            "flagged": int(v.sum()), "defective": int(y.sum())}


def _pairs(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred), np.asarray(truth).astype(bool)
    if p.shape != t.shape:
        raise MetricInputError(f"masks of shape {p.shape} against ground truth of shape {t.shape}; resize first")
    return p, t


def mask_iou(masks: Any, truth: Any) -> float:
    """Pooled IoU of boolean masks against ground-truth masks (same shape); NaN when both are empty."""
    p, t = _pairs(masks, truth)
    p = p.astype(bool)
    union = int((p | t).sum())
    return int((p & t).sum()) / union if union else float("nan")


def mask_f1(masks: Any, truth: Any) -> float:
    """Pooled pixel F1 (Dice) of boolean masks against ground-truth masks: 2 TP / (2 TP + FP + FN); NaN when both
    are empty."""
    p, t = _pairs(masks, truth)
    p = p.astype(bool)
    tp, total = int((p & t).sum()), int(p.sum()) + int(t.sum())
    return 2 * tp / total if total else float("nan")


def iou_max(maps: Any, truth: Any) -> tuple[float, float]:
    """(best pooled IoU of ``maps >= t`` over all thresholds t, that t); NaN pair if the truth is empty."""
    values, t = _pairs(maps, truth)
    values, t = values.astype(np.float64).ravel(), t.ravel()
    positives = int(t.sum())
    if positives == 0:
        return float("nan"), float("nan")
    order = np.argsort(-values, kind="stable")
    sorted_values, hits = values[order], t[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    last = np.r_[sorted_values[1:] != sorted_values[:-1], True]  # end of each run of equal values
    iou = tp[last] / (positives + fp[last])
    best = int(np.argmax(iou))  # first maximum = highest threshold on ties
    return float(iou[best]), float(sorted_values[last][best])


def severity_rho(values: Any, levels: Any) -> float:
    """Spearman's rho of ``values`` (scores, areas) against severity ``levels`` (NaN if either is constant)."""
    from scipy.stats import spearmanr

    v, s = np.asarray(values, dtype=np.float64).ravel(), np.asarray(levels, dtype=np.float64).ravel()
    if v.shape != s.shape:
        raise MetricInputError(f"{v.size} values for {s.size} severity levels")
    if v.size < 3 or np.ptp(v) == 0 or np.ptp(s) == 0:
        return float("nan")
    return float(spearmanr(v, s).statistic)
