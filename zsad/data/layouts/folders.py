"""Inputs that are not a benchmark: plain folders of images and manifests (CSV/JSON lists of images).

Splits. A folder has none: it is the test set, and asking it for another split (``--shots`` draws its references
from ``train``) is an error naming the ways to give references that are not test images (``no_split``), never a
silent draw from the test images. A manifest has splits when it has a ``split`` column (``train``, ``test``,
``val``; ``validation`` is ``val``): each split is its rows, so train rows (references) and val rows (normal
calibration images) are never scored as test images, and an image listed in two splits is refused. A manifest
without that column is test images only, like a folder.

Both learn their categories only by reading every entry, so categories are selected after reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from zsad.data.images import list_images
from zsad.data.layouts.base import (
    PathLike,
    Sample,
    SampleSets,
    check_split,
    filter_categories,
    no_split,
    parse_label,
    read_csv,
    read_json_rows,
    sorted_by_path,
    split_spellings,
    text,
)
from zsad.errors import DatasetError

NORMAL_FOLDER_NAMES = ("good", "normal", "ok")
SPLIT_FOLDER_NAMES = ("test", "train")  # a folder so named is a split of the object named by its parent
_MANIFEST_SPLITS = {"train": "train", "test": "test", "val": "val", "validation": "val"}


# --------------------------------------------------------------------------------------------------- folders


def normal_names(normal_dirs: str | Iterable[str] | None = None) -> frozenset[str]:
    """The sub-folder names of normal images, lower case: ``--normal-dirs no,healthy`` (a comma-separated string
    or a sequence), default good, normal, ok."""
    if normal_dirs is None:
        return frozenset(NORMAL_FOLDER_NAMES)
    names = normal_dirs.split(",") if isinstance(normal_dirs, str) else list(normal_dirs)
    out = frozenset(str(name).strip().lower() for name in names if str(name).strip())
    if not out:
        raise DatasetError("--normal-dirs names no folder; give the sub-folder(s) of normal images, e.g. "
                           "--normal-dirs good or --normal-dirs no,healthy")
    return out


def folder_category(folder: Path) -> str:
    """A folder's category (and so the prompt's object name): its name, or its parent's when it is named like a
    split (``.../bottle/test`` is "bottle", not "test")."""
    resolved = folder.resolve()
    if resolved.name.lower() in SPLIT_FOLDER_NAMES and resolved.parent.name:
        return resolved.parent.name
    return resolved.name


def folder_samples(paths: PathLike | Sequence[PathLike],
                   normal_dirs: str | Iterable[str] | None = None) -> SampleSets:
    """Images of folders: each folder given is one category named after it (``folder_category``); loose files go
    to ``"images"``.

    A folder organised like an MVTec test split, with a sub-folder of normal images (``good``, ``normal`` or
    ``ok``, or the names ``normal_dirs`` gives) beside one sub-folder per defect type, is labelled from those names
    (so ``zsad eval --dataset folder`` works on it); images lying directly in such a folder, beside the class
    sub-folders, stay unlabelled, as does any other folder. Folders are expanded recursively by ``list_images``;
    files are kept as given (even with an unknown suffix) so that the loader reports them.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise DatasetError("no input paths given; pass image files or folders")
    normal = normal_names(normal_dirs)
    result: SampleSets = {}
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        category = folder_category(path) if path.is_dir() else "images"
        labelled = path.is_dir() and any(child.is_dir() and child.name.lower() in normal for child in path.iterdir())
        for image in list_images([path]):
            if image in seen:
                continue
            seen.add(image)
            label, defect = _folder_label(image, path, labelled, normal)
            result.setdefault(category, []).append(
                Sample(path=image, label=label, mask_path=None, category=category, defect=defect)
            )
    return dict(sorted(result.items()))


def read_folder(root: PathLike | Sequence[PathLike], categories: Iterable[str] | None = None,
                split: str = "test", normal_dirs: str | Iterable[str] | None = None) -> SampleSets:
    """The ``folder`` layout: ``folder_samples`` of one or more paths, then the categories asked for.

    Its only split is ``test``; its readers (evaluation, training) need labels, so a folder whose images cannot
    be labelled is an error naming its sub-folders and ``--normal-dirs`` (read before any model is loaded)."""
    check_split(split)
    where = root if isinstance(root, (str, Path)) else ", ".join(map(str, root))
    if split != "test":
        raise no_split(where, "folder", split)
    samples = folder_samples(root, normal_dirs)
    for raw in [root] if isinstance(root, (str, Path)) else root:
        _check_labelled(Path(raw), samples, normal_names(normal_dirs))
    return filter_categories(samples, categories, "folder input")


