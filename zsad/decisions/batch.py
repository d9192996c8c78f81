"""A run's decision over its batch: which scores the verdict is decided on, by which rule, and the binary masks.

``decide_batch`` is what the Detector calls once its evidences are scored and fused; it returns the runtime's
``Decision``, which ``zsad_runtime.decide.decide_results`` turns into results (the runtime, without these rules,
builds its own "mad" decision there).

Which scores decide: a conformal rule compares an image with the references' leave-one-out normal scores, which
exist on the scale of the evidence that searched the references (few-shot). So with references the verdict is
decided on that evidence's own scores (``decided_on``: "fewshot"), also in fused runs, whose fused scores have no
calibration set; results keep the fused score as ``score`` and say which scores decided. Other rules decide on the
run's scores (fused, or the single evidence's); the contamination rules estimate the anomaly fraction from every
evidence's scores.

Masks: "conformal" cuts the calibrated evidence's maps at the references' patch scores; "test_time" trains a
classifier on the batch's patch features (``features``: [N, h, w, C] on the maps' grid; None when the run kept
none, e.g. images resumed from a journal written without them); "mad" is the run's patch median + 3 x 1.4826 x MAD.
A rule that cannot run (no calibration, no features) leaves the masks to "mad" with a warning, and the mask rule
recorded is the one that ran. Whatever the rule, an image whose verdict is normal shows no mask; an undecided one
(no threshold could be set) shows its mask, so its strongest areas stay visible.
"""
from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
from zsad_runtime.decide import Decision

from zsad.decisions.conformal import conformal_p_values
from zsad.decisions.masks import MaskResult, conformal_masks, mad_masks, test_time_masks
from zsad.decisions.rules import rule_threshold

CONFORMAL = ("conformal", "conformal_mixture")  # the rules that read the references' calibration


def decide_batch(scores: np.ndarray, grids: np.ndarray, evidence: dict[str, tuple[np.ndarray, np.ndarray]],
                 rule, mask_rule, natural: float | None = None,
                 calibration: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                 features: np.ndarray | None = None, features_note: str = "") -> Decision:
    """The verdict threshold and masks of one run.

    scores [N], grids [N, h, w]: the run's (fused) image scores and maps; evidence: each evidence's own (scores,
    maps) by name, in the order they ran; rule, mask_rule: ``zsad.verdict.ThresholdRule`` and ``MaskRule``;
    calibration: (normal scores [k], normal maps [k, h, w]) by evidence name, for the evidences that have them;
    features: [N, h, w, C] patch features for the test-time mask (``features_note``: why there are none).
    """
    scores = np.asarray(scores, dtype=np.float64)
    grids = np.asarray(grids, dtype=np.float32)
    calibration = calibration or {}
    calibrated = next(iter(calibration), None)
    rule = rule.resolved(calibrated is not None)
    single = next(iter(evidence)) if len(evidence) == 1 else "fused"
    on, decided_scores, cal = single, scores, None
    if rule.kind in CONFORMAL and calibrated is not None:
        on, cal = calibrated, calibration[calibrated]
        decided_scores = np.asarray(evidence[calibrated][0], dtype=np.float64)
    columns = np.stack([np.asarray(s, dtype=np.float64) for s, _ in evidence.values()], axis=1)
    threshold = rule_threshold(decided_scores, rule, calibration=None if cal is None else cal[0],
                               evidence_scores=columns, natural=natural)
    p_values = conformal_p_values(decided_scores, cal[0]) if cal is not None else None
    decision = Decision(threshold, decided_scores, on, np.zeros(grids.shape, dtype=bool), "none", "",
                        p_values=p_values)
    verdicts = decision.verdicts()
    result = _masks(grids, evidence, calibration, mask_rule.resolved(calibrated is not None),
                    mask_rule.false_alarm_rate, verdicts, features, features_note)
    # Every image's mask as the rule draws it; the results show it only where the verdict is not normal.
    decision.masks, decision.mask_name, decision.mask_rule = result.values >= result.cut, result.name, result.rule
    on_own_scale = result.name == "mad" or (result.name == "conformal" and len(evidence) == 1)
    decision.pixel_threshold = float(result.cut) if on_own_scale else None  # a cut on the results' grid maps
    return decision


def _instead(mad: MaskResult, wanted: str, why: str) -> MaskResult:
    """The mad masks in place of the ``wanted`` rule, which could not run: said in a warning and in the rule."""
    warnings.warn(f"the {wanted} mask rule could not run ({why}); the mad rule drew the masks", UserWarning,
                  stacklevel=4)
    return replace(mad, rule=f"{mad.rule} (no {wanted} mask: {why})")


def _masks(grids, evidence, calibration, kind: str, rate: float, verdicts, features, features_note) -> MaskResult:
    gate = [v is True for v in verdicts]
    mad = mad_masks(grids, verdicts=gate)
    if kind == "mad":
        return mad
    if kind == "conformal":
        for name, (_, normal_maps) in calibration.items():
            maps = np.asarray(evidence[name][1], dtype=np.float32)
            if maps.shape == grids.shape:
                return conformal_masks(maps, normal_maps, rate, verdicts=gate)
        why = "no reference calibration of the maps" if not calibration else "the calibrated maps are on another grid"
        return _instead(mad, "conformal", why)
    if features is None or tuple(features.shape[:3]) != grids.shape:
        return _instead(mad, "test_time", features_note or "the patch features are on another grid than the maps")
    return test_time_masks(grids, features, verdicts=gate, fallback=mad)
