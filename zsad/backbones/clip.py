"""CLIP image/text features through open_clip, with intermediate layers and projected patch tokens.

The forward pass is written out here (rather than calling ``forward_intermediates``) because anomaly detection
needs three things open_clip does not give in one pass: patch tokens of several layers, the same tokens mapped into
the joint image-text space (final LayerNorm + projection, exactly what CLIP applies to the CLS token), and the
V-V ("value-value") self-attention path in the last blocks (CLIP Surgery / AnomalyCLIP's DPAM), which keeps
patch tokens local instead of letting them collapse onto global context. The V-V path runs beside the original one:
the original path is untouched, so the CLS embedding and text alignment are exactly CLIP's.

Window embeddings (``windows=(2, 3)``) are WinCLIP's: after the patch embedding of the full image, each k x k window
(stride 1) becomes a short sequence, the CLS token plus the window's k*k patch tokens, each carrying its own
positional embedding, and runs through ln_pre, all blocks, ln_post and the projection; its CLS output is the window's
embedding. Windows of all images in a batch go through the blocks together, in chunks of ``window_batch`` sequences
so memory stays bounded. They cost about (n_windows x (k*k + 1)) / (h*w + 1) full passes in tokens: ~12x one plain
forward for ViT-B-16-plus-240 at 240 px (15 x 15 grid, k = 2 and 3). V-V attention never applies to them.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zsad.backbones.base import Features, WindowEmbeddings
from zsad.backbones.weights import hub_cache_dir, hub_reachable, unavailable
from zsad.errors import ZsadError


def window_patch_index(grid: tuple[int, int], size: int) -> torch.Tensor:
    """[n_windows, size*size] flat patch indices of every size x size window of the grid, stride 1.

    Windows are listed row-major by their top-left patch (so they reshape to [h - size + 1, w - size + 1]); the
    patches of one window are listed row-major too.
    """
    h, w = grid
    if not 1 <= size <= min(h, w):
        raise ZsadError(f"window size {size} does not fit the {h}x{w} patch grid; use sizes from 1 to {min(h, w)}")
    flat = torch.arange(h * w).reshape(h, w)
    patches = flat.unfold(0, size, 1).unfold(1, size, 1)  # [h-s+1, w-s+1, s, s]
    return patches.reshape(-1, size * size)


def default_layers(depth: int) -> tuple[int, ...]:
    """Quarters of the depth (6, 12, 18, 24 for ViT-L), as APRIL-GAN, AnomalyCLIP and MuSc use."""
    return tuple(sorted({max(1, round(depth * q / 4)) for q in (1, 2, 3, 4)}))


def _batch_first(transformer: nn.Module) -> bool:
    """Whether open_clip's vision transformer runs on [B, N, W] (True from open_clip 2.26 on)."""
    if hasattr(transformer, "batch_first"):
        return bool(transformer.batch_first)
    attn = getattr(transformer.resblocks[0], "attn", None)
    return bool(getattr(attn, "batch_first", False))


