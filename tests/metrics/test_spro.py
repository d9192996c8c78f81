"""MVTec LOCO AD's sPRO protocol equals the official evaluation (transcribed in ``official_loco.py``)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import official_loco as off

from zsad.metrics import MetricInputError, UndefinedMetricWarning
from zsad.metrics.spro import (
    DefectRegion,
    DefectType,
    au_spro,
    au_spro_per_defect_type,
    defect_types,
    loco_metrics,
    spro_key,
)

CONFIG = [
    {"defect_name": "missing", "pixel_value": 255, "saturation_threshold": 12, "relative_saturation": False},
    {"defect_name": "oversized", "pixel_value": 250, "saturation_threshold": 10_000, "relative_saturation": False},
    {"defect_name": "scratch", "pixel_value": 254, "saturation_threshold": 0.5, "relative_saturation": True},
    {"defect_name": "whole", "pixel_value": 253, "saturation_threshold": 1.0, "relative_saturation": True},
]
KINDS = ("good", "logical_anomalies", "structural_anomalies")


def generated(seed: int, n: int, height: int, width: int, levels: int | None = None):
    """Maps and ground truth in both representations: 1-3 rectangular regions per anomalous image (small and large,
    sometimes overlapping), every saturation rule, a raised score inside some regions; ``levels`` quantises the
    scores (many ties, inside and across regions and images)."""
    rng = np.random.default_rng(seed)
    ours, theirs = defect_types(CONFIG), off.defects_from_list(CONFIG)
    values = sorted(ours)
    maps, gt_off, gt_ours, kinds = [], [], [], []
    for i in range(n):
        kind = KINDS[i % 3]
        anomaly_map = rng.random((height, width)).astype(np.float32)
        channels, regions = [], []
        if kind != "good":
            for _ in range(int(rng.integers(1, 4))):
                value = values[int(rng.integers(0, len(values)))]
                png = np.zeros((height, width), np.uint8)
                h, w = int(rng.integers(2, height // 2 + 2)), int(rng.integers(1, width // 2 + 2))
                y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
                png[y:y + h, x:x + w] = value
                anomaly_map[y:y + h, x:x + w] += np.float32(0.5 * rng.random())
                channels.append(off.channel_from_array(png, theirs))
                regions.append(DefectRegion(png > 0, ours[value]))
        if levels:
            anomaly_map = np.round(anomaly_map * levels) / np.float32(levels)
        maps.append(anomaly_map)
        gt_off.append(channels or None)
        gt_ours.append(regions)
        kinds.append(kind)
    return maps, gt_off, gt_ours, kinds


def every_threshold(maps) -> np.ndarray:
    """Every distinct score, plus one above the maximum and one below the minimum: the thresholds the official
    refinement converges to (it samples a subset of them)."""
    scores = np.unique(np.concatenate([m.ravel() for m in maps]).astype(np.float64))
    return np.concatenate([[scores[-1] + 1e-6], scores[::-1], [scores[0] - 1e-6]])


def assert_equal_to_official(official: dict, ours: dict, limits, tol: float) -> None:
    for kind in ("logical_anomalies", "structural_anomalies", "mean"):
        for limit in limits:
            assert ours[kind][spro_key(limit)] == pytest.approx(
                official["localization"]["auc_spro"][kind][limit], abs=tol), (kind, limit)


@pytest.mark.parametrize("seed, levels", [(0, None), (1, None), (2, 20), (3, 7), (4, None)])
def test_au_spro_equals_official_at_every_threshold(seed: int, levels: int | None) -> None:
    maps, gt_off, gt_ours, kinds = generated(seed, n=15, height=20, width=24, levels=levels)
    assert any(r.defect.name == "oversized" for image in gt_ours for r in image)  # saturation above the area
    official = off.evaluate_object(gt_off, maps, kinds, thresholds=every_threshold(maps))
    ours = loco_metrics([float(m.max()) for m in maps], maps, gt_ours, kinds)
    assert_equal_to_official(official, ours, off.MAX_FPRS, 1e-9)
    if levels is None:  # no ties between image scores: the official ROC loop and AUROC agree
        for kind in ("logical_anomalies", "structural_anomalies", "mean"):
            assert ours[kind]["i_auroc"] == pytest.approx(official["classification"]["auc_roc"][kind], abs=1e-12)


@pytest.mark.parametrize("seed, n, side", [(0, 6, 5), (1, 6, 5), (2, 9, 6), (3, 9, 6), (4, 6, 5)])
def test_whole_official_pipeline_with_its_threshold_refinement(seed: int, n: int, side: int) -> None:
    """The official script end to end (initial thresholds, binary refinement with curve_max_distance 0.001, map
    maxima as image scores): on inputs small enough for its refinement to sample every step of the curve, equal."""
    maps, gt_off, gt_ours, kinds = generated(seed, n=n, height=side, width=side)
    official = off.evaluate_object(gt_off, maps, kinds, curve_max_distance=0.001)
    ours = loco_metrics([float(m.max()) for m in maps], maps, gt_ours, kinds)
    assert_equal_to_official(official, ours, off.MAX_FPRS, 1e-6)
    for kind in ("logical_anomalies", "structural_anomalies", "mean"):
        assert ours[kind]["i_auroc"] == pytest.approx(official["classification"]["auc_roc"][kind], abs=1e-6)


def test_other_limits_and_per_defect_type_equal_official() -> None:
    maps, gt_off, gt_ours, kinds = generated(5, n=15, height=16, width=16, levels=30)
    limits = (0.05, 0.1, 0.2, 0.3)
    thresholds = every_threshold(maps)
    official = off.evaluate_object(gt_off, maps, kinds, thresholds=thresholds, max_fprs=limits)
    assert_equal_to_official(official, loco_metrics([1.0] * len(maps), maps, gt_ours, kinds, limits), limits, 1e-9)
    per_type = au_spro_per_defect_type(maps, gt_ours, limits)
    official_types = off.auc_spros_per_defect_type(gt_off, maps, off.defects_from_list(CONFIG), thresholds, limits)
    assert set(per_type) <= set(official_types) and len(per_type) >= 3
    for name, areas in per_type.items():
        for limit in limits:
            assert areas[limit] == pytest.approx(official_types[name][limit], abs=1e-9), (name, limit)


def test_saturation_by_hand() -> None:
    """A 10 x 10 region whose 12 highest pixels outscore every normal pixel: with an absolute saturation of 12 it
    is fully found at FPR 0 (AU-sPRO 1); with relative saturation 1.0 (plain per-region overlap) only 12 % of it
    is, and the rest comes after every normal pixel (AU-sPRO 0.12 up to any limit below 1)."""
    anomaly_map = np.zeros((20, 20), np.float32)
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    anomaly_map[5:15, 5:15] = -1.0
    anomaly_map[5, 5:15] = 2.0
    anomaly_map[6, 5:7] = 2.0
    good = np.full((20, 20), 0.5, np.float32)
    absolute = DefectType("missing", 255, 12, relative=False)
    relative = DefectType("scratch", 254, 1.0, relative=True)
    assert au_spro([anomaly_map, good], [[DefectRegion(mask, absolute)], []], (0.05, 0.3)) == {0.05: 1.0, 0.3: 1.0}
    areas = au_spro([anomaly_map, good], [[DefectRegion(mask, relative)], []], (0.05, 0.3, 1.0))
    assert areas[0.05] == pytest.approx(0.12) and areas[0.3] == pytest.approx(0.12)
    # up to FPR 1: 0.12 until every normal pixel is crossed, then the ramp to 1 at FPR 1 (one trapezoid of width 0)
    assert areas[1.0] == pytest.approx(0.12)
    assert absolute.saturation_area(5) == 5 and relative.saturation_area(99) == 99
    assert DefectType("half", 1, 0.5, relative=True).saturation_area(7) == 3  # floored, as the official int()


def test_overlapping_regions_count_once_each() -> None:
    anomaly_map = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    a = np.zeros((8, 8), bool)
    a[6:, :] = True
    b = np.zeros((8, 8), bool)
    b[7:, 4:] = True
    whole = DefectType("whole", 253, 1.0, relative=True)
    theirs = off.defects_from_list([CONFIG[3]])
    gt = [[off.Channel(a, theirs[253]), off.Channel(b, theirs[253])], None]
    maps = [anomaly_map, anomaly_map[::-1].copy()]
    official = off.auc_spros(gt, maps, off.compute(gt, maps, every_threshold(maps)), [0, 1])
    ours = au_spro([anomaly_map, anomaly_map[::-1].copy()], [[DefectRegion(a, whole), DefectRegion(b, whole)], []])
    for limit in off.MAX_FPRS:
        assert ours[limit] == pytest.approx(official[limit], abs=1e-9)
    assert ours[0.05] != pytest.approx(au_spro(maps, [[DefectRegion(a | b, whole)], []])[0.05])  # not a union


def test_official_roc_ranks_ties_in_favour_of_the_anomaly() -> None:
    """The deliberate difference: a good and an anomalous image with the same score are ranked correctly by the
    official ROC loop (AUROC 1) and count half in scikit-learn's definition, which zsad uses (AUROC 0.5)."""
    assert off.classification_auc([0.5], [0.5]) == 1.0
    region = [DefectRegion(np.eye(4, dtype=bool), DefectType("whole", 253, 1.0, True))]
    maps = [np.full((4, 4), 0.5, np.float32)] * 3
    table = loco_metrics([0.5, 0.5, 0.5], maps, [region, region, []],
                         ["logical_anomalies", "structural_anomalies", "good"])
    assert table["logical_anomalies"]["i_auroc"] == 0.5


