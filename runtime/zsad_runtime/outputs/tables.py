"""results.json and results.csv: the run description and one record / row per input image."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from zsad_runtime.outputs.base import RunOutput
from zsad_runtime.results import AnomalyResult, flat_record


def write_csv(records: list[dict], path: Path) -> Path:
    """One row per record: per-evidence scores as ``<name>_score`` columns, regions counted (``flat_record``);
    the columns are the union over records in first-seen order. The demo writes the same file."""
    rows = [flat_record(record) for record in records]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if "numeric_verdict" in columns and "verdict" in columns:  # beside the verdict it may differ from
        columns.remove("numeric_verdict")
        columns.insert(columns.index("verdict") + 1, "numeric_verdict")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def json_writer(results: list[AnomalyResult], records: list[dict], output: RunOutput) -> None:
    summary = {
        **output.run_info,
        "images": len(results),
        "anomalous": sum(r.is_anomalous is True for r in results),
        "skipped": [{"path": r.path or r.name, "error": r.error} for r in results if r.error],
        "results": records,
    }
    (output.out_dir / "results.json").write_text(json.dumps(summary, indent=2, default=float))


def csv_writer(results: list[AnomalyResult], records: list[dict], output: RunOutput) -> None:
    write_csv(records, output.out_dir / "results.csv")
