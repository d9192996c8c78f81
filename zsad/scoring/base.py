"""What every scorer returns."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AnomalyMaps:
    """Patch-grid anomaly maps and image scores of one scorer for a batch.

    maps: [B, h, w] on the backbone's patch grid (higher = more anomalous).
    scores: [B] image-level anomaly scores.
    source: which evidence produced them ("text", "fewshot", "mutual", or a fusion of these joined by "+").
    """

    maps: torch.Tensor
    scores: torch.Tensor
    source: str
