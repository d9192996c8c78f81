"""What an evaluation returns, and how it is written to and read from a folder.

``save_run(run, dir)`` writes:

- ``run.json``: the run description (environment, backbone, weights fingerprint, settings, data set, shots, seeds,
  reference lists), notes, the per-seed and overall metric tables (fractions) and one record per image (category,
  seed, path, label, defect, mask path, score, verdict, threshold, per-evidence scores, original size, error;
  with ``--discover`` also the discovered ``defect_type`` and its confidence, and ``discovery``: the types per pass);
- ``grid_maps.npz``: each record's patch-grid map (float32 [h, w]) under the key ``r<index>`` (compressed);
- ``metrics.md`` / ``metrics.json``: the overall table, for people and for scripts written against earlier
  versions of ``zsad eval`` (``metrics.json["metrics"]`` is ``MetricTable.to_dict()``); ``metrics.json`` and
  ``run.json`` also hold ``defect_metrics`` (category -> defect type -> metrics, no mean row: a mean over the
  defect types of a category is no protocol's number) and ``protocol_metrics`` (MVTec LOCO AD: kind -> category ->
  metrics, with the mean over categories);
- ``references.json``: the reference lists used (k-shot runs only), readable by ``load_reference_lists``.

``load_run(dir)`` gives back an equal ``EvaluationRun``; full-size maps are recomputed from the grid maps with the
recorded post-processing (``EvaluationRun.anomaly_map``), exactly as ``AnomalyResult.anomaly_map`` computes them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from zsad.errors import ZsadError
from zsad.metrics import MetricTable

FORMAT = "zsad-eval-run/1"
RUN_FILE = "run.json"
MAPS_FILE = "grid_maps.npz"


@dataclass
class ImageRecord:
    """One test image of one pass (category, seed) with its ground truth and what the detector said."""

    category: str
    seed: int
    path: str
    label: int | None
    defect: str | None = None
    mask_path: str | None = None
    score: float | None = None
    is_anomalous: bool | None = None
    threshold: float | None = None
    threshold_rule: str = ""
    verdict_rule: str = ""  # the rule as a key ("conformal_mixture", "mixture", ...) and how sure it is
    certainty: dict[str, Any] = field(default_factory=dict)
    p_value: float | None = None
    mask_rule: str = ""
    evidence: dict[str, dict[str, float]] = field(default_factory=dict)
    original_size: tuple[int, int] | None = None  # (width, height)
    error: str | None = None
    defect_type: str | None = None  # discovered type (``zsad eval --discover``), never the label
    defect_type_confidence: float | None = None
    grid_map: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self, types: bool = True) -> dict[str, Any]:
        """JSON-ready; without the discovered type fields when ``types`` is False (runs without discovery)."""
        skip = ("grid_map",) if types else ("grid_map", "defect_type", "defect_type_confidence")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out["original_size"] = list(self.original_size) if self.original_size else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRecord:
        data = dict(data)
        size = data.get("original_size")
        data["original_size"] = tuple(size) if size else None
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class EvaluationRun:
    """Everything an evaluation produced: per-image records, metric tables, run description.

    table: per category, the mean over seeds of each metric (equal to the one seed's table for one seed).
    tables: the table of each seed.
    postprocess: how grid maps become full-size maps (``MapPostprocess`` fields), for ``anomaly_map``.
    defect_tables: per category, a table with one row per defect type (mean over seeds).
    protocol_tables: a data set's official protocol tables, by name (MVTec LOCO AD: ``logical_anomalies``,
        ``structural_anomalies`` and their ``mean``, rows = categories; mean over seeds); empty for the others.
    discovery: with ``zsad eval --discover``, the settings and per (category, seed) pass a summary of the
        discovered types (``zsad.evaluation.discovery``); the records then carry ``defect_type``.
    """

    records: list[ImageRecord]
    table: MetricTable
    tables: dict[int, MetricTable]
    description: dict[str, Any]
    notes: dict[str, str] = field(default_factory=dict)
    postprocess: dict[str, Any] | None = None
    defect_tables: dict[str, MetricTable] = field(default_factory=dict)
    protocol_tables: dict[str, MetricTable] = field(default_factory=dict)
    discovery: dict[str, Any] = field(default_factory=dict)

    @property
    def random_weights(self) -> bool:
        return bool(self.description.get("detector", {}).get("random_weights"))

    def categories(self) -> list[str]:
        return list(self.table.rows)

    def records_of(self, category: str | None = None, seed: int | None = None) -> list[ImageRecord]:
        return [r for r in self.records
                if (category is None or r.category == category) and (seed is None or r.seed == seed)]

    def anomaly_map(self, record: ImageRecord, size: tuple[int, int] | None = None) -> np.ndarray:
        """The record's map at ``size`` (width, height; default its original size), post-processed as in detection."""
        from zsad.postprocess.maps import MapPostprocess
        from zsad.results import unsmoothed

        if record.grid_map is None:
            raise ZsadError(f"{record.path}: no map recorded ({record.error or 'no grid map'})")
        post = MapPostprocess(**self.postprocess) if self.postprocess else unsmoothed(record.grid_map)
        return post.apply(record.grid_map, size or record.original_size)


