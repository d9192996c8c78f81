"""Verdicts calibrated on good references: split-conformal p-values and false-alarm-rate thresholds.

With k known-good references, each reference is scored against the other k - 1 (leave-one-out; the few-shot
scorer's ``build_memory`` does this). Those k normal scores say directly what a normal image's score looks like,
whatever the test batch holds, so the threshold never depends on how many defects the batch has.

Definitions (split conformal prediction, e.g. Vovk et al. 2005; Bates et al., "Testing for outliers with conformal
p-values", Ann. Statist. 2023):

- p-value of a test score s against calibration scores c_1..c_k: ``p(s) = (1 + #{i: c_i >= s}) / (k + 1)``.
  If s and the c_i are exchangeable (s from a normal image), ``P(p(s) <= alpha) <= alpha`` for every alpha: the
  false-alarm rate of "anomalous when p <= alpha" is at most alpha, with no assumption on the score distribution.
- p can never be below ``1 / (k + 1)``, so k references cannot promise a finer rate than that. When the user asks
  for a finer alpha (the default 0.01 with 8 references), the rule uses ``1 / (k + 1)`` (flag only scores above
  every normal score) and says so: asking for 1 % with 8 references gives an 11.1 % guarantee, not a silent 0 %.
- The score threshold equivalent to "p <= alpha": with m = floor(alpha (k + 1)) - 1 and c_(1) >= c_(2) >= ...
  the calibration scores in decreasing order, p(s) <= alpha exactly when s > c_(m+1). zsad's verdicts are
  ``score >= threshold``, so the returned threshold is the next float above c_(m+1).

Why the guarantee holds here, and where only approximately: a leave-one-out reference is compared with k - 1
others while a test image is compared with all k, so its nearest-patch distances are slightly larger than a normal
test image's: the calibration scores are, if anything, too high, which keeps the false-alarm rate at or under the
guarantee (conservative). The guarantee is marginal: averaged over draws of the references; one fixed set of
references can give a run whose false-alarm rate is above it, the more so the fewer references.

The same functions calibrate patch thresholds for masks: pass the references' leave-one-out patch scores
(all patches of all references, flattened) as the calibration set; alpha is then a per-patch false-alarm rate.

Defined here, in the torch-free runtime, because a deployed bundle decides with the same rule (its calibration
scores are part of the bundle); zsad's ``zsad.decisions`` imports it from here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from zsad_runtime.errors import ZsadError

DEFAULT_FALSE_ALARM_RATE = 0.01


def _calibration(calibration: np.ndarray, what: str = "calibration scores") -> np.ndarray:
    values = np.asarray(calibration, dtype=np.float64).ravel()
    if values.size == 0:
        raise ZsadError(f"no {what}: conformal verdicts need the leave-one-out scores of at least one good "
                        "reference; pass two or more reference images")
    if not np.isfinite(values).all():
        raise ZsadError(f"{what} contain NaN or infinite values; rebuild the reference memory")
    return values


def conformal_p_values(scores: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """p = (1 + #{calibration >= s}) / (k + 1) for each score s (any shape; NaN stays NaN)."""
    cal = np.sort(_calibration(calibration))
    s = np.asarray(scores, dtype=np.float64)
    # #{c >= s} = k - #{c < s}; searchsorted(side="left") counts the calibration values strictly below s.
    at_least = cal.size - np.searchsorted(cal, s, side="left")
    p = (1.0 + at_least) / (cal.size + 1.0)
    return np.where(np.isnan(s), np.nan, p)


def smallest_rate(k: int) -> float:
    """The finest false-alarm rate k calibration scores can guarantee, 1 / (k + 1)."""
    return 1.0 / (k + 1)


@dataclass(frozen=True)
class ConformalThreshold:
    """A false-alarm-rate threshold from normal calibration scores.

    value: anomalous when ``score >= value`` (equivalently p-value <= ``rate``).
    requested: the rate the user asked for; rate: the rate the rule guarantees, ``max(requested, 1 / (k + 1))``
        rounded down to the attainable grid ``j / (k + 1)``; k: the number of calibration scores.
    """

    value: float
    requested: float
    rate: float
    k: int

    @property
    def coarser_than_requested(self) -> bool:
        return self.rate > self.requested + 1e-12

    def describe(self, unit: str = "references") -> str:
        text = (f"conformal: false-alarm rate <= {self.rate:.3g} from the leave-one-out normal scores of {self.k} "
                f"{unit}")
        if self.coarser_than_requested:
            text += (f" (asked for {self.requested:g}; {self.k} {unit} can guarantee no finer rate than "
                     f"1/{self.k + 1} = {smallest_rate(self.k):.3g}; add references for a finer one)")
        return text


def conformal_threshold(calibration: np.ndarray, false_alarm_rate: float = DEFAULT_FALSE_ALARM_RATE
                        ) -> ConformalThreshold:
    """The score threshold whose false-alarm rate on normal images is at most ``false_alarm_rate``."""
    if not 0.0 < false_alarm_rate < 1.0:
        raise ZsadError(f"false-alarm rate {false_alarm_rate!r} must be in (0, 1); e.g. 0.01 for 1 %")
    cal = np.sort(_calibration(calibration))[::-1]  # decreasing
    k = cal.size
    # The tolerance keeps exact products (0.29 * 100 = 28.999999999999996) on their intended integer.
    allowed = max(math.floor(false_alarm_rate * (k + 1) + 1e-9), 1)  # 1 + #{c >= s} may be at most this
    # allowed <= k because false_alarm_rate < 1; flag s when #{c >= s} <= allowed - 1, i.e. s > c_(allowed).
    value = float(np.nextafter(cal[allowed - 1], np.inf))
    return ConformalThreshold(value=value, requested=float(false_alarm_rate), rate=allowed / (k + 1), k=k)
