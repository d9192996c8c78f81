"""Image-level metrics: AUROC, AP and F1-max of per-image anomaly scores against 0/1 labels.

AP is scikit-learn's step-wise definition (sum of recall increase x precision, no interpolation), the one used by
the zero-shot anomaly detection papers that report AP. F1-max is the best F1 over all thresholds; its threshold is
returned too so that a verdict threshold can be calibrated on labelled data (an image is anomalous when its score
is ``>= threshold``; when several thresholds reach the same F1, the highest, i.e. the most conservative, is
returned).
"""
from __future__ import annotations

import warnings
from typing import Any

from zsad.metrics import curves
from zsad.metrics._inputs import UndefinedMetricWarning, image_inputs

IMAGE_KEYS = ("i_auroc", "i_ap", "i_f1_max")


def _image_curve(scores: Any, labels: Any, what: str) -> curves.RankingCurve | None:
    s, y = image_inputs(scores, labels)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        present = "anomalous" if n_pos else "normal"
        warnings.warn(
            f"labels contain only {present} images ({y.size}); {what} undefined and returned as NaN",
            UndefinedMetricWarning,
            stacklevel=3,
        )
        return None
    return curves.ranking_curve(s[y], s[~y])


def image_metrics(scores: Any, labels: Any) -> dict[str, float]:
    """Image AUROC, AP and F1-max (fractions in [0, 1]) of scores [N] against labels [N] (1 = anomalous).

    All three are NaN, with an ``UndefinedMetricWarning``, when the labels hold only one class.
    """
    curve = _image_curve(scores, labels, "image metrics are")
    if curve is None:
        return dict.fromkeys(IMAGE_KEYS, float("nan"))
    return {
        "i_auroc": curves.auroc(curve),
        "i_ap": curves.average_precision(curve),
        "i_f1_max": curves.best_f1(curve)[0],
    }


def f1_max(scores: Any, labels: Any) -> tuple[float, float]:
    """(best F1 over all thresholds, the threshold reaching it); (NaN, NaN) with a warning if one-class.

    Works for any binary scoring, e.g. image scores, or flattened pixel scores to calibrate a map threshold.
    """
    curve = _image_curve(scores, labels, "F1-max is")
    if curve is None:
        return float("nan"), float("nan")
    return curves.best_f1(curve)
