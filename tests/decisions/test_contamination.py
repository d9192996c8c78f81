"""Contamination estimates: gammaGMM as the official code computes it and zsad's named variant, the mixture
baseline on known fractions, and the rules built on them against the MAD rule on a mostly defective batch.

The side-by-side comparison with the official file itself is ``eval/check_official_gammagmm.py`` (it needs a copy
of github.com/Lorenzo-Perini/GammaGMM, which is not part of zsad); ``tests/data/gammagmm_official.npz`` holds the
official code's samples for one batch, written by that script's ``--fixture``."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from zsad.decisions import (
    ContaminationPosterior,
    GammaGMMConfig,
    GammaGMMPrior,
    fraction_threshold,
    gamma_gmm,
    mixture_fraction,
    rule_threshold,
)
from zsad.errors import ZsadError
from zsad.verdict import ThresholdRule, decide_threshold

PAPER = GammaGMMConfig(tot_samples=2000, max_retries=2, max_components=20)
PAIRED = GammaGMMConfig(tot_samples=2000, max_retries=2, max_components=20, own_component_parameters=True)


def _two_detectors(seed: int, n: int = 150, anomalies: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.exp(np.concatenate([rng.normal(0, 0.3, (n - anomalies, 2)), rng.normal(1.5, 0.3, (anomalies, 2))]))


def _kept_components(raw: np.ndarray, config: GammaGMMConfig) -> np.ndarray:
    """The mixture components gammaGMM keeps at its first fit (one image or more assigned)."""
    from sklearn.mixture import BayesianGaussianMixture

    from zsad.decisions import transform_scores

    x = transform_scores(raw)
    bgm = BayesianGaussianMixture(weight_concentration_prior_type="dirichlet_process",
                                  n_components=min(config.max_components, x.shape[0] - 1),
                                  weight_concentration_prior=0.01, max_iter=1500, random_state=config.seed).fit(x)
    return np.flatnonzero(bgm.weight_concentration_[0] >= 2)


def test_the_defaults_are_the_official_codes_and_the_variant_is_named_apart():
    official = GammaGMMConfig()
    assert (official.prior, official.max_retries, official.tot_samples, official.ndraws, official.max_components,
            official.seed) == (GammaGMMPrior(0.01, 0.01, 0.15, 0.25), 100, 10000, 100, 100, 331)
    assert official.name == "gamma_gmm" and GammaGMMConfig.wide().name == "gamma_gmm_wide"
    assert GammaGMMConfig(own_component_parameters=True).name == "gamma_gmm_custom"
    assert PAPER.name == "gamma_gmm"  # a shorter run of the official computation keeps its name


def test_gamma_gmm_equals_the_samples_the_official_code_gave():
    """A batch where a dropped mixture component precedes a kept one: the official parameter reading matters."""
    from pathlib import Path

    stored = np.load(Path(__file__).parents[1] / "data" / "gammagmm_official.npz")
    config = GammaGMMConfig(tot_samples=int(stored["tot_samples"]), max_components=int(stored["K"]))
    assert np.array_equal(gamma_gmm(stored["raw"], config).samples, stored["samples"])
    paired = gamma_gmm(stored["raw"], replace(config, own_component_parameters=True)).samples
    assert not np.array_equal(paired, stored["samples"])


def test_official_and_paired_parameters_agree_where_the_kept_components_come_first():
    raw = _two_detectors(3)
    kept = _kept_components(raw, PAPER)
    assert np.array_equal(kept, np.arange(kept.size))
    official, paired = gamma_gmm(raw, PAPER), gamma_gmm(raw, PAIRED)
    assert np.array_equal(official.samples, paired.samples)
    assert 0.0 < official.mean < 0.25 and official.found and official.method == "gamma_gmm"


def test_official_and_paired_parameters_differ_where_a_dropped_component_comes_first():
    raw = _two_detectors(0)
    kept = _kept_components(raw, PAPER)
    assert not np.array_equal(kept, np.arange(kept.size))
    official, paired = gamma_gmm(raw, PAPER), gamma_gmm(raw, PAIRED)
    assert not np.array_equal(official.samples, paired.samples)
    assert official.samples.shape == paired.samples.shape == (2000,)


def test_gamma_gmm_runs_on_one_evidence_and_reports_a_failed_prior():
    rng = np.random.default_rng(4)
    one = np.exp(np.concatenate([rng.normal(0, 0.3, 140), rng.normal(1.5, 0.3, 10)]))
    posterior = gamma_gmm(one, PAPER)  # the official code indexes [:, m] and fails with one detector
    assert posterior.samples.shape == (2000,) and np.isfinite(posterior.samples).all()
    # evenly spread scores: the prior cannot be fitted, which gives the official fallback, gamma = 0, and says so
    flat = gamma_gmm(np.linspace(1.0, 2.0, 40), GammaGMMConfig(tot_samples=500, max_retries=0, max_components=5))
    assert not flat.found and flat.mean == 0.0 and "official fallback" in flat.note
    threshold = rule_threshold(np.linspace(1.0, 2.0, 40), ThresholdRule("gamma_gmm"))
    assert threshold.certainty["fallback"] == "mad" and "gammaGMM" in threshold.rule


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6])
def test_mixture_recovers_known_fractions_within_its_interval(fraction):
    rng = np.random.default_rng(int(fraction * 100))
    n = 200
    anomalous = round(fraction * n)
    scores = np.exp(np.concatenate([rng.normal(-2.5, 0.25, n - anomalous), rng.normal(-1.0, 0.4, anomalous)]))
    posterior = mixture_fraction(scores)
    low, high = posterior.interval()
    assert posterior.found and low <= fraction <= high
    assert high - low < 0.15
    assert posterior.membership is not None
    assert (posterior.membership >= 0.5).sum() == pytest.approx(anomalous, abs=2)


def test_mixture_finds_no_group_in_a_clean_batch():
    rng = np.random.default_rng(7)
    posterior = mixture_fraction(rng.lognormal(-2.5, 0.3, 100))
    assert not posterior.found and "no separate anomalous group" in posterior.note
    assert posterior.mean < 0.02


def test_contamination_rule_flags_the_majority_where_the_mad_rule_flags_almost_none():
    rng = np.random.default_rng(11)
    labels = np.r_[np.zeros(40, bool), np.ones(60, bool)]
    scores = np.exp(np.r_[rng.normal(-2.5, 0.25, 40), rng.normal(-1.0, 0.4, 60)])
    mad = decide_threshold(scores, ThresholdRule("mad"))
    assert (scores >= mad.value).sum() <= 5
    threshold = decide_threshold(scores, ThresholdRule("mixture"))
    flagged = scores >= threshold.value
    assert threshold.name == "mixture"
    assert (flagged & labels).sum() >= 57 and (flagged & ~labels).sum() <= 3
    low, high = threshold.certainty["fraction_interval"]
    assert low <= 0.6 <= high and threshold.certainty["interval_level"] == 0.9
    assert "estimated anomaly fraction" in threshold.rule


def test_without_a_group_the_rule_falls_back_to_the_mad_rule_and_says_so():
    rng = np.random.default_rng(7)
    scores = rng.lognormal(-2.5, 0.3, 100)
    threshold = decide_threshold(scores, ThresholdRule("mixture"))
    assert threshold.value == pytest.approx(decide_threshold(scores, ThresholdRule("mad")).value)
    assert threshold.certainty["fallback"] == "mad" and "batch median" in threshold.rule


def test_fraction_and_defect_rate_thresholds_flag_by_count():
    scores = np.array([5.0, 1.0, 3.0, 2.0, 4.0])
    assert fraction_threshold(scores, 0.4) == 4.0  # the top 2
    assert (scores >= fraction_threshold(scores, 0.0)).sum() == 0
    assert (scores >= fraction_threshold(scores, 1.0)).sum() == 5
    threshold = decide_threshold(np.arange(100.0), ThresholdRule("defect_rate", 0.3))
    assert threshold.name == "defect_rate" and (np.arange(100.0) >= threshold.value).sum() == 30
    posterior = ContaminationPosterior(np.full(10, 0.2), "gamma_gmm")
    assert posterior.mean == pytest.approx(0.2) and posterior.interval() == pytest.approx((0.2, 0.2))


def test_evidence_columns_must_align_with_scores():
    with pytest.raises(ZsadError, match="one row per image"):
        rule_threshold(np.ones(10), ThresholdRule("mixture"), evidence_scores=np.ones((9, 2)))
    too_few = rule_threshold(np.arange(5.0), ThresholdRule("gamma_gmm"))
    assert too_few.value is None and too_few.name == "none"


def test_conformal_mixture_flags_the_conformal_flags_the_batch_estimate_confirms():
    rng = np.random.default_rng(12)
    calibration = rng.lognormal(-2.5, 0.25, 8)
    scores = np.exp(np.r_[rng.normal(-2.5, 0.25, 95), rng.normal(-1.0, 0.3, 5)])
    conformal = decide_threshold(scores, ThresholdRule("conformal", false_alarm_rate=0.01), calibration=calibration)
    mixture = decide_threshold(scores, ThresholdRule("mixture"))
    both = decide_threshold(scores, ThresholdRule("conformal_mixture", false_alarm_rate=0.01), calibration=calibration)
    flags = scores >= both.value
    assert np.array_equal(flags, (scores >= conformal.value) & (scores >= mixture.value))
    assert (scores[:95] >= conformal.value).sum() > (flags[:95]).sum()  # false alarms the batch removed
    assert flags[95:].all() and both.name == "conformal_mixture"
    assert both.certainty["false_alarm_rate"] == pytest.approx(1 / 9) and "batch" in both.certainty
