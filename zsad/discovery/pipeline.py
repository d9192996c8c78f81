"""``discover(results, backbone)``: the anomalies of a run grouped into defect types, each type named.

Steps (one module each): regions to discover (``regions``: the run's masks, else main-element binarisation;
anomaly-centred crops), region features (``features``), clustering with an estimated number of types and the
region-to-image merge (``clustering``), names (``naming``). Which images take part: those the run called anomalous,
or, with ``threshold``, those whose image score reaches it.

Results are ordered: types by the number of regions they hold (largest first), so "type 1" is the most common.
"""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from zsad.discovery.clustering import (
    DEFAULT_ESTIMATOR,
    KEstimate,
    estimate_k,
    kmeans,
    merge_regions,
    soft_assign,
)
from zsad.discovery.features import NAMING, RegionEmbedder, default_kind
from zsad.discovery.naming import (
    Namer,
    Naming,
    TypeFacts,
    apply_namer,
    distinct_phrases,
    numbered,
    phrase_similarity,
    unique_names,
    vocabulary_phrases,
)
from zsad.discovery.regions import Crop, anomaly_crops, main_element, search_range
from zsad.errors import ZsadError
from zsad.explain.regions import position_words
from zsad.results import AnomalyResult

ImageSource = Callable[[AnomalyResult], Image.Image]


@dataclass(frozen=True)
class RegionType:
    """One crop of one image and the type it was clustered into (``probability``: of that type)."""

    image: str
    crop: Crop
    type: int
    probability: float

    def to_dict(self) -> dict:
        return {"image": self.image, **asdict(self.crop), "type": self.type, "probability": self.probability}


@dataclass(frozen=True)
class ImageType:
    """One discovered image: its type (0-based index into ``Discovery.types``), the type's name, and the merged
    probability of that type (``confidence``; 1 / K means no preference)."""

    name: str
    path: str | None
    score: float | None
    type: int
    type_name: str
    confidence: float
    regions: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DefectType:
    """A discovered type. count: images of this type; regions: crops clustered into it; mean_area: mean share of
    the image its regions cover; location: the most common position of its regions, in words; named_by: who gave
    the name (``vocabulary``, ``numbered``, ``llm``, ``namer``); naming_error: why a namer's name is not used."""

    index: int
    name: str
    description: str
    count: int
    regions: int
    images: list[str]
    exemplars: list[str]
    mean_score: float | None
    location: str
    mean_area: float
    candidates: list[tuple[str, float]] = field(default_factory=list)
    named_by: str = "numbered"
    naming_error: str | None = None

    def to_dict(self) -> dict:
        record = asdict(self)
        record["candidates"] = [{"phrase": p, "similarity": round(s, 4)} for p, s in self.candidates]
        return record


@dataclass
class Discovery:
    """What ``discover`` found: the types (most regions first), each discovered image's type, each region's type,
    the K estimate, and the settings that produced them (for types.json)."""

    types: list[DefectType]
    images: list[ImageType]
    regions: list[RegionType]
    k: KEstimate
    settings: dict[str, Any]
    features: np.ndarray | None = field(default=None, repr=False)  # (n_regions, dim) what was clustered

    def by_image(self) -> dict[str, ImageType]:
        return {image.name: image for image in self.images}

    def to_dict(self) -> dict:
        return {"settings": self.settings, "k": self.k.to_dict(), "types": [t.to_dict() for t in self.types],
                "images": [i.to_dict() for i in self.images]}


def select(results: Sequence[AnomalyResult], threshold: float | None = None) -> list[AnomalyResult]:
    """The results to discover: anomalous ones, or with ``threshold`` those scoring at least that; never errors
    or results without a map."""
    chosen = []
    for result in results:
        if not result.ok or result.grid_map is None or result.original_size is None:
            continue
        if (result.score is not None and result.score >= threshold) if threshold is not None else result.is_anomalous:
            chosen.append(result)
    return chosen


def _given_mask(masks, result: AnomalyResult, position: int) -> np.ndarray | None:
    if masks is None:
        return None
    mask = masks.get(result.name) if isinstance(masks, Mapping) else masks[position]
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ZsadError(f"mask for {result.name}: expected a 2-D boolean array, got shape {mask.shape}")
    return mask.astype(bool)


def image_masks(results: Sequence[AnomalyResult], masks=None) -> list[np.ndarray]:
    """Each result's binary mask: the given one (``masks``: by result name, or aligned with ``results``) when it
    has anomalous pixels, else the main element of its grid map (range shared by the maps being binarised)."""
    given = [_given_mask(masks, r, i) for i, r in enumerate(results)]
    need = [r.grid_map for r, m in zip(results, given) if m is None or not m.any()]
    value_range = search_range(need) if need else None
    return [m if m is not None and m.any() else main_element(r.grid_map, value_range).mask
            for r, m in zip(results, given)]


