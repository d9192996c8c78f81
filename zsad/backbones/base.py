"""The one feature API every backbone implements.

A backbone turns a normalised image batch into ``Features`` in a single forward pass; every scorer reads only
``Features`` and the ``BackboneInfo`` facts of the backbone, so adding a backbone never touches a scorer. The
``Backbone`` protocol names what every family provides, so no caller has to probe for attributes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from zsad.errors import ZsadError


@runtime_checkable
class Backbone(Protocol):
    """What every backbone family provides (``CLIPBackbone``, ``DINOv2Backbone``); ``load_backbone`` sets the last
    three from what it loaded."""

    name: str
    input_size: int
    patch_size: int
    depth: int
    layers: tuple[int, ...]
    windows: tuple[int, ...]  # WinCLIP window sizes computed by the forward pass (CLIP only)
    vv_layers: int  # V-V attention in the last K blocks (CLIP only)
    pos_interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    family: str  # "clip", "dinov2": the declared family (zsad.backbones.spec.BACKBONES)
    pretrained: str | None  # the resolved weights: tag, file, "random", or None (the family's own default)
    random_weights: bool

    @property
    def has_text(self) -> bool: ...

    def __call__(self, images: torch.Tensor) -> "Features": ...


@dataclass(frozen=True)
class BackboneInfo:
    """The facts about a loaded backbone that scorers may use (``ScorerContext.backbone``)."""

    name: str
    family: str
    pretrained: str | None
    input_size: int
    patch_size: int
    depth: int
    layers: tuple[int, ...]
    has_text: bool
    windows: tuple[int, ...] = ()
    vv_layers: int = 0
    pos_interpolation: str = "bicubic"

    @classmethod
    def of(cls, backbone: Backbone) -> "BackboneInfo":
        return cls(name=backbone.name, family=backbone.family, pretrained=backbone.pretrained,
                   input_size=int(backbone.input_size), patch_size=int(backbone.patch_size),
                   depth=int(backbone.depth), layers=tuple(backbone.layers), has_text=bool(backbone.has_text),
                   windows=tuple(backbone.windows), vv_layers=int(backbone.vv_layers),
                   pos_interpolation=backbone.pos_interpolation)


def class_probabilities(embeddings: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """[..., 2]: softmax over (normal, anomalous) of the cosines of ``embeddings`` [..., D] with the two text rows
    [2, D], divided by ``temperature`` (WinCLIP Eq. 1; APRIL-GAN's and AnomalyCLIP's ``compute_similarity``)."""
    logits = F.normalize(embeddings.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T / temperature
    return logits.softmax(dim=-1)


def anomaly_probability(embeddings: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """P(anomalous), shape [...]: the second entry of ``class_probabilities``."""
    return class_probabilities(embeddings, text, temperature)[..., 1]


@dataclass
class Features:
    """What one forward pass gives.

    patch_tokens: [B, L, h, w, C] tokens of the chosen layers (``layers``), in the backbone's own width.
    cls: [B, D] image embedding (CLIP: the projected CLS used for zero-shot classification; DINOv2: normed CLS).
    projected: [B, L, h, w, D] CLIP only: patch tokens mapped by the same final norm + projection as the CLS,
        so they can be compared with text embeddings; None for backbones without a text tower.
    windows: CLIP only, when the backbone was asked for window sizes: WinCLIP's window embeddings (see
        ``WindowEmbeddings``); None otherwise.
    """

    patch_tokens: torch.Tensor
    cls: torch.Tensor
    projected: torch.Tensor | None = None
    layers: tuple[int, ...] = field(default=())
    windows: "WindowEmbeddings | None" = None

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.patch_tokens.shape[2]), int(self.patch_tokens.shape[3])

    def take(self, layers: tuple[int, ...] | None, *, projected: bool = False, what: str = "scoring") -> torch.Tensor:
        """[B, L', h, w, C] tokens of ``layers`` (1-based block numbers; None: every extracted layer), from the
        patch tokens or, with ``projected``, from the tokens in CLIP's text space (timm's ``feature_take_indices``:
        one index helper and one error for every caller)."""
        source = self.projected if projected else self.patch_tokens
        if source is None:
            raise ZsadError(f"{what} needs projected patch tokens, which only a CLIP backbone gives")
        if layers is None:
            return source
        missing = [layer for layer in layers if layer not in self.layers]
        if missing:
            raise ZsadError(f"{what} layers {missing} were not extracted; the backbone returns {list(self.layers)}")
        return source[:, [self.layers.index(layer) for layer in layers]]

    def select(self, index: slice | torch.Tensor) -> "Features":
        """Rows of the batch, keeping everything else."""
        return Features(
            patch_tokens=self.patch_tokens[index],
            cls=self.cls[index],
            projected=None if self.projected is None else self.projected[index],
            layers=self.layers,
            windows=None if self.windows is None else self.windows.select(index),
        )

    def to(self, *args, **kwargs) -> "Features":
        """Every tensor moved/cast as ``torch.Tensor.to`` does (e.g. ``features.to("cpu")``)."""
        return Features(
            patch_tokens=self.patch_tokens.to(*args, **kwargs),
            cls=self.cls.to(*args, **kwargs),
            projected=None if self.projected is None else self.projected.to(*args, **kwargs),
            layers=self.layers,
            windows=None if self.windows is None else self.windows.to(*args, **kwargs),
        )

    def to_cpu_float(self) -> "Features":
        """The same features on the CPU in float32 (what scorers and storage expect)."""
        return Features(
            patch_tokens=self.patch_tokens.float().cpu(),
            cls=self.cls.float().cpu(),
            projected=None if self.projected is None else self.projected.float().cpu(),
            layers=self.layers,
            windows=None if self.windows is None else self.windows.to("cpu", torch.float32),
        )

    @staticmethod
    def concat(parts: list["Features"]) -> "Features":
        return Features(
            patch_tokens=torch.cat([p.patch_tokens for p in parts]),
            cls=torch.cat([p.cls for p in parts]),
            projected=None if parts[0].projected is None else torch.cat([p.projected for p in parts]),
            layers=parts[0].layers,
            windows=None if parts[0].windows is None else WindowEmbeddings.concat([p.windows for p in parts]),
        )


@dataclass
class WindowEmbeddings:
    """What WinCLIP's window scales need, from the same forward pass as the rest of ``Features``.

    WinCLIP (Jeong et al., CVPR 2023) embeds a k x k window of patches by running the ViT on the CLS token plus
    that window's patch tokens only (each with its own positional embedding) and taking the projected CLS output:
    an image embedding of the window, in the text space. The backbone computes them; scorers only read them.

    windows: window size k -> [B, h - k + 1, w - k + 1, D]: the embedding of the window whose top-left patch is
        (row, col), stride 1, in CLIP's joint space (ln_post + proj of the window pass's CLS output).
    patch_embeddings: [B, h, w, W] the final layer's patch tokens of the full-image pass after ln_post, not
        projected (what open_clip returns with ``output_tokens=True``): WinCLIP+'s patch scale.
    """

    windows: dict[int, torch.Tensor]
    patch_embeddings: torch.Tensor

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(sorted(self.windows))

    def select(self, index: slice | torch.Tensor) -> "WindowEmbeddings":
        return WindowEmbeddings({k: v[index] for k, v in self.windows.items()}, self.patch_embeddings[index])

    def to(self, *args, **kwargs) -> "WindowEmbeddings":
        return WindowEmbeddings(
            {k: v.to(*args, **kwargs) for k, v in self.windows.items()}, self.patch_embeddings.to(*args, **kwargs)
        )

    @staticmethod
    def concat(parts: list["WindowEmbeddings"]) -> "WindowEmbeddings":
        return WindowEmbeddings(
            {k: torch.cat([p.windows[k] for p in parts]) for k in parts[0].windows},
            torch.cat([p.patch_embeddings for p in parts]),
        )
