"""VisA: images anywhere under the root, listed with their split, label and mask by a split file.

The split file (``split_csv/1cls.csv`` from VisA's prepare script) is the only source of labels, so every row is
checked and a malformed one is reported by its row number.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from zsad.data.layouts.base import (
    PathLike,
    Sample,
    SampleSets,
    check_split,
    existing_root,
    read_csv,
    select,
    sorted_by_path,
)
from zsad.errors import DatasetError

_COLUMNS = ("object", "split", "label", "image", "mask")
_LABELS = {"normal": 0, "anomaly": 1}


def visa_samples(
    root: PathLike,
    categories: Iterable[str] | None = None,
    split: str = "test",
    split_csv: PathLike | None = None,
) -> SampleSets:
    """Read VisA through its split file (default ``<root>/split_csv/1cls.csv``; paths relative to ``root``)."""
    root = existing_root(root, "VisA dataset")
    check_split(split)
    csv_path = Path(split_csv) if split_csv is not None else root / "split_csv" / "1cls.csv"
    if not csv_path.is_file():
        raise DatasetError(
            f"{csv_path}: VisA split file not found; pass split_csv= or create it with VisA's prepare script"
        )
    rows = read_csv(csv_path)
    if rows and (missing := [c for c in _COLUMNS if c not in rows[0]]):
        raise DatasetError(f"{csv_path}: missing column(s) {', '.join(missing)}; expected {','.join(_COLUMNS)}")
    by_category: SampleSets = {}
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        category = (row["object"] or "").strip()
        if not category:
            raise DatasetError(f"{csv_path}: row {number} has an empty 'object'; fill in the category")
        by_category.setdefault(category, [])
        if (row["split"] or "").strip() != split:
            continue
        label_text = (row["label"] or "").strip().lower()
        if label_text not in _LABELS:
            raise DatasetError(f"{csv_path}: row {number} has label {row['label']!r}; expected normal or anomaly")
        image = (row["image"] or "").strip()
        if not image:
            raise DatasetError(f"{csv_path}: row {number} has an empty 'image'; fill in the image path")
        label = _LABELS[label_text]
        mask = (row["mask"] or "").strip()
        by_category[category].append(
            Sample(path=root / image, label=label, mask_path=root / mask if mask and label else None,
                   category=category, defect="anomaly" if label else None)
        )
    if not by_category:
        raise DatasetError(f"{csv_path}: split file has no rows; check that it is VisA's 1cls.csv")
    result = {}
    for category in select(sorted(by_category), categories, csv_path):
        samples = by_category[category]
        if not samples:
            raise DatasetError(f"{csv_path}: category {category!r} has no {split} rows; pick another split")
        result[category] = sorted_by_path(samples)
    return result
