"""The batch-level steps of a detect run, on numbers already in memory: verdict threshold over the batch's image
scores, binary masks of its patch maps, top regions, one ``AnomalyResult`` per image, its explanation.

Shared by zsad's ``Detector`` (after its scorers and fusion) and the runtime's ``Runtime`` (after the graph), so a
deployed bundle decides, finds regions and explains exactly as ``zsad detect`` does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from zsad_runtime.conformal import conformal_p_values, conformal_threshold
from zsad_runtime.errors import ZsadError
from zsad_runtime.explain import Explainer
from zsad_runtime.postprocess import MapPostprocess
from zsad_runtime.regions import pixel_threshold
from zsad_runtime.results import AnomalyResult, EvidenceScore
from zsad_runtime.verdict import MaskSpec, Threshold, VerdictRule, decide_threshold


@dataclass(frozen=True)
class Scored:
    """One readable input of the run: the name results use, its file path when there is one, and its size
    (width, height) after EXIF rotation."""

    name: str
    path: str | None
    original_size: tuple[int, int]


@dataclass
class Decision:
    """What a run decided over its batch: the verdict threshold (``threshold``, which names its rule and certainty)
    on ``verdict_scores`` [N] (the fused scores, or one evidence's own when the rule is calibrated on that evidence:
    ``decided_on``), each image's conformal p-value when the rule has one, and the binary masks [N, h, w] on the
    patch grid as the mask rule draws them for every image (``mask_name``: "mad", "conformal",
    "test_time_classifier"; ``mask_rule`` in words); a result shows its mask (regions, anomalous area) only when
    its verdict is not normal. ``pixel_threshold``: the masks' cut on the map's
    own scale, None when a classifier (not a threshold on the map) decided them.
    """

    threshold: Threshold
    verdict_scores: np.ndarray
    decided_on: str
    masks: np.ndarray
    mask_name: str
    mask_rule: str
    pixel_threshold: float | None = None
    p_values: np.ndarray | None = None

    def describe(self) -> dict:
        """For results.json's ``ran``: the rule that decided, on which scores, and the mask rule."""
        return {"threshold": self.threshold.to_dict(), "decided_on": self.decided_on,
                "mask": {"name": self.mask_name, "rule": self.mask_rule}}

    def verdicts(self) -> list[bool | None]:
        value = self.threshold.value
        return [None if value is None or not np.isfinite(s) else bool(s >= value) for s in self.verdict_scores]


def rule_decision(scores: np.ndarray, grids: np.ndarray, rule: VerdictRule, natural: float | None,
                  decided_on: str = "fused", calibration: tuple[np.ndarray, np.ndarray] | None = None,
                  mask: MaskSpec = MaskSpec()) -> Decision:
    """The runtime's own decision: "mad", "fixed" or "conformal" verdicts on ``scores``, "mad" or "conformal"
    masks. calibration: the references' leave-one-out normal scores [k] and maps [k, h, w] (conformal rules);
    ``decided_on``: the evidence's name when one evidence ran."""
    threshold = decide_threshold(scores, rule, natural, None if calibration is None else calibration[0])
    p_values = conformal_p_values(scores, calibration[0]) if rule.kind == "conformal" else None
    if mask.kind == "conformal":
        if calibration is None:
            raise ZsadError("the conformal mask needs the references' leave-one-out patch scores; pass references "
                            "or choose the mad mask rule")
        cut = conformal_threshold(calibration[1], mask.false_alarm_rate)
        value, words = cut.value, cut.describe("reference patches")
    else:
        value = pixel_threshold(grids)
        words = f"patch median + 3 x 1.4826 x MAD over the run's {grids.size} patch values ({value:.4g})"
    return Decision(threshold, scores, decided_on, grids >= value, mask.kind, words, value, p_values)


def decide_results(images: list[Scored], scores: np.ndarray, grids: np.ndarray,
                   evidence: dict[str, tuple[np.ndarray, np.ndarray]], rule: VerdictRule, natural: float | None,
                   post: MapPostprocess, explainer: Explainer,
                   after: Callable[[AnomalyResult], None] | None = None,
                   decision: Decision | None = None) -> list[AnomalyResult]:
    """One result per image, in order.

    scores [N] and grids [N, h, w]: the image scores and patch-grid maps the results carry (fused ones when several
    evidences ran); evidence: each evidence's own (scores [N], maps [N, h, w]) by name, in the order they ran;
    natural: the evidence's own threshold for batches too small for the batch rule (None: none, or several
    evidences); decision: what zsad's rules decided over the batch (``zsad.decisions.batch``); None: the
    runtime's own rules decide (``rule_decision``, the "mad" rules). after: called with each result once it is explained
    (zsad's reasoning layer applies an LLM verdict there). The explainer gets the whole run in one call
    (``explain_many``), so one that waits on a server keeps several requests in flight.

    A normal verdict has no mask and no region; an undecided one (no threshold) keeps the regions of its mask.
    """
    scores = np.asarray(scores).astype(np.float64)
    grids = np.asarray(grids, dtype=np.float32)
    if decision is None:
        decision = rule_decision(scores, grids, rule, natural, next(iter(evidence)) if len(evidence) == 1
                                 else "fused")
    threshold, verdicts = decision.threshold, decision.verdicts()
    results = [AnomalyResult(
        name=image.name, path=image.path, score=float(scores[i]), threshold=threshold.value,
        threshold_rule=threshold.rule, is_anomalous=verdicts[i], threshold_name=threshold.name,
        certainty=dict(threshold.certainty), decided_on=decision.decided_on,
        p_value=None if decision.p_values is None else float(decision.p_values[i]),
        grid_map=grids[i], original_size=tuple(image.original_size), postprocess=post,
        evidence={name: EvidenceScore(float(item_scores[i]), float(item_maps[i].max()), float(item_maps[i].mean()))
                  for name, (item_scores, item_maps) in evidence.items()},
        pixel_threshold=decision.pixel_threshold, mask=decision.masks[i], mask_rule=decision.mask_name,
    ) for i, image in enumerate(images)]
    for result in results:
        result.regions = tuple(result.shown_regions())
    for result, text in zip(results, explainer.explain_many(results)):
        result.explanation = text
        if after is not None:
            after(result)
    return results


def error_result(name: str, path: str | None, error: Exception, explainer: Explainer) -> AnomalyResult:
    """The result of an input that could not be read: ``error`` set, explained (``not inspected: ...``)."""
    result = AnomalyResult(name=name, path=path, error=str(error))
    result.explanation = explainer.explain(result, [])
    return result
