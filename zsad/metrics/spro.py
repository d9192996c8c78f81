"""MVTec LOCO AD's protocol: the area under the sPRO curve (saturated per-region overlap), logical and structural
anomalies evaluated apart, and their official averaging.

Definition (Bergmann et al., "Beyond Dents and Scratches", IJCV 2022, and MVTec's official evaluation scripts
``mvtec_loco_ad_evaluation``; ``tests/metrics/official_loco.py`` transcribes them and the tests compare)
------------------------------------------------------------------------------------------------------------------
- The ground truth of an anomalous image is one or more *defect regions*, one PNG each in
  ``ground_truth/<kind>/<stem>/``, whose single non-zero grey value names a defect type of the category's
  ``defects_config.json``. A region is taken as annotated: it is not split into connected components (a missing
  group of pushpins is one defect), and two regions may overlap.
- Each defect type has a saturation threshold: absolute (pixels), saturation area ``s = min(threshold, area)``; or
  relative, ``s = int(threshold * area)`` (floored, as the official code does).
- sPRO of a region at threshold ``t`` = ``min(TP_t / s, 1)``: a region counts as fully found once ``s`` of its
  pixels are; a logical anomaly (a missing object) need not be painted over its whole area.
- The curve: mean sPRO over all regions of all images against the FPR over the pixels outside every region of all
  images (good images included). It starts at (0, 0), ends at (1, 1), is integrated with the trapezoid rule up to
  each FPR limit (interpolated linearly at the limit) and divided by the limit. Official limits: 0.01, 0.05, 0.1,
  0.3 and 1.0; papers usually quote AU-sPRO up to 0.05.
- The protocol of one category: for each kind (``logical_anomalies``, ``structural_anomalies``) the AU-sPRO over
  that kind's images plus the good test images, and the image AUROC of that kind's images against the good ones;
  the category's "mean" is ``0.5 * (logical + structural)``, and a benchmark number is the mean over categories.

Decisions
---------
- Exact over every distinct score. The official script samples thresholds (50 at equal score quantiles, then up to
  10 rounds of bisection where neighbouring curve points are more than ``curve_max_distance`` apart): an
  approximation of this curve, which it reaches when every step of the curve is sampled. It counts a pixel
  positive at ``score > t`` and zsad at ``score >= t``; both give the same set of operating points (all pixels
  scoring at least some distinct score), so the same curve.
- One sort (``zsad.metrics.curves``): within a region, the ``s`` highest-scoring pixels carry weight ``1 / s`` and
  the others 0, so the weights of the pixels above any threshold sum to ``min(TP / s, 1)`` (tied pixels enter
  together, whatever their order); a pixel in two regions enters once per region.
- Image AUROC uses the detector's image scores and scikit-learn's definition (ties count half). The official script
  can only score an image by its map's maximum, and its ROC loop ranks a good image tied with an anomalous one
  below it; with no such tie the two agree.
- A region whose saturation area is 0 (a relative threshold times a tiny area) makes the official code divide by
  zero; here it is a ``MetricInputError`` that names the defect type, so it is fixed in the configuration.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zsad.metrics import curves
from zsad.metrics._inputs import MetricInputError, UndefinedMetricWarning, as_scores, check_no_nan
from zsad.metrics.image import image_metrics
from zsad.metrics.pixel import _check_limit

OFFICIAL_LIMITS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.3, 1.0)
LOCO_KINDS: tuple[str, str] = ("logical_anomalies", "structural_anomalies")
MEAN_KIND = "mean"


def spro_key(limit: float) -> str:
    """Table key of the AU-sPRO up to ``limit``: ``au_spro@0.05``."""
    return f"au_spro@{float(limit):g}"


@dataclass(frozen=True)
class DefectType:
    """One entry of a category's ``defects_config.json``."""

    name: str
    pixel_value: int
    saturation_threshold: float
    relative: bool

    def saturation_area(self, area: int) -> int:
        """Pixels of a region of ``area`` pixels that count as finding all of it."""
        if self.relative:
            return int(self.saturation_threshold * area)
        return int(min(self.saturation_threshold, area))


