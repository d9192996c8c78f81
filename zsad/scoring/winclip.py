"""WinCLIP and WinCLIP+ (Jeong et al., "WinCLIP: Zero-/Few-Shot Anomaly Classification and Segmentation", CVPR 2023).

The method, as published and as anomalib implements it (``models/image/winclip/torch_model.py``), on the window
embeddings that the CLIP backbone computes (``Features.windows``, see ``zsad.backbones.clip``):

Zero-shot (WinCLIP)
    s(e) = softmax over [normal, anomalous] of cos(e, text) / 0.07, anomalous entry, for an embedding e.
    Image score: s(CLS embedding of the whole image).
    Per window scale k (2 and 3 patches): every k x k window gets s(window embedding); each patch gets the harmonic
    mean of the scores of the windows that cover it.
    Map: harmonic mean, per patch, of the scales: the image scale (the image score, the same at every patch) and
    each window scale. The 1 x 1 patch scale is not used: raw patch tokens do not align with text.

Few-shot (WinCLIP+, k good reference images)
    a(e, M) = min over the memory M of (1 - cos(e, m)) / 2 (the paper's visual association score, Eq. 4).
    Patch scale: a(p, all reference patches), with p the final-layer patch tokens of the full pass after ln_post
    (not projected); window scale k: a(window, all reference windows of size k), harmonically aggregated per patch
    as above. Few-shot map: arithmetic mean of the patch scale and the window scales.
    WinCLIP+ map: (zero-shot map + few-shot map) / 2; image score: (zero-shot image score + max of the few-shot
    map) / 2.

Text embeddings come from the text-head seam ([normal, anomalous] rows); this module does not build prompts.
Harmonic means of scores that reach 0 (a window identical to a reference one) are 0, their limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from zsad.backbones.base import Features, WindowEmbeddings, anomaly_probability
from zsad.errors import ZsadError
from zsad.scoring.base import AnomalyMaps, Scorer, ScorerContext, ScoringRun
from zsad.scoring.configs import WinCLIPConfig
from zsad.scoring.reference import nearest_distances


def text_scores(embeddings: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """P(anomalous) for each embedding [..., D] against the text rows [2, D] (normal, anomalous): WinCLIP Eq. 1."""
    return anomaly_probability(embeddings, text, temperature)


def harmonic_aggregation(window_scores: torch.Tensor, size: int) -> torch.Tensor:
    """[B, h, w] per patch: harmonic mean of the scores [B, h - size + 1, w - size + 1] of the windows covering it.

    Each window adds its reciprocal score to the k x k patches it covers (k*k shifted adds, exact in float); a
    score of 0 gives an infinite reciprocal and a harmonic mean of 0.
    """
    b, hk, wk = window_scores.shape
    h, w = hk + size - 1, wk + size - 1
    inverse = window_scores.reciprocal()
    inverse_sum = window_scores.new_zeros(b, h, w)
    count = window_scores.new_zeros(1, h, w)
    for dy in range(size):
        for dx in range(size):
            inverse_sum[:, dy : dy + hk, dx : dx + wk] += inverse
            count[:, dy : dy + hk, dx : dx + wk] += 1
    return count / inverse_sum


def _windows_of(features: Features, scales: tuple[int, ...]) -> WindowEmbeddings:
    if features.windows is None:
        raise ZsadError(
            "WinCLIP needs window embeddings, which the backbone computes only when asked: run it with "
            f"--method winclip (it asks the backbone for windows {list(scales)}), or BackboneSpec(windows=...)"
        )
    missing = [k for k in scales if k not in features.windows.windows]
    if missing:
        raise ZsadError(
            f"WinCLIP scales {list(missing)} were not computed; the backbone gives windows "
            f"{list(features.windows.sizes)}. Run it with --method winclip --winclip-scales {' '.join(map(str, scales))}"
        )
    return features.windows


def zero_shot(features: Features, text: torch.Tensor, config: WinCLIPConfig = WinCLIPConfig()):
    """WinCLIP zero-shot: (maps [B, h, w], image scores [B]); see the module docstring."""
    windows = _windows_of(features, config.scales)
    image = text_scores(features.cls, text.to(features.cls.device), config.temperature)  # [B]
    h, w = windows.patch_embeddings.shape[1:3]
    inverse = image.reciprocal()[:, None, None].expand(-1, h, w)  # the image scale
    for k in config.scales:
        per_window = text_scores(windows.windows[k], text.to(features.cls.device), config.temperature)
        inverse = inverse + harmonic_aggregation(per_window, k).reciprocal()
    return (len(config.scales) + 1) / inverse, image


@dataclass
class WinCLIPMemory:
    """WinCLIP+'s memory of good references: unit-length embeddings of every reference patch (``patches``, [N, W])
    and of every reference window per scale (``windows[k]``, [N_k, D]), each scale searched only against itself."""

    patches: torch.Tensor
    windows: dict[int, torch.Tensor]
    n_images: int

    @classmethod
    def build(cls, references: Features | list[Features]) -> "WinCLIPMemory":
        parts = references if isinstance(references, list) else [references]
        if not parts or any(p.windows is None for p in parts):
            raise ZsadError(
                "WinCLIP+ references need window embeddings: extract them with the same windowed backbone "
                "as the test images"
            )
        windows = WindowEmbeddings.concat([p.windows for p in parts])
        n_images = int(windows.patch_embeddings.shape[0])
        if n_images == 0:
            raise ZsadError("WinCLIP+ got no reference images; pass at least one good image")
        return cls(
            patches=F.normalize(windows.patch_embeddings.flatten(0, 2).float(), dim=-1),
            windows={k: F.normalize(v.flatten(0, 2).float(), dim=-1) for k, v in windows.windows.items()},
            n_images=n_images,
        )


def few_shot(features: Features, memory: WinCLIPMemory, config: WinCLIPConfig = WinCLIPConfig()) -> torch.Tensor:
    """WinCLIP+ few-shot map [B, h, w]: mean of the patch scale and the harmonically aggregated window scales."""
    windows = _windows_of(features, config.scales)
    missing = [k for k in config.scales if k not in memory.windows]
    if missing:
        raise ZsadError(f"the WinCLIP+ memory has no windows of size {missing}; rebuild it with the same backbone")

    def association(embeddings: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
        flat = embeddings.flatten(0, -2)
        distance = nearest_distances(flat, bank.to(flat.device), "cosine", config.chunk_size) / 2
        return distance.reshape(embeddings.shape[:-1])

    scales = [association(windows.patch_embeddings, memory.patches)]
    scales += [harmonic_aggregation(association(windows.windows[k], memory.windows[k]), k) for k in config.scales]
    return torch.stack(scales).mean(0)


def winclip(
    features: Features,
    text: torch.Tensor,
    memory: WinCLIPMemory | None = None,
    config: WinCLIPConfig = WinCLIPConfig(),
) -> AnomalyMaps:
    """WinCLIP's maps and image scores, or WinCLIP+'s when a reference memory is given."""
    maps, scores = zero_shot(features, text, config)
    if memory is None:
        return AnomalyMaps(maps=maps, scores=scores, source="winclip")
    reference_maps = few_shot(features, memory, config)
    return AnomalyMaps(
        maps=(maps + reference_maps) / 2,
        scores=(scores + reference_maps.flatten(1).amax(dim=1)) / 2,
        source="winclip+",
    )


class WinCLIPScorer(Scorer):
    """Glue between the detector and the functions above; all arithmetic lives in ``winclip``.

    Uses the context's backbone (run with the windows its config asks for, see ``WinCLIPConfig.backbone_settings``)
    and text head (WinCLIP's prompt ensemble unless another is configured). References, when the run has them,
    are extracted with ``ctx.extract`` (the same windowed backbone) and turn WinCLIP into WinCLIP+: one method
    name, ``winclip``, whose results say ``winclip+`` when references were used (as the paper names it).
    """

    name = "winclip"
    text_space = True
    reads = ("text_head.prompts", "references")  # its own windows, not V-V tokens; references: WinCLIP+

    @classmethod
    def unavailable(cls, config: WinCLIPConfig, ctx: ScorerContext, run: ScoringRun) -> str | None:
        if not ctx.backbone.has_text:
            return f"WinCLIP needs a CLIP backbone with a text tower; {ctx.backbone.name} has none"
        if not set(config.scales) <= set(ctx.backbone.windows):
            return (
                f"WinCLIP needs window embeddings of sizes {list(config.scales)}, but the backbone computes "
                f"{list(ctx.backbone.windows) or 'none'}; run it with --method winclip (or --preset winclip)"
            )
        return None

    def start(self, run: ScoringRun) -> None:
        super().start(run)
        self.text = self.ctx.text_head.embeddings(run.object_name)
        self.memory: WinCLIPMemory | None = None
        if run.references is not None:
            references = run.references
            if not isinstance(references, Features):
                from zsad.scoring.fewshot import load_references

                references = self.ctx.extract(load_references(references)[0])
            self.memory = WinCLIPMemory.build(references)

    def add(self, features: Features, start: int) -> AnomalyMaps:
        return winclip(features, self.text, self.memory, self.config)

    def natural_threshold(self) -> float | None:
        # Zero-shot scores are probabilities (0.5: as likely anomalous as normal); WinCLIP+ averages one with a
        # cosine distance, which has no such neutral point.
        return 0.5 if self.memory is None else None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"method": "winclip+" if self.memory is not None else "winclip",
                                     **self.ctx.text_head.describe()}
        if self.memory is not None:
            described["reference_images"] = self.memory.n_images
        return described
