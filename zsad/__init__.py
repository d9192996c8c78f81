"""zsad: zero-shot visual anomaly detection.

``zsad.Detector``, ``zsad.DetectorConfig`` and ``zsad.AnomalyResult`` are loaded on first use, so ``import zsad``
stays cheap and offline: torch, open_clip and transformers load only when a detector is built.
"""
from zsad.registry import lazy_exports

__version__ = "0.1.0"

__all__ = ["__version__", *lazy_exports(__name__, {
    "detector": ("Detector",),
    "config": ("DetectorConfig",),
    "results": ("AnomalyResult",),
    "errors": ("ZsadError",),
})]
