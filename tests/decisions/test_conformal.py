"""Conformal p-values and false-alarm-rate thresholds against their direct definitions, and the guarantee."""
from __future__ import annotations

import numpy as np
import pytest

from zsad.decisions import (
    conformal_p_values,
    conformal_threshold,
    rule_threshold,
    smallest_rate,
)
from zsad.errors import ZsadError
from zsad.verdict import ThresholdRule, decide_threshold


def _direct_p(score: float, calibration: np.ndarray) -> float:
    return (1 + sum(1 for c in calibration if c >= score)) / (len(calibration) + 1)


def test_p_values_match_the_definition_with_ties():
    rng = np.random.default_rng(0)
    calibration = np.round(rng.normal(size=25), 1)  # rounded: ties between calibration and test scores
    scores = np.concatenate([np.round(rng.normal(size=40), 1), calibration[:5], [-10.0, 10.0]])
    expected = [_direct_p(s, calibration) for s in scores]
    assert conformal_p_values(scores, calibration) == pytest.approx(expected, abs=0)
    assert conformal_p_values([10.0], calibration)[0] == pytest.approx(1 / 26)
    assert np.isnan(conformal_p_values([np.nan], calibration)[0])


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.1, 0.2, 0.29, 0.5, 0.9])
@pytest.mark.parametrize("k", [8, 19, 99])
def test_threshold_flags_exactly_the_scores_with_p_at_most_the_rate(alpha, k):
    rng = np.random.default_rng(k)
    calibration = rng.gamma(2.0, size=k)
    threshold = conformal_threshold(calibration, alpha)
    rate = max(alpha, 1 / (k + 1))
    # every calibration value and its float neighbours are the places where a mistake would show
    scores = np.concatenate([calibration, np.nextafter(calibration, np.inf), np.nextafter(calibration, -np.inf),
                             rng.gamma(2.0, size=500)])
    p = np.array([_direct_p(s, calibration) for s in scores])
    assert np.array_equal(scores >= threshold.value, p <= rate + 1e-12)
    assert threshold.rate == pytest.approx(np.floor(rate * (k + 1) + 1e-9) / (k + 1))
    assert threshold.k == k and threshold.requested == alpha


def test_finer_rate_than_the_references_allow_is_stated():
    calibration = np.arange(8.0)
    threshold = conformal_threshold(calibration, 0.01)
    assert threshold.rate == pytest.approx(1 / 9) == pytest.approx(smallest_rate(8))
    assert threshold.coarser_than_requested
    assert threshold.value == np.nextafter(7.0, np.inf)  # above every normal score
    assert "can guarantee no finer rate than 1/9" in threshold.describe()
    assert not conformal_threshold(np.arange(199.0), 0.01).coarser_than_requested


def test_false_alarm_rate_holds_on_simulated_normal_scores():
    """2000 runs: k normal calibration scores, one normal test score; flagged at most alpha of the time."""
    rng = np.random.default_rng(1)
    k, alpha, runs = 49, 0.1, 2000
    flagged = 0
    for _ in range(runs):
        calibration, test = rng.lognormal(size=k), rng.lognormal()
        flagged += test >= conformal_threshold(calibration, alpha).value
    rate = flagged / runs
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / runs)
    assert rate >= alpha - 3 * np.sqrt(alpha * (1 - alpha) / runs)  # exact for continuous scores: 5/50 = 0.1


def test_rule_threshold_names_the_rule_and_its_certainty():
    rng = np.random.default_rng(2)
    calibration, scores = rng.normal(size=8), rng.normal(size=30)
    threshold = decide_threshold(scores, ThresholdRule("conformal", false_alarm_rate=0.01), calibration=calibration)
    assert threshold.name == "conformal"
    assert threshold.value == conformal_threshold(calibration, 0.01).value
    assert threshold.certainty["false_alarm_rate"] == pytest.approx(1 / 9)
    assert threshold.certainty["requested_rate"] == 0.01 and threshold.certainty["calibration_scores"] == 8
    assert threshold.to_dict()["name"] == "conformal"
    with pytest.raises(ZsadError, match="leave-one-out normal scores"):
        rule_threshold(scores, ThresholdRule("conformal", false_alarm_rate=0.01))


def test_errors_name_the_input():
    with pytest.raises(ZsadError, match="false-alarm rate 1.5"):
        conformal_threshold([1.0, 2.0], 1.5)
    with pytest.raises(ZsadError, match="no calibration scores"):
        conformal_threshold([], 0.1)
    with pytest.raises(ZsadError, match="NaN"):
        conformal_p_values([1.0], [np.nan, 1.0])
    with pytest.raises(ZsadError, match="false_alarm_rate must be in"):
        ThresholdRule("conformal", false_alarm_rate=3.0)
