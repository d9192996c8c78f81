"""Turning scores into yes/no verdicts.

Without labels (the zero-shot case) the default rule treats the batch as mostly normal, as MuSc does, and flags
robust outliers: threshold = median + k * 1.4826 * MAD of the batch's image scores (k = 3; 1.4826 * MAD estimates
the standard deviation of the normal scores without being pulled up by the anomalies). It needs a batch: below
``min_batch`` images, or when the scores have no spread, it falls back to the scorer's natural threshold when it
has one (0.5 for text probabilities) and otherwise gives no verdict rather than a guess.

With labels, ``calibrate_threshold`` picks the F1-maximising threshold (the F1-max operating point the literature
reports); a fixed number can also be given.

The rules themselves (``decide_threshold``, ``Threshold``, their validation) are defined once in the torch-free
runtime (``zsad_runtime.verdict``), which decides a deployed detector's verdicts the same way; this module owns the
setting (``ThresholdRule``, declared with its flags) and calibration.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from zsad_runtime.verdict import RULES, Threshold, check_rule, decide_threshold

from zsad.config_fields import Alias, finite_float, setting
from zsad.errors import ZsadError

__all__ = ["RULES", "Threshold", "ThresholdRule", "calibrate_threshold", "decide_threshold"]


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
        check_rule(self.kind, self.value)


def calibrate_threshold(scores, labels) -> float:
    """The F1-maximising threshold on labelled scores (verdict: score >= threshold)."""
    from zsad.metrics import f1_max

    labels = np.asarray(labels)
    if labels.min() == labels.max():
        raise ZsadError("calibration needs both normal and anomalous labelled images")
    return float(f1_max(scores, labels)[1])
