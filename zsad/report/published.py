"""The anchor methods' published numbers (``published_results.csv``) and which of them a run may be set beside.

The CSV (kept outside the package, in ``../shared/published_results.csv`` by default; every row carries its
``source``) has the columns ``method, setting, backbone, input, dataset, i_auroc, p_auroc, aupro, source`` with
metrics in percent. A published row is shown next to a run only when the protocol matches on every field:

- dataset: the run's benchmark (``benchmark_of``): the layout kind (visa, mvtec_loco, btad, mpdd, realiad) or,
  for an MVTec-layout folder, ``mvtec`` only when it holds all 15 MVTec AD categories (a published mean is over all
  of them; a subset's mean is not comparable). Any other folder is its own data set and matches nothing;
- setting: ``zero-shot ...`` for shots = 0 (``zero-shot mutual`` when the method is mutual), ``k-shot`` for k;
- backbone: ``"<open_clip name> <pretrained tag>"`` or the Hugging Face name, as the CSV writes it;
- input size; and the method, when the run used a preset named after it.

Runs with randomly initialised weights match nothing: their numbers say nothing about the published setting.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsad.errors import ZsadError

MVTEC_AD_CATEGORIES = frozenset({
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw", "tile",
    "toothbrush", "transistor", "wood", "zipper",
})
VISA_CATEGORIES = frozenset({
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2", "pcb3", "pcb4",
    "pipe_fryum",
})
CSV_METRICS = {"i_auroc": "i_auroc", "p_auroc": "p_auroc", "aupro": "aupro"}


@dataclass(frozen=True)
class PublishedRow:
    method: str
    setting: str
    backbone: str
    input: int | None
    dataset: str
    metrics: dict[str, float]  # fractions, like zsad's tables
    source: str


def read_published(path: str | Path) -> list[PublishedRow]:
    path = Path(path)
    if not path.is_file():
        raise ZsadError(f"{path}: published results CSV not found; pass --published PATH")
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            metrics = {key: float(row[col]) / 100.0 for key, col in CSV_METRICS.items() if (row.get(col) or "").strip()}
            rows.append(PublishedRow(
                method=row["method"].strip(), setting=row["setting"].strip(), backbone=row["backbone"].strip(),
                input=int(row["input"]) if (row.get("input") or "").strip() else None,
                dataset=row["dataset"].strip(), metrics=metrics, source=row["source"].strip(),
            ))
    return rows


def benchmark_of(description: dict[str, Any]) -> str | None:
    """The published benchmark a run's data set is, or None when it is none of them (or only part of one)."""
    kind = description.get("dataset")
    categories = set(description.get("categories") or [])
    if kind in ("visa",):
        return "visa" if categories >= VISA_CATEGORIES else None
    if kind in ("mvtec_loco", "btad", "mpdd", "realiad"):
        return kind
    if kind == "mvtec" and categories == MVTEC_AD_CATEGORIES:
        return "mvtec"
    return None


def protocol_of(description: dict[str, Any]) -> dict[str, Any]:
    """The run's protocol in the CSV's terms (what ``matching`` compares)."""
    detector = description.get("detector", {})
    shots = int(description.get("shots") or 0)
    method = detector.get("method")
    if shots:
        setting = f"{shots}-shot"
    else:
        setting = "zero-shot mutual" if method == "mutual" else "zero-shot"
    pretrained = detector.get("pretrained")
    backbone = f"{detector.get('backbone')} {pretrained}" if pretrained else str(detector.get("backbone"))
    return {"dataset": benchmark_of(description), "dataset_kind": description.get("dataset"), "setting": setting,
            "backbone": backbone, "input": detector.get("input_size"), "preset": detector.get("preset"),
            "random_weights": bool(detector.get("random_weights"))}


def matching(rows: list[PublishedRow], protocol: dict[str, Any]) -> list[PublishedRow]:
    if protocol["random_weights"] or protocol["dataset"] is None:
        return []
    out = []
    for row in rows:
        if row.dataset != protocol["dataset"] or row.input != protocol["input"]:
            continue
        if row.backbone != protocol["backbone"]:
            continue
        if protocol["setting"].endswith("-shot"):
            if row.setting != protocol["setting"]:
                continue
        elif not row.setting.startswith("zero-shot") or ("mutual" in protocol["setting"]) != ("mutual" in row.setting):
            continue
        if protocol["preset"] and row.method.lower().rstrip("+") != str(protocol["preset"]).lower().rstrip("+"):
            continue
        out.append(row)
    return out


def why_none(protocol: dict[str, Any]) -> str:
    if protocol["random_weights"]:
        return "randomly initialised weights: no published number applies"
    if protocol["dataset"] is None:
        return (f"data set ({protocol['dataset_kind']}, these categories) is not a published benchmark in full; "
                "published means are over all of a benchmark's categories")
    return (f"no published row with dataset {protocol['dataset']}, setting {protocol['setting']}, backbone "
            f"{protocol['backbone']}, input {protocol['input']}" +
            (f", method {protocol['preset']}" if protocol["preset"] else ""))
