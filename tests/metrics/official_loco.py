"""An independent transcription of MVTec's official MVTec LOCO AD evaluation, for tests only.

Written from reading MVTec's ``mvtec_loco_ad_evaluation`` scripts (``src/image.py``, ``src/metrics.py``,
``src/util.py``, ``src/aggregation.py``, ``evaluate_experiment.py``; authors Batzner, Bergmann, Fauser,
Sattlegger, 2022), not copied: the same computation step by step, in the same slow, threshold-by-threshold way, so
that ``zsad.metrics.spro`` (one sort, every distinct score) can be checked against it. What it keeps from the
official code, on purpose, including its quirks:

- a ground-truth map is a list of *channels*, one per PNG in ``ground_truth/<kind>/<stem>/`` (sorted), each with
  exactly one non-zero pixel value that names its defect in ``defects_config.json``; ``None`` is a good image;
- saturation area: ``int(threshold * area)`` when relative, ``min(threshold, area)`` when absolute;
- a pixel is positive at threshold ``t`` when its score is ``> t`` (strictly);
- sPRO of a channel = ``min(TP area / saturation area, 1)``; the curve's y is the mean over all channels of all
  images (optionally only those of some defect names); FP/TN areas count pixels outside every channel;
- thresholds: the maximum + 1e-6, 48 scores at equidistant indices of the sorted scores, the minimum - 1e-6, then
  ``binary_refinement`` (up to 10 steps, 20..100 new thresholds a step) between neighbours whose (sPRO, FPR)
  points are more than ``curve_max_distance`` apart; or, with ``thresholds=``, a given list. (The official
  refinement asserts that its start thresholds are distinct, so it cannot run on maps with many tied scores; the
  tests give those every distinct score, the thresholds its refinement converges to.)
- ``trapz`` with the linear interpolation at ``x_max`` and the division by ``max_fpr``;
- the AU-sPRO of logical and structural anomalies each over their images plus the good images, and their mean;
- image scores are the maxima of the maps; the classification ROC is the official loop (good scores first in
  the sort, a point only where the score changes), so a good image tied with an anomalous one counts as ranked
  below it.
"""
from __future__ import annotations

from bisect import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MAX_FPRS = (0.01, 0.05, 0.1, 0.3, 1.0)
KINDS = ("logical_anomalies", "structural_anomalies")


@dataclass
class Defect:
    name: str
    pixel_value: int
    saturation_threshold: float
    relative: bool


def defects_from_list(entries: Sequence[Mapping]) -> dict[int, Defect]:
    out = {}
    for entry in entries:
        defect = Defect(entry["defect_name"], entry["pixel_value"], entry["saturation_threshold"],
                        entry["relative_saturation"])
        assert 1 <= defect.pixel_value <= 255
        if defect.relative:
            assert isinstance(defect.saturation_threshold, float) and 0.0 < defect.saturation_threshold <= 1.0
        else:
            assert isinstance(defect.saturation_threshold, int)
        out[defect.pixel_value] = defect
    return out


@dataclass
class Channel:
    mask: np.ndarray
    defect: Defect

    def saturation_area(self) -> int:
        area = int(np.sum(self.mask))
        if self.defect.relative:
            return int(self.defect.saturation_threshold * area)
        return int(np.minimum(self.defect.saturation_threshold, area))


def channel_from_array(values: np.ndarray, defects: Mapping[int, Defect]) -> Channel:
    """One ground-truth PNG as read by PIL: exactly one positive value, the rest zero."""
    assert np.issubdtype(values.dtype, np.integer)
    unique = sorted(np.unique(values))
    if len(unique) == 1:
        value = unique[0]
    else:
        zero, value = unique
        assert zero == 0
    assert value > 0
    return Channel(values.astype(bool), defects[int(value)])


