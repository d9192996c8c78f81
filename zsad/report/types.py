"""The report's defect-type section: the types ``zsad eval --discover`` found, and how well they match the truth.

Per (category, seed) pass: a table of its types (name, images, mean score, typical location, mean area) from run.json
``discovery``, and the clustering metrics of AnomalyNCD (``zsad.metrics.clustering_metrics``: NMI, ARI, cluster F1)
of the records' discovered ``defect_type`` against their true ``defect``. The metrics count the images that were
discovered *and* are defective with a known type, the protocol of AnomalyNCD (which clusters anomalous images
only); good images the detector flagged (and so discovered) and defective images it missed are counted beside
them, since a type table says nothing about those. The mean row is the mean over passes with metrics.
"""
from __future__ import annotations

import html
import math
from typing import Any

from zsad.evaluation.run import EvaluationRun
from zsad.metrics.clustering import CLUSTERING_KEYS, clustering_metrics

TITLE = "Defect types (discovered without labels)"
METRIC_HEADERS = {"nmi": "NMI", "ari": "ARI", "f1": "cluster F1"}


def types_data(run: EvaluationRun) -> dict[str, Any] | None:
    """The section's data (fractions), or None when the run has no discovery."""
    if not run.discovery:
        return None
    passes = []
    for item in run.discovery.get("passes", []):
        records = run.records_of(item["category"], item["seed"])
        discovered = [r for r in records if r.defect_type is not None]
        scored = [r for r in discovered if r.label == 1 and r.defect is not None]
        passes.append({
            "category": item["category"], "seed": item["seed"], "folder": item.get("folder"),
            "error": item.get("error"), "k": item.get("k"),
            "types": [{key: t.get(key) for key in ("name", "count", "mean_score", "location", "mean_area",
                                                    "named_by", "description")} for t in item.get("types") or []],
            "discovered": len(discovered), "scored": len(scored),
            "true_types": len({r.defect for r in scored}),
            "good_discovered": sum(r.label == 0 for r in discovered),
            "defects_missed": sum(r.label == 1 and r.defect_type is None for r in records),
            "metrics": clustering_metrics([r.defect for r in scored], [r.defect_type for r in scored])
            if scored else None,
        })
    with_metrics = [p["metrics"] for p in passes if p["metrics"] is not None]
    mean = {k: math.fsum(m[k] for m in with_metrics) / len(with_metrics) for k in CLUSTERING_KEYS} \
        if with_metrics else None
    return {"settings": run.discovery.get("settings"), "passes": passes, "mean": mean}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _name(item: dict[str, Any]) -> str:
    return f"{item['category']} (seed {item['seed']})"


def summary_table(data: dict[str, Any]) -> str:
    """One row per pass: types found, images discovered and scored, and NMI / ARI / F1 in %."""
    head = ("| pass | types | true types | discovered | scored | good discovered | defects missed | "
            + " | ".join(METRIC_HEADERS[k] for k in CLUSTERING_KEYS) + " |")
    lines = [head, "|---|" + "---:|" * (6 + len(CLUSTERING_KEYS))]
    for item in data["passes"]:
        metrics = item["metrics"] or {}
        lines.append(f"| {_name(item)} | {len(item['types'])} | {item['true_types']} | {item['discovered']} | "
                     f"{item['scored']} | {item['good_discovered']} | {item['defects_missed']} | "
                     + " | ".join(_pct(metrics.get(k)) for k in CLUSTERING_KEYS) + " |")
    if data["mean"] is not None and len(data["passes"]) > 1:
        lines.append("| **mean** | | | | | | | " + " | ".join(_pct(data["mean"][k]) for k in CLUSTERING_KEYS) + " |")
    return "\n".join(lines) + "\n"


def type_table(item: dict[str, Any]) -> str:
    """The types of one pass, most images first as discovery orders them."""
    lines = ["| # | type | images | mean score | typical location | mean area % |", "|---:|---|---:|---:|---|---:|"]
    for number, t in enumerate(item["types"], start=1):
        name = str(t["name"]).replace("|", "/")
        lines.append(f"| {number} | {name} | {t['count']} | {_number(t['mean_score'])} | {t['location']} | "
                     f"{100 * float(t['mean_area'] or 0):.2f} |")
    return "\n".join(lines) + "\n"


INTRO = ("NMI, ARI and cluster F1 (%) set the discovered types against the true defect types over the discovered "
         "images that are defective with a known type (\"scored\"); good images the detector flagged and defects "
         "it missed are counted beside them.")


def types_markdown(data: dict[str, Any] | None) -> str:
    if data is None:
        return ""
    parts = [f"\n## {TITLE}\n", INTRO + "\n", summary_table(data)]
    for item in data["passes"]:
        parts.append(f"\n{_name(item)}: " + (f"discovery failed: {item['error']}\n" if item["error"] else
                                               f"types.json in `{item['folder']}`\n\n" + type_table(item)))
    return "\n".join(parts)


def types_html(data: dict[str, Any] | None, table_to_html) -> str:
    """The same section as HTML; ``table_to_html`` renders a markdown table (the report's own converter)."""
    if data is None:
        return ""
    parts = [f"<h2>{html.escape(TITLE)}</h2><p>{html.escape(INTRO)}</p>", table_to_html(summary_table(data))]
    for item in data["passes"]:
        parts.append(f"<h3>{html.escape(_name(item))}</h3>")
        parts.append(f"<p>discovery failed: {html.escape(item['error'])}</p>" if item["error"] else
                     table_to_html(type_table(item)))
    return "".join(parts)
