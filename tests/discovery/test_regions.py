"""Main-element binarisation and anomaly-centred crops against AnomalyNCD's official rules and constructed maps."""
from __future__ import annotations

import numpy as np
import pytest
from official_anomalyncd import OfficialMEBin, official_crop_box
from scipy import ndimage

from zsad.discovery.regions import (
    anomaly_crops,
    crop_boxes,
    crop_mask,
    main_element,
    peak_region,
    search_range,
    stable_threshold,
)


def _blob_map(rng, size=64, blobs=((16, 16, 5, 200), (44, 40, 7, 160)), noise=20):
    y, x = np.mgrid[:size, :size]
    values = rng.uniform(0, noise, (size, size))
    for cy, cx, radius, height in blobs:
        values += height * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius ** 2))
    return np.clip(values, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("erode", [False, True])
def test_main_element_equals_the_official_mebin_on_uint8_maps(erode):
    rng = np.random.default_rng(0)
    def blob(low):
        return rng.integers(10, 54), rng.integers(10, 54), rng.uniform(3, 8), rng.uniform(low, 235)

    maps = [_blob_map(rng, blobs=(blob(80), blob(60)), noise=rng.uniform(5, 60)) for _ in range(12)]
    official = OfficialMEBin(maps, erode=erode)
    masks, counts = official.binarize_anomaly_maps()
    value_range = search_range(maps)
    assert value_range == (official.min_th, official.max_th)
    compared = 0
    for grid, expected, count in zip(maps, masks, counts):
        ours = main_element(grid, value_range, erode=6 if erode else 0)
        if expected.any():
            np.testing.assert_array_equal(ours.mask, expected > 0)
            assert ours.count == count and ours.threshold is not None
            compared += 1
        else:  # the official code crops the whole image; zsad keeps the region around the peak
            assert ours.threshold is None and ours.count == 0
            np.testing.assert_array_equal(ours.mask, peak_region(grid))
    assert len(maps) > compared >= len(maps) // 3  # both branches are exercised


def test_stable_threshold_follows_the_official_tie_rules():
    official = OfficialMEBin([np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8)])
    rng = np.random.default_rng(1)
    for _ in range(300):
        counts = list(rng.integers(0, 4, rng.integers(1, 40)))
        counts = [c for c in np.repeat(counts, rng.integers(1, 7, len(counts)))]
        ours = stable_threshold(counts, 4)
        # over the range 0..255 the official threshold is the level itself; (255, 0) means "no stable interval"
        assert official.get_threshold(counts, 4) == ((255, 0) if ours is None else (255 - ours[0] * 4, ours[1]))


def test_main_element_finds_the_two_planted_regions_of_a_constructed_map():
    grid = np.zeros((24, 24), np.float32)
    grid[3:6, 3:7] = 1.0
    grid[15:19, 12:14] = 0.8
    grid += np.random.default_rng(2).uniform(0, 0.05, grid.shape).astype(np.float32)
    element = main_element(grid, (0.5, 1.05))
    _, count = ndimage.label(element.mask, structure=np.ones((3, 3)))
    assert count == element.count == 2
    expected = np.zeros_like(element.mask)
    expected[3:6, 3:7] = expected[15:19, 12:14] = True
    np.testing.assert_array_equal(element.mask, expected)


def test_one_map_uses_its_own_range_and_a_flat_map_gives_nothing():
    grid = np.zeros((16, 16))
    grid[5:8, 5:8] = 1.0
    assert search_range([grid]) == (1.0, 1.0)
    element = main_element(grid, search_range([grid]))
    assert element.mask.sum() == 9 and element.count == 1
    assert not main_element(np.ones((8, 8))).mask.any()


def test_crop_box_of_one_region_is_the_official_box():
    rng = np.random.default_rng(3)
    for _ in range(200):
        width = height = int(rng.integers(64, 900))
        w, h = int(rng.integers(1, width)), int(rng.integers(1, height))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        expected = official_crop_box(x, y, w, h, (height, width, 3))
        assert crop_boxes([(x, y, x + w, y + h)], (width, height)) == [expected]


def test_close_crops_merge_into_one_square_and_far_ones_stay_apart():
    boxes = crop_boxes([(10, 10, 20, 20), (30, 12, 40, 22), (200, 200, 210, 210)], (256, 256))
    assert len(boxes) == 2
    merged = boxes[0]
    assert merged[2] - merged[0] == merged[3] - merged[1]  # square
    assert merged[0] <= 10 and merged[2] >= 40
    assert boxes[1][0] <= 200 and boxes[1][2] >= 210


def test_anomaly_crops_report_area_peak_and_centre_in_image_pixels():
    mask = np.zeros((16, 16), bool)
    mask[2:4, 12:15] = True  # upper right, 6 cells
    grid = np.where(mask, 2.0, 0.1)
    grid[3, 13] = 5.0
    (crop,) = anomaly_crops(mask, grid, (320, 160))
    cell = (320 / 16) * (160 / 16)
    assert crop.area == pytest.approx(6 * cell) and crop.area_fraction == pytest.approx(6 / 256)
    assert crop.peak == 5.0
    assert crop.region_box == (240, 20, 300, 40)
    assert crop.centre == pytest.approx((270 / 320, 30 / 160))
    x0, y0, x1, y1 = crop.box
    assert 0 <= x0 <= 240 and x1 >= 300 and 0 <= y0 and y1 <= 160 and x1 <= 320


def test_crop_mask_is_the_share_of_each_crop_cell_the_image_mask_covers():
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:6] = True  # pixels x 64..192, y 64..128 of a 256 px image
    fractions = crop_mask(mask, (256, 256), (0, 0, 256, 256), (4, 4), samples=8)
    expected = np.zeros((4, 4))
    expected[1, 1:3] = 1.0
    np.testing.assert_allclose(fractions, expected)
    half = crop_mask(mask, (256, 256), (32, 32, 160, 160), (2, 2), samples=16)  # cells of 64 px from (32, 32)
    np.testing.assert_allclose(half, [[0.25, 0.5], [0.25, 0.5]])
