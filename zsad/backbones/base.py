"""The one feature API every backbone implements.

A backbone turns a normalised image batch into ``Features`` in a single forward pass; every scorer reads only
``Features``, so adding a backbone never touches a scorer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Features:
    """What one forward pass gives.

    patch_tokens: [B, L, h, w, C] tokens of the chosen layers (``layers``), in the backbone's own width.
    cls: [B, D] image embedding (CLIP: the projected CLS used for zero-shot classification; DINOv2: normed CLS).
    projected: [B, L, h, w, D] CLIP only: patch tokens mapped by the same final norm + projection as the CLS,
        so they can be compared with text embeddings; None for backbones without a text tower.
    """

    patch_tokens: torch.Tensor
    cls: torch.Tensor
    projected: torch.Tensor | None = None
    layers: tuple[int, ...] = field(default=())

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.patch_tokens.shape[2]), int(self.patch_tokens.shape[3])

    def select(self, index: slice | torch.Tensor) -> "Features":
        """Rows of the batch, keeping everything else."""
        return Features(
            patch_tokens=self.patch_tokens[index],
            cls=self.cls[index],
            projected=None if self.projected is None else self.projected[index],
            layers=self.layers,
        )

    def to_cpu_float(self) -> "Features":
        """The same features on the CPU in float32 (what scorers and storage expect)."""
        return Features(
            patch_tokens=self.patch_tokens.float().cpu(),
            cls=self.cls.float().cpu(),
            projected=None if self.projected is None else self.projected.float().cpu(),
            layers=self.layers,
        )

    @staticmethod
    def concat(parts: list["Features"]) -> "Features":
        return Features(
            patch_tokens=torch.cat([p.patch_tokens for p in parts]),
            cls=torch.cat([p.cls for p in parts]),
            projected=None if parts[0].projected is None else torch.cat([p.projected for p in parts]),
            layers=parts[0].layers,
        )
