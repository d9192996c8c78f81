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

_SPLITS = ("train", "test", "validation")  # "validation": MVTec LOCO's validation/good
_GOOD = "good"
_MVTEC_GOOD = ("good",)
_BTAD_GOOD = ("ok", "good")


# --------------------------------------------------------------------------------------------------- MVTec AD


def mvtec_samples(
    root: PathLike, categories: Iterable[str] | None = None, split: str = "test",
    good_names: Sequence[str] = _MVTEC_GOOD,
) -> SampleSets:
    """Read the MVTec AD layout ``<root>/<category>/{train/good, test/<defect|good>, ground_truth/<defect>}``.

    Masks are looked up in ``ground_truth/<defect>/`` as ``<stem>_mask.png``, ``<stem>.png``, ``<stem>.bmp``,
    ``<stem>_mask.bmp``, and as a folder ``<stem>/`` of several mask files whose union is the mask (MVTec LOCO);
    so MPDD (the MVTec AD layout), MVTec LOCO and BTAD read with this function (see ``loco_samples`` and
    ``btad_samples``). The original MVTec 3D-AD layout, where each defect folder holds ``rgb/`` and ``gt/``
    sub-folders, is read as well (RGB images only); RGB-only copies flattened to the MVTec AD layout need nothing
    special. ``split="train"`` gives the good training images; ``good_names`` are the folder names of normal
    images (``good``; BTAD uses ``ok``), compared case-insensitively.
    """
    root = _existing_root(root, "MVTec-style dataset")
    _check_split(split)
    good = {name.lower() for name in good_names}
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
            if split != "test" and defect_dir.name.lower() not in good:
                continue
            samples.extend(_mvtec_defect_samples(folder, defect_dir, category, good))
        if not samples:
            raise DatasetError(f"{split_dir}: no images in its sub-folders; expected {split}/good/*.png")
        result[category] = sorted(samples, key=lambda s: s.path)
    return result


def loco_samples(root: PathLike, categories: Iterable[str] | None = None, split: str = "test") -> SampleSets:
    """MVTec LOCO AD: ``<cat>/{train,validation}/good``, ``<cat>/test/{good,logical_anomalies,
    structural_anomalies}/<id>.png`` and ``<cat>/ground_truth/<defect>/<id>/000.png, 001.png, ...``: one folder of
    masks per image, one file per annotated region; ``mask_path`` is that folder and ``load_sample_mask`` reads
    the union. ``defect`` is ``logical_anomalies`` or ``structural_anomalies``, so results can be split by kind.
    """
    return mvtec_samples(root, categories, split)


def btad_samples(root: PathLike, categories: Iterable[str] | None = None, split: str = "test") -> SampleSets:
    """BTAD (beanTech): numbered categories ``01``, ``02``, ``03``, each ``train/ok``, ``test/{ok,ko}`` and
    ``ground_truth/ko``; images are .bmp (01, 03) or .png (02), masks .png (01, 02) or .bmp (03), named like the
    image. ``ok`` is the normal folder, every other test folder anomalous (defect ``ko``)."""
    return mvtec_samples(root, categories, split, good_names=_BTAD_GOOD)


def _looks_like_mvtec(folder: Path) -> bool:
    return (folder / "test").is_dir() or (folder / "train").is_dir()


_MASK_NAMES = ("{stem}_mask.png", "{stem}.png", "{stem}.bmp", "{stem}_mask.bmp", "{stem}.tiff", "{stem}.tif")


def _mvtec_defect_samples(category_dir: Path, defect_dir: Path, category: str, good: set[str]) -> list[Sample]:
    defect = defect_dir.name
    is_good = defect.lower() in good
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
                candidates = [gt / name.format(stem=image.stem) for name in _MASK_NAMES]
                folder = gt / image.stem  # MVTec LOCO: one folder of region masks per image
                if folder.is_dir() and _image_files(folder):
                    candidates.insert(0, folder)
            mask = next((c for c in candidates if c.is_file() or c.is_dir()), None)
        samples.append(
            Sample(path=image, label=0 if is_good else 1, mask_path=mask, category=category,
                   defect=None if is_good else defect)
        )
    return samples


