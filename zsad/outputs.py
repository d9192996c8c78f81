"""Writing results: results.json, results.csv and one heat-map overlay PNG per image."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from zsad.results import AnomalyResult

# Piecewise-linear "jet"-like colormap: dark blue (low) -> cyan -> yellow -> red (high).
_COLOR_STOPS = np.array([[0, 0, 128], [0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0], [128, 0, 0]], float)


def colorize(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 colours."""
    position = np.clip(values, 0, 1) * (len(_COLOR_STOPS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_COLOR_STOPS) - 2)
    frac = (position - low)[..., None]
    return (_COLOR_STOPS[low] * (1 - frac) + _COLOR_STOPS[low + 1] * frac).astype(np.uint8)


def display_range(results: list[AnomalyResult]) -> tuple[float, float]:
    """One colour scale for the whole run (so overlays are comparable): 1st..max percentile of all maps."""
    values = [r.anomaly_map for r in results if r.anomaly_map is not None]
    if not values:
        return 0.0, 1.0
    low = min(float(np.percentile(v, 1)) for v in values)
    high = max(float(v.max()) for v in values)
    return low, high if high > low else low + 1e-6


def overlay(image: Image.Image, anomaly_map: np.ndarray, value_range: tuple[float, float], alpha: float = 0.5):
    low, high = value_range
    heat = colorize((anomaly_map - low) / (high - low))
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    return Image.fromarray((base * (1 - alpha) + heat * alpha).astype(np.uint8))


def overlay_name(result: AnomalyResult, index: int) -> str:
    stem = Path(result.name).stem or "image"
    return f"{index:05d}_{stem}_overlay.png"


def write_results(results: list[AnomalyResult], out_dir: Path, run_info: dict, load_image=None) -> Path:
    """results.json (run info + every record), results.csv (one row per input), overlays/ when images can be loaded.

    ``load_image(result) -> PIL.Image`` re-reads the original image for its overlay; images are not kept in memory
    during a run because a folder can hold thousands of them.
    """
    out_dir = Path(out_dir)
    (out_dir / "overlays").mkdir(parents=True, exist_ok=True)
    value_range = display_range(results)
    records = []
    for index, result in enumerate(results):
        record = result.to_record()
        if load_image is not None and result.anomaly_map is not None:
            name = overlay_name(result, index)
            overlay(load_image(result), result.anomaly_map, value_range).save(out_dir / "overlays" / name)
            record["overlay"] = f"overlays/{name}"
        records.append(record)
    skipped = [{"path": r.path or r.name, "error": r.error} for r in results if r.error]
    summary = {
        **run_info,
        "images": len(results),
        "anomalous": sum(r.is_anomalous is True for r in results),
        "skipped": skipped,
        "overlay_value_range": list(value_range),
        "results": records,
    }
    (out_dir / "results.json").write_text(json.dumps(summary, indent=2, default=float))
    columns = list(dict.fromkeys(key for record in records for key in record))
    with open(out_dir / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
    return out_dir / "results.json"
