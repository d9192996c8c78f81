"""Split-conformal p-values and false-alarm-rate thresholds from the references' leave-one-out normal scores.

Defined once, in the torch-free runtime (``zsad_runtime.conformal``, where the definitions and the guarantee are
explained), because a deployed bundle decides with the same rule; these names stay importable from here.
"""
from zsad_runtime.conformal import (
    DEFAULT_FALSE_ALARM_RATE,
    ConformalThreshold,
    conformal_p_values,
    conformal_threshold,
    smallest_rate,
)

__all__ = ["DEFAULT_FALSE_ALARM_RATE", "ConformalThreshold", "conformal_p_values", "conformal_threshold",
           "smallest_rate"]
