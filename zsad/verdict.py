"""Turning scores into yes/no verdicts.

The default rule ("auto") never assumes the batch is mostly normal: with good references it calibrates on their
leave-one-out normal scores (conformal, at ``--false-alarm-rate``) and keeps the flags the batch's contamination
estimate agrees with; without references it estimates the batch's anomaly fraction. The "mad" rule (MuSc's
assumption of a mostly normal batch: median + k * 1.4826 * MAD of the image scores) stays a named option.
Batch rules need a batch: below ``min_batch`` images, or when the scores have no spread, they fall back to the
scorer's natural threshold when it has one (0.5 for text probabilities) and otherwise give no verdict rather than
a guess.

With labels, ``calibrate_threshold`` picks the F1-maximising threshold (the F1-max operating point the literature
reports); a fixed number can also be given.

Rules that hold on contaminated batches live in ``zsad.decisions``: conformal thresholds from the references' own
normal scores (``kind="conformal"``, at ``false_alarm_rate``), the contamination posterior of the batch
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
from dataclasses import dataclass, replace

import numpy as np
from zsad_runtime.verdict import RULES as RUNTIME_RULES
from zsad_runtime.verdict import Threshold, certainty_words
from zsad_runtime.verdict import decide_threshold as decide_runtime_threshold

from zsad.config_fields import Alias, finite_float, setting
from zsad.errors import ZsadError

__all__ = ["MASK_RULES", "RULES", "RUNTIME_RULES", "MaskRule", "Threshold", "ThresholdRule", "calibrate_threshold",
           "certainty_words", "decide_threshold"]

RULES = ("auto", *RUNTIME_RULES, "conformal_mixture", "gamma_gmm", "gamma_gmm_wide", "mixture", "defect_rate")
MASK_RULES = ("auto", "conformal", "test_time", "mad")


def _rate(option: str):
    def check(text) -> float:
        value = finite_float(str(text))
        if not 0.0 < value < 1.0:
            raise ZsadError(f"--{option.replace('_', '-')} must be a rate in (0, 1), got {text!r}; e.g. 0.01 for 1 %")
        return value
    return check


@dataclass(frozen=True)
class ThresholdRule:
    """How the image verdict's threshold is chosen. ``--threshold T`` is the short form of ``kind: fixed, value: T``,
    ``--defect-rate R`` of ``kind: defect_rate, value: R``.

    kind: "auto" (the default: "conformal_mixture" when the references give leave-one-out normal scores, else
    "mixture"; the rule that ran is recorded, never "auto"), "mad" (median + ``value`` x 1.4826 x MAD of the batch,
    which assumes a mostly normal batch), "fixed" (``value`` is the threshold), "conformal" (the references'
    leave-one-out normal scores at ``false_alarm_rate``), "conformal_mixture" (the conformal rule's flags that the
    batch's contamination estimate also flags), "gamma_gmm" / "gamma_gmm_wide" / "mixture" (threshold at the
    batch's estimated anomaly fraction; gamma_gmm_wide is zsad's variant of gammaGMM, see
    ``zsad.decisions.contamination``), "defect_rate" (``value`` is the known fraction of defective images).

    Why "auto" picks these (``eval/bench_decisions.py`` on ``zsad synth`` at 1-80 % defects): the MAD rule flags
    nothing once defects are the majority (F1 0 at 60 %); the conformal rule alone holds its false-alarm guarantee
    but 8 references can guarantee no better than 1/9, about ten false alarms in a clean batch of 100, which the
    mixture's AND removes; without references the two-Gaussian mixture matched or beat gammaGMM at every rate.
    """

    kind: str = setting("auto", option="threshold_rule", choices=RULES,
                        help="auto: conformal_mixture with references, else mixture; mad: batch median + k x 1.4826 "
                             "x MAD of the image scores (a mostly normal batch); fixed: --threshold-value is the "
                             "threshold; conformal: the references' leave-one-out normal scores at "
                             "--false-alarm-rate; conformal_mixture: conformal flags the batch estimate also flags; "
                             "gamma_gmm, gamma_gmm_wide, mixture: the batch's estimated anomaly fraction; "
                             "defect_rate: --threshold-value is the known fraction",
                        aliases=(Alias("threshold", lambda t: {"kind": "fixed", "value": finite_float(str(t))},
                                       type=float, help="fixed verdict threshold on the image score (default: "
                                                        "--threshold-rule auto, see README)"),
                                 Alias("defect_rate", lambda r: {"kind": "defect_rate",
                                                                 "value": _rate("defect_rate")(r)},
                                       type=float, help="the known fraction of defective images in the batch "
                                                        "(0.05 for 5 %): its highest-scoring share is flagged")))
    value: float = setting(3.0, option="threshold_value",
                           help="k of the mad rule, the fixed threshold, or the rate of defect_rate")
    false_alarm_rate: float = setting(0.01, parse=_rate("false_alarm_rate"),
                                      help="the conformal rules' rate of normal images flagged (with k references "
                                           "no better than 1/(k+1) can be guaranteed; the rule then says so)")
    min_batch: int = setting(8, option="threshold_min_batch",
                             help="smallest batch the mad and contamination rules decide; below it the evidence's "
                                  "own threshold")

    def __post_init__(self):
        if self.kind not in RULES:
            raise ZsadError(f"threshold rule must be one of {', '.join(map(repr, RULES))}, got {self.kind!r}")
        if not math.isfinite(self.value):
            raise ZsadError(f"threshold {self.value} is not a finite number; pass e.g. --threshold 0.5")
        if self.kind == "defect_rate" and not 0.0 < self.value < 1.0:
            raise ZsadError(f"defect_rate needs a rate in (0, 1), got {self.value!r}; e.g. --defect-rate 0.05")
        if not 0.0 < self.false_alarm_rate < 1.0:
            raise ZsadError(f"false_alarm_rate must be in (0, 1), got {self.false_alarm_rate!r}; e.g. 0.01 for 1 %")

    def resolved(self, has_calibration: bool) -> ThresholdRule:
        """The rule that runs: "auto" becomes "conformal_mixture" with the references' calibration, else "mixture"."""
        if self.kind != "auto":
            return self
        return replace(self, kind="conformal_mixture" if has_calibration else "mixture")


