"""Anomaly-detection metrics: image AUROC/AP/F1-max, pixel AUROC/AP/F1-max, AUPRO, and per-category tables;
clustering metrics (NMI, ARI, cluster F1) for discovered defect types (``zsad.metrics.clustering``).

All detection metrics are fractions in [0, 1], computed exactly over every distinct score (no threshold sampling)
and equal to scikit-learn's definitions for AUROC and AP. See ``zsad.metrics.pixel`` for the AUPRO definition and
``zsad.metrics._inputs`` for the policy on degenerate inputs (one class -> NaN with a warning; shape mismatch,
NaN scores, non-binary masks, empty input -> ``MetricInputError``, a ``ValueError``). MVTec LOCO AD's sPRO
protocol is ``zsad.metrics.spro``.
"""
from zsad.metrics._inputs import MetricInputError, UndefinedMetricWarning
from zsad.metrics.clustering import CLUSTERING_KEYS, cluster_f1, clustering_metrics, matched_labels
from zsad.metrics.image import IMAGE_KEYS, f1_max, image_metrics
from zsad.metrics.pixel import PIXEL_KEYS, aupro, pixel_metrics
from zsad.metrics.spro import (
    LOCO_KINDS,
    OFFICIAL_LIMITS,
    DefectRegion,
    DefectType,
    au_spro,
    defect_types,
    loco_metrics,
    spro_key,
)
from zsad.metrics.table import MetricTable

__all__ = [
    "CLUSTERING_KEYS",
    "DefectRegion",
    "DefectType",
    "IMAGE_KEYS",
    "LOCO_KINDS",
    "MetricInputError",
    "MetricTable",
    "OFFICIAL_LIMITS",
    "PIXEL_KEYS",
    "UndefinedMetricWarning",
    "au_spro",
    "aupro",
    "cluster_f1",
    "clustering_metrics",
    "defect_types",
    "f1_max",
    "image_metrics",
    "loco_metrics",
    "matched_labels",
    "pixel_metrics",
    "spro_key",
]
