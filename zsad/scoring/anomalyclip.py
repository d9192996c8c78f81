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

from dataclasses import dataclass
from typing import Any

import torch

from zsad.backbones.base import Features
from zsad.errors import ZsadError
from zsad.scoring.base import AnomalyMaps, Scorer, register_scorer
from zsad.scoring.postprocess import MapPostprocess, gaussian_blur, smooth


@dataclass(frozen=True)
class AnomalyCLIPConfig:
    temperature: float = 0.07  # compute_similarity and test.py's text_probs
    layers: tuple[int, ...] | None = None  # None: every layer in Features (official --features_list)
    sigma: float = 4.0  # test.py --sigma


def _select_layers(features: Features, layers: tuple[int, ...] | None) -> torch.Tensor:
    if features.projected is None:
        raise ZsadError("AnomalyCLIP scoring needs a CLIP backbone (projected patch tokens)")
    if layers is None:
        return features.projected
    missing = [layer for layer in layers if layer not in features.layers]
    if missing:
        raise ZsadError(f"AnomalyCLIP layers {missing} are not among the backbone's layers {list(features.layers)}")
    index = [features.layers.index(layer) for layer in layers]
    return features.projected[:, index]


def layer_maps(features: Features, text: torch.Tensor, config: AnomalyCLIPConfig = AnomalyCLIPConfig()) -> torch.Tensor:
    """[B, L, h, w] per-layer anomaly maps on the patch grid: ``(p1 + 1 - p0) / 2`` of compute_similarity."""
    tokens = _select_layers(features, config.layers).float()
    tokens = tokens / tokens.norm(dim=-1, keepdim=True)
    probs = (tokens @ text.float().T / config.temperature).softmax(dim=-1)
    return (probs[..., 1] + 1 - probs[..., 0]) / 2.0


def image_scores(features: Features, text: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """[B] test.py's ``text_probs[:, 0, 1]``: softmax of the normalised image feature against the text rows."""
    image = features.cls.float()
    image = image / image.norm(dim=-1, keepdim=True)
    return (image @ text.float().T / temperature).softmax(dim=-1)[..., 1]


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


@register_scorer
class AnomalyCLIPScorer(Scorer):
    """Registered as ``anomalyclip``. Text embeddings come from the detector's text head (``detector.text_head``,
    learned prompts when an adapter is given) for the run's object name."""

    name = "anomalyclip"
    text_space = True
    help = "AnomalyCLIP's formula: V-V patch tokens vs (learned) prompts, layer maps summed, CLS probability as score"
    order = 15

    config = AnomalyCLIPConfig()

    def __init__(self, detector) -> None:
        super().__init__(detector)
        options = getattr(getattr(detector, "config", None), "scorer_options", {}).get(self.name, {})
        self.config = AnomalyCLIPConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})

    # "auto" picks AnomalyCLIP over plain text scoring only when learned prompts are loaded.
    in_auto = True
    strength = 15

    @classmethod
    def unavailable(cls, detector, run) -> str | None:
        backbone = getattr(detector, "backbone", None)
        if backbone is not None and not getattr(backbone, "has_text", False):
            return "AnomalyCLIP scoring needs a CLIP backbone with a text tower"
        head = getattr(detector, "text_head", None)
        if not run.explicit and (head is None or head.describe().get("text_head") != "learned"):
            return "AnomalyCLIP runs automatically only with learned prompts (--prompts learned:NAME)"
        return None

    def start(self, run) -> None:
        super().start(run)
        head = getattr(self.detector, "text_head", None)
        if head is None:
            raise ZsadError("anomalyclip scorer: the detector has no text head")
        self.text = head.embeddings(run.object_name)

    def add(self, features: Features, start: int) -> AnomalyMaps:
        return anomalyclip_scores(features, self.text.to(features.projected.device), self.config)

    def postprocess(self, input_size: int, sigma: float) -> MapPostprocess:
        return postprocess(input_size, self.config.sigma)

    def natural_threshold(self) -> float | None:
        return 0.5  # a probability

    def describe(self) -> dict[str, Any]:
        return {"temperature": self.config.temperature, "layers": self.config.layers, "layer_maps": "sum",
                "image_score": "cls", "sigma": self.config.sigma, "gaussian_mode": "scipy-reflect"}
