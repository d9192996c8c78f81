"""Robust statistics shared by verdicts, regions and fusion: the median and 1.4826 x MAD.

1.4826 x MAD (median absolute deviation) estimates the standard deviation of the normal part of a sample without
being pulled up by the anomalous part: for normally distributed values it equals the standard deviation. All three
users compute it over float64 values with the non-finite ones dropped.
"""
from __future__ import annotations

import numpy as np

MAD_TO_SIGMA = 1.4826


def robust_scale(values, floor: bool = True) -> tuple[float, float]:
    """(median, 1.4826 x MAD) of the finite values (``(nan, nan)`` when there are none).

    floor: keep the scale away from zero (at least 1e-6 of the largest magnitude, or 1e-6), for callers that divide
    by it; without it a sample without spread has scale 0, which the verdict rule reads as "no batch rule".
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return float("nan"), float("nan")
    median = float(np.median(flat))  # the mean of the two middle values for even counts
    sigma = float(np.median(np.abs(flat - median))) * MAD_TO_SIGMA
    if floor:
        sigma = max(sigma, 1e-6 * max(float(np.abs(flat).max()), 1.0))
    return median, sigma
