"""Running a detector over a labelled dataset and tabulating the metrics, per category and mean.

Pixel metrics are computed at each image's original resolution against its mask; they need a mask for every
anomalous image of the category, otherwise the category reports image metrics only (and says so).
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np

from zsad.data.datasets import load_samples
from zsad.data.images import load_mask
from zsad.errors import ZsadError
from zsad.metrics import MetricTable, image_metrics, pixel_metrics


def object_name_for(category: str) -> str:
    return category.replace("_", " ").replace("-", " ")


def draw_references(dataset: str, root: Path, category: str, shots: int, seed: int) -> list[Path]:
    """k good training images of a category, drawn with a seed (the k-shot protocol of WinCLIP/AnomalyDINO)."""
    train = [s.path for s in load_samples(dataset, root, [category], split="train").get(category, [])]
    if len(train) < shots:
        raise ZsadError(
            f"{category}: {shots}-shot needs {shots} good training images, found {len(train)}; drop --shots for "
            "zero-shot, or pass good images with --references"
        )
    return sorted(random.Random(seed).sample(sorted(train), shots))


def evaluate(detector, dataset: str, root: Path, categories=None, out_dir: Path | None = None,
             object_name: str | None = None, progress: bool = True, shots: int = 0, seed: int = 0,
             references=None) -> MetricTable:
    """Test split of every category; ``shots`` > 0 adds that many good training images of the category as
    references, or ``references`` (images, folders or a saved memory) serve every category."""
    sample_sets = load_samples(dataset, root, categories)
    table = MetricTable()
    notes: dict[str, str] = {}
    for category, samples in sample_sets.items():
        labelled = [s for s in samples if s.label is not None]
        if len(labelled) < len(samples):
            raise ZsadError(f"{category}: {len(samples) - len(labelled)} images have no label; eval needs labels")
        chosen = draw_references(dataset, root, category, shots, seed) if shots else references
        results = detector.detect([s.path for s in samples], references=chosen,
                                  object_name=object_name or object_name_for(category), progress=progress)
        kept = [(s, r) for s, r in zip(samples, results) if r.ok]
        for sample, result in zip(samples, results):
            if not result.ok:
                print(f"{category}: skipped {sample.path}: {result.error}", file=sys.stderr)
        if not kept:
            notes[category] = "no image could be scored"
            continue
        scores = np.array([r.score for _, r in kept])
        labels = np.array([s.label for s, _ in kept])
        metrics = image_metrics(scores, labels)
        if all(s.mask_path is not None for s, _ in kept if s.label == 1):
            maps = [r.anomaly_map for _, r in kept]
            masks = [load_mask(s.mask_path, (m.shape[1], m.shape[0])) for (s, _), m in zip(kept, maps)]
            metrics.update(pixel_metrics(maps, masks))
        else:
            notes[category] = "pixel metrics skipped: some anomalous images have no mask"
        table.add(category, metrics)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.md").write_text(table.to_markdown() + "\n")
        info = {"dataset": dataset, "root": str(root), "backbone": detector.backbone.name, "shots": shots,
                "seed": seed, "method": detector.config.method,
                "input_size": detector.backbone.input_size, "notes": notes, "metrics": table.to_dict()}
        (out_dir / "metrics.json").write_text(json.dumps(info, indent=2))
    return table
