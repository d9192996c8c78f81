"""Decision metrics against scikit-learn, scipy and brute force."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import f1_score, jaccard_score

from zsad.metrics._inputs import MetricInputError
from zsad.metrics.decisions import iou_max, mask_iou, severity_rho, verdict_metrics


def test_verdict_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    labels, verdicts = rng.integers(0, 2, 60), rng.integers(0, 2, 60)
    m = verdict_metrics(verdicts, labels)
    assert m["f1"] == pytest.approx(f1_score(labels, verdicts))
    assert m["false_alarm_rate"] == pytest.approx(((verdicts == 1) & (labels == 0)).sum() / (labels == 0).sum())
    assert m["miss_rate"] == pytest.approx(((verdicts == 0) & (labels == 1)).sum() / (labels == 1).sum())
    assert m["flagged"] == verdicts.sum() and m["defective"] == labels.sum()
    clean = verdict_metrics(np.zeros(5), np.zeros(5))
    assert np.isnan(clean["f1"]) and clean["false_alarm_rate"] == 0.0 and np.isnan(clean["miss_rate"])
    with pytest.raises(MetricInputError, match="one verdict per labelled image"):
        verdict_metrics([1, 0], [1])


def test_mask_iou_matches_jaccard():
    rng = np.random.default_rng(1)
    pred, truth = rng.random((3, 9, 9)) > 0.7, rng.random((3, 9, 9)) > 0.8
    assert mask_iou(pred, truth) == pytest.approx(jaccard_score(truth.ravel(), pred.ravel()))
    assert np.isnan(mask_iou(np.zeros((2, 2)), np.zeros((2, 2))))


def test_iou_max_equals_brute_force_over_every_threshold():
    rng = np.random.default_rng(2)
    maps = np.round(rng.random((4, 10, 10)), 2)  # ties
    truth = rng.random((4, 10, 10)) > 0.85
    best, threshold = iou_max(maps, truth)
    candidates = np.unique(maps)
    brute = [mask_iou(maps >= t, truth) for t in candidates]
    assert best == pytest.approx(max(brute))
    assert threshold == max(t for t, v in zip(candidates, brute) if v == pytest.approx(max(brute)))
    assert np.isnan(iou_max(maps, np.zeros_like(truth))[0])


def test_severity_rho_is_spearmans():
    rng = np.random.default_rng(3)
    levels = np.repeat([1, 2, 3], 10)
    values = levels + rng.normal(0, 0.8, 30)
    assert severity_rho(values, levels) == pytest.approx(spearmanr(values, levels).statistic)
    assert np.isnan(severity_rho(np.ones(5), np.arange(5)))
