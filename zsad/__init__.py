"""zsad: zero-shot visual anomaly detection.

Importing zsad is cheap and offline: heavy libraries (open_clip, transformers) load only when a backbone is built.
"""
__version__ = "0.1.0"