@dataclass(frozen=True)
class MaskRule:
    """How the patch maps become the binary masks behind regions, outlines and anomalous areas
    (``zsad.decisions.masks``). An image whose verdict is normal has no mask, whatever the rule.

    kind: "auto" ("conformal" when the references give leave-one-out patch scores, else "test_time"), "conformal"
    (a normal patch is marked with probability at most ``false_alarm_rate``), "test_time" (a classifier trained on
    this batch's confident patches; needs the run's patch features, kept while scoring), "mad" (median + 3 x
    1.4826 x MAD of every patch value of the run: a top-tail rule that outlines part of every map).
    """

    kind: str = setting("auto", option="mask_rule", choices=MASK_RULES,
                        help="auto: conformal with references, else test_time; conformal: above the references' "
                             "leave-one-out patch scores at --mask-false-alarm-rate; test_time: a classifier "
                             "trained on this batch's confident patches; mad: the run's patch median + 3 x 1.4826 "
                             "x MAD")
    false_alarm_rate: float = setting(0.001, option="mask_false_alarm_rate", parse=_rate("mask_false_alarm_rate"),
                                      help="the conformal mask's rate of normal patches marked")

    def __post_init__(self):
        if self.kind not in MASK_RULES:
            raise ZsadError(f"mask rule must be one of {', '.join(map(repr, MASK_RULES))}, got {self.kind!r}")
        if not 0.0 < self.false_alarm_rate < 1.0:
            raise ZsadError(f"mask false_alarm_rate must be in (0, 1), got {self.false_alarm_rate!r}")

    def resolved(self, has_calibration: bool) -> str:
        if self.kind != "auto":
            return self.kind
        return "conformal" if has_calibration else "test_time"


def decide_threshold(scores: np.ndarray, rule: ThresholdRule, natural: float | None = None, *,
                     calibration: np.ndarray | None = None, evidence_scores: np.ndarray | None = None) -> Threshold:
    """The threshold ``rule`` gives for a batch's image ``scores``.

    calibration: the references' leave-one-out normal scores, on the scale of ``scores`` (the conformal rules).
    evidence_scores: [N, M] image scores of each of the run's M evidences (the contamination rules
        estimate the anomaly fraction from all of them; ``scores`` alone when None).
    natural: the evidence's own threshold, for batches too small for a batch rule.
    """
    if rule.kind in RUNTIME_RULES:  # without importing zsad.decisions (scipy, scikit-learn)
        return decide_runtime_threshold(scores, rule, natural, calibration)
    from zsad.decisions import rule_threshold

    return rule_threshold(scores, rule, calibration=calibration, evidence_scores=evidence_scores, natural=natural)


def calibrate_threshold(scores, labels) -> float:
    """The F1-maximising threshold on labelled scores (verdict: score >= threshold)."""
    from zsad.metrics import f1_max

    labels = np.asarray(labels)
    if labels.min() == labels.max():
        raise ZsadError("calibration needs both normal and anomalous labelled images")
    return float(f1_max(scores, labels)[1])
