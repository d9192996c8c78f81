"""Regions to discover: main-element binarisation of an anomaly map, and anomaly-centred crops around its regions.

Taken from AnomalyNCD (Huang et al., CVPR 2025; official code ``models/modules/_MEBin.py``, defaults from
``configs/AnomalyNCD.yaml``), applied to zsad's patch-grid maps (``AnomalyResult.grid_map``):

- **Main-element binarisation (MEBin).** The threshold search range is shared by all maps being binarised: from the
  smallest to the largest per-map maximum. Each map is normalised onto 0..255 over that range (values under the
  range become 0), and binarised at every level 255, 251, ..., 3 (``sample_rate`` 4) with "value > level"; the
  8-connected regions are counted at each level. A *stable interval* is a run of at least ``min_interval_len`` (4)
  consecutive levels with the same non-zero count. The count whose longest stable interval is the longest wins
  (ties: the count reached first, i.e. at the higher levels); among that count's intervals the longest one (ties:
  the later one) gives the threshold, its *lowest* level. The main element is the map above that threshold. When no
  stable interval exists the official code returns threshold 255 (nothing). ``tests/discovery/official_mebin.py``
  transcribes the official search and the tests compare both on integer maps.
- **Anomaly-centred crops.** Per region (the official code takes the bounding rectangle of each outer contour of
  the mask resized to the image; here the 8-connected components of the mask, boxes scaled to the image): a square
  box around the region's centre with half-side max(int(side x 1.1 / 2), int(0.1 x long image side)), at most half
  the long side, shifted inside the image. Crops closer than 1 % of the long side (overlapping ones included) are
  merged into their bounding box, made square. The mask inside a crop is the whole binarised mask cropped there
  (other regions in the crop count too), as the official ``mask.crop(box)``.

Departures, each because zsad's maps are patch grids or because the official rule has no answer:

- No erosion by default: the official code erodes the binarised map with a 6 x 6 pixel kernel at every level; its
  maps are image-sized, where 6 px is a small fraction of a 14-16 px patch, so on a patch grid the same kernel is
  less than one cell and changes nothing (``erode`` takes a kernel in grid cells for coarse masks given by users).
- One map, or maps that all share one maximum, make the official range empty (a division by zero). The range is
  then the map's own minimum .. maximum.
- The weakest map of a run has its maximum at the bottom of the range, so no level reaches it and the official code
  crops the whole image for it. zsad instead keeps the region around the map's peak: the 8-connected component
  containing the maximum of the cells at or above the midpoint between the map's median and its maximum.
- Merging uses the transitive closure of "closer than 1 %" (the official groups overlap and can emit overlapping
  merged boxes), and the merged square is shifted inside the image like a single crop. Crops are clipped to the
  image (the official keeps a square that may pass the short side of a non-square image, which PIL pads with
  black). At most ``max_crops`` crops per image, the largest, like the official slice of the largest crops.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse.csgraph import connected_components

SAMPLE_RATE = 4
MIN_INTERVAL_LEN = 4
LEVELS = 255
EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class MainElement:
    """A binarised map. threshold: on the map's own scale (None when the peak fallback made the mask); count: the
    number of regions MEBin settled on (0 with the fallback)."""

    mask: np.ndarray
    threshold: float | None
    count: int


@dataclass(frozen=True)
class Crop:
    """One anomaly-centred crop of an image.

    box: the crop (x0, y0, x1, y1) in original-image pixels, x1/y1 exclusive.
    region_box: the tight box of the anomalous pixels inside the crop.
    area: anomalous pixels inside the crop, in original pixels (AnomalyNCD's region-merging weight).
    area_fraction: the same as a share of the image.
    peak: the largest map value over the anomalous cells inside the crop, in the map's units.
    centre: the centre of the anomalous pixels inside the crop, as fractions of width and height.
    """

    box: tuple[int, int, int, int]
    region_box: tuple[int, int, int, int]
    area: float
    area_fraction: float
    peak: float
    centre: tuple[float, float]


def search_range(maps: list[np.ndarray]) -> tuple[float, float]:
    """MEBin's shared threshold range: (smallest, largest) per-map maximum."""
    maxima = [float(np.max(m)) for m in maps]
    if not maxima:
        raise ValueError("search_range needs at least one map")
    return min(maxima), max(maxima)


def _count(binary: np.ndarray) -> int:
    return int(ndimage.label(binary, structure=EIGHT)[1])


def _erode(binary: np.ndarray, erode: int) -> np.ndarray:
    if erode <= 1:
        return binary
    # cv2.erode's default border never erodes at the image edge: border_value=1 does the same.
    return ndimage.binary_erosion(binary, structure=np.ones((erode, erode), dtype=bool), border_value=1)


def stable_threshold(counts: list[int], min_interval_len: int = MIN_INTERVAL_LEN) -> tuple[int, int] | None:
    """(index of the chosen level, region count) from the region counts at levels 255, 255 - s, ...; None without
    a stable interval. The rule of MEBin's ``get_threshold`` (see the module doc)."""
    runs: dict[int, list[tuple[int, int]]] = {}
    start = 0
    while start < len(counts):
        end = start
        while end + 1 < len(counts) and counts[end + 1] == counts[start]:
            end += 1
        if counts[start] != 0 and end - start + 1 >= min_interval_len:
            runs.setdefault(counts[start], []).append((start, end))
        start = end + 1
    if not runs:
        return None
    longest = {count: max(e - s for s, e in spans) for count, spans in runs.items()}
    count = max(longest, key=longest.get)  # first reached on ties, as the official dict order
    best = max(e - s for s, e in runs[count])
    end = [e for s, e in runs[count] if e - s == best][-1]  # the later one on ties
    return end, count


def main_element(grid_map: np.ndarray, value_range: tuple[float, float] | None = None, *,
                 sample_rate: int = SAMPLE_RATE, min_interval_len: int = MIN_INTERVAL_LEN,
                 erode: int = 0) -> MainElement:
    """The main element of one map (see the module doc); ``value_range`` from ``search_range`` over every map of
    the run being binarised (the map's own min .. max when None or empty)."""
    values = np.asarray(grid_map, dtype=np.float64)
    if values.ndim != 2 or not np.isfinite(values).all():
        raise ValueError(f"main_element needs a finite 2-D map, got shape {values.shape}")
    low, high = value_range if value_range is not None else (values.min(), values.max())
    if not high > low:
        low, high = float(values.min()), float(values.max())
    if not high > low:
        return MainElement(np.zeros(values.shape, dtype=bool), None, 0)
    norm = np.where(values < low, 0.0, (values - low) / (high - low) * LEVELS)
    levels = list(range(LEVELS, 0, -sample_rate))
    counts = [_count(_erode(norm > level, erode)) for level in levels]
    chosen = stable_threshold(counts, min_interval_len)
    if chosen is not None:
        index, count = chosen
        level = LEVELS - index * sample_rate
        threshold = level * (high - low) / LEVELS + low
        mask = _erode(values > threshold, erode)
        if mask.any():
            return MainElement(mask, float(threshold), count)
    return MainElement(peak_region(values), None, 0)


def peak_region(grid_map: np.ndarray) -> np.ndarray:
    """The 8-connected region around the map's maximum, at the midpoint between its median and its maximum."""
    values = np.asarray(grid_map, dtype=np.float64)
    level = (float(np.median(values)) + float(values.max())) / 2
    labels, _ = ndimage.label(values >= level, structure=EIGHT)
    return labels == labels[np.unravel_index(int(np.argmax(values)), values.shape)]


def _square_box(cx: int, cy: int, radius: int, width: int, height: int) -> tuple[int, int, int, int]:
    left, up, right, bottom = cx - radius, cy - radius, cx + radius, cy + radius
    if left < 0:
        left, right = 0, 2 * radius
    elif right > width:
        left, right = width - 2 * radius, width
    if up < 0:
        up, bottom = 0, 2 * radius
    elif bottom > height:
        up, bottom = height - 2 * radius, height
    return max(0, left), max(0, up), min(width, right), min(height, bottom)


def _gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Smallest distance between two boxes; -1 when they overlap (the official ``min_distance_of_rectangles``)."""
    dx = abs((a[0] + a[2]) - (b[0] + b[2])) / 2 - ((a[2] - a[0]) + (b[2] - b[0])) / 2
    dy = abs((a[1] + a[3]) - (b[1] + b[3])) / 2 - ((a[3] - a[1]) + (b[3] - b[1])) / 2
    if dx < 0 and dy < 0:
        return -1.0
    return float(np.hypot(max(dx, 0.0), max(dy, 0.0)))


def crop_boxes(region_boxes: list[tuple[int, int, int, int]], original_size: tuple[int, int], padding: float = 0.1,
               min_crop: float = 0.1, merge_distance: float = 0.01) -> list[tuple[int, int, int, int]]:
    """Square anomaly-centred crops around region boxes (pixels), merged when close; largest first."""
    width, height = original_size
    side = max(width, height)
    boxes = []
    for x0, y0, x1, y1 in region_boxes:
        radius = max(int(max(x1 - x0, y1 - y0) * (1 + padding) * 0.5), int(side * min_crop))
        radius = max(1, min(radius, int(side * 0.5)))
        boxes.append(_square_box(int((x0 + x1) * 0.5), int((y0 + y1) * 0.5), radius, width, height))
    if len(boxes) > 1:
        limit = int(side * merge_distance)
        close = np.array([[_gap(a, b) < limit for b in boxes] for a in boxes])
        _, group = connected_components(close, directed=False)
        merged = []
        for g in np.unique(group):
            members = [boxes[i] for i in np.flatnonzero(group == g)]
            if len(members) == 1:
                merged.append(members[0])
                continue
            x0, y0 = min(b[0] for b in members), min(b[1] for b in members)
            x1, y1 = max(b[2] for b in members), max(b[3] for b in members)
            radius = min(int(np.ceil(max(x1 - x0, y1 - y0) / 2)), int(side * 0.5))
            merged.append(_square_box(int((x0 + x1) * 0.5), int((y0 + y1) * 0.5), radius, width, height))
        boxes = merged
    return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


def _cell_edges(cells: int, pixels: int) -> np.ndarray:
    return np.arange(cells + 1) * (pixels / cells)


def anomaly_crops(mask: np.ndarray, grid_map: np.ndarray, original_size: tuple[int, int], *, padding: float = 0.1,
                  min_crop: float = 0.1, merge_distance: float = 0.01, max_crops: int | None = 8) -> list[Crop]:
    """The anomaly-centred crops of one image: ``mask`` (bool, any resolution) gives the regions, ``grid_map``
    (any resolution) the peak values; both are stretched over the image of ``original_size`` = (width, height)."""
    mask = np.asarray(mask, dtype=bool)
    width, height = original_size
    labels, count = ndimage.label(mask, structure=EIGHT)
    if count == 0:
        return []
    mh, mw = mask.shape
    xs, ys = _cell_edges(mw, width), _cell_edges(mh, height)
    tight = [(int(np.floor(xs[sx.start])), int(np.floor(ys[sy.start])), int(np.ceil(xs[sx.stop])),
              int(np.ceil(ys[sy.stop]))) for sy, sx in ndimage.find_objects(labels)]
    boxes = crop_boxes(tight, original_size, padding, min_crop, merge_distance)[:max_crops]
    values = np.asarray(grid_map, dtype=np.float64)
    peak_at_mask = _resample_nearest(values, mask.shape)
    cx = (np.arange(mw) + 0.5) * width / mw
    cy = (np.arange(mh) + 0.5) * height / mh
    cell_area = width * height / (mw * mh)
    crops = []
    for box in boxes:
        inside = mask & ((cy >= box[1]) & (cy < box[3]))[:, None] & ((cx >= box[0]) & (cx < box[2]))[None, :]
        if not inside.any():  # a sliver crop whose cells' centres fall outside it: keep its cells
            continue
        rows, cols = np.nonzero(inside)
        crops.append(Crop(
            box=box,
            region_box=(int(np.floor(xs[cols.min()])), int(np.floor(ys[rows.min()])),
                        int(np.ceil(xs[cols.max() + 1])), int(np.ceil(ys[rows.max() + 1]))),
            area=float(inside.sum() * cell_area),
            area_fraction=float(inside.sum()) / (mh * mw),
            peak=float(peak_at_mask[inside].max()),
            centre=(float(cx[cols].mean() / width), float(cy[rows].mean() / height)),
        ))
    return crops


def _resample_nearest(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``values`` on a grid of ``shape`` (nearest cell centre), so a map and a mask of other sizes line up."""
    if values.shape == tuple(shape):
        return values
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * values.shape[0] / shape[0]).astype(int), values.shape[0] - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * values.shape[1] / shape[1]).astype(int), values.shape[1] - 1)
    return values[np.ix_(rows, cols)]


def crop_mask(mask: np.ndarray, original_size: tuple[int, int], box: tuple[int, int, int, int],
              grid: tuple[int, int], samples: int = 4) -> np.ndarray:
    """Share of each cell of a ``grid`` laid over the crop ``box`` that the image's ``mask`` covers, (gh, gw) in
    [0, 1]: ``samples`` x ``samples`` points per cell, each looked up in the mask (nearest cell)."""
    mask = np.asarray(mask, dtype=bool)
    width, height = original_size
    x0, y0, x1, y1 = box
    gh, gw = grid
    offsets = (np.arange(samples) + 0.5) / samples
    px = x0 + (np.arange(gw)[:, None] + offsets[None, :]).ravel() * (x1 - x0) / gw
    py = y0 + (np.arange(gh)[:, None] + offsets[None, :]).ravel() * (y1 - y0) / gh
    cols = np.clip((px * mask.shape[1] / width).astype(int), 0, mask.shape[1] - 1)
    rows = np.clip((py * mask.shape[0] / height).astype(int), 0, mask.shape[0] - 1)
    hits = mask[np.ix_(rows, cols)].astype(np.float64)
    return hits.reshape(gh, samples, gw, samples).mean(axis=(1, 3))
