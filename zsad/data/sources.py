"""What the user passed as images, as one ``Source`` per image: defined once in the torch-free runtime
(``zsad_runtime.sources``), so zsad and ``zsad-runtime`` name and order inputs identically."""
from zsad_runtime.sources import Source, check_inputs, expand_sources

__all__ = ["Source", "check_inputs", "expand_sources"]
