"""Turning image scores into yes/no verdicts: the rules of zsad's verdict, decided over a batch, in numpy.

Without labels (the zero-shot case) the default rule treats the batch as mostly normal, as MuSc does, and flags
robust outliers: threshold = median + k * 1.4826 * MAD of the batch's image scores (k = 3; 1.4826 * MAD estimates
the standard deviation of the normal scores without being pulled up by the anomalies). It needs a batch: below
``min_batch`` images, or when the scores have no spread, it falls back to the scorer's natural threshold when it
has one (0.5 for text probabilities) and otherwise gives no verdict rather than a guess. A fixed rule is a number.

With good references, the "conformal" rule compares each image's score with the references' leave-one-out normal
scores (``zsad_runtime.conformal``): a bundle carries them, so it decides without the batch.

Defined here, once, because a deployed detector decides exactly as ``zsad detect`` does, over each call's batch;
zsad's declared setting (``zsad.verdict.ThresholdRule``, with its command-line flags) decides with
``decide_threshold``; a bundle records the same fields (``RuleSpec``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from zsad_runtime.conformal import conformal_threshold
from zsad_runtime.errors import ZsadError
from zsad_runtime.robust import robust_scale

RULES = ("mad", "fixed", "conformal")


class VerdictRule(Protocol):
    """What ``decide_threshold`` reads: zsad's ``ThresholdRule`` or a bundle's ``RuleSpec``."""

    kind: str
    value: float
    min_batch: int
    false_alarm_rate: float


def check_rule(kind: str, value: float, false_alarm_rate: float = 0.01) -> None:
    if kind not in RULES:
        raise ZsadError(f"threshold rule must be one of {', '.join(RULES)}, got {kind!r}")
    if not math.isfinite(value):
        raise ZsadError(f"threshold {value} is not a finite number; pass e.g. --threshold 0.5")
    if not 0.0 < false_alarm_rate < 1.0:
        raise ZsadError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate!r}; e.g. 0.01 for 1 %")


@dataclass(frozen=True)
class RuleSpec:
    """A verdict rule as a bundle records it: mad (k = ``value``, batches of ``min_batch`` or more), fixed, or
    conformal (the references' leave-one-out scores, bundled, at ``false_alarm_rate``)."""

    kind: str
    value: float
    min_batch: int
    false_alarm_rate: float = 0.01

    def __post_init__(self) -> None:
        check_rule(self.kind, self.value, self.false_alarm_rate)


MASK_KINDS = ("mad", "conformal")


@dataclass(frozen=True)
class MaskSpec:
    """A mask rule as a bundle records it: "mad" (the call's patch median + 3 x 1.4826 x MAD) or "conformal" (the
    references' leave-one-out patch scores, bundled, at ``false_alarm_rate`` per patch)."""

    kind: str = "mad"
    false_alarm_rate: float = 0.001

    def __post_init__(self) -> None:
        if self.kind not in MASK_KINDS:
            raise ZsadError(f"mask rule must be one of {', '.join(MASK_KINDS)}, got {self.kind!r}")
        if not 0.0 < self.false_alarm_rate < 1.0:
            raise ZsadError(f"mask false_alarm_rate must be in (0, 1), got {self.false_alarm_rate!r}")


@dataclass(frozen=True)
class Threshold:
    """A verdict threshold (anomalous when ``score >= value``) with the rule that decided it.

    rule: in words, for people. name: the rule as a key ("mad", "fixed", "conformal", "natural", "none", and zsad's
    batch rules "conformal_mixture", "gamma_gmm", "gamma_gmm_wide", "mixture", "defect_rate"). certainty: how sure
    the rule is, in its own terms: the guaranteed false-alarm rate of a conformal rule, the posterior mean and 90 %
    interval of the anomaly fraction of a contamination rule; empty for "mad", "fixed" and "natural", which promise
    nothing.
    """

    value: float | None
    rule: str
    name: str = ""
    certainty: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "rule": self.rule, "name": self.name, "certainty": dict(self.certainty)}


def conformal_rule(calibration: np.ndarray, false_alarm_rate: float) -> Threshold:
    """The conformal verdict threshold of normal ``calibration`` scores (``zsad_runtime.conformal``), with its
    certainty: the guaranteed false-alarm rate (and the requested one, when k references cannot reach it)."""
    result = conformal_threshold(calibration, false_alarm_rate)
    certainty = {"false_alarm_rate": result.rate, "requested_rate": result.requested,
                 "smallest_rate": 1.0 / (result.k + 1), "calibration_scores": result.k}
    return Threshold(result.value, result.describe(), "conformal", certainty)


def decide_threshold(scores: np.ndarray, rule: VerdictRule, natural: float | None = None,
                     calibration: np.ndarray | None = None) -> Threshold:
    """The threshold of a "mad", "fixed" or "conformal" rule (``calibration``: the references' leave-one-out
    normal scores, on the scale of ``scores``)."""
    if rule.kind == "conformal":
        if calibration is None:
            raise ZsadError("the conformal verdict needs the references' leave-one-out normal scores; pass "
                            "--references with two or more good images, or choose another threshold rule")
        return conformal_rule(calibration, rule.false_alarm_rate)
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if rule.kind == "fixed":
        return Threshold(float(rule.value), f"fixed {rule.value:g}", "fixed")
    median, sigma = robust_scale(scores, floor=False)
    if scores.size >= rule.min_batch and sigma > 0:
        value = median + rule.value * sigma
        return Threshold(value, f"batch median + {rule.value:g} x 1.4826 x MAD over {scores.size} images", "mad")
    count = f"{scores.size} image" if scores.size == 1 else f"{scores.size} images"
    reason = f"only {count}" if scores.size < rule.min_batch else "scores without spread"
    if natural is not None:
        return Threshold(natural, f"natural threshold {natural:g} ({reason} for the batch rule)", "natural")
    return Threshold(None, f"no verdict: {reason} for the batch rule; pass a fixed threshold or calibrate with labels",
                     "none")


def certainty_words(name: str, certainty: dict[str, Any]) -> str:
    """A threshold's rule and certainty in a few words, for summary lines, legends and the demo:
    "conformal_mixture: false alarms <= 11.1 % (8 references); batch estimate 66 % anomalous (90 %: 52-79 %)"."""
    parts = []
    if "false_alarm_rate" in certainty:
        parts.append(f"false alarms <= {certainty['false_alarm_rate']:.1%} "
                     f"({certainty.get('calibration_scores', '?')} references)")
    batch = certainty.get("batch", certainty)
    if "fraction_mean" in batch:
        low, high = batch.get("fraction_interval", (float("nan"), float("nan")))
        parts.append(f"batch estimate {batch['fraction_mean']:.0%} anomalous (90 %: {low:.0%}-{high:.0%})")
    if "defect_rate" in certainty:
        parts.append(f"known defect rate {certainty['defect_rate']:.1%}")
    promise = {"mad": "assumes a mostly normal batch", "fixed": "a fixed number", "natural": "the evidence's own "
               "threshold", "none": "no verdict"}.get(name, "")
    words = "; ".join(parts) or promise
    return f"{name or 'rule'}: {words}" if words else (name or "")
