"""What every dataset layout shares: the ``Sample`` record and the helpers that check roots, splits and categories,
read split files, and read masks.

Layouts only collect paths; pixels are read later by ``load_image``/``load_sample_mask``. Files listed by a split
file or manifest are therefore not checked for existence: a missing or broken image is reported by the loader
for that image alone, so one bad file does not lose the results of the rest of the dataset (docs/design.md).

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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from zsad.data.images import IMAGE_SUFFIXES
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

# "val": normal images held out for calibration (MVTec LOCO's validation/good, a manifest's ``val`` rows); every
# layout also accepts the spelling "validation" for it.
_SPLITS = ("train", "test", "val")
_SPLIT_SPELLINGS = {"val": ("val", "validation"), "validation": ("val", "validation")}

_LABEL_WORDS = {
    "0": 0, "normal": 0, "good": 0, "ok": 0,
    "1": 1, "anomaly": 1, "anomalous": 1, "defect": 1, "defective": 1, "bad": 1,
}


# --------------------------------------------------------------------------------------------------- masks


def load_sample_mask(mask_path: PathLike | None, size: tuple[int, int]):
    """The ground-truth mask of a sample as bool (height, width) for an image of ``size`` = (width, height).

    A folder (MVTec LOCO) is the union of the masks it holds; a file or None is ``load_mask``'s.
    """
    import numpy as np

    from zsad.data.images import load_mask

    if mask_path is not None and Path(mask_path).is_dir():
        files = image_files(Path(mask_path))
        if not files:
            raise DatasetError(f"{mask_path}: mask folder holds no mask image")
        mask = np.zeros((size[1], size[0]), dtype=bool)
        for file in files:
            mask |= load_mask(file, size)
        return mask
    return load_mask(mask_path, size)


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted; hidden files and other suffixes are not images."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


# --------------------------------------------------------------------------------------------------- checks


def existing_root(root: PathLike, what: str) -> Path:
    path = Path(root)
    if not path.exists():
        raise DatasetError(f"{path}: {what} root not found; check the path")
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} root is a file, not a folder; pass the dataset folder")
    return path


def check_split(split: str) -> None:
    if split not in _SPLITS and split not in _SPLIT_SPELLINGS:
        raise DatasetError(f"unknown split {split!r}; use 'train', 'test' or 'val'")


def split_spellings(split: str) -> tuple[str, ...]:
    """The names a split goes by in files and folders: ``val`` and ``validation`` are one split."""
    return _SPLIT_SPELLINGS.get(split, (split,))


def no_split(where: object, layout: str, split: str) -> DatasetError:
    """The error of a layout that holds only test images when another split is asked for (``--shots`` draws its
    references from ``train``; calibration reads ``val``). Taking them from the test images instead would score
    images the detector was shown as normal, so the message names the ways to give them that are not test images."""
    if split == "train":
        fix = ("pass good images that are not in the test set with --references DIR, or list the images in a "
               "manifest with a 'split' column (train rows are the references, test rows are scored), or arrange "
               "them as <root>/<category>/{train/good,test/<good|defect>} and use --dataset mvtec")
    else:
        fix = f"list the images in a manifest with a 'split' column whose {split} rows are these images"
    return DatasetError(f"{where}: a {layout} has no {split} split, only test images, and {split} images must not "
                        f"be test images; {fix}")


def select(available: list[str], wanted: Iterable[str] | None, where: PathLike) -> list[str]:
    """The wanted categories in the order asked (all available ones when None); unknown ones are an error."""
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


def filter_categories(samples: SampleSets, categories: Iterable[str] | None, where: object) -> SampleSets:
    """``select`` for layouts that learn their categories only by reading every row (hf, folders, manifests)."""
    selected = select(sorted(samples), categories, str(where))
    return {category: samples[category] for category in selected}


# --------------------------------------------------------------------------------------------------- rows


def text(value: object) -> str:
    """A cell as stripped text; empty for None and for nested values, which no layout accepts as a path."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return ""
    return str(value).strip()


def parse_label(value: object, where: str) -> int | None:
    """0/1 or a label word (normal/good/ok, anomaly/anomalous/defect/defective/bad; any case); empty is unknown."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        if value in (0, 1):
            return int(value)
        raise DatasetError(f"{where} has label {value!r}; use 0 (normal) or 1 (anomalous)")
    word = text(value).lower()
    if not word:
        return None
    if word in _LABEL_WORDS:
        return _LABEL_WORDS[word]
    raise DatasetError(f"{where} has label {value!r}; use 0/1, normal/good or anomaly/anomalous/defect")


def read_csv(path: Path) -> list[dict]:
    """Rows of a CSV with a header row, keys stripped; a BOM (Excel's UTF-8) is tolerated."""
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


def read_json_rows(path: Path) -> list:
    """A JSON file that must hold a list (of row objects; the caller checks each row)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc}); write a list of objects with a 'path' key") from None
    if not isinstance(data, list):
        raise DatasetError(f"{path}: JSON manifest must be a list of objects, got {type(data).__name__}")
    return data


def sorted_by_path(samples: list[Sample]) -> list[Sample]:
    """Samples in the order every layout returns them: by path."""
    return sorted(samples, key=lambda s: s.path)
