"""Clustering metrics: discovered types against true defect types (NMI, ARI, cluster F1).

These are the three numbers AnomalyNCD (Huang et al., CVPR 2025) reports for novel anomaly class discovery, with the
definitions of its official evaluation (``utils/cluster_and_log_utils.py: split_cluster_acc``, itself from SimGCD):

- NMI: ``sklearn.metrics.normalized_mutual_info_score`` (arithmetic normalisation, scikit-learn's default).
- ARI: ``sklearn.metrics.adjusted_rand_score``.
- cluster F1: predicted clusters are matched one-to-one to true classes by the Hungarian method on the contingency
  table (maximum total agreement, ``scipy.optimize.linear_sum_assignment``); predictions are renamed through the
  match and F1 is scikit-learn's *micro* F1 of the renamed predictions. For single-label data micro F1 equals the
  accuracy after matching ("clustering accuracy"); clusters left unmatched (more clusters than classes) count as
  errors. The official code pads the table to a square of side max(label) + 1; padding adds zero rows/columns,
  which never changes the value of the best matching, so the rectangular table here gives the same number.

Labels may be any hashable values (strings, ints); they are encoded to integers first. Pure functions of labels.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zsad.metrics._inputs import MetricInputError

CLUSTERING_KEYS = ("nmi", "ari", "f1")


def _encode(y_true: Sequence, y_pred: Sequence):
    """Integer codes of both label lists, and the label value behind each code (labels compared as strings)."""
    true, pred = list(y_true), list(y_pred)
    if len(true) != len(pred):
        raise MetricInputError(f"clustering metrics need two label lists of one length, got {len(true)} true "
                               f"and {len(pred)} predicted labels")
    if not true:
        raise MetricInputError("clustering metrics need at least one labelled item; got none")
    coded = []
    for labels in (true, pred):
        names, codes = np.unique(np.asarray([str(v) for v in labels]), return_inverse=True)
        values = {str(v): v for v in labels}
        coded.append((codes.ravel(), [values[n] for n in names]))
    return coded


def _best_match(y_true: Sequence, y_pred: Sequence):
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics.cluster import contingency_matrix

    (true_codes, true_values), (pred_codes, pred_values) = _encode(y_true, y_pred)
    table = contingency_matrix(pred_codes, true_codes)  # rows: predicted clusters, columns: true classes
    rows, cols = linear_sum_assignment(table, maximize=True)
    return table, rows, cols, true_values, pred_values


def matched_labels(y_true: Sequence, y_pred: Sequence) -> dict:
    """The one-to-one match of predicted clusters to true classes with the largest total agreement:
    {predicted label: true label}; clusters without a partner (more clusters than classes) are absent."""
    _, rows, cols, true_values, pred_values = _best_match(y_true, y_pred)
    return {pred_values[r]: true_values[c] for r, c in zip(rows, cols)}


def cluster_f1(y_true: Sequence, y_pred: Sequence) -> float:
    """Micro F1 of the predictions renamed by the best one-to-one match (AnomalyNCD's F1; see the module doc)."""
    table, rows, cols, _, _ = _best_match(y_true, y_pred)
    return float(table[rows, cols].sum()) / float(table.sum())


def clustering_metrics(y_true: Sequence, y_pred: Sequence) -> dict[str, float]:
    """{"nmi", "ari", "f1"} of predicted clusters against true classes, fractions (ARI may be negative)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    (true_codes, _), (pred_codes, _) = _encode(y_true, y_pred)
    return {
        "nmi": float(normalized_mutual_info_score(true_codes, pred_codes)),
        "ari": float(adjusted_rand_score(true_codes, pred_codes)),
        "f1": cluster_f1(true_codes, pred_codes),
    }
