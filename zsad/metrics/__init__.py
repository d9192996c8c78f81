"""Anomaly-detection metrics: image AUROC/AP/F1-max, pixel AUROC/AP/F1-max, AUPRO, and per-category tables;
clustering metrics (NMI, ARI, cluster F1) for discovered defect types (``zsad.metrics.clustering``).

All detection metrics are fractions in [0, 1], computed exactly over every distinct score (no threshold sampling)
and equal to scikit-learn's definitions for AUROC and AP. See ``zsad.metrics.pixel`` for the AUPRO definition and
``zsad.metrics._inputs`` for the policy on degenerate inputs (one class -> NaN with a warning; shape mismatch,
NaN scores, non-binary masks, empty input -> ``MetricInputError``, a ``ValueError``).
"""
from zsad.metrics._inputs import MetricInputError, UndefinedMetricWarning
from zsad.metrics.clustering import CLUSTERING_KEYS, cluster_f1, clustering_metrics, matched_labels
from zsad.metrics.image import IMAGE_KEYS, f1_max, image_metrics
from zsad.metrics.pixel import PIXEL_KEYS, aupro, pixel_metrics
from zsad.metrics.table import MetricTable

__all__ = [
    "CLUSTERING_KEYS",
    "IMAGE_KEYS",
    "PIXEL_KEYS",
    "MetricInputError",
    "MetricTable",
    "UndefinedMetricWarning",
    "aupro",
    "cluster_f1",
    "clustering_metrics",
    "f1_max",
    "image_metrics",
    "matched_labels",
    "pixel_metrics",
]
