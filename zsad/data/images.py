"""Loading images and ground-truth masks: defined once in the torch-free runtime (``zsad_runtime.images``, which
states the decisions: transparency, 16-bit, float, EXIF, truncated files, decompression bombs), so zsad and
``zsad-runtime`` read every input identically; these names stay importable from here."""
from zsad_runtime.images import (
    DEFAULT_MIN_SIDE,
    IMAGE_SUFFIXES,
    ImageSource,
    LoadedImage,
    list_images,
    load_image,
    load_mask,
    to_rgb,
)

__all__ = ["DEFAULT_MIN_SIDE", "IMAGE_SUFFIXES", "ImageSource", "LoadedImage", "list_images", "load_image",
           "load_mask", "to_rgb"]
