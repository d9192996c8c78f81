"""Inputs that are not a benchmark: plain folders of images and manifests (CSV/JSON lists of images).

Neither has splits, so their layouts ignore ``split``; both learn their categories only by reading every entry,
so categories are selected after reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from zsad.data.images import list_images
from zsad.data.layouts.base import (
    PathLike,
    Sample,
    SampleSets,
    filter_categories,
    parse_label,
    read_csv,
    read_json_rows,
    sorted_by_path,
    text,
)
from zsad.errors import DatasetError

NORMAL_FOLDER_NAMES = frozenset({"good", "normal", "ok"})


# --------------------------------------------------------------------------------------------------- folders


def folder_samples(paths: PathLike | Sequence[PathLike]) -> SampleSets:
    """Images of folders: each folder given is one category named after it; loose files go to ``"images"``.

    A folder organised like an MVTec test split, with a ``good`` (or ``normal``/``ok``) sub-folder beside one
    sub-folder per defect type, is labelled from those names (so ``zsad eval --dataset folder`` works on it);
    any other folder is unlabelled. Folders are expanded recursively by ``list_images``; files are kept as given
    (even with an unknown suffix) so that the loader reports them.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise DatasetError("no input paths given; pass image files or folders")
    result: SampleSets = {}
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        category = path.resolve().name if path.is_dir() else "images"
        labelled = path.is_dir() and any(
            child.is_dir() and child.name.lower() in NORMAL_FOLDER_NAMES for child in path.iterdir()
        )
        for image in list_images([path]):
            if image in seen:
                continue
            seen.add(image)
            label, defect = _folder_label(image, path, labelled)
            result.setdefault(category, []).append(
                Sample(path=image, label=label, mask_path=None, category=category, defect=defect)
            )
    return dict(sorted(result.items()))


def read_folder(root: PathLike | Sequence[PathLike], categories: Iterable[str] | None = None,
                split: str = "test") -> SampleSets:
    """The ``folder`` layout: ``folder_samples`` of one or more paths, then the categories asked for."""
    return filter_categories(folder_samples(root), categories, "folder input")


def _folder_label(image: Path, folder: Path, labelled: bool) -> tuple[int | None, str | None]:
    """(label, defect) from the first sub-folder under ``folder``: good/normal/ok -> 0, any other -> 1."""
    if not labelled:
        return None, None
    first = image.relative_to(folder).parts[0]
    return (0, None) if first.lower() in NORMAL_FOLDER_NAMES else (1, first)


# --------------------------------------------------------------------------------------------------- manifests


def manifest_samples(path: PathLike) -> SampleSets:
    """Read a CSV (header row) or JSON (list of objects) manifest with ``path`` and optional ``label``, ``mask``,
    ``category`` and ``defect``; relative paths are resolved against the manifest's folder.

    Labels accept 0/1 and the words normal/good/ok and anomaly/anomalous/defect/defective/bad (any case); an
    empty or absent label means unknown. Rows without a category go to ``"images"``.
    """
    manifest = Path(path)
    if not manifest.is_file():
        raise DatasetError(f"{manifest}: manifest file not found; check the path")
    suffix = manifest.suffix.lower()
    if suffix == ".csv":
        rows = read_csv(manifest)
        first_row = 2
    elif suffix == ".json":
        rows = read_json_rows(manifest)
        first_row = 1
    else:
        raise DatasetError(f"{manifest}: unknown manifest format {suffix or '(no suffix)'!r}; use .csv or .json")
    if not rows:
        raise DatasetError(f"{manifest}: manifest has no rows; add one row per image with a 'path'")
    base = manifest.parent
    result: SampleSets = {}
    for number, row in enumerate(rows, start=first_row):
        sample = _manifest_row(row, number, manifest, base)
        result.setdefault(sample.category, []).append(sample)
    return {category: sorted_by_path(samples) for category, samples in sorted(result.items())}


def read_manifest(root: PathLike, categories: Iterable[str] | None = None, split: str = "test") -> SampleSets:
    """The ``manifest`` layout: ``manifest_samples`` of the manifest file ``root``, then the categories asked for."""
    return filter_categories(manifest_samples(root), categories, root)


def _manifest_row(row: dict, number: int, manifest: Path, base: Path) -> Sample:
    where = f"{manifest}: row {number}"
    if not isinstance(row, dict):
        raise DatasetError(f"{where} is not an object; write the manifest as a list of {{\"path\": ...}} objects")
    image = text(row.get("path"))
    if not image:
        raise DatasetError(f"{where} has no 'path'; every row needs the image path")
    label = parse_label(row.get("label"), where)
    mask = text(row.get("mask"))
    defect = text(row.get("defect")) or None
    category = text(row.get("category")) or "images"
    return Sample(
        path=_resolve(image, base),
        label=label,
        mask_path=_resolve(mask, base) if mask else None,
        category=category,
        defect=defect if label != 0 else None,
    )


def _resolve(relative: str, base: Path) -> Path:
    path = Path(relative).expanduser()
    return path if path.is_absolute() else base / path
