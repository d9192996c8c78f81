"""Zero-shot patch-text scoring (WinCLIP).

For each chosen layer, every projected patch token is compared (cosine) with one "normal" and one "anomalous" text
embedding; a softmax at temperature 0.07 over the two gives the probability that the patch is anomalous. Maps are
averaged over layers. The image score is the same softmax on the CLS embedding, by default averaged with the maximum
of the map (as APRIL-GAN/AnomalyCLIP do), because the CLS alone misses small defects.

Pooled windows (``pooled_windows=(2, 3)``): a cheap multi-scale variant, *not* WinCLIP's windows. A window's
embedding here is the mean of its projected patch tokens (one forward pass, no extra cost); WinCLIP instead runs
the ViT on the CLS plus the window's tokens, which gives maps uncorrelated with these (see ``zsad.scoring.winclip``
for the published method). Each patch gets, per scale, the harmonic mean of the scores of all windows covering
it; scales (including the 1x1 patch scale) are averaged arithmetically.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zsad.backbones.base import Features
from zsad.errors import ZsadError
from zsad.scoring.base import AnomalyMaps
from zsad.scoring.prompts import load_prompt_set

IMAGE_SCORE_RULES = ("cls", "max", "cls+max")


@dataclass(frozen=True)
class TextConfig:
    prompts: str = "winclip"
    object_name: str = "object"
    temperature: float = 0.07
    layers: tuple[int, ...] | None = None  # None: every layer the backbone returns
    image_score: str = "cls+max"
    pooled_windows: tuple[int, ...] = ()  # mean-token windows; not WinCLIP's (see the module docstring)


def class_embeddings(encode, sentences: dict[str, list[str]]) -> torch.Tensor:
    """[2, D] normalised (normal, anomalous) embeddings: mean of the normalised sentence embeddings per class."""
    rows = []
    for label in ("normal", "anomalous"):
        embedded = F.normalize(encode(sentences[label]).float(), dim=-1)
        rows.append(F.normalize(embedded.mean(0), dim=-1))
    return torch.stack(rows)


def anomaly_probability(embeddings: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax over [normal, anomalous] of cosine similarities / temperature; returns P(anomalous), shape [...]."""
    logits = F.normalize(embeddings.float(), dim=-1) @ text.T / temperature
    return logits.softmax(dim=-1)[..., 1]


def pooled_window_scores(tokens: torch.Tensor, text: torch.Tensor, temperature: float, size: int) -> torch.Tensor:
    """[B, h, w] harmonic mean, per patch, of the scores of all size x size mean-pooled windows covering it."""
    b, h, w, d = tokens.shape
    if size > min(h, w):
        raise ZsadError(f"window size {size} is larger than the {h}x{w} patch grid; use smaller windows")
    pooled = F.avg_pool2d(tokens.permute(0, 3, 1, 2), kernel_size=size, stride=1)  # [B, D, h-s+1, w-s+1]
    scores = anomaly_probability(pooled.permute(0, 2, 3, 1), text, temperature)  # [B, h-s+1, w-s+1]
    ones = torch.ones(1, 1, size, size, dtype=scores.dtype, device=scores.device)
    inverse_sum = F.conv_transpose2d(scores.clamp_min(1e-12).reciprocal().unsqueeze(1), ones).squeeze(1)
    count = F.conv_transpose2d(torch.ones_like(scores).unsqueeze(1), ones).squeeze(1)
    return count / inverse_sum


class TextScorer:
    """Scores ``Features`` against cached text embeddings of one prompt set and object name."""

    source = "text"

    def __init__(self, backbone, config: TextConfig = TextConfig()):
        if not getattr(backbone, "has_text", False):
            raise ZsadError(
                f"backbone {backbone.name} has no text tower, so text scoring is impossible; "
                f"use a CLIP backbone or --method fewshot/mutual"
            )
        if config.image_score not in IMAGE_SCORE_RULES:
            raise ZsadError(f"image_score must be one of {IMAGE_SCORE_RULES}, got {config.image_score!r}")
        self.backbone = backbone
        self.config = config
        self.prompt_set = load_prompt_set(config.prompts)
        self._cache: dict[tuple[str, str, str], torch.Tensor] = {}

    def text_embeddings(self, object_name: str | None = None) -> torch.Tensor:
        """[2, D], computed once per (model, prompt set content, object name)."""
        object_name = object_name or self.config.object_name
        key = (self.backbone.name, self.prompt_set.key(object_name), object_name)
        if key not in self._cache:
            sentences = self.prompt_set.sentences(object_name)
            self._cache[key] = class_embeddings(self.backbone.encode_text, sentences)
        return self._cache[key]

    def __call__(self, features: Features, object_name: str | None = None) -> AnomalyMaps:
        if features.projected is None:
            raise ZsadError("text scoring needs projected patch tokens (a CLIP backbone)")
        text = self.text_embeddings(object_name).to(features.projected.device)
        layers = self.config.layers or features.layers
        missing = [layer for layer in layers if layer not in features.layers]
        if missing:
            raise ZsadError(f"text layers {missing} were not extracted; the backbone returns {list(features.layers)}")
        maps = []
        for layer in layers:
            tokens = features.projected[:, features.layers.index(layer)]  # [B, h, w, D]
            scales = [anomaly_probability(tokens, text, self.config.temperature)]
            scales += [
                pooled_window_scores(tokens, text, self.config.temperature, s) for s in self.config.pooled_windows
            ]
            maps.append(torch.stack(scales).mean(0))
        anomaly_map = torch.stack(maps).mean(0)
        cls_score = anomaly_probability(features.cls, text, self.config.temperature)
        map_max = anomaly_map.flatten(1).max(dim=1).values
        score = {"cls": cls_score, "max": map_max, "cls+max": (cls_score + map_max) / 2}[self.config.image_score]
        return AnomalyMaps(maps=anomaly_map, scores=score, source=self.source)
