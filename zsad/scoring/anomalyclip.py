"""AnomalyCLIP's inference formula (zqhang/AnomalyCLIP ``test.py``), from ``Features`` and a text head.

Per chosen layer (official: ``--features_list``, 6/12/18/24 by default; the shipped test.sh passes 24 only): the
projected patch tokens (``ln_post`` + ``proj``, V-V path from ``DPAM_layer`` 20, i.e. the last 19 blocks) are
normalised, compared with the unit text rows by a dot product / 0.07, softmaxed over (normal, anomalous)
(``compute_similarity``); the layer's map is ``(p_anomalous + 1 - p_normal) / 2`` (= p_anomalous), bilinearly
upsampled (``align_corners=False``) to the input size (``get_similarity_map``); the layer maps are *summed* (not
averaged), then smoothed by ``scipy.ndimage.gaussian_filter(sigma=4)`` (``mode='reflect'``, i.e. edge-including
symmetric padding, truncate 4). The image score is the CLS text probability alone (``text_probs[:, 0, 1]``), with
the image feature ``x_ori[0] @ proj`` taken *without* ``ln_post`` (``CLIPBackbone(cls_ln_post=False)``); the map
maximum is not added.

Upsampling is linear, so the sum of upsampled layer maps equals the upsampled sum of grid maps: the scorer returns
the summed grid map (``maps``) and ``full_resolution`` gives the official input-size map.
"""
from __future__ import annotations

from typing import Any

import torch

from zsad.backbones.base import Features, anomaly_probability, class_probabilities
from zsad.postprocess.maps import MapPostprocess, gaussian_blur, smooth
from zsad.scoring.base import TEXT_PATH_READS, AnomalyMaps, Scorer, ScorerContext, ScoringRun
from zsad.scoring.configs import AnomalyCLIPConfig


def layer_maps(features: Features, text: torch.Tensor, config: AnomalyCLIPConfig = AnomalyCLIPConfig()) -> torch.Tensor:
    """[B, L, h, w] per-layer anomaly maps on the patch grid: ``(p1 + 1 - p0) / 2`` of compute_similarity."""
    probs = class_probabilities(features.take(config.layers, projected=True, what="AnomalyCLIP"), text,
                                config.temperature)
    return (probs[..., 1] + 1 - probs[..., 0]) / 2.0


def image_scores(features: Features, text: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """[B] test.py's ``text_probs[:, 0, 1]``: softmax of the normalised image feature against the text rows."""
    return anomaly_probability(features.cls, text, temperature)


def anomalyclip_scores(features: Features, text: torch.Tensor,
                       config: AnomalyCLIPConfig = AnomalyCLIPConfig()) -> AnomalyMaps:
    """Summed grid maps [B, h, w] and CLS image scores [B]."""
    return AnomalyMaps(maps=layer_maps(features, text, config).sum(dim=1), scores=image_scores(features, text,
                       config.temperature), source="anomalyclip")


def gaussian_filter_scipy(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """[B, H, W] smoothed exactly as ``scipy.ndimage.gaussian_filter(m, sigma)`` (mode 'reflect': the edge pixel is
    repeated, ``d c b a | a b c d``). Note ``torch``'s ``reflect`` padding is scipy's ``mirror``."""
    return gaussian_blur(maps.unsqueeze(1), sigma, padding="symmetric").squeeze(1)


def postprocess(input_size: int, sigma: float = 4.0) -> MapPostprocess:
    """The official map at input size: bilinear (align_corners=False), then scipy's Gaussian (see module doc)."""
    return MapPostprocess(input_size, sigma, align_corners=False, padding="symmetric")


def full_resolution(grid_maps: torch.Tensor, input_size: int, sigma: float = 4.0) -> torch.Tensor:
    """[B, h, w] summed grid maps -> [B, S, S]: bilinear (align_corners=False) to the input size, then scipy's
    Gaussian. This is the official map at the model's input resolution (test.py compares it with masks resized to
    the same size)."""
    return smooth(grid_maps, input_size, sigma, align_corners=False, padding="symmetric")


class AnomalyCLIPScorer(Scorer):
    """AnomalyCLIP's formula with the context's text head (learned prompts when an adapter is given) for the run's
    object name. Its official smoothing is its config's ``default_postprocess``."""

    name = "anomalyclip"
    text_space = True
    reads = TEXT_PATH_READS
    # "auto" picks AnomalyCLIP only with learned prompts, and then before mutual scoring: the prompts are what
    # the user gave explicitly (zsad.scoring.planning).
    in_auto = True
    strength = 25

    @classmethod
    def unavailable(cls, config: AnomalyCLIPConfig, ctx: ScorerContext, run: ScoringRun) -> str | None:
        if not ctx.backbone.has_text:
            return "AnomalyCLIP scoring needs a CLIP backbone with a text tower"
        if not run.explicit and (ctx.text_head is None or ctx.text_head.describe().get("text_head") != "learned"):
            return "AnomalyCLIP runs automatically only with learned prompts (--prompts learned:NAME)"
        return None

    def start(self, run: ScoringRun) -> None:
        super().start(run)
        self.text = self.ctx.text_head.embeddings(run.object_name)

    def add(self, features: Features, start: int) -> AnomalyMaps:
        return anomalyclip_scores(features, self.text.to(features.projected.device), self.config)

    def natural_threshold(self) -> float | None:
        return 0.5  # a probability

    def describe(self) -> dict[str, Any]:
        return {"layer_maps": "sum", "image_score": "cls", **self.ctx.text_head.describe()}
