"""Building a backbone from a ``BackboneSpec``: one loader per declared family, plus device and precision.

``load_backbone(spec, device, precision)`` is the one factory (as open_clip's ``create_model``): it finds the
family (``zsad.backbones.spec.family_of``), builds the model on the CPU, moves it to the device, and records on it
what it is (``family``, the resolved ``pretrained`` tag, ``random_weights``), so nothing downstream guesses.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from zsad.backbones.clip import CLIPBackbone, TinyCLIPConfig, build_tiny_clip, load_open_clip
from zsad.backbones.dinov2 import DINOv2Backbone, TinyDINOv2Config, build_tiny_dinov2, load_dinov2
from zsad.backbones.spec import BACKBONES, CLIP_DEFAULTS, DINOV2_DEFAULT_SIZE, BackboneSpec, family_of
from zsad.errors import ZsadError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str) -> torch.device:
    """"auto": CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ZsadError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ZsadError(f"device {device} requested but CUDA is not available here; use --device cpu")
    return resolved


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """"auto": bf16 on CUDA, fp32 on the CPU (fp32 is faster than bf16 on most CPUs)."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise ZsadError(f"unknown precision {precision!r}; use auto, fp32, bf16 or fp16")
    return PRECISIONS[precision]


def _clip_options(spec: BackboneSpec) -> dict:
    return {"vv_layers": spec.vv_layers, "pos_interpolation": spec.pos_interpolation,
            "cls_ln_post": spec.cls_ln_post, "windows": spec.windows}


def tiny_clip(spec: BackboneSpec) -> tuple[nn.Module, str | None]:
    model, tokenizer = build_tiny_clip(TinyCLIPConfig())
    return CLIPBackbone(model, tokenizer, spec.name, spec.input_size, spec.layers, **_clip_options(spec)), "random"


def tiny_dinov2(spec: BackboneSpec) -> tuple[nn.Module, str | None]:
    registers = 4 if spec.name.endswith("-reg") else 0
    model = build_tiny_dinov2(TinyDINOv2Config(registers=registers))
    return DINOv2Backbone(model, spec.name, spec.input_size or 224, spec.layers, spec.pos_interpolation), "random"


def dinov2(spec: BackboneSpec) -> tuple[nn.Module, str | None]:
    backbone = DINOv2Backbone(load_dinov2(spec.name), spec.name, spec.input_size or DINOV2_DEFAULT_SIZE,
                              spec.layers, spec.pos_interpolation)
    return backbone, None


def clip(spec: BackboneSpec) -> tuple[nn.Module, str | None]:
    default_tag, default_size = CLIP_DEFAULTS.get(spec.name, (None, None))
    pretrained = spec.pretrained if spec.pretrained is not None else default_tag
    if pretrained is None:
        import open_clip

        tags = open_clip.list_pretrained_tags_by_model(spec.name.replace("/", "-"))
        pretrained = tags[0] if tags else None
    model, tokenizer = load_open_clip(spec.name, None if pretrained == "random" else pretrained,
                                      quick_gelu=spec.quick_gelu)
    backbone = CLIPBackbone(model, tokenizer, spec.name, spec.input_size or default_size, spec.layers,
                            **_clip_options(spec))
    return backbone, pretrained


def load_backbone(spec: BackboneSpec | str = BackboneSpec(), device: str | torch.device = "cpu") -> nn.Module:
    """Build the backbone a spec names, on ``device``; raises ``ZsadError`` with a fix when it cannot."""
    spec = BackboneSpec(name=spec) if isinstance(spec, str) else spec
    path = spec.name.removeprefix("local-dir:")
    looks_like_path = path != spec.name or path.startswith((".", "/", "~")) or path.count("/") > 1
    if looks_like_path and not Path(path).expanduser().exists():
        raise ZsadError(f"backbone folder {path} not found; pass an existing model folder or a model name")
    family = family_of(spec.name)
    backbone, pretrained = BACKBONES.get(family)(spec)
    backbone.family = BACKBONES.entry(family).info["family"]
    backbone.pretrained = pretrained
    backbone.random_weights = pretrained == "random"
    backbone.resize = spec.resize
    return backbone.to(resolve_device(device) if isinstance(device, str) else device)
