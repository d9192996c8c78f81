"""What a user gets per image, from zsad's detector and from the torch-free runtime alike (one class).

A result keeps its map on the backbone's patch grid (``grid_map``, float32, a few KB) together with how to bring it
to the image (``postprocess``: upsampling, smoothing, original size). ``anomaly_map`` is computed from these when
read, and ``map_at(size)`` gives it at any other size (overlays of huge images): a run over 10,000 images holds
10,000 small grids, never 10,000 full-size float maps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zsad_runtime.postprocess import MapPostprocess, unsmoothed


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
    pixel_threshold: the threshold on the map's own scale that ``regions`` and ``anomalous_area`` use (see
        ``zsad_runtime.regions``); ``threshold`` is the image-score threshold of the verdict.
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

    def map_stats(self) -> dict[str, float]:
        """Summary of the map on the patch grid; ``anomalous_area`` is the share above the pixel threshold."""
        if self.grid_map is None:
            return {}
        m = self.grid_map
        stats = {"map_max": float(m.max()), "map_mean": float(m.mean()), "map_p99": float(np.percentile(m, 99))}
        if self.pixel_threshold is not None:
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
            "evidence": {name: item.to_dict() for name, item in self.evidence.items()},
            **self.map_stats(),
            "pixel_threshold": self.pixel_threshold,
            "regions": [region.to_dict() for region in self.regions],
            "explanation": self.explanation,
            **({"reasoning": self.reasoning} if self.reasoning is not None else {}),
            "error": self.error,
        }


def flat_record(record: dict) -> dict:
    """A record for one CSV row: evidence flattened to ``<name>_score`` columns, regions counted."""
    row = {key: value for key, value in record.items() if key not in ("evidence", "regions", "reasoning")}
    row["evidence"] = "+".join(record.get("evidence") or {})
    for name, item in (record.get("evidence") or {}).items():
        row[f"{name}_score"] = item["score"]
    row["regions"] = len(record.get("regions") or [])
    reasoning = record.get("reasoning") or {}
    if reasoning:
        row["llm_verdict"] = reasoning.get("verdict")
    if reasoning.get("verdict_setting") == "llm":  # the LLM's verdict may count: the numeric one beside it
        row["numeric_verdict"] = reasoning.get("numeric_verdict")
    return row
