"""What a user gets per image, from zsad's detector and from the torch-free runtime alike (one class).

A result keeps its map on the backbone's patch grid (``grid_map``, float32, a few KB) together with how to bring it
to the image (``postprocess``: upsampling, smoothing, original size). ``anomaly_map`` is computed from these when
read, and ``map_at(size)`` gives it at any other size (overlays of huge images): a run over 10,000 images holds
10,000 small grids, never 10,000 full-size float maps.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zsad_runtime.postprocess import MapPostprocess, unsmoothed
from zsad_runtime.regions import top_regions


@dataclass(frozen=True)
class EvidenceScore:
    """One evidence's own numbers for one image, in that evidence's units (before fusion)."""

    score: float
    map_max: float
    map_mean: float

    def to_dict(self) -> dict[str, float]:
        return {"score": self.score, "map_max": self.map_max, "map_mean": self.map_mean}


@dataclass
class AnomalyResult:
    """One image's outcome. ``error`` is set (and score/map are None) when the image could not be processed, so a
    batch keeps one result per input in input order and one bad file never loses the others' results.

    evidence: each evidence's own image score and map statistics, by scorer name, in the order they ran; the fused
        ``score`` and ``grid_map`` combine them (``zsad.scoring.fusion``).
    threshold, threshold_rule, threshold_name, certainty: the image-score threshold of the verdict, its rule in words
        and as a key ("conformal_mixture", "mixture", "mad", ...; ``verdict_rule`` in records), and how sure the
        rule is in its own terms (guaranteed false-alarm rate, posterior of the anomaly fraction).
    decided_on: the scores the threshold was compared with ("fused", an evidence's name, or "score").
    p_value: the conformal p-value of the image among the references' normal scores, when the rule has one.
    mask, mask_rule: the binary mask on the patch grid as the mask rule drew it, and the rule ("conformal",
        "test_time_classifier", "mad"). ``regions`` and ``anomalous_area`` show it only when the verdict is not
        normal (``shown_mask``): a normal image has no outlined region, whatever its map holds; a verdict moved
        later (the demo's slider) shows or hides the same mask.
    pixel_threshold: the mask's cut on the map's own scale (None when a classifier decided the mask).
    reasoning: what an LLM/rule explainer returned (its verdict, cited rules), when one is configured.
    """

    name: str
    path: str | None = None
    score: float | None = None
    is_anomalous: bool | None = None
    threshold: float | None = None
    threshold_rule: str = ""
    grid_map: np.ndarray | None = field(default=None, repr=False)  # (h, w) float32 on the backbone's patch grid
    original_size: tuple[int, int] | None = None  # (width, height)
    postprocess: MapPostprocess | None = None
    evidence: dict[str, EvidenceScore] = field(default_factory=dict)
    pixel_threshold: float | None = None
    threshold_name: str = ""
    certainty: dict[str, Any] = field(default_factory=dict)
    decided_on: str = ""
    p_value: float | None = None
    mask: np.ndarray | None = field(default=None, repr=False)  # (h, w) bool on the patch grid
    mask_rule: str = ""
    regions: tuple = ()
    explanation: str = ""
    reasoning: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def verdict(self) -> str:
        if self.error:
            return "error"
        return {True: "anomalous", False: "normal", None: "undecided"}[self.is_anomalous]

    @property
    def anomaly_map(self) -> np.ndarray | None:
        """(height, width) float32 in the original frame, computed from the grid map when read."""
        if self.grid_map is None or self.original_size is None:
            return None
        return self.map_at(self.original_size)

    def map_at(self, size: tuple[int, int]) -> np.ndarray:
        """The map upsampled, smoothed and resized to ``size`` = (width, height)."""
        return (self.postprocess or unsmoothed(self.grid_map)).apply(self.grid_map, size)

    def shown_mask(self) -> np.ndarray | None:
        """The mask the verdict lets the result show: ``mask``, all False when the verdict is normal."""
        if self.mask is None:
            return None
        return self.mask if self.is_anomalous is not False else np.zeros_like(self.mask, dtype=bool)

    def shown_regions(self, max_regions: int = 3) -> list:
        """Top regions of ``shown_mask`` (``zsad_runtime.regions.top_regions``)."""
        if self.grid_map is None or self.original_size is None:
            return []
        mask = self.shown_mask()
        return top_regions(self.grid_map, self.pixel_threshold, self.original_size, max_regions, mask=mask)

    @property
    def decided_apart(self) -> bool:
        """Whether the verdict compared one evidence's own score (not the fused ``score``) with the threshold: a
        fused run whose rule is calibrated on the references' few-shot scores."""
        return len(self.evidence) > 1 and self.decided_on in self.evidence

    def map_stats(self) -> dict[str, float]:
        """Summary of the map on the patch grid; ``anomalous_area`` is the share of the grid inside the mask (above
        the pixel threshold for a result without a mask, e.g. one read back from an older results.json)."""
        if self.grid_map is None:
            return {}
        m = self.grid_map
        stats = {"map_max": float(m.max()), "map_mean": float(m.mean()), "map_p99": float(np.percentile(m, 99))}
        if self.mask is not None:
            stats["anomalous_area"] = float(np.mean(self.shown_mask()))
        elif self.pixel_threshold is not None:
            stats["anomalous_area"] = float((m >= self.pixel_threshold).mean())
        return stats

    def to_record(self) -> dict:
        """JSON-ready, without the map. Per-evidence numbers are nested under ``evidence``."""
        return {
            "name": self.name,
            "path": self.path,
            "score": self.score,
            "verdict": self.verdict,
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
            "verdict_rule": self.threshold_name,
            "certainty": self.certainty,
            "decided_on": self.decided_on,
            "p_value": self.p_value,
            "evidence": {name: item.to_dict() for name, item in self.evidence.items()},
            **self.map_stats(),
            "pixel_threshold": self.pixel_threshold,
            "mask_rule": self.mask_rule,
            "regions": [region.to_dict() for region in self.regions],
            "explanation": self.explanation,
            **({"reasoning": self.reasoning} if self.reasoning is not None else {}),
            "error": self.error,
        }


def flat_record(record: dict) -> dict:
    """A record for one CSV row: evidence flattened to ``<name>_score`` columns, regions counted, the rule's
    certainty as compact JSON."""
    row = {key: value for key, value in record.items() if key not in ("evidence", "regions", "reasoning")}
    row["evidence"] = "+".join(record.get("evidence") or {})
    for name, item in (record.get("evidence") or {}).items():
        row[f"{name}_score"] = item["score"]
    row["regions"] = len(record.get("regions") or [])
    if "certainty" in record:  # one cell: the rule's own terms, as compact JSON
        row["certainty"] = json.dumps(record["certainty"], sort_keys=True, separators=(",", ":"))
    reasoning = record.get("reasoning") or {}
    if reasoning:
        row["llm_verdict"] = reasoning.get("verdict")
    if reasoning.get("verdict_setting") == "llm":  # the LLM's verdict may count: the numeric one beside it
        row["numeric_verdict"] = reasoning.get("numeric_verdict")
    return row
