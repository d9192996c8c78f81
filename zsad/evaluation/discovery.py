"""``zsad eval --discover``: defect types discovered per category and seed of an evaluation run.

Types belong to one product, so each (category, seed) pass is discovered on its own: its records become results
(path, score, verdict, grid map, size: what detection returned), ``discover(results, object_name)`` groups the
anomalous ones, each record gets ``defect_type`` and ``defect_type_confidence``, the pass's folder
(``discovery/<category>``, ``discovery/<category>/seed_<s>`` with several seeds) gets types.json, images.csv and
the contact sheets, and ``EvaluationRun.discovery`` (run.json ``discovery``) the settings and, per pass, a summary
of its types (``zsad.discovery.writer.summary``). The labels are never shown to discovery; ``zsad report`` sets the
types beside the records' true ``defect`` (NMI, ARI, cluster F1).

A pass whose discovery fails with an expected problem (``ZsadError``) keeps its records without types and records
the error; the other passes go on.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zsad.discovery.pipeline import Discovery
from zsad.discovery.settings import DiscoverySettings
from zsad.discovery.writer import summary, type_fields, write_discovery
from zsad.errors import ZsadError
from zsad.evaluation.evaluate import object_name_for
from zsad.evaluation.run import EvaluationRun, ImageRecord
from zsad.results import AnomalyResult

Discover = Callable[[Sequence[AnomalyResult], str], Discovery]  # (results, object name) -> discovery


def as_result(record: ImageRecord) -> AnomalyResult:
    """What detection returned for one record (named by its path, unique within a pass)."""
    return AnomalyResult(
        name=record.path, path=record.path, score=record.score, is_anomalous=record.is_anomalous,
        threshold=record.threshold, threshold_rule=record.threshold_rule, grid_map=record.grid_map,
        original_size=record.original_size, error=record.error,
    )


def pass_folder(category: str, seed: int, several_seeds: bool) -> str:
    return f"discovery/{category}" + (f"/seed_{seed}" if several_seeds else "")


def discover_run(run: EvaluationRun, discover: Discover, settings: DiscoverySettings, out_dir: str | Path,
                 object_name: str | None = None) -> dict[str, Any]:
    """Discover every (category, seed) pass of ``run`` (records annotated in place), write each pass's folder under
    ``out_dir`` and set ``run.discovery``; returns it."""
    from zsad.data.images import load_image

    seeds = list(dict.fromkeys(r.seed for r in run.records))
    passes = []
    for category in dict.fromkeys(r.category for r in run.records):
        for seed in seeds:
            records = run.records_of(category, seed)
            if not records:
                continue
            folder = pass_folder(category, seed, len(seeds) > 1)
            results = [as_result(r) for r in records]
            try:
                found = discover(results, object_name or object_name_for(category))
            except ZsadError as error:
                warnings.warn(f"{category} (seed {seed}): defect-type discovery failed ({error}); its records keep "
                              "no type")
                passes.append(_entry(category, seed, summary(None, settings, error=str(error))))
                continue
            load = (lambda name: load_image(name).image) if settings.sheets else None
            write_discovery(found, Path(out_dir) / folder, load)
            images = found.by_image()
            for record in records:
                fields = type_fields(images.get(record.path))
                record.defect_type, record.defect_type_confidence = (fields["defect_type"],
                                                                     fields["defect_type_confidence"])
            passes.append(_entry(category, seed, summary(found, settings, folder)))
    run.discovery = {"settings": settings.describe(), "passes": passes}
    return run.discovery


def _entry(category: str, seed: int, described: dict[str, Any]) -> dict[str, Any]:
    """One pass in run.json: its category and seed and its summary (the settings are recorded once, above)."""
    return {"category": category, "seed": seed, **{k: v for k, v in described.items() if k != "settings"}}