def test_undefined_and_invalid_inputs() -> None:
    whole = DefectType("whole", 253, 1.0, relative=True)
    maps = [np.zeros((4, 4), np.float32)]
    with pytest.warns(UndefinedMetricWarning, match="no defect region"):
        assert all(math.isnan(v) for v in au_spro(maps, [[]]).values())
    with pytest.warns(UndefinedMetricWarning, match="no pixel outside"):
        au_spro(maps, [[DefectRegion(np.ones((4, 4), bool), whole)]])
    one_pixel = np.zeros((4, 4), bool)
    one_pixel[0, 0] = True
    half = DefectType("half", 9, 0.5, relative=True)  # int(0.5 x 1 pixel) = 0: the official code divides by 0
    with pytest.raises(MetricInputError, match="'half' has a saturation area of 0.*raise its saturation_threshold"):
        au_spro(maps * 2, [[DefectRegion(one_pixel, half)], []])
    with pytest.raises(MetricInputError, match="is empty"):
        au_spro(maps, [[DefectRegion(np.zeros((4, 4), bool), whole)]])
    with pytest.raises(MetricInputError, match="shape"):
        au_spro(maps, [[DefectRegion(np.ones((3, 4), bool), whole)]])
    with pytest.raises(MetricInputError, match="pixel_value 255 is given to both"):
        defect_types([CONFIG[0], {**CONFIG[2], "pixel_value": 255}])
    with pytest.raises(MetricInputError, match="relative saturation_threshold must lie in"):
        defect_types([{**CONFIG[2], "saturation_threshold": 1.5}])
    with pytest.raises(MetricInputError, match="needs defect_name"):
        defect_types([{"defect_name": "x"}])
    with pytest.raises(MetricInputError, match="unknown LOCO image kind"):
        loco_metrics([0.0], maps, [[]], ["scratches"])
