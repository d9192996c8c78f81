"""Few-shot scoring against a memory of good reference patches (WinCLIP+, PatchCore, AnomalyDINO).

Each test patch is scored by its distance to the nearest patch of the same layer in a memory built from k good
reference images; per-layer maps are averaged, and the image score is read off the averaged map.

Decisions where the literature differs:

- Distance: cosine distance ``1 - cos`` by default, as AnomalyDINO (DINOv2 and CLIP tokens differ mostly in
  direction; their norms carry little anomaly signal). ``metric="l2"`` gives PatchCore's Euclidean distance.
- Layers: memories are kept per layer and a test patch is only compared with patches of the same layer; the
  distances of the layers are averaged with equal weight (WinCLIP+ averages its scales the same way).
- Image score: ``"top1pct"`` (default) is AnomalyDINO's mean of the 1 % highest patch scores, with their count
  rounded down and at least one patch (so up to 199 patches it is the max); it is less noisy than the max on
  large grids, yet still dominated by a small defect. ``"max"`` is PatchCore's/WinCLIP+'s choice.
- Nearest neighbours are exact (no approximate index): queries and memory are walked in blocks of
  ``chunk_size`` rows, one matrix product per block and a running minimum, so the peak extra memory is one
  ``chunk_size x chunk_size`` block whatever the number of references or test images. For L2 the block products
  only pick the neighbour; its distance is then recomputed directly as ``||q - m||``, which avoids the
  cancellation of ``|q|^2 - 2 q.m + |m|^2`` for the large-norm tokens of ViTs.
- The memory is kept in float32 whatever the backbone's dtype: bf16 cosines near 1 lose the small differences
  that separate good from bad patches.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from zsad.errors import ZsadError
from zsad.scoring.base import AnomalyMaps
from zsad.scoring.configs import IMAGE_SCORES, METRICS, ReferenceConfig
from zsad.scoring.coreset import greedy_coreset

__all__ = ["IMAGE_SCORES", "METRICS", "ReferenceConfig", "ReferenceMemory", "image_scores", "nearest_distances"]
_FORMAT = "zsad.reference-memory/1"


def nearest_distances(
    queries: torch.Tensor, memory: torch.Tensor, metric: str, chunk_size: int = 2048
) -> torch.Tensor:
    """Distance [Q] from each row of ``queries`` [Q, C] to its nearest row of ``memory`` [N, C].

    For ``metric="cosine"`` the rows of ``memory`` must already be unit length (``ReferenceMemory`` stores them
    so); queries are normalised here, one block at a time. Exact search, blockwise (see the module docstring).
    """
    if metric not in METRICS:
        raise ZsadError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    out = torch.empty(queries.shape[0], dtype=torch.float32, device=memory.device)
    n = memory.shape[0]
    for qs in range(0, queries.shape[0], chunk_size):
        q = queries[qs : qs + chunk_size].to(device=memory.device, dtype=torch.float32)
        if metric == "cosine":
            q = F.normalize(q, dim=1)
        # Running best over memory blocks of a per-row key whose minimum is the nearest neighbour:
        # cosine: -q.m; l2: |m|^2 - 2 q.m (|q|^2 is the same for the whole row, so it cannot change the argmin).
        best = torch.full((q.shape[0],), float("inf"), device=q.device)
        best_idx = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        for ms in range(0, n, chunk_size):
            m = memory[ms : ms + chunk_size]
            if metric == "cosine":
                key = -(q @ m.T)
            else:
                key = torch.addmm(m.pow(2).sum(dim=1).unsqueeze(0), q, m.T, alpha=-2.0)
            val, idx = key.min(dim=1)
            better = val < best
            best = torch.where(better, val, best)
            best_idx = torch.where(better, idx + ms, best_idx)
        if metric == "cosine":
            out[qs : qs + q.shape[0]] = (1.0 + best).clamp(0.0, 2.0)
        else:
            out[qs : qs + q.shape[0]] = (q - memory[best_idx]).pow(2).sum(dim=1).sqrt()
    return out


def image_scores(maps: torch.Tensor, mode: str = "top1pct") -> torch.Tensor:
    """Image scores [B] from patch maps [B, h, w]: mean of the top 1 % (floor, at least 1) or the max."""
    flat = maps.flatten(1)
    if mode == "max":
        return flat.amax(dim=1)
    if mode == "top1pct":
        k = max(1, flat.shape[1] // 100)
        return flat.topk(k, dim=1).values.mean(dim=1)
    raise ZsadError(f"unknown image_score {mode!r}; use one of {', '.join(IMAGE_SCORES)}")


def _as_parts(patch_tokens: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    parts = [patch_tokens] if isinstance(patch_tokens, torch.Tensor) else list(patch_tokens)
    if not parts:
        raise ZsadError("ReferenceMemory.build got no reference features; pass at least one good image")
    for i, p in enumerate(parts):
        if not isinstance(p, torch.Tensor) or p.ndim != 5:
            shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
            raise ZsadError(f"reference feature set {i} has shape {shape}; expected patch tokens [K, L, h, w, C]")
        if p.shape[0] == 0:
            raise ZsadError(f"reference feature set {i} holds no images; pass at least one good image")
        if p.shape[1] != parts[0].shape[1] or p.shape[4] != parts[0].shape[4]:
            raise ZsadError(
                f"reference feature set {i} has {p.shape[1]} layers x {p.shape[4]} channels but set 0 has "
                f"{parts[0].shape[1]} x {parts[0].shape[4]}; extract all references with the same backbone layers"
            )
    return parts


def _check_meta(meta: Mapping[str, str] | None) -> dict[str, str]:
    meta = dict(meta or {})
    bad = [k for k, v in meta.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ZsadError(f"reference memory metadata must map strings to strings; convert the values of {bad} to str")
    return meta


@dataclass
class ReferenceMemory:
    """Patch features of good reference images, per layer, and how to search them.

    bank: [L, N, C] float32, unit rows when ``config.metric == "cosine"``.
    meta: caller's description of how the features were made (backbone, layers, input size, ...), checked by
        ``load(expect_meta=...)`` so a memory is never searched with features of another backbone.
    source_patches: patches per layer before coreset subsampling (k images x h x w, summed over feature sets).
    normal_scores, normal_maps: [k] image scores and [k, h, w] maps of each reference scored against a memory of
        the others (leave-one-out; ``zsad.scoring.fewshot.build_memory``): what normal looks like on this
        memory's own scale, the calibration set of the conformal verdict and mask rules (``zsad.decisions``).
        None for a single reference, or a memory saved before they were kept.
    """

    bank: torch.Tensor
    config: ReferenceConfig = field(default_factory=ReferenceConfig)
    meta: dict[str, str] = field(default_factory=dict)
    source_patches: int = 0
    normal_scores: torch.Tensor | None = None
    normal_maps: torch.Tensor | None = None

    @property
    def num_layers(self) -> int:
        return int(self.bank.shape[0])

    @property
    def num_patches(self) -> int:
        return int(self.bank.shape[1])

    @property
    def dim(self) -> int:
        return int(self.bank.shape[2])

    @property
    def device(self) -> torch.device:
        return self.bank.device

    def to(self, device: torch.device | str) -> "ReferenceMemory":
        return replace(self, bank=self.bank.to(device), meta=dict(self.meta))

    @classmethod
    @torch.no_grad()  # not inference_mode: the bank outlives this call and may meet autograd code later
    def build(
        cls,
        patch_tokens: torch.Tensor | Sequence[torch.Tensor],
        config: ReferenceConfig | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> "ReferenceMemory":
        """Memory from one or more reference feature sets, each [K_i, L, h_i, w_i, C] (``Features.patch_tokens``).

        Any number of sets is accepted and pooled per layer, and their grids may differ; this is how rotation
        augmentation works: the caller rotates the reference images before the backbone (e.g. by 90/180/270
        degrees, as AnomalyDINO does for rotation-invariant products) and passes the features of the originals
        and of each rotated copy, either as a list or concatenated along K. Coreset selection, if configured,
        runs per layer on the pooled patches (after normalisation for cosine, so it covers the metric searched).
        """
        config = config or ReferenceConfig()
        meta = _check_meta(meta)
        parts = _as_parts(patch_tokens)
        n_layers, dim = parts[0].shape[1], parts[0].shape[4]
        # [L, M, C]: each layer's patches of every image of every set.
        pooled = torch.cat(
            [p.to(torch.float32).permute(1, 0, 2, 3, 4).reshape(n_layers, -1, dim) for p in parts], dim=1
        )
        if not torch.isfinite(pooled).all():
            raise ZsadError("reference features contain NaN or inf; check the reference images and backbone dtype")
        if config.metric == "cosine":
            pooled = F.normalize(pooled, dim=-1)
        source = pooled.shape[1]
        if config.coreset_ratio is not None and config.coreset_ratio < 1.0:
            keep = max(1, math.ceil(config.coreset_ratio * source))
            pooled = torch.stack(
                [
                    layer[greedy_coreset(layer, keep, projection_dim=config.projection_dim, seed=config.seed)]
                    for layer in pooled
                ]
            )
        return cls(bank=pooled.contiguous(), config=config, meta=meta, source_patches=source)

    @torch.inference_mode()
    def score(self, patch_tokens: torch.Tensor) -> AnomalyMaps:
        """Maps [B, h', w'] (mean over layers of the nearest-memory distance) and image scores [B].

        The test grid may differ from the references' grid; layers and channels must match the memory.
        Results are float32 on the memory's device.
        """
        if not isinstance(patch_tokens, torch.Tensor) or patch_tokens.ndim != 5:
            shape = tuple(patch_tokens.shape) if isinstance(patch_tokens, torch.Tensor) else type(patch_tokens)
            raise ZsadError(f"test patch tokens have shape {shape}; expected [B, L, h, w, C]")
        b, n_layers, h, w, dim = patch_tokens.shape
        if n_layers != self.num_layers or dim != self.dim:
            raise ZsadError(
                f"test features have {n_layers} layers x {dim} channels but the reference memory was built from "
                f"{self.num_layers} x {self.dim} (meta: {self.meta or 'none'}); extract them with the same backbone "
                "and layers, or rebuild the memory"
            )
        dist = torch.empty(b, n_layers, h * w, dtype=torch.float32, device=self.device)
        for layer in range(n_layers):
            queries = patch_tokens[:, layer].reshape(b * h * w, dim)
            dist[:, layer] = nearest_distances(
                queries, self.bank[layer], self.config.metric, self.config.chunk_size
            ).view(b, h * w)
        maps = dist.mean(dim=1).view(b, h, w)
        return AnomalyMaps(maps=maps, scores=image_scores(maps, self.config.image_score), source="fewshot")

    def fingerprint(self) -> dict[str, Any]:
        """sha256 of the bank (exact float32 bytes), its config and metadata: two memories with the same fingerprint
        score every image alike (``--resume`` compares it)."""
        digest = hashlib.sha256(json.dumps([asdict(self.config), self.meta], sort_keys=True).encode())
        digest.update(self.bank.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return {"sha256": digest.hexdigest(), "patches": self.num_patches, "layers": self.num_layers}

    def save(self, path: str | Path) -> None:
        """One safetensors file: the bank as a tensor; config, metadata and format as string metadata."""
        from safetensors.torch import save

        header = {
            "format": _FORMAT,
            "config": json.dumps(asdict(self.config)),
            "meta": json.dumps(self.meta),
            "source_patches": str(self.source_patches),
        }
        # Written as bytes, with the permissions of any other file: safetensors' save_file makes it owner-only.
        tensors = {"bank": self.bank, "normal_scores": self.normal_scores, "normal_maps": self.normal_maps}
        tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items() if v is not None}
        Path(path).write_bytes(save(tensors, metadata=header))

    @classmethod
    def load(
        cls,
        path: str | Path,
        expect_meta: Mapping[str, str] | None = None,
        device: torch.device | str = "cpu",
    ) -> "ReferenceMemory":
        """Memory saved by ``save``; every key of ``expect_meta`` must be stored with the same value."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ZsadError(f"reference memory {path} not found; build one with ReferenceMemory.build(...).save(path)")
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                header = f.metadata() or {}
                stored = {key: f.get_tensor(key) for key in f.keys()}
            bank = stored.get("bank")
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise ZsadError(f"reference memory {path} is not a readable safetensors file ({exc}); rebuild it") from exc
        if header.get("format") != _FORMAT or bank is None:
            raise ZsadError(
                f"{path} is not a zsad reference memory (format {header.get('format')!r}, expected {_FORMAT!r}); "
                "rebuild it with ReferenceMemory.build(...).save(path)"
            )
        try:
            config = ReferenceConfig(**json.loads(header["config"]))
            meta = json.loads(header["meta"])
            source = int(header.get("source_patches", "0"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ZsadError(f"reference memory {path} has an unreadable config ({exc}); rebuild it") from exc
        for key, want in (expect_meta or {}).items():
            have = meta.get(key)
            if have != want:
                raise ZsadError(
                    f"reference memory {path} was built with {key}={have!r} but {want!r} is in use; "
                    "rebuild the memory with the current settings or use the matching one"
                )
        return cls(bank=bank.to(device), config=config, meta=meta, source_patches=source,
                   normal_scores=stored.get("normal_scores"), normal_maps=stored.get("normal_maps"))
