"""Zero-shot patch-text scoring (WinCLIP's patch-level zero-shot path, APRIL-GAN-style layers).

For each chosen layer, every projected patch token is compared (cosine) with one "normal" and one "anomalous" text
embedding; a softmax at temperature 0.07 over the two gives the probability that the patch is anomalous. Maps are
averaged over layers. The image score is the same softmax on the CLS embedding, by default averaged with the maximum
of the map (as APRIL-GAN/AnomalyCLIP do), because the CLS alone misses small defects.

The [normal, anomalous] embeddings come from a text head (``zsad.scoring.text_heads``): a prompt set by default,
learned prompts or a definition in words when configured.

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
from zsad.scoring.base import AnomalyMaps, Scorer, ScoringRun, register_scorer

IMAGE_SCORE_RULES = ("cls", "max", "cls+max")


@dataclass(frozen=True)
class TextConfig:
    prompts: str = "winclip"
    object_name: str = "object"
    temperature: float = 0.07
    layers: tuple[int, ...] | None = None  # None: every layer the backbone returns
    image_score: str = "cls+max"
    pooled_windows: tuple[int, ...] = ()  # mean-token windows; not WinCLIP's (see the module docstring)


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


def score_text(features: Features, text: torch.Tensor, config: TextConfig) -> AnomalyMaps:
    """Maps [B, h, w] (P(anomalous) per patch, mean over layers and scales) and image scores [B]."""
    if features.projected is None:
        raise ZsadError("text scoring needs projected patch tokens (a CLIP backbone)")
    text = text.to(features.projected.device)
    layers = config.layers or features.layers
    missing = [layer for layer in layers if layer not in features.layers]
    if missing:
        raise ZsadError(f"text layers {missing} were not extracted; the backbone returns {list(features.layers)}")
    maps = []
    for layer in layers:
        tokens = features.projected[:, features.layers.index(layer)]  # [B, h, w, D]
        scales = [anomaly_probability(tokens, text, config.temperature)]
        scales += [pooled_window_scores(tokens, text, config.temperature, s) for s in config.pooled_windows]
        maps.append(torch.stack(scales).mean(0))
    anomaly_map = torch.stack(maps).mean(0)
    cls_score = anomaly_probability(features.cls, text, config.temperature)
    map_max = anomaly_map.flatten(1).max(dim=1).values
    score = {"cls": cls_score, "max": map_max, "cls+max": (cls_score + map_max) / 2}[config.image_score]
    return AnomalyMaps(maps=anomaly_map, scores=score, source="text")


@register_scorer
class TextScorer(Scorer):
    """Patch tokens against the text head's [normal, anomalous] embeddings, batch by batch."""

    name = "text"
    text_space = True
    help = "zero-shot: patch tokens vs. normal/anomalous text prompts (CLIP backbones)"
    order = 10
    in_auto = True
    strength = 10

    def __init__(self, detector):
        super().__init__(detector)
        if detector.config.text.image_score not in IMAGE_SCORE_RULES:
            raise ZsadError(f"image_score must be one of {IMAGE_SCORE_RULES}, got {detector.config.text.image_score!r}")
        self.config = detector.config.text

    @classmethod
    def unavailable(cls, detector, run: ScoringRun) -> str | None:
        if not detector.backbone.has_text:
            return f"backbone {detector.backbone.name} has no text tower; use a CLIP backbone or --method fewshot/mutual"
        return None

    def start(self, run: ScoringRun) -> None:
        super().start(run)
        self.text = self.detector.text_head.embeddings(run.object_name)

    def add(self, features: Features, start: int) -> AnomalyMaps:
        return score_text(features, self.text, self.config)

    def natural_threshold(self) -> float | None:
        return 0.5  # a probability: anomalous is more likely than normal

    def describe(self) -> dict:
        return {"temperature": self.config.temperature, "layers": list(self.config.layers or []),
                "image_score": self.config.image_score, "pooled_windows": list(self.config.pooled_windows),
                **self.detector.text_head.describe()}
