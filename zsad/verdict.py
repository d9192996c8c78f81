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

import math
from dataclasses import dataclass

import numpy as np

from zsad.config_fields import Alias, finite_float, setting
from zsad.errors import ZsadError
from zsad.robust import robust_scale

RULES = ("mad", "fixed")


@dataclass(frozen=True)
class ThresholdRule:
    """The verdict rule. ``--threshold T`` is the short form of ``kind: fixed, value: T``."""

    kind: str = setting("mad", option="threshold_rule", choices=RULES, cli=False,
                        help="mad: batch median + k x 1.4826 x MAD of the image scores; fixed: value is the threshold",
                        aliases=(Alias("threshold", lambda t: {"kind": "fixed", "value": finite_float(str(t))},
                                       type=float, help="fixed verdict threshold on the image score (default: the "
                                                        "batch rule, see README)"),))
    value: float = setting(3.0, option="threshold_value", cli=False,
                           help="k of the mad rule, or the fixed threshold")
    min_batch: int = setting(8, option="threshold_min_batch", cli=False,
                             help="smallest batch the mad rule decides; below it the evidence's own threshold")

    def __post_init__(self):
        if self.kind not in RULES:
            raise ZsadError(f"threshold rule must be 'mad' or 'fixed', got {self.kind!r}")
        if not math.isfinite(self.value):
            raise ZsadError(f"threshold {self.value} is not a finite number; pass e.g. --threshold 0.5")


@dataclass(frozen=True)
class Threshold:
    value: float | None
    rule: str  # human-readable: how the value was obtained


def decide_threshold(scores: np.ndarray, rule: ThresholdRule, natural: float | None = None) -> Threshold:
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if rule.kind == "fixed":
        return Threshold(float(rule.value), f"fixed {rule.value:g}")
    median, sigma = robust_scale(scores, floor=False)
    if scores.size >= rule.min_batch and sigma > 0:
        value = median + rule.value * sigma
        return Threshold(value, f"batch median + {rule.value:g} x 1.4826 x MAD over {scores.size} images")
    count = f"{scores.size} image" if scores.size == 1 else f"{scores.size} images"
    reason = f"only {count}" if scores.size < rule.min_batch else "scores without spread"
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
