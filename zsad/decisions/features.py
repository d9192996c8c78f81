"""The patch features a test-time mask needs, kept small while a run streams its images.

The classifier of ``zsad.decisions.masks.test_time_masks`` reads every patch of the batch, but a run holds only
its grid maps, never the backbone's features (10,000 images x 37 x 37 patches x 1024 channels would be 56 GB).
So each image's last extracted layer is projected onto ``dims`` (64) directions of a fixed seeded Gaussian matrix
(a Johnson-Lindenstrauss projection: the geometry the linear classifier separates is kept up to errors of about
1 / sqrt(dims)) and stored in float16: 128 bytes a patch, 175 KB an image at 37 x 37, 1.75 GB for 10,000 such
images. ``eval/bench_decisions.py --verdicts results`` measures the masks the Detector makes this way.
Kept only when the run's mask rule is the test-time classifier.
"""
from __future__ import annotations

import numpy as np
import torch

from zsad.backbones.base import Features


class PatchFeatureKeeper:
    """Kept only when ``enabled`` (the run's mask rule is the test-time classifier); otherwise every call is free.
    Per-image projected patch features [h, w, dims] in the order images are scored (float16; a journal keeps
    them too); None for an image scored elsewhere without them, which makes the whole batch's features
    unavailable (``stacked``)."""

    def __init__(self, enabled: bool = True, dims: int = 64, seed: int = 0):
        self.enabled, self.dims, self.seed = enabled, dims, seed
        self.rows: list[np.ndarray | None] = []
        self._projection: torch.Tensor | None = None

    def add(self, features: Features) -> None:
        if not self.enabled:
            return
        tokens = features.patch_tokens[:, -1].float()  # [B, h, w, C]
        if self._projection is None:
            channels = tokens.shape[-1]
            generator = torch.Generator().manual_seed(self.seed)
            self._projection = torch.randn(channels, self.dims, generator=generator) / self.dims ** 0.5 \
                if channels > self.dims else torch.eye(channels)
        projected = (tokens @ self._projection).to(torch.float16).numpy()
        self.rows.extend(projected)

    def add_row(self, row: np.ndarray | None) -> None:
        """One image's features from elsewhere (a journal), or None when it has none."""
        if self.enabled:
            self.rows.append(row)

    def row(self, index: int) -> np.ndarray | None:
        """The ``index``-th image's features (None when not kept), e.g. for its journal entry."""
        return self.rows[index] if self.enabled else None

    def stacked(self) -> tuple[np.ndarray | None, str]:
        """[N, h, w, dims] float32, or None and why."""
        if not self.enabled:
            return None, "the mask rule does not use patch features"
        missing = sum(row is None for row in self.rows)
        if missing:
            return None, f"{missing} image{'' if missing == 1 else 's'} resumed from a journal without patch features"
        if not self.rows:
            return None, "no image was scored"
        shapes = {row.shape for row in self.rows}
        if len(shapes) > 1:
            return None, "the images' patch grids differ"
        return np.stack(self.rows).astype(np.float32), ""
