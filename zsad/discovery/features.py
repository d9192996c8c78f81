"""Region features: each anomaly-centred crop through the run's backbone, pooled over its anomalous patches.

AnomalyNCD feeds each crop and its mask to a mask-guided ViT that it fine-tunes (MGViT: the CLS token attends only to
the masked patches in the last blocks) and clusters the learned embeddings. zsad's discovery is training-free: the
crop goes through the run's frozen backbone once, and the region feature is the *masked average* of its patch
tokens over the anomalous cells of the crop (the image's mask resampled onto the crop's patch grid, cells at least
half covered; the most covered cells when none is), L2-normalised. Pooling over the mask keeps what AnomalyNCD's
mask guidance is for: the feature describes the defect, not the product around it.

Feature kinds (``FEATURE_KINDS``):
- ``projected``: CLIP patch tokens mapped into the text space (``Features.projected``);
- ``tokens``: the backbone's own patch tokens (CLIP or DINOv2 ``Features.patch_tokens``);
- ``colour``: no network, a 4 x 4 x 4 RGB histogram of the crop's anomalous pixels, square-rooted (so that
  Euclidean distance is the Hellinger distance of the histograms) and L2-normalised; a baseline and a fallback.
``auto`` is ``projected`` with CLIP (naming needs the text space, and on ``eval/bench_discovery.py`` it separates
the planted types at least as well as CLIP's raw tokens: NMI 0.76 vs 0.73 with the default estimator), ``tokens``
with DINOv2. On those synthetic sets the colour histogram does as well as or better than the random-weight network
features, because the generator gives every defect type its own colour (near-black holes, saturated spots): that
says the benchmark is easy for colour, not that colour is enough on real products.

With several layers, each layer's pooled vector is normalised and the layers are concatenated (then normalised
again), so every layer weighs the same in a cosine. Naming by text always uses the deepest layer's projected
vector (the one aligned with CLIP's text space), whatever kind is clustered.

Memory is bounded by the batch: crops are resized to the backbone's input size ``batch_size`` at a time and only
the pooled vectors are kept (10,000 regions x 1,024 floats = 40 MB).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from zsad.data.preprocess import to_batch
from zsad.discovery.clustering import FEATURE_KINDS
from zsad.discovery.regions import Crop, crop_mask

NAMING = "naming"
COLOUR_BINS = 4
COLOUR_SIDE = 128


def default_kind(backbone) -> str:
    """``projected`` with a text space, ``tokens`` without, ``colour`` without a backbone."""
    if backbone is None:
        return "colour"
    return "projected" if backbone.has_text else "tokens"


def pooling_weights(fractions: np.ndarray) -> np.ndarray:
    """Cells of a crop's patch grid that pool: covered at least half, else the most covered (else all)."""
    weights = fractions >= 0.5
    if not weights.any():
        top = fractions.max()
        weights = fractions >= top if top > 0 else np.ones_like(fractions, dtype=bool)
    return weights.astype(np.float32)


def masked_pool(tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """[B, L, h, w, C] tokens, [B, h, w] weights -> [B, L*C]: per-layer weighted mean, normalised per layer,
    concatenated, normalised."""
    w = weights[:, None, :, :, None].to(tokens.dtype)
    pooled = (tokens * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3)).clamp_min(1e-12)
    pooled = F.normalize(pooled, dim=-1)
    return F.normalize(pooled.flatten(1), dim=-1)


