"""Decisions that hold on real batches: verdicts, binary masks and how sure they are.

- ``conformal``: verdicts calibrated on the references' own leave-one-out normal scores (p-values, a guaranteed
  false-alarm rate), for images and for patches.
- ``contamination``: the batch's anomaly fraction from every evidence's scores when there are no references
  (gammaGMM, and a simpler two-Gaussian mixture baseline).
- ``rules``: thresholds from these, each a ``zsad.verdict.Threshold`` that names its rule and certainty.
- ``masks``: binary anomaly masks on the patch grid: a classifier trained at test time on the batch's confident
  patches, the reference-calibrated patch threshold, and the MAD rule; normal verdicts get no mask.
- ``batch``: ``decide_batch``, a run's whole decision (which scores decide, the threshold, p-values, masks), as
  the Detector calls it; ``features`` keeps the small patch features the test-time mask needs during a run.

Functions of scores, maps and features: nothing here runs a model or knows the Detector.
"""
from __future__ import annotations

from zsad.decisions.batch import decide_batch
from zsad.decisions.conformal import (
    DEFAULT_FALSE_ALARM_RATE,
    ConformalThreshold,
    conformal_p_values,
    conformal_threshold,
    smallest_rate,
)
from zsad.decisions.contamination import (
    ContaminationPosterior,
    GammaGMMConfig,
    GammaGMMPrior,
    gamma_gmm,
    mixture_fraction,
    transform_scores,
)
from zsad.decisions.masks import (
    MaskResult,
    TestTimeConfig,
    conformal_masks,
    mad_masks,
    test_time_masks,
)
from zsad.decisions.rules import (
    contamination_threshold,
    fraction_threshold,
    rule_threshold,
)

__all__ = [
    "DEFAULT_FALSE_ALARM_RATE",
    "ConformalThreshold",
    "ContaminationPosterior",
    "GammaGMMConfig",
    "GammaGMMPrior",
    "MaskResult",
    "TestTimeConfig",
    "conformal_masks",
    "decide_batch",
    "conformal_p_values",
    "conformal_threshold",
    "contamination_threshold",
    "fraction_threshold",
    "gamma_gmm",
    "mad_masks",
    "mixture_fraction",
    "rule_threshold",
    "smallest_rate",
    "test_time_masks",
    "transform_scores",
]
