"""Turning scores into yes/no verdicts.

Without labels (the zero-shot case) the default rule treats the batch as mostly normal, as MuSc does, and flags
robust outliers: threshold = median + k * 1.4826 * MAD of the batch's image scores (k = 3; 1.4826 * MAD estimates
the standard deviation of the normal scores without being pulled up by the anomalies). It needs a batch: below
``min_batch`` images, or when the scores have no spread, it falls back to the scorer's natural threshold when it
has one (0.5 for text probabilities) and otherwise gives no verdict rather than a guess.

With labels, ``calibrate_threshold`` picks the F1-maximising threshold (the F1-max operating point the literature
reports); a fixed number can also be given.

Rules that hold on contaminated batches live in ``zsad.decisions``: conformal thresholds from the references' own
normal scores (``kind="conformal"``, ``value`` = the false-alarm rate), the contamination posterior of the batch
(``kind="gamma_gmm"``, ``"gamma_gmm_wide"`` or ``"mixture"``) and a known defect rate (``kind="defect_rate"``,
``value`` = the rate).
``decide_threshold`` dispatches to them; every ``Threshold`` names its rule (``name``) and how sure it is
(``certainty``), so each place that shows a verdict can say why.

The "mad" and "fixed" rules and ``Threshold`` are defined once in the torch-free runtime
(``zsad_runtime.verdict``), which decides a deployed detector's verdicts the same way; this module owns the setting
(``ThresholdRule``, declared with its flags), the dispatch to the batch-proof rules, and calibration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from zsad_runtime.verdict import RULES as RUNTIME_RULES
from zsad_runtime.verdict import Threshold
from zsad_runtime.verdict import decide_threshold as decide_runtime_threshold

from zsad.config_fields import Alias, finite_float, setting
from zsad.errors import ZsadError

__all__ = ["RULES", "RUNTIME_RULES", "Threshold", "ThresholdRule", "calibrate_threshold", "decide_threshold"]

RULES = (*RUNTIME_RULES, "conformal", "conformal_mixture", "gamma_gmm", "gamma_gmm_wide", "mixture", "defect_rate")
RATE_RULES = ("conformal", "conformal_mixture", "defect_rate")  # ``value`` is a rate in (0, 1)


@dataclass(frozen=True)
class ThresholdRule:
    """How the image verdict's threshold is chosen. ``--threshold T`` is the short form of ``kind: fixed, value: T``.

    kind: "mad" (median + ``value`` x 1.4826 x MAD of the batch), "fixed" (``value`` is the threshold),
    "conformal" (``value`` is the false-alarm rate; needs the references' leave-one-out normal scores),
    "conformal_mixture" (the conformal rule's flags that the batch's contamination estimate also flags),
    "gamma_gmm" / "gamma_gmm_wide" / "mixture" (threshold at the batch's estimated anomaly fraction, ``value``
    unused; gamma_gmm_wide is zsad's variant of gammaGMM, see ``zsad.decisions.contamination``),
    "defect_rate" (``value`` is the known fraction of defective images).
    """

    kind: str = setting("mad", option="threshold_rule", choices=RULES, cli=False,
                        help="mad: batch median + k x 1.4826 x MAD of the image scores; fixed: value is the threshold; "
                             "conformal: value is the false-alarm rate, from the references' normal scores; "
                             "conformal_mixture: conformal flags the batch estimate also flags; gamma_gmm, "
                             "gamma_gmm_wide, mixture: the batch's estimated anomaly fraction; defect_rate: value is "
                             "the known fraction",
                        aliases=(Alias("threshold", lambda t: {"kind": "fixed", "value": finite_float(str(t))},
                                       type=float, help="fixed verdict threshold on the image score (default: the "
                                                        "batch rule, see README)"),))
    value: float = setting(3.0, option="threshold_value", cli=False,
                           help="k of the mad rule, the fixed threshold, or the rate of a rate rule")
    min_batch: int = setting(8, option="threshold_min_batch", cli=False,
                             help="smallest batch the mad and contamination rules decide; below it the evidence's "
                                  "own threshold")

    def __post_init__(self):
        if self.kind not in RULES:
            raise ZsadError(f"threshold rule must be one of {', '.join(map(repr, RULES))}, got {self.kind!r}")
        if not math.isfinite(self.value):
            raise ZsadError(f"threshold {self.value} is not a finite number; pass e.g. --threshold 0.5")
        if self.kind in RATE_RULES and not 0.0 < self.value < 1.0:
            raise ZsadError(f"{self.kind} needs a rate in (0, 1), got {self.value!r}; e.g. 0.01 for 1 %")


def decide_threshold(scores: np.ndarray, rule: ThresholdRule, natural: float | None = None, *,
                     calibration: np.ndarray | None = None, evidence_scores: np.ndarray | None = None) -> Threshold:
    """The threshold ``rule`` gives for a batch's image ``scores``.

    calibration: the references' leave-one-out normal scores, on the scale of ``scores`` (the conformal rules).
    evidence_scores: [N, M] image scores of each of the run's M evidences (the contamination rules
        estimate the anomaly fraction from all of them; ``scores`` alone when None).
    """
    if rule.kind in RUNTIME_RULES:
        return decide_runtime_threshold(scores, rule, natural)
    from zsad.decisions import rule_threshold

    return rule_threshold(scores, rule, calibration=calibration, evidence_scores=evidence_scores)


def calibrate_threshold(scores, labels) -> float:
    """The F1-maximising threshold on labelled scores (verdict: score >= threshold)."""
    from zsad.metrics import f1_max

    labels = np.asarray(labels)
    if labels.min() == labels.max():
        raise ZsadError("calibration needs both normal and anomalous labelled images")
    return float(f1_max(scores, labels)[1])
