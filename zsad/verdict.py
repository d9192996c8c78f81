"""Turning scores into yes/no verdicts.

Without labels (the zero-shot case) the default rule treats the batch as mostly normal, as MuSc does, and flags
robust outliers: threshold = median + k * 1.4826 * MAD of the batch's image scores (k = 3; 1.4826 * MAD estimates
the standard deviation of the normal scores without being pulled up by the anomalies). It needs a batch: below
``min_batch`` images, or when the scores have no spread, it falls back to the scorer's natural threshold when it
has one (0.5 for text probabilities) and otherwise gives no verdict rather than a guess.

With labels, ``calibrate_threshold`` picks the F1-maximising threshold (the F1-max operating point the literature
reports); a fixed number can also be given.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zsad.errors import ZsadError

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class ThresholdRule:
    kind: str = "mad"  # "mad": median + k * 1.4826 * MAD of the batch; "fixed": ``value`` is the threshold
    value: float = 3.0
    min_batch: int = 8

    def __post_init__(self):
        if self.kind not in ("mad", "fixed"):
            raise ZsadError(f"threshold rule must be 'mad' or 'fixed', got {self.kind!r}")


@dataclass(frozen=True)
class Threshold:
    value: float | None
    rule: str  # human-readable: how the value was obtained


def decide_threshold(scores: np.ndarray, rule: ThresholdRule, natural: float | None = None) -> Threshold:
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if rule.kind == "fixed":
        return Threshold(float(rule.value), f"fixed {rule.value:g}")
    median = float(np.median(scores)) if scores.size else 0.0
    mad = float(np.median(np.abs(scores - median))) if scores.size else 0.0
    if scores.size >= rule.min_batch and mad > 0:
        value = median + rule.value * MAD_TO_SIGMA * mad
        return Threshold(value, f"batch median + {rule.value:g} x 1.4826 x MAD over {scores.size} images")
    reason = f"only {scores.size} images" if scores.size < rule.min_batch else "scores without spread"
    if natural is not None:
        return Threshold(natural, f"natural threshold {natural:g} ({reason} for the batch rule)")
    return Threshold(None, f"no verdict: {reason} for the batch rule; pass a fixed threshold or calibrate with labels")


def calibrate_threshold(scores, labels) -> float:
    """The F1-maximising threshold on labelled scores (verdict: score >= threshold)."""
    from zsad.metrics import f1_max

    labels = np.asarray(labels)
    if labels.min() == labels.max():
        raise ZsadError("calibration needs both normal and anomalous labelled images")
    return float(f1_max(scores, labels)[1])