def _folder_label(image: Path, folder: Path, labelled: bool, normal: frozenset[str]) -> tuple[int | None, str | None]:
    """(label, defect) from the first sub-folder under ``folder``: a normal name -> 0, any other -> 1; an image
    directly in ``folder`` has no class folder, so no label."""
    parts = image.relative_to(folder).parts
    if not labelled or len(parts) < 2:
        return None, None
    return (0, None) if parts[0].lower() in normal else (1, parts[0])


def _check_labelled(folder: Path, samples: SampleSets, normal: frozenset[str]) -> None:
    if not folder.is_dir():
        return
    unlabelled = [s.path for group in samples.values() for s in group
                  if s.label is None and folder in s.path.parents]
    if not unlabelled:
        return
    subfolders = sorted(child.name for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    names = ", ".join(sorted(normal))
    if not subfolders:
        fix = (f"it has no sub-folders; put normal images in a sub-folder named {' or '.join(NORMAL_FOLDER_NAMES)} "
               "and each defect type in its own sub-folder")
    elif not any(name.lower() in normal for name in subfolders):
        example = next((n for n in subfolders if n.lower() in ("no", "negative", "healthy", "pass")), subfolders[0])
        fix = (f"none of its sub-folders ({', '.join(subfolders)}) is a folder of normal images ({names}); name "
               f"it with --normal-dirs, e.g. --normal-dirs {example}")
    else:
        fix = f"they lie beside the class sub-folders ({', '.join(subfolders)}); move each into its class folder"
    raise DatasetError(f"{folder}: {len(unlabelled)} image(s) have no label (e.g. {unlabelled[0]}); {fix}")


# --------------------------------------------------------------------------------------------------- manifests


def manifest_samples(path: PathLike, split: str | None = None) -> SampleSets:
    """Read a CSV (header row) or JSON (list of objects) manifest with ``path`` and optional ``label``, ``mask``,
    ``category``, ``defect`` and ``split``; relative paths are resolved against the manifest's folder.

    Labels accept 0/1 and the words normal/good/ok and anomaly/anomalous/defect/defective/bad (any case); an
    empty or absent label means unknown. Rows without a category go to ``"images"``.

    ``split`` None gives every row (a calibration list); "train", "test" or "val" gives that split's rows when the
    manifest has a ``split`` column (every row must then name train, test or val, and no image may be in two
    splits). Without the column every row is a test image: "test" gives them all, another split is an error.
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
    read = [(number, _manifest_row(row, number, manifest, base), row.get("split"))
            for number, row in enumerate(rows, start=first_row)]
    splits = _row_splits(read, manifest)
    if split is not None:
        check_split(split)
        if splits is None and split != "test":
            raise no_split(manifest, "manifest without a 'split' column", split)
        wanted = _MANIFEST_SPLITS[split_spellings(split)[0]]
        read = [item for item, row_split in zip(read, splits or ["test"] * len(read)) if row_split == wanted]
    result: SampleSets = {}
    for _, sample, _ in read:
        result.setdefault(sample.category, []).append(sample)
    return {category: sorted_by_path(samples) for category, samples in sorted(result.items())}


def read_manifest(root: PathLike, categories: Iterable[str] | None = None, split: str = "test") -> SampleSets:
    """The ``manifest`` layout: the rows of ``split`` of the manifest file ``root`` (``manifest_samples``), then
    the categories asked for; a category of the manifest without rows in this split is named as such."""
    samples = manifest_samples(root, split)
    if categories is not None:
        wanted = [categories] if isinstance(categories, str) else list(categories)
        elsewhere = sorted(set(wanted) - set(samples) & set(manifest_samples(root)))
        if elsewhere:
            raise DatasetError(f"{root}: category {', '.join(map(repr, elsewhere))} has no {split} rows; give it "
                               f"rows whose split is {split}, or leave it out")
    return filter_categories(samples, categories, root)


def _row_splits(read: list[tuple[int, Sample, object]], manifest: Path) -> list[str] | None:
    """Each row's split (``train``/``test``/``val``), or None when no row has one (no ``split`` column). An
    image in two splits would be a reference, or a calibration image, and a test image at once: refused."""
    given = [text(raw).lower() for _, _, raw in read]
    if not any(given):
        return None
    out = []
    first: dict[Path, tuple[int, str]] = {}
    for (number, sample, _), value in zip(read, given):
        if value not in _MANIFEST_SPLITS:
            what = f"split {value!r}" if value else "no split"
            raise DatasetError(f"{manifest}: row {number} has {what}; with a 'split' column every row needs train, "
                               "test or val")
        split = _MANIFEST_SPLITS[value]
        other = first.setdefault(sample.path, (number, split))
        if other[1] != split:
            raise DatasetError(f"{manifest}: rows {other[0]} and {number} list {sample.path} in the {other[1]} and "
                               f"{split} splits; an image belongs to one split (a train or val image shown to the "
                               "detector as normal must not be scored as a test image)")
        out.append(split)
    return out


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