def binary(anomaly_map: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    return np.greater(anomaly_map[np.newaxis], np.asarray(thresholds, dtype=np.float64)[:, None, None])


def spros_of_image(channels: Sequence[Channel] | None, anomaly_map: np.ndarray,
                   thresholds: Sequence[float]) -> list[np.ndarray]:
    if channels is None:
        return []
    positives = binary(anomaly_map, thresholds)
    out = []
    for channel in channels:
        tp = np.sum(np.logical_and(positives, channel.mask), axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.minimum(tp / channel.saturation_area(), 1.0))
    return out


def fp_tn_of_image(channels: Sequence[Channel] | None, anomaly_map: np.ndarray,
                   thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    positives = binary(anomaly_map, thresholds)
    if channels is None:
        fp = np.sum(positives, axis=(1, 2))
        tn = np.sum(np.logical_not(positives), axis=(1, 2))
        return fp, tn
    union = np.sum([c.mask for c in channels], axis=0).astype(bool)
    fp = np.sum(np.logical_and(positives, np.logical_not(union)), axis=(1, 2))
    tn = int(np.sum(np.logical_not(union))) - fp
    return fp, tn


@dataclass
class PerThreshold:
    """Per-image values at each threshold, thresholds in descending order."""

    thresholds: np.ndarray
    spros: list[list[np.ndarray]]
    fp: list[np.ndarray]
    tn: list[np.ndarray]

    def take(self, indices: Sequence[int]) -> PerThreshold:
        return PerThreshold(self.thresholds, [self.spros[i] for i in indices], [self.fp[i] for i in indices],
                            [self.tn[i] for i in indices])


def compute(gt: Sequence[Sequence[Channel] | None], maps: Sequence[np.ndarray],
            thresholds: Sequence[float]) -> PerThreshold:
    thresholds = np.sort(np.asarray(thresholds, dtype=np.float64))[::-1]
    spros = [spros_of_image(g, m, thresholds) for g, m in zip(gt, maps)]
    fp_tn = [fp_tn_of_image(g, m, thresholds) for g, m in zip(gt, maps)]
    return PerThreshold(thresholds, spros, [f for f, _ in fp_tn], [t for _, t in fp_tn])


def fp_rates(values: PerThreshold) -> np.ndarray:
    fp = np.sum(values.fp, axis=0).astype(np.int64)
    tn = np.sum(values.tn, axis=0).astype(np.int64)
    if fp[0] + tn[0] == 0:
        raise ZeroDivisionError
    return fp / (fp + tn)


def mean_spros(gt: Sequence[Sequence[Channel] | None], values: PerThreshold,
               names: Sequence[str] | None = None) -> np.ndarray | None:
    kept = [spro for channels, spros in zip(gt, values.spros) if channels is not None
            for channel, spro in zip(channels, spros) if names is None or channel.defect.name in names]
    return np.mean(kept, axis=0) if kept else None


def trapz(x, y, x_max: float | None = None) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    correction = 0.0
    if x_max is not None:
        if x_max not in x:
            ins = bisect(x, x_max)
            assert 0 < ins < len(x)
            y_at = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
            correction = 0.5 * (y_at + y[ins - 1]) * (x_max - x[ins - 1])
        keep = x <= x_max
        x, y = x[keep], y[keep]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def auc_for_max_fpr(fprs, ys, max_fpr: float) -> float:
    assert fprs[0] == 0 and fprs[-1] == 1
    return trapz(fprs, ys, max_fpr) / max_fpr


# ----------------------------------------------------------------------------------------- threshold selection


def initial_thresholds(maps: Sequence[np.ndarray], count: int = 50, epsilon: float = 1e-6) -> list[float]:
    """The official start: max + eps, scores at equidistant indices of all sorted scores, min - eps (descending).

    The official code draws a random subset only above 10 million scores; below that its random draw is a
    permutation, sorted right after, so nothing random remains for the small inputs of the tests."""
    scores = np.sort(np.concatenate([m.ravel() for m in maps]))
    low, high = float(scores[0]), float(scores[-1])
    picks = scores[np.linspace(0, len(scores) - 1, num=count, endpoint=True, dtype=int)[1:-1]]
    return [high + epsilon] + picks.tolist()[::-1] + [low - epsilon]


def binary_refinement(queries: list, values: list, max_distance: float,
                      get_values: Callable[[list], list], min_queries: int = 20, max_queries: int = 100,
                      max_steps: int = 10) -> None:
    assert len(set(queries)) == len(queries)
    ascending = queries[0] < queries[1]
    candidates = []
    for i in range(len(queries) - 1):
        distance = float(np.linalg.norm(values[i] - values[i + 1]))
        if distance > max_distance:
            candidates.append((distance, (queries[i], queries[i + 1])))
    if not candidates or max_steps < 1:
        return
    candidates = sorted(candidates, key=lambda c: c[0], reverse=True)[:max_queries]
    remaining = max(min_queries - len(candidates), 0)
    remaining_distance = sum(d for d, _ in candidates)
    new = []
    for distance, (left, right) in candidates:
        extra = int(np.round(distance / remaining_distance * remaining))
        new.extend(np.linspace(left, right, num=2 + 1 + extra)[1:-1])
        remaining -= extra
        remaining_distance -= distance
    new_values = get_values(new)
    all_queries, all_values = list(queries) + list(new), list(values) + list(new_values)
    order = np.argsort(all_queries)
    all_queries, all_values = [all_queries[i] for i in order], [all_values[i] for i in order]
    if not ascending:
        all_queries, all_values = all_queries[::-1], all_values[::-1]
    binary_refinement(all_queries, all_values, max_distance, get_values, min_queries, max_queries, max_steps - 1)


def refined_thresholds(gt: Sequence[Sequence[Channel] | None], maps: Sequence[np.ndarray],
                       curve_max_distance: float) -> np.ndarray:
    """Every threshold the official ``MetricsAggregator.run`` evaluates (their union, descending)."""
    seen: list[float] = []

    def get_values(queries: list) -> list:
        seen.extend(float(q) for q in queries)
        values = compute(gt, maps, queries)
        spro, fpr = mean_spros(gt, values), fp_rates(values)
        by_threshold = {float(t): np.array([s, f]) for t, s, f in zip(values.thresholds, spro, fpr)}
        return [by_threshold[float(q)] for q in queries]

    start = initial_thresholds(maps)
    binary_refinement(start, get_values(start), curve_max_distance, get_values)
    return np.array(sorted(set(seen), reverse=True))


# ----------------------------------------------------------------------------------------- the protocol


def classification_auc(good: Sequence[float], anomalous: Sequence[float]) -> float:
    pairs = sorted([(s, 0) for s in good] + [(s, 1) for s in anomalous], key=lambda p: p[0])
    fprs, tprs = [1.0], [1.0]
    fp, tp = len(good), len(anomalous)
    previous = None
    for i, (score, label) in enumerate(pairs):
        if label == 0:
            fp -= 1
        else:
            tp -= 1
        if previous is None or score != previous or i == len(pairs) - 1:
            fprs.append(fp / len(good))
            tprs.append(tp / len(anomalous))
            previous = score
    return trapz(fprs[::-1], tprs[::-1])


def auc_spros(gt, maps, values: PerThreshold, indices: Sequence[int], names: Sequence[str] | None = None,
              max_fprs: Sequence[float] = MAX_FPRS) -> dict[float, float | None]:
    sub_gt = [gt[i] for i in indices]
    sub = values.take(indices)
    try:
        fprs = fp_rates(sub)
    except ZeroDivisionError:
        return dict.fromkeys(max_fprs)
    spros = mean_spros(sub_gt, sub, names)
    return {limit: auc_for_max_fpr(fprs, spros, limit) for limit in max_fprs}


def evaluate_object(gt: Sequence[Sequence[Channel] | None], maps: Sequence[np.ndarray], kinds: Sequence[str],
                    curve_max_distance: float = 0.001, thresholds: Sequence[float] | None = None,
                    max_fprs: Sequence[float] = MAX_FPRS) -> dict:
    """The official ``metrics.json`` content of one object: ``localization.auc_spro`` and
    ``classification.auc_roc``, each for logical, structural and their mean. ``kinds[i]`` is the test
    sub-folder of image i (``good``, ``logical_anomalies``, ``structural_anomalies``)."""
    if thresholds is None:
        thresholds = refined_thresholds(gt, maps, curve_max_distance)
    values = compute(gt, maps, thresholds)
    good = [i for i, k in enumerate(kinds) if k == "good"]
    auc_spro = {kind: auc_spros(gt, maps, values, [i for i, k in enumerate(kinds) if k == kind] + good,
                                max_fprs=max_fprs) for kind in KINDS}
    auc_spro["mean"] = {limit: 0.5 * (auc_spro[KINDS[0]][limit] + auc_spro[KINDS[1]][limit]) for limit in max_fprs}
    scores = [float(np.max(m)) for m in maps]
    by_kind = {kind: [s for s, k in zip(scores, kinds) if k == kind] for kind in ("good", *KINDS)}
    auc_roc = {kind: classification_auc(by_kind["good"], by_kind[kind]) for kind in KINDS}
    auc_roc["mean"] = 0.5 * (auc_roc[KINDS[0]] + auc_roc[KINDS[1]])
    return {"localization": {"auc_spro": auc_spro}, "classification": {"auc_roc": auc_roc}}


def auc_spros_per_defect_type(gt, maps, defects: Mapping[int, Defect], thresholds: Sequence[float],
                              max_fprs: Sequence[float] = MAX_FPRS) -> dict[str, dict[float, float | None]]:
    """The official ``get_auc_spros_per_defect_type`` with good images added: per defect name, the images with a
    channel of that name plus the good images; sPRO over that name's channels only, FPR over all their pixels."""
    values = compute(gt, maps, thresholds)
    out = {}
    for name in {d.name for d in defects.values()}:
        indices = [i for i, channels in enumerate(gt)
                   if channels is None or any(c.defect.name == name for c in channels)]
        out[name] = auc_spros(gt, maps, values, indices, names=[name], max_fprs=max_fprs)
    return out