def load_result(result: AnomalyResult, images: ImageSource | None = None) -> Image.Image:
    """The result's image in RGB at its original size (where crop boxes are): from ``images(result)``, else re-read
    from its path."""
    if images is not None:
        image = images(result).convert("RGB")
    elif not result.path:
        raise ZsadError(f"{result.name}: no file path to re-read the image from; pass images=callable(result)")
    else:
        from zsad.data.images import load_image

        image = load_image(result.path).image
    if result.original_size is not None and image.size != tuple(result.original_size):
        image = image.resize(tuple(result.original_size), Image.BILINEAR)
    return image


def _typical(words: list[str]) -> str:
    return Counter(words).most_common(1)[0][0] if words else ""


@dataclass
class RegionSet:
    """The embedded regions of a run, before grouping: ``group`` can be called on it again with another K or
    estimator without re-embedding. owner: index into ``images`` per crop; vectors: {feature kind: (n, dim)}."""

    images: list[AnomalyResult]
    crops: list[Crop]
    owner: np.ndarray
    vectors: dict[str, np.ndarray]
    kind: str
    settings: dict[str, Any]


def embed_regions(
    results: Sequence[AnomalyResult],
    backbone=None,
    *,
    threshold: float | None = None,
    masks: Mapping[str, np.ndarray] | Sequence[np.ndarray | None] | None = None,
    features: str = "auto",
    images: ImageSource | None = None,
    batch_size: int = 16,
    max_crops: int = 8,
) -> RegionSet:
    """Steps 1-2 of ``discover``: the regions of the selected results, cropped and embedded."""
    kind = default_kind(backbone) if features == "auto" else features
    try:
        embedder = RegionEmbedder(backbone, (kind,), batch_size=batch_size)
    except ValueError as error:
        raise ZsadError(str(error)) from None
    chosen = select(results, threshold)
    if masks is not None and not isinstance(masks, Mapping):
        if len(masks) != len(results):
            raise ZsadError(f"masks: {len(masks)} given for {len(results)} results; align them or pass a dict")
        by_identity = {id(r): m for r, m in zip(results, masks)}
        masks = [by_identity[id(r)] for r in chosen]
    owners: list[int] = []
    crops: list[Crop] = []
    kept: list[AnomalyResult] = []
    for result, mask in zip(chosen, image_masks(chosen, masks)):
        image_crops = anomaly_crops(mask, result.grid_map, result.original_size, max_crops=max_crops)
        try:
            image = load_result(result, images)
        except ZsadError as error:
            warnings.warn(f"discovery skipped {result.name}: {error}")
            continue
        embedder.add(image, mask, image_crops)
        owners += [len(kept)] * len(image_crops)
        crops += image_crops
        kept.append(result)
    settings = {"features": kind, "threshold": threshold, "backbone": None if backbone is None else backbone.name,
                "max_crops": max_crops, "selected_images": len(chosen), "regions": len(crops)}
    return RegionSet(kept, crops, np.asarray(owners, dtype=np.int64), embedder.result(), kind, settings)


