"""A multi-process run's parts put back together in input order (``Detector.detect`` with ``state``)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from zsad.data.sources import Source
from zsad.parallel import gather
from zsad.scoring.base import AnomalyMaps


@dataclass
class ScoredImage:
    """What a run knows about one readable image before the batch-level steps."""

    index: int  # position among the inputs
    source: Source
    original_size: tuple[int, int]


def gather_run(state, share, errors, scored, evidence, scorers, keeper):
    """Every process's part of a run, in input order, on every process (shares are contiguous and ordered).
    Per-image evidence (and the patch features ``keeper`` holds, replaced by every process's) is concatenated over
    processes; batch-level evidence (mutual) is already complete on every process and is taken from the first.
    """
    errors = [(share[i], result) for i, result in errors]
    scored = [replace(image, index=share[image.index]) for image in scored]
    parts = gather((errors, scored, evidence, keeper.rows), state)
    by_name = {scorer.name: scorer for scorer in scorers}
    merged = []
    for position, item in enumerate(parts[0][2]):
        if by_name[item.source].per_image:
            pieces = [part[2][position] for part in parts]
            item = AnomalyMaps(torch.cat([p.maps for p in pieces]), torch.cat([p.scores for p in pieces]), item.source)
        merged.append(item)
    keeper.rows = [row for part in parts for row in part[3]]
    return [e for part in parts for e in part[0]], [s for part in parts for s in part[1]], merged
