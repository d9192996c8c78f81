"""The batch-level steps of a detect run, on numbers already in memory: verdict threshold over the batch's image
scores, pixel threshold over its patch maps, top regions, one ``AnomalyResult`` per image, its explanation.

Shared by zsad's ``Detector`` (after its scorers and fusion) and the runtime's ``Runtime`` (after the graph), so a
deployed bundle decides, finds regions and explains exactly as ``zsad detect`` does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from zsad_runtime.explain import Explainer
from zsad_runtime.postprocess import MapPostprocess
from zsad_runtime.regions import pixel_threshold, top_regions
from zsad_runtime.results import AnomalyResult, EvidenceScore
from zsad_runtime.verdict import VerdictRule, decide_threshold


@dataclass(frozen=True)
class Scored:
    """One readable input of the run: the name results use, its file path when there is one, and its size
    (width, height) after EXIF rotation."""

    name: str
    path: str | None
    original_size: tuple[int, int]


def decide_results(images: list[Scored], scores: np.ndarray, grids: np.ndarray,
                   evidence: dict[str, tuple[np.ndarray, np.ndarray]], rule: VerdictRule, natural: float | None,
                   post: MapPostprocess, explainer: Explainer,
                   after: Callable[[AnomalyResult], None] | None = None) -> list[AnomalyResult]:
    """One result per image, in order.

    scores [N] and grids [N, h, w]: the image scores and patch-grid maps the verdict and regions read (fused ones
    when several evidences ran); evidence: each evidence's own (scores [N], maps [N, h, w]) by name, in the order
    they ran; natural: the evidence's own threshold for batches too small for the batch rule (None: none, or
    several evidences); after: called with each result once it is explained (zsad's reasoning layer applies an
    LLM verdict there). The explainer gets the whole run in one call (``explain_many``), so one that waits on a
    server keeps several requests in flight.
    """
    scores = np.asarray(scores).astype(np.float64)
    grids = np.asarray(grids, dtype=np.float32)
    threshold = decide_threshold(scores, rule, natural)
    pixel = pixel_threshold(grids)
    results = [AnomalyResult(
        name=image.name, path=image.path, score=float(scores[i]), threshold=threshold.value,
        threshold_rule=threshold.rule, is_anomalous=None if threshold.value is None else bool(scores[i] >= threshold.value),
        grid_map=grids[i], original_size=tuple(image.original_size), postprocess=post,
        evidence={name: EvidenceScore(float(item_scores[i]), float(item_maps[i].max()), float(item_maps[i].mean()))
                  for name, (item_scores, item_maps) in evidence.items()},
        pixel_threshold=pixel, regions=tuple(top_regions(grids[i], pixel, image.original_size)),
    ) for i, image in enumerate(images)]
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