def group(
    regions: RegionSet,
    backbone=None,
    *,
    types: int | None = None,
    estimator: str = DEFAULT_ESTIMATOR,
    k_max: int = 10,
    phrases: Sequence[str] = (),
    vocabulary: str | None = None,
    object_name: str = "object",
    namer: Namer | None = None,
    exemplars: int = 6,
    seed: int = 0,
) -> Discovery:
    """Steps 3-4 of ``discover``: types of the embedded regions, merged to images, named."""
    if types is not None and types < 1:
        raise ZsadError(f"types={types}: pass a number of types >= 1, or None to estimate it")
    x = regions.vectors[regions.kind]
    settings = {**regions.settings, "estimator": "fixed" if types else estimator, "k_max": k_max, "seed": seed}
    crops, kept, owner = regions.crops, regions.images, regions.owner
    if not crops:
        return Discovery([], [], [], KEstimate(0, settings["estimator"]), settings, x)
    estimate = (KEstimate(min(types, len(x)), "fixed", {}, len(x)) if types
                else estimate_k(x, estimator, k_max, seed))
    labels, centres = kmeans(x, estimate.k, seed)
    order = np.argsort(-np.bincount(labels, minlength=len(centres)), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    labels, centres = rank[labels], centres[order]
    probabilities = soft_assign(x, centres)
    area = np.array([c.area for c in crops])
    image_type, confidence, _ = merge_regions(probabilities, owner, area, len(kept))
    k = len(centres)
    names, named_by = numbered(k), "numbered"
    candidates: list[list[tuple[str, float]]] = [[] for _ in range(k)]
    if NAMING in regions.vectors and backbone is not None:
        pool = vocabulary_phrases(phrases, vocabulary)
        naming = np.stack([regions.vectors[NAMING][labels == t].mean(0) for t in range(k)])
        similarity = phrase_similarity(naming, backbone, pool, object_name)
        names, named_by = distinct_phrases(similarity, pool), "vocabulary"
        candidates = [[(pool[j], float(row[j])) for j in np.argsort(-row)[:3]] for row in similarity]
        settings["phrases"] = len(pool)
    region_types = [RegionType(kept[o].name, c, int(t), float(probabilities[i, t]))
                    for i, (o, c, t) in enumerate(zip(owner, crops, labels))]
    defect_types = []
    for t in range(k):
        members = np.flatnonzero(image_type == t)
        ranked = members[np.argsort(-confidence[members], kind="stable")]
        scores = [kept[i].score for i in members if kept[i].score is not None]
        own = [c for c, label in zip(crops, labels) if label == t]
        defect_types.append(DefectType(
            index=t, name=names[t], description="", count=len(members), regions=len(own),
            images=[kept[i].name for i in members], exemplars=[kept[i].name for i in ranked[:exemplars]],
            mean_score=float(np.mean(scores)) if scores else None,
            location=_typical([position_words(*c.centre) for c in own]),
            mean_area=float(np.mean([c.area_fraction for c in own])) if own else 0.0,
            candidates=candidates[t], named_by=named_by,
        ))
    if namer is not None:
        for item in defect_types:
            facts = TypeFacts(item.index, item.count, item.exemplars, item.mean_score, item.location, item.mean_area,
                              [r.to_dict() for r in region_types if r.type == item.index], item.candidates)
            naming = apply_namer(namer, facts, Naming(item.name, item.description, item.named_by))
            item.name, item.description, item.named_by, item.naming_error = (
                naming.name, naming.description, naming.source, naming.error)
        for item, name in zip(defect_types, unique_names([t.name for t in defect_types])):
            item.name = name
    image_records = [
        ImageType(r.name, r.path, r.score, int(image_type[i]), defect_types[image_type[i]].name,
                  float(confidence[i]), int((owner == i).sum()))
        for i, r in enumerate(kept) if image_type[i] >= 0
    ]
    return Discovery(defect_types, image_records, region_types, estimate, settings, x)


def discover(
    results: Sequence[AnomalyResult],
    backbone=None,
    *,
    types: int | None = None,
    threshold: float | None = None,
    masks: Mapping[str, np.ndarray] | Sequence[np.ndarray | None] | None = None,
    features: str = "auto",
    estimator: str = DEFAULT_ESTIMATOR,
    k_max: int = 10,
    phrases: Sequence[str] = (),
    vocabulary: str | None = None,
    object_name: str = "object",
    namer: Namer | None = None,
    images: ImageSource | None = None,
    batch_size: int = 16,
    max_crops: int = 8,
    exemplars: int = 6,
    seed: int = 0,
) -> Discovery:
    """Group the anomalies of ``results`` into defect types (see the module doc).

    backbone: the run's backbone (``zsad.backbones.load_backbone``); None clusters colour histograms only.
    types: fix the number of types instead of estimating it (``estimator`` over 2 .. ``k_max``).
    masks: binary masks to use instead of main-element binarisation, by result name or aligned with ``results``.
    features: ``auto`` (CLIP: projected, DINOv2: tokens), ``projected``, ``tokens`` or ``colour``.
    phrases: the user's defect phrases, added to the vocabulary's for naming (CLIP only).
    namer: a callable ``TypeFacts -> (name, description)`` (e.g. an LLM) that overrides the phrase names.
    images: ``result -> PIL image`` when results have no readable ``path``.
    """
    if types is not None and types < 1:
        raise ZsadError(f"types={types}: pass a number of types >= 1, or None to estimate it")
    regions = embed_regions(results, backbone, threshold=threshold, masks=masks, features=features, images=images,
                            batch_size=batch_size, max_crops=max_crops)
    return group(regions, backbone, types=types, estimator=estimator, k_max=k_max, phrases=phrases,
                 vocabulary=vocabulary, object_name=object_name, namer=namer, exemplars=exemplars, seed=seed)
