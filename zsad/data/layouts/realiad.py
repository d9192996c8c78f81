"""Real-IAD: images under ``<image_root>/<category>/`` listed by one JSON split file per category.

The data set ships its images at several resolutions and its split files in several protocols (multi-view,
single-view, FUIAD), each in its own folder; the defaults pick the first that exists, and the layout's options
``json_dir`` and ``image_root`` pick another.

Protocol: every listed image is scored on its own, each JSON file (object) is one class, metrics per object and
then the mean over objects: the official evaluation (ADEval, per object) in the single-view setting
(``realiad_jsons_sv``); ``tests/evaluation/test_official_averaging.py`` compares. Two differences, both outside
what that test's data exercises: ADEval labels an image by its mask (a pixel > 127; no mask: normal) where zsad
labels it by ``anomaly_class``, which agree whenever every defect entry has a non-empty mask; and the multi-view
setting's sample-level S-AUROC (the maximum over a sample's five views) is not computed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from zsad.data.layouts.base import (
    PathLike,
    Sample,
    SampleSets,
    check_split,
    existing_root,
    select,
    sorted_by_path,
    text,
)
from zsad.errors import DatasetError

_JSON_DIRS = ("realiad_jsons/realiad_jsons", "realiad_jsons", "realiad_jsons_sv")
_IMAGE_DIRS = ("realiad_1024", "realiad_512", "realiad_256", "realiad_raw", ".")


def realiad_samples(
    root: PathLike,
    categories: Iterable[str] | None = None,
    split: str = "test",
    json_dir: PathLike | None = None,
    image_root: PathLike | None = None,
) -> SampleSets:
    """Real-IAD through its JSON split files, one per category: ``<json_dir>/<category>.json`` =
    ``{"meta": {"prefix": "", "normal_class": "OK", ...}, "train": [...], "test": [...]}``, each entry
    ``{"category", "anomaly_class", "image_path", "mask_path"}`` with paths relative to
    ``<image_root>/<category>/`` (``OK/S0001/..._C1_....jpg``, ``NG/<defect>/S0002/...``).

    ``json_dir`` defaults to the first of ``realiad_jsons/realiad_jsons``, ``realiad_jsons``, ``realiad_jsons_sv``
    under ``root`` that holds .json files (pass ``realiad_jsons_sv`` or a ``fuiad`` folder to pick another
    protocol); ``image_root`` to the first of ``realiad_1024``, ``realiad_512``, ``realiad_256``, ``realiad_raw``
    or ``root`` itself. An entry whose ``anomaly_class`` equals ``meta.normal_class`` is normal; any other is
    anomalous with that class as ``defect``. A path that already starts with the category is resolved against
    ``image_root`` instead.
    """
    root = existing_root(root, "Real-IAD dataset")
    check_split(split)
    jsons = Path(json_dir) if json_dir is not None else next(
        (root / d for d in _JSON_DIRS if (root / d).is_dir() and any((root / d).glob("*.json"))), None)
    if jsons is None or not jsons.is_dir():
        raise DatasetError(
            f"{root}: no Real-IAD JSON split folder ({', '.join(_JSON_DIRS)}); pass json_dir= "
            "(the folder of <category>.json files from realiad_jsons.zip)"
        )
    images = Path(image_root) if image_root is not None else next(
        root / d for d in _IMAGE_DIRS if (root / d).is_dir())
    available = sorted(p.stem for p in jsons.glob("*.json") if not p.name.startswith("."))
    if not available:
        raise DatasetError(f"{jsons}: no <category>.json split files")
    result: SampleSets = {}
    for category in select(available, categories, jsons):
        path = jsons / f"{category}.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path}: not valid JSON ({exc}); expected a Real-IAD split file") from None
        if not isinstance(data, dict) or split not in data:
            raise DatasetError(f"{path}: no {split!r} list; expected Real-IAD's {{'meta', 'train', 'test'}}")
        meta = data.get("meta") or {}
        normal = str(meta.get("normal_class", "OK"))
        prefix = str(meta.get("prefix") or "")
        samples = []
        for number, entry in enumerate(data[split]):
            where = f"{path}: {split}[{number}]"
            if not isinstance(entry, dict) or not text(entry.get("image_path")):
                raise DatasetError(f"{where} has no image_path")
            anomaly = text(entry.get("anomaly_class")) or normal
            label = 0 if anomaly == normal else 1
            mask = text(entry.get("mask_path"))
            samples.append(Sample(
                path=_image_path(images, category, prefix, text(entry["image_path"])),
                label=label,
                mask_path=_image_path(images, category, prefix, mask) if mask and label else None,
                category=category,
                defect=anomaly if label else None,
            ))
        if not samples:
            raise DatasetError(f"{path}: the {split} list is empty; pick another split")
        result[category] = sorted_by_path(samples)
    return result


def _image_path(images: Path, category: str, prefix: str, relative: str) -> Path:
    relative = f"{prefix.rstrip('/')}/{relative}" if prefix else relative
    first = Path(relative).parts[0] if Path(relative).parts else ""
    return images / relative if first == category else images / category / relative
