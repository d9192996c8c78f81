"""Dataset layouts: how a folder, split file, manifest or ``datasets`` data set becomes per-category lists of
``Sample`` (``zsad.data.layouts.base``), one module per family of layouts, each declared once in ``LAYOUTS``.

A layout is a function ``(root, categories, split, **options) -> SampleSets``. Its declaration below names it by
``"module:function"`` (imported only when the layout is read, so listing layouts for ``--help`` or choices costs
nothing) and carries what the command line needs without importing it: a one-line help, the aliases, and each
option the function takes beyond the three positional ones as a ``LayoutOption`` (``zsad eval`` offers
``split_csv`` as ``--split-csv``). Adding a layout is one module and one ``LAYOUTS.declare``; a plugin or test
registers its function instead::

    @LAYOUTS.register("toy", help="toy layout", options=(LayoutOption("pattern", "file pattern"),))
    def read_toy(root, categories=None, split="test", pattern="*.png") -> SampleSets: ...

Training: every layout can feed ``zsad train``, since every built-in one carries labels (``folder`` from its
good/defect sub-folder names, ``manifest`` from its label column); the training data keep only the labelled
samples and refuse a data set with none (``zsad.learning.data.layout_items``). Training reads the layout's
``training_split`` (declared here; "test" where none is declared, since the MVTec-style benchmarks keep their
defects and masks in the test split, which is what the official AnomalyCLIP training reads).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zsad.errors import DatasetError
from zsad.registry import Registry

if TYPE_CHECKING:
    from zsad.data.layouts.base import SampleSets


@dataclass(frozen=True)
class LayoutOption:
    """A keyword argument of a layout's function, declared so that the CLI can offer it before importing the
    layout: ``name`` is the keyword (and, with dashes, the ``zsad eval`` flag); ``help`` the flag's help."""

    name: str
    help: str


LAYOUTS = Registry("dataset layout")

LAYOUTS.declare(
    "mvtec", "zsad.data.layouts.mvtec:mvtec_samples", "mpdd", order=1,
    help="MVTec AD and any folder in its layout <category>/{train,test,ground_truth} (MPDD, MVTec 3D-AD RGB)",
)
LAYOUTS.declare(
    "mvtec_loco", "zsad.data.layouts.mvtec:loco_samples", order=2,
    help="MVTec LOCO AD (mask folders, validation split)",
)
LAYOUTS.declare("btad", "zsad.data.layouts.mvtec:btad_samples", order=3, help="BTAD (ok/ko folders)")
LAYOUTS.declare(
    "visa", "zsad.data.layouts.visa:visa_samples", order=4, help="VisA through its split file",
    options=(LayoutOption("split_csv", "split file (default ROOT/split_csv/1cls.csv)"),),
)
LAYOUTS.declare(
    "realiad", "zsad.data.layouts.realiad:realiad_samples", order=5, help="Real-IAD through its JSON split files",
    options=(
        LayoutOption("json_dir", "folder of <category>.json split files"),
        LayoutOption("image_root", "image folder (default ROOT/realiad_1024 ...)"),
    ),
)
LAYOUTS.declare(
    "hf", "zsad.data.layouts.hf:hf_samples", order=6, training_split="train",
    help="datasets library (save_to_disk folder, parquet, cached hub id)",
    options=(LayoutOption("cache_dir", "where embedded images are written once"),),
)
LAYOUTS.declare(
    "folder", "zsad.data.layouts.folders:read_folder", order=7,
    help="folder of test images, labelled from a normal sub-folder (good/normal/ok) beside defect sub-folders; "
         "no train split, so references come from --references",
    options=(LayoutOption("normal_dirs", "sub-folder name(s) of normal images, comma-separated "
                                         "(default good,normal,ok), e.g. no,healthy"),),
)
LAYOUTS.declare(
    "manifest", "zsad.data.layouts.folders:read_manifest", order=8,
    help="CSV or JSON list of images (path, label, mask, category, defect, split: train/test/val)",
)


def layout_names(with_aliases: bool = False) -> list[str]:
    """Layout names in listing order; ``with_aliases`` puts each layout's aliases right after it (CLI choices)."""
    if not with_aliases:
        return LAYOUTS.names()
    return [name for entry in LAYOUTS.entries() for name in (entry.name, *entry.aliases)]


def layout_options(kind: str) -> tuple[LayoutOption, ...]:
    """The options a layout declares (none for most)."""
    return tuple(LAYOUTS.entry(kind).info.get("options", ()))


def load_samples(
    kind: str,
    root: str | Path | Sequence[str | Path],
    categories: Iterable[str] | None = None,
    split: str = "test",
    **options,
) -> SampleSets:
    """Read a data set in the layout ``kind`` (a name or alias in ``LAYOUTS``); ``options`` are the layout's
    declared ones (``split_csv`` for VisA, ``json_dir``/``image_root`` for Real-IAD, ``cache_dir`` for ``hf``).

    ``split`` is "test", "train" or "val" (also spelt "validation"). A layout that has no such split (a folder, a
    manifest without a ``split`` column: test images only) refuses it rather than give its test images, so that
    references and calibration images are never test images. An option the layout does not declare is an error
    rather than ignored, so that a misspelt or misplaced option does not silently read other data.
    """
    if kind not in LAYOUTS:
        raise DatasetError(f"unknown dataset kind {kind!r}; use one of {', '.join(layout_names(with_aliases=True))}")
    declared = [option.name for option in layout_options(kind)]
    unknown = [name for name in options if name not in declared]
    if unknown:
        fix = f"use only its options: {', '.join(declared)}" if declared else "it takes none, so drop it"
        raise DatasetError(f"dataset layout {kind!r} has no option {', '.join(map(repr, unknown))}; {fix}")
    return LAYOUTS.get(kind)(root, categories, split, **options)


__all__ = ["LAYOUTS", "LayoutOption", "layout_names", "layout_options", "load_samples"]
