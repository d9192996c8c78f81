"""zsad: zero-shot visual anomaly detection.

``zsad.Detector``, ``zsad.DetectorConfig`` and ``zsad.AnomalyResult`` are loaded on first use, so ``import zsad``
stays cheap and offline: torch, open_clip and transformers load only when a detector is built.
"""
__version__ = "0.1.0"

_LAZY = {
    "Detector": "zsad.detector",
    "DetectorConfig": "zsad.detector",
    "AnomalyResult": "zsad.results",
    "ZsadError": "zsad.errors",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zsad' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