class CLIPBackbone(nn.Module):
    family = "clip"
    # The weights it was loaded with; ``load_backbone`` sets both (a model built directly does not know them).
    pretrained: str | None = None
    random_weights = False

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        name: str,
        input_size: int | None = None,
        layers: tuple[int, ...] | None = None,
        vv_layers: int = 0,
        windows: tuple[int, ...] = (),
        window_batch: int = 4096,
        dpam_layer: int | None = None,
        pos_interpolation: str = "bicubic",
        cls_ln_post: bool = True,
    ):
        """``vv_layers=K``: V-V attention in the last K blocks. ``dpam_layer=N``: the same in AnomalyCLIP's
        convention, the number its code calls ``DPAM_layer``: ``DAPM_replace`` swaps the attention of
        ``resblocks[-1] .. resblocks[-(N-1)]``, i.e. the last N - 1 blocks (N = 20 on ViT-L/14's 24 blocks gives V-V
        in blocks 6..24, 1-based), so ``dpam_layer=N`` is ``vv_layers=N-1`` and ``dpam_layer=1`` is no V-V.
        ``pos_interpolation``: how the position embedding is resized to another grid, ``"bicubic"`` (open_clip) or
        ``"bilinear"`` (AnomalyCLIP, ``align_corners=False``). ``cls_ln_post=False`` gives AnomalyCLIP's image
        feature, the final CLS token projected *without* ``ln_post`` (its ``VisionTransformer.forward`` returns
        ``x_ori[0] @ proj``); the default is CLIP's own ``ln_post(cls) @ proj``."""
        super().__init__()
        visual = model.visual
        if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
            raise ZsadError(f"backbone {name}: only ViT CLIP models with a CLS token are supported")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.patch_size = int(visual.patch_size[0])
        self.pretrain_grid = tuple(int(g) for g in visual.grid_size)
        self.input_size = int(input_size or visual.image_size[0])
        if self.input_size % self.patch_size:
            raise ZsadError(
                f"backbone {name}: input size {self.input_size} is not a multiple of the patch size {self.patch_size}"
            )
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        self.mean = tuple(cfg.get("mean", getattr(visual, "image_mean", None) or (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(cfg.get("std", getattr(visual, "image_std", None) or (0.26862954, 0.26130258, 0.27577711)))
        self.depth = len(visual.transformer.resblocks)
        self.layers = tuple(layers) if layers else default_layers(self.depth)
        if min(self.layers) < 1 or max(self.layers) > self.depth:
            raise ZsadError(f"backbone {name}: layers must be within 1..{self.depth}, got {list(self.layers)}")
        if dpam_layer is not None:
            if not 1 <= dpam_layer <= self.depth + 1:
                raise ZsadError(f"backbone {name}: dpam_layer must be within 1..{self.depth + 1}, got {dpam_layer}")
            if vv_layers and vv_layers != dpam_layer - 1:
                raise ZsadError(
                    f"backbone {name}: vv_layers={vv_layers} contradicts dpam_layer={dpam_layer} "
                    f"(= vv_layers {dpam_layer - 1}); give one of them"
                )
            vv_layers = dpam_layer - 1
        if pos_interpolation not in ("bicubic", "bilinear"):
            raise ZsadError(f"backbone {name}: pos_interpolation must be 'bicubic' or 'bilinear', got {pos_interpolation!r}")
        self.pos_interpolation = pos_interpolation
        self.cls_ln_post = cls_ln_post
        # The written-out forward feeds [B, N, W] tokens to each block: open_clip >= 2.26 builds batch-first
        # blocks; older versions (sequence-first) would silently give wrong CLS embeddings.
        if not _batch_first(visual.transformer):
            raise ZsadError(
                f"backbone {name}: this open_clip build has sequence-first transformer blocks; "
                "zsad needs open_clip_torch >= 2.26 (pip install -U open_clip_torch)"
            )
        if any(int(k) < 1 for k in windows) or window_batch < 1:
            raise ZsadError(f"backbone {name}: window sizes and window_batch must be positive, got {windows}")
        self.windows = tuple(sorted({int(k) for k in windows}))
        self.window_batch = int(window_batch)
        self.set_vv_layers(vv_layers)

    def set_vv_layers(self, vv_layers: int) -> None:
        """V-V attention in the last ``vv_layers`` blocks (0: none); checked against the model's depth and blocks."""
        if not 0 <= vv_layers <= self.depth:
            raise ZsadError(f"backbone {self.name}: vv_layers must be within 0..{self.depth}, got {vv_layers}")
        blocks = self.model.visual.transformer.resblocks
        if vv_layers and not all(isinstance(b.attn, nn.MultiheadAttention) for b in blocks[-vv_layers:]):
            raise ZsadError(f"backbone {self.name}: V-V attention needs standard attention blocks; use vv_layers=0")
        self.vv_layers = int(vv_layers)

    @property
    def has_text(self) -> bool:
        return True

    @property
    def embed_dim(self) -> int:
        return int(self.model.visual.output_dim)

    def _positional_embedding(self, grid: tuple[int, int]) -> torch.Tensor:
        pos = self.model.visual.positional_embedding
        if grid == self.pretrain_grid:
            return pos
        cls_pos, patch_pos = pos[:1], pos[1:]
        gh, gw = self.pretrain_grid
        patch_pos = patch_pos.reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos.float(), size=grid, mode=self.pos_interpolation, align_corners=False)
        patch_pos = patch_pos.to(pos.dtype).permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
        return torch.cat([cls_pos, patch_pos])

    @staticmethod
    def _vv_attention(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Self-attention with values as queries and keys: each token attends to tokens that look like it."""
        attn: nn.MultiheadAttention = block.attn
        width = x.shape[-1]
        v = F.linear(x, attn.in_proj_weight[2 * width :], attn.in_proj_bias[2 * width :])
        b, n, _ = v.shape
        v = v.reshape(b, n, attn.num_heads, width // attn.num_heads).transpose(1, 2)
        out = F.scaled_dot_product_attention(v, v, v)
        out = out.transpose(1, 2).reshape(b, n, width)
        return attn.out_proj(out)

    def image_embedding(self, cls_token: torch.Tensor) -> torch.Tensor:
        """[B, W] final CLS token -> [B, D] image embedding (see ``cls_ln_post``)."""
        if self.cls_ln_post:
            return self.project(cls_token)
        return cls_token @ self.model.visual.proj

    def project(self, tokens: torch.Tensor) -> torch.Tensor:
        visual = self.model.visual
        return visual.ln_post(tokens) @ visual.proj

    def _embed(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """[B, 1 + h*w, W] CLS + patch tokens with positional embeddings (before ln_pre), and the grid (h, w)."""
        visual = self.model.visual
        x = visual.conv1(images.to(visual.conv1.weight.dtype))
        b, width, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).expand(b, 1, width)
        x = torch.cat([cls, x], dim=1) + self._positional_embedding((gh, gw)).to(x.dtype)
        return x, (gh, gw)

    def forward(self, images: torch.Tensor) -> Features:
        visual = self.model.visual
        embedded, (gh, gw) = self._embed(images)
        b, _, width = embedded.shape
        x = visual.ln_pre(embedded)

        wanted = set(self.layers)
        first_vv = self.depth - self.vv_layers
        x_vv = None
        raw: dict[int, torch.Tensor] = {}
        for_text: dict[int, torch.Tensor] = {}
        for index, block in enumerate(visual.transformer.resblocks):
            if index >= first_vv:
                x_vv = x if x_vv is None else x_vv
                x_vv = x_vv + block.ls_1(self._vv_attention(block, block.ln_1(x)))
            x = block(x)
            if index + 1 in wanted:
                raw[index + 1] = x[:, 1:]
                for_text[index + 1] = (x_vv if index >= first_vv else x)[:, 1:]

        # Raw residual-stream tokens feed reference and mutual scoring; the V-V path (when on) only changes the
        # tokens that are projected into the text space, so turning it on never changes few-shot or mutual results.
        tokens = torch.stack([raw[layer] for layer in self.layers], dim=1)  # [B, L, N, W]
        projected = self.project(torch.stack([for_text[layer] for layer in self.layers], dim=1))
        image_embedding = self.image_embedding(x[:, 0])
        windows = None
        if self.windows:
            windows = WindowEmbeddings(
                windows={k: self.window_embeddings(embedded, (gh, gw), k) for k in self.windows},
                patch_embeddings=visual.ln_post(x[:, 1:]).reshape(b, gh, gw, width),
            )
        return Features(
            patch_tokens=tokens.reshape(b, len(self.layers), gh, gw, width),
            cls=image_embedding,
            projected=projected.reshape(b, len(self.layers), gh, gw, -1),
            layers=self.layers,
            windows=windows,
        )

    def window_embeddings(self, embedded: torch.Tensor, grid: tuple[int, int], size: int) -> torch.Tensor:
        """[B, h - size + 1, w - size + 1, D] WinCLIP window embeddings (see the module docstring).

        ``embedded``: output of ``_embed``. Sequences of all images are walked in chunks of ``window_batch``; each
        chunk gathers only its own rows, so the peak extra memory is one chunk of sequences.
        """
        visual = self.model.visual
        b, _, width = embedded.shape
        index = window_patch_index(grid, size).to(embedded.device) + 1  # +1: skip the CLS position
        n_windows = index.shape[0]
        sequence_index = torch.cat([index.new_zeros(n_windows, 1), index], dim=1)  # CLS first, as in the full pass
        outputs = []
        for start in range(0, b * n_windows, self.window_batch):
            rows = torch.arange(start, min(start + self.window_batch, b * n_windows), device=embedded.device)
            x = embedded[rows.div(n_windows, rounding_mode="floor").unsqueeze(1), sequence_index[rows % n_windows]]
            x = visual.ln_pre(x)
            for block in visual.transformer.resblocks:
                x = block(x)
            outputs.append(self.project(x[:, 0]))
        hk, wk = grid[0] - size + 1, grid[1] - size + 1
        return torch.cat(outputs).reshape(b, hk, wk, -1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Text embeddings [N, D]; differentiable when called with gradients enabled (the detector calls it under
        ``torch.inference_mode()``, a prompt trainer does not)."""
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(texts).to(device)
        return self.model.encode_text(tokens).float()


@dataclass(frozen=True)
class TinyCLIPConfig:
    """A small CLIP of the real architecture (open_clip's CLIP class), randomly initialised, for tests and smoke runs."""

    image_size: int = 224
    patch_size: int = 16
    width: int = 64
    layers: int = 4
    heads: int = 2
    embed_dim: int = 32
    text_width: int = 32
    text_layers: int = 2
    text_heads: int = 2
    seed: int = 0


def build_tiny_clip(config: TinyCLIPConfig = TinyCLIPConfig()):
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's random state
        torch.manual_seed(config.seed)
        model = open_clip.CLIP(
            embed_dim=config.embed_dim,
            vision_cfg=CLIPVisionCfg(
                image_size=config.image_size,
                patch_size=config.patch_size,
                width=config.width,
                layers=config.layers,
                head_width=config.width // config.heads,
            ),
            text_cfg=CLIPTextCfg(
                context_length=77, vocab_size=49408, width=config.text_width,
                heads=config.text_heads, layers=config.text_layers,
            ),
        )
    open_clip.model.set_model_preprocess_cfg(
        model,
        {"size": config.image_size, "mean": open_clip.OPENAI_DATASET_MEAN, "std": open_clip.OPENAI_DATASET_STD,
         "interpolation": "bicubic", "resize_mode": "shortest", "fill_color": 0},
    )
    return model, open_clip.get_tokenizer("ViT-B-16")


def _cached_checkpoint(pretrained_cfg: dict) -> str | None:
    """The file a hub-hosted open_clip tag resolves to, if it is already in the local hub cache."""
    from huggingface_hub import try_to_load_from_cache

    hub = pretrained_cfg.get("hf_hub", "")
    if not hub:
        return None
    repo_id, filename = os.path.split(hub)
    candidates = [filename] if filename else []
    candidates += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename.endswith(".bin"):
        candidates.insert(0, filename[: -len(".bin")] + ".safetensors")
    for name in candidates:
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, str):
            return found
    return None


RANDOM_INIT_MESSAGE = "No pretrained weights loaded for model"


@contextlib.contextmanager
def _quiet_random_init():
    """open_clip logs "No pretrained weights loaded for model ... initialized randomly" on the root logger when a
    model is built without weights; with ``--pretrained random`` that is what was asked for. That one record is
    dropped during this one call (a filter on the root logger, removed after it); every other record passes."""
    root = logging.getLogger()

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(RANDOM_INIT_MESSAGE)

    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def load_open_clip(name: str, pretrained: str | None, cache_dir: str | None = None, quick_gelu: bool | None = None):
    """Model + tokenizer by open_clip name and pretrained tag, local checkpoint file, or hf-hub:/local-dir: name.

    quick_gelu: None uses the activation the pretrained tag was trained with; True/False force it (on every path).
    """
    import open_clip

    model_name = name.replace("/", "-") if not name.startswith(("hf-hub:", "local-dir:")) else name
    fix = (
        f"Download the checkpoint on a machine with internet and pass its path: "
        f"--backbone {name} --pretrained /path/to/open_clip_model.safetensors (or set HF_HOME to a cache that holds it)."
    )
    if name.startswith("hf-hub:") and not hub_reachable():
        raise unavailable(name, f"the hub cache {hub_cache_dir()}", fix)
    if not name.startswith(("hf-hub:", "local-dir:")):
        if open_clip.get_model_config(model_name) is None:
            raise ZsadError(
                f"unknown backbone '{name}': not an open_clip model name. Examples: ViT-L-14-336, ViT-B-16, "
                f"ViT-B-16-plus-240; or hf-hub:ORG/REPO, local-dir:/path, dinov2-base, tiny-clip."
            )
        if pretrained and not os.path.isfile(pretrained):
            tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
            if not tag_cfg:
                if os.sep in pretrained or pretrained.endswith((".bin", ".pt", ".pth", ".safetensors")):
                    raise ZsadError(f"--pretrained {pretrained}: file not found. Pass an existing checkpoint file.")
                tags = open_clip.list_pretrained_tags_by_model(model_name)
                raise ZsadError(
                    f"unknown pretrained tag '{pretrained}' for {model_name}; known tags: {', '.join(tags) or 'none'}, "
                    f"or pass a checkpoint file path"
                )
            cached = _cached_checkpoint(tag_cfg)
            if cached:
                model = open_clip.create_model(
                    model_name, pretrained=cached,
                    force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)) if quick_gelu is None else quick_gelu,
                    cache_dir=cache_dir,
                )
                mean, std = tag_cfg.get("mean"), tag_cfg.get("std")
                if mean and std:
                    open_clip.model.set_model_preprocess_cfg(
                        model, {**open_clip.model.get_model_preprocess_cfg(model), "mean": mean, "std": std}
                    )
                return model, open_clip.get_tokenizer(model_name)
            if not hub_reachable():
                raise unavailable(f"{model_name}/{pretrained}", f"the hub cache {hub_cache_dir()}", fix)
    try:
        tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained) if pretrained and not os.path.isfile(
            pretrained) and not name.startswith(("hf-hub:", "local-dir:")) else {}
        force = bool(tag_cfg.get("quick_gelu", False)) if quick_gelu is None else quick_gelu
        with contextlib.nullcontext() if pretrained else _quiet_random_init():
            model = open_clip.create_model(model_name, pretrained=pretrained or None, cache_dir=cache_dir,
                                           force_quick_gelu=force)
    except (RuntimeError, FileNotFoundError, ValueError, OSError) as error:
        raise ZsadError(f"cannot load {name} (pretrained={pretrained}): {error}. {fix}") from None
    return model, open_clip.get_tokenizer(model_name)
