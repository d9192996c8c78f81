"""Running a detector over a labelled data set: per-image records, per-category metrics, run description.

``evaluate`` computes and returns data; it prints nothing and writes no file (``save_run`` and the CLI do).

Protocol: the test split of every category; with ``shots`` = k > 0, k good training images per category from
fixed reference lists (given, or drawn with each seed and recorded in the run). One detection call per category
and seed, so the verdict threshold and mutual scoring see the category's whole test batch, as in the papers.

Pixel metrics are computed at each image's original resolution against its mask, category by category: the
full-size maps of one category exist only while its metrics are computed (``AnomalyResult.anomaly_map`` is
computed on read from the grid map), so memory is bounded by the largest category, not the data set. A category
reports pixel metrics only when every anomalous image has a mask (otherwise the note says so).
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zsad.data.layouts import load_samples
from zsad.data.layouts.base import load_sample_mask
from zsad.errors import ZsadError
from zsad.evaluation.environment import describe_detector, jsonable, versions
from zsad.evaluation.references import ReferenceLists, draw_references, load_reference_lists
from zsad.evaluation.run import EvaluationRun, ImageRecord, mean_table
from zsad.metrics import MetricTable, UndefinedMetricWarning, image_metrics, pixel_metrics


def object_name_for(category: str) -> str:
    """Prompt object name of a category: ``metal_nut`` -> ``metal nut``; numbered categories (BTAD) -> ``object``."""
    name = category.replace("_", " ").replace("-", " ").strip()
    return "object" if not name or name.isdigit() else name


def evaluate(
    detector,
    dataset: str,
    root: str | Path,
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
) -> EvaluationRun:
    """Evaluate ``detector`` on the test split of ``dataset`` (a ``zsad.data.layouts`` name) at ``root``.

    shots: k good training images per category as references (0: zero-shot).
    seeds: one pass per seed; in k-shot runs each seed has its own reference list. ``seed`` (one int) is kept
        for callers of the earlier signature.
    references: reference lists (object or JSON file from ``save_reference_lists``) to use instead of drawing.
    good_images: the same good reference images (paths, folders, a saved memory) for every category, instead of
        k-shot draws (``zsad eval --references``); not combinable with ``shots``.
    """
    if good_images is not None and shots:
        raise ZsadError("--references and --shots both choose reference images; pass one of them")
    if seed is not None:
        seeds = (seed,)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ZsadError("no seed given; pass seeds=(0,) or more")
    if shots < 0:
        raise ZsadError(f"shots={shots} is negative; pass 0 (zero-shot) or k > 0")
    options = dict(dataset_options or {})
    root = Path(root)
    started = time.time()
    sample_sets = load_samples(dataset, root, categories, **options)
    if isinstance(references, (str, Path)):
        references = load_reference_lists(references)
    lists = references if references is not None else ReferenceLists(dataset=dataset, root=str(root))

    records: list[ImageRecord] = []
    tables: dict[int, MetricTable] = {}
    notes: dict[str, str] = {}
    postprocess: dict[str, Any] | None = None
    for current in seeds:
        table = MetricTable()
        for category, samples in sample_sets.items():
            unlabelled = sum(s.label is None for s in samples)
            if unlabelled:
                raise ZsadError(f"{category}: {unlabelled} images have no label; eval needs labels")
            refs = good_images
            if shots:
                if references is None:
                    lists.add(category, shots, current,
                              draw_references(dataset, root, category, shots, current, **options))
                refs = lists.get(category, shots, current)
            results = _detect(detector, samples, refs, object_name or object_name_for(category), progress, current)
            if postprocess is None:
                postprocess = next((jsonable(r.postprocess) for r in results
                                    if r.ok and r.postprocess is not None), None)
            category_records = [_record(category, current, s, r) for s, r in zip(samples, results)]
            records += category_records
            metrics, note = _category_metrics(samples, results, fpr_limit)
            if note:
                notes[category if len(seeds) == 1 else f"{category} (seed {current})"] = note
            if metrics is not None:
                table.add(category, metrics)
        tables[current] = table

    description = {
        "dataset": dataset,
        "root": str(root),
        "dataset_options": jsonable(options),
        "categories": list(sample_sets),
        "split": "test",
        "shots": shots,
        "seeds": list(seeds),
        "object_name": object_name,
        "references": lists.to_dict() if shots else None,
        "detector": describe_detector(detector),
        "versions": versions(),
        "fpr_limit": fpr_limit,
        "n_images": len(records),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 3),
    }
    return EvaluationRun(records=records, table=mean_table(tables), tables=tables, description=description,
                         notes=notes, postprocess=postprocess)


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
        evidence={name: item.to_dict() for name, item in result.evidence.items()},
        original_size=None if size is None else (int(size[0]), int(size[1])),
        error=result.error,
        grid_map=None if result.grid_map is None else np.asarray(result.grid_map, dtype=np.float32),
    )


def _category_metrics(samples, results, fpr_limit: float) -> tuple[dict[str, float] | None, str]:
    kept = [(s, r) for s, r in zip(samples, results) if r.ok]
    skipped = len(samples) - len(kept)
    notes = [f"{skipped} image(s) could not be scored and are left out"] if skipped else []
    if not kept:
        return None, "no image could be scored"
    labels = np.array([s.label for s, _ in kept])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UndefinedMetricWarning)
        metrics = image_metrics(np.array([r.score for _, r in kept], dtype=np.float64), labels)
        if all(s.mask_path is not None for s, _ in kept if s.label == 1):
            maps, masks = [], []
            for sample, result in kept:  # full-size maps of this category only
                anomaly_map = result.anomaly_map
                maps.append(anomaly_map)
                masks.append(load_sample_mask(sample.mask_path, (anomaly_map.shape[1], anomaly_map.shape[0])))
            metrics.update(pixel_metrics(maps, masks, fpr_limit=fpr_limit))
            del maps, masks
        else:
            notes.append("pixel metrics skipped: some anomalous images have no mask")
    notes += [str(w.message) for w in caught if issubclass(w.category, UndefinedMetricWarning)]
    return metrics, "; ".join(notes)

