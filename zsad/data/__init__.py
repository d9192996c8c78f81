"""Reading inputs: images and masks (``images``), dataset layouts (``datasets``), synthetic datasets (``synth``).

Resizing and normalising for a backbone lives in ``zsad.data.preprocess``. The synthetic generator
(``zsad.data.synth``, which needs scipy) is imported only where it is used.
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

__all__ = [
    "DATASET_KINDS",
    "DEFAULT_MIN_SIDE",
    "IMAGE_SUFFIXES",
    "LoadedImage",
    "Sample",
    "SampleSets",
    "folder_samples",
    "list_images",
    "load_image",
    "load_mask",
    "load_samples",
    "manifest_samples",
    "mvtec_samples",
    "to_rgb",
    "visa_samples",
]
