"""Reading inputs: images and masks (``images``), dataset layouts (``datasets``), synthetic datasets (``synth``).

Resizing and normalising for a backbone lives in ``zsad.data.preprocess``.
"""

from zsad.data.datasets import (
    DATASET_KINDS,
    Sample,
    SampleSets,
    folder_samples,
    load_samples,
    manifest_samples,
    mvtec_samples,
    visa_samples,
)
from zsad.data.images import (
    DEFAULT_MIN_SIDE,
    IMAGE_SUFFIXES,
    LoadedImage,
    list_images,
    load_image,
    load_mask,
    to_rgb,
)
from zsad.data.synth import DEFECT_TYPES, SYNTH_CATEGORIES, SynthCategory, generate_dataset, make_image

__all__ = [
    "DATASET_KINDS",
    "DEFAULT_MIN_SIDE",
    "DEFECT_TYPES",
    "IMAGE_SUFFIXES",
    "SYNTH_CATEGORIES",
    "LoadedImage",
    "Sample",
    "SampleSets",
    "SynthCategory",
    "folder_samples",
    "generate_dataset",
    "list_images",
    "load_image",
    "load_mask",
    "load_samples",
    "make_image",
    "manifest_samples",
    "mvtec_samples",
    "to_rgb",
    "visa_samples",
]
