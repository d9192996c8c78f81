"""Moved to ``zsad.postprocess`` (post-processing is not scoring); this name stays for code written against 0.1."""
from zsad.postprocess.maps import (  # noqa: F401
    MapPostprocess, gaussian_blur, smooth, smooth_original, to_original_sizes,
)