def colour_feature(image: Image.Image, mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Square-rooted, L2-normalised 4 x 4 x 4 RGB histogram of the crop's anomalous pixels (see the module doc)."""
    crop = image.crop(box)
    scale = min(1.0, COLOUR_SIDE / max(crop.size))
    if scale < 1.0:
        crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.BILINEAR)
    pixels = np.asarray(crop.convert("RGB"), dtype=np.int64)
    inside = crop_mask(mask, image.size, box, (pixels.shape[0], pixels.shape[1]), samples=1) >= 0.5
    if not inside.any():
        inside[...] = True
    q = pixels[inside] * COLOUR_BINS // 256
    counts = np.bincount((q[:, 0] * COLOUR_BINS + q[:, 1]) * COLOUR_BINS + q[:, 2], minlength=COLOUR_BINS ** 3)
    vector = np.sqrt(counts / counts.sum())
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class RegionEmbedder:
    """Embeds crops ``batch_size`` at a time; ``kinds`` are the feature kinds to keep (see the module doc)."""

    def __init__(self, backbone, kinds: Iterable[str] = ("auto",), batch_size: int = 16, resize: str = "bicubic"):
        kinds = tuple(default_kind(backbone) if k == "auto" else k for k in kinds)
        unknown = [k for k in kinds if k not in FEATURE_KINDS]
        if unknown:
            raise ValueError(f"unknown region feature kind(s) {unknown}; use {', '.join(FEATURE_KINDS)} or auto")
        needs_network = [k for k in kinds if k != "colour"]
        if needs_network and backbone is None:
            raise ValueError(f"feature kind(s) {needs_network} need a backbone; pass one or use features='colour'")
        if "projected" in kinds and not backbone.has_text:
            raise ValueError(f"features='projected' needs a CLIP backbone with a text space; {backbone.name} has "
                             "none: use 'tokens'")
        self.backbone = backbone
        self.kinds = tuple(dict.fromkeys(kinds))
        self.naming = backbone is not None and backbone.has_text
        self.run_network = bool(needs_network) or self.naming
        self.batch_size = max(1, int(batch_size))
        self.resize = resize
        self._pending: list[tuple[Image.Image, np.ndarray]] = []
        self._out: dict[str, list[np.ndarray]] = {k: [] for k in (*self.kinds, *([NAMING] if self.naming else []))}

    def add(self, image: Image.Image, mask: np.ndarray, crops: list[Crop]) -> None:
        """Queue an image's crops (``mask``: the image's binary mask at any resolution)."""
        for crop in crops:
            if "colour" in self.kinds:
                self._out["colour"].append(colour_feature(image, mask, crop.box)[None])
            if self.run_network:
                self._pending.append((image.crop(crop.box).convert("RGB"), self._weights(mask, image.size, crop)))
            if len(self._pending) >= self.batch_size:
                self._flush()

    def _weights(self, mask: np.ndarray, size: tuple[int, int], crop: Crop) -> np.ndarray:
        side = self.backbone.input_size // self.backbone.patch_size
        return pooling_weights(crop_mask(mask, size, crop.box, (side, side)))

    @torch.inference_mode()
    def _flush(self) -> None:
        if not self._pending:
            return
        backbone = self.backbone
        device = next(backbone.parameters()).device
        batch = to_batch([crop for crop, _ in self._pending], backbone.input_size, backbone.mean, backbone.std,
                         self.resize)
        features = backbone(batch.to(device))
        weights = torch.from_numpy(np.stack([w for _, w in self._pending])).to(device)
        if weights.shape[1:] != features.patch_tokens.shape[2:4]:
            raise RuntimeError(f"backbone {backbone.name}: patch grid {tuple(features.patch_tokens.shape[2:4])} is "
                               f"not input_size / patch_size = {tuple(weights.shape[1:])}")
        if "tokens" in self.kinds:
            self._out["tokens"].append(masked_pool(features.patch_tokens.float(), weights).cpu().numpy())
        if "projected" in self.kinds:
            self._out["projected"].append(masked_pool(features.projected.float(), weights).cpu().numpy())
        if self.naming:
            self._out[NAMING].append(masked_pool(features.projected[:, -1:].float(), weights).cpu().numpy())
        self._pending.clear()

    def result(self) -> dict[str, np.ndarray]:
        """{kind: (n_regions, dim) float32} in the order crops were added (plus ``naming`` with a text space)."""
        self._flush()
        return {kind: np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, 0), np.float32)
                for kind, parts in self._out.items()}
