"""DINOv2 patch features through transformers.

DINOv2 has no text tower, so it serves the reference (few-shot) and mutual scorers, where its patch features are
the strongest published choice (AnomalyDINO, MuSc's backbone table). Intermediate layers get the model's final
LayerNorm, as DINOv2's own ``get_intermediate_layers(norm=True)`` does, so all layers share one scale.

Position embeddings at another grid than the pretrained one (37 x 37 for 518 px): transformers' ``Dinov2Model``
resizes them bicubically to the target size (``pos_interpolation="bicubic"``, the default). DINOv2's own
``torch.hub`` models (what AnomalyDINO loads) instead pass the scale factor ``(n + 0.1) / M``
(``interpolate_offset=0.1``), so their samples sit slightly elsewhere and the features at 448 px differ;
``pos_interpolation="dinov2-hub"`` reproduces that rule. The register models of both already agree (target size,
antialiased), so the option changes nothing there.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from zsad.backbones.base import Features
from zsad.backbones.clip import default_layers
from zsad.backbones.spec import DINOV2_IDS
from zsad.backbones.weights import hub_cache_dir, hub_reachable, unavailable
from zsad.errors import ZsadError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

POS_INTERPOLATIONS = ("bicubic", "dinov2-hub")
HUB_INTERPOLATE_OFFSET = 0.1  # dinov2/hub/backbones.py: interpolate_offset of the models without registers


def hub_position_embeddings(position_embeddings: torch.Tensor, grid_h: int, grid_w: int,
                            offset: float = HUB_INTERPOLATE_OFFSET) -> torch.Tensor:
    """[1, 1 + grid_h * grid_w, C] position embeddings by DINOv2's hub rule: bicubic, no antialiasing, the output
    grid reached through the scale factors ((grid_h + offset) / M, (grid_w + offset) / M); unchanged at the
    pretrained square grid."""
    n = position_embeddings.shape[1] - 1
    m = int(math.sqrt(n))
    if grid_h * grid_w == n and grid_h == grid_w:
        return position_embeddings
    grid = position_embeddings[:, 1:].float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((grid_h + offset) / m, (grid_w + offset) / m), mode="bicubic",
                         antialias=False)
    if tuple(grid.shape[-2:]) != (grid_h, grid_w):
        raise ZsadError(f"position embedding resized to {tuple(grid.shape[-2:])}, expected {(grid_h, grid_w)}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
    return torch.cat((position_embeddings[:, :1].float(), grid), dim=1).to(position_embeddings.dtype)


class DINOv2Backbone(nn.Module):
    family = "dinov2"
    # The weights it was loaded with; ``load_backbone`` sets both (a model built directly does not know them).
    pretrained: str | None = None
    random_weights = False
    windows: tuple[int, ...] = ()  # no WinCLIP windows and no V-V attention: those need CLIP's text space
    vv_layers = 0

    def __init__(self, model: nn.Module, name: str, input_size: int = 448, layers: tuple[int, ...] | None = None,
                 pos_interpolation: str = "bicubic"):
        super().__init__()
        if pos_interpolation not in POS_INTERPOLATIONS:
            raise ZsadError(f"backbone {name}: pos_interpolation for DINOv2 must be one of "
                            f"{', '.join(POS_INTERPOLATIONS)}, got {pos_interpolation!r}")
        # The register models of transformers already follow the hub rule; only the others need our own path.
        self.hub_positions = pos_interpolation == "dinov2-hub" and not getattr(model.config, "num_register_tokens", 0)
        self.pos_interpolation = pos_interpolation
        self.model = model.eval()
        self.name = name
        config = model.config
        self.patch_size = int(config.patch_size)
        self.input_size = int(input_size)
        if self.input_size % self.patch_size:
            raise ZsadError(
                f"backbone {name}: input size {self.input_size} is not a multiple of the patch size {self.patch_size}"
            )
        self.depth = int(config.num_hidden_layers)
        self.layers = tuple(layers) if layers else default_layers(self.depth)
        if min(self.layers) < 1 or max(self.layers) > self.depth:
            raise ZsadError(f"backbone {name}: layers must be within 1..{self.depth}, got {list(self.layers)}")
        self.prefix_tokens = 1 + int(getattr(config, "num_register_tokens", 0) or 0)
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD

    @property
    def has_text(self) -> bool:
        return False

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(self, images: torch.Tensor) -> Features:
        b, _, height, width = images.shape
        gh, gw = height // self.patch_size, width // self.patch_size
        norm = self.model.layernorm
        if self.hub_positions:
            # Dinov2Model's own forward, with the hub rule's position embeddings added (no mask tokens at inference,
            # dropout is the identity in eval mode).
            embeddings = self.model.embeddings
            x = embeddings.patch_embeddings(images.to(embeddings.patch_embeddings.projection.weight.dtype))
            x = torch.cat((embeddings.cls_token.expand(b, -1, -1), x), dim=1)
            x = x + hub_position_embeddings(embeddings.position_embeddings, gh, gw)
            out = self.model.encoder(x, output_hidden_states=True)
            cls = norm(out.last_hidden_state[:, 0])
        else:
            out = self.model(pixel_values=images, output_hidden_states=True)
            cls = out.pooler_output
        tokens = torch.stack(
            [norm(out.hidden_states[layer][:, self.prefix_tokens :]) for layer in self.layers], dim=1
        )
        return Features(
            patch_tokens=tokens.reshape(b, len(self.layers), gh, gw, -1),
            cls=cls,
            projected=None,
            layers=self.layers,
        )


@dataclass(frozen=True)
class TinyDINOv2Config:
    """A small DINOv2 of the real architecture (transformers' Dinov2Model), randomly initialised, for tests."""

    image_size: int = 224
    patch_size: int = 14
    hidden_size: int = 48
    layers: int = 4
    heads: int = 3
    registers: int = 0
    seed: int = 0


def build_tiny_dinov2(config: TinyDINOv2Config = TinyDINOv2Config()) -> nn.Module:
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    kwargs = dict(
        image_size=config.image_size, patch_size=config.patch_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, intermediate_size=4 * config.hidden_size,
    )
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's random state
        torch.manual_seed(config.seed)
        if config.registers:
            return Dinov2WithRegistersModel(Dinov2WithRegistersConfig(num_register_tokens=config.registers, **kwargs))
        return Dinov2Model(Dinov2Config(**kwargs))


def load_dinov2(name: str) -> nn.Module:
    """A Hugging Face id (facebook/dinov2-base), a short name (dinov2-base, dinov2-base-reg) or a local directory."""
    from transformers import AutoModel

    source = DINOV2_IDS.get(name, name)
    is_local = Path(source).is_dir()
    fix = (
        f"Download it on a machine with internet (hf download {source} --local-dir {source.split('/')[-1]}) and "
        f"pass the folder: --backbone /path/to/{source.split('/')[-1]}"
    )
    if not is_local:
        # Resolve the hub cache ourselves: transformers may still probe the network with local_files_only=True.
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            source = snapshot_download(source, local_files_only=True)
            is_local = True
        except LocalEntryNotFoundError:
            if not hub_reachable():
                raise unavailable(source, f"the hub cache {hub_cache_dir()}", fix) from None
    try:
        return AutoModel.from_pretrained(source, local_files_only=is_local)
    except OSError as error:
        raise ZsadError(f"cannot load DINOv2 from {source}: {error}. {fix}") from None
