"""MVTec LOCO AD's ground truth, read for the protocol of ``zsad.metrics.spro`` (which reads no file).

A category folder holds ``defects_config.json`` (defect name -> grey value, saturation threshold, relative or
absolute) and, per anomalous test image, a folder ``ground_truth/<kind>/<stem>/`` with one PNG per annotated
defect (``000.png``, ``001.png``, ...), each holding one grey value, the defect's ``pixel_value``. The data loaders
give that folder as ``Sample.mask_path``; the pooled pixel metrics read its union (``load_sample_mask``), the
protocol reads each file as its own region here.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zsad.errors import ZsadError
from zsad.metrics.spro import (
    LOCO_KINDS,
    OFFICIAL_LIMITS,
    DefectRegion,
    DefectType,
    defect_types,
    loco_metrics,
)

DEFECTS_CONFIG = "defects_config.json"


def read_defect_types(category_dir: str | Path) -> dict[int, DefectType]:
    """The defect types of a LOCO category from its ``defects_config.json``."""
    path = Path(category_dir) / DEFECTS_CONFIG
    if not path.is_file():
        raise ZsadError(f"{path}: not found; MVTec LOCO AD's sPRO needs each category's {DEFECTS_CONFIG} "
                        "(shipped with the data set) for the saturation thresholds")
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ZsadError(f"{path}: cannot read ({error})") from None
    if not isinstance(entries, list):
        raise ZsadError(f"{path}: expected a JSON list of defect entries, got {type(entries).__name__}")
    return defect_types(entries, where=str(path))


def read_regions(mask_path: str | Path | None, defects: Mapping[int, DefectType],
                 size: tuple[int, int]) -> list[DefectRegion]:
    """The regions of one image: every ``*.png`` of its ground-truth folder in name order (a single file is one
    region; None, a good image, none). ``size`` is the image's (width, height); a mask of another size is resized
    nearest-neighbour, as ``load_mask`` does."""
    if mask_path is None:
        return []
    folder = Path(mask_path)
    files = sorted(folder.glob("*.png")) if folder.is_dir() else [folder]
    if not files:
        raise ZsadError(f"{folder}: ground-truth folder holds no .png; MVTec LOCO AD gives one PNG per defect")
    return [_region(file, defects, size) for file in files]


def _region(file: Path, defects: Mapping[int, DefectType], size: tuple[int, int]) -> DefectRegion:
    try:
        with Image.open(file) as image:
            values = np.asarray(image)
    except OSError as error:
        raise ZsadError(f"{file}: cannot read the ground-truth mask ({error})") from None
    if values.ndim != 2 or not np.issubdtype(values.dtype, np.integer):
        raise ZsadError(f"{file}: expected a single-channel integer PNG (MVTec LOCO AD's masks), got shape "
                        f"{values.shape}, {values.dtype}")
    present = [int(v) for v in np.unique(values) if v != 0]
    if len(present) != 1:
        raise ZsadError(f"{file}: holds the grey values {present or [0]}; a LOCO mask marks one defect with one "
                        "non-zero value")
    if present[0] not in defects:
        known = ", ".join(f"{v} ({d.name})" for v, d in sorted(defects.items()))
        raise ZsadError(f"{file}: grey value {present[0]} is not in {DEFECTS_CONFIG} (known: {known})")
    mask = values != 0
    if mask.shape != (size[1], size[0]):
        resized = Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.NEAREST)
        mask = np.asarray(resized) > 0
    return DefectRegion(mask, defects[present[0]])


def loco_category(samples: Sequence[Any], scores: Sequence[float], maps: Sequence[np.ndarray] | None,
                  category_dir: str | Path, limits: Sequence[float] = OFFICIAL_LIMITS,
                  ) -> tuple[dict[str, dict[str, float]] | None, str]:
    """One category's LOCO table (``zsad.metrics.spro.loco_metrics``) and a note.

    samples: ``Sample``-like objects (``label``, ``defect`` = ``logical_anomalies``/``structural_anomalies``,
    ``mask_path``) of the scored images, with their image scores and full-size maps (None when not every anomalous
    image has a ground-truth folder: then AU-sPRO is NaN and the note says why). A test folder of another name is
    not LOCO's layout: no table, and the note names it.
    """
    kinds = ["good" if s.label == 0 else s.defect for s in samples]
    odd = sorted({str(k) for k in kinds if k not in ("good", *LOCO_KINDS)})
    if odd:
        return None, (f"LOCO protocol skipped: test folder(s) {', '.join(odd)} are neither "
                      f"{' nor '.join(LOCO_KINDS)}")
    note = ""
    regions: list[list[DefectRegion]] | None = None
    if maps is None:
        note = "LOCO AU-sPRO skipped: not every anomalous image has a ground-truth folder"
    else:
        try:
            defects = read_defect_types(category_dir)
            regions = [read_regions(s.mask_path, defects, (m.shape[1], m.shape[0])) for s, m in zip(samples, maps)]
        except ZsadError as error:
            note = f"LOCO AU-sPRO skipped: {error}"
    return loco_metrics(scores, maps if regions is not None else None, regions, kinds, limits), note
