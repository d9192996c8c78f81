"""What discovery writes: ``types.json``, ``images.csv``, a contact sheet PNG per type, and the two per-image fields
for results.json/csv (``defect_type``, ``defect_type_confidence``).

``discovery_writer`` is the same as a writer of ``zsad.outputs`` (``writer(results, records, output)``), for
``zsad detect --discover``: run before the tables (``zsad.outputs.writers_with``), it discovers the run's types,
writes the folder below into ``<out>/discovery``, adds the two fields to every record and the settings and a
summary of the types to the run description (``results.json["discovery"]``). A discovery that fails with an
expected problem (``ZsadError``) is a warning and a recorded error: the detection results are written all the same.

Layout of a discovery folder::

    types.json                     settings, the K estimate, and per type: name, count, exemplar images, mean
                                   score, typical location, mean area, closest phrases
    images.csv                     one row per discovered image: name, path, score, defect_type, confidence
    sheets/type_NN_<name>.png      the type's strongest crops, anomalous cells outlined, names underneath
"""
from __future__ import annotations

import csv
import json
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from zsad.discovery.pipeline import Discovery, ImageType, load_result
from zsad.discovery.settings import DiscoverySettings
from zsad.errors import ZsadError
from zsad.results import AnomalyResult

TILE = 160
COLUMNS = 4
SHEET_CROPS = 12


def annotate_records(records: list[dict], discovery: Discovery) -> list[dict]:
    """Copies of results.json records (``AnomalyResult.to_record``) with ``defect_type`` (the type's name, None
    for images not discovered) and ``defect_type_confidence``; matched by record ``name``."""
    found = discovery.by_image()
    return [{**record, **type_fields(found.get(record.get("name")))} for record in records]


def type_fields(image: ImageType | None) -> dict[str, Any]:
    """``{"defect_type", "defect_type_confidence"}`` of one image (both None when it was not discovered)."""
    return {"defect_type": image.type_name if image else None,
            "defect_type_confidence": round(image.confidence, 6) if image else None}


SUMMARY_KEYS = ("index", "name", "description", "count", "regions", "mean_score", "location", "mean_area",
                "exemplars", "named_by", "naming_error")


def summary(discovery: Discovery | None, settings: DiscoverySettings, folder: str | None = None,
            error: str | None = None) -> dict[str, Any]:
    """What a run description records of its discovery: the settings, what ran, the K estimate, each type without
    its image list (the records carry each image's type), the folder of types.json, or the error."""
    out: dict[str, Any] = {"settings": settings.describe(), "folder": folder, "error": error}
    if discovery is not None:
        out.update(ran=discovery.settings, k=discovery.k.to_dict(), images=len(discovery.images),
                   types=[{key: d[key] for key in SUMMARY_KEYS} for d in (t.to_dict() for t in discovery.types)])
    return out


def discovery_writer(find: Callable[[Sequence[AnomalyResult]], Discovery], settings: DiscoverySettings,
                     folder: str = "discovery"):
    """A ``zsad.outputs`` writer that discovers the run's types with ``find(results)`` (see the module doc)."""

    def write_types(results: list[AnomalyResult], records: list[dict], output) -> None:
        try:
            found = find(results)
        except ZsadError as error:
            warnings.warn(f"defect-type discovery failed ({error}); the results are written without types")
            output.run_info["discovery"] = summary(None, settings, error=str(error))
            found = None
        else:
            by_name = {r.name: r for r in results}
            load = (lambda name: load_result(by_name[name])) if settings.sheets else None
            write_discovery(found, output.out_dir / folder, load)
            output.run_info["discovery"] = summary(found, settings, folder)
        images = found.by_image() if found is not None else {}
        for record in records:
            record.update(type_fields(images.get(record.get("name"))))

    return write_types


def types_document(discovery: Discovery) -> dict:
    """The content of types.json."""
    return {**discovery.to_dict(), "regions": [r.to_dict() for r in discovery.regions]}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "type"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def contact_sheet(discovery: Discovery, index: int, load: Callable[[str], Image.Image]) -> Image.Image:
    """The type's ``SHEET_CROPS`` most probable crops (one per image first), the anomalous cells' box outlined,
    image names under the tiles, the type's name and count on top. ``load(image name) -> PIL image``."""
    kind = discovery.types[index]
    regions = sorted((r for r in discovery.regions if r.type == index), key=lambda r: -r.probability)
    seen, firsts, rest = set(), [], []
    for region in regions:
        (rest if region.image in seen else firsts).append(region)
        seen.add(region.image)
    shown = (firsts + rest)[:SHEET_CROPS]
    rows = max(1, -(-len(shown) // COLUMNS))
    header, caption = 28, 16
    sheet = Image.new("RGB", (COLUMNS * TILE, header + rows * (TILE + caption)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 6), f"{index + 1}. {kind.name} - {kind.count} image(s), {kind.regions} region(s)",
              fill=(240, 240, 240), font=_font(16))
    small = _font(11)
    cache: dict[str, Image.Image] = {}
    for position, region in enumerate(shown):
        if region.image not in cache:
            cache = {region.image: load(region.image).convert("RGB")}  # one decoded image at a time
        x0, y0, x1, y1 = region.crop.box
        tile = cache[region.image].crop(region.crop.box).resize((TILE, TILE), Image.BILINEAR)
        sx, sy = TILE / max(1, x1 - x0), TILE / max(1, y1 - y0)
        rx0, ry0, rx1, ry1 = region.crop.region_box
        ImageDraw.Draw(tile).rectangle([(rx0 - x0) * sx, (ry0 - y0) * sy, (rx1 - x0) * sx - 1, (ry1 - y0) * sy - 1],
                                       outline=(255, 60, 60), width=2)
        left, top = (position % COLUMNS) * TILE, header + (position // COLUMNS) * (TILE + caption)
        sheet.paste(tile, (left, top))
        draw.text((left + 3, top + TILE + 2), f"{region.image[-22:]} {region.probability:.2f}", fill=(210, 210, 210),
                  font=small)
    return sheet


def write_discovery(discovery: Discovery, out_dir: str | Path,
                    load: Callable[[str], Image.Image] | None = None) -> dict[str, Path]:
    """types.json, images.csv and (when ``load(image name) -> PIL image`` is given) one contact sheet per type."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"types": out / "types.json", "images": out / "images.csv"}
    paths["types"].write_text(json.dumps(types_document(discovery), indent=2, default=float))
    with open(paths["images"], "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "path", "score", "defect_type", "defect_type_confidence", "regions"])
        for image in discovery.images:
            writer.writerow([image.name, image.path or "", image.score, image.type_name,
                             f"{image.confidence:.6f}", image.regions])
    if load is not None:
        (out / "sheets").mkdir(exist_ok=True)
        for kind in discovery.types:
            target = out / "sheets" / f"type_{kind.index + 1:02d}_{_slug(kind.name)}.png"
            contact_sheet(discovery, kind.index, load).save(target)
            paths[f"sheet_{kind.index + 1}"] = target
    return paths
