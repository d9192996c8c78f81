"""Binary masks: the test-time classifier on planted defects, its clean fallback, the verdict rule, and the
threshold rules against their direct formulas."""
from __future__ import annotations

import numpy as np
import pytest

from zsad.decisions import (
    MaskResult,
    TestTimeConfig,
    conformal_masks,
    conformal_threshold,
    mad_masks,
)
from zsad.decisions import (
    test_time_masks as masks_by_test_time_training,
)
from zsad.errors import ZsadError
from zsad.explain.regions import pixel_threshold
from zsad.metrics.decisions import mask_iou

GRID, DIM = 16, 24


def _planted(n: int = 24, defective: int = 8, seed: int = 0):
    """Heavy-tailed normal maps and features from a few normal looks; each defective image has a blob whose core
    scores high and whose rim scores only a little above normal, while all its patches share a defect look."""
    rng = np.random.default_rng(seed)
    looks = rng.normal(size=(4, DIM))
    defect_look = rng.normal(size=DIM)
    kind = rng.integers(0, 4, size=(n, GRID, GRID))
    features = looks[kind] + 0.3 * rng.normal(size=(n, GRID, GRID, DIM))
    maps = rng.lognormal(-3.0, 0.6, size=(n, GRID, GRID))
    truth = np.zeros((n, GRID, GRID), dtype=bool)
    y, x = np.mgrid[:GRID, :GRID]
    for i in range(defective):
        cy, cx = rng.integers(4, GRID - 4, size=2)
        distance = np.hypot(y - cy, x - cx)
        blob = distance <= 2.6
        truth[i] = blob
        features[i][blob] = defect_look + 0.3 * rng.normal(size=(blob.sum(), DIM))
        maps[i][blob] += np.where(distance[blob] <= 1.0, 1.0, 0.12)  # core vs rim
    verdicts = np.arange(n) < defective
    return maps, features, truth, verdicts


def test_classifier_recovers_planted_defects_beyond_their_confident_core():
    maps, features, truth, verdicts = _planted()
    result = masks_by_test_time_training(maps, features, verdicts)
    assert result.name == "test_time_classifier" and "logistic regression" in result.rule
    assert mask_iou(result.masks, truth) >= 0.9
    core_only = maps >= 0.5  # the map's own half-maximum region: the core, not the rim
    assert mask_iou(core_only, truth) < 0.5
    assert mask_iou(mad_masks(maps).masks, truth) < 0.5  # today's rule outlines heavy-tailed normal patches too
    assert not result.masks[~verdicts].any()


def test_no_anomalous_verdict_means_no_classifier_and_no_mask():
    maps, features, _, verdicts = _planted()
    result = masks_by_test_time_training(maps, features, np.zeros(len(maps), dtype=bool))
    assert result.name == "none" and not result.masks.any()
    assert "0 confident anomalous patches" in result.rule
    fallback = mad_masks(maps)
    chosen = masks_by_test_time_training(maps, features, [None] * len(maps), fallback=fallback)
    assert chosen.name == "mad" and "no test-time classifier" in chosen.rule and not chosen.masks.any()
    few = masks_by_test_time_training(maps, features, verdicts, TestTimeConfig(min_anomalous=10**6),
                                      fallback=fallback)
    assert few.name == "mad" and np.array_equal(few.masks, fallback.masks & verdicts[:, None, None])


def test_a_normal_verdict_has_no_region_under_every_rule():
    maps, features, _, verdicts = _planted()
    verdicts = verdicts.copy()
    verdicts[0] = False  # a defect the image verdict missed: its map peak must not be outlined
    calibration = np.random.default_rng(1).lognormal(-3.0, 0.6, size=(6, GRID, GRID))
    for result in (masks_by_test_time_training(maps, features, verdicts), mad_masks(maps, verdicts=verdicts),
                   conformal_masks(maps, calibration, verdicts=verdicts)):
        assert not result.masks[0].any() and not result.at((64, 64))[0].any()
        assert result.area_fractions()[0] == 0.0


def test_threshold_rules_match_their_formulas():
    maps, _, _, _ = _planted()
    assert mad_masks(maps).cut == pixel_threshold(maps)
    assert mad_masks(maps, k=5.0).cut == pixel_threshold(maps, 5.0)
    calibration = np.random.default_rng(2).lognormal(-3.0, 0.6, size=(6, GRID, GRID))
    default = conformal_masks(maps, calibration)
    assert default.cut == conformal_threshold(calibration, 0.001).value
    assert default.details["calibration_patches"] == calibration.size == 1536
    assert default.details["patch_false_alarm_rate"] == pytest.approx(1 / 1537)  # floor(0.001 x 1537) / 1537
    assert conformal_masks(maps, calibration, rate=0.05).cut == conformal_threshold(calibration, 0.05).value
    coarse = conformal_masks(maps, calibration[:1], rate=0.001)  # 256 patches cannot guarantee 0.1 %
    assert coarse.cut == np.nextafter(calibration[:1].max(), np.inf) and "can guarantee no finer rate" in coarse.rule


def test_mask_result_at_its_own_size_is_the_grid_mask():
    values = np.random.default_rng(3).random((3, 8, 8))
    result = MaskResult(values, 0.7, np.array([True, False, True]), "mad", "test")
    assert np.array_equal(result.at((8, 8)), result.masks)
    assert result.at((32, 32)).shape == (3, 32, 32)
    assert result.area_fractions()[1] == 0.0


def test_errors_name_the_input():
    maps, features, _, verdicts = _planted()
    with pytest.raises(ZsadError, match="do not match the maps"):
        masks_by_test_time_training(maps, features[:, :8], verdicts)
    with pytest.raises(ZsadError, match="one verdict per image"):
        mad_masks(maps, verdicts=verdicts[:3])
    with pytest.raises(ZsadError, match=r"\[N, h, w\]"):
        mad_masks(maps[0])


def test_regions_follow_a_decision_mask():
    from zsad.explain.regions import top_regions

    grid = np.zeros((8, 8), dtype=np.float32)
    grid[1:3, 1:3], grid[5:7, 5:7] = 0.9, 0.8
    mask = np.zeros((8, 8), dtype=bool)
    mask[5:7, 5:7] = True  # the classifier keeps only the lower right blob
    regions = top_regions(grid, None, (80, 80), mask=mask)
    assert len(regions) == 1 and regions[0].box == (50, 50, 70, 70) and regions[0].peak == pytest.approx(0.8)
    assert top_regions(grid, None, (80, 80), mask=np.zeros((8, 8), bool)) == []  # normal verdict: no region
    assert len(top_regions(grid, 0.5, (80, 80))) == 2  # the threshold form is unchanged
