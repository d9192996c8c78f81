"""Reading inputs: images and masks (``images``), dataset layouts (``layouts``), synthetic datasets (``synth``).

Resizing and normalising for a backbone lives in ``zsad.data.preprocess``. The synthetic generator
(``zsad.data.synth``, which needs scipy) is imported only where it is used, and the layout readers below are
imported on first use, so that importing ``zsad.data`` (or ``zsad.data.layouts``, which imports this package
first) reads no layout module.
"""

from zsad.data.images import (
    DEFAULT_MIN_SIDE,
    IMAGE_SUFFIXES,
    LoadedImage,
    list_images,
    load_image,
    load_mask,
    to_rgb,
)
from zsad.data.layouts import LAYOUTS, LayoutOption, layout_names, load_samples
from zsad.data.layouts.base import Sample, SampleSets

from zsad.registry import lazy_exports

_lazy = lazy_exports(__name__, {
    "layouts.folders": ("folder_samples", "manifest_samples"),
    "layouts.mvtec": ("mvtec_samples",),
    "layouts.visa": ("visa_samples",),
})


def __getattr__(name: str):
    if name == "DATASET_KINDS":  # the earlier name of the layout list: every name --dataset accepts, aliases too
        return tuple(layout_names(with_aliases=True))
    raise AttributeError(f"module 'zsad.data' has no attribute {name!r}")


__all__ = [
    "DATASET_KINDS",
    "DEFAULT_MIN_SIDE",
    "IMAGE_SUFFIXES",
    "LAYOUTS",
    "LayoutOption",
    "LoadedImage",
    "Sample",
    "SampleSets",
    "folder_samples",
    "layout_names",
    "list_images",
    "load_image",
    "load_mask",
    "load_samples",
    "manifest_samples",
    "mvtec_samples",
    "to_rgb",
    "visa_samples",
]
