"""Per-category metric tables with a mean row, rendered as markdown (percent) or JSON-ready dicts (fractions).

Decisions:
- values are stored as fractions in [0, 1]; markdown shows percent with one decimal because published tables do;
  ``to_dict`` keeps fractions (no rounding) so recorded results can be re-rendered or compared exactly.
- the mean row is the plain mean over *all* categories. If a category lacks a metric or has NaN for it, the
  mean of that metric is NaN ("n/a"): a mean over a subset of categories would be set beside published means over
  all categories and mislead. NaN becomes ``None`` in ``to_dict`` because JSON has no NaN.
- columns follow a fixed order for the known metrics (image, then pixel), then any other keys in order of first
  appearance.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from zsad.metrics._inputs import MetricInputError

MEAN_ROW = "mean"
HEADERS = {
    "i_auroc": "I-AUROC",
    "i_ap": "I-AP",
    "i_f1_max": "I-F1max",
    "p_auroc": "P-AUROC",
    "p_ap": "P-AP",
    "p_f1_max": "P-F1max",
    "aupro": "AUPRO",
    # the decisions themselves (zsad.metrics.decisions): verdicts against labels, shown masks against masks
    "verdict_f1": "Verdict F1",
    "false_alarm_rate": "False alarms",
    "miss_rate": "Misses",
    "mask_iou": "Mask IoU",
    "mask_f1": "Mask F1",
    # MVTec LOCO AD (zsad.metrics.spro.spro_key): AU-sPRO up to the official FPR limits
    **{f"au_spro@{limit:g}": f"AU-sPRO@{limit:g}" for limit in (0.01, 0.05, 0.1, 0.3, 1.0)},
}


@dataclass
class MetricTable:
    """``{category: {metric: fraction}}`` in insertion order, plus a computed mean row."""

    rows: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, category: str, metrics: Mapping[str, float]) -> None:
        """Add one category's metrics (e.g. ``image_metrics(...) | pixel_metrics(...)``)."""
        if category == MEAN_ROW:
            raise MetricInputError(f"category name {MEAN_ROW!r} is reserved for the mean row; rename the category")
        if category in self.rows:
            raise MetricInputError(
                f"category {category!r} was already added; each category is evaluated once per table"
            )
        self.rows[category] = {str(k): float(v) for k, v in metrics.items()}

    @property
    def metrics(self) -> list[str]:
        """Column keys: known metrics in the standard order, then others in order of first appearance."""
        seen: dict[str, None] = {}
        for row in self.rows.values():
            seen.update(dict.fromkeys(row))
        known = [k for k in HEADERS if k in seen]
        return known + [k for k in seen if k not in HEADERS]

    def mean(self) -> dict[str, float]:
        """Mean over all categories per metric; NaN if any category lacks the metric or has NaN."""
        n = len(self.rows)
        out = {}
        for key in self.metrics:
            values = [row.get(key, math.nan) for row in self.rows.values()]
            out[key] = math.fsum(values) / n if n else math.nan
        return out

    def rows_with_mean(self) -> dict[str, dict[str, float]]:
        """All category rows, then the ``"mean"`` row (omitted when the table is empty)."""
        out = {cat: dict(row) for cat, row in self.rows.items()}
        if self.rows:
            out[MEAN_ROW] = self.mean()
        return out

    def to_dict(self, with_mean: bool = True) -> dict[str, dict[str, float | None]]:
        """JSON-ready ``{category: {metric: fraction or None}}`` (NaN -> None)."""
        rows = self.rows_with_mean() if with_mean else self.rows
        return {
            cat: {k: (None if math.isnan(v) else v) for k, v in row.items()} for cat, row in rows.items()
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, float | None]]) -> MetricTable:
        """Inverse of ``to_dict`` (a ``"mean"`` row is dropped: it is recomputed)."""
        table = cls()
        for cat, row in data.items():
            if cat != MEAN_ROW:
                table.add(cat, {k: (math.nan if v is None else v) for k, v in row.items()})
        return table

    def to_markdown(self, with_mean: bool = True) -> str:
        """Markdown table in percent with one decimal; missing or NaN values show as ``n/a``."""
        keys = self.metrics
        header = "| category |" + "".join(f" {HEADERS.get(k, k)} |" for k in keys)
        rule = "|---|" + "".join("---:|" for _ in keys)
        lines = [header, rule]
        for cat, row in (self.rows_with_mean() if with_mean else self.rows).items():
            lines.append(f"| {cat} |" + "".join(f" {_percent(row.get(k, math.nan))} |" for k in keys))
        return "\n".join(lines) + "\n"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100.0 * value:.1f}"
