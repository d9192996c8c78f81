"""What a backbone is asked to be (``BackboneSpec``) and which family builds it (``BACKBONES``), without torch.

Families are declared here by name, loader and a name predicate; ``zsad.backbones.loading.load_backbone`` asks
``family_of(name)`` and imports only that family's loader. Adding a family is one loader module and one
declaration below (with the facts listings need: whether it has a text tower, its published defaults).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from zsad.config_fields import positive_int, setting
from zsad.errors import ZsadError
from zsad.registry import Registry

DEFAULT_BACKBONE = "ViT-L-14-336"

# Published settings per CLIP model: (pretrained tag, input size). ViT-L-14-336 at 518 px is the setting of
# AnomalyCLIP and MuSc; ViT-B-16-plus-240 / laion400m_e31 at 240 px is WinCLIP's.
CLIP_DEFAULTS = {
    "ViT-L-14-336": ("openai", 518),
    "ViT-B-16-plus-240": ("laion400m_e31", 240),
    "ViT-B-16": ("openai", 224),
    "ViT-L-14": ("openai", 224),
}
DINOV2_DEFAULT_SIZE = 448

# Short DINOv2 names users type, mapped to Hugging Face ids.
DINOV2_IDS = {
    f"dinov2-{size}{suffix}": f"facebook/dinov2{'-with-registers' if suffix else ''}-{size}"
    for size in ("small", "base", "large", "giant")
    for suffix in ("", "-reg")
}
TINY_BACKBONES = ("tiny-clip", "tiny-dinov2", "tiny-dinov2-reg")

RESIZES = ("bicubic", "bilinear")
POS_INTERPOLATIONS = ("bicubic", "bilinear", "dinov2-hub")


def is_dinov2(name: str) -> bool:
    if name in DINOV2_IDS or name.startswith("facebook/dinov2"):
        return True
    config = Path(name) / "config.json"
    if config.is_file():
        return json.loads(config.read_text()).get("model_type", "").startswith("dinov2")
    return False


def _is_tiny_clip(name: str) -> bool:
    return name == "tiny-clip"


def _is_tiny_dinov2(name: str) -> bool:
    return name in ("tiny-dinov2", "tiny-dinov2-reg")


def _any(name: str) -> bool:
    return True


# Families in matching order (``order``): the first whose predicate accepts the name builds it.
BACKBONES = Registry("backbone family")
BACKBONES.declare("tiny-clip", "zsad.backbones.loading:tiny_clip", help="random test CLIP (same code paths)",
                  matches=_is_tiny_clip, family="clip", text=True, order=10)
BACKBONES.declare("tiny-dinov2", "zsad.backbones.loading:tiny_dinov2", help="random test DINOv2 (-reg: registers)",
                  matches=_is_tiny_dinov2, family="dinov2", text=False, order=20)
BACKBONES.declare("dinov2", "zsad.backbones.loading:dinov2", help="DINOv2 via transformers",
                  matches=is_dinov2, family="dinov2", text=False, order=30)
BACKBONES.declare("clip", "zsad.backbones.loading:clip", help="CLIP via open_clip", matches=_any, family="clip",
                  text=True, order=90)


def family_of(name: str) -> str:
    """The registered family that builds ``name`` (the first whose predicate accepts it)."""
    return next(entry.name for entry in BACKBONES.entries() if entry.info["matches"](name))


def has_text_tower(name: str) -> bool:
    """Whether backbones of this name compare with text (CLIP), known without loading them."""
    return bool(BACKBONES.entry(family_of(name)).info["text"])


def backbone_help() -> str:
    """What --backbone accepts, for the CLI's help."""
    clip = ", ".join(f"{name} ({tag}, {size} px)" for name, (tag, size) in CLIP_DEFAULTS.items())
    return (
        f"CLIP via open_clip: {clip}, any other open_clip name, hf-hub:ORG/REPO or local-dir:PATH; "
        f"DINOv2 via transformers: {', '.join(DINOV2_IDS)}, a facebook/dinov2-* id or a local folder; "
        f"random test models without weights: {', '.join(TINY_BACKBONES)}. "
        f"The default {DEFAULT_BACKBONE} needs its weights in the local cache or --pretrained FILE"
    )



