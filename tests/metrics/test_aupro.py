"""AUPRO against a deliberately naive implementation, hand-derived values, and the 200-threshold variant."""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from sklearn.metrics import auc

from zsad.metrics import aupro, pixel_metrics


def flood_fill_regions(mask: np.ndarray, diagonal: bool = True) -> list[np.ndarray]:
    """Connected components by breadth-first search (independent of scipy): a list of boolean region masks."""
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if diagonal:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    seen = np.zeros_like(mask, dtype=bool)
    regions = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        region = np.zeros_like(mask, dtype=bool)
        queue = deque([start])
        seen[start] = True
        while queue:
            r, c = queue.popleft()
            region[r, c] = True
            for dr, dc in steps:
                rr, cc = r + dr, c + dc
                if 0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1] and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    queue.append((rr, cc))
        regions.append(region)
    return regions


def naive_aupro(
    maps: list[np.ndarray], masks: list[np.ndarray], fpr_limit: float = 0.3, diagonal: bool = True
) -> float:
    """Every distinct score as a threshold, overlaps counted directly, trapezoid, interpolation at the limit."""
    regions = [(i, r) for i, m in enumerate(masks) for r in flood_fill_regions(m, diagonal)]
    n_neg = sum(int((~m).sum()) for m in masks)
    thresholds = np.unique(np.concatenate([m.ravel() for m in maps]))[::-1]
    fprs, pros = [0.0], [0.0]  # threshold above the maximum: nothing predicted
    for t in thresholds:
        predicted = [m >= t for m in maps]
        pros.append(np.mean([predicted[i][r].sum() / r.sum() for i, r in regions]))
        fprs.append(sum(int((p & ~m).sum()) for p, m in zip(predicted, masks)) / n_neg)
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs <= fpr_limit
    x, y = fprs[keep], pros[keep]
    if x[-1] < fpr_limit:
        j = int(keep.sum())  # first point beyond the limit
        y_lim = pros[j - 1] + (pros[j] - pros[j - 1]) * (fpr_limit - fprs[j - 1]) / (fprs[j] - fprs[j - 1])
        x, y = np.append(x, fpr_limit), np.append(y, y_lim)
    return float(np.trapezoid(y, x) / fpr_limit)


def variant_200(maps: np.ndarray, masks: np.ndarray, steps: int = 200, limit: float = 0.3) -> float:
    """The research-repo variant: equally spaced thresholds, strict '>', FPR < limit min-max rescaled to [0, 1]."""
    regions = [(i, r) for i, m in enumerate(masks) for r in flood_fill_regions(m)]
    lo, hi = maps.min(), maps.max()
    fprs, pros = [], []
    for t in np.arange(lo, hi, (hi - lo) / steps):
        predicted = maps > t
        pros.append(np.mean([predicted[i][r].mean() for i, r in regions]))
        fprs.append((predicted & ~masks).sum() / (~masks).sum())
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs < limit
    x = fprs[keep]
    x = (x - x.min()) / (x.max() - x.min())
    return float(auc(x, pros[keep]))


def random_case(seed: int, quantise: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    masks = [np.zeros((10, 12), dtype=bool) for _ in range(4)]
    masks[0][1:4, 1:5] = True  # a block ...
    masks[0][4, 5] = True  # ... with a pixel touching it only diagonally (same 8-connected region)
    masks[0][7:9, 8:11] = True  # a second region
    masks[1][2, 2] = masks[1][3, 3] = masks[1][4, 4] = True  # a diagonal line: one region of 3
    masks[1][6:9, 1] = True
    masks[2] = rng.random((10, 12)) < 0.12  # scattered pixels, many small regions
    # masks[3] is empty: a normal image, only negatives
    maps = [rng.normal(size=m.shape) + 1.5 * m for m in masks]
    if quantise:
        maps = [np.round(m * 2) / 2 for m in maps]  # heavy ties, across classes and regions
    return [m.astype(np.float32) for m in maps], masks


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("quantise", [False, True])
def test_aupro_matches_naive(seed: int, quantise: bool) -> None:
    maps, masks = random_case(seed, quantise)
    expected = naive_aupro(maps, masks)
    assert aupro(maps, masks) == pytest.approx(expected, abs=1e-9)
    assert pixel_metrics(np.stack(maps), np.stack(masks))["aupro"] == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("limit", [0.05, 0.3, 1.0])
def test_aupro_other_limits_match_naive(limit: float) -> None:
    maps, masks = random_case(4, quantise=False)
    assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(naive_aupro(maps, masks, limit), abs=1e-9)


def test_regions_are_8_connected() -> None:
    # Three defect pixels: (0,0) touches (1,1) only diagonally, (1,1)-(1,2) share an edge.
    mask = np.zeros((6, 6), dtype=bool)
    mask[0, 0] = mask[1, 1] = mask[1, 2] = True
    score = np.linspace(0.0, 0.5, 36).reshape(6, 6).astype(np.float32)
    score[0, 0], score[1, 1], score[1, 2] = 1.0, 0.0, 0.0  # only the corner pixel is found early
    eight = naive_aupro([score], [mask], diagonal=True)
    four = naive_aupro([score], [mask], diagonal=False)
    assert abs(eight - four) > 0.05  # the test case separates the two connectivities
    assert aupro([score], [mask]) == pytest.approx(eight, abs=1e-9)


def test_perfect_map_gives_one() -> None:
    _, masks = random_case(0, quantise=False)
    maps = [m.astype(np.float32) for m in masks]
    assert aupro(maps, masks) == 1.0


def test_constant_map_gives_half_the_limit() -> None:
    # One threshold only: above it nothing is predicted (0, 0); at it everything is, (FPR 1, PRO 1). The curve is
    # the diagonal PRO = FPR, whose area up to L is L^2 / 2; divided by L: L / 2, i.e. 0.15 for L = 0.3.
    _, masks = random_case(1, quantise=False)
    maps = [np.full(m.shape, 0.7, dtype=np.float32) for m in masks]
    assert aupro(maps, masks) == pytest.approx(0.15, abs=1e-12)
    assert aupro(maps, masks, fpr_limit=0.1) == pytest.approx(0.05, abs=1e-12)


def test_200_threshold_variant_is_biased() -> None:
    # 40 % of the normal pixels (and half of each defect) share a narrow score band [1.0, 1.004], narrower than
    # one of the 200 equal steps over the map's range [0, 3]. The exact curve resolves the band: FPR sweeps from
    # 0.1 to 0.5 while PRO rises. The variant jumps over it, keeps only its samples with FPR <= 0.1, and rescales
    # those to [0, 1], i.e. it reports the mean PRO below FPR 0.1 instead of below 0.3.
    rng = np.random.default_rng(0)
    _, mask_list = random_case(2, quantise=False)
    masks = np.stack(mask_list)
    u = rng.random(masks.shape)
    normal = np.select(
        [u < 0.5, u < 0.9],
        [rng.uniform(0.0, 0.5, masks.shape), rng.uniform(1.0, 1.004, masks.shape)],
        rng.uniform(2.0, 2.5, masks.shape),
    )
    high = rng.random(masks.shape) < 0.5
    defect = np.where(high, rng.uniform(2.0, 3.0, masks.shape), rng.uniform(1.0, 1.004, masks.shape))
    maps = np.where(masks, defect, normal).astype(np.float32)
    exact = aupro(maps, masks)
    assert exact == pytest.approx(naive_aupro(list(maps), mask_list), abs=1e-9)
    assert variant_200(maps, masks) < exact - 0.1
