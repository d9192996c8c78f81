"""Top anomalous regions of a map: connected components above a pixel-level threshold.

The pixel threshold lives on the map's own scale, never the image score's: with fused evidence the image score and
the map values are different quantities (issue: "0.0 % of the image above threshold" while the image was flagged).
``pixel_threshold`` applies the same robust outlier rule as the image verdict to *patch* values: median + k x
1.4826 x MAD over all patch-grid values of the run (most patches are normal even in defective images, so this is
"k normal-patch standard deviations above typical"). Regions are found on the patch grid, where the map is
defined, and reported in the original image's pixel coordinates.

Components are found by ``connected_components`` (numpy and a flood fill over the patch grid, a few thousand cells at
most), equal to ``scipy.ndimage.label`` with a 3 x 3 structure and ``find_objects``: the torch-free runtime then
needs no scipy (``tests/runtime/test_regions.py`` compares the two).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from zsad_runtime.robust import robust_scale


@dataclass(frozen=True)
class Region:
    """One connected anomalous region.

    box: (x0, y0, x1, y1) in original-image pixels, x1/y1 exclusive.
    area_fraction: the region's share of the image area.
    peak: the largest map value inside the region; peak_xy: where it is, in original pixels.
    position: where the region's centre lies, in words ("upper left", "center", ...).
    """

    box: tuple[int, int, int, int]
    area_fraction: float
    peak: float
    peak_xy: tuple[int, int]
    position: str

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        x0, y0, x1, y1 = self.box
        return f"{self.position} ({x1 - x0}x{y1 - y0} px at x={x0}, y={y0}; {100 * self.area_fraction:.1f}% of the image)"


def pixel_threshold(grid_values: np.ndarray, k: float = 3.0) -> float:
    """median + k * 1.4826 * MAD of patch values (all grid maps of a run, flattened)."""
    median, spread = robust_scale(grid_values)
    if median != median:  # no finite value
        return float("inf")
    return median + k * spread


def position_words(cx: float, cy: float) -> str:
    """Centre (as fractions of width and height) -> "upper left", "center", "lower right", ..."""
    row = "upper" if cy < 1 / 3 else "lower" if cy > 2 / 3 else ""
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    if not row and not col:
        return "center"
    if not row:
        return f"center {col}"
    if not col:
        return f"{row} center"
    return f"{row} {col}"


def top_regions(grid_map: np.ndarray, threshold: float | None, original_size: tuple[int, int],
                max_regions: int = 3, mask: np.ndarray | None = None) -> list[Region]:
    """The ``max_regions`` strongest 8-connected regions of ``grid_map`` (h, w) at or above ``threshold``.

    original_size: (width, height) of the image the map belongs to; boxes are scaled onto it.
    mask: a binary (h, w) mask that decides instead of ``threshold`` (a ``zsad.decisions`` mask: a test-time
        classifier's or a conformal one; all False for an image whose verdict is normal); peaks are still read
        from ``grid_map``.
    Regions are ordered by peak value, strongest first.
    """
    grid = np.asarray(grid_map, dtype=np.float32)
    if mask is None:
        if threshold is None:
            raise ValueError("top_regions needs a threshold or a mask")
        mask = grid >= threshold
    else:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != grid.shape:
            raise ValueError(f"mask of shape {mask.shape} for a map of shape {grid.shape}")
    if not mask.any():
        return []
    labels, boxes = connected_components(mask)
    h, w = grid.shape
    width, height = original_size
    sx, sy = width / w, height / h
    regions = []
    for index, slices in enumerate(boxes, start=1):
        ys, xs = slices
        inside = labels[slices] == index
        values = np.where(inside, grid[slices], -np.inf)
        py, px = np.unravel_index(int(np.argmax(values)), values.shape)
        box = (int(xs.start * sx), int(ys.start * sy), int(np.ceil(xs.stop * sx)), int(np.ceil(ys.stop * sy)))
        centre = ((xs.start + xs.stop) / 2 / w, (ys.start + ys.stop) / 2 / h)
        regions.append(Region(
            box=(box[0], box[1], min(box[2], width), min(box[3], height)),
            area_fraction=float(inside.sum()) / (h * w),
            peak=float(values[py, px]),
            peak_xy=(int((xs.start + px + 0.5) * sx), int((ys.start + py + 0.5) * sy)),
            position=position_words(*centre),
        ))
    regions.sort(key=lambda r: -r.peak)
    return regions[:max_regions]


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, list[tuple[slice, slice]]]:
    """8-connected components of a 2-D bool mask: labels (int32, 0 outside, 1, 2, ... numbered by each component's
    first pixel in raster order) and each component's bounding box as (row slice, column slice), as
    ``scipy.ndimage.label(mask, np.ones((3, 3)))`` and ``scipy.ndimage.find_objects`` give them."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    cells = mask.tolist()
    labels = np.zeros((h, w), dtype=np.int32)
    seen = [[False] * w for _ in range(h)]
    boxes = []
    for y, x in zip(*(axis.tolist() for axis in np.nonzero(mask))):  # raster order
        if seen[y][x]:
            continue
        label = len(boxes) + 1
        seen[y][x] = True
        stack, y0, y1, x0, x1 = [(y, x)], y, y, x, x
        while stack:
            cy, cx = stack.pop()
            labels[cy, cx] = label
            y0, y1, x0, x1 = min(y0, cy), max(y1, cy), min(x0, cx), max(x1, cx)
            for ny in range(max(cy - 1, 0), min(cy + 2, h)):
                for nx in range(max(cx - 1, 0), min(cx + 2, w)):
                    if cells[ny][nx] and not seen[ny][nx]:
                        seen[ny][nx] = True
                        stack.append((ny, nx))
        boxes.append((slice(y0, y1 + 1), slice(x0, x1 + 1)))
    return labels, boxes