def load_sample_mask(mask_path: PathLike | None, size: tuple[int, int]):
    """The ground-truth mask of a sample as bool (height, width) for an image of ``size`` = (width, height).

    A folder (MVTec LOCO) is the union of the masks it holds; a file or None is ``load_mask``'s.
    """
    import numpy as np

    from zsad.data.images import load_mask

    if mask_path is not None and Path(mask_path).is_dir():
        files = _image_files(Path(mask_path))
        if not files:
            raise DatasetError(f"{mask_path}: mask folder holds no mask image")
        mask = np.zeros((size[1], size[0]), dtype=bool)
        for file in files:
            mask |= load_mask(file, size)
        return mask
    return load_mask(mask_path, size)


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


# --------------------------------------------------------------------------------------------------- Real-IAD

_REALIAD_JSON_DIRS = ("realiad_jsons/realiad_jsons", "realiad_jsons", "realiad_jsons_sv")
_REALIAD_IMAGE_DIRS = ("realiad_1024", "realiad_512", "realiad_256", "realiad_raw", ".")


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
    root = _existing_root(root, "Real-IAD dataset")
    _check_split(split)
    jsons = Path(json_dir) if json_dir is not None else next(
        (root / d for d in _REALIAD_JSON_DIRS if (root / d).is_dir() and any((root / d).glob("*.json"))), None)
    if jsons is None or not jsons.is_dir():
        raise DatasetError(
            f"{root}: no Real-IAD JSON split folder ({', '.join(_REALIAD_JSON_DIRS)}); pass json_dir= "
            "(the folder of <category>.json files from realiad_jsons.zip)"
        )
    images = Path(image_root) if image_root is not None else next(
        root / d for d in _REALIAD_IMAGE_DIRS if (root / d).is_dir())
    available = sorted(p.stem for p in jsons.glob("*.json") if not p.name.startswith("."))
    if not available:
        raise DatasetError(f"{jsons}: no <category>.json split files")
    result: SampleSets = {}
    for category in _select(available, categories, jsons):
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
            if not isinstance(entry, dict) or not _text(entry.get("image_path")):
                raise DatasetError(f"{where} has no image_path")
            anomaly = _text(entry.get("anomaly_class")) or normal
            label = 0 if anomaly == normal else 1
            mask = _text(entry.get("mask_path"))
            samples.append(Sample(
                path=_realiad_path(images, category, prefix, _text(entry["image_path"])),
                label=label,
                mask_path=_realiad_path(images, category, prefix, mask) if mask and label else None,
                category=category,
                defect=anomaly if label else None,
            ))
        if not samples:
            raise DatasetError(f"{path}: the {split} list is empty; pick another split")
        result[category] = sorted(samples, key=lambda s: s.path)
    return result


def _realiad_path(images: Path, category: str, prefix: str, relative: str) -> Path:
    relative = f"{prefix.rstrip('/')}/{relative}" if prefix else relative
    first = Path(relative).parts[0] if Path(relative).parts else ""
    return images / relative if first == category else images / category / relative


# --------------------------------------------------------------------------------------------------- datasets library

_HF_IMAGE_COLUMNS = ("image", "img", "image_path", "path")
_HF_MASK_COLUMNS = ("mask", "gt", "ground_truth", "mask_path")
_HF_CATEGORY_COLUMNS = ("category", "object", "class_name", "cls_name")


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
    _check_split(split)
    data = _hf_open(hf, Path(source) if Path(source).exists() else source, split)
    columns = set(data.column_names)
    image_col = next((c for c in _HF_IMAGE_COLUMNS if c in columns), None)
    if image_col is None:
        raise DatasetError(f"{source}: no image column ({', '.join(_HF_IMAGE_COLUMNS)}); columns: {sorted(columns)}")
    if "split" in columns:
        data = data.filter(lambda row: row == split, input_columns="split")
    mask_col = next((c for c in _HF_MASK_COLUMNS if c in columns), None)
    category_col = next((c for c in _HF_CATEGORY_COLUMNS if c in columns), None)
    features = data.features
    for col in (image_col, mask_col):
        if col is not None and isinstance(features[col], hf.Image):
            data = data.cast_column(col, hf.Image(decode=False))
    label_names = features["label"].names if "label" in columns and isinstance(features["label"], hf.ClassLabel) else None
    cache = Path(cache_dir) if cache_dir is not None else (
        Path.home() / ".cache" / "zsad" / "datasets" / data._fingerprint)
    where = str(source)
    result: SampleSets = {}
    for index, row in enumerate(data):
        category = _text(row.get(category_col)) if category_col else ""
        category = category or "images"
        raw_label = row.get("label")
        if label_names is not None and isinstance(raw_label, int) and raw_label >= 0:
            raw_label = label_names[raw_label]
        label = _parse_label(raw_label, f"{where}: row {index}")
        stem = f"{split}_{index:06d}"
        image = _hf_file(row[image_col], cache / category / stem, f"{where}: row {index} {image_col}")
        if image is None:
            raise DatasetError(f"{where}: row {index} has no image")
        mask = _hf_file(row[mask_col], cache / category / f"{stem}_mask", f"{where}: row {index} {mask_col}") \
            if mask_col and label == 1 else None
        defect = _text(row.get("defect")) or ("anomaly" if label == 1 else None)
        result.setdefault(category, []).append(
            Sample(path=image, label=label, mask_path=mask, category=category, defect=defect if label else None))
    if not result:
        raise DatasetError(f"{where}: no rows in split {split!r}")
    return _filter({c: sorted(v, key=lambda s: s.path) for c, v in sorted(result.items())}, categories, where)


