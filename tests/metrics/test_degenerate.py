"""The policy for degenerate inputs: one class -> NaN with a warning; malformed input -> MetricInputError."""
from __future__ import annotations

import math

import numpy as np
import pytest

from zsad.errors import ZsadError
from zsad.metrics import MetricInputError, UndefinedMetricWarning, aupro, f1_max, image_metrics, pixel_metrics


def test_error_is_value_error_and_zsad_error() -> None:
    assert issubclass(MetricInputError, ValueError) and issubclass(MetricInputError, ZsadError)


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1, 1]])
def test_one_class_image_labels_give_nan_and_warn(labels: list[int]) -> None:
    with pytest.warns(UndefinedMetricWarning, match="only"):
        got = image_metrics([0.1, 0.5, 0.9], labels)
    assert set(got) == {"i_auroc", "i_ap", "i_f1_max"} and all(math.isnan(v) for v in got.values())
    with pytest.warns(UndefinedMetricWarning):
        best, threshold = f1_max([0.1, 0.5, 0.9], labels)
    assert math.isnan(best) and math.isnan(threshold)


def test_pixel_metrics_without_anomalous_pixels_give_nan_and_warn() -> None:
    maps = np.random.default_rng(0).random((2, 4, 4), dtype=np.float32)
    masks = np.zeros((2, 4, 4), dtype=bool)
    with pytest.warns(UndefinedMetricWarning, match="no anomalous pixel"):
        got = pixel_metrics(maps, masks)
    assert all(math.isnan(v) for v in got.values())
    with pytest.warns(UndefinedMetricWarning, match="no normal pixel"):
        assert math.isnan(aupro(maps, ~masks))


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(MetricInputError, match=r"\(2, 4, 4\).*\(2, 4, 5\)"):
        pixel_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), dtype=bool))
    with pytest.raises(MetricInputError, match=r"maps\[1\] shape \(3, 3\).*masks\[1\] shape \(3, 4\)"):
        pixel_metrics([np.zeros((2, 2)), np.zeros((3, 3))], [np.zeros((2, 2)), np.zeros((3, 4))])
    with pytest.raises(MetricInputError, match="2 maps but 1 masks"):
        pixel_metrics([np.zeros((2, 2)), np.zeros((2, 2))], [np.zeros((2, 2))])
    with pytest.raises(MetricInputError, match=r"\(3,\).*\(4,\)"):
        image_metrics([0.1, 0.2, 0.3], [0, 1, 0, 1])


def test_wrong_rank_is_refused() -> None:
    with pytest.raises(MetricInputError, match=r"expected \[N, H, W\]"):
        pixel_metrics(np.zeros((2, 1, 4, 4)), np.zeros((2, 1, 4, 4)))
    with pytest.raises(MetricInputError, match="1-D"):
        image_metrics(np.zeros((3, 1)), np.zeros((3, 1)))


def test_nan_scores_are_refused() -> None:
    maps = np.zeros((2, 3, 3), dtype=np.float32)
    maps[1, 0, 0] = np.nan
    with pytest.raises(MetricInputError, match=r"maps\[1\] contains 1 NaN"):
        pixel_metrics(maps, np.eye(3, dtype=bool)[None].repeat(2, 0))
    with pytest.raises(MetricInputError, match="NaN"):
        image_metrics([0.1, float("nan")], [0, 1])


def test_empty_input_is_refused() -> None:
    with pytest.raises(MetricInputError, match="empty"):
        image_metrics([], [])
    with pytest.raises(MetricInputError, match="empty"):
        pixel_metrics([], [])


def test_non_binary_masks_and_labels_are_refused() -> None:
    with pytest.raises(MetricInputError, match="255.*mask > 127"):
        pixel_metrics(np.zeros((1, 2, 2)), np.full((1, 2, 2), 255, dtype=np.uint8))
    with pytest.raises(MetricInputError, match="0.5"):
        pixel_metrics(np.zeros((1, 2, 2)), np.full((1, 2, 2), 0.5))
    with pytest.raises(MetricInputError, match="labels"):
        image_metrics([0.1, 0.2], [0, 2])


@pytest.mark.parametrize("limit", [0.0, -0.1, 1.5])
def test_bad_fpr_limit(limit: float) -> None:
    masks = np.eye(3, dtype=bool)[None]
    with pytest.raises(MetricInputError, match="fpr_limit"):
        aupro(np.zeros((1, 3, 3)), masks, fpr_limit=limit)


def test_infinite_scores_are_ranked() -> None:
    labels = np.array([0, 1, 0, 1])
    scores = np.array([-np.inf, np.inf, 0.0, 1.0])
    assert image_metrics(scores, labels)["i_auroc"] == 1.0
