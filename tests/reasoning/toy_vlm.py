"""A hand-built toy vision-language model whose two towers share known directions.

Joint space: 16 dims. dim 0 = "an object"; dims 1-3 = red, green, blue; dim 4 = scratch/crack texture; dims 8-15 =
everything else (unknown words, pixel noise).

Text tower: a sentence is the sum of its words' vectors plus the object direction, normalised. Colour words are
mixtures of dims 1-3 (yellow = red + green, ...), "scratch"/"crack" is dim 4, object names are dim 0, function words
are nothing, every other word a fixed pseudo-random vector in dims 8-15.

Image tower: 32x32 RGB images, a 4x4 grid of 8-px patches. A patch token is the object direction + 0.6 x its mean
RGB on dims 1-3 + 2 x its pixel standard deviation on dim 4 (texture) + a fixed random map of its pixel residuals onto
dims 8-15 (natural variation). CLS = the mean token. So "colour" in words and colour in pixels are the same
directions, which is what a definition's concept subspace relies on in a real CLIP.
"""
from __future__ import annotations

import hashlib
import re

import numpy as np
import torch
import torch.nn.functional as F

from zsad.backbones.base import Features

DIM = 16
_COLOURS = {
    "red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "yellow": (1, 1, 0), "orange": (1, 0.5, 0),
    "purple": (0.6, 0, 0.8), "pink": (1, 0.5, 0.6), "brown": (0.5, 0.3, 0.1), "black": (0.05, 0.05, 0.05),
    "white": (1, 1, 1), "grey": (0.5, 0.5, 0.5), "gray": (0.5, 0.5, 0.5),
}
_OBJECTS = {"object", "bottle", "pill", "cap", "product"}
_DEFECT = {"scratch", "scratches", "crack", "cracks", "scratched", "cracked"}
_FUNCTION = {"a", "an", "the", "of", "with", "photo", "close", "up", "cropped", "bright", "dark", "jpeg", "corrupted"}


def word_vector(word: str) -> torch.Tensor:
    v = torch.zeros(DIM)
    if word in _COLOURS:
        v[1:4] = torch.tensor(_COLOURS[word], dtype=torch.float32)
    elif word in _OBJECTS:
        v[0] = 1.0
    elif word in _DEFECT:
        v[4] = 1.0
    elif word not in _FUNCTION:
        seed = int(hashlib.sha1(word.encode()).hexdigest()[:8], 16)
        g = torch.Generator().manual_seed(seed)
        v[8:] = 0.5 * F.normalize(torch.randn(8, generator=g), dim=0)
    return v


class ToyVLM:
    """Backbone-shaped: ``has_text``, ``encode_text``, ``name`` and ``features(images)`` -> ``Features``."""

    name = "toy-vlm"
    has_text = True
    patch = 8

    def __init__(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.noise_map = torch.randn(3 * self.patch * self.patch, 8, generator=g) * 0.05

    def encode_text(self, sentences: list[str]) -> torch.Tensor:
        rows = []
        for sentence in sentences:
            v = torch.zeros(DIM)
            v[0] = 1.0
            for word in re.findall(r"[a-z]+", sentence.lower()):
                v = v + word_vector(word)
            rows.append(F.normalize(v, dim=0))
        return torch.stack(rows)

    def features(self, images: list[np.ndarray]) -> Features:
        tokens = []
        for image in images:
            x = torch.as_tensor(image, dtype=torch.float32)  # [32, 32, 3] in [0, 1]
            p = x.reshape(4, self.patch, 4, self.patch, 3).permute(0, 2, 1, 3, 4).reshape(4, 4, -1, 3)
            mean = p.mean(2)  # [4, 4, 3]
            std = p.std(2).mean(-1)  # [4, 4]
            residual = (p - mean[:, :, None]).reshape(4, 4, -1)
            t = torch.zeros(4, 4, DIM)
            t[..., 0] = 1.0
            t[..., 1:4] = 0.6 * mean
            t[..., 4] = 2.0 * std
            t[..., 8:] = residual @ self.noise_map
            tokens.append(t)
        projected = torch.stack(tokens)[:, None]  # [B, 1, 4, 4, D]
        return Features(patch_tokens=projected.clone(), cls=projected.mean(dim=(1, 2, 3)),
                        projected=projected, layers=(1,))


def make_image(colour: tuple[float, float, float], seed: int, scratch: bool = False) -> np.ndarray:
    """A 32x32 object of one colour with pixel noise; ``scratch`` draws a thin dark-and-bright line in one patch."""
    rng = np.random.default_rng(seed)
    image = np.clip(np.asarray(colour, dtype=np.float32) + rng.normal(0, 0.03, (32, 32, 3)), 0, 1)
    if scratch:
        for i in range(8):
            image[9 + i, 17 + i] = 0.0
            image[9 + i, 18 + i] = 1.0
    return image.astype(np.float32)


RED, BLUE = (0.8, 0.1, 0.1), (0.1, 0.1, 0.8)
