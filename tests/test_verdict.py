import numpy as np
import pytest

from zsad.errors import ZsadError
from zsad.metrics import f1_max
from zsad.verdict import ThresholdRule, calibrate_threshold, decide_threshold


def test_mad_rule_formula():
    scores = np.array([0.1, 0.2, 0.15, 0.12, 0.18, 0.11, 0.9, 0.14, 0.16])
    threshold = decide_threshold(scores, ThresholdRule("mad", 3.0))
    median = np.median(scores)
    mad = np.median(np.abs(scores - median))
    assert threshold.value == pytest.approx(median + 3 * 1.4826 * mad)
    assert "MAD over 9 images" in threshold.rule
    assert (scores >= threshold.value).sum() == 1  # only the outlier


def test_small_batches_fall_back_to_natural_threshold_or_no_verdict():
    for rule in (ThresholdRule("mad"), ThresholdRule()):  # the batch rule, and the default's contamination estimate
        assert decide_threshold(np.array([0.3, 0.7]), rule, natural=0.5).value == 0.5
        none = decide_threshold(np.array([0.3, 0.7]), rule, natural=None)
        assert none.value is None and "no verdict" in none.rule
    flat = decide_threshold(np.full(10, 0.4), ThresholdRule("mad"), natural=None)
    assert flat.value is None and "without spread" in flat.rule


def test_fixed_and_calibrated():
    assert decide_threshold(np.array([1.0, 2.0]), ThresholdRule("fixed", 1.5)).value == 1.5
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50)
    scores = labels + rng.normal(0, 0.6, 50)
    value = calibrate_threshold(scores, labels)
    assert value == pytest.approx(f1_max(scores, labels)[1])
    with pytest.raises(ZsadError, match="both normal and anomalous"):
        calibrate_threshold(scores, np.zeros(50))
    with pytest.raises(ZsadError):
        ThresholdRule("median")


def test_every_threshold_names_its_rule():
    from zsad.verdict import Threshold

    scores = np.array([0.1, 0.2, 0.15, 0.12, 0.18, 0.11, 0.9, 0.14, 0.16])
    assert decide_threshold(scores, ThresholdRule("mad")).name == "mad"
    assert decide_threshold(scores, ThresholdRule("fixed", 0.5)).name == "fixed"
    assert decide_threshold(scores[:2], ThresholdRule(), natural=0.5).name == "natural"
    assert decide_threshold(scores[:2], ThresholdRule()).name == "none"
    legacy = Threshold(0.3, "fixed 0.3")  # the two-field form still works
    assert legacy.to_dict() == {"value": 0.3, "rule": "fixed 0.3", "name": "", "certainty": {}}
    with pytest.raises(ZsadError, match="defect_rate needs a rate"):
        ThresholdRule("defect_rate", 0.0)


def test_auto_resolves_to_a_named_rule_that_is_recorded():
    """"auto" is what the user asks for; what ran is recorded: conformal_mixture with the references' calibration,
    mixture without, and never "auto" in a Threshold."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 1, 10), rng.normal(8, 1, 20)])  # 20 of 30 defective: mad flags none
    assert (scores >= decide_threshold(scores, ThresholdRule("mad")).value).sum() == 0
    without = decide_threshold(scores, ThresholdRule())
    assert without.name == "mixture" and (scores >= without.value).sum() == 20
    calibration = rng.normal(0, 1, 8)
    with_references = decide_threshold(scores, ThresholdRule(), calibration=calibration)
    assert with_references.name == "conformal_mixture" and (scores >= with_references.value).sum() == 20
    assert with_references.certainty["smallest_rate"] == pytest.approx(1 / 9)
    assert ThresholdRule().resolved(True).kind == "conformal_mixture"
    assert ThresholdRule("mad").resolved(True).kind == "mad"


def test_the_conformal_rate_is_its_own_setting():
    from zsad.config import build_config

    config = build_config(false_alarm_rate=0.05, threshold_rule="conformal")
    assert config.threshold.kind == "conformal" and config.threshold.false_alarm_rate == 0.05
    assert build_config(defect_rate=0.2).threshold == ThresholdRule("defect_rate", 0.2)
    with pytest.raises(ZsadError, match="false_alarm_rate must be in"):
        ThresholdRule(false_alarm_rate=1.5)
