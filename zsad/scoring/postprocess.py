"""Moved to ``zsad.postprocess`` (post-processing is not scoring); this name stays for code written against 0.1."""
from zsad.postprocess.maps import MapPostprocess, gaussian_blur, smooth  # noqa: F401