def _hf_open(hf, source, split: str):
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
        if split in data:
            return data[split]
        if len(data) == 1:
            return next(iter(data.values()))
        raise DatasetError(f"{source}: no {split!r} split; splits: {', '.join(data)}")
    return data


def _hf_file(value, target: Path, where: str) -> Path | None:
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


def _mvtec_loader(root: PathLike, categories: Iterable[str] | None, split: str, **options) -> SampleSets:
    return mvtec_samples(root, categories, split, **options)


def _visa_loader(root: PathLike, categories: Iterable[str] | None, split: str, **options) -> SampleSets:
    return visa_samples(root, categories, split, **options)


def _loco_loader(root: PathLike, categories: Iterable[str] | None, split: str, **options) -> SampleSets:
    return loco_samples(root, categories, split)


def _btad_loader(root: PathLike, categories: Iterable[str] | None, split: str, **options) -> SampleSets:
    return btad_samples(root, categories, split)


def _realiad_loader(root: PathLike, categories: Iterable[str] | None, split: str, **options) -> SampleSets:
    return realiad_samples(root, categories, split, **options)


def _hf_loader(root: PathLike, categories: Iterable[str] | None, split: str, **options) -> SampleSets:
    return hf_samples(root, categories, split, **options)


def _folder_loader(root: PathLike | Sequence[PathLike], categories: Iterable[str] | None, split: str,
                   **options) -> SampleSets:
    return _filter(folder_samples(root), categories, "folder input")


def _manifest_loader(root: PathLike, categories: Iterable[str] | None, split: str, **options) -> SampleSets:
    return _filter(manifest_samples(root), categories, root)


DatasetLoader = Callable[..., SampleSets]

DATASET_KINDS: dict[str, DatasetLoader] = {
    "mvtec": _mvtec_loader,
    "mpdd": _mvtec_loader,  # MPDD ships in the MVTec AD layout
    "mvtec_loco": _loco_loader,
    "btad": _btad_loader,
    "visa": _visa_loader,
    "realiad": _realiad_loader,
    "hf": _hf_loader,
    "folder": _folder_loader,
    "manifest": _manifest_loader,
}
"""Dataset kinds by name. Folders and manifests have no splits, so ``split`` is ignored for them. Any folder in the
MVTec AD layout (``../shared/data/*``, MPDD, RGB copies of MVTec 3D-AD) is ``mvtec``."""


def load_samples(
    kind: str,
    root: PathLike | Sequence[PathLike],
    categories: Iterable[str] | None = None,
    split: str = "test",
    **options,
) -> SampleSets:
    """Read a dataset of the given kind (one of ``DATASET_KINDS``); ``options`` go to that layout's reader
    (``split_csv`` for VisA, ``json_dir``/``image_root`` for Real-IAD, ``cache_dir`` for ``hf``)."""
    try:
        loader = DATASET_KINDS[kind]
    except KeyError:
        raise DatasetError(f"unknown dataset kind {kind!r}; use one of {', '.join(DATASET_KINDS)}") from None
    return loader(root, categories, split, **options)


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
    "btad_samples",
    "folder_samples",
    "hf_samples",
    "load_sample_mask",
    "load_samples",
    "loco_samples",
    "manifest_samples",
    "mvtec_samples",
    "realiad_samples",
    "visa_samples",
]