def mean_table(tables: dict[int, MetricTable]) -> MetricTable:
    """Per category and metric, the mean over seeds (NaN when a seed lacks it)."""
    if len(tables) == 1:
        return MetricTable({c: dict(row) for c, row in next(iter(tables.values())).rows.items()})
    out = MetricTable()
    categories = list(dict.fromkeys(c for t in tables.values() for c in t.rows))
    for category in categories:
        keys = list(dict.fromkeys(k for t in tables.values() for k in t.rows.get(category, {})))
        out.add(category, {
            k: math.fsum(t.rows.get(category, {}).get(k, math.nan) for t in tables.values()) / len(tables)
            for k in keys
        })
    return out


def save_run(run: EvaluationRun, out_dir: str | Path) -> Path:
    """Write ``run`` to ``out_dir`` (created); returns the path of ``run.json``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ZsadError(f"{out}: exists and is not a folder; pass a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "format": FORMAT,
        "description": run.description,
        "notes": run.notes,
        "postprocess": run.postprocess,
        "metrics": run.table.to_dict(),
        "metrics_by_seed": {str(seed): table.to_dict() for seed, table in run.tables.items()},
        **breakdowns(run),
        **({"discovery": run.discovery} if run.discovery else {}),
        "records": [r.to_dict(types=bool(run.discovery)) for r in run.records],
    }
    (out / RUN_FILE).write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    maps = {f"r{i}": r.grid_map.astype(np.float32, copy=False) for i, r in enumerate(run.records)
            if r.grid_map is not None}
    np.savez_compressed(out / MAPS_FILE, **maps)
    (out / "metrics.md").write_text(run.table.to_markdown())
    legacy = {key: run.description.get(key) for key in ("dataset", "root", "shots", "seeds")}
    legacy.update({"backbone": run.description.get("detector", {}).get("backbone"),
                   "input_size": run.description.get("detector", {}).get("input_size"),
                   "method": run.description.get("detector", {}).get("method"),
                   "random_weights": run.random_weights, "notes": run.notes, "metrics": run.table.to_dict(),
                   **breakdowns(run)})
    (out / "metrics.json").write_text(json.dumps(legacy, indent=2) + "\n")
    references = run.description.get("references")
    if references:
        (out / "references.json").write_text(json.dumps(references, indent=1) + "\n")
    return out / RUN_FILE


def breakdowns(run: EvaluationRun) -> dict[str, Any]:
    """The JSON of the per-defect-type and protocol tables (fractions, NaN -> None)."""
    return {"defect_metrics": {c: t.to_dict(with_mean=False) for c, t in run.defect_tables.items()},
            "protocol_metrics": {name: t.to_dict() for name, t in run.protocol_tables.items()}}


def load_run(run_dir: str | Path) -> EvaluationRun:
    """Read a folder written by ``save_run``."""
    folder = Path(run_dir)
    path = folder / RUN_FILE
    if not path.is_file():
        raise ZsadError(f"{folder}: no {RUN_FILE}; pass a folder written by `zsad eval --out`")
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ZsadError(f"{path}: format {data.get('format')!r} is not {FORMAT}; rerun zsad eval")
    records = [ImageRecord.from_dict(r) for r in data["records"]]
    maps_path = folder / MAPS_FILE
    if maps_path.is_file():
        with np.load(maps_path) as maps:
            for i, record in enumerate(records):
                if f"r{i}" in maps:
                    record.grid_map = maps[f"r{i}"]
    return EvaluationRun(
        records=records,
        table=MetricTable.from_dict(data["metrics"]),
        tables={int(seed): MetricTable.from_dict(t) for seed, t in data["metrics_by_seed"].items()},
        description=data["description"],
        notes=data.get("notes", {}),
        postprocess=data.get("postprocess"),
        defect_tables={c: MetricTable.from_dict(t) for c, t in data.get("defect_metrics", {}).items()},
        protocol_tables={n: MetricTable.from_dict(t) for n, t in data.get("protocol_metrics", {}).items()},
        discovery=data.get("discovery") or {},
    )
