"""Data sets in the Hugging Face ``datasets`` formats, read as a layout like any other.

``datasets`` is an optional dependency (``zsad[train]``), imported only when such a data set is read. Every sample
gets a file path, as in the other layouts, so evaluation, reports and training treat these data sets the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from zsad.data.images import IMAGE_SUFFIXES
from zsad.data.layouts.base import (
    PathLike,
    Sample,
    SampleSets,
    check_split,
    filter_categories,
    parse_label,
    sorted_by_path,
    split_spellings,
    text,
)
from zsad.errors import DatasetError

_IMAGE_COLUMNS = ("image", "img", "image_path", "path")
_MASK_COLUMNS = ("mask", "gt", "ground_truth", "mask_path")
_CATEGORY_COLUMNS = ("category", "object", "class_name", "cls_name")


def hf_samples(
    source: PathLike,
    categories: Iterable[str] | None = None,
    split: str = "test",
    cache_dir: PathLike | None = None,
) -> SampleSets:
    """A data set in the Hugging Face ``datasets`` formats: a folder written by ``save_to_disk``, a parquet file or
    a folder of parquet files, or a hub id already in the local cache (read offline).

    Columns: an image (``image``; an ``Image`` feature or a path), optional ``mask`` (image or path; an absent or
    empty mask is "no annotation"), ``label`` (0/1, the words ``manifest_samples`` accepts, or a ``ClassLabel``
    with such names), optional ``category`` (else ``"images"``) and ``defect``. The split is the ``DatasetDict``
    split of that name, or the rows whose ``split`` column equals it, or every row when there is neither.

    Pixels are never decoded here: images and masks that live in a file on disk are used by their path; embedded
    bytes are written once to ``cache_dir`` (default ``~/.cache/zsad/datasets/<fingerprint>``) so every sample has
    a path like every other layout, and so reports can show them.
    """
    from zsad.errors import require

    hf = require("datasets", "train")
    check_split(split)
    data = _open(hf, Path(source) if Path(source).exists() else source, split)
    columns = set(data.column_names)
    image_col = next((c for c in _IMAGE_COLUMNS if c in columns), None)
    if image_col is None:
        raise DatasetError(f"{source}: no image column ({', '.join(_IMAGE_COLUMNS)}); columns: {sorted(columns)}")
    if "split" in columns:
        names = split_spellings(split)
        data = data.filter(lambda row: row in names, input_columns="split")
    mask_col = next((c for c in _MASK_COLUMNS if c in columns), None)
    category_col = next((c for c in _CATEGORY_COLUMNS if c in columns), None)
    features = data.features
    for col in (image_col, mask_col):
        if col is not None and isinstance(features[col], hf.Image):
            data = data.cast_column(col, hf.Image(decode=False))
    label_names = (features["label"].names if "label" in columns and isinstance(features["label"], hf.ClassLabel)
                   else None)
    cache = Path(cache_dir) if cache_dir is not None else (
        Path.home() / ".cache" / "zsad" / "datasets" / data._fingerprint)
    where = str(source)
    result: SampleSets = {}
    for index, row in enumerate(data):
        category = text(row.get(category_col)) if category_col else ""
        category = category or "images"
        raw_label = row.get("label")
        if label_names is not None and isinstance(raw_label, int) and raw_label >= 0:
            raw_label = label_names[raw_label]
        label = parse_label(raw_label, f"{where}: row {index}")
        stem = f"{split}_{index:06d}"
        image = _cell_file(row[image_col], cache / category / stem, f"{where}: row {index} {image_col}")
        if image is None:
            raise DatasetError(f"{where}: row {index} has no image")
        mask = _cell_file(row[mask_col], cache / category / f"{stem}_mask", f"{where}: row {index} {mask_col}") \
            if mask_col and label == 1 else None
        defect = text(row.get("defect")) or ("anomaly" if label == 1 else None)
        result.setdefault(category, []).append(
            Sample(path=image, label=label, mask_path=mask, category=category, defect=defect if label else None))
    if not result:
        raise DatasetError(f"{where}: no rows in split {split!r}")
    return filter_categories({c: sorted_by_path(v) for c, v in sorted(result.items())}, categories, where)


def _open(hf, source, split: str):
    """Dataset of one split from a save_to_disk folder, parquet file(s), or the offline hub cache."""
    if isinstance(source, Path):
        if source.is_dir() and ((source / "dataset_dict.json").is_file() or (source / "dataset_info.json").is_file()
                                or (source / "state.json").is_file()):
            data = hf.load_from_disk(str(source))
        elif source.suffix == ".parquet" or (source.is_dir() and any(source.rglob("*.parquet"))):
            files = [str(source)] if source.is_file() else sorted(map(str, source.rglob("*.parquet")))
            split_files = [f for f in files if Path(f).name.startswith(f"{split}-") or Path(f).parent.name == split]
            data = hf.load_dataset("parquet", data_files={split: split_files or files})
        else:
            raise DatasetError(f"{source}: not a save_to_disk folder or parquet file(s) of a Hugging Face data set")
    else:
        try:
            data = hf.load_dataset(str(source))
        except Exception as exc:  # noqa: BLE001 - the hub raises many types; all mean "not available here"
            raise DatasetError(f"{source}: cannot load the data set ({type(exc).__name__}: {exc}); pass a local "
                               "save_to_disk folder or parquet file, or set HF_HOME to a cache that holds it") from None
    if isinstance(data, hf.DatasetDict):
        for name in split_spellings(split):
            if name in data:
                return data[name]
        if len(data) == 1:
            return next(iter(data.values()))
        raise DatasetError(f"{source}: no {split!r} split; splits: {', '.join(data)}")
    return data


def _cell_file(value, target: Path, where: str) -> Path | None:
    """A path for an image cell: its own file when on disk, else its bytes written once to ``target``.<ext>."""
    if value is None:
        return None
    if isinstance(value, str):
        return Path(value) if value.strip() else None
    if isinstance(value, dict):
        path, data = value.get("path"), value.get("bytes")
        if data is None:
            return Path(path) if path else None
        suffix = Path(path).suffix.lower() if path and Path(path).suffix.lower() in IMAGE_SUFFIXES else ".png"
        out = target.with_suffix(suffix)
        if not out.is_file() or out.stat().st_size != len(data):
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        return out
    raise DatasetError(f"{where}: unsupported value of type {type(value).__name__}; expected an Image or a path")
