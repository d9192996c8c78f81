"""Regions without scipy: ``connected_components`` equals ``scipy.ndimage.label`` (3 x 3 structure) and
``find_objects`` on random masks, and ``top_regions`` reports them on the original frame."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from zsad_runtime.regions import connected_components, pixel_threshold, top_regions


def test_components_equal_scipys():
    generator = np.random.default_rng(0)
    for trial in range(200):
        h, w = generator.integers(1, 40, size=2)
        mask = generator.random((h, w)) < generator.random()
        labels, boxes = connected_components(mask)
        expected, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        np.testing.assert_array_equal(labels, expected, err_msg=str(trial))
        assert boxes == ndimage.find_objects(expected) and len(boxes) == count


def test_top_regions_on_the_original_frame():
    grid = np.zeros((8, 8), dtype=np.float32)
    grid[1:3, 1:3] = 5.0  # upper left, the strongest
    grid[6, 5:8] = 3.0  # lower right, touching the border
    grid[4, 0] = 2.0
    regions = top_regions(grid, 1.0, (160, 80), max_regions=2)
    assert [r.position for r in regions] == ["upper left", "lower right"]
    assert regions[0].box == (20, 10, 60, 30) and regions[0].peak == 5.0 and regions[0].area_fraction == 4 / 64
    assert regions[1].box == (100, 60, 160, 70)
    # most patches are 0: median 0, MAD 0, so the spread is its floor, 1e-6 of the largest value
    assert pixel_threshold(grid) == pytest.approx(3 * 1e-6 * 5.0)
    assert top_regions(grid, 10.0, (160, 80)) == []
