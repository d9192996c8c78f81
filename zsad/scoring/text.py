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

import torch
import torch.nn.functional as F

from zsad.backbones.base import Features, anomaly_probability
from zsad.errors import ZsadError
from zsad.scoring.base import TEXT_PATH_READS, AnomalyMaps, Scorer, ScorerContext, ScoringRun
from zsad.scoring.configs import IMAGE_SCORE_RULES, TextConfig

__all__ = ["IMAGE_SCORE_RULES", "TextConfig", "TextScorer", "anomaly_probability", "pooled_window_scores",
           "score_text"]


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
    tokens_by_layer = features.take(config.layers, projected=True, what="text scoring")
    text = text.to(tokens_by_layer.device)
    maps = []
    for index in range(tokens_by_layer.shape[1]):
        tokens = tokens_by_layer[:, index]  # [B, h, w, D]
        scales = [anomaly_probability(tokens, text, config.temperature)]
        scales += [pooled_window_scores(tokens, text, config.temperature, s) for s in config.pooled_windows]
        maps.append(torch.stack(scales).mean(0))
    anomaly_map = torch.stack(maps).mean(0)
    cls_score = anomaly_probability(features.cls, text, config.temperature)
    map_max = anomaly_map.flatten(1).max(dim=1).values
    score = {"cls": cls_score, "max": map_max, "cls+max": (cls_score + map_max) / 2}[config.image_score]
    return AnomalyMaps(maps=anomaly_map, scores=score, source="text")


class TextScorer(Scorer):
    """Patch tokens against the text head's [normal, anomalous] embeddings, batch by batch."""

    name = "text"
    text_space = True
    reads = TEXT_PATH_READS
    in_auto = True
    strength = 10

    @classmethod
    def unavailable(cls, config: TextConfig, ctx: ScorerContext, run: ScoringRun) -> str | None:
        if not ctx.backbone.has_text:
            return (f"backbone {ctx.backbone.name} has no text tower; use a CLIP backbone or "
                    "--method fewshot/mutual")
        return None

    def start(self, run: ScoringRun) -> None:
        super().start(run)
        self.text = self.ctx.text_head.embeddings(run.object_name)

    def add(self, features: Features, start: int) -> AnomalyMaps:
        return score_text(features, self.text, self.config)

    def natural_threshold(self) -> float | None:
        return 0.5  # a probability: anomalous is more likely than normal

    def describe(self) -> dict:
        return dict(self.ctx.text_head.describe())