@dataclass(frozen=True)
class BackboneSpec:
    """The backbone a detector runs: model, weights, input size, layers and the variants of its forward pass.

    V-V attention has two conventions for one setting: ``vv_layers=K`` (V-V in the last K blocks) and AnomalyCLIP's
    ``dpam_layer=N`` (its ``DPAM_layer``: the last N - 1 blocks). Giving ``dpam_layer`` sets ``vv_layers`` to N - 1,
    so what is recorded is always what runs; the options ``--vv-layers`` and ``--dpam-layer`` each set both.
    """

    name: str = setting(DEFAULT_BACKBONE, option="backbone", help=backbone_help(), metavar="NAME")
    pretrained: str | None = setting(
        None, help="open_clip pretrained tag, checkpoint file, hf-hub:/local-dir: weights, or 'random' "
                   "(default: the model's usual tag)", metavar="TAG_OR_FILE")
    input_size: int | None = setting(None, parse=positive_int, metavar="PX",
                                     help="backbone input side in px (default: the model's published setting)")
    layers: tuple[int, ...] | None = setting(
        None, help="backbone blocks whose tokens are used, 1-based (default: quarters of the depth)")
    vv_layers: int = setting(0, help="V-V attention in the last K CLIP blocks, text path only",
                             sets=lambda k: {"dpam_layer": None})
    dpam_layer: int | None = setting(
        None, parse=positive_int, help="V-V attention in AnomalyCLIP's convention: its DPAM_layer N = the last N-1 blocks",
        sets=lambda n: {"vv_layers": 0 if n is None else int(n) - 1})
    windows: tuple[int, ...] = setting(
        (), cli=False, help="WinCLIP window sizes in patches the backbone embeds (CLIP only); --method winclip asks "
                            "for its scales itself")
    pos_interpolation: str = setting(
        "bicubic", choices=POS_INTERPOLATIONS,
        help="position-embedding resize: bicubic (open_clip, transformers), bilinear (AnomalyCLIP), dinov2-hub "
             "(DINOv2's torch.hub rule, as AnomalyDINO loads it)")
    cls_ln_post: bool = setting(True, help="CLIP image feature with ln_post (False: AnomalyCLIP's CLS @ proj)")
    quick_gelu: bool | None = setting(
        None, help="open_clip activation: unset = what the weights were trained with (QuickGELU for OpenAI); false "
                   "= exact GELU (MuSc's official code at 518 px)")
    resize: str = setting("bicubic", choices=RESIZES,
                          help="image resize to the input size: bicubic (CLIP) or bilinear (MuSc's DINO pipeline)")

    def __post_init__(self) -> None:
        if self.dpam_layer is not None:
            if self.dpam_layer < 1:
                raise ZsadError(f"dpam_layer {self.dpam_layer} must be at least 1 (1 = no V-V attention)")
            if self.vv_layers not in (0, self.dpam_layer - 1):
                raise ZsadError(f"vv_layers={self.vv_layers} contradicts dpam_layer={self.dpam_layer} "
                                f"(= vv_layers {self.dpam_layer - 1}); give one of them")
            object.__setattr__(self, "vv_layers", self.dpam_layer - 1)
        if self.vv_layers < 0:
            raise ZsadError(f"vv_layers {self.vv_layers} must be >= 0")
        if self.input_size is not None and self.input_size < 16:
            raise ZsadError(f"input size {self.input_size} px is too small; use at least one patch (e.g. 224 or "
                            "518), or omit it")
        if self.layers is not None and (not self.layers or min(self.layers) < 1):
            raise ZsadError(f"layers {list(self.layers)} must be 1-based block numbers (>= 1)")
        if self.resize not in RESIZES:
            raise ZsadError(f"resize {self.resize!r} must be one of {', '.join(RESIZES)}")
        if self.pos_interpolation not in POS_INTERPOLATIONS:
            raise ZsadError(f"pos_interpolation {self.pos_interpolation!r} must be one of "
                            f"{', '.join(POS_INTERPOLATIONS)}")
        if self.windows and not has_text_tower(self.name):
            raise ZsadError(f"backbone {self.name}: WinCLIP windows need a CLIP backbone (a CLS token and a text "
                            "space); drop the windows or use a CLIP model such as ViT-B-16-plus-240")


__all__ = ["BACKBONES", "BackboneSpec", "CLIP_DEFAULTS", "DEFAULT_BACKBONE", "DINOV2_IDS", "TINY_BACKBONES",
           "backbone_help", "family_of", "has_text_tower", "is_dinov2"]
