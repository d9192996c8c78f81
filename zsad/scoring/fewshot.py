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

    With two or more references, every reference is also scored against a memory of the others (leave-one-out,
    without coreset, every copy of the reference left out): its unrotated copy's image score and map are kept as
    the memory's ``normal_scores`` / ``normal_maps``, the calibration set of the conformal verdict and masks (a test
    image is scored unrotated, so its normal counterpart is the unrotated reference); the maximum over every copy
    is ``normal_score_max``, the few-shot threshold for batches too small for a batch rule.
    """
    images, owners = load_references(references, config.rotations)
    tokens = reference_tokens(config, ctx, ctx.transform(ctx.extract(images, progress=progress)))
    meta = memory_meta(config, ctx)
    owners_t = torch.tensor(owners)
    memory_config = config.memory_config()
    calibration = {}
    if len(set(owners)) >= 2:
        loo_config = replace(memory_config, coreset_ratio=None)
        runs = [ReferenceMemory.build(tokens[owners_t != owner], loo_config).score(tokens[owners_t == owner])
                for owner in sorted(set(owners))]
        # Row 0 of each run is the reference's unrotated copy (load_references puts it first).
        calibration = {"normal_scores": torch.stack([r.scores[0] for r in runs]).cpu(),
                       "normal_maps": torch.stack([r.maps[0] for r in runs]).cpu()}
        meta["normal_score_max"] = repr(float(torch.cat([r.scores for r in runs]).max()))
    return replace(ReferenceMemory.build(tokens, memory_config, meta=meta), **calibration)


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

    def calibration(self):
        if self.memory.normal_scores is None or self.memory.normal_maps is None:
            return None
        return self.memory.normal_scores.float().numpy(), self.memory.normal_maps.float().numpy()

    def describe(self) -> dict:
        calibrated = self.memory.normal_scores is not None
        return {"memory_patches": self.memory.num_patches, "memory_layers": self.memory.meta.get("layers"),
                "calibration_references": int(self.memory.normal_scores.numel()) if calibrated else 0}
