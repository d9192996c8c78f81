"""Backbones: one forward pass from a normalised image batch to ``Features``.

A small registry maps a backbone name to its family loader, so adding a family is one entry, not another branch:
- open_clip names (``ViT-L-14-336``, ``ViT-B-16-plus-240``, ``hf-hub:...``, ``local-dir:...``) with a pretrained tag,
  a checkpoint path, or ``random`` (random initialisation, for benchmarks);
- DINOv2 via transformers (``dinov2-small|base|large|giant[-reg]``, ``facebook/dinov2-*`` ids, local folders);
- ``tiny-clip`` and ``tiny-dinov2[-reg]``: small randomly initialised models of the same architectures, running the
  same code paths, for tests and smoke runs without weights.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from zsad.backbones.base import Features
from zsad.backbones.clip import CLIPBackbone, TinyCLIPConfig, build_tiny_clip, load_open_clip
from zsad.errors import ZsadError
from zsad.backbones.dinov2 import DINOV2_IDS, DINOv2Backbone, TinyDINOv2Config, build_tiny_dinov2, load_dinov2

DEFAULT_BACKBONE = "ViT-L-14-336"

# Published settings per CLIP model: (pretrained tag, input size). ViT-L-14-336 at 518 px is the setting of
# AnomalyCLIP and MuSc; ViT-B-16-plus-240 / laion400m_e31 at 240 px is WinCLIP's.
CLIP_DEFAULTS = {
    "ViT-L-14-336": ("openai", 518),
    "ViT-B-16-plus-240": ("laion400m_e31", 240),
    "ViT-B-16": ("openai", 224),
    "ViT-L-14": ("openai", 224),
}


@dataclass(frozen=True)
class BackboneSpec:
    name: str = DEFAULT_BACKBONE
    pretrained: str | None = None  # tag, checkpoint path, or "random"; None = the model's default tag
    input_size: int | None = None
    layers: tuple[int, ...] | None = None
    vv_layers: int = 0  # V-V attention in the last k blocks (CLIP only)
    windows: tuple[int, ...] = ()  # WinCLIP window sizes in patches, e.g. (2, 3) (CLIP only; see clip.py)
    dpam_layer: int | None = None  # the same in AnomalyCLIP's convention: DPAM_layer N = V-V in the last N-1 blocks
    # position-embedding resize: "bicubic" (open_clip, transformers' DINOv2) or "bilinear" (AnomalyCLIP); DINOv2 also
    # takes "dinov2-hub" (DINOv2's torch.hub rule, scale factor (n + 0.1) / M, as AnomalyDINO loads it)
    pos_interpolation: str = "bicubic"
    cls_ln_post: bool = True  # False: AnomalyCLIP's image feature, CLS @ proj without ln_post
    # open_clip activation: None = what the weights were trained with (QuickGELU for OpenAI weights); False =
    # exact GELU, what MuSc's official code ends up running at 518 px (its factory rebuilds the model without it).
    quick_gelu: bool | None = None


def _is_dinov2(name: str) -> bool:
    if name in DINOV2_IDS or name.startswith("facebook/dinov2"):
        return True
    config = Path(name) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type", "").startswith("dinov2")
    return False


def _clip_options(spec: BackboneSpec) -> dict:
    return {"dpam_layer": spec.dpam_layer, "pos_interpolation": spec.pos_interpolation,
            "cls_ln_post": spec.cls_ln_post, "windows": spec.windows}


def _tiny_clip(spec: BackboneSpec) -> nn.Module:
    model, tokenizer = build_tiny_clip(TinyCLIPConfig())
    return CLIPBackbone(
        model, tokenizer, spec.name, spec.input_size, spec.layers, spec.vv_layers, **_clip_options(spec)
    )


def _tiny_dinov2(spec: BackboneSpec) -> nn.Module:
    registers = 4 if spec.name.endswith("-reg") else 0
    model = build_tiny_dinov2(TinyDINOv2Config(registers=registers))
    return DINOv2Backbone(model, spec.name, spec.input_size or 224, spec.layers, spec.pos_interpolation)


def _dinov2(spec: BackboneSpec) -> nn.Module:
    return DINOv2Backbone(load_dinov2(spec.name), spec.name, spec.input_size or 448, spec.layers,
                          spec.pos_interpolation)


def _clip(spec: BackboneSpec) -> nn.Module:
    default_tag, default_size = CLIP_DEFAULTS.get(spec.name, (None, None))
    pretrained = spec.pretrained if spec.pretrained is not None else default_tag
    if pretrained is None:
        import open_clip

        tags = open_clip.list_pretrained_tags_by_model(spec.name.replace("/", "-"))
        pretrained = tags[0] if tags else None
    model, tokenizer = load_open_clip(spec.name, None if pretrained == "random" else pretrained,
                                      quick_gelu=spec.quick_gelu)
    return CLIPBackbone(
        model, tokenizer, spec.name, spec.input_size or default_size, spec.layers, spec.vv_layers, **_clip_options(spec)
    )


TINY_BACKBONES = ("tiny-clip", "tiny-dinov2", "tiny-dinov2-reg")

# (matches name?, loader): first match wins; open_clip is the fallback family.
FAMILIES: list[tuple[Callable[[str], bool], Callable[[BackboneSpec], nn.Module]]] = [
    (lambda name: name == "tiny-clip", _tiny_clip),
    (lambda name: name in ("tiny-dinov2", "tiny-dinov2-reg"), _tiny_dinov2),
    (_is_dinov2, _dinov2),
    (lambda name: True, _clip),
]


def backbone_help() -> str:
    """What --backbone accepts, for the CLI's help."""
    clip = ", ".join(f"{name} ({tag}, {size} px)" for name, (tag, size) in CLIP_DEFAULTS.items())
    return (
        f"CLIP via open_clip: {clip}, any other open_clip name, hf-hub:ORG/REPO or local-dir:PATH; "
        f"DINOv2 via transformers: {', '.join(DINOV2_IDS)}, a facebook/dinov2-* id or a local folder; "
        f"random test models without weights: {', '.join(TINY_BACKBONES)}. "
        f"The default {DEFAULT_BACKBONE} needs its weights in the local cache or --pretrained FILE"
    )


def load_backbone(spec: BackboneSpec | str = BackboneSpec()) -> nn.Module:
    """Build the backbone a spec names; raises ``ZsadError`` with a fix when it cannot."""
    spec = BackboneSpec(name=spec) if isinstance(spec, str) else spec
    path = spec.name.removeprefix("local-dir:")
    looks_like_path = path != spec.name or path.startswith((".", "/", "~")) or path.count("/") > 1
    if looks_like_path and not Path(path).expanduser().exists():
        raise ZsadError(f"backbone folder {path} not found; pass an existing model folder or a model name")
    loader = next(load for matches, load in FAMILIES if matches(spec.name))
    if spec.windows and loader not in (_tiny_clip, _clip):
        raise ZsadError(
            f"backbone {spec.name}: WinCLIP windows need a CLIP backbone (a CLS token and a text space); "
            "drop the windows or use a CLIP model such as ViT-B-16-plus-240"
        )
    return loader(spec)


__all__ = ["BackboneSpec", "CLIPBackbone", "DINOv2Backbone", "Features", "load_backbone", "DEFAULT_BACKBONE"]