def defect_types(entries: Iterable[Mapping[str, Any]], where: str = "defects_config.json") -> dict[int, DefectType]:
    """``{pixel value: DefectType}`` from the parsed entries of a ``defects_config.json`` (a list of objects with
    ``defect_name``, ``pixel_value``, ``saturation_threshold``, ``relative_saturation``)."""
    out: dict[int, DefectType] = {}
    for number, entry in enumerate(entries):
        try:
            name, value = str(entry["defect_name"]), entry["pixel_value"]
            threshold, relative = entry["saturation_threshold"], entry["relative_saturation"]
        except (KeyError, TypeError):
            raise MetricInputError(
                f"{where}: entry {number} needs defect_name, pixel_value, saturation_threshold and "
                "relative_saturation (the MVTec LOCO AD format)"
            ) from None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
            raise MetricInputError(f"{where}: {name}: pixel_value {value!r} is not an integer in 1..255")
        if not isinstance(relative, bool):
            raise MetricInputError(f"{where}: {name}: relative_saturation {relative!r} is not true/false")
        if relative and not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 1.0):
            raise MetricInputError(f"{where}: {name}: a relative saturation_threshold must lie in (0, 1], got "
                                   f"{threshold!r}")
        if not relative and not (isinstance(threshold, int) and not isinstance(threshold, bool) and threshold > 0):
            raise MetricInputError(f"{where}: {name}: an absolute saturation_threshold is a pixel count > 0, got "
                                   f"{threshold!r}")
        if value in out:
            raise MetricInputError(f"{where}: pixel_value {value} is given to both {out[value].name!r} and "
                                   f"{name!r}; each defect type needs its own grey value")
        out[value] = DefectType(name, value, float(threshold) if relative else int(threshold), relative)
    return out


@dataclass(frozen=True)
class DefectRegion:
    """One annotated defect of an image: its pixels (bool [H, W]) and its defect type."""

    mask: np.ndarray
    defect: DefectType

    @property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask))

    def saturation_area(self) -> int:
        return self.defect.saturation_area(self.area)


def _pool(maps: Sequence[Any], regions: Sequence[Sequence[DefectRegion]], names: Iterable[str] | None):
    """Positive entries (one per region pixel) with their sPRO weights, and the scores outside every region."""
    if len(maps) != len(regions):
        raise MetricInputError(f"got {len(maps)} maps but {len(regions)} region lists; pass one list per map "
                               "(empty for a good image)")
    wanted = None if names is None else set(names)
    pos, weights, neg = [], [], []
    for i, (raw, image_regions) in enumerate(zip(maps, regions)):
        m = as_scores(raw, f"maps[{i}]")
        if m.ndim != 2:
            raise MetricInputError(f"maps[{i}] has shape {m.shape}, expected [H, W]")
        check_no_nan(m, f"maps[{i}]")
        union = np.zeros(m.shape, dtype=bool)
        for j, region in enumerate(image_regions):
            mask = np.asarray(region.mask, dtype=bool)
            if mask.shape != m.shape:
                raise MetricInputError(f"region {j} of image {i} has shape {mask.shape}, its map {m.shape}; "
                                       "compute maps at the ground truth's resolution")
            area = int(np.count_nonzero(mask))
            if area == 0:
                raise MetricInputError(f"region {j} of image {i} ({region.defect.name}) is empty; a ground-truth "
                                       "region needs at least one pixel")
            union |= mask
            if wanted is not None and region.defect.name not in wanted:
                continue
            saturation = region.defect.saturation_area(area)
            if saturation < 1:
                raise MetricInputError(
                    f"region {j} of image {i}: defect type {region.defect.name!r} has a saturation area of 0 "
                    f"({region.defect.saturation_threshold} x {area} pixels); raise its saturation_threshold"
                )
            scores = m[mask]
            w = np.zeros(scores.size, dtype=np.float64)
            w[np.argsort(scores, kind="stable")[::-1][:saturation]] = 1.0 / saturation
            pos.append(scores)
            weights.append(w)
        neg.append(m[~union])
    dtype = np.result_type(*[p.dtype for p in pos + neg]) if pos or neg else np.float64
    join = lambda parts, t: np.concatenate(parts).astype(t, copy=False) if parts else np.zeros(0, t)  # noqa: E731
    return join(pos, dtype), join(weights, np.float64), join(neg, dtype)


def spro_curve(maps: Sequence[Any], regions: Sequence[Sequence[DefectRegion]],
               names: Iterable[str] | None = None) -> curves.RankingCurve | None:
    """The sPRO-vs-FPR curve at every distinct score (``RankingCurve.pro`` is the mean sPRO), or None with an
    ``UndefinedMetricWarning`` when there is no region or no pixel outside the regions.

    ``names``: only regions of these defect types count for sPRO; the FPR still excludes every region's pixels
    (the official per-defect-type evaluation).
    """
    pos, weights, neg = _pool(maps, regions, names)
    if pos.size == 0 or neg.size == 0:
        what = "no defect region" if pos.size == 0 else "no pixel outside the defect regions"
        warnings.warn(f"{what}; AU-sPRO is NaN", UndefinedMetricWarning, stacklevel=3)
        return None
    return curves.ranking_curve(pos, neg, weights)


