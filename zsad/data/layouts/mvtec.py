"""The MVTec AD folder layout and the datasets that ship in it: MVTec AD, MPDD, MVTec LOCO AD, BTAD, and RGB
copies or originals of MVTec 3D-AD.

``<root>/<category>/{train/good, test/<defect|good>, ground_truth/<defect>}``. The variants differ only in how
masks are named and in the name of the normal folder, so one reader serves them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from zsad.data.layouts.base import (
    PathLike,
    Sample,
    SampleSets,
    check_split,
    existing_root,
    image_files,
    select,
    sorted_by_path,
    split_spellings,
)
from zsad.errors import DatasetError

_MVTEC_GOOD = ("good",)
_BTAD_GOOD = ("ok", "good")
_MASK_NAMES = ("{stem}_mask.png", "{stem}.png", "{stem}.bmp", "{stem}_mask.bmp", "{stem}.tiff", "{stem}.tif")


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
    special. ``split="train"`` gives the good training images, ``split="val"`` the good images of ``validation/``
    (or ``val/``: MVTec LOCO's validation split, normal images for calibration); ``good_names`` are the folder
    names of normal images (``good``; BTAD uses ``ok``), compared case-insensitively.
    """
    root = existing_root(root, "MVTec-style dataset")
    check_split(split)
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
    for category in select(available, categories, root):
        folder = root / category
        split_dir = next((folder / name for name in split_spellings(split) if (folder / name).is_dir()),
                         folder / split)
        if not split_dir.is_dir():
            raise DatasetError(f"{split_dir}: category {category!r} has no {split} split; pick another split")
        samples = []
        for defect_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if split != "test" and defect_dir.name.lower() not in good:
                continue
            samples.extend(_defect_samples(folder, defect_dir, category, good))
        if not samples:
            raise DatasetError(f"{split_dir}: no images in its sub-folders; expected {split}/good/*.png")
        result[category] = sorted_by_path(samples)
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


def _defect_samples(category_dir: Path, defect_dir: Path, category: str, good: set[str]) -> list[Sample]:
    defect = defect_dir.name
    is_good = defect.lower() in good
    rgb_dir = defect_dir / "rgb"
    three_d = rgb_dir.is_dir()  # MVTec 3D-AD: <defect>/rgb/*.png with masks in <defect>/gt/*.png
    images = image_files(rgb_dir if three_d else defect_dir)
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
                if folder.is_dir() and image_files(folder):
                    candidates.insert(0, folder)
            mask = next((c for c in candidates if c.is_file() or c.is_dir()), None)
        samples.append(
            Sample(path=image, label=0 if is_good else 1, mask_path=mask, category=category,
                   defect=None if is_good else defect)
        )
    return samples
