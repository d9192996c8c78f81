"""Clustering metrics against scikit-learn and a transcription of AnomalyNCD's official evaluation."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score

from zsad.metrics import MetricInputError, cluster_f1, clustering_metrics, matched_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "discovery"))
from official_anomalyncd import official_scores


def test_metrics_equal_scikit_learn_and_the_official_evaluation():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n, classes, clusters = int(rng.integers(5, 80)), int(rng.integers(1, 6)), int(rng.integers(1, 8))
        truth = rng.integers(0, classes, n)
        predicted = np.where(rng.random(n) < 0.6, truth, rng.integers(0, clusters, n))
        ours = clustering_metrics(truth, predicted)
        assert ours["nmi"] == pytest.approx(normalized_mutual_info_score(truth, predicted))
        assert ours["ari"] == pytest.approx(adjusted_rand_score(truth, predicted))
        assert tuple(ours.values()) == pytest.approx(official_scores(truth, predicted))


def test_cluster_f1_is_micro_f1_after_the_best_one_to_one_renaming():
    truth = ["hole"] * 4 + ["scratch"] * 3 + ["stain"] * 3
    predicted = [2, 2, 2, 0, 0, 0, 0, 1, 1, 5]
    match = matched_labels(truth, predicted)
    assert match == {2: "hole", 0: "scratch", 1: "stain"}
    renamed = [match.get(p, "unmatched") for p in predicted]
    assert cluster_f1(truth, predicted) == pytest.approx(f1_score(truth, renamed, average="micro")) == 0.8


def test_degenerate_inputs():
    assert clustering_metrics(["a", "a", "b"], [7, 7, 8]) == {"nmi": 1.0, "ari": 1.0, "f1": 1.0}
    one_type = clustering_metrics(["a", "b", "b", "c"], [0, 0, 0, 0])
    assert one_type["nmi"] == 0.0 and one_type["ari"] == 0.0 and one_type["f1"] == 0.5
    with pytest.raises(MetricInputError, match="one length"):
        clustering_metrics([1, 2], [1])
    with pytest.raises(MetricInputError, match="at least one"):
        cluster_f1([], [])