def au_spro(maps: Sequence[Any], regions: Sequence[Sequence[DefectRegion]],
            limits: Sequence[float] = OFFICIAL_LIMITS, names: Iterable[str] | None = None) -> dict[float, float]:
    """``{limit: normalised area under the sPRO curve up to FPR = limit}`` (1.0 is a perfect map).

    maps: one [H, W] score map per image (higher = more anomalous); regions: per image its ``DefectRegion`` list
    (empty for a good image). NaN for every limit when the curve is undefined (see ``spro_curve``).
    """
    limits = [_check_limit(limit) for limit in limits]
    curve = spro_curve(maps, regions, names)
    if curve is None:
        return dict.fromkeys(limits, math.nan)
    return {limit: curves.pro_area(curve, limit) for limit in limits}


def loco_metrics(scores: Sequence[float], maps: Sequence[Any] | None,
                 regions: Sequence[Sequence[DefectRegion]] | None, kinds: Sequence[str | None],
                 limits: Sequence[float] = OFFICIAL_LIMITS) -> dict[str, dict[str, float]]:
    """One category's MVTec LOCO AD table: ``{"logical_anomalies": row, "structural_anomalies": row, "mean": row}``
    with row keys ``i_auroc`` and ``au_spro@<limit>``.

    kinds[i]: the test sub-folder of image i (``good`` or None for a good image, or one of ``LOCO_KINDS``).
    ``maps``/``regions`` None: image AUROC only, AU-sPRO NaN (no ground truth to compare maps with). A kind without
    images gives NaN (with a warning), and so does the mean.
    """
    n = len(scores)
    if len(kinds) != n or (maps is not None and len(maps) != n) or (regions is not None and len(regions) != n):
        raise MetricInputError(f"got {n} scores, {len(kinds)} kinds, {'no' if maps is None else len(maps)} maps "
                               f"and {'no' if regions is None else len(regions)} region lists; pass one per image")
    unknown = sorted({str(k) for k in kinds if k not in (None, "good", *LOCO_KINDS)})
    if unknown:
        raise MetricInputError(f"unknown LOCO image kind(s) {unknown}; use good, {', '.join(LOCO_KINDS)}")
    good = [i for i, k in enumerate(kinds) if k in (None, "good")]
    table: dict[str, dict[str, float]] = {}
    for kind in LOCO_KINDS:
        chosen = [i for i, k in enumerate(kinds) if k == kind] + good
        labels = np.array([0 if kinds[i] in (None, "good") else 1 for i in chosen], dtype=np.int64)
        chosen_scores = np.asarray([scores[i] for i in chosen], dtype=np.float64)
        row = {"i_auroc": image_metrics(chosen_scores, labels)["i_auroc"] if chosen else math.nan}
        areas: dict[float, float] = {}
        if chosen and maps is not None and regions is not None:
            areas = au_spro([maps[i] for i in chosen], [regions[i] for i in chosen], limits)
        row.update({spro_key(limit): areas.get(float(limit), math.nan) for limit in limits})
        table[kind] = row
    table[MEAN_KIND] = {key: 0.5 * (table[LOCO_KINDS[0]][key] + table[LOCO_KINDS[1]][key])
                        for key in table[LOCO_KINDS[0]]}
    return table


def au_spro_per_defect_type(maps: Sequence[Any], regions: Sequence[Sequence[DefectRegion]],
                            limits: Sequence[float] = OFFICIAL_LIMITS) -> dict[str, dict[float, float]]:
    """Per defect type (by name): the AU-sPRO over the images holding a region of that type plus the good images
    (no region), sPRO over that type's regions only, FPR over all their pixels outside any region (the official
    ``get_auc_spros_per_defect_type`` with good images added)."""
    names = sorted({r.defect.name for image in regions for r in image})
    out = {}
    for name in names:
        chosen = [i for i, image in enumerate(regions) if not image or any(r.defect.name == name for r in image)]
        out[name] = au_spro([maps[i] for i in chosen], [regions[i] for i in chosen], limits, names=[name])
    return out
