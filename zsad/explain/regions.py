"""Top anomalous regions of a map above the pixel threshold: defined once in the torch-free runtime
(``zsad_runtime.regions``, which states the rule), so zsad and ``zsad-runtime`` find the same regions."""
from zsad_runtime.regions import Region, connected_components, pixel_threshold, position_words, top_regions

__all__ = ["Region", "connected_components", "pixel_threshold", "position_words", "top_regions"]
