"""Dataset layouts: turn a folder, split file or manifest into per-category lists of ``Sample``.

Only paths are collected here; pixels are read later by ``load_image``/``load_mask``. Files listed by a split
file or manifest are therefore not checked for existence: a missing or broken image is reported by the loader
for that image alone, so one bad file does not lose the results of the rest of the dataset (DESIGN.md).

Conventions shared by all layouts:

- ``label`` is 0 (normal), 1 (anomalous) or None (unknown, e.g. a plain folder of images to inspect).
- ``defect`` is the defect type of an anomalous image (the MVTec test sub-folder name, ``"anomaly"`` for VisA,
  whose split file has no defect types), and None for normal or unlabelled images.
- ``mask_path`` is None for normal images and for anomalous images without an annotation. That is not an error:
  image-level metrics still use such images, but pixel-level metrics need a mask, so they must skip anomalous
  images whose ``mask_path`` is None rather than count them as all-normal.
- Samples within a category are sorted by path, and categories by name, so every run sees the same order.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from zsad.data.images import IMAGE_SUFFIXES, list_images
from zsad.errors import DatasetError

PathLike = str | Path


@dataclass
class Sample:
    """One image of a dataset with its ground truth, if any."""

    path: Path
    label: int | None  # 0 normal, 1 anomalous, None unknown
    mask_path: Path | None
    category: str
    defect: str | None


SampleSets = dict[str, list[Sample]]

_SPLITS = ("train", "test")
_GOOD = "good"


# --------------------------------------------------------------------------------------------------- MVTec AD


def mvtec_samples(root: PathLike, categories: Iterable[str] | None = None, split: str = "test") -> SampleSets:
    """Read the MVTec AD layout ``<root>/<category>/{train/good, test/<defect|good>, ground_truth/<defect>}``.

    Masks are looked up as ``ground_truth/<defect>/<stem>_mask.png`` (MVTec AD) and then
    ``ground_truth/<defect>/<stem>.png``. The original MVTec 3D-AD layout, where each defect folder holds
    ``rgb/`` and ``gt/`` sub-folders, is read as well (RGB images only); RGB-only copies flattened to the MVTec AD
    layout need nothing special. ``split="train"`` gives ``train/good``.
    """
    root = _existing_root(root, "MVTec-style dataset")
    _check_split(split)
    available = sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and _looks_like_mvtec(p)
    )
    if not available:
        if _looks_like_mvtec(root):
            raise DatasetError(
                f"{root}: is itself a category folder (it holds train/ or test/); pass its parent folder as root"
            )
        raise DatasetError(
            f"{root}: no category folders with train/ or test/ inside; expected <root>/<category>/test/<defect>/"
        )
    result: SampleSets = {}
    for category in _select(available, categories, root):
        folder = root / category
        split_dir = folder / split
        if not split_dir.is_dir():
            raise DatasetError(f"{split_dir}: category {category!r} has no {split} split; pick another split")
        samples = []
        for defect_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if split == "train" and defect_dir.name != _GOOD:
                continue
            samples.extend(_mvtec_defect_samples(folder, defect_dir, category))
        if not samples:
            raise DatasetError(f"{split_dir}: no images in its sub-folders; expected {split}/good/*.png")
        result[category] = sorted(samples, key=lambda s: s.path)
    return result


def _looks_like_mvtec(folder: Path) -> bool:
    return (folder / "test").is_dir() or (folder / "train").is_dir()


def _mvtec_defect_samples(category_dir: Path, defect_dir: Path, category: str) -> list[Sample]:
    defect = defect_dir.name
    is_good = defect == _GOOD
    rgb_dir = defect_dir / "rgb"
    three_d = rgb_dir.is_dir()  # MVTec 3D-AD: <defect>/rgb/*.png with masks in <defect>/gt/*.png
    images = _image_files(rgb_dir if three_d else defect_dir)
    samples = []
    for image in images:
        mask = None
        if not is_good:
            if three_d:
                candidates = [defect_dir / "gt" / f"{image.stem}.png"]
            else:
                gt = category_dir / "ground_truth" / defect
                candidates = [gt / f"{image.stem}_mask.png", gt / f"{image.stem}.png"]
            mask = next((c for c in candidates if c.is_file()), None)
        samples.append(
            Sample(path=image, label=0 if is_good else 1, mask_path=mask, category=category,
                   defect=None if is_good else defect)
        )
    return samples


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


# --------------------------------------------------------------------------------------------------- VisA

_VISA_COLUMNS = ("object", "split", "label", "image", "mask")
_VISA_LABELS = {"normal": 0, "anomaly": 1}


def visa_samples(
    root: PathLike,
    categories: Iterable[str] | None = None,
    split: str = "test",
    split_csv: PathLike | None = None,
) -> SampleSets:
    """Read VisA through its split file (default ``<root>/split_csv/1cls.csv``; paths relative to ``root``)."""
    root = _existing_root(root, "VisA dataset")
    _check_split(split)
    csv_path = Path(split_csv) if split_csv is not None else root / "split_csv" / "1cls.csv"
    if not csv_path.is_file():
        raise DatasetError(
            f"{csv_path}: VisA split file not found; pass split_csv= or create it with VisA's prepare script"
        )
    rows = _read_csv(csv_path)
    if rows and (missing := [c for c in _VISA_COLUMNS if c not in rows[0]]):
        raise DatasetError(f"{csv_path}: missing column(s) {', '.join(missing)}; expected {','.join(_VISA_COLUMNS)}")
    by_category: SampleSets = {}
    for number, row in enumerate(rows, start=2):  # row 1 is the header
        category = (row["object"] or "").strip()
        if not category:
            raise DatasetError(f"{csv_path}: row {number} has an empty 'object'; fill in the category")
        by_category.setdefault(category, [])
        if (row["split"] or "").strip() != split:
            continue
        label_text = (row["label"] or "").strip().lower()
        if label_text not in _VISA_LABELS:
            raise DatasetError(f"{csv_path}: row {number} has label {row['label']!r}; expected normal or anomaly")
        image = (row["image"] or "").strip()
        if not image:
            raise DatasetError(f"{csv_path}: row {number} has an empty 'image'; fill in the image path")
        label = _VISA_LABELS[label_text]
        mask = (row["mask"] or "").strip()
        by_category[category].append(
            Sample(path=root / image, label=label, mask_path=root / mask if mask and label else None,
                   category=category, defect="anomaly" if label else None)
        )
    if not by_category:
        raise DatasetError(f"{csv_path}: split file has no rows; check that it is VisA's 1cls.csv")
    result = {}
    for category in _select(sorted(by_category), categories, csv_path):
        samples = by_category[category]
        if not samples:
            raise DatasetError(f"{csv_path}: category {category!r} has no {split} rows; pick another split")
        result[category] = sorted(samples, key=lambda s: s.path)
    return result


# --------------------------------------------------------------------------------------------------- plain folders


NORMAL_FOLDER_NAMES = frozenset({"good", "normal", "ok"})


def _folder_label(image: Path, folder: Path, labelled: bool) -> tuple[int | None, str | None]:
    """(label, defect) from the first sub-folder under ``folder``: good/normal/ok -> 0, any other -> 1."""
    if not labelled:
        return None, None
    first = image.relative_to(folder).parts[0]
    return (0, None) if first.lower() in NORMAL_FOLDER_NAMES else (1, first)


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


# --------------------------------------------------------------------------------------------------- manifests

_LABEL_WORDS = {
    "0": 0, "normal": 0, "good": 0, "ok": 0,
    "1": 1, "anomaly": 1, "anomalous": 1, "defect": 1, "defective": 1, "bad": 1,
}


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
        rows = _read_csv(manifest)
        first_row = 2
    elif suffix == ".json":
        rows = _read_json_rows(manifest)
        first_row = 1
    else:
        raise DatasetError(f"{manifest}: unknown manifest format {suffix or '(no suffix)'!r}; use .csv or .json")
    if not rows:
        raise DatasetError(f"{manifest}: manifest has no rows; add one row per image with a 'path'")
    base = manifest.parent
    result: SampleSets = {}
    for number, row in enumerate(rows, start=first_row):
        result_sample = _manifest_row(row, number, manifest, base)
        result.setdefault(result_sample.category, []).append(result_sample)
    return {category: sorted(samples, key=lambda s: s.path) for category, samples in sorted(result.items())}


def _manifest_row(row: dict, number: int, manifest: Path, base: Path) -> Sample:
    where = f"{manifest}: row {number}"
    if not isinstance(row, dict):
        raise DatasetError(f"{where} is not an object; write the manifest as a list of {{\"path\": ...}} objects")
    image = _text(row.get("path"))
    if not image:
        raise DatasetError(f"{where} has no 'path'; every row needs the image path")
    label = _parse_label(row.get("label"), where)
    mask = _text(row.get("mask"))
    defect = _text(row.get("defect")) or None
    category = _text(row.get("category")) or "images"
    return Sample(
        path=_resolve(image, base),
        label=label,
        mask_path=_resolve(mask, base) if mask else None,
        category=category,
        defect=defect if label != 0 else None,
    )


def _parse_label(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        if value in (0, 1):
            return int(value)
        raise DatasetError(f"{where} has label {value!r}; use 0 (normal) or 1 (anomalous)")
    text = _text(value).lower()
    if not text:
        return None
    if text in _LABEL_WORDS:
        return _LABEL_WORDS[text]
    raise DatasetError(f"{where} has label {value!r}; use 0/1, normal/good or anomaly/anomalous/defect")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return ""
    return str(value).strip()


def _resolve(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base / path


def _read_json_rows(path: Path) -> list:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc}); write a list of objects with a 'path' key") from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: JSON manifest must be a list of objects, got {type(data).__name__}")
    return data


def _read_csv(path: Path) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            fields = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: unreadable CSV ({exc}); save it as UTF-8 CSV with a header row") from None
    if not fields:
        raise DatasetError(f"{path}: CSV is empty; it needs a header row")
    return [{(k or "").strip(): v for k, v in row.items()} for row in rows]


# --------------------------------------------------------------------------------------------------- dispatch


def _mvtec_loader(root: PathLike, categories: Iterable[str] | None, split: str) -> SampleSets:
    return mvtec_samples(root, categories, split)


def _visa_loader(root: PathLike, categories: Iterable[str] | None, split: str) -> SampleSets:
    return visa_samples(root, categories, split)


def _folder_loader(root: PathLike | Sequence[PathLike], categories: Iterable[str] | None, split: str) -> SampleSets:
    return _filter(folder_samples(root), categories, "folder input")


def _manifest_loader(root: PathLike, categories: Iterable[str] | None, split: str) -> SampleSets:
    return _filter(manifest_samples(root), categories, root)


DatasetLoader = Callable[..., SampleSets]

DATASET_KINDS: dict[str, DatasetLoader] = {
    "mvtec": _mvtec_loader,
    "visa": _visa_loader,
    "folder": _folder_loader,
    "manifest": _manifest_loader,
}
"""Dataset kinds by name. Folders and manifests have no splits, so ``split`` is ignored for them."""


def load_samples(
    kind: str,
    root: PathLike | Sequence[PathLike],
    categories: Iterable[str] | None = None,
    split: str = "test",
) -> SampleSets:
    """Read a dataset of the given kind (``mvtec``, ``visa``, ``folder`` or ``manifest``)."""
    try:
        loader = DATASET_KINDS[kind]
    except KeyError:
        raise DatasetError(f"unknown dataset kind {kind!r}; use one of {', '.join(DATASET_KINDS)}") from None
    return loader(root, categories, split)


# --------------------------------------------------------------------------------------------------- helpers


def _existing_root(root: PathLike, what: str) -> Path:
    path = Path(root)
    if not path.exists():
        raise DatasetError(f"{path}: {what} root not found; check the path")
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} root is a file, not a folder; pass the dataset folder")
    return path


def _check_split(split: str) -> None:
    if split not in _SPLITS:
        raise DatasetError(f"unknown split {split!r}; use 'train' or 'test'")


def _select(available: list[str], wanted: Iterable[str] | None, where: PathLike) -> list[str]:
    if wanted is None:
        return available
    if isinstance(wanted, str):
        wanted = [wanted]
    wanted = list(dict.fromkeys(wanted))
    missing = [c for c in wanted if c not in available]
    if missing:
        raise DatasetError(
            f"{where}: category {', '.join(map(repr, missing))} not found; available: {', '.join(available)}"
        )
    return wanted


def _filter(samples: SampleSets, categories: Iterable[str] | None, where: object) -> SampleSets:
    selected = _select(sorted(samples), categories, str(where))
    return {category: samples[category] for category in selected}


__all__ = [
    "DATASET_KINDS",
    "Sample",
    "SampleSets",
    "folder_samples",
    "load_samples",
    "manifest_samples",
    "mvtec_samples",
    "visa_samples",
]
