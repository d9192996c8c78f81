"""From a batch's scores to a ``Threshold`` that names its rule and how sure it is.

``rule_threshold`` is what ``zsad.verdict.decide_threshold`` calls; beyond the runtime's "mad" and "fixed" rules:

- "conformal": the references' leave-one-out normal scores decide (``zsad_runtime.conformal``, also in a
  deployed bundle, so ``zsad_runtime.verdict`` decides it and this module passes it on); certainty is
  the guaranteed false-alarm rate (and the requested one, when k references cannot reach it).
- "gamma_gmm" / "gamma_gmm_wide" / "mixture": the batch's anomaly fraction is estimated from every evidence's scores
  (``zsad.decisions.contamination``) and the round(mean x N) highest scores are flagged; certainty is the
  posterior mean and 90 % interval of the fraction.
- "conformal_mixture": the conformal rule's flags that the "mixture" rule also flags. A subset of the conformal
  flags, so the false-alarm guarantee still holds; the batch only *removes* flags, which matters when a few
  references can guarantee no better than 1/(k + 1) (11 % with 8 references: about ten false alarms in a clean
  batch of 100). With 60 % defects the mixture flags them all and the conformal rule decides alone.
- "defect_rate": the user knows the fraction; the round(rate x N) highest scores are flagged.

Fractions become thresholds by count, not by an interpolated quantile: flagging round(f N) images is what "a
fraction f of the batch is anomalous" means for N images, and ties at the threshold are flagged together (the
verdict is ``score >= threshold``).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from zsad_runtime.verdict import RULES as RUNTIME_RULES
from zsad_runtime.verdict import RuleSpec, Threshold, VerdictRule, decide_threshold

from zsad.decisions.contamination import (
    ContaminationPosterior,
    GammaGMMConfig,
    gamma_gmm,
    mixture_fraction,
)
from zsad.errors import ZsadError

MAD_RULE = RuleSpec("mad", 3.0, 8)  # the default batch rule of zsad.verdict.ThresholdRule
CONTAMINATION_ESTIMATES = {
    "gamma_gmm": lambda columns: gamma_gmm(columns, GammaGMMConfig()),
    "gamma_gmm_wide": lambda columns: gamma_gmm(columns, GammaGMMConfig.wide()),
    "mixture": mixture_fraction,
}


def fraction_threshold(scores: np.ndarray, fraction: float) -> float:
    """The threshold that flags the round(fraction x N) highest of ``scores`` (``score >= threshold``)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if s.size == 0:
        raise ZsadError("no scores to threshold; every image of the batch failed")
    count = int(np.clip(np.round(fraction * s.size), 0, s.size))
    return float(np.nextafter(s[0], np.inf)) if count == 0 else float(s[count - 1])


def contamination_threshold(scores: np.ndarray, posterior: ContaminationPosterior, rule: str,
                            fallback: VerdictRule | None = MAD_RULE) -> Threshold:
    """Flag the batch's round(mean x N) highest scores, stating the posterior it came from.

    When the estimate found no anomalous group (``posterior.found`` is False: gammaGMM's prior could not be fitted,
    or the mixture saw one group), the batch looks like normal images plus perhaps a few outliers, which is what the
    MAD rule is made for: ``fallback`` decides then (None: flag nothing), and the threshold says so.
    """
    summary = posterior.summary()
    low, high = summary["fraction_interval"]
    name = {"gamma_gmm": "gammaGMM (Perini et al., ICML 2023)",
            "gamma_gmm_wide": "gammaGMM with zsad's wide prior (gamma_gmm_wide)",
            "mixture": "two-Gaussian mixture"}[rule]
    if not posterior.found and fallback is not None:
        outlier = decide_threshold(scores, fallback)
        return Threshold(outlier.value, f"{name}: {posterior.note}; outliers by the batch rule: {outlier.rule}", rule,
                         {**summary, "fallback": outlier.name})
    # gammaGMM's protocol thresholds at the posterior mean; a mixture that models each image flags its members.
    count = (int(np.round(posterior.mean * len(scores))) if posterior.membership is None
             else int((posterior.membership >= 0.5).sum()))
    value = fraction_threshold(scores, count / len(scores))
    text = (f"estimated anomaly fraction {posterior.mean:.1%} (90 % interval {low:.1%}-{high:.1%}, {name}) of "
            f"{len(scores)} images; the top {count} flagged")
    if posterior.note:
        text += f"; {posterior.note}"
    return Threshold(value, text, rule, summary)


def rule_threshold(scores: np.ndarray, rule: VerdictRule, *, calibration: np.ndarray | None = None,
                   evidence_scores: np.ndarray | None = None, natural: float | None = None) -> Threshold:
    """The threshold of ``rule`` (a ``zsad.verdict.ThresholdRule`` of any kind; "auto" resolves first) for
    ``scores``; the calibration must be on the scale of ``scores``. natural: the evidence's own threshold, used
    when a batch is too small for a batch rule. The "mad" and "fixed" rules are the runtime's."""
    if rule.kind == "auto":
        rule = rule.resolved(calibration is not None)
    if rule.kind in RUNTIME_RULES:  # mad, fixed, conformal
        return decide_threshold(scores, rule, natural, calibration)
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if rule.kind == "conformal_mixture":
        conformal = rule_threshold(scores, replace(rule, kind="conformal"), calibration=calibration)
        batch = rule_threshold(scores, replace(rule, kind="mixture"), evidence_scores=evidence_scores)
        if batch.value is None:  # a batch too small to estimate: the references decide alone
            why = batch.rule.removeprefix("no verdict: ").split("; pass")[0]
            return Threshold(conformal.value, f"{conformal.rule}; no batch estimate to agree with ({why})",
                             "conformal_mixture", conformal.certainty)
        return Threshold(max(conformal.value, batch.value),
                         f"{conformal.rule}; of those, the images the batch estimate also flags: {batch.rule}",
                         "conformal_mixture", {**conformal.certainty, "batch": batch.certainty})
    if rule.kind == "defect_rate":
        count = int(np.round(rule.value * finite.sum()))
        return Threshold(fraction_threshold(scores[finite], rule.value),
                         f"known defect rate {rule.value:.1%}: the top {count} of {int(finite.sum())} images flagged",
                         "defect_rate", {"defect_rate": float(rule.value)})
    if rule.kind in CONTAMINATION_ESTIMATES:
        columns = scores[:, None] if evidence_scores is None else np.asarray(evidence_scores, dtype=np.float64)
        if columns.ndim == 1:
            columns = columns[:, None]
        if columns.shape[0] != scores.shape[0]:
            raise ZsadError(f"evidence_scores has {columns.shape[0]} rows for {scores.shape[0]} image scores; "
                            "pass one row per image, in the same order")
        keep = finite & np.isfinite(columns).all(axis=1)
        if keep.sum() < rule.min_batch:
            count = int(keep.sum())
            reason = f"only {count} image{'' if count == 1 else 's'} for the contamination estimate (needs " \
                     f"{rule.min_batch})"
            if natural is not None:
                return Threshold(natural, f"natural threshold {natural:g} ({reason})", "natural")
            return Threshold(None, f"no verdict: {reason}; pass references or --defect-rate", "none")
        return contamination_threshold(scores[keep], CONTAMINATION_ESTIMATES[rule.kind](columns[keep]), rule.kind)
    raise ZsadError(f"unknown threshold rule {rule.kind!r}")
