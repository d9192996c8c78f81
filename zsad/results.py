"""What a user gets per image."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class AnomalyResult:
    """One image's outcome. ``error`` is set (and score/map are None) when the image could not be processed, so a
    batch keeps one result per input in input order and one bad file never loses the others' results."""

    name: str
    path: str | None = None
    score: float | None = None
    is_anomalous: bool | None = None
    threshold: float | None = None
    threshold_rule: str = ""
    anomaly_map: np.ndarray | None = field(default=None, repr=False)  # (height, width) float32, original frame
    grid_map: np.ndarray | None = field(default=None, repr=False)  # (h, w) float32 on the backbone's patch grid
    evidence: tuple[str, ...] = ()
    explanation: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def verdict(self) -> str:
        if self.error:
            return "error"
        return {True: "anomalous", False: "normal", None: "undecided"}[self.is_anomalous]

    def map_stats(self) -> dict[str, float]:
        """Summary of the heat map; ``anomalous_area`` is the fraction of pixels at or above the image threshold."""
        if self.anomaly_map is None:
            return {}
        m = self.anomaly_map
        stats = {"map_max": float(m.max()), "map_mean": float(m.mean()), "map_p99": float(np.percentile(m, 99))}
        if self.threshold is not None:
            stats["anomalous_area"] = float((m >= self.threshold).mean())
        return stats

    def to_record(self) -> dict:
        """JSON/CSV-ready, without the map."""
        return {
            "name": self.name,
            "path": self.path,
            "score": self.score,
            "verdict": self.verdict,
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
            "evidence": "+".join(self.evidence),
            **self.map_stats(),
            "explanation": self.explanation,
            "error": self.error,
        }


def explain(result: AnomalyResult) -> str:
    """A short, factual account of the verdict from the evidence at hand (LLM explanations build on this later)."""
    if result.error:
        return f"not inspected: {result.error}"
    m = result.anomaly_map
    where = ""
    if m is not None:
        y, x = np.unravel_index(int(np.argmax(m)), m.shape)
        where = f"; strongest evidence at x={x}, y={y} of {m.shape[1]}x{m.shape[0]}"
    evidence = "+".join(result.evidence)
    if result.threshold is None:
        return f"score {result.score:.4g} from {evidence} evidence; no threshold ({result.threshold_rule}){where}"
    relation = ">=" if result.is_anomalous else "<"
    stats = result.map_stats()
    area = f", {100 * stats['anomalous_area']:.1f}% of the image above threshold" if "anomalous_area" in stats else ""
    return (
        f"{result.verdict}: score {result.score:.4g} {relation} threshold {result.threshold:.4g} "
        f"({result.threshold_rule}) from {evidence} evidence{where}{area}"
    )
