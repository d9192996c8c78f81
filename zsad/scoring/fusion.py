"""Combining the evidence of several scorers into one map and one score per image.

Text maps are probabilities, few-shot maps cosine distances, mutual maps L2 distances of normalised features:
averaging them raw would let whichever has the widest range decide. WinCLIP+ averages its zero-shot and few-shot
maps because both happen to live in [0, 1]; zsad makes that explicit and general. Each evidence is put on a
common, robust scale before averaging:

    z = (value - median) / (1.4826 * MAD)

where median and MAD are taken over *all patch scores of the run* for that evidence (most patches are normal even
in defective images, so this is "how many normal-patch standard deviations above typical"). Image scores are put on
the same scale with the same statistics (every scorer's image score is in its own map units: a map maximum, a
top-1 % mean, or a CLS probability). Fused map and score are the means of the z-values.

A single evidence is returned unchanged, so its natural units (and thresholds, such as 0.5 for text) are kept.
The price of the rule: fused values depend on the run's images, as mutual scoring does anyway.
"""
from __future__ import annotations

import torch

from zsad.robust import robust_scale
from zsad.scoring.base import AnomalyMaps


def fuse(evidence: list[AnomalyMaps]) -> AnomalyMaps:
    if not evidence:
        raise ValueError("fuse needs at least one evidence")
    if len(evidence) == 1:
        return evidence[0]
    maps, scores = [], []
    for item in evidence:
        center, spread = robust_scale(item.maps.detach().float().cpu().numpy())
        maps.append((item.maps.float() - center) / spread)
        scores.append((item.scores.float() - center) / spread)
    return AnomalyMaps(
        maps=torch.stack(maps).mean(0),
        scores=torch.stack(scores).mean(0),
        source="+".join(item.source for item in evidence),
    )
