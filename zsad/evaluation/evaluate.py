"""Running a detector over a labelled data set: per-image records, per-category metrics, run description.

``evaluate`` computes and returns data; it prints nothing and writes no file (``save_run`` and the CLI do).

Protocol: the test split of every category; with ``shots`` = k > 0, k good images per category from the train
split in fixed reference lists (given, or drawn with each seed and recorded in the run). One detection call per
category and seed, so the verdict threshold and mutual scoring see the category's whole test batch, as in the
papers. What is scored and shown as normal is fixed and checked first (``zsad.evaluation.plan``): every list with
its files (``description["reference_lists"]``), every file with its sha256 (``description["reference_files"]``),
and a run whose references are test images (same path or same bytes) is refused.

Averaging, as the benchmarks' official evaluations do (``tests/evaluation/test_official_averaging.py`` compares
with transcriptions of them): each metric per category (MVTec AD, VisA, MPDD, BTAD: AnomalyCLIP's ``test.py``;
Real-IAD: ADEval per object), then the plain mean over categories (``MetricTable``).

Pixel metrics are computed at each image's original resolution against its mask, category by category: the
full-size maps of one category exist only while its metrics are computed (``AnomalyResult.anomaly_map`` is
computed on read from the grid map), so memory is bounded by the largest category, not the data set. A category
reports pooled pixel metrics only when every anomalous image has a mask (otherwise the note says whether none or
only some have one).

Beside the pooled table, each run has
- per defect type (``EvaluationRun.defect_tables``, category -> rows by ``Sample.defect``): I-AUROC of that type's
  images against the good images, and P-AUROC / AUPRO over that type's images plus the good ones (the MVTec AD and
  VisA papers' per-type breakdown: the good images are the negatives of every type). Pixel columns appear when
  every image of the type has a mask; anomalous images without a defect type are in no row. NaN cells (e.g. no
  good image) are left to the table's "n/a" without a note, so that notes stay about the pooled numbers;
- for MVTec LOCO AD (``dataset="mvtec_loco"``), the official protocol (``EvaluationRun.protocol_tables``, see
  ``zsad.metrics.spro``): logical and structural anomalies apart and their mean, I-AUROC and AU-sPRO with the
  saturation thresholds of each category's ``defects_config.json``.
Both are means over seeds, like ``table``.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsad.data.layouts.base import load_sample_mask
from zsad.errors import ZsadError
from zsad.evaluation.environment import describe_detector, jsonable, versions
from zsad.evaluation.loco import loco_category
from zsad.evaluation.plan import EvaluationPlan, plan_evaluation
from zsad.evaluation.references import ReferenceLists
from zsad.evaluation.run import EvaluationRun, ImageRecord, mean_table
from zsad.metrics import MetricTable, UndefinedMetricWarning, image_metrics, pixel_metrics
from zsad.metrics.spro import LOCO_KINDS, MEAN_KIND, OFFICIAL_LIMITS


def object_name_for(category: str) -> str:
    """Prompt object name of a category: ``metal_nut`` -> ``metal nut``; numbered categories (BTAD) -> ``object``."""
    name = category.replace("_", " ").replace("-", " ").strip()
    return "object" if not name or name.isdigit() else name


def evaluate(
    detector,
    dataset: str | None = None,
    root: str | Path | None = None,
    categories: Iterable[str] | None = None,
    shots: int = 0,
    seeds: Sequence[int] = (0,),
    references: ReferenceLists | str | Path | None = None,
    object_name: str | None = None,
    progress: bool = False,
    dataset_options: dict[str, Any] | None = None,
    fpr_limit: float = 0.3,
    seed: int | None = None,
    good_images=None,
    *,
    spro_limits: Sequence[float] = OFFICIAL_LIMITS,
    plan: EvaluationPlan | None = None,
) -> EvaluationRun:
    """Evaluate ``detector`` on the test split of ``dataset`` (a ``zsad.data.layouts`` name) at ``root``.

    shots: k good training images per category as references (0: zero-shot), drawn from the train split.
    seeds: one pass per seed; in k-shot runs each seed has its own reference list. ``seed`` (one int) is kept
        for callers of the earlier signature.
    references: reference lists (object or JSON file from ``save_reference_lists``) to use instead of drawing;
        they must have been drawn for this data set and root.
    good_images: the same good reference images (paths, folders, a saved memory) for every category, instead of
        k-shot draws (``zsad eval --references``); not combinable with ``shots``.
    spro_limits: the FPR limits of MVTec LOCO AD's AU-sPRO (``dataset="mvtec_loco"`` only).
    plan: an ``EvaluationPlan`` made beforehand (``zsad eval`` plans before it loads the model); it replaces the
        data and reference arguments.
    """
    started = time.time()
    if plan is None:
        if dataset is None or root is None:
            raise ZsadError("evaluate needs a dataset and a root, or a plan from plan_evaluation")
        plan = plan_evaluation(dataset, root, categories, shots, (seed,) if seed is not None else seeds, references,
                               dataset_options, good_images)
    records: list[ImageRecord] = []
    tables: dict[int, MetricTable] = {}
    defect_tables: dict[int, dict[str, MetricTable]] = {}
    protocol_tables: dict[int, dict[str, MetricTable]] = {}
    notes: dict[str, str] = {}
    postprocess: dict[str, Any] | None = None
    loco = plan.dataset == "mvtec_loco"
    for current in plan.seeds:
        table = MetricTable()
        defect_tables[current] = {}
        protocol = {kind: MetricTable() for kind in (*LOCO_KINDS, MEAN_KIND)} if loco else {}
        for category, samples in plan.samples.items():
            results = _detect(detector, samples, plan.references(category, current),
                              object_name or object_name_for(category), progress, current)
            if postprocess is None:
                postprocess = next((jsonable(r.postprocess) for r in results
                                    if r.ok and r.postprocess is not None), None)
            records += [_record(category, current, s, r) for s, r in zip(samples, results)]
            outcome = _category_metrics(samples, results, fpr_limit, plan.root / category if loco else None,
                                        spro_limits)
            if outcome.note:
                notes[category if len(plan.seeds) == 1 else f"{category} (seed {current})"] = outcome.note
            if outcome.metrics is not None:
                table.add(category, outcome.metrics)
            if outcome.defects:
                defect_tables[current][category] = MetricTable(outcome.defects)
            for kind, row in (outcome.protocol or {}).items():
                protocol[kind].add(category, row)
        tables[current] = table
        protocol_tables[current] = protocol

    description = {
        **plan.describe(),
        "object_name": object_name,
        "evidence": sorted({name for r in records if r.ok for name in r.evidence}),
        "detector": describe_detector(detector),
        "versions": versions(),
        "fpr_limit": fpr_limit,
        "n_images": len(records),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 3),
    }
    categories_seen = list(dict.fromkeys(c for by_category in defect_tables.values() for c in by_category))
    return EvaluationRun(
        records=records, table=mean_table(tables), tables=tables, description=description, notes=notes,
        postprocess=postprocess,
        defect_tables={c: mean_table({s: t[c] for s, t in defect_tables.items() if c in t}) for c in categories_seen},
        protocol_tables={kind: mean_table({s: t[kind] for s, t in protocol_tables.items()})
                         for kind in (*LOCO_KINDS, MEAN_KIND)} if loco else {},
    )


def _detect(detector, samples, references, object_name: str, progress: bool, seed: int):
    import torch

    with torch.random.fork_rng(devices=[]):  # seeded, without changing the caller's random state
        torch.manual_seed(seed)
        results = detector.detect([s.path for s in samples], references=references, object_name=object_name,
                                  progress=progress)
    if len(results) != len(samples):
        raise ZsadError(f"detector returned {len(results)} results for {len(samples)} images")
    return results


def _record(category: str, seed: int, sample, result) -> ImageRecord:
    size = result.original_size
    return ImageRecord(
        category=category,
        seed=seed,
        path=str(sample.path),
        label=sample.label,
        defect=sample.defect,
        mask_path=None if sample.mask_path is None else str(sample.mask_path),
        score=None if result.score is None else float(result.score),
        is_anomalous=result.is_anomalous,
        threshold=None if result.threshold is None else float(result.threshold),
        threshold_rule=result.threshold_rule,
        verdict_rule=result.threshold_name,
        certainty=dict(result.certainty),
        p_value=result.p_value,
        mask_rule=result.mask_rule,
        evidence={name: item.to_dict() for name, item in result.evidence.items()},
        original_size=None if size is None else (int(size[0]), int(size[1])),
        error=result.error,
        grid_map=None if result.grid_map is None else np.asarray(result.grid_map, dtype=np.float32),
    )


@dataclass
class _CategoryOutcome:
    metrics: dict[str, float] | None
    note: str = ""
    defects: dict[str, dict[str, float]] = field(default_factory=dict)
    protocol: dict[str, dict[str, float]] | None = None


def _category_metrics(samples, results, fpr_limit: float, loco_dir: Path | None = None,
                      spro_limits: Sequence[float] = OFFICIAL_LIMITS) -> _CategoryOutcome:
    kept = [(s, r) for s, r in zip(samples, results) if r.ok]
    skipped = len(samples) - len(kept)
    notes = [f"{skipped} image(s) could not be scored and are left out"] if skipped else []
    if not kept:
        return _CategoryOutcome(None, "no image could be scored")
    labels = np.array([s.label for s, _ in kept])
    scores = np.array([r.score for _, r in kept], dtype=np.float64)
    anomalous = [s for s, _ in kept if s.label == 1]
    with_mask = sum(s.mask_path is not None for s in anomalous)
    maps = masks = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UndefinedMetricWarning)
        metrics = image_metrics(scores, labels)
        if with_mask or not anomalous:
            maps = [r.anomaly_map for _, r in kept]  # full-size maps of this category only
            masks = [None if s.label == 1 and s.mask_path is None
                     else load_sample_mask(s.mask_path, (m.shape[1], m.shape[0])) for (s, _), m in zip(kept, maps)]
        metrics.update(_verdict_metrics(kept, labels, notes))
        if with_mask == len(anomalous):
            metrics.update(pixel_metrics(maps, masks, fpr_limit=fpr_limit))
            metrics.update(_mask_metrics([r for _, r in kept], masks))
        elif with_mask:
            notes.append(f"pixel metrics skipped: {len(anomalous) - with_mask} of {len(anomalous)} anomalous images "
                         "have no mask")
        else:
            notes.append("pixel metrics skipped: no masks")
        protocol = None
        if loco_dir is not None:
            protocol, loco_note = loco_category([s for s, _ in kept], scores, maps if with_mask == len(anomalous)
                                                else None, loco_dir, spro_limits)
            notes += [loco_note] if loco_note else []
    notes += [str(w.message) for w in caught if issubclass(w.category, UndefinedMetricWarning)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        defects = defect_type_metrics(labels, [s.defect for s, _ in kept], scores, maps, masks, fpr_limit)
    return _CategoryOutcome(metrics, "; ".join(notes), defects, protocol)


def _verdict_metrics(kept, labels: np.ndarray, notes: list[str]) -> dict[str, float]:
    """Verdict F1, false-alarm and miss rates when every scored image has a verdict (else a note)."""
    from zsad.metrics.decisions import verdict_metrics

    undecided = sum(r.is_anomalous is None for _, r in kept)
    if undecided:
        notes.append(f"verdict metrics skipped: {undecided} image(s) without a verdict")
        return {}
    found = verdict_metrics([r.is_anomalous for _, r in kept], labels)
    return {"verdict_f1": found["f1"], "false_alarm_rate": found["false_alarm_rate"], "miss_rate": found["miss_rate"]}


def _mask_metrics(results, masks) -> dict[str, float]:
    """Pooled IoU and pixel F1 of the masks the results show (nearest-neighbour on each image's full size) against
    the ground truth (good images: all-background masks)."""
    from PIL import Image

    from zsad.metrics.decisions import mask_f1, mask_iou

    if any(r.shown_mask() is None for r in results):
        return {}
    shown = [np.asarray(Image.fromarray(r.shown_mask().astype(np.uint8) * 255).resize(m.shape[::-1], Image.NEAREST))
             > 0 for r, m in zip(results, masks)]
    pred = np.concatenate([s.ravel() for s in shown])
    truth = np.concatenate([np.asarray(m).ravel() > 0 for m in masks])
    return {"mask_iou": mask_iou(pred, truth), "mask_f1": mask_f1(pred, truth)}


def defect_type_metrics(labels: Sequence[int], defects: Sequence[str | None], scores: Sequence[float],
                        maps: Sequence[np.ndarray] | None = None, masks: Sequence[np.ndarray | None] | None = None,
                        fpr_limit: float = 0.3) -> dict[str, dict[str, float]]:
    """Per defect type d (in name order): ``i_auroc`` of d's images against the good images; ``p_auroc`` and
    ``aupro`` over d's images plus the good images when ``maps``/``masks`` are given and every one of those images
    has a mask (``masks[i]`` None: no mask). Anomalous images without a type (``defects[i]`` None) are in no row."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    good = [i for i, y in enumerate(labels) if y == 0]
    out: dict[str, dict[str, float]] = {}
    for defect in sorted({d for d, y in zip(defects, labels) if y == 1 and d is not None}):
        chosen = [i for i, (d, y) in enumerate(zip(defects, labels)) if y == 1 and d == defect] + good
        row = {"i_auroc": image_metrics(scores[chosen], labels[chosen])["i_auroc"]}
        if maps is not None and masks is not None and all(masks[i] is not None for i in chosen):
            pixel = pixel_metrics([maps[i] for i in chosen], [masks[i] for i in chosen], fpr_limit=fpr_limit)
            row.update(p_auroc=pixel["p_auroc"], aupro=pixel["aupro"])
        out[defect] = row
    return out
