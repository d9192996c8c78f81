"""The few-shot scorer: test patches against a memory of good reference patches (WinCLIP+, PatchCore, AnomalyDINO).

The distance search itself lives in ``reference.py``; this module owns everything around it: which layers are
searched, building the memory from reference images (rotated copies, leave-one-out normal scores), saving and
loading it, and checking that a loaded memory matches the backbone that searches it. It needs only a
``ScorerContext`` (the backbone's facts and its ``extract`` function), never the Detector.
"""
from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from zsad.backbones.base import Features
from zsad.data.images import LoadedImage, load_image
from zsad.data.sources import expand_sources
from zsad.errors import ZsadError
from zsad.scoring.base import AnomalyMaps, Scorer, ScorerContext, ScoringRun
from zsad.scoring.configs import FewShotConfig
from zsad.scoring.reference import ReferenceMemory

ROTATIONS = (Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270)


def memory_layers(config: FewShotConfig, ctx: ScorerContext) -> tuple[int, ...]:
    """The layers few-shot scoring searches: the configured ones, else the last extracted layer."""
    return tuple(config.layers) if config.layers else ctx.backbone.layers[-1:]


def reference_tokens(config: FewShotConfig, ctx: ScorerContext, features: Features) -> torch.Tensor:
    """[B, L', h, w, C] tokens of the layers few-shot scoring uses."""
    return features.take(memory_layers(config, ctx), what="reference")


def memory_meta(config: FewShotConfig, ctx: ScorerContext) -> dict[str, str]:
    """What a reference memory must agree on with the backbone that searches it."""
    info = ctx.backbone
    meta = {
        "backbone": info.name,
        "pretrained": str(info.pretrained),
        "input_size": str(info.input_size),
        "layers": ",".join(map(str, memory_layers(config, ctx))),
    }
    if info.pos_interpolation != "bicubic":  # stored only when set, so memories saved before it still load
        meta["pos_interpolation"] = info.pos_interpolation
    return meta


def load_references(references, rotations: bool = False) -> tuple[list[LoadedImage], list[int]]:
    """Good reference images (paths, folders, PIL images, arrays) loaded, with rotated copies when asked; returns
    the images and, for each, the index of the reference it came from. Unreadable files are skipped with a
    warning; none readable is an error."""
    images, owners = [], []
    for index, source in enumerate(expand_sources(references)):
        try:
            image = load_image(source.item).image
        except ZsadError as error:
            warnings.warn(f"reference skipped: {error}", stacklevel=3)
            continue
        copies = [image] + ([image.transpose(turn) for turn in ROTATIONS] if rotations else [])
        images += [LoadedImage(copy, "", None, copy.size) for copy in copies]
        owners += [index] * len(copies)
    if not images:
        raise ZsadError("no usable reference image; pass a folder or files of good (defect-free) images")
    return images, owners


def build_memory(config: FewShotConfig, ctx: ScorerContext, references, progress: bool = False) -> ReferenceMemory:
    """Memory of good reference images (paths, folders, PIL images, arrays).

    With two or more references, every reference is also scored against a memory of the others (leave-one-out);
    the largest of these normal scores is kept in the memory's metadata as ``normal_score_max`` and serves as the
    few-shot threshold for batches too small for the batch rule.
    """
    images, owners = load_references(references, config.rotations)
    tokens = reference_tokens(config, ctx, ctx.transform(ctx.extract(images, progress=progress)))
    meta = memory_meta(config, ctx)
    owners_t = torch.tensor(owners)
    memory_config = config.memory_config()
    if len(set(owners)) >= 2:
        loo_config = replace(memory_config, coreset_ratio=None)
        normal_scores = [
            ReferenceMemory.build(tokens[owners_t != owner], loo_config).score(tokens[owners_t == owner]).scores
            for owner in sorted(set(owners))
        ]
        meta["normal_score_max"] = repr(float(torch.cat(normal_scores).max()))
    return ReferenceMemory.build(tokens, memory_config, meta=meta)


def load_memory(config: FewShotConfig, ctx: ScorerContext, path: str | Path) -> ReferenceMemory:
    memory = ReferenceMemory.load(path, expect_meta=memory_meta(config, ctx))
    stored = memory.meta.get("pos_interpolation", "bicubic")
    if stored != ctx.backbone.pos_interpolation:
        raise ZsadError(
            f"reference memory {path} was built with pos_interpolation={stored!r} but "
            f"{ctx.backbone.pos_interpolation!r} is in use; rebuild the memory with the current settings"
        )
    return memory


def is_memory_file(references) -> bool:
    return isinstance(references, (str, Path)) and str(references).endswith(".safetensors")


def memory_from(config: FewShotConfig, ctx: ScorerContext, references, progress: bool = False):
    """A memory from whatever the user passed: None, a built memory, a saved .safetensors file (alone or as the
    only item of a list, as ``--references`` gives it), or images."""
    if isinstance(references, (list, tuple)) and len(references) == 1 and is_memory_file(references[0]):
        references = references[0]
    if references is None or isinstance(references, ReferenceMemory):
        memory = references
    elif is_memory_file(references):
        memory = load_memory(config, ctx, references)
    else:
        memory = build_memory(config, ctx, references, progress)
    return None if memory is None else memory.to(ctx.device)


class FewShotScorer(Scorer):
    """Nearest-neighbour distance of each test patch to the reference memory, batch by batch."""

    name = "fewshot"
    in_auto = True
    reads = ("references",)
    strength = 30

    @classmethod
    def unavailable(cls, config: FewShotConfig, ctx: ScorerContext, run: ScoringRun) -> str | None:
        if run.references is None:
            return "few-shot scoring needs good reference images (--references DIR or a saved memory)"
        return None

    def start(self, run: ScoringRun) -> None:
        super().start(run)
        self.memory = memory_from(self.config, self.ctx, run.references, run.progress)

    def add(self, features: Features, start: int) -> AnomalyMaps:
        return self.memory.score(reference_tokens(self.config, self.ctx, features).to(self.memory.device))

    def natural_threshold(self) -> float | None:
        value = self.memory.meta.get("normal_score_max")
        return None if value is None else float(value)

    def describe(self) -> dict:
        return {"memory_patches": self.memory.num_patches, "memory_layers": self.memory.meta.get("layers")}
