"""Reading a ``zsad detect`` output folder back into results with maps, for ``zsad discover RUN_DIR``.

``results.json`` has every image's path, score and verdict and the run's settings (the backbone among them);
``journal/scored.jsonl`` has each image's per-evidence patch-grid maps as exact float32 (``zsad.outputs``). One
evidence's map is the result's map; several are fused exactly as the detector fuses them (``zsad.scoring.fusion``,
robust scales over the whole run), which needs every image's entry.

A run without a complete journal (mutual scoring writes none; a multi-process run neither) still has its regions'
boxes and peaks in results.json: each image then gets a coarse map made of its region boxes filled with their peak
values, and the boxes as its mask, so discovery crops around what the run reported instead of failing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from zsad.backbones import BackboneSpec
from zsad.errors import ZsadError
from zsad.outputs.journal import decode_grid, read_journal
from zsad.results import AnomalyResult

BOX_GRID = 64


@dataclass
class Run:
    """What discovery needs from a run folder. masks: per result (aligned), None where the map is exact."""

    results: list[AnomalyResult]
    masks: list[np.ndarray | None]
    backbone: BackboneSpec | None
    object_name: str
    settings: dict
    exact_maps: bool


def backbone_spec(settings: dict) -> BackboneSpec | None:
    """The run's backbone from results.json settings, without WinCLIP windows (discovery never uses them)."""
    spec = settings.get("backbone")
    if not isinstance(spec, dict) or not spec.get("name"):
        return None
    known = {f.name for f in fields(BackboneSpec)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k in known}
    values["windows"] = ()
    return BackboneSpec(**values)


def _fused_maps(records: list[dict], entries: dict[str, dict]) -> list[np.ndarray] | None:
    """Each record's map from the journal, fused over the run as the detector does; None when any is missing."""
    import torch

    from zsad.scoring.base import AnomalyMaps
    from zsad.scoring.fusion import fuse

    names = list(records[0].get("evidence") or {}) if records else []
    grids: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for record in records:
        entry = entries.get(record.get("path") or "")
        if not names or entry is None or list(entry["evidence"]) != names:
            return None
        for name in names:
            grids[name].append(decode_grid(entry["evidence"][name]))
    evidence = [AnomalyMaps(torch.from_numpy(np.stack(grids[name])), torch.zeros(len(records)), name)
                for name in names]
    return list(fuse(evidence).maps.float().numpy())


def _box_map(record: dict, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A coarse map (region boxes filled with their peaks) and the boxes as a mask, on a BOX_GRID-sided grid."""
    width, height = size
    grid = np.zeros((BOX_GRID, BOX_GRID), dtype=np.float32)
    for region in record.get("regions") or []:
        x0, y0, x1, y1 = region["box"]
        r0, c0 = int(np.floor(y0 * BOX_GRID / height)), int(np.floor(x0 * BOX_GRID / width))
        rows = slice(r0, max(r0 + 1, int(np.ceil(y1 * BOX_GRID / height))))
        cols = slice(c0, max(c0 + 1, int(np.ceil(x1 * BOX_GRID / width))))
        grid[rows, cols] = np.maximum(grid[rows, cols], float(region["peak"]))
    return grid, grid > 0


def load_run(run_dir: str | Path) -> Run:
    """The scored images of a ``zsad detect`` (or ``zsad eval``) output folder, with their maps."""
    run_dir = Path(run_dir)
    path = run_dir / "results.json"
    if not path.is_file():
        raise ZsadError(f"{run_dir}: no results.json; pass a folder written by `zsad detect --out`")
    try:
        document = json.loads(path.read_text())
        records = [r for r in document["results"] if not r.get("error")]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ZsadError(f"{path}: not a zsad results file ({error}); pass a folder written by `zsad detect`") from None
    entries = read_journal(run_dir)
    maps = _fused_maps(records, entries)
    results, masks = [], []
    for i, record in enumerate(records):
        entry = entries.get(record.get("path") or "")
        size = tuple(entry["size"]) if entry else _image_size(record)
        if size is None:
            continue
        if maps is not None:
            grid, mask = maps[i], None
        else:
            grid, mask = _box_map(record, size)
        masks.append(mask)
        verdict = record.get("verdict")
        results.append(AnomalyResult(
            name=record["name"], path=record.get("path"), score=record.get("score"),
            is_anomalous=True if verdict == "anomalous" else False if verdict == "normal" else None,
            threshold=record.get("threshold"), threshold_rule=record.get("threshold_rule", ""), grid_map=grid,
            original_size=size, pixel_threshold=record.get("pixel_threshold"),
        ))
    settings = document.get("settings") or {}
    object_name = (settings.get("text") or {}).get("object_name") or "object"
    return Run(results, masks, backbone_spec(settings), object_name, settings, maps is not None)


def _image_size(record: dict) -> tuple[int, int] | None:
    """(width, height) of a record's image as the detector saw it (EXIF rotation applied); None if unreadable."""
    from zsad.data.images import load_image

    try:
        return load_image(record["path"]).original_size
    except (ZsadError, KeyError, TypeError):
        return None
